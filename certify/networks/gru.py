"""GRU layer with an explicit reset convention (docs/theory.md §8).

Equations (u: layer input, h: state; gate names follow PyTorch)::

    z  = σ(W_z u + U_z h + b_z)                        update gate
    r  = σ(W_r u + U_r h + b_r)                        reset gate
    reset_after=True  (PyTorch, ONNX linear_before_reset=1):
        n = tanh(W_n u + b_in + r ∘ (U_n h + b_hn))   b_hn stays inside the product
    reset_after=False (Cho / Bonassi, ONNX linear_before_reset=0):
        n = tanh(W_n u + U_n (r ∘ h) + b_in + b_hn)
    h⁺ = z ∘ h + (1 − z) ∘ n

Bonassi's names map as z→z, f→r, candidate r→n, U_r→U_n (docs/theory.md §8.1).  ``b_z`` and ``b_r`` are
the sums of the input and recurrent gate biases; ``b_in`` and ``b_hn`` are kept apart because
folding ``b_hn`` into ``b_in`` is wrong for ``reset_after=True`` (theory §8.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from certify.networks.base import as_matrix, sigmoid


@dataclass(frozen=True)
class GRULayer:
    """One GRU layer; see the module docstring for the equations.

    >>> import numpy as np
    >>> H, m = 2, 1
    >>> z = np.zeros
    >>> layer = GRULayer(W_z=z((H, m)), W_r=z((H, m)), W_n=np.ones((H, m)), U_z=z((H, H)), U_r=z((H, H)),
    ...                  U_n=z((H, H)), b_z=z(H), b_r=z(H), b_in=z(H), b_hn=z(H), reset_after=True)
    >>> h, out = layer.step(np.zeros(H), np.ones(m))
    >>> np.allclose(h, 0.5 * np.tanh(1.0))
    True
    """

    W_z: np.ndarray
    W_r: np.ndarray
    W_n: np.ndarray
    U_z: np.ndarray
    U_r: np.ndarray
    U_n: np.ndarray
    b_z: np.ndarray
    b_r: np.ndarray
    b_in: np.ndarray
    b_hn: np.ndarray
    reset_after: bool = True

    kind: ClassVar[str] = "gru"

    def __post_init__(self) -> None:
        W_z = as_matrix("GRULayer", "W_z", self.W_z, (None, None))
        H, m = W_z.shape
        object.__setattr__(self, "W_z", W_z)
        for name in ("W_r", "W_n"):
            object.__setattr__(self, name, as_matrix("GRULayer", name, getattr(self, name), (H, m)))
        for name in ("U_z", "U_r", "U_n"):
            object.__setattr__(self, name, as_matrix("GRULayer", name, getattr(self, name), (H, H)))
        for name in ("b_z", "b_r", "b_in", "b_hn"):
            object.__setattr__(self, name, as_matrix("GRULayer", name, getattr(self, name), (H,)))
        object.__setattr__(self, "reset_after", bool(self.reset_after))

    @property
    def n_in(self) -> int:
        return self.W_z.shape[1]

    @property
    def n_state(self) -> int:
        return self.W_z.shape[0]

    @property
    def n_out(self) -> int:
        return self.W_z.shape[0]

    def step(self, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = sigmoid(u @ self.W_z.T + x @ self.U_z.T + self.b_z)
        r = sigmoid(u @ self.W_r.T + x @ self.U_r.T + self.b_r)
        if self.reset_after:
            n = np.tanh(u @ self.W_n.T + self.b_in + r * (x @ self.U_n.T + self.b_hn))
        else:
            n = np.tanh(u @ self.W_n.T + (r * x) @ self.U_n.T + self.b_in + self.b_hn)
        h = z * x + (1.0 - z) * n
        return h, h

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "n_in": self.n_in,
            "hidden": self.n_state,
            "reset_after": self.reset_after,
            "convention": "pytorch (linear_before_reset=1)" if self.reset_after else "bonassi/cho (linear_before_reset=0)",
        }
