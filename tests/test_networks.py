"""Canonical networks: validation messages, stacking semantics, hand-computed steps."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from certify.errors import WeightError
from certify.networks import (
    AffineCell,
    ElmanLayer,
    GRULayer,
    InputRange,
    LinearHead,
    LPGRNNLayer,
    LSTMLayer,
    ModelInfo,
    Network,
)


def _gru(H, m, rng, reset_after=True):
    g = lambda *s: rng.normal(size=s)  # noqa: E731
    return GRULayer(g(H, m), g(H, m), g(H, m), g(H, H), g(H, H), g(H, H), g(H), g(H), g(H), g(H), reset_after)


def test_shape_error_names_matrix_and_dimensions():
    with pytest.raises(WeightError, match=r"U_n has shape \(3, 2\), expected \(2, 2\)"):
        z = np.zeros
        GRULayer(z((2, 1)), z((2, 1)), z((2, 1)), z((2, 2)), z((2, 2)), z((3, 2)), z(2), z(2), z(2), z(2))


def test_nan_weight_is_rejected():
    with pytest.raises(WeightError, match="non-finite"):
        ElmanLayer(W=[[np.nan]], U=[[0.0]], b=[0.0])


def test_stack_mismatch_names_both_layers():
    rng = np.random.default_rng(0)
    with pytest.raises(WeightError, match="layer 1 .* expects 3 inputs but layer 0 .* outputs 2"):
        Network(layers=(_gru(2, 1, rng), _gru(4, 3, rng)))


def test_gru_conventions_agree_when_reset_is_trivial():
    # With U_n = 0 the two reset conventions differ only through b_hn: r*b_hn vs b_hn.
    rng = np.random.default_rng(1)
    a = _gru(3, 2, rng, reset_after=True)
    a0 = replace(a, b_hn=np.zeros(3), U_n=np.zeros((3, 3)))
    b0 = replace(a0, reset_after=False)
    x, u = rng.normal(size=3), rng.normal(size=2)
    assert np.allclose(a0.step(x, u)[0], b0.step(x, u)[0], atol=1e-15)


def test_gru_reset_after_hand_computed():
    # Scalar GRU with zero gates pre-activations: z = r = 1/2.
    z = np.zeros
    layer = GRULayer(z((1, 1)), z((1, 1)), [[1.0]], z((1, 1)), z((1, 1)), [[2.0]], z(1), z(1), [0.0], [0.5])
    h, _ = layer.step(np.array([0.3]), np.array([0.2]))
    n = np.tanh(0.2 + 0.5 * (2.0 * 0.3 + 0.5))
    assert np.isclose(h[0], 0.5 * 0.3 + 0.5 * n, atol=1e-15)
    layer_b = replace(layer, reset_after=False)
    h_b, _ = layer_b.step(np.array([0.3]), np.array([0.2]))
    n_b = np.tanh(0.2 + 2.0 * (0.5 * 0.3) + 0.5)
    assert np.isclose(h_b[0], 0.5 * 0.3 + 0.5 * n_b, atol=1e-15)


def test_lstm_hand_computed():
    z = np.zeros
    one = np.ones((1, 1))
    layer = LSTMLayer(z((1, 1)), z((1, 1)), one, z((1, 1)), *(z((1, 1)),) * 4, z(1), z(1), z(1), z(1))
    x, h = layer.step(np.array([0.0, 0.4]), np.array([1.0]))
    c = 0.5 * 0.4 + 0.5 * np.tanh(1.0)
    assert np.allclose(x, [0.5 * np.tanh(c), c])
    assert np.allclose(h, 0.5 * np.tanh(c))


def test_stack_feeds_updated_state_and_batches():
    rng = np.random.default_rng(2)
    net = Network(layers=(_gru(3, 2, rng), ElmanLayer(rng.normal(size=(2, 3)), rng.normal(size=(2, 2)), z2 := np.zeros(2))),
                  head=LinearHead(W=rng.normal(size=(1, 2)), b=[0.1]))
    u = rng.normal(size=(5, 4, 2))
    sim = net.simulate(u)
    assert sim.y.shape == (5, 4, 1) and sim.x.shape == (6, 4, 5)
    # batch element 2 equals its own unbatched run
    single = net.simulate(u[:, 2, :])
    assert np.allclose(single.y, sim.y[:, 2, :], atol=1e-14)
    # manual stacking: layer 1 reads layer 0's updated state
    h0, _ = net.layers[0].step(np.zeros(3), u[0, 2])
    h1, _ = net.layers[1].step(z2, h0)
    assert np.allclose(net.head(h1, u[0, 2]), sim.y[0, 2])


def test_lpgrnn_and_affine_cell_agree():
    # An LP-GRNN layer written as an AffineCell (sigmoid channels first, then tanh channels).
    rng = np.random.default_rng(3)
    n, nr, m = 3, 2, 2
    layer = LPGRNNLayer(rng.normal(size=(nr, m)), rng.normal(size=(nr, n)), rng.normal(size=nr),
                        rng.normal(size=(n, m)), rng.normal(size=(n, n)), rng.normal(size=(n, nr)),
                        rng.normal(size=n), rng.uniform(0.1, 0.9, size=n))
    Z = np.diag(layer.z)
    D_qp = np.zeros((nr + n, nr + n))
    D_qp[nr:, :nr] = layer.V_h
    cell = AffineCell(
        A=Z, B_p=np.hstack([np.zeros((n, nr)), np.eye(n) - Z]), B_u=np.zeros((n, m)), b_x=np.zeros(n),
        C_q=np.vstack([layer.U_r, layer.U_h]), D_qp=D_qp, D_qu=np.vstack([layer.W_r, layer.W_h]),
        b_q=np.concatenate([layer.b_r, layer.b_h]), C_y=np.eye(n), D_yp=np.zeros((n, nr + n)),
        D_yu=np.zeros((n, m)), b_y=np.zeros(n), activations=("sigmoid",) * nr + ("tanh",) * n,
    )
    x, u = rng.normal(size=n), rng.normal(size=m)
    assert np.allclose(cell.step(x, u)[0], layer.step(x, u)[0], atol=1e-14)


def test_affine_cell_rejects_implicit_loop():
    with pytest.raises(WeightError, match="strictly lower triangular"):
        AffineCell(A=[[0.0]], B_p=[[1.0]], B_u=[[0.0]], b_x=[0.0], C_q=[[1.0]], D_qp=[[0.5]], D_qu=[[0.0]],
                   b_q=[0.0], C_y=[[1.0]], D_yp=[[0.0]], D_yu=[[0.0]], b_y=[0.0], activations=("tanh",))


def test_input_range_must_match_inputs():
    rng = np.random.default_rng(4)
    with pytest.raises(WeightError, match="input range has 3 entries but the network has 2 inputs"):
        Network(layers=(_gru(2, 2, rng),), info=ModelInfo(input_range=InputRange.symmetric(3)))
