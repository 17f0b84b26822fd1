"""Absorbing-set slope tightening: a closed-loop certificate where the global slope class is too wide.

In the global slope class of a tanh or sigmoid neuron the member "slope 0" is allowed; around a
network without a linear path it leaves a PI integrator open (docs/theory.md §9), so no global
Luré–Postnikov certificate exists.  In the real loop, however, every pre-activation is bounded once the
trajectory has entered a box ``B`` that it never leaves (bounded activations, a saturated actuator, a
plant that is stable with its inputs held): on ``B`` each neuron's slope lies in ``[κ_min, κ_max]`` with
``κ_min > 0``.  This module

1. proves a box ``X₀`` invariant and absorbing from the linear part alone (:func:`absorbing_set`,
   stage 0: ``|A| R + s < R`` componentwise, checked in ball arithmetic);
2. shrinks it, ``X_{j+1} = X_j ∩ f(X_j)`` with ``f(X_j)`` enclosed in Arb ball arithmetic (each step
   stays invariant and absorbing), and enlarges the last box slightly to ``B`` with ``f(B) ⊂ int B``;
3. encloses every channel's pre-activation on ``B`` and tightens each tanh/sigmoid channel's slope
   interval to the derivative's range there (:func:`tighten_channels`, rigorous bounds rounded outward);
4. runs the Luré–Postnikov LMI with the tightened classes (:func:`check_absorbing`).

A certificate for the tightened classes proves global asymptotic stability of the loop: docs/theory.md
§6.1 (theorem and proof).  Interval enclosures follow Moore, Kearfott & Cloud (2009); the LMI is the
one of Hilgert & Schwung (2025) as implemented in :mod:`certify.criteria.lmi`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from certify.results import CheckResult, CheckStatus, Property

#: channels whose output is bounded whatever the pre-activation (when ``lin = 0``)
BOUNDED_KINDS = ("tanh", "sigmoid", "saturation")
#: channels whose slope class is tightened (smooth, derivative decreasing in |v|)
TIGHTENED_KINDS = ("tanh", "sigmoid")
PREC_BITS = 106
#: relative widening of each pre-activation interval before the slopes are bounded on it
WIDEN = 1e-9


class NotApplicable(Exception):
    """The absorbing-set argument does not apply to this loop (the message says why)."""


@dataclass(frozen=True)
class AbsorbingSet:
    """A box ``B = [lower, upper]`` that every trajectory enters in finite time and never leaves.

    Parameters
    ----------
    lower, upper : ndarray
        The box ``B`` (state coordinates of the SNOF).
    q_lower, q_upper : ndarray
        Enclosure of every channel's pre-activation ``q_i`` over ``B``.
    stage0_lower, stage0_upper : ndarray
        The box ``X₀`` proved invariant and absorbing from the linear part alone.
    stage0_ratio : float
        ``max_i (|A| R + s)_i / R_i`` (an upper bound; below 1 proves ``X₀``).
    iterations : int
        Number of shrinking steps ``X_{j+1} = X_j ∩ f(X_j)``.
    inclusion_excess : float
        Largest amount by which the interval enclosure of ``f(B)`` leaves ``B`` (≤ 0: ``f(B) ⊂ B``
        is proved directly, :func:`prove_invariant`).
    grown : int
        Steps ``B ← B ∪ f(B)`` that absorbed outward rounding after the shrinking.
    """

    lower: np.ndarray
    upper: np.ndarray
    q_lower: np.ndarray
    q_upper: np.ndarray
    stage0_lower: np.ndarray
    stage0_upper: np.ndarray
    stage0_ratio: float
    iterations: int
    inclusion_excess: float
    grown: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"box_lower": self.lower.tolist(), "box_upper": self.upper.tolist(),
                "q_lower": self.q_lower.tolist(), "q_upper": self.q_upper.tolist(),
                "stage0_lower": self.stage0_lower.tolist(), "stage0_upper": self.stage0_upper.tolist(),
                "stage0_ratio": self.stage0_ratio, "iterations": self.iterations,
                "inclusion_excess": self.inclusion_excess, "grown": self.grown, "seconds": self.seconds}


# --- ball arithmetic helpers ---------------------------------------------------------------------------

def _down(x: Any) -> float:
    """A float ≤ every point of the ball ``x``."""
    from flint import arb

    lo = x.lower()
    f = float(lo.mid())
    while not arb(f) <= lo:
        f = float(np.nextafter(f, -np.inf))
    return f


def _up(x: Any) -> float:
    """A float ≥ every point of the ball ``x``."""
    from flint import arb

    hi = x.upper()
    f = float(hi.mid())
    while not arb(f) >= hi:
        f = float(np.nextafter(f, np.inf))
    return f


def _matvec(M: Any, v: list[Any]) -> list[Any]:
    from flint import arb_mat

    return list((M * arb_mat(len(v), 1, v)).entries())


def _arb_mat(M: np.ndarray) -> Any:
    from flint import arb_mat

    M = np.asarray(M, dtype=np.float64)
    return arb_mat(M.shape[0], M.shape[1], [float(v) for v in M.ravel()])


def _pt(x: float) -> Any:
    from flint import arb

    return arb(float(x))


def _two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``s = fl(a + b)`` and its exact error ``e = (a + b) − s`` (Knuth's TwoSum, exact in IEEE arithmetic)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _sum_down(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The largest float ≤ a + b (exact sums stay exact)."""
    s, e = _two_sum(a, b)
    return np.where(e < 0, np.nextafter(s, -np.inf), s)


def _sum_up(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest float ≥ a + b."""
    s, e = _two_sum(a, b)
    return np.where(e > 0, np.nextafter(s, np.inf), s)


def _imatvec(M: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Endpoint interval product ``M [lo, hi]``, exact in Arb and rounded outward to floats.

    ``lower = M⁺ lo + M⁻ hi`` and ``upper = M⁺ hi + M⁻ lo`` (``M⁺``, ``M⁻`` the positive and negative
    parts): the exact range of ``M x`` over the box (Moore, Kearfott & Cloud 2009, §2).
    """
    from flint import arb_mat

    k, m = M.shape
    if not k:
        return np.zeros(0), np.zeros(0)
    Mp, Mn = _arb_mat(np.maximum(M, 0.0)), _arb_mat(np.minimum(M, 0.0))
    L, H = arb_mat(m, 1, [float(v) for v in lo]), arb_mat(m, 1, [float(v) for v in hi])
    low = (Mp * L + Mn * H).entries()
    high = (Mp * H + Mn * L).entries()
    return np.array([_down(v) for v in low]), np.array([_up(v) for v in high])


def _base_point(kind: str, v: float) -> Any:
    """The (nondecreasing) base function at the float ``v``, as a ball that contains the exact value."""
    x = _pt(v)
    if kind == "tanh":
        return x.tanh()
    return 1 / (1 + (-x).exp())  # sigmoid


def _channel_range(ch: Any, ql: float, qh: float) -> tuple[float, float]:
    """Enclosure ``[lo, hi]`` of ``φ(q)`` for ``q ∈ [ql, qh]``: the base functions are nondecreasing."""
    g, q0 = _pt(ch.in_gain), _pt(ch.q_offset)
    ends = (g * _pt(ql) + q0, g * _pt(qh) + q0)
    v_lo = min(_down(e) for e in ends)
    v_hi = max(_up(e) for e in ends)
    if ch.kind == "saturation":
        assert ch.limits is not None
        b_lo = _pt(min(max(v_lo, ch.limits[0]), ch.limits[1]))  # clipping floats is exact
        b_hi = _pt(min(max(v_hi, ch.limits[0]), ch.limits[1]))
    elif ch.kind in ("tanh", "sigmoid"):
        b_lo, b_hi = _base_point(ch.kind, v_lo), _base_point(ch.kind, v_hi)
    else:
        raise NotApplicable(f"channel {ch.kind} is not bounded")
    og, p0 = _pt(ch.out_gain), _pt(ch.p_offset)
    outs = ((b_lo - p0) * og, (b_hi - p0) * og)
    lo, hi = min(_down(o) for o in outs), max(_up(o) for o in outs)
    if ch.lin != 0.0:
        raise NotApplicable(f"channel {ch.kind} has a linear term (lin = {ch.lin:g}): its output is unbounded")
    return lo, hi


def _global_range(ch: Any) -> tuple[float, float]:
    """The range of a bounded channel over all pre-activations (floats, outward)."""
    if ch.kind not in BOUNDED_KINDS or ch.lin != 0.0:
        raise NotApplicable(f"channel {ch.kind} (lin = {ch.lin:g}) has an unbounded output")
    lo, hi = (-1.0, 1.0) if ch.kind == "tanh" else (0.0, 1.0) if ch.kind == "sigmoid" else ch.limits
    og, p0 = _pt(ch.out_gain), _pt(ch.p_offset)
    outs = ((_pt(lo) - p0) * og, (_pt(hi) - p0) * og)
    return min(_down(o) for o in outs), max(_up(o) for o in outs)


class _Evaluator:
    """Interval enclosure of the SNOF step ``f`` and of its pre-activations over a box (float end points)."""

    def __init__(self, form: Any):
        from certify.snof.form import channel_levels

        self.form = form
        if form.n_w:
            raise NotApplicable("the system has an exogenous input; close it first")
        levels = channel_levels(np.asarray(form.D_qp))
        if levels is None:
            raise NotApplicable("the channel graph has a cycle (no explicit evaluation order)")
        for c in form.channels:
            _global_range(c)  # every channel bounded
        self.rounds = len(levels)
        self.A, self.Bp = np.asarray(form.A, float), np.asarray(form.B_p, float)
        self.Cq, self.D = np.asarray(form.C_q, float), np.asarray(form.D_qp, float)
        self.bx, self.bq = np.asarray(form.b_x, float), np.asarray(form.b_q, float)

    @staticmethod
    def _add(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return _sum_down(a[0], b[0]), _sum_up(a[1], b[1])

    def _channels(self, q: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        r = np.array([_channel_range(c, a, b) for c, a, b in zip(self.form.channels, q[0], q[1])]).reshape(-1, 2)
        return r[:, 0].copy(), r[:, 1].copy()

    def __call__(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(x⁺_lo, x⁺_hi, q_lo, q_hi)`` enclosing ``f`` and ``q`` over the box ``[lo, hi]``."""
        qb = self._add(_imatvec(self.Cq, lo, hi), (self.bq, self.bq))
        q = qb
        p = self._channels(q)
        if np.any(self.D):
            for _ in range(self.rounds - 1):  # forward substitution: level r is exact after round r
                q = self._add(qb, _imatvec(self.D, *p))
                p = self._channels(q)
        xn = self._add(self._add(_imatvec(self.A, lo, hi), _imatvec(self.Bp, *p)), (self.bx, self.bx))
        return xn[0], xn[1], q[0], q[1]


def _stage0(form: Any) -> tuple[np.ndarray, np.ndarray, float]:
    """Box ``c ± R`` with ``|A| R + s < R`` (proves it invariant and absorbing; docs/theory.md §6.1)."""
    from flint import arb

    rng = np.array([_global_range(c) for c in form.channels]).reshape(-1, 2)
    pc, pr = (rng[:, 0] + rng[:, 1]) / 2, (rng[:, 1] - rng[:, 0]) / 2
    A = np.asarray(form.A, dtype=np.float64)
    absA = np.abs(A)
    n = form.n
    rho_abs = float(np.max(np.abs(np.linalg.eigvals(absA)), initial=0.0))
    if rho_abs >= 1.0:
        raise NotApplicable(
            f"the spectral radius of |A| is {rho_abs:.6f} ≥ 1: the linear part, with the bounded channel outputs "
            "as inputs, has no interval ultimate bound in these coordinates")
    c = np.linalg.solve(np.eye(n) - A, form.B_p @ pc + form.b_x)
    # exact residual d = A c + B_p p_c + b_x − c and s = |d| + |B_p| r_p (so that |p − p_c| ≤ r_p)
    Am, Bm = _arb_mat(A), _arb_mat(form.B_p)
    cs = [_pt(v) for v in c]
    d = [a + b + _pt(e) - f for a, b, e, f in zip(_matvec(Am, cs), _matvec(Bm, [_pt(v) for v in pc]), form.b_x, cs)]
    s_arb = [abs(di) + si for di, si in zip(d, _matvec(_arb_mat(np.abs(form.B_p)), [_pt(v) for v in pr]))]
    s = np.array([_up(v) for v in s_arb])
    r_star = np.linalg.solve(np.eye(n) - absA, s)
    w = np.linalg.solve(np.eye(n) - absA, np.ones(n))
    R = np.maximum(r_star, 0.0) * (1 + 1e-6) + 1e-6 * np.maximum(w, 1.0) * max(1.0, float(np.max(r_star)))
    lhs = [a + b for a, b in zip(_matvec(_arb_mat(absA), [_pt(v) for v in R]), s_arb)]
    ratio = max(_up(li / arb(float(ri))) for li, ri in zip(lhs, R))
    if not all(li < arb(float(ri)) for li, ri in zip(lhs, R)):
        raise NotApplicable(f"the stage-0 box could not be proved (ratio {ratio:.6g} ≥ 1)")
    lo = np.array([_down(_pt(ci) - _pt(ri)) for ci, ri in zip(c, R)])
    hi = np.array([_up(_pt(ci) + _pt(ri)) for ci, ri in zip(c, R)])
    return lo, hi, ratio


def prove_invariant(form: Any, lower: np.ndarray, upper: np.ndarray) -> tuple[bool, float, np.ndarray, np.ndarray]:
    """Check ``f(B) ⊂ B`` for the box ``B = [lower, upper]`` with the interval enclosure of ``f``.

    Returns ``(ok, excess, q_lower, q_upper)``: ``excess`` is the largest amount by which the enclosure
    leaves ``B`` (≤ 0 when ``ok``), and ``q_*`` enclose every channel's pre-activation over ``B``.

    >>> from certify.snof import SNOF, Channel
    >>> f = SNOF(A=[[0.5]], B_p=[[1.0]], C_q=[[1.0]], channels=(Channel("tanh"),))
    >>> prove_invariant(f, np.array([-2.0]), np.array([2.0]))[0], prove_invariant(f, np.array([-1.0]), np.array([1.0]))[0]
    (True, False)
    """
    from flint import ctx

    with ctx.workprec(PREC_BITS):
        xl, xh, ql, qh = _Evaluator(form)(np.asarray(lower, float), np.asarray(upper, float))
    excess = float(np.max(np.concatenate([lower - xl, xh - upper]), initial=-np.inf))
    return bool(np.all(xl >= lower) and np.all(xh <= upper)), excess, ql, qh


def absorbing_set(form: Any, *, max_iter: int = 4000, rtol: float = 1e-7,
                  time_budget: float | None = None) -> AbsorbingSet:
    """Prove a box invariant and absorbing for the SNOF ``form`` (no exogenous input), in interval arithmetic.

    Stage 0 proves ``X₀`` from the linear part; then ``X_{j+1} = X_j ∩ f(X_j)`` (each step is again
    invariant and absorbing); the last box is grown by the enclosure of its image until
    ``f(B) ⊂ B`` is checked directly (:func:`prove_invariant`).  Raises :class:`NotApplicable` when a
    channel is unbounded (relu, or ``lin ≠ 0``), the channel graph has a cycle, or the linear part with
    the channel outputs as inputs has ``ρ(|A|) ≥ 1``.

    Parameters
    ----------
    form : SNOF
        The closed loop (constant references and held inputs are in its biases).
    max_iter : int
        Cap on the shrinking steps.
    rtol : float
        Stop when no coordinate's width shrinks by more than ``rtol`` (relative) in a step.
    time_budget : float or None
        Seconds for the shrinking; when they run out it stops early (every intermediate box is already
        invariant and absorbing, only wider).

    >>> from certify.snof import SNOF, Channel
    >>> f = SNOF(A=[[0.5]], B_p=[[1.0]], C_q=[[1.0]], b_q=[0.3], channels=(Channel("tanh"),))
    >>> s = absorbing_set(f)
    >>> bool(-2.0 < s.lower[0] < s.upper[0] < 2.0), s.inclusion_excess <= 0
    (True, True)
    """
    from flint import ctx

    t0 = time.perf_counter()
    with ctx.workprec(PREC_BITS):
        lo0, hi0, ratio0 = _stage0(form)
        ev = _Evaluator(form)
        lo, hi, it = shrink_box(lambda lo_, hi_: ev(lo_, hi_)[:2], lo0, hi0, max_iter=max_iter, rtol=rtol,
                                time_budget=time_budget, t0=t0)
        grown = 0
        while grown < 50:  # absorb the outward rounding: B ← B ∪ f(B), still inside X₀
            xl, xh, _, _ = ev(lo, hi)
            if np.all(xl >= lo) and np.all(xh <= hi):
                break
            grown += 1
            lo, hi = np.maximum(np.minimum(lo, xl), lo0), np.minimum(np.maximum(hi, xh), hi0)
    ok, excess, ql, qh = prove_invariant(form, lo, hi)
    if not ok:
        raise NotApplicable(f"the invariance f(B) ⊂ B could not be checked (excess {excess:.3g})")
    return AbsorbingSet(lower=lo, upper=hi, q_lower=ql, q_upper=qh, stage0_lower=lo0, stage0_upper=hi0,
                        stage0_ratio=ratio0, iterations=it, inclusion_excess=excess, grown=grown,
                        seconds=time.perf_counter() - t0)


def shrink_box(enclose: Any, lo0: np.ndarray, hi0: np.ndarray, *, max_iter: int, rtol: float,
               time_budget: float | None, t0: float) -> tuple[np.ndarray, np.ndarray, int]:
    """``X_{j+1} = X_j ∩ f♯(X_j)`` from ``X₀ = [lo0, hi0]`` until no coordinate's width shrinks by more than
    ``rtol`` (relative), ``max_iter`` steps, or ``time_budget`` seconds since ``t0``.

    ``enclose(lo, hi)`` returns an interval enclosure ``(lo⁺, hi⁺)`` of the image of the box.  If ``X₀`` is
    invariant and absorbing, so is every ``X_j`` (docs/theory.md §6.1): the result is sound whenever it stops.
    Returns ``(lo, hi, steps)``.
    """
    lo, hi = lo0.copy(), hi0.copy()
    it = 0
    while it < max_iter:
        it += 1
        xl, xh = enclose(lo, hi)
        nlo, nhi = np.maximum(lo, xl), np.minimum(hi, xh)
        width = np.maximum(hi - lo, 1e-300)
        shrink = float(np.max(((hi - lo) - (nhi - nlo)) / width, initial=0.0))
        lo, hi = nlo, nhi
        if shrink <= rtol or (time_budget is not None and time.perf_counter() - t0 > time_budget):
            break
    return lo, hi, it


def _deriv(kind: str, v: Any) -> Any:
    """Base derivative at a ball: ``sech²`` or ``σ(v)σ(−v) = 1/(2 + eᵛ + e⁻ᵛ)``."""
    if kind == "tanh":
        return v.sech() ** 2
    return 1 / (2 + v.exp() + (-v).exp())


def slope_bounds(ch: Any, q_lo: float, q_hi: float) -> tuple[float, float, tuple[float, float]]:
    """Rigorous ``[κ_min, κ_max]`` of the base derivative for pre-activations in ``[q_lo, q_hi]``.

    Returns ``(κ_min, κ_max, (v_lo, v_hi))`` with ``v = in_gain·q + q_offset`` the base argument;
    ``κ_min`` is rounded down and ``κ_max`` up.  tanh' and σ' decrease in ``|v|``, so the minimum is at
    an end point and the maximum at the point closest to 0.

    >>> from certify.snof import Channel
    >>> lo, hi, reg = slope_bounds(Channel("tanh"), -1.0, 2.0)
    >>> bool(0.0706 < lo < 1 / np.cosh(2.0) ** 2 <= 0.0707), hi, bool(reg[0] <= -1.0 and reg[1] >= 2.0)
    (True, 1.0, True)
    """
    from flint import arb, ctx

    with ctx.workprec(PREC_BITS):
        ends = [arb(float(ch.in_gain)) * arb(float(e)) + arb(float(ch.q_offset)) for e in (q_lo, q_hi)]
        v_lo, v_hi = min(_down(e) for e in ends), max(_up(e) for e in ends)
        d_lo, d_hi = _deriv(ch.kind, arb(v_lo)), _deriv(ch.kind, arb(v_hi))
        k_lo = max(min(_down(d_lo), _down(d_hi)), 0.0)
        top = 1.0 if ch.kind == "tanh" else 0.25
        k_hi = top if v_lo <= 0.0 <= v_hi else min(max(_up(d_lo), _up(d_hi)), top)
    return k_lo, k_hi, (v_lo, v_hi)


def tighten_channels(form: Any, aset: AbsorbingSet) -> tuple[Any, list[dict[str, Any]]]:
    """The SNOF with each tanh/sigmoid channel's slope class tightened to its range on ``aset``.

    Returns the tightened form (same dynamics; :meth:`certify.snof.Channel.with_slopes`) and one
    record per channel (kind, pre-activation interval, base-argument region, κ_min, κ_max, slope).

    >>> from certify.snof import SNOF, Channel
    >>> f = SNOF(A=[[0.5]], B_p=[[1.0]], C_q=[[1.0]], b_q=[0.3], channels=(Channel("tanh"),))
    >>> g, rows = tighten_channels(f, absorbing_set(f))
    >>> [round(v, 2) for v in rows[0]["q"]], round(g.channels[0].slope[0], 4)  # tanh' ≥ sech²(2.2566)
    ([-1.52, 2.26], 0.0429)
    """
    from dataclasses import replace

    chans, rows = [], []
    for i, ch in enumerate(form.channels):
        row: dict[str, Any] = {"index": i, "kind": ch.kind, "q": [float(aset.q_lower[i]), float(aset.q_upper[i])]}
        if ch.kind in TIGHTENED_KINDS and ch.base_slopes is None:
            # widen by η so that q(x*) ∈ q(B) lies in the interior of the region (docs/theory.md §6.1)
            eta = WIDEN * max(1.0, float(aset.q_upper[i] - aset.q_lower[i]))
            k_lo, k_hi, reg = slope_bounds(ch, aset.q_lower[i] - eta, aset.q_upper[i] + eta)
            if k_lo < k_hi:
                ch = ch.with_slopes(k_lo, k_hi, reg)
            row.update(region=list(reg), kappa_min=k_lo, kappa_max=k_hi)
        row["slope"] = list(ch.slope)
        chans.append(ch)
        rows.append(row)
    return replace(form, channels=tuple(chans)), rows


def needed_interval_scale(form: Any, aset: AbsorbingSet, x_star: np.ndarray, *, steps: int = 10) -> float | None:
    """Diagnostic: the largest ``t`` (bisection) for which the vertex condition holds with every tanh/sigmoid
    pre-activation interval shrunk to ``q*ᵢ + t (Iᵢ − q*ᵢ)`` around the equilibrium; ``None`` if none of the
    tried scales passes.  Not a proof of anything: it says how much narrower an absorbing box would have to be.

    >>> from certify.snof import SNOF, Channel
    >>> f = SNOF(A=[[1.0]], B_p=[[-0.5]], C_q=[[1.0]], channels=(Channel("tanh"),))
    >>> needed_interval_scale(f, AbsorbingSet(*([np.array([-3.0]), np.array([3.0])] * 3), 0.5, 1, 0.0),
    ...                       np.zeros(1)) == 1.0
    True
    """
    from dataclasses import replace

    from certify.criteria.lmi import lure_system, vertex_check
    from certify.snof.transform import Equilibrium

    x = np.asarray(x_star, dtype=np.float64)
    w = np.zeros(form.n_w)
    q_star, p_star = form.solve_channels(x, w)
    eq = Equilibrium(x=x, q=q_star, p=p_star, w=w, z=form.step(x, w)[1], residual=0.0, found=True)

    def passes(t: float) -> bool:
        chans = []
        for i, ch in enumerate(form.channels):
            if ch.kind in TIGHTENED_KINDS:
                lo = q_star[i] + t * (aset.q_lower[i] - q_star[i])
                hi = q_star[i] + t * (aset.q_upper[i] - q_star[i])
                k_lo, k_hi, reg = slope_bounds(ch, min(lo, hi), max(lo, hi))
                ch = ch.with_slopes(k_lo, k_hi, reg) if k_lo < k_hi else ch
            chans.append(ch)
        sys_, _, _ = lure_system(replace(form, channels=tuple(chans)), eq)
        return bool(vertex_check(sys_).ok)

    if passes(1.0):
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if passes(mid) else (lo, mid)
    return lo if lo > 0 else None


def _vertex_precheck(form: Any) -> dict[str, Any] | None:
    """The vertex necessary condition (docs/theory.md §7.8) on the tightened classes; a dict when it fails."""
    from certify.criteria.lmi import lure_system, vertex_check
    from certify.snof.transform import equilibrium

    eq = equilibrium(form)
    if not eq.found:
        return None
    sys_, _, _ = lure_system(form, eq)
    if not sys_.m:
        return None
    vc = vertex_check(sys_)
    if vc.ok:
        return None
    return {"equilibrium": eq.to_dict(),
            "vertex_check": {"ok": False, "checked": vc.checked, "exhaustive": vc.exhaustive,
                             "max_spectral_radius": vc.worst_rho, "worst_vertex_channels": list(vc.worst_vertex),
                             "detail": vc.detail}}


def check_absorbing(form: Any, *, solver: str | None = None, timeout: float | None = None,
                    name: str = "loop.gas.absorbing", solver_options: dict[str, Any] | None = None,
                    ) -> CheckResult:
    """Certify GAS of a closed loop with slope classes tightened on a proved absorbing box.

    ``proved`` needs: the box proved invariant and absorbing (:func:`absorbing_set`), the equilibrium
    strictly inside it, and a validated Luré–Postnikov certificate for the tightened classes
    (:func:`certify.criteria.lmi.check_lmi`).  The criterion is reported as ``<criterion>_absorbing``,
    and ``quantities`` hold the box, the pre-activation intervals, κ per channel and the proof figures.

    >>> from certify.snof import SNOF, Channel
    >>> f = SNOF(A=[[1.0]], B_p=[[-0.5]], C_q=[[1.0]], channels=(Channel("tanh"),))  # slope 0 leaves A = 1
    >>> check_absorbing(f).status.value  # x⁺ = x − 0.5 tanh(x): |x| shrinks, but no absorbing box in ρ(|A|) < 1
    'not_applicable'
    """
    from certify.criteria.lmi import check_lmi

    t0 = time.perf_counter()
    q: dict[str, Any] = {"method": "absorbing_set_slope_tightening"}
    try:
        aset = absorbing_set(form, time_budget=None if timeout is None else 0.5 * timeout)
    except NotApplicable as exc:
        return CheckResult(name=name, property=Property.GAS, status=CheckStatus.NOT_APPLICABLE,
                           criterion="lure_postnikov_absorbing",
                           message=f"absorbing-set tightening does not apply: {exc}.", quantities=q,
                           seconds=time.perf_counter() - t0)
    q["absorbing_set"] = aset.to_dict()
    tight, rows = tighten_channels(form, aset)
    q["channels"] = rows
    kmins = [r["kappa_min"] for r in rows if "kappa_min" in r]
    q["kappa_min"] = min(kmins) if kmins else None
    kmin = "n/a" if q["kappa_min"] is None else f"{q['kappa_min']:.3g}"
    early = _vertex_precheck(tight)  # necessary condition, cheap even where check_lmi defers it
    if early is not None:
        q["lmi"] = early
        q["equilibrium"] = early["equilibrium"]
        vc = early["vertex_check"]
        scale = needed_interval_scale(form, aset, np.asarray(early["equilibrium"]["x"]))
        q["interval_scale_for_vertex_condition"] = scale
        hint = "" if scale is None else (
            f" The vertex condition would hold only if every neuron's pre-activation interval were at most "
            f"{scale:.2g} of its proved width around the equilibrium (a diagnostic, not a proof).")
        msg = (f"not proved with tightened slopes (box proved invariant and absorbing, {aset.iterations} shrinking "
               f"steps; smallest neuron slope on it κ_min = {kmin}): necessary condition fails, so no LMI can be "
               f"feasible on this box: {vc['detail']} (here slope K means a neuron's κ_max and 0 its κ_min; the "
               "saturation keeps [0, 1])." + hint)
        return CheckResult(name=name, property=Property.GAS, status=CheckStatus.NOT_PROVED,
                           criterion="lure_postnikov_absorbing", message=msg, margin=vc["max_spectral_radius"] - 1.0,
                           quantities=q, seconds=time.perf_counter() - t0)
    left = None if timeout is None else max(timeout - (time.perf_counter() - t0), 0.0)
    res = check_lmi(tight, criterion="auto", solver=solver, timeout=left, name=name, solver_options=solver_options)
    q["lmi"] = dict(res.quantities)
    eq = res.quantities.get("equilibrium") or {}
    q["equilibrium"] = eq
    inside = None
    if eq.get("found"):
        x = np.asarray(eq["x"], dtype=np.float64)
        gap = np.minimum(x - aset.lower, aset.upper - x)
        # every equilibrium lies in the absorbing box; a float equilibrium may sit on its face (saturated)
        inside = bool(np.all(gap >= -1e-8 * np.maximum(1.0, np.abs(x))))
        q["equilibrium_gap_to_box"] = float(np.min(gap, initial=np.inf))
    crit = f"{res.criterion}_absorbing"
    bounds = (f"box proved invariant and absorbing in ball arithmetic (stage-0 ratio {aset.stage0_ratio:.10f} < 1, "
              f"{aset.iterations} shrinking steps, f(B) ⊂ B with excess {aset.inclusion_excess:.3g} ≤ 0); smallest "
              f"neuron slope on it κ_min = {kmin}")
    if res.status is CheckStatus.PROVED and inside:
        msg = ("the equilibrium is globally asymptotically stable: every trajectory enters a box on which each "
               f"neuron's slope is bounded below ({bounds}), and on it the {res.criterion} LMI with the tightened "
               f"slope classes holds with a validated certificate (max eig M = {res.margin:.3e}). The result "
               "rests on these bounds (docs/theory.md §6.1).")
        status = CheckStatus.PROVED
    else:
        why = res.message if res.status is not CheckStatus.PROVED else \
            "the computed equilibrium is not in the box (inconsistent)"
        msg = (f"not proved with tightened slopes ({bounds}): {why} (in the tightened classes the LMI's "
               "normalised slope 0 stands for each neuron's κ_min and K for its κ_max).")
        status = CheckStatus.NOT_PROVED
    return CheckResult(name=name, property=Property.GAS, status=status, criterion=crit, message=msg,
                       margin=res.margin, quantities=q, solver=res.solver, solver_status=res.solver_status,
                       validation=res.validation, seconds=time.perf_counter() - t0)
