"""Scalar static nonlinearities ("channels") of a SNOF, with their slope/sector/odd properties.

A channel evaluates ``φ(q) = out_gain · (base(in_gain · q + q_offset) − p_offset) − lin · q`` where
``base`` is one of the elementary activations.  The affine wrapper is what loop transformations
produce (docs/theory.md §4.1 sigmoid→tanh rescaling, §4.2 slope normalisation, §4.3 equilibrium shift).

The properties the LMI relies on (``slope``, ``sector``, ``odd``) are *computed* from that description
and cannot be set by hand, so a channel can never claim a tighter class than its function obeys.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from certify.errors import InvalidInputError
from certify.networks.base import sigmoid

#: slope interval of each elementary function (docs/theory.md §1, "Channels")
BASE_SLOPES: dict[str, tuple[float, float]] = {
    "tanh": (0.0, 1.0),
    "sigmoid": (0.0, 0.25),
    "relu": (0.0, 1.0),
    "saturation": (0.0, 1.0),
}


def _base(kind: str, v: np.ndarray, limits: tuple[float, float] | None) -> np.ndarray:
    if kind == "tanh":
        return np.tanh(v)
    if kind == "sigmoid":
        return sigmoid(np.asarray(v, dtype=np.float64))
    if kind == "relu":
        return np.maximum(v, 0.0)
    assert limits is not None
    return np.clip(v, limits[0], limits[1])


@dataclass(frozen=True)
class Channel:
    """One diagonal entry ``p_i = φ_i(q_i)`` of the SNOF nonlinearity.

    Parameters
    ----------
    kind : str
        ``"tanh"``, ``"sigmoid"``, ``"relu"`` or ``"saturation"``.
    limits : (float, float) or None
        ``(low, high)`` of a saturation (required for ``kind="saturation"``).
    in_gain, q_offset, p_offset, out_gain, lin : float
        Affine wrapper, ``φ(q) = out_gain·(base(in_gain·q + q_offset) − p_offset) − lin·q``.

    Attributes (computed)
    ---------------------
    slope : (float, float)
        Interval that contains every difference quotient of φ.
    sector : (float, float) or None
        Sector bound of φ (``None`` when φ(0) ≠ 0, where no sector bound holds).
    odd : bool
        Whether φ(−q) = −φ(q) for all q.

    >>> Channel("tanh").slope, Channel("tanh").odd
    ((0.0, 1.0), True)
    >>> Channel("sigmoid").sector is None
    True
    """

    kind: str
    limits: tuple[float, float] | None = None
    in_gain: float = 1.0
    q_offset: float = 0.0
    p_offset: float = 0.0
    out_gain: float = 1.0
    lin: float = 0.0
    slope: tuple[float, float] = field(init=False)
    sector: tuple[float, float] | None = field(init=False)
    odd: bool = field(init=False)
    #: tightened slope interval of the base function, valid only for base arguments in ``region``
    #: (absorbing-set tightening, :meth:`with_slopes`); ``None``: the global ``BASE_SLOPES``
    base_slopes: tuple[float, float] | None = None
    #: interval of the base argument ``in_gain·q + q_offset`` on which ``base_slopes`` holds
    region: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.kind not in BASE_SLOPES:
            raise InvalidInputError(
                f"Channel: nonlinearity {self.kind!r} is not supported; supported: {', '.join(sorted(BASE_SLOPES))}."
            )
        nums = (self.in_gain, self.q_offset, self.p_offset, self.out_gain, self.lin)
        if not all(np.isfinite(v) for v in nums):
            raise InvalidInputError(f"Channel {self.kind}: gains and offsets must be finite, got {nums}.")
        if self.kind == "saturation":
            if self.limits is None or not (np.isfinite(self.limits[0]) and np.isfinite(self.limits[1])):
                raise InvalidInputError("Channel saturation: finite limits (low, high) are required.")
            if not self.limits[0] < self.limits[1]:
                raise InvalidInputError(f"Channel saturation: low must be < high, got {self.limits}.")
            object.__setattr__(self, "limits", (float(self.limits[0]), float(self.limits[1])))
        elif self.limits is not None:
            raise InvalidInputError(f"Channel {self.kind}: limits only apply to saturation.")
        lo, hi = BASE_SLOPES[self.kind]
        if self.base_slopes is not None:
            b_lo, b_hi = (float(v) for v in self.base_slopes)
            if self.region is None or not (lo <= b_lo <= b_hi <= hi):
                raise InvalidInputError(
                    f"Channel {self.kind}: base_slopes {self.base_slopes} must lie in {(lo, hi)} and need a region."
                )
            object.__setattr__(self, "base_slopes", (b_lo, b_hi))
            object.__setattr__(self, "region", (float(self.region[0]), float(self.region[1])))
            lo, hi = b_lo, b_hi
        g = self.out_gain * self.in_gain
        s = (g * lo - self.lin, g * hi - self.lin) if g >= 0 else (g * hi - self.lin, g * lo - self.lin)
        object.__setattr__(self, "slope", (float(s[0]), float(s[1])))
        at0 = float(self.evaluate(np.zeros(1))[0])
        object.__setattr__(self, "sector", (float(s[0]), float(s[1])) if at0 == 0.0 else None)
        base_odd = self.kind == "tanh" or (
            self.kind == "saturation" and self.limits is not None and self.limits[0] == -self.limits[1]
        )
        odd = base_odd and self.q_offset == 0.0 and self.p_offset == 0.0 and self.base_slopes is None
        object.__setattr__(self, "odd", bool(odd))

    @property
    def K(self) -> float:
        """Width of the slope interval (``slope[1] − slope[0]``)."""
        return self.slope[1] - self.slope[0]

    def evaluate(self, q: np.ndarray) -> np.ndarray:
        """φ(q), elementwise.

        >>> float(Channel("saturation", limits=(-1.0, 2.0)).evaluate(np.array([5.0]))[0])
        2.0
        """
        q = np.asarray(q, dtype=np.float64)
        v = self.in_gain * q + self.q_offset
        return self.out_gain * (_base(self.kind, v, self.limits) - self.p_offset) - self.lin * q

    def shifted(self, q_star: float) -> Channel:
        """``ψ(δ) = φ(q* + δ) − φ(q*)`` (theory §4.3): same slope bounds, ψ(0) = 0.

        >>> ch = Channel("tanh").shifted(0.5)
        >>> float(ch.evaluate(np.zeros(1))[0]), ch.odd
        (0.0, False)
        """
        new_q_off = self.q_offset + self.in_gain * q_star
        # φ(q*+δ) − φ(q*) = og·(base(ig δ + new_q_off) − base(new_q_off)) − lin δ
        base_star = float(_base(self.kind, np.array([new_q_off]), self.limits)[0])
        return replace(self, q_offset=new_q_off, p_offset=base_star)

    def with_slopes(self, lo: float, hi: float, region: tuple[float, float]) -> Channel:
        """The same function with the base slope interval ``[lo, hi]``, valid only on ``region``.

        ``region`` is an interval of the base argument ``v = in_gain·q + q_offset`` on which the base
        function's derivative lies in ``[lo, hi]`` (e.g. ``tanh' = sech² ≥ sech²(3)`` on ``[−3, 3]``).
        The LMI then treats the channel as slope-restricted in the tightened class; a certificate is
        valid only for trajectories whose pre-activations stay in the region (absorbing-set
        tightening, docs/theory.md §6.1).  Oddness is dropped: the odd term would need ``−q`` in the
        region too.  Shifts and slope normalisation keep the declaration (they keep ``v``).

        >>> ch = Channel("tanh").with_slopes(0.25, 1.0, (-1.3, 1.3))
        >>> ch.slope, ch.odd
        ((0.25, 1.0), False)
        """
        return replace(self, base_slopes=(float(lo), float(hi)), region=(float(region[0]), float(region[1])))

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {"kind": self.kind, "slope": list(self.slope), "odd": self.odd,
                                  "sector": None if self.sector is None else list(self.sector)}
        if self.region is not None:
            out["region"] = list(self.region)
        return out


def evaluate_channels(channels: tuple[Channel, ...], q: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
    """Apply channels ``idx`` (default all) to the last axis of ``q`` (one column per channel).

    >>> evaluate_channels((Channel("relu"), Channel("tanh")), np.array([[-1.0, 0.0]])).tolist()
    [[0.0, 0.0]]
    """
    ids = np.arange(len(channels)) if idx is None else np.asarray(idx)
    out = np.empty_like(np.asarray(q, dtype=np.float64))
    groups: dict[Channel, list[int]] = {}
    for j, i in enumerate(ids):
        groups.setdefault(channels[int(i)], []).append(j)
    for ch, cols in groups.items():
        out[..., cols] = ch.evaluate(q[..., cols])
    return out
