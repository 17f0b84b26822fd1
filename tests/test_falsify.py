"""Counterexample search: witnesses of each kind, re-checks, determinism, tampering, budget."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from certify.criteria.diss import check_diss
from certify.errors import InvalidInputError
from certify.falsify import falsification_check, falsify, recheck
from certify.networks import ElmanLayer, GRULayer, InputRange, LSTMLayer, Network, StateSpaceLayer
from certify.results import CheckStatus, Counterexample, Property

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
