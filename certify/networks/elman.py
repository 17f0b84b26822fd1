"""Elman (vanilla) RNN layer: ``h⁺ = φ(W u + U h + b)`` with φ = tanh or relu (docs/theory.md §8.3).

``b`` is the sum of PyTorch's ``b_ih + b_hh`` (ONNX ``Wb + Rb``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from certify.networks.base import ACTIVATIONS, as_matrix, check_activation


@dataclass(frozen=True)
class ElmanLayer:
    """One Elman RNN layer.

    >>> layer = ElmanLayer(W=[[1.0]], U=[[0.5]], b=[0.0])
    >>> h, out = layer.step(np.zeros(1), np.ones(1))
    >>> round(float(h[0]), 6)
    0.761594
    """

    W: np.ndarray
    U: np.ndarray
    b: np.ndarray
    activation: str = "tanh"

    kind: ClassVar[str] = "elman"

    def __post_init__(self) -> None:
        W = as_matrix("ElmanLayer", "W", self.W, (None, None))
        H = W.shape[0]
        object.__setattr__(self, "W", W)
        object.__setattr__(self, "U", as_matrix("ElmanLayer", "U", self.U, (H, H)))
        object.__setattr__(self, "b", as_matrix("ElmanLayer", "b", self.b, (H,)))
        if self.activation not in ("tanh", "relu"):
            check_activation("ElmanLayer", self.activation)
            from certify.errors import WeightError

            raise WeightError(f"ElmanLayer: activation {self.activation!r} is not supported; use tanh or relu.")

    @property
    def n_in(self) -> int:
        return self.W.shape[1]

    @property
    def n_state(self) -> int:
        return self.W.shape[0]

    @property
    def n_out(self) -> int:
        return self.W.shape[0]

    def step(self, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = ACTIVATIONS[self.activation](u @ self.W.T + x @ self.U.T + self.b)
        return h, h

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "n_in": self.n_in, "hidden": self.n_state, "activation": self.activation}
