"""Property tests: certified rates are honoured by simulation; certified networks are never falsified."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import event, given, note, settings
from hypothesis import strategies as st
from test_diss_nets import KINDS, random_layer

from certify.criteria.diss import check_diss
from certify.falsify import falsify
from certify.networks import InputRange, Network

T = 40  # simulated steps
PAIRS = 6  # trajectory pairs per example


@st.composite
def cases(draw):
    kind = draw(st.sampled_from(KINDS))
    seed = draw(st.integers(0, 2**31 - 1))
    H, m = draw(st.integers(1, 6)), draw(st.integers(1, 3))
    scale = draw(st.floats(0.02, 0.6))
    rng = np.random.default_rng(seed)
    net = Network(layers=(random_layer(kind, rng, H, m, scale),))
    lo = rng.uniform(-2.0, 0.5, size=m)
    box = InputRange(low=lo, high=lo + rng.uniform(0.0, 2.0, size=m))
    return kind, net, box, rng


def _initial_states(kind, net, q, rng, n_pairs):
    n = net.n_states
    if kind.startswith("gru"):
        return rng.uniform(-1, 1, size=(2, n_pairs, n))  # invariant set [-1, 1]^n
    if kind == "lstm":
        H = n // 2
        hb, xb = q["hidden_bound"], q["x_bar"]
        h = rng.uniform(-hb, hb, size=(2, n_pairs, H))
        c = rng.uniform(-xb, xb, size=(2, n_pairs, H))
        return np.concatenate([h, c], axis=-1)
    return rng.uniform(-3, 3, size=(2, n_pairs, n))  # global contraction: any state


def _norm(kind, net, q, dx):
    """The norm the certificate is stated in (last axis = state)."""
    if kind.startswith("gru"):
        return np.abs(dx).max(axis=-1)
    if kind == "lstm":
        H = net.n_states // 2
        p = np.inf if q["norm"] == "inf" else 2
        w_c, w_h = q["rate_weights_cell_hidden"]
        return w_c * np.linalg.norm(dx[..., H:], ord=p, axis=-1) + w_h * np.linalg.norm(dx[..., :H], ord=p, axis=-1)
    if q["norm"] == "2":
        return np.linalg.norm(dx, axis=-1)
    if q["norm"] == "2_scaled":
        return np.linalg.norm(dx / np.array(q["rate_weights"]), axis=-1)
    v = np.array(q["rate_weights"]) if q["norm"] == "inf_weighted" else np.ones(dx.shape[-1])
    return (np.abs(dx) / v).max(axis=-1)


@settings(max_examples=150)
@given(cases())
def test_certified_contraction_rate_holds_in_simulation(case):
    kind, net, box, rng = case
    checks = {c.name: c for c in check_diss(net, input_range=box)}
    d = checks["diss.delta_iss.layer0"]
    note(f"{kind}: status={d.status.value} nu={d.margin} q={dict(d.quantities)}")
    event(f"{kind} certified={checks['diss.delta_iss'].proved}")
    if not checks["diss.delta_iss"].proved:
        return
    q, lam = d.quantities, d.quantities["contraction_rate"]
    assert lam < 1
    X0 = _initial_states(kind, net, q, rng, PAIRS)
    u = box.low + (box.high - box.low) * rng.random((T, PAIRS, net.n_inputs))
    xa, xb = net.simulate(u, X0[0]).x, net.simulate(u, X0[1]).x
    dist = _norm(kind, net, q, xa - xb)  # (T+1, PAIRS)
    bound = lam ** np.arange(T + 1)[:, None] * dist[0][None, :]
    assert np.all(dist <= bound * (1 + 1e-9) + 1e-12)


@settings(max_examples=40)
@given(cases())
def test_iss_certified_gru_states_stay_within_stated_bound(case):
    kind, net, box, rng = case
    if not kind.startswith("gru"):
        return
    i = {c.name: c for c in check_diss(net, input_range=box)}["diss.iss.layer0"]
    if not i.proved:
        return
    x_bar, lam = i.quantities["x_bar_iss"], i.quantities["contraction_rate"]
    X0 = np.random.default_rng(1).uniform(-1, 1, size=(PAIRS, net.n_states))
    u = box.low + (box.high - box.low) * rng.random((T, PAIRS, net.n_inputs))
    norms = np.abs(net.simulate(u, X0).x).max(axis=-1)
    bound = x_bar + lam ** np.arange(T + 1)[:, None] * np.maximum(0.0, norms[0] - x_bar)[None, :]
    assert np.all(norms <= bound + 1e-12)


@settings(max_examples=40)
@given(cases())
def test_falsification_never_finds_a_witness_for_certified_networks(case):
    kind, net, box, _ = case
    if not {c.name: c for c in check_diss(net, input_range=box)}["diss.delta_iss"].proved:
        return
    assert falsify(net, input_range=box, budget_seconds=0.3, n_starts=16, n_inputs=2, horizon=80) is None


@pytest.mark.parametrize("kind", KINDS)
def test_property_tests_are_not_vacuous(kind):
    # small weights certify every kind, so the properties above are exercised for each of them
    net = Network(layers=(random_layer(kind, np.random.default_rng(0), 4, 2, 0.1),))
    assert {c.name: c for c in check_diss(net)}["diss.delta_iss"].proved
