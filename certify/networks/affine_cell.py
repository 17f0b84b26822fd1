"""A generic one-step cell made of affine maps and elementwise activations (a named SNOF).

This is what a one-step ONNX cell graph (inputs u, x; outputs x⁺, y) compiles to: every
activation node becomes one channel per element, and all affine operators compose into::

    q  = C_q x + D_qp p + D_qu u + b_q          p = φ(q), channel i uses activations[i]
    x⁺ = A x + B_p p + B_u u + b_x
    y  = C_y x + D_yp p + D_yu u + b_y

``D_qp`` must be strictly lower triangular (channels in evaluation order), so the cell is
explicit and always well-posed.  The output depends on the current state ``x(k)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from certify.errors import WeightError
from certify.networks.base import ACTIVATIONS, as_matrix, check_activation


@dataclass(frozen=True)
class AffineCell:
    """Affine + elementwise-activation cell; see the module docstring.

    >>> import numpy as np
    >>> cell = AffineCell(A=[[0.5]], B_p=[[1.0]], B_u=[[0.0]], b_x=[0.0], C_q=[[1.0]], D_qp=[[0.0]],
    ...                   D_qu=[[0.0]], b_q=[0.0], C_y=[[1.0]], D_yp=[[0.0]], D_yu=[[0.0]], b_y=[0.0],
    ...                   activations=("tanh",))
    >>> x, y = cell.step(np.ones(1), np.zeros(1))
    >>> round(float(x[0]), 6), float(y[0])
    (1.261594, 1.0)
    """

    A: np.ndarray
    B_p: np.ndarray
    B_u: np.ndarray
    b_x: np.ndarray
    C_q: np.ndarray
    D_qp: np.ndarray
    D_qu: np.ndarray
    b_q: np.ndarray
    C_y: np.ndarray
    D_yp: np.ndarray
    D_yu: np.ndarray
    b_y: np.ndarray
    activations: tuple[str, ...]

    kind: ClassVar[str] = "affine_cell"

    def __post_init__(self) -> None:
        o = "AffineCell"
        A = as_matrix(o, "A", self.A, (None, None))
        n = A.shape[0]
        A = as_matrix(o, "A", A, (n, n))
        acts = tuple(self.activations)
        m = len(acts)
        B_u = as_matrix(o, "B_u", self.B_u, (n, None))
        nu = B_u.shape[1]
        C_y = as_matrix(o, "C_y", self.C_y, (None, n))
        ny = C_y.shape[0]
        vals = {
            "A": A, "B_p": as_matrix(o, "B_p", self.B_p, (n, m)), "B_u": B_u,
            "b_x": as_matrix(o, "b_x", self.b_x, (n,)),
            "C_q": as_matrix(o, "C_q", self.C_q, (m, n)), "D_qp": as_matrix(o, "D_qp", self.D_qp, (m, m)),
            "D_qu": as_matrix(o, "D_qu", self.D_qu, (m, nu)), "b_q": as_matrix(o, "b_q", self.b_q, (m,)),
            "C_y": C_y, "D_yp": as_matrix(o, "D_yp", self.D_yp, (ny, m)),
            "D_yu": as_matrix(o, "D_yu", self.D_yu, (ny, nu)), "b_y": as_matrix(o, "b_y", self.b_y, (ny,)),
        }
        if np.any(np.triu(vals["D_qp"]) != 0.0):
            raise WeightError(
                "AffineCell: D_qp must be strictly lower triangular (channels in evaluation order); "
                "an implicit activation loop is not a feed-forward cell."
            )
        for k, v in vals.items():
            object.__setattr__(self, k, v)
        for a in acts:
            check_activation(o, a)
        object.__setattr__(self, "activations", acts)

    @property
    def n_in(self) -> int:
        return self.B_u.shape[1]

    @property
    def n_state(self) -> int:
        return self.A.shape[0]

    @property
    def n_out(self) -> int:
        return self.C_y.shape[0]

    @property
    def n_channels(self) -> int:
        return len(self.activations)

    def channels(self, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pre-activations q and activations p, solved by forward substitution."""
        base = x @ self.C_q.T + u @ self.D_qu.T + self.b_q
        m = self.n_channels
        q = np.array(base, dtype=np.float64, copy=True)
        p = np.zeros_like(q)
        for i in range(m):
            if i:
                q[..., i] = base[..., i] + p[..., :i] @ self.D_qp[i, :i]
            p[..., i] = ACTIVATIONS[self.activations[i]](q[..., i : i + 1])[..., 0]
        return q, p

    def step(self, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _, p = self.channels(x, u)
        x_next = x @ self.A.T + p @ self.B_p.T + u @ self.B_u.T + self.b_x
        y = x @ self.C_y.T + p @ self.D_yp.T + u @ self.D_yu.T + self.b_y
        return x_next, y

    def describe(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for a in self.activations:
            counts[a] = counts.get(a, 0) + 1
        return {
            "kind": self.kind,
            "n_in": self.n_in,
            "n_state": self.n_state,
            "n_out": self.n_out,
            "channels": counts,
        }
