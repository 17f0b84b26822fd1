"""SNOF form, channels, network conversion: simulation equals Network.simulate to 1e-12."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from certify.errors import InvalidInputError, NotApplicableError, WeightError
from certify.networks import (
    AffineCell,
    ElmanLayer,
    GRULayer,
    LinearHead,
    LPGRNNLayer,
    LSTMLayer,
    Network,
    StateSpaceLayer,
)
from certify.snof import SNOF, Channel, from_network
from certify.snof.form import channel_levels


def _g(rng, scale=0.6):
    return lambda *s: scale * rng.normal(size=s)


def _lpgrnn(rng, n_in, n, nr):
    g = _g(rng)
    return LPGRNNLayer(g(nr, n_in), g(nr, n), g(nr), g(n, n_in), g(n, n), g(n, nr), g(n), rng.uniform(0, 1, n))


def _ssnn(rng, n_in, nx, ny, act="tanh", linear=True):
    g = _g(rng)
    lin = (lambda *s: g(*s)) if linear else (lambda *s: np.zeros(s))
    return StateSpaceLayer(lin(nx, nx), lin(nx, n_in), lin(ny, nx), lin(ny, n_in), g(3, nx), g(3, n_in), g(3),
                           g(nx, 3), g(nx), g(2, nx), g(2, n_in), g(2), g(ny, 2), g(ny), act)


def _affine(rng, n_in, n, ny):
    g = _g(rng)
    m = 4
    D = np.tril(g(m, m), -1)
    return AffineCell(g(n, n), g(n, m), g(n, n_in), g(n), g(m, n), D, g(m, n_in), g(m), g(ny, n), g(ny, m),
                      g(ny, n_in), g(ny), ("tanh", "sigmoid", "relu", "tanh"))


def _assert_same(net, rng, batch=False):
    form = from_network(net)
    u = rng.normal(size=(15, 3, net.n_inputs) if batch else (15, net.n_inputs))
    x0 = rng.normal(size=net.n_states)
    a, b = net.simulate(u, x0), form.simulate(u, x0)
    assert np.max(np.abs(a.y - b.y)) < 1e-12
    assert np.max(np.abs(a.x - b.x)) < 1e-12
    return form


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_elman_stack_with_head_matches_network(act):
    rng = np.random.default_rng(1)
    g = _g(rng)
    net = Network((ElmanLayer(g(4, 2), g(4, 4), g(4), act), ElmanLayer(g(3, 4), g(3, 3), g(3), act)),
                  LinearHead(g(2, 3), g(2), g(2, 2)))
    form = _assert_same(net, rng, batch=True)
    assert form.summary()["D_qp_nilpotent"] and form.m == 7 and form.n == 7


def test_lpgrnn_matches_network_and_has_index2_nilpotent_D():
    rng = np.random.default_rng(2)
    net = Network((_lpgrnn(rng, 2, 4, 3),), LinearHead(_g(rng)(1, 4), _g(rng)(1)))
    form = _assert_same(net, rng)
    D = form.D_qp
    assert np.any(D) and not np.any(D @ D)  # notes §5.4: D_qp² = 0, D_qp ≠ 0
    assert [c.kind for c in form.channels] == ["sigmoid"] * 3 + ["tanh"] * 4


@pytest.mark.parametrize("linear", [False, True])
def test_ssnn_and_grssnn_match_network(linear):
    rng = np.random.default_rng(3)
    _assert_same(Network((_ssnn(rng, 2, 3, 2, "sigmoid", linear),)), rng, batch=True)


def test_mixed_stack_with_affine_cell_matches_network():
    rng = np.random.default_rng(4)
    net = Network((_affine(rng, 2, 3, 3), _lpgrnn(rng, 3, 3, 2), _ssnn(rng, 3, 2, 2)),
                  LinearHead(_g(rng)(2, 2), _g(rng)(2), _g(rng)(2, 2)))
    _assert_same(net, rng)


@given(seed=st.integers(0, 10_000), n=st.integers(1, 4), depth=st.integers(1, 3))
def test_property_random_elman_lpgrnn_stacks(seed, n, depth):
    rng = np.random.default_rng(seed)
    layers, n_in = [], 2
    for i in range(depth):
        layers.append(_lpgrnn(rng, n_in, n, 2) if (seed + i) % 2 else ElmanLayer(*(_g(rng)(*s) for s in
                                                                                    [(n, n_in), (n, n), (n,)])))
        n_in = n
    _assert_same(Network(tuple(layers), LinearHead(_g(rng)(1, n), _g(rng)(1), _g(rng)(1, 2))), rng)


def test_gated_layers_are_not_applicable_with_pointer_to_diss():
    rng = np.random.default_rng(5)
    g = _g(rng)
    gru = GRULayer(g(2, 1), g(2, 1), g(2, 1), g(2, 2), g(2, 2), g(2, 2), g(2), g(2), g(2), g(2))
    with pytest.raises(NotApplicableError, match="Hadamard.*δISS"):
        from_network(Network((gru,)))
    lstm = LSTMLayer(*(g(2, 1) for _ in range(4)), *(g(2, 2) for _ in range(4)), *(g(2) for _ in range(4)))
    with pytest.raises(NotApplicableError, match="LSTM"):
        from_network(Network((lstm,)))


def test_shape_errors_name_matrix_and_dimensions():
    with pytest.raises(WeightError, match=r"C_q has shape \(2, 1\), expected \(1, 1\) = \(m, n\)"):
        SNOF(A=[[0.5]], C_q=np.zeros((2, 1)), channels=(Channel("tanh"),))
    with pytest.raises(WeightError, match=r"b_q has length 2, expected m = 1"):
        SNOF(A=[[0.5]], b_q=[0.0, 1.0], channels=(Channel("tanh"),))
    with pytest.raises(WeightError, match="non-finite"):
        SNOF(A=[[np.nan]])
    with pytest.raises(WeightError, match="square"):
        SNOF(A=np.zeros((2, 3)))


def test_channel_properties_are_computed_not_declared():
    assert Channel("tanh").slope == (0.0, 1.0) and Channel("tanh").odd
    assert Channel("sigmoid").slope == (0.0, 0.25) and Channel("sigmoid").sector is None
    assert not Channel("relu").odd and Channel("relu").sector == (0.0, 1.0)
    sat = Channel("saturation", limits=(-1.0, 1.0))
    assert sat.odd and not Channel("saturation", limits=(0.0, 2.0)).odd
    sh = Channel("tanh").shifted(0.7)
    assert not sh.odd and sh.sector == (0.0, 1.0) and sh.evaluate(np.zeros(1))[0] == 0.0
    q = np.linspace(-3, 3, 101)
    np.testing.assert_allclose(sh.evaluate(q), np.tanh(q + 0.7) - np.tanh(0.7), atol=1e-15)
    with pytest.raises(InvalidInputError, match="not supported"):
        Channel("softplus")
    with pytest.raises(InvalidInputError, match="limits"):
        Channel("saturation")


@given(kind=st.sampled_from(["tanh", "sigmoid", "relu", "saturation"]), a=st.floats(-3, 3), b=st.floats(-3, 3),
       gain=st.floats(0.1, 3), off=st.floats(-2, 2))
def test_property_channel_difference_quotients_lie_in_slope(kind, a, b, gain, off):
    ch = Channel(kind, limits=(-0.5, 1.5) if kind == "saturation" else None, in_gain=gain, q_offset=off)
    if abs(a - b) < 1e-6:
        return
    s = (ch.evaluate(np.array([a]))[0] - ch.evaluate(np.array([b]))[0]) / (a - b)
    assert ch.slope[0] - 1e-9 <= s <= ch.slope[1] + 1e-9


def test_levels_and_well_posedness_of_implicit_loop():
    assert channel_levels(np.array([[0.0, 0.0], [1.0, 0.0]])) is not None
    assert channel_levels(np.array([[0.0, 1.0], [1.0, 0.0]])) is None
    # implicit but well-posed: |D| < 1 with slope [0, 1]
    f = SNOF(A=[[0.5]], B_p=[[1.0, 0.0]], C_q=[[1.0], [0.0]], D_qp=[[0.0, 0.4], [0.3, 0.0]],
             channels=(Channel("tanh"),) * 2)
    wp = f.well_posedness()
    assert wp.ok and wp.method == "diagonal_lmi"
    q, p = f.solve_channels(np.array([1.0]), np.zeros(0))
    np.testing.assert_allclose(q, [1.0, 0.0] + f.D_qp @ np.tanh(q), atol=1e-12)
    bad = SNOF(A=[[0.5]], B_p=[[1.0]], C_q=[[1.0]], D_qp=[[2.0]], channels=(Channel("tanh"),))
    assert not bad.well_posedness().ok
