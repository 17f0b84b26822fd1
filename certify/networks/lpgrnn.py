"""LP-GRNN layer (Luré–Postnikov gated RNN), as reconstructed in docs/theory.md

The paper's equations (Hilgert & Schwung 2025, eq. 12) could not be read; this is the documented
reconstruction certify implements: an *affine* update with a fixed update vector and a reset-type
gate that enters additively (no Hadamard product between two signals)::

    r  = σ(W_r u + U_r h + b_r)                 gate, n_r channels
    ĥ  = tanh(W_h u + U_h h + V_h r + b_h)      candidate
    h⁺ = z ∘ h + (1 − z) ∘ ĥ                    z: fixed trainable vector (z = σ(θ_z) in training)

The layer's output is ``h⁺``.  With z in (0, 1)ⁿ the linear part ``A = diag(z)`` is Schur.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from certify.networks.base import as_matrix, sigmoid


@dataclass(frozen=True)
class LPGRNNLayer:
    """One LP-GRNN layer; see the module docstring.

    >>> import numpy as np
    >>> n, nr, m = 2, 1, 1
    >>> layer = LPGRNNLayer(W_r=np.zeros((nr, m)), U_r=np.zeros((nr, n)), b_r=np.zeros(nr),
    ...                     W_h=np.ones((n, m)), U_h=np.zeros((n, n)), V_h=np.zeros((n, nr)),
    ...                     b_h=np.zeros(n), z=np.full(n, 0.5))
    >>> h, out = layer.step(np.zeros(n), np.ones(m))
    >>> np.allclose(h, 0.5 * np.tanh(1.0))
    True
    """

    W_r: np.ndarray
    U_r: np.ndarray
    b_r: np.ndarray
    W_h: np.ndarray
    U_h: np.ndarray
    V_h: np.ndarray
    b_h: np.ndarray
    z: np.ndarray

    kind: ClassVar[str] = "lpgrnn"

    def __post_init__(self) -> None:
        W_h = as_matrix("LPGRNNLayer", "W_h", self.W_h, (None, None))
        n, m = W_h.shape
        W_r = as_matrix("LPGRNNLayer", "W_r", self.W_r, (None, m))
        nr = W_r.shape[0]
        object.__setattr__(self, "W_h", W_h)
        object.__setattr__(self, "W_r", W_r)
        object.__setattr__(self, "U_r", as_matrix("LPGRNNLayer", "U_r", self.U_r, (nr, n)))
        object.__setattr__(self, "b_r", as_matrix("LPGRNNLayer", "b_r", self.b_r, (nr,)))
        object.__setattr__(self, "U_h", as_matrix("LPGRNNLayer", "U_h", self.U_h, (n, n)))
        object.__setattr__(self, "V_h", as_matrix("LPGRNNLayer", "V_h", self.V_h, (n, nr)))
        object.__setattr__(self, "b_h", as_matrix("LPGRNNLayer", "b_h", self.b_h, (n,)))
        object.__setattr__(self, "z", as_matrix("LPGRNNLayer", "z", self.z, (n,)))

    @property
    def n_in(self) -> int:
        return self.W_h.shape[1]

    @property
    def n_state(self) -> int:
        return self.W_h.shape[0]

    @property
    def n_out(self) -> int:
        return self.W_h.shape[0]

    @property
    def n_gate(self) -> int:
        return self.W_r.shape[0]

    def step(self, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = sigmoid(u @ self.W_r.T + x @ self.U_r.T + self.b_r)
        cand = np.tanh(u @ self.W_h.T + x @ self.U_h.T + r @ self.V_h.T + self.b_h)
        h = self.z * x + (1.0 - self.z) * cand
        return h, h

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "n_in": self.n_in, "hidden": self.n_state, "gate_channels": self.n_gate}
