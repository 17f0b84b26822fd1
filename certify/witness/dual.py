"""Forward-mode derivatives over two number systems: float64 (batched search) and Arb balls (proofs).

A :class:`Dual` carries a value and its Jacobian (the *tangent*) with respect to a fixed set of
variables.  The layer maps in :mod:`certify.witness.layers` are written once against a small
operations object (:class:`FloatOps` or :class:`ArbOps`) and therefore give, from the same source,

* batched float64 values and Jacobians for the Newton search (``val`` of shape ``(b, k)``,
  ``tan`` of shape ``(b, k, q)``), and
* rigorous enclosures in ball arithmetic (Arb, through python-flint: every operation, ``exp`` and
  ``tanh`` included, returns a ball proved to contain the exact real result) for the interval
  Newton / Krawczyk proofs (``val`` an object array of ``arb`` of shape ``(k,)``, ``tan`` ``(k, q)``).

Weights are float64 numbers and are used as the exact rationals they represent.

>>> import numpy as np
>>> ops = FloatOps()
>>> x = Dual(np.array([[0.5]]), np.ones((1, 1, 1)))
>>> y = ops.act("tanh", x * 2.0)
>>> round(float(y.val[0, 0]), 6), round(float(y.tan[0, 0, 0]), 6)
(0.761594, 0.839949)
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _add(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def _scale(t: Any, s: Any) -> Any:
    """Rows of the tangent ``t`` scaled by ``s`` (``diag(s) t``)."""
    if t is None:
        return None
    s = np.asarray(s) if not isinstance(s, np.ndarray) else s
    if s.ndim == 0:
        return t * s
    return t * s[..., None]


class Dual:
    """A value with its tangent (``None``: derivative zero).  ``+``, ``-`` and ``*`` are elementwise.

    >>> import numpy as np
    >>> a = Dual(np.array([2.0]), np.array([[1.0, 0.0]]))
    >>> b = Dual(np.array([3.0]), np.array([[0.0, 1.0]]))
    >>> (a * b).tan.tolist()
    [[3.0, 2.0]]
    """

    __slots__ = ("val", "tan")
    __array_ufunc__ = None  # ``ndarray * Dual`` defers to ``Dual.__rmul__``

    def __init__(self, val: Any, tan: Any = None):
        self.val = val
        self.tan = tan

    def __add__(self, o: Any) -> Dual:
        if isinstance(o, Dual):
            return Dual(self.val + o.val, _add(self.tan, o.tan))
        return Dual(self.val + o, self.tan)

    __radd__ = __add__

    def __neg__(self) -> Dual:
        return Dual(-self.val, None if self.tan is None else -self.tan)

    def __sub__(self, o: Any) -> Dual:
        return self + (-o)

    def __rsub__(self, o: Any) -> Dual:
        return (-self) + o

    def __mul__(self, o: Any) -> Dual:
        if isinstance(o, Dual):
            return Dual(self.val * o.val, _add(_scale(self.tan, o.val), _scale(o.tan, self.val)))
        return Dual(self.val * o, _scale(self.tan, o))

    __rmul__ = __mul__

    def part(self, sl: slice) -> Dual:
        """The entries ``sl`` of the value (last axis) with their tangent rows."""
        return Dual(self.val[..., sl], None if self.tan is None else self.tan[..., sl, :])

    @staticmethod
    def concat(parts: list[Dual]) -> Dual:
        val = np.concatenate([p.val for p in parts], axis=-1)
        if all(p.tan is None for p in parts):
            return Dual(val, None)
        q = next(p.tan for p in parts if p.tan is not None).shape[-1]
        tans = [p.tan if p.tan is not None else _zeros_like_tan(p.val, q) for p in parts]
        return Dual(val, np.concatenate(tans, axis=-2))


def _zeros_like_tan(val: np.ndarray, q: int) -> np.ndarray:
    if val.dtype == object:
        from flint import arb

        out = np.empty(val.shape + (q,), dtype=object)
        out.fill(arb(0))
        return out
    return np.zeros(val.shape + (q,))


def _sigmoid_pair(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(σ(v), σ(−v))`` from one ``exp``: ``1/(1 + e)`` and ``e/(1 + e)`` with ``e = exp(−|v|)``, the same
    float64 operations as evaluating each side apart (``exp(−v)`` for ``v ≥ 0``, ``exp(v)`` below)."""
    e = np.exp(-np.abs(v))
    d = 1.0 + e
    a, b = 1.0 / d, e / d
    pos = v >= 0
    return np.where(pos, a, b), np.where(v <= 0, a, b)


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return _sigmoid_pair(v)[0]


class FloatOps:
    """float64 operations on batched :class:`Dual` values (``val`` shape ``(b, k)``)."""

    def lin(self, M: np.ndarray, a: Dual) -> Dual:
        """``M a`` for a float matrix ``M``."""
        return Dual(a.val @ M.T, None if a.tan is None else np.matmul(M, a.tan))

    def act(self, name: str, a: Dual) -> Dual:
        v = a.val
        if name == "tanh":
            y = np.tanh(v)
            if a.tan is None:
                return Dual(y, None)
            d = 1.0 - y * y
        elif name == "sigmoid":
            y, y_neg = _sigmoid_pair(v)
            if a.tan is None:
                return Dual(y, None)
            d = y * y_neg
        elif name == "relu":
            y = np.maximum(v, 0.0)
            d = (v > 0).astype(np.float64)
        else:  # pragma: no cover - activations are validated by the layers
            raise ValueError(f"unknown activation {name!r}")
        return Dual(y, None if a.tan is None else a.tan * d[..., None])

    def clip(self, a: Dual, low: np.ndarray, high: np.ndarray) -> Dual:
        """Saturation to ``[low, high]`` (per entry; infinite limits allowed)."""
        y = np.clip(a.val, low, high)
        d = ((a.val > low) & (a.val < high)).astype(np.float64)
        return Dual(y, _scale(a.tan, d))

    def const(self, v: Any) -> np.ndarray:
        return np.asarray(v, dtype=np.float64)


class ArbOps:
    """Ball-arithmetic operations (python-flint ``arb``) on unbatched :class:`Dual` values."""

    def __init__(self) -> None:
        self._mats: dict[int, tuple[np.ndarray, Any]] = {}

    def matrix(self, M: np.ndarray) -> Any:
        """``M`` as an exact ``arb_mat`` (cached per array)."""
        from flint import arb_mat

        key = id(M)
        hit = self._mats.get(key)
        if hit is None or hit[0] is not M:
            hit = (M, arb_mat(M.shape[0], M.shape[1], [float(v) for v in M.ravel()]))
            self._mats[key] = hit
        return hit[1]

    def lin(self, M: np.ndarray, a: Dual) -> Dual:
        from flint import arb_mat

        Mm = self.matrix(M)
        k, m = M.shape
        val = np.array((Mm * arb_mat(m, 1, list(a.val))).entries(), dtype=object)
        tan = None
        if a.tan is not None:
            q = a.tan.shape[-1]
            tan = np.array((Mm * arb_mat(m, q, list(a.tan.ravel()))).entries(), dtype=object).reshape(k, q)
        return Dual(val, tan)

    def act(self, name: str, a: Dual) -> Dual:
        from flint import arb

        if name == "tanh":
            y = [x.tanh() for x in a.val]
            d = [x.sech() ** 2 for x in a.val]  # tanh' = sech², no cancellation
        elif name == "sigmoid":
            y = [1 / (1 + (-x).exp()) for x in a.val]
            d = [yi / (1 + x.exp()) for x, yi in zip(a.val, y)]  # σ(x) σ(−x)
        elif name == "relu":
            y, d = [], []
            for x in a.val:
                if x > 0:
                    y.append(x)
                    d.append(arb(1))
                elif x < 0:
                    y.append(arb(0))
                    d.append(arb(0))
                else:  # the ball meets the kink: value in [0, x⁺], slope in [0, 1]
                    y.append(arb(0).union(x.upper()) if x.upper() > 0 else arb(0))
                    d.append(arb(0).union(arb(1)))
        else:  # pragma: no cover
            raise ValueError(f"unknown activation {name!r}")
        return Dual(np.array(y, dtype=object), _scale(a.tan, np.array(d, dtype=object)))

    def clip(self, a: Dual, low: np.ndarray, high: np.ndarray) -> Dual:
        """Saturation to ``[low, high]``: exact inside, constant outside, the hull where a ball meets a limit."""
        from flint import arb

        y, d = [], []
        for x, lo, hi in zip(a.val, low, high):
            lo_a = arb(float(lo)) if np.isfinite(lo) else None
            hi_a = arb(float(hi)) if np.isfinite(hi) else None
            below = lo_a is not None and x.upper() < lo_a
            above = hi_a is not None and x.lower() > hi_a
            inside = (lo_a is None or x.lower() > lo_a) and (hi_a is None or x.upper() < hi_a)
            if below:
                y.append(lo_a)
                d.append(arb(0))
            elif above:
                y.append(hi_a)
                d.append(arb(0))
            elif inside:
                y.append(x)
                d.append(arb(1))
            else:  # the ball meets a limit: the values between the clipped end points, slope in [0, 1]
                ends = [x.lower(), x.upper()]  # clip is monotone: its range is [clip(low end), clip(high end)]
                if lo_a is not None:
                    ends = [lo_a if e < lo_a else e for e in ends]
                if hi_a is not None:
                    ends = [hi_a if e > hi_a else e for e in ends]
                y.append(ends[0].union(ends[1]))
                d.append(arb(0).union(arb(1)))
        return Dual(np.array(y, dtype=object), _scale(a.tan, np.array(d, dtype=object)))

    def const(self, v: Any) -> np.ndarray:
        from flint import arb

        return np.array([arb(float(x)) for x in np.asarray(v, dtype=np.float64).ravel()], dtype=object)
