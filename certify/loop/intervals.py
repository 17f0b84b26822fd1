"""Vector interval arithmetic with float end points, rounded outward (Moore, Kearfott & Cloud 2009).

An interval vector is a pair ``(lo, hi)`` of float64 arrays.  Sums use an exact error-free transformation
and round outward by one ulp where the float sum is inexact; products round outward by one ulp (round to
nearest is within half an ulp); the elementary functions (tanh, the logistic sigmoid and their
derivatives) are evaluated in Arb ball arithmetic (python-flint) at the end points, so every returned
interval contains the exact range of the operation over its arguments.

>>> import numpy as np
>>> a = (np.array([-1.0]), np.array([2.0]))
>>> lo, hi = mul(a, a)
>>> float(lo[0]) <= -2.0 and float(hi[0]) >= 4.0
True
>>> lo, hi = act("tanh", a)
>>> bool(lo[0] <= np.tanh(-1.0) and hi[0] >= np.tanh(2.0))
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from certify.loop.absorbing import _down, _imatvec, _pt, _sum_down, _sum_up, _up

Interval = tuple[np.ndarray, np.ndarray]


def point(v: Any) -> Interval:
    """The degenerate interval ``[v, v]``."""
    a = np.asarray(v, dtype=np.float64).reshape(-1)
    return a.copy(), a.copy()


def add(a: Interval, b: Interval) -> Interval:
    return _sum_down(a[0], b[0]), _sum_up(a[1], b[1])


def neg(a: Interval) -> Interval:
    return -a[1], -a[0]


def sub(a: Interval, b: Interval) -> Interval:
    return add(a, neg(b))


def mul(a: Interval, b: Interval) -> Interval:
    """Elementwise product: min/max of the four end-point products, one ulp outward."""
    c = np.stack([a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1]])
    return np.nextafter(c.min(axis=0), -np.inf), np.nextafter(c.max(axis=0), np.inf)


def scale(c: float, a: Interval) -> Interval:
    return mul(point(np.full(a[0].shape, float(c))), a)


def matvec(M: np.ndarray, a: Interval) -> Interval:
    """The exact range of ``M x`` over the box, rounded outward."""
    M = np.asarray(M, dtype=np.float64)
    if not M.size:
        return np.zeros(M.shape[0]), np.zeros(M.shape[0])
    return _imatvec(M, a[0], a[1])


def affine(terms: list[tuple[np.ndarray, Interval]], b: Any = None) -> Interval:
    """``Σ M_j x_j + b`` over boxes ``x_j`` (each product enclosed separately)."""
    out: Interval | None = None
    for M, x in terms:
        r = matvec(M, x)
        out = r if out is None else add(out, r)
    assert out is not None
    return out if b is None else add(out, point(b))


def hull(a: Interval, b: Interval) -> Interval:
    return np.minimum(a[0], b[0]), np.maximum(a[1], b[1])


def intersect(a: Interval, b: Interval) -> Interval:
    return np.maximum(a[0], b[0]), np.minimum(a[1], b[1])


def _fn(kind: str, x: Any) -> Any:
    if kind == "tanh":
        return x.tanh()
    if kind == "sigmoid":
        return 1 / (1 + (-x).exp())
    if kind == "dtanh":
        return x.sech() ** 2
    if kind == "dsigmoid":
        return 1 / (2 + x.exp() + (-x).exp())
    raise ValueError(kind)


def act(kind: str, a: Interval) -> Interval:
    """Range of the nondecreasing ``tanh`` or ``sigmoid`` over the box (end points in ball arithmetic)."""
    lo = np.array([_down(_fn(kind, _pt(v))) for v in a[0]])
    hi = np.array([_up(_fn(kind, _pt(v))) for v in a[1]])
    return lo, hi


def dact(kind: str, a: Interval) -> Interval:
    """Range of ``tanh'`` or ``σ'`` over the box: both are even and decrease in ``|v|``, so the minimum is at
    an end point and the maximum at the point of the interval closest to 0."""
    d = "d" + kind
    top = 1.0 if kind == "tanh" else 0.25
    lo, hi = np.empty_like(a[0]), np.empty_like(a[1])
    for i, (x, y) in enumerate(zip(a[0], a[1])):
        dx, dy = _fn(d, _pt(x)), _fn(d, _pt(y))
        lo[i] = max(min(_down(dx), _down(dy)), 0.0)
        hi[i] = top if x <= 0.0 <= y else min(max(_up(dx), _up(dy)), top)
    return lo, hi


def convex_mix(z: Interval, h: Interval, n: Interval) -> Interval:
    """Range of ``z h + (1 − z) n`` for ``z ∈ [z_lo, z_hi] ⊂ [0, 1]``: monotone in ``h`` and ``n``, affine in
    ``z``, so the extremes sit at end points (evaluated in ball arithmetic)."""
    lo, hi = np.empty_like(h[0]), np.empty_like(h[1])
    for i in range(h[0].shape[0]):
        cands_lo = [_pt(n[0][i]) + _pt(zz) * (_pt(h[0][i]) - _pt(n[0][i])) for zz in (z[0][i], z[1][i])]
        cands_hi = [_pt(n[1][i]) + _pt(zz) * (_pt(h[1][i]) - _pt(n[1][i])) for zz in (z[0][i], z[1][i])]
        lo[i] = min(_down(c) for c in cands_lo)
        hi[i] = max(_up(c) for c in cands_hi)
    return lo, hi


def inflate(a: Interval, rel: float, abs_: float) -> Interval:
    """The box widened by ``rel`` of its width plus ``abs_`` on each side (rounded outward)."""
    w = (a[1] - a[0]) * rel + abs_
    return np.nextafter(a[0] - w, -np.inf), np.nextafter(a[1] + w, np.inf)
