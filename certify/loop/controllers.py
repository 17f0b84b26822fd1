"""Saturated discrete PI controllers (docs/theory.md).

Two forms, both with the saturation ``sat(v) = min(max(v, u_min), u_max)`` as a slope-[0, 1] channel:

velocity (incremental, anti-windup), state ``[u(k−1), e(k−1)]``::

    v(k) = u(k−1) + K_p (e(k) − e(k−1)) + K_i T_s e(k),    u(k) = sat(v(k))

positional, state ``[ξ, u(k−1)]`` (ξ the integral of e; u(k−1) only delays the output)::

    u(k) = sat(u_bias + K_p e(k) + K_i ξ(k)),              ξ(k+1) = ξ(k) + T_s e(k)

The positional form keeps an open integrator when the saturation is flat (slope 0 is in the class),
so no global sector/slope certificate can exist for it (docs/theory.md §9); the velocity form avoids that.
Gains are those of ``C(s) = K_p + K_i/s`` discretised exactly by ZOH (``K_i T_s/(z − 1)``, docs/theory.md §6).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from certify.errors import LoopSpecError

FORMS = ("velocity", "positional")


@dataclass(frozen=True)
class PIController:
    """A saturated discrete PI controller acting on ``e = r − ŷ``.

    >>> pi = PIController(kp=0.5, ki=0.1, Ts=1.0, u_min=0.0, u_max=2.0)
    >>> s = pi.initial_state(u=1.0, e=0.0)
    >>> s, u = pi.step(s, 1.0)
    >>> round(u, 6)
    1.6
    """

    kp: float
    ki: float
    Ts: float
    u_min: float = -np.inf
    u_max: float = np.inf
    form: str = "velocity"
    u_bias: float = 0.0

    def __post_init__(self) -> None:
        for k in ("kp", "ki", "Ts", "u_min", "u_max", "u_bias"):
            v = getattr(self, k)
            if not isinstance(v, (int, float, np.floating)) or isinstance(v, bool) or np.isnan(v):
                raise LoopSpecError(f"PI controller: {k} must be a number, got {v!r}.")
            object.__setattr__(self, k, float(v))
        if self.form not in FORMS:
            raise LoopSpecError(f"PI controller: form {self.form!r} is unknown; use one of {', '.join(FORMS)}.")
        if not (np.isfinite(self.Ts) and self.Ts > 0):
            raise LoopSpecError("PI controller: Ts must be positive.")
        if not np.isfinite(self.kp) or not np.isfinite(self.ki):
            raise LoopSpecError("PI controller: kp and ki must be finite.")
        if self.u_min >= self.u_max:
            raise LoopSpecError(f"PI controller: u_min ({self.u_min}) must be below u_max ({self.u_max}).")

    @property
    def n_states(self) -> int:
        return 2

    def u_prev(self, state: np.ndarray) -> float:
        """The previous output u(k−1) held in the state (what a causal soft sensor may read)."""
        return float(state[0] if self.form == "velocity" else state[1])

    def sat(self, v: float) -> float:
        return float(min(max(v, self.u_min), self.u_max))

    def initial_state(self, u: float = 0.0, e: float = 0.0) -> np.ndarray:
        """State that outputs ``u`` for error ``e`` (bumpless start)."""
        if self.form == "velocity":
            return np.array([u, e], dtype=np.float64)
        if self.ki == 0.0:
            return np.array([0.0, u])
        return np.array([(u - self.u_bias - self.kp * e) / self.ki, u])

    def step(self, state: np.ndarray, e: float) -> tuple[np.ndarray, float]:
        """Return ``(next_state, u(k))`` for the error ``e(k)``."""
        if self.form == "velocity":
            u_prev, e_prev = float(state[0]), float(state[1])
            u = self.sat(u_prev + self.kp * (e - e_prev) + self.ki * self.Ts * e)
            return np.array([u, e]), u
        xi = float(state[0])
        u = self.sat(self.u_bias + self.kp * e + self.ki * xi)
        return np.array([xi + self.Ts * e, u]), u

    def describe(self) -> dict[str, Any]:
        return {
            "type": "pi",
            "form": self.form,
            "kp": self.kp,
            "ki": self.ki,
            "Ts": self.Ts,
            "u_min": self.u_min if np.isfinite(self.u_min) else None,
            "u_max": self.u_max if np.isfinite(self.u_max) else None,
        }
