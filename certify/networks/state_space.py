"""State-space neural networks: SS-NN and the generalised residual gR-SS-NN (Schoukens (2021), eqs. (4)–(5)).

::

    x(k+1) = A x + B u + W_x σ(W_fx x + W_fu u + b_f) + b_x
    y(k)   = C x + D u + W_y σ(W_gx x + W_gu u + b_g) + b_y

A plain SS-NN has ``A, B, C, D = 0`` (``linear=False``); the gR-SS-NN has the explicit linear term.
Unlike the RNN layers, the output ``y(k)`` depends on the *current* state ``x(k)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from certify.networks.base import ACTIVATIONS, as_matrix, check_activation


@dataclass(frozen=True)
class StateSpaceLayer:
    """SS-NN / gR-SS-NN; ``linear`` is True when any of A, B, C, D is non-zero (gR-SS-NN).

    >>> import numpy as np
    >>> nx, nu, ny, nf, ng = 1, 1, 1, 2, 2
    >>> z = np.zeros
    >>> layer = StateSpaceLayer(A=[[0.5]], B=z((1, 1)), C=[[1.0]], D=z((1, 1)),
    ...     W_fx=z((nf, nx)), W_fu=z((nf, nu)), b_f=z(nf), W_x=z((nx, nf)), b_x=z(nx),
    ...     W_gx=z((ng, nx)), W_gu=z((ng, nu)), b_g=z(ng), W_y=z((ny, ng)), b_y=z(ny))
    >>> x, y = layer.step(np.ones(1), np.zeros(1))
    >>> float(x[0]), float(y[0])
    (0.5, 1.0)
    """

    A: np.ndarray
    B: np.ndarray
    C: np.ndarray
    D: np.ndarray
    W_fx: np.ndarray
    W_fu: np.ndarray
    b_f: np.ndarray
    W_x: np.ndarray
    b_x: np.ndarray
    W_gx: np.ndarray
    W_gu: np.ndarray
    b_g: np.ndarray
    W_y: np.ndarray
    b_y: np.ndarray
    activation: str = "tanh"

    kind: ClassVar[str] = "ssnn"

    def __post_init__(self) -> None:
        o = "StateSpaceLayer"
        A = as_matrix(o, "A", self.A, (None, None))
        nx = A.shape[0]
        A = as_matrix(o, "A", A, (nx, nx))
        B = as_matrix(o, "B", self.B, (nx, None))
        nu = B.shape[1]
        C = as_matrix(o, "C", self.C, (None, nx))
        ny = C.shape[0]
        W_fx = as_matrix(o, "W_fx", self.W_fx, (None, nx))
        nf = W_fx.shape[0]
        W_gx = as_matrix(o, "W_gx", self.W_gx, (None, nx))
        ng = W_gx.shape[0]
        vals = {
            "A": A, "B": B, "C": C, "D": as_matrix(o, "D", self.D, (ny, nu)),
            "W_fx": W_fx, "W_fu": as_matrix(o, "W_fu", self.W_fu, (nf, nu)),
            "b_f": as_matrix(o, "b_f", self.b_f, (nf,)), "W_x": as_matrix(o, "W_x", self.W_x, (nx, nf)),
            "b_x": as_matrix(o, "b_x", self.b_x, (nx,)),
            "W_gx": W_gx, "W_gu": as_matrix(o, "W_gu", self.W_gu, (ng, nu)),
            "b_g": as_matrix(o, "b_g", self.b_g, (ng,)), "W_y": as_matrix(o, "W_y", self.W_y, (ny, ng)),
            "b_y": as_matrix(o, "b_y", self.b_y, (ny,)),
        }
        for k, v in vals.items():
            object.__setattr__(self, k, v)
        check_activation(o, self.activation)

    @property
    def linear(self) -> bool:
        return bool(np.any(self.A) or np.any(self.B) or np.any(self.C) or np.any(self.D))

    @property
    def n_in(self) -> int:
        return self.B.shape[1]

    @property
    def n_state(self) -> int:
        return self.A.shape[0]

    @property
    def n_out(self) -> int:
        return self.C.shape[0]

    def step(self, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        act = ACTIVATIONS[self.activation]
        pf = act(x @ self.W_fx.T + u @ self.W_fu.T + self.b_f)
        pg = act(x @ self.W_gx.T + u @ self.W_gu.T + self.b_g)
        x_next = x @ self.A.T + u @ self.B.T + pf @ self.W_x.T + self.b_x
        y = x @ self.C.T + u @ self.D.T + pg @ self.W_y.T + self.b_y
        return x_next, y

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "variant": "gR-SS-NN" if self.linear else "SS-NN",
            "n_in": self.n_in,
            "n_state": self.n_state,
            "n_out": self.n_out,
            "neurons_state": self.W_fx.shape[0],
            "neurons_output": self.W_gx.shape[0],
            "activation": self.activation,
        }
