"""LSTM layer without peepholes or projection (docs/theory.md §8).

Equations (gate names follow PyTorch; the state vector of the layer is ``[h; c]``)::

    i  = σ(W_i u + U_i h + b_i)       f = σ(W_f u + U_f h + b_f)
    g  = tanh(W_g u + U_g h + b_g)    o = σ(W_o u + U_o h + b_o)
    c⁺ = f ∘ c + i ∘ g
    h⁺ = o ∘ tanh(c⁺)                 the layer's output is h⁺

Terzi/Bonassi names: cell x = c, hidden ξ = h, W_c/U_c = W_g/U_g.  Biases are the sums of the
input and recurrent biases (they are outside every product, so they simply add).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from certify.networks.base import as_matrix, sigmoid

_GATES = ("i", "f", "g", "o")


@dataclass(frozen=True)
class LSTMLayer:
    """One LSTM layer; state ``[h; c]`` of size 2H.

    >>> import numpy as np
    >>> H, m = 2, 1
    >>> z = np.zeros
    >>> layer = LSTMLayer(*(z((H, m)),) * 4, *(z((H, H)),) * 4, *(z(H),) * 4)
    >>> x, h = layer.step(np.zeros(2 * H), np.ones(m))
    >>> x.shape, float(abs(h).max())
    ((4,), 0.0)
    """

    W_i: np.ndarray
    W_f: np.ndarray
    W_g: np.ndarray
    W_o: np.ndarray
    U_i: np.ndarray
    U_f: np.ndarray
    U_g: np.ndarray
    U_o: np.ndarray
    b_i: np.ndarray
    b_f: np.ndarray
    b_g: np.ndarray
    b_o: np.ndarray

    kind: ClassVar[str] = "lstm"

    def __post_init__(self) -> None:
        W_i = as_matrix("LSTMLayer", "W_i", self.W_i, (None, None))
        H, m = W_i.shape
        for gate in _GATES:
            object.__setattr__(self, f"W_{gate}", as_matrix("LSTMLayer", f"W_{gate}", getattr(self, f"W_{gate}"), (H, m)))
            object.__setattr__(self, f"U_{gate}", as_matrix("LSTMLayer", f"U_{gate}", getattr(self, f"U_{gate}"), (H, H)))
            object.__setattr__(self, f"b_{gate}", as_matrix("LSTMLayer", f"b_{gate}", getattr(self, f"b_{gate}"), (H,)))

    @property
    def hidden(self) -> int:
        return self.W_i.shape[0]

    @property
    def n_in(self) -> int:
        return self.W_i.shape[1]

    @property
    def n_state(self) -> int:
        return 2 * self.hidden

    @property
    def n_out(self) -> int:
        return self.hidden

    def step(self, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        H = self.hidden
        h, c = x[..., :H], x[..., H:]
        i = sigmoid(u @ self.W_i.T + h @ self.U_i.T + self.b_i)
        f = sigmoid(u @ self.W_f.T + h @ self.U_f.T + self.b_f)
        g = np.tanh(u @ self.W_g.T + h @ self.U_g.T + self.b_g)
        o = sigmoid(u @ self.W_o.T + h @ self.U_o.T + self.b_o)
        c_next = f * c + i * g
        h_next = o * np.tanh(c_next)
        return np.concatenate([h_next, c_next], axis=-1), h_next

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "n_in": self.n_in, "hidden": self.hidden, "state_layout": "[h; c]"}
