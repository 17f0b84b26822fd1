"""Random small networks of every kind for the δISS / falsification tests (plus sanity tests of them)."""

from __future__ import annotations

import numpy as np
import pytest

from certify.networks import (
    AffineCell,
    ElmanLayer,
    GRULayer,
    LPGRNNLayer,
    LSTMLayer,
    Network,
    StateSpaceLayer,
)

KINDS = ("gru_bonassi", "gru_pytorch", "lstm", "elman_tanh", "elman_relu", "lpgrnn", "ssnn", "affine")


def random_layer(kind: str, rng: np.random.Generator, H: int, m: int, scale: float):
    """A random layer of ``kind`` with weights ~ N(0, scale²) (biases a bit larger)."""
    g = lambda *s: scale * rng.normal(size=s)  # noqa: E731
    if kind in ("gru_bonassi", "gru_pytorch"):
        return GRULayer(g(H, m), g(H, m), g(H, m), g(H, H), g(H, H), g(H, H), g(H), g(H), g(H), g(H),
                        reset_after=kind == "gru_pytorch")
    if kind == "lstm":
        return LSTMLayer(*(g(H, m) for _ in range(4)), *(g(H, H) for _ in range(4)), *(g(H) for _ in range(4)))
    if kind in ("elman_tanh", "elman_relu"):
        return ElmanLayer(W=g(H, m), U=g(H, H), b=g(H), activation=kind.split("_")[1])
    if kind == "lpgrnn":
        nr = max(1, H // 2)
        return LPGRNNLayer(W_r=g(nr, m), U_r=g(nr, H), b_r=g(nr), W_h=g(H, m), U_h=g(H, H), V_h=g(H, nr),
                           b_h=g(H), z=rng.uniform(-0.3, 0.95, size=H))
    if kind == "ssnn":
        nf = H + 1
        act = ("tanh", "sigmoid", "relu")[int(rng.integers(3))]
        return StateSpaceLayer(A=g(H, H), B=g(H, m), C=g(H, H), D=np.zeros((H, m)), W_fx=g(nf, H), W_fu=g(nf, m),
                               b_f=g(nf), W_x=g(H, nf), b_x=g(H), W_gx=g(2, H), W_gu=g(2, m), b_g=g(2),
                               W_y=g(H, 2), b_y=g(H), activation=act)
    if kind == "affine":
        nc = H + 1
        acts = tuple(("tanh", "sigmoid", "relu")[int(i)] for i in rng.integers(3, size=nc))
        D_qp = np.tril(g(nc, nc), k=-1)
        return AffineCell(A=g(H, H), B_p=g(H, nc), B_u=g(H, m), b_x=g(H), C_q=g(nc, H), D_qp=D_qp, D_qu=g(nc, m),
                          b_q=g(nc), C_y=g(H, H), D_yp=g(H, nc), D_yu=g(H, m), b_y=g(H), activations=acts)
    raise ValueError(kind)


def random_net(kind: str, seed: int, H: int = 3, m: int = 2, scale: float = 0.3) -> Network:
    rng = np.random.default_rng(seed)
    return Network(layers=(random_layer(kind, rng, H, m, scale),))


@pytest.mark.parametrize("kind", KINDS)
def test_random_layers_simulate(kind):
    net = random_net(kind, 0)
    sim = net.simulate(np.zeros((3, 2)))
    assert np.all(np.isfinite(sim.x)) and sim.x.shape[1] == net.n_states
