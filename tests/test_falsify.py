"""Counterexample search: witnesses of each kind, re-checks, determinism, tampering, budget."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest

from certify.criteria.diss import check_diss
from certify.errors import InvalidInputError
from certify.falsify import falsification_check, falsify, recheck
from certify.networks import ElmanLayer, GRULayer, InputRange, LSTMLayer, Network, StateSpaceLayer
from certify.results import CheckStatus, Counterexample, Property

ZOO_GRU = Path(__file__).resolve().parents[1] / "models_zoo" / "gru_small.onnx"
A1 = lambda v: np.array([[v]], dtype=float)  # noqa: E731
V1 = lambda v: np.array([v], dtype=float)  # noqa: E731


def elman(u, b=0.0, act="tanh", w=0.0):
    return Network(layers=(ElmanLayer(W=A1(w), U=A1(u), b=V1(b), activation=act),))


def test_bistable_elman_gives_rechecked_equilibria():
    net = elman(2.0)
    cex = falsify(net)
    assert cex is not None and cex.kind == "multiple_equilibria"
    json.dumps(dict(cex.data))  # JSON-serialisable as stored
    xa, xb = cex.data["x_a"][0], cex.data["x_b"][0]
    # independent check: tanh(2x) = x has roots 0 and ±0.957504...
    for x in (xa, xb):
        assert abs(math.tanh(2 * x) - x) <= 1e-9
    assert abs(xa - xb) > 0.5 and cex.residual <= 1e-9 and recheck(net, cex)
    for prop in (Property.DELTA_ISS, Property.GAS):
        chk = falsification_check(net, cex, prop)
        assert chk.status is CheckStatus.DISPROVED and chk.counterexample is cex and chk.property is prop


def test_period_two_orbit_is_a_limit_cycle_witness():
    net = elman(-2.0)  # unique equilibrium 0, orbit ±0.9575 of period 2
    cex = falsify(net)
    assert cex is not None and cex.kind == "limit_cycle" and cex.data["period"] == 2
    x0 = cex.data["x0"][0]
    assert abs(math.tanh(-2 * math.tanh(-2 * x0)) - x0) <= 1e-9 and abs(x0) > 0.9
    assert recheck(net, cex)


def test_bistable_lstm_and_stacked_gru():
    lstm = LSTMLayer(A1(0.0), A1(0.0), A1(0.0), A1(0.0), A1(0.0), A1(0.0), A1(6.0), A1(0.0),
                     V1(0.0), V1(2.0), V1(0.0), V1(4.0))
    net = Network(layers=(lstm,))
    cex = falsify(net)
    assert cex is not None and cex.kind == "multiple_equilibria" and recheck(net, cex)
    z = np.zeros
    calm = GRULayer(A1(0.3), A1(0.1), A1(0.5), A1(0.1), A1(0.1), A1(0.2), z(1), z(1), z(1), z(1))
    bistable = GRULayer(z((1, 1)), z((1, 1)), z((1, 1)), z((1, 1)), A1(4.0), A1(0.2), z(1), z(1), V1(-1.5), V1(3.0))
    stack = Network(layers=(calm, bistable))
    cex = falsify(stack)
    assert cex is not None and cex.kind == "multiple_equilibria" and recheck(stack, cex)
    assert abs(cex.data["x_a"][0] - cex.data["x_b"][0]) < 1e-6  # the calm layer agrees, the top one does not


def test_divergence_for_growing_states_only():
    z = np.zeros
    ss = StateSpaceLayer(A=A1(1.2), B=z((1, 1)), C=A1(1.0), D=z((1, 1)), W_fx=A1(1.0), W_fu=z((1, 1)), b_f=z(1),
                         W_x=A1(0.5), b_x=z(1), W_gx=z((1, 1)), W_gu=z((1, 1)), b_g=z(1), W_y=z((1, 1)), b_y=z(1))
    for net in (Network(layers=(ss,)), elman(1.5, b=0.1, act="relu", w=1.0)):
        cex = falsify(net)
        assert cex is not None and cex.kind == "divergence" and recheck(net, cex)
        assert cex.data["final_norm"] >= 1e6
        assert cex.data["rigorous"] is False  # re-simulated growth, not a proof
        assert falsification_check(net, cex, Property.ISS).status is CheckStatus.NOT_PROVED
        chk = falsification_check(net, cex, Property.ISS, accept_numerical=True)
        assert chk.status is CheckStatus.DISPROVED
        with pytest.raises(InvalidInputError, match="does not disprove delta_iss"):
            falsification_check(net, cex, Property.DELTA_ISS)


def test_deterministic_given_seed():
    net = elman(3.0, b=0.05)
    a, b = falsify(net, seed=7), falsify(net, seed=7)
    assert a is not None and a == b


def test_stable_networks_give_no_witness():
    assert falsify(elman(0.9, b=0.3, w=1.0)) is None
    assert falsify(elman(-0.9, b=0.3, w=1.0, act="relu")) is None


def test_tampered_or_malformed_witnesses_are_rejected():
    net = elman(2.0)
    cex = falsify(net)
    moved = dict(cex.data)
    moved["x_b"] = [cex.data["x_b"][0] + 1e-4]
    bad = Counterexample(cex.kind, cex.description, moved, cex.residual)
    assert not recheck(net, bad)
    assert falsification_check(net, bad, Property.GAS).status is CheckStatus.NOT_PROVED
    # a genuine witness of one network is no witness for another one
    assert not recheck(elman(0.5), cex)
    with pytest.raises(InvalidInputError, match="malformed"):
        recheck(net, Counterexample("multiple_equilibria", "x", {"u": [0.0]}))
    assert not recheck(net, Counterexample("unknown_kind", "x", {"u": [0.0]}))


def test_input_range_is_respected():
    # the second equilibrium only exists for inputs near 0: h = tanh(2h + 3u)
    net = elman(2.0, w=3.0)
    cex = falsify(net, input_range=InputRange(low=[0.9], high=[1.0]))
    assert cex is None  # for u ∈ [0.9, 1], tanh(2h + 3u) = h has a single root
    box = InputRange(low=[-0.1], high=[0.1])
    cex = falsify(net, input_range=box)
    assert cex is not None and -0.1 <= cex.data["u"][0] <= 0.1 and recheck(net, cex, input_range=box)
    # the same witness is rejected for a network declared to run on inputs far from it
    assert not recheck(net, cex, input_range=InputRange(low=[0.5], high=[1.0]))


def test_budget_is_soft_but_bounded():
    rng = np.random.default_rng(0)
    H = 64
    g = lambda *s: rng.normal(size=s) / np.sqrt(s[-1])  # noqa: E731
    lay = GRULayer(g(H, H), g(H, H), g(H, H), g(H, H), g(H, H), g(H, H), g(H), g(H), g(H), g(H))
    net = Network(layers=(lay, lay))
    t0 = time.perf_counter()
    falsify(net, budget_seconds=0.3, horizon=100_000)  # minutes of work without the budget
    assert time.perf_counter() - t0 < 5.0


def test_certified_network_is_not_falsified_and_checks_agree():
    net = elman(0.7, b=0.2, w=1.0)
    assert {c.name: c for c in check_diss(net)}["diss.delta_iss"].proved
    assert falsify(net, budget_seconds=0.5) is None


def test_slow_contraction_near_equilibria_are_not_accepted_as_witnesses():
    # h⁺ = tanh(0.9999 h) is a contraction; ±5e-6 have residual ≈ 5e-10 ≤ 1e-9 and distance 1e-5 ≫ residual,
    # but the Newton correction (≈ 5e-6) shows both sit on the same equilibrium 0: no witness.
    net = elman(0.9999)
    xa, xb = 5e-6, -5e-6
    assert abs(math.tanh(0.9999 * xa) - xa) <= 1e-9
    fake = Counterexample("multiple_equilibria", "fake", {"u": [0.0], "x_a": [xa], "x_b": [xb]})
    assert not recheck(net, fake)
    assert falsify(net, budget_seconds=0.5) is None


# --- the batched search against one input at a time -------------------------------------------------


def _small_gru(H, m, seed, gain=1.0, reset_after=True):
    rng = np.random.default_rng(seed)
    g = lambda *s: gain * rng.normal(size=s) / np.sqrt(s[-1])  # noqa: E731
    return GRULayer(g(H, m), g(H, m), g(H, m), g(H, H), g(H, H), g(H, H), g(H), g(H), g(H), g(H),
                    reset_after=reset_after)


def test_batched_step_matches_the_network_step_per_input():
    from certify.falsify import _gru_float_step, _gru_input_terms, _RowStep
    from certify.networks.base import sigmoid
    from certify.witness.dual import _sigmoid_pair
    from certify.witness.systems import NetworkSystem

    rng = np.random.default_rng(3)
    v = np.concatenate([rng.normal(size=2000) * 40, [0.0, -0.0, 745.0, -745.0, np.inf, -np.inf, np.nan]])
    s, s_neg = _sigmoid_pair(v)
    assert np.array_equal(s, sigmoid(v), equal_nan=True) and np.array_equal(s_neg, sigmoid(-v), equal_nan=True)
    lstm = LSTMLayer(*(rng.normal(size=(2, 3)) for _ in range(4)), *(rng.normal(size=(2, 2)) for _ in range(4)),
                     *(rng.normal(size=2) for _ in range(4)))
    for ra in (True, False):
        gru = _small_gru(3, 2, 1, gain=3.0, reset_after=ra)
        X, U = rng.normal(size=(4, 5, 3)) * 2, rng.normal(size=(4, 1, 2)) * 2
        fast = _gru_float_step(gru, X, _gru_input_terms(gru, U))
        assert np.array_equal(fast, np.stack([gru.step(X[j], U[j, 0])[0] for j in range(4)]))  # bit for bit
        for net in (Network(layers=(gru,)), Network(layers=(gru, _small_gru(2, 3, 2, reset_after=ra))),
                    Network(layers=(gru, lstm)), Network(layers=(ElmanLayer(W=rng.normal(size=(2, 2)),
                                                                           U=rng.normal(size=(2, 2)), b=z2()), gru))):
            X = rng.normal(size=(4, 5, net.n_states)) * 2
            want = np.stack([net.step(X[j], np.broadcast_to(U[j, 0], (5, 2)))[0] for j in range(4)])
            rs = _RowStep(NetworkSystem(net))
            for got in (rs.bind(U)(X), rs(X, U)):
                assert got.shape == want.shape and np.abs(got - want).max() <= 1e-14


def z2():
    return np.zeros(2)


def _reference_track(system, u_a, u_b, x0, steps, bound):
    """Pseudo-arclength continuation of one branch, one point at a time (the algorithm the batch runs)."""
    from certify.falsify import _residual_xt

    n, du = x0.size, u_b - u_a

    def H(x, t):
        g, J, gt, _ = _residual_xt(system, x[None, :], u_a[None, :], du[None, :], np.array([t]))
        return g[0], J[0], gt[0]

    def tangent(x, t, prev):
        _, J, gt = H(x, t)
        A = np.hstack([J, gt[:, None]])
        if not np.all(np.isfinite(A)):
            return None
        v = np.linalg.svd(A)[2][-1]
        return (v if v[-1] >= 0 else -v) if prev is None else (v if float(v @ prev) >= 0 else -v)

    x, t, ds, k = np.array(x0, dtype=float), 0.0, 0.05, 0
    v, pts, folds = tangent(x, t, None), [(0.0, x.copy())], []
    while v is not None and k < steps and 0.0 <= t <= 1.0:
        k += 1
        y_pred = np.append(x, t) + ds * v
        y, ok = y_pred.copy(), False
        for _ in range(8):
            g, J, gt = H(y[:n], float(y[n]))
            F = np.append(g, v @ (y - y_pred))
            if not np.all(np.isfinite(F)):
                break
            if float(np.abs(F).max()) <= 1e-12:
                ok = True
                break
            y = y - np.linalg.solve(np.vstack([np.hstack([J, gt[:, None]]), v[None, :]]), F)
        if not ok:
            ds *= 0.5
            if ds < 1e-6:
                break
            continue
        if np.any(np.abs(y[:n]) > bound + 1e-9):
            break
        x, t = y[:n], float(y[n])
        v_new = tangent(x, t, v)
        if v_new is None:
            break
        if v_new[-1] * v[-1] < 0:
            folds.append(len(pts))
        v = v_new
        pts.append((t, x.copy()))
        ds = min(0.2, ds * 1.5)
    return pts, folds


def test_batched_continuation_follows_each_branch_as_alone():
    from certify.falsify import track_equilibria_batch
    from certify.witness.systems import NetworkSystem

    cases = [Network(layers=(ElmanLayer(W=A1(3.0), U=A1(1.05), b=V1(0.3)),)),  # a fold near u = -0.1
             Network(layers=(_small_gru(3, 2, 5, gain=2.5),))]
    for net in cases:
        system, m = NetworkSystem(net), net.n_inputs
        rng = np.random.default_rng(0)
        U_a, U_b = rng.uniform(-1, 1, (5, m)), rng.uniform(-1, 1, (5, m))
        U_a[0], U_b[0] = 1.0, -1.0
        X0 = np.array([_root(system, u) for u in U_a])
        bound = np.ones(net.n_states)
        batch = track_equilibria_batch(system, U_a, U_b, X0, steps=60, bound=bound)
        folds_seen = 0
        for i in range(5):
            pts, folds = _reference_track(system, U_a[i], U_b[i], X0[i], 60, bound)
            got_pts, got_folds, _ = batch[i]
            assert got_folds == folds and len(got_pts) == len(pts)
            assert max(abs(a[0] - b[0]) + float(np.abs(a[1] - b[1]).max()) for a, b in zip(got_pts, pts)) <= 1e-9
            folds_seen += len(folds)
        if net.layers[0].kind == "elman":
            assert folds_seen >= 2  # the segment across the bistable band turns at both folds


def _root(system, u):
    """An equilibrium for the input ``u`` (Newton from the state the network settles to)."""
    from certify.falsify import _newton

    x = np.zeros(system.n_states)
    for _ in range(300):
        x = system.step(x[None, :], u)[0]
    return _newton(system, x[None, :], u, 30)[0][0]


@pytest.mark.parametrize("case", ["fold", "stable_gru", "stacked_gru", "cycle", "zoo_gru", "zoo_gru_2x6"])
def test_batched_search_matches_one_input_at_a_time(case, monkeypatch):
    import certify.falsify as fz
    from certify.falsify import search
    from certify.importers import load_model
    from certify.witness.systems import NetworkSystem

    z = np.zeros
    nets = {
        "fold": lambda: Network(layers=(ElmanLayer(W=A1(3.0), U=A1(1.05), b=V1(0.3)),)),  # witness past a fold
        "stable_gru": lambda: Network(layers=(_small_gru(3, 2, 7, gain=0.8),)),  # searched to the end
        "stacked_gru": lambda: Network(layers=(
            GRULayer(A1(0.3), A1(0.1), A1(0.5), A1(0.1), A1(0.1), A1(0.2), z(1), z(1), z(1), z(1)),
            GRULayer(z((1, 1)), z((1, 1)), z((1, 1)), z((1, 1)), A1(4.0), A1(0.2), z(1), z(1), V1(-1.5), V1(3.0)))),
        "cycle": lambda: elman(-2.0),
        "zoo_gru": lambda: load_model(str(ZOO_GRU)),
        "zoo_gru_2x6": lambda: load_model(str(ZOO_GRU.with_name("quadtank_gru_plain.onnx"))),  # slow runs: orbits
    }
    net = nets[case]()
    batched = search(net, seed=1)
    assert fz._Search(NetworkSystem(net), [np.zeros(net.n_inputs)] * 2, fz.SearchSpace.for_network(net), 0,
                      fz.SearchBudget(), fz.Deadline()).chunk > 1  # several inputs per batch
    monkeypatch.setattr(fz, "_BATCH_WORK", 1)  # one input at a time
    alone = search(net, seed=1)
    assert (batched.evaluations, batched.inputs_searched, batched.unproved, batched.truncated) == (
        alone.evaluations, alone.inputs_searched, alone.unproved, alone.truncated)
    a, b = batched.counterexample, alone.counterexample
    assert (a is None) == (b is None)
    if a is not None:
        assert a.kind == b.kind and a.data["u"] == b.data["u"]
        for key in ("x_a", "x_b", "x0"):
            if key in a.data:
                assert np.abs(np.array(a.data[key]) - np.array(b.data[key])).max() <= 1e-9
    if case == "fold":
        assert a is not None and a.kind == "multiple_equilibria" and -0.2 < a.data["u"][0] < 0.0
    if case in ("stable_gru", "zoo_gru", "zoo_gru_2x6"):
        assert a is None and batched.inputs_searched == 32



def test_orbit_batch_matches_step_by_step():
    import certify.falsify as fz
    from certify.witness.systems import NetworkSystem

    net = Network(layers=(_small_gru(3, 2, 11, gain=3.0), _small_gru(2, 3, 12, gain=3.0)))
    rng = np.random.default_rng(4)
    us = [rng.uniform(-1, 1, 2) for _ in range(3)]
    s = fz._Search(NetworkSystem(net), us, fz.SearchSpace.for_network(net), 0, fz.SearchBudget(max_period=5),
                   fz.Deadline())
    found = [{"u": u, "unsettled": rng.normal(size=(k, 5))} for u, k in zip(us, (2, 0, 3))]
    out = s.orbits(found)
    assert [o.shape for o in out] == [(11, 2, 5), (11, 0, 5), (11, 3, 5)]
    for u, c, T in zip(us, found, out):
        for i, x in enumerate(c["unsettled"]):
            ref = [x]
            for _ in range(10):
                ref.append(net.step(ref[-1], u)[0])
            assert np.abs(T[:, i] - np.array(ref)).max() <= 1e-13
