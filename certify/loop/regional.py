"""A regional result where no global one exists: the largest certified invariant ellipsoid.

When no global certificate exists (the global slope class holds a member that destabilises the loop,
docs/theory.md §9) the equilibrium can still attract every trajectory that starts close enough to it.
This module proves that for an explicit ellipsoid

    E = {x : (x − x̂)ᵀ P (x − x̂) ≤ c}

around the computed equilibrium ``x̂``, and reports it as its own property,
:attr:`certify.results.Property.REGION` (``region_of_attraction``), never as global stability.
The proof (docs/theory.md §6.2, theorem and proof) has three parts, each checked rigorously:

1. every channel's pre-activation over ``E`` lies in an interval ``I_i`` (ball arithmetic:
   ``|C_i (x − x̂)| ≤ sqrt(c · C_iᵀ P⁻¹ C_i)``, then the ``D_qp`` coupling by forward substitution
   over the channel levels), and on ``I_i`` the channel's slope lies in a local class
   ``[α_i, β_i]`` (:func:`local_channels`; the saturation is linear, slope exactly 1, while ``I_i``
   stays inside its limits, so the saturated vertex is excluded);
2. the circle LMI (Haddad & Bernstein 1994; docs/theory.md §7.4) for the local classes holds with
   this ``P``, validated in float64 with the rounding margin of §7.9: ``f`` is then a contraction in
   the ``P``-norm on ``E`` with a rigorous rate ``ρ < 1``;
3. ``ρ·sqrt(c) + ‖f(x̂) − x̂‖_P < sqrt(c)`` (the residual of the float equilibrium enclosed in ball
   arithmetic), so ``f(E) ⊂ E``.

Then ``E`` holds exactly one equilibrium, and every trajectory that starts in ``E`` stays in it and
converges to it geometrically: ``E`` is inside its region of attraction (Khalil 2002, §8.2; invariant
ellipsoids: Boyd et al. 1994, §5.2).  :func:`check_regional` searches for the largest such ellipsoid
(shape from the LMI, size by growth and bisection); :func:`validate_region` re-checks a
:class:`RegionCertificate` from its numbers alone.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from certify.errors import WellPosednessError
from certify.loop.absorbing import (
    PREC_BITS,
    _base_point,
    _down,
    _imatvec,
    _pt,
    _sum_down,
    _sum_up,
    _up,
    slope_bounds,
)
from certify.results import CheckResult, CheckStatus, Property

#: growth factor of ``c`` per round of the search (halved in the exponent after a failure)
GROWTH = 16.0
#: stop the search when the growth factor falls below this
MIN_GROWTH = 1.05
#: numerical failures that end one search step (the step then simply fails)
_SEARCH_ERRORS = (ValueError, ZeroDivisionError, ArithmeticError, np.linalg.LinAlgError, WellPosednessError)
#: PSD order up to which the search asks the interior-point backend (Clarabel) when no solver is named
HIGH_ACCURACY_ORDER = 120
#: half-width of the first pre-activation intervals, relative to ``max(1, |q̂_i|)``
FIRST_WIDTH = 1e-2


class RegionNotApplicable(Exception):
    """The regional argument does not apply to this system (the message says why)."""


@dataclass(frozen=True, eq=False)
class RegionCertificate:
    """The numbers behind a regional result; :func:`validate_region` re-checks them.

    Parameters
    ----------
    centre : ndarray
        ``x̂``, the computed equilibrium (float64; the true one lies within ``equilibrium_bound``).
    P : ndarray
        Symmetric ``n × n`` matrix of the ellipsoid and of the circle LMI (original state coordinates).
    c : float
        Level: ``E = {x : (x − x̂)ᵀP(x − x̂) ≤ c}``.
    q_lower, q_upper : ndarray
        The declared pre-activation intervals ``I_i`` on which the local slope classes hold.
    multipliers : ndarray
        The circle LMI's multipliers ``T`` for the channels that are not affine on ``I`` (in the
        Luré coordinates of :func:`certify.criteria.lmi.lure_system`).
    """

    centre: np.ndarray
    P: np.ndarray
    c: float
    q_lower: np.ndarray
    q_upper: np.ndarray
    multipliers: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {"centre": np.asarray(self.centre).tolist(), "P": np.asarray(self.P).tolist(), "c": float(self.c),
                "q_lower": np.asarray(self.q_lower).tolist(), "q_upper": np.asarray(self.q_upper).tolist(),
                "multipliers": {"T": np.asarray(self.multipliers).tolist()}, "criterion": "circle"}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RegionCertificate:
        return cls(np.asarray(d["centre"], dtype=np.float64), np.asarray(d["P"], dtype=np.float64),
                   float(d["c"]), np.asarray(d["q_lower"], dtype=np.float64),
                   np.asarray(d["q_upper"], dtype=np.float64),
                   np.asarray(d["multipliers"]["T"], dtype=np.float64))

    def contains(self, x: np.ndarray) -> np.ndarray:
        """Whether the points ``x`` (last axis: state) lie in ``E`` (float64; for tests and plots)."""
        d = np.asarray(x, dtype=np.float64) - self.centre
        return np.einsum("...i,ij,...j->...", d, self.P, d) <= self.c

    def half_widths(self) -> np.ndarray:
        """Half-width of ``E`` along each state axis, ``sqrt(c·(P⁻¹)_jj)`` (float64, for the report)."""
        return np.sqrt(self.c * np.diag(np.linalg.inv(self.P)))

    def semi_axes(self) -> np.ndarray:
        """Principal semi-axes ``sqrt(c/λ_k(P))``, largest first (float64)."""
        return np.sort(np.sqrt(self.c / np.linalg.eigvalsh(self.P)))[::-1]

    def log_volume(self) -> float:
        """``log`` of the volume of ``E`` up to the constant of the unit ball: ``(n log c − log det P)/2``."""
        sign, logdet = np.linalg.slogdet(self.P)
        return float(0.5 * (self.P.shape[0] * np.log(self.c) - logdet)) if sign > 0 else -np.inf


@dataclass(frozen=True)
class RegionValidation:
    """Outcome of :func:`validate_region`; ``ok`` is the only thing that may lead to ``proved``.

    ``rate`` is the rigorous contraction factor ρ per step in the ``P``-norm, ``residual`` an upper
    bound on ``‖f(x̂) − x̂‖_P``, ``equilibrium_bound`` one on ``‖x_e − x̂‖_P`` for the equilibrium
    ``x_e`` in ``E``, and ``lmi`` the float64 figures of the circle LMI (docs/theory.md §7.9).
    """

    ok: bool
    reason: str
    rate: float | None = None
    residual: float | None = None
    equilibrium_bound: float | None = None
    enclosure_lower: np.ndarray | None = field(default=None, repr=False)
    enclosure_upper: np.ndarray | None = field(default=None, repr=False)
    lmi: Mapping[str, Any] = field(default_factory=dict)
    channels: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "reason": self.reason, "contraction_rate": self.rate,
                "residual_P_norm": self.residual, "equilibrium_distance_P_norm": self.equilibrium_bound,
                "lmi": dict(self.lmi)}


# --- rigorous enclosures (ball arithmetic, float end points rounded outward) ------------------------

def _channel_enclosure(ch: Any, ql: float, qh: float) -> tuple[float, float]:
    """``[lo, hi] ⊇ φ(q)`` for ``q ∈ [ql, qh]``: the base functions are nondecreasing, ``lin·q`` is added
    as an interval (Moore, Kearfott & Cloud 2009)."""
    g, q0 = _pt(ch.in_gain), _pt(ch.q_offset)
    ends = (g * _pt(ql) + q0, g * _pt(qh) + q0)
    v_lo, v_hi = min(_down(e) for e in ends), max(_up(e) for e in ends)
    if ch.kind in ("tanh", "sigmoid"):
        b_lo, b_hi = _base_point(ch.kind, v_lo), _base_point(ch.kind, v_hi)
    elif ch.kind == "saturation":
        lim = ch.limits
        b_lo, b_hi = _pt(min(max(v_lo, lim[0]), lim[1])), _pt(min(max(v_hi, lim[0]), lim[1]))
    else:  # relu
        b_lo, b_hi = _pt(max(v_lo, 0.0)), _pt(max(v_hi, 0.0))
    og, p0 = _pt(ch.out_gain), _pt(ch.p_offset)
    outs = [(b_lo - p0) * og, (b_hi - p0) * og]
    if ch.lin != 0.0:
        lin = _pt(ch.lin)
        # the hull of the four corner sums encloses og·(b − p0) − lin·q over the product of the intervals
        outs = [o - lin * _pt(e) for o in outs for e in (ql, qh)]
    return min(_down(o) for o in outs), max(_up(o) for o in outs)


def _channels_enclosure(channels: Sequence[Any], lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = np.array([_channel_enclosure(c, a, b) for c, a, b in zip(channels, lo, hi)]).reshape(-1, 2)
    return r[:, 0].copy(), r[:, 1].copy()


class _Geometry:
    """Rigorous pre-activation enclosures over ellipsoids ``E(x̂, P, c)`` for one ``(x̂, P)``.

    ``g_i ≥ C_iᵀ P⁻¹ C_i`` (Arb solve) is computed once; :meth:`enclose` then costs ``O(m²)`` per ``c``.
    ``P`` must be positive definite (checked before, by the LMI validation).
    """

    def __init__(self, form: Any, centre: np.ndarray, P: np.ndarray, levels: int):
        from flint import arb_mat, ctx

        self.form, self.levels = form, levels
        self.centre = np.asarray(centre, dtype=np.float64)
        self.C, self.D = np.asarray(form.C_q, float), np.asarray(form.D_qp, float)
        n, m = form.n, form.m
        with ctx.workprec(PREC_BITS):
            # q at the centre, without the channel coupling: C x̂ + b_q, enclosed
            lo, hi = _imatvec(self.C, self.centre, self.centre)
            self.qc = (_sum_down(lo, form.b_q), _sum_up(hi, form.b_q))
            if m and n:
                Pa = arb_mat(n, n, [float(v) for v in np.asarray(P, float).ravel()])
                Ct = arb_mat(n, m, [float(v) for v in self.C.T.ravel()])
                S = Pa.solve(Ct)  # P⁻¹ Cᵀ, enclosed
                Se = S.entries()
                g = []
                for i in range(m):
                    acc = _pt(0.0)
                    for j in range(n):
                        if self.C[i, j] != 0.0:
                            acc += _pt(self.C[i, j]) * Se[j * m + i]
                    g.append(acc)
                self.g = [max(_up(gi), 0.0) for gi in g]  # g_i ≥ C_iᵀP⁻¹C_i ≥ 0
            else:
                self.g = [0.0] * m

    def enclose(self, c: float) -> tuple[np.ndarray, np.ndarray]:
        """``[lo, hi] ⊇ {q(x) : x ∈ E(x̂, P, c)}`` per channel (floats, outward)."""
        from flint import ctx

        with ctx.workprec(PREC_BITS):
            ca = _pt(c)
            r = np.array([_up((ca * _pt(gi)).sqrt()) if gi > 0 else 0.0 for gi in self.g])
            if np.any(~np.isfinite(r)):
                return np.full(len(r), -np.inf), np.full(len(r), np.inf)
            qb = (_sum_down(self.qc[0], -r), _sum_up(self.qc[1], r))
            q = qb
            if self.form.m and np.any(self.D):
                for _ in range(self.levels):  # forward substitution: level k is exact after round k
                    p = _channels_enclosure(self.form.channels, *q)
                    d = _imatvec(self.D, *p)
                    q = (_sum_down(qb[0], d[0]), _sum_up(qb[1], d[1]))
            return q


def _centre_residual(form: Any, centre: np.ndarray, P: np.ndarray, levels: int) -> float:
    """Upper bound on ``‖f(x̂) − x̂‖_P`` (``f`` and the channels enclosed in ball arithmetic)."""
    from flint import arb, ctx

    x = np.asarray(centre, dtype=np.float64)
    with ctx.workprec(PREC_BITS):
        C, D = np.asarray(form.C_q, float), np.asarray(form.D_qp, float)
        lo, hi = _imatvec(C, x, x)
        qb = (_sum_down(lo, form.b_q), _sum_up(hi, form.b_q))
        q = qb
        p = _channels_enclosure(form.channels, *q) if form.m else (np.zeros(0), np.zeros(0))
        for _ in range(levels if np.any(D) else 0):
            d = _imatvec(D, *p)
            q = (_sum_down(qb[0], d[0]), _sum_up(qb[1], d[1]))
            p = _channels_enclosure(form.channels, *q)
        a_lo, a_hi = _imatvec(np.asarray(form.A, float), x, x)
        b_lo, b_hi = _imatvec(np.asarray(form.B_p, float), *p) if form.m else (np.zeros(form.n), np.zeros(form.n))
        xl = _sum_down(_sum_down(a_lo, b_lo), form.b_x)
        xh = _sum_up(_sum_up(a_hi, b_hi), form.b_x)
        r = np.maximum(np.abs(_sum_down(xl, -x)), np.abs(_sum_up(xh, -x)))  # |f(x̂) − x̂| componentwise
        ra = [arb(float(v)) for v in r]
        acc = arb(0)
        absP = np.abs(np.asarray(P, float))
        for i in range(len(ra)):
            for j in range(len(ra)):
                if absP[i, j] != 0.0 and r[i] != 0.0 and r[j] != 0.0:
                    acc += ra[i] * arb(float(absP[i, j])) * ra[j]
        return _up(acc.sqrt())


# --- local slope classes --------------------------------------------------------------------------

def local_channels(form: Any, q_lower: np.ndarray, q_upper: np.ndarray) -> tuple[Any, list[dict[str, Any]]]:
    """The SNOF with each channel's slope class restricted to the pre-activation interval ``[q_lower, q_upper]``.

    tanh/sigmoid: the derivative's range there (:func:`certify.loop.absorbing.slope_bounds`, rigorous);
    saturation: slope exactly 1 while the interval stays between the limits, exactly 0 while it stays
    beyond one limit, else ``[0, 1]``; relu likewise with its kink at 0.  Returns the form (same
    dynamics, :meth:`certify.snof.Channel.with_slopes`) and one record per channel.

    >>> from certify.snof import SNOF, Channel
    >>> f = SNOF(A=[[0.5]], B_p=[[1.0, 1.0]], C_q=[[1.0], [1.0]],
    ...          channels=(Channel("tanh"), Channel("saturation", limits=(-1.0, 1.0))))
    >>> g, rows = local_channels(f, np.array([-0.5, -0.5]), np.array([0.5, 0.5]))
    >>> round(g.channels[0].slope[0], 4), g.channels[1].slope
    (0.7864, (1.0, 1.0))
    """
    from flint import ctx

    chans, rows = [], []
    for i, ch in enumerate(form.channels):
        ql, qh = float(q_lower[i]), float(q_upper[i])
        row: dict[str, Any] = {"index": i, "kind": ch.kind, "q": [ql, qh], "global_slope": list(
            replace(ch, base_slopes=None, region=None).slope)}
        if ch.kind in ("tanh", "sigmoid"):
            k_lo, k_hi, reg = slope_bounds(ch, ql, qh)
        else:
            with ctx.workprec(PREC_BITS):
                g, q0 = _pt(ch.in_gain), _pt(ch.q_offset)
                ends = (g * _pt(ql) + q0, g * _pt(qh) + q0)
                v_lo, v_hi = min(_down(e) for e in ends), max(_up(e) for e in ends)
            reg = (v_lo, v_hi)
            a, b = ch.limits if ch.kind == "saturation" else (0.0, np.inf)
            if a <= v_lo and v_hi <= b:
                k_lo = k_hi = 1.0
            elif v_hi <= a or v_lo >= b:
                k_lo = k_hi = 0.0
            else:
                k_lo, k_hi = 0.0, 1.0
        ch = ch.with_slopes(k_lo, k_hi, reg)
        row.update(region=list(reg), base_slope=[k_lo, k_hi], slope=list(ch.slope))
        chans.append(ch)
        rows.append(row)
    return replace(form, channels=tuple(chans)), rows


def _equilibrium_at(form: Any, x: np.ndarray) -> Any:
    from certify.snof.transform import Equilibrium

    w = np.zeros(form.n_w)
    q, p = form.solve_channels(x, w)
    return Equilibrium(x=x, q=q, p=p, w=w, z=np.zeros(form.n_z), residual=0.0, found=True)


def _lure(
    form: Any, centre: np.ndarray, q_lower: np.ndarray, q_upper: np.ndarray,
) -> tuple[tuple[Any, Any, np.ndarray, np.ndarray], list[dict[str, Any]]]:
    """``(sys0, sysb, T, S, rows)``: the Luré data of the local classes and its power-of-two balancing."""
    from certify.criteria.lmi import balance_lure, lure_system

    local, rows = local_channels(form, q_lower, q_upper)
    sys0, _, _ = lure_system(local, _equilibrium_at(form, centre))
    if sys0.n and sys0.m:
        sysb, T, S = balance_lure(sys0)
    else:
        sysb, T, S = sys0, np.ones(sys0.n), np.ones(sys0.m)
    return (sys0, sysb, T, S), rows


# --- validation -----------------------------------------------------------------------------------

def validate_region(form: Any, cert: RegionCertificate, *, c_round: float = 8.0) -> RegionValidation:
    """Re-check a regional certificate from its numbers alone (docs/theory.md §6.2).

    1. the local slope classes are recomputed on the declared intervals ``I`` and the circle LMI is
       validated with ``P`` and ``T`` in float64 (:func:`certify.criteria.validate.validate_certificate`,
       rounding margin ``c_round``; on the power-of-two balanced system, an exact change of coordinates);
    2. the pre-activations over ``E`` are enclosed in ball arithmetic and must lie in ``I``;
    3. the contraction rate ``ρ² = 1 − m/λ`` with ``m = −(λ̂_max(M) + margin_M)`` and
       ``λ = λ̂_max(P̃) + margin_P`` is formed in ball arithmetic, and ``ρ·sqrt(c) + ‖f(x̂) − x̂‖_P < sqrt(c)``
       is checked there.

    >>> from certify.snof import SNOF, Channel
    >>> f = SNOF(A=[[1.2]], B_p=[[-0.5]], C_q=[[1.0]], channels=(Channel("tanh"),))
    >>> cert = RegionCertificate(np.zeros(1), np.eye(1), 0.25, np.array([-0.6]), np.array([0.6]), np.array([0.5]))
    >>> validate_region(f, cert).ok, validate_region(f, replace(cert, c=0.49)).ok
    (True, False)
    """
    from flint import arb, ctx

    from certify.criteria.validate import LMICertificate, validate_certificate
    from certify.snof.form import channel_levels

    n, m = form.n, form.m
    P = np.asarray(cert.P, dtype=np.float64)
    x = np.asarray(cert.centre, dtype=np.float64).reshape(-1)
    ql, qh = np.asarray(cert.q_lower, float).reshape(-1), np.asarray(cert.q_upper, float).reshape(-1)
    if P.shape != (n, n) or x.shape != (n,) or ql.shape != (m,) or qh.shape != (m,):
        return RegionValidation(False, "the certificate's shapes do not match the system.")
    if not (np.all(np.isfinite(P)) and np.all(np.isfinite(x)) and np.all(np.isfinite(ql)) and np.all(np.isfinite(qh))
            and np.isfinite(cert.c) and cert.c > 0 and np.all(ql <= qh)):
        return RegionValidation(False, "the certificate has non-finite numbers, c ≤ 0 or an empty interval.")
    if not np.array_equal(P, P.T):
        return RegionValidation(False, "P is not symmetric.")
    levels = channel_levels(np.asarray(form.D_qp))
    if levels is None:
        return RegionValidation(False, "the channel graph has a cycle (no explicit evaluation order).")
    (sys0, sysb, T, S), rows = _lure(form, x, ql, qh)
    t = np.asarray(cert.multipliers, dtype=np.float64).reshape(-1)
    if t.shape != (sys0.m,):
        return RegionValidation(False, f"{t.size} multipliers for {sys0.m} non-affine channels.", channels=tuple(rows))
    Pb = P * T[:, None] * T[None, :]          # x = T x̃: exact (powers of two)
    val = validate_certificate(sysb, LMICertificate("circle", Pb, {"T": t * S**2}), c_round=c_round)
    lmi = val.to_dict()
    if not val.ok:
        return RegionValidation(False, f"the circle LMI for the local classes does not validate: {val.reason}.",
                                lmi=lmi, channels=tuple(rows))
    try:
        geo = _Geometry(form, x, P, len(levels))
        lo, hi = geo.enclose(float(cert.c))
    except (ValueError, ZeroDivisionError, ArithmeticError) as exc:
        return RegionValidation(False, f"the enclosure over the ellipsoid failed ({exc}).", lmi=lmi,
                                channels=tuple(rows))
    if not (np.all(lo >= ql) and np.all(hi <= qh)):
        i = int(np.argmax(np.maximum(ql - lo, hi - qh)))
        return RegionValidation(False, f"the pre-activation of channel {i} over the ellipsoid, [{lo[i]:.6g}, "
                                f"{hi[i]:.6g}], leaves the declared interval [{ql[i]:.6g}, {qh[i]:.6g}].", lmi=lmi,
                                enclosure_lower=lo, enclosure_upper=hi, channels=tuple(rows))
    lam_P = float(np.linalg.eigvalsh(Pb).max()) if n else 0.0
    resid = _centre_residual(form, x, P, len(levels))
    with ctx.workprec(PREC_BITS):
        m_dec = -arb(val.max_eig_M) - arb(val.margin_M)
        lam = arb(lam_P) + arb(val.margin_P)
        if not (m_dec > 0 and lam > 0):
            return RegionValidation(False, "no strict decrease margin after the rounding bound.", lmi=lmi,
                                    channels=tuple(rows))
        rho2 = 1 - m_dec / lam
        rho = rho2.sqrt() if rho2 > 0 else arb(0)
        rho_up = max(_up(rho), 0.0)
        sc = arb(float(cert.c)).sqrt()
        inv = arb(rho_up) * sc + arb(resid)
        ok = bool(inv < sc) and rho_up < 1.0
        dist = _up(arb(resid) / (1 - arb(rho_up))) if rho_up < 1.0 else np.inf
    if not ok:
        return RegionValidation(False, f"invariance not shown: ρ·√c + ‖f(x̂) − x̂‖_P = {_up(inv):.6g} is not < √c = "
                                f"{_down(sc):.6g} (ρ = {rho_up:.6g}).", rate=rho_up, residual=resid, lmi=lmi,
                                enclosure_lower=lo, enclosure_upper=hi, channels=tuple(rows))
    return RegionValidation(True, "ellipsoid invariant, contraction validated", rate=rho_up, residual=resid,
                            equilibrium_bound=dist, enclosure_lower=lo, enclosure_upper=hi, lmi=lmi,
                            channels=tuple(rows))


# --- the search -----------------------------------------------------------------------------------

def _solve_circle(sysb: Any, *, solver: str | None, timeout: float | None,
                  options: Mapping[str, Any] | None) -> tuple[Any, str]:
    """A circle certificate for the balanced Luré system (or ``None``) and a short note."""
    from certify.criteria.lmi import Preconditioner, psd_orders, solve_lmi
    from certify.criteria.validate import validate_certificate
    from certify.sdp import solvers as _solvers

    if solver is None and "clarabel" in _solvers.available_solvers() and \
            sum(psd_orders(sysb, "circle", _solvers.get_solver("clarabel"))) <= HIGH_ACCURACY_ORDER:
        solver = "clarabel"  # the search needs decided answers; a first-order backend's are often "inaccurate"
    att = solve_lmi(sysb, "circle", solver=solver, timeout=timeout, solver_options=options)
    if att.proved:
        return att.certificate, att.message
    pc = Preconditioner.lyapunov(sysb) if sysb.n else None
    if pc is not None and att.decision != "infeasible":
        att2 = solve_lmi(pc.apply(sysb), "circle", solver=solver, timeout=timeout, solver_options=options)
        if att2.certificate is not None:
            cert = pc.invert(att2.certificate)
            if validate_certificate(sysb, cert).ok:
                return cert, att2.message
    return None, att.message


def _circle_fixed_P(sysb: Any, Pb: np.ndarray, *, solver: str | None, timeout: float | None,
                    options: Mapping[str, Any] | None) -> np.ndarray | None:
    """Multipliers ``T ≥ 0`` of the circle LMI with ``P`` fixed (maximise τ in ``M(P, T) ⪯ −τI``), or ``None``.

    ``M(P, T) = M(P, 0) + Σ_i t_i He(L_iᵀ R_i)`` is affine in ``T``; τ is bounded by the fixed ``x``-block.
    The answer is only a candidate: :func:`validate_region` decides.
    """
    import cvxpy as cp

    from certify.criteria.validate import assemble_M, lmi_structure
    from certify.sdp import solvers as _solvers

    m = sysb.m
    st = lmi_structure(sysb, "circle")
    M0 = assemble_M(st, Pb, {"T": np.zeros(m)})
    if not m:
        return np.zeros(0) if float(np.linalg.eigvalsh(M0).max()) < 0 else None
    _, L, R = st.terms[0]
    basis = [np.outer(L[i], R[i]) + np.outer(R[i], L[i]) for i in range(m)]
    t, tau = cp.Variable(m, nonneg=True), cp.Variable()
    scale = max(float(np.abs(M0).max()), 1e-300)
    expr = M0 / scale + sum((t[i] * basis[i] for i in range(m)), start=np.zeros_like(M0))
    prob = cp.Problem(cp.Maximize(tau), [(expr + expr.T) / 2 + tau * np.eye(st.N) << 0, tau <= 1.0])
    if solver is None and "clarabel" in _solvers.available_solvers() and st.N <= HIGH_ACCURACY_ORDER:
        solver = "clarabel"
    spec = _solvers.get_solver(solver) if solver else _solvers.choose_solver(st.N)
    out = _solvers.run(prob, spec, timeout=timeout, options=options, psd_orders=(st.N,))
    if not out.has_point or t.value is None or tau.value is None or not float(tau.value) > 0:
        return None
    return np.maximum(np.asarray(t.value, dtype=np.float64), 0.0) * scale


def _fixed_shape(form: Any, x: np.ndarray, best: RegionCertificate, c: float, levels: int, *,
                 solver: str | None, timeout: float | None, options: Mapping[str, Any] | None,
                 ) -> tuple[RegionCertificate | None, RegionValidation | None, str]:
    """The ellipsoid ``E(x̂, P, c)`` with ``best``'s ``P``: classes on its enclosure, multipliers only, validated."""
    geo = _Geometry(form, x, best.P, levels)
    ql, qh = geo.enclose(c)
    if not (np.all(np.isfinite(ql)) and np.all(np.isfinite(qh))):
        return None, None, "enclosure not finite"
    (sys0, sysb, T, S), _ = _lure(form, x, ql, qh)
    if float(np.max(np.abs(np.linalg.eigvals(sysb.A)), initial=0.0)) >= 1.0:
        return None, None, "local lower-slope vertex not Schur"
    Pb = best.P * T[:, None] * T[None, :]
    tb = _circle_fixed_P(sysb, Pb, solver=solver, timeout=timeout, options=options)
    if tb is None:
        return None, None, "circle LMI with the fixed shape P not feasible"
    cert = RegionCertificate(x.copy(), best.P, c, ql, qh, tb / S**2)
    val = validate_region(form, cert)
    return (cert, val, "fixed shape") if val.ok else (None, val, val.reason)


def _global_classes(val: RegionValidation) -> bool:
    """Whether every local slope class is already the channel's global one (nothing left to tighten)."""
    return all(r["slope"] == r["global_slope"] for r in val.channels)


def _enlarge_level(form: Any, x: np.ndarray, start: tuple[RegionCertificate, RegionValidation], levels: int, *,
                   solver: str | None, left: Any, options: Mapping[str, Any] | None, rounds: list[dict[str, Any]],
                   tries: int = 3, max_steps: int = 1000) -> tuple[RegionCertificate, RegionValidation] | None:
    """Grow ``c`` with ``P`` fixed (factor 4, square-rooted after each failure, at most ``tries`` failures,
    while ``rounds`` has fewer than ``max_steps`` entries); the largest validated level, or ``None``."""
    cur: tuple[RegionCertificate, RegionValidation] | None = None
    cert = start[0]
    if _global_classes(start[1]):
        return None
    f, failed = 4.0, 0
    while failed < tries and f > 1.04 and len(rounds) < max_steps:
        budget = left()
        if budget is not None and budget <= 0:
            break
        try:
            new, val, note = _fixed_shape(form, x, cert, cert.c * f, levels, solver=solver, timeout=budget,
                                          options=options)
        except _SEARCH_ERRORS as exc:
            new, val, note = None, None, f"{type(exc).__name__}: {exc}"
        rounds.append({"step": "level", "growth": f, "proved": new is not None,
                       "log_volume": None if new is None else new.log_volume(), "note": "" if new else note})
        if new is not None and val is not None:
            cur, cert = (new, val), new
            if _global_classes(val):
                break
        else:
            f, failed = float(np.sqrt(f)), failed + 1
    return cur


def _fit_level(geo: _Geometry, ql: np.ndarray, qh: np.ndarray, c_hint: float, steps: int = 60) -> float:
    """The largest ``c`` (bisection in ``log c``) whose enclosure lies in ``[ql, qh]``; 0 if none."""
    def fits(c: float) -> bool:
        lo, hi = geo.enclose(c)
        return bool(np.all(lo >= ql) and np.all(hi <= qh))

    a, b = 0.0, max(c_hint, 1e-300)
    while fits(b):
        a, b = b, b * 4.0
        if b > 1e300:
            return a
    lo_c = a if a > 0 else b * 1e-30
    if a == 0.0:
        if not fits(lo_c):
            return 0.0
        a = lo_c
    for _ in range(steps):
        mid = float(np.sqrt(a * b))
        if fits(mid):
            a = mid
        else:
            b = mid
        if b / a < 1.0 + 1e-9:
            break
    return a


def _candidate(form: Any, x: np.ndarray, ql: np.ndarray, qh: np.ndarray, levels: int, *, solver: str | None,
               timeout: float | None, options: Mapping[str, Any] | None, c_hint: float,
               ) -> tuple[RegionCertificate | None, RegionValidation | None, str]:
    """Circle LMI for the classes on ``I = [ql, qh]``, then the largest ``c`` with ``q(E) ⊂ I``, validated."""
    (sys0, sysb, T, S), _ = _lure(form, x, ql, qh)
    rho = float(np.max(np.abs(np.linalg.eigvals(sysb.A)), initial=0.0))
    if rho >= 1.0:  # necessary: M ≺ 0 needs AᵀPA − P ≺ 0 (every slope at its local lower bound, §7.8)
        return None, None, (f"with every slope at its local lower bound the linear part has spectral radius "
                            f"{rho:.6g} ≥ 1")
    cert_b, note = _solve_circle(sysb, solver=solver, timeout=timeout, options=options)
    if cert_b is None:
        return None, None, note
    P = np.asarray(cert_b.P, dtype=np.float64) / T[:, None] / T[None, :]
    P = (P + P.T) / 2.0
    t = np.maximum(np.asarray(cert_b.multipliers.get("T", np.zeros(sys0.m)), dtype=np.float64).reshape(-1), 0.0) / S**2
    if not np.all(np.linalg.eigvalsh(P) > 0):
        return None, None, "the LMI's P is not positive definite"
    geo = _Geometry(form, x, P, levels)
    c = _fit_level(geo, ql, qh, c_hint)
    if not c > 0:
        return None, None, "no ellipsoid of this shape fits the intervals"
    cert = RegionCertificate(x.copy(), P, c, ql.copy(), qh.copy(), t)
    val = validate_region(form, cert)
    return (cert, val, note) if val.ok else (None, val, val.reason)


def _state_rows(cert: RegionCertificate, names: Sequence[str] | None, units: Mapping[str, str] | Sequence[str] | None,
                plant_states: Any) -> list[dict[str, Any]]:
    hw = cert.half_widths()
    n = cert.centre.size
    plant = np.zeros(n, bool)
    if plant_states is not None:
        plant[np.arange(n)[plant_states]] = True
    rows = []
    for j in range(n):
        name = names[j] if names is not None and j < len(names) else f"x[{j}]"
        if isinstance(units, Mapping):
            unit = units.get(name, "")
        elif units is not None and j < len(units):
            unit = units[j]
        else:
            unit = ""
        rows.append({"index": j, "name": name, "unit": unit, "centre": float(cert.centre[j]),
                     "half_width": float(hw[j]), "plant": bool(plant[j])})
    return rows


def describe_extent(rows: Sequence[Mapping[str, Any]], limit: int = 6) -> str:
    """``"p ± 3.2 kg/cm2, E ± 10 MW"``: the ellipsoid's half-width per (plant) state, in its units.

    >>> describe_extent([{"name": "p", "unit": "bar", "half_width": 3.21, "plant": True},
    ...                  {"name": "x[1]", "unit": "", "half_width": 0.5, "plant": False}])
    'p ± 3.21 bar'
    """
    shown = [r for r in rows if r.get("plant")] or list(rows)
    parts = [f"{r['name']} ± {float(r['half_width']):.3g}" + (f" {r['unit']}" if r.get("unit") else "")
             for r in shown[:limit]]
    if len(shown) > limit:
        parts.append(f"… ({len(shown)} states)")
    return ", ".join(parts)


def check_regional(form: Any, *, solver: str | None = None, timeout: float | None = None,
                   solver_options: Mapping[str, Any] | None = None, name: str = "loop.region",
                   state_names: Sequence[str] | None = None,
                   state_units: Mapping[str, str] | Sequence[str] | None = None,
                   plant_states: slice | Sequence[int] | None = None, max_solves: int = 40) -> CheckResult:
    """Certify the largest invariant ellipsoid around the equilibrium inside its region of attraction.

    The result's property is :attr:`~certify.results.Property.REGION` (``region_of_attraction``): it
    never proves global stability and never makes a verdict ``certified`` (docs/loops.md, "Regional
    results").  ``proved`` needs a certificate that :func:`validate_region` accepts: local slope classes
    on rigorously enclosed pre-activation intervals, the circle LMI validated in float64, and the
    invariance inequality in ball arithmetic (docs/theory.md §6.2).

    Search: start with intervals of half-width ``FIRST_WIDTH·max(1, |q̂_i|)`` around the equilibrium's
    pre-activations; in each round solve the circle LMI for the local classes (shape ``P``), take the
    largest ``c`` whose enclosure fits the intervals, validate, and grow the intervals to the enclosure
    of ``E(P, θc)``; ``θ`` starts at ``GROWTH`` and is square-rooted after each round that does not
    enlarge the volume, until it is below ``MIN_GROWTH``.  The ellipsoid of largest volume is kept.

    Parameters
    ----------
    form : SNOF
        The closed loop (no exogenous input is used: ``w = 0``); its channel graph must be acyclic.
    solver, solver_options : optional
        Conic backend and its options (:func:`certify.criteria.lmi.solve_lmi`).
    timeout : float or None
        Seconds for the whole search; the best ellipsoid validated so far is kept when it runs out.
    name : str
        The check's name (default ``loop.region``).
    state_names, state_units : optional
        Labels and units of the states (a sequence, or a mapping name → unit) for the report.
    plant_states : slice or sequence of int, optional
        Which states are the plant's (physical units); the report's one-line extent shows those.
    max_solves : int
        Cap on the LMI solves of the search (shape and level steps together).

    Returns
    -------
    CheckResult
        ``quantities``: ``ellipsoid`` (centre, P, c, half-widths, semi-axes), ``states`` (half-width per
        state with name and unit), ``channels`` (pre-activation interval and local slope class per
        channel), ``contraction_rate``, ``residual_P_norm``, ``equilibrium_distance_P_norm``, ``lmi`` and
        ``rounds``.

    >>> from certify.snof import SNOF, Channel
    >>> f = SNOF(A=[[1.2]], B_p=[[-0.5]], C_q=[[1.0]], channels=(Channel("tanh"),))  # second equilibria ±2.46
    >>> r = check_regional(f)
    >>> r.status.value, r.property.value, 0.95 < r.quantities["states"][0]["half_width"] <= 1.0317
    ('proved', 'region_of_attraction', True)
    """
    from certify.snof.form import channel_levels
    from certify.snof.transform import equilibrium

    t0 = time.perf_counter()
    q: dict[str, Any] = {"method": "invariant_ellipsoid_local_slopes", "criterion": "circle"}

    def result(status: CheckStatus, msg: str, **kw: Any) -> CheckResult:
        return CheckResult(name=name, property=Property.REGION, status=status, criterion="circle_local_slopes",
                           message=msg, quantities=q, seconds=time.perf_counter() - t0, **kw)

    from certify.snof.form import SNOF

    if not isinstance(form, SNOF):
        return result(CheckStatus.NOT_APPLICABLE, "the regional analysis needs the loop as a SNOF (LP-GRNN, Elman, "
                      "SS-NN soft sensors); gated networks (GRU, LSTM) are not covered.")
    if form.n == 0:
        return result(CheckStatus.NOT_APPLICABLE, "the system has no state; there is no region to certify.")
    levels = channel_levels(np.asarray(form.D_qp))
    if levels is None:
        return result(CheckStatus.NOT_APPLICABLE, "the channel graph has a cycle: the regional enclosure needs an "
                      "explicit evaluation order.")
    eq = equilibrium(form)
    q["equilibrium"] = eq.to_dict()
    if not eq.found:
        return result(CheckStatus.NOT_PROVED, f"no equilibrium found (residual {eq.residual:.2e}); a region of "
                      "attraction is about an equilibrium.")
    x = np.asarray(eq.x, dtype=np.float64)
    q_hat = np.asarray(eq.q, dtype=np.float64)
    left = (lambda: None) if timeout is None else (lambda: timeout - (time.perf_counter() - t0))
    width = FIRST_WIDTH * np.maximum(1.0, np.abs(q_hat))
    ql, qh = q_hat - width, q_hat + width
    best: tuple[RegionCertificate, RegionValidation] | None = None
    theta = GROWTH
    rounds: list[dict[str, Any]] = []
    last_note = ""
    while len(rounds) < max_solves:
        budget = left()
        if budget is not None and budget <= 0:
            last_note = "the time budget ran out"
            break
        try:
            cert, val, note = _candidate(form, x, ql, qh, len(levels), solver=solver, timeout=budget,
                                         options=solver_options, c_hint=best[0].c if best else 1e-6)
        except _SEARCH_ERRORS as exc:  # a numerical failure of one step is a failed step, never a proof
            cert, val, note = None, None, f"{type(exc).__name__}: {exc}"

        rounds.append({"step": "shape", "q_halfwidth_max": float(np.max(qh - ql, initial=0.0) / 2),
                       "growth": theta, "proved": cert is not None,
                       "log_volume": None if cert is None else cert.log_volume(), "note": "" if cert else note})
        # the same shape, larger levels: only the multipliers are solved for (Boyd et al. 1994, §5.2)
        start = (cert, val) if cert is not None and val is not None else best  # val: cert's validation
        if start is not None:
            grown = _enlarge_level(form, x, start, len(levels), solver=solver, left=left, options=solver_options,
                                   rounds=rounds, max_steps=max_solves)
            if grown is not None:
                cert, val = grown
        improved = cert is not None and (best is None or cert.log_volume() > best[0].log_volume() + 1e-3)
        if improved:
            assert cert is not None and val is not None
            best = (cert, val)
            if _global_classes(val):
                q["global_classes"] = True  # nothing left to tighten: the same P holds for every c
                break
        elif best is None:
            if len(rounds) == 1:  # retry once much closer to the linearisation
                ql, qh = q_hat - 1e-3 * width, q_hat + 1e-3 * width
                last_note = note
                continue
            last_note = note
            break
        else:
            theta = float(np.sqrt(theta))
            last_note = note
            if theta < MIN_GROWTH:
                break
        geo = _Geometry(form, x, best[0].P, len(levels))
        ql, qh = geo.enclose(best[0].c * theta)
    q["rounds"] = rounds
    if best is None:
        return result(CheckStatus.NOT_PROVED, "no invariant ellipsoid was certified around the equilibrium: the circle "
                      f"LMI with local slope classes failed even on small intervals ({last_note}). The "
                      "linearisation at the equilibrium may not be stable.")
    cert, val = best
    rows = list(val.channels)
    assert val.enclosure_lower is not None and val.enclosure_upper is not None  # set on every validated region
    for r, a, b in zip(rows, val.enclosure_lower, val.enclosure_upper):
        r["q_enclosure"] = [float(a), float(b)]
    states = _state_rows(cert, state_names, state_units, plant_states)
    q.update({
        "ellipsoid": {**cert.to_dict(), "half_widths": cert.half_widths().tolist(),
                      "semi_axes": cert.semi_axes().tolist(), "log_volume": cert.log_volume()},
        "states": states, "channels": rows, "contraction_rate": val.rate, "residual_P_norm": val.residual,
        "equilibrium_distance_P_norm": val.equilibrium_bound, "lmi": dict(val.lmi),
        "global_stability": "not proved by this check",
    })
    sat = [r for r in rows if r["kind"] == "saturation"]
    sat_note = ""
    if sat and all(r["base_slope"] == [1.0, 1.0] for r in sat):
        sat_note = " The actuator does not saturate anywhere in it (local slope 1)."
    if q.get("global_classes"):
        sat_note += (" The local slope classes are already the global ones, so the same certificate holds for "
                     "every larger level c.")
    msg = (f"region of attraction (not global stability): the ellipsoid (x − x̂)ᵀP(x − x̂) ≤ {cert.c:.4g} around the "
           f"equilibrium is invariant and every trajectory that starts in it converges to the equilibrium "
           f"(contraction factor {val.rate:.6g} per step in the P-norm; circle LMI with local slope classes, "
           f"validated, max eig M = {val.lmi.get('max_eig_M', float('nan')):.3e}). Extent: "
           f"{describe_extent(states)}.{sat_note} Global stability is not proved by this check.")
    return result(CheckStatus.PROVED, msg, margin=val.lmi.get("max_eig_M"), validation=dict(val.lmi))


def loop_state_labels(cl: Any, spec: Any) -> list[str]:
    """Names of the closed-loop states: the plant's, ``net.x[i]``, then the PI's (``pi.u_prev``, ``pi.e_prev``
    in velocity form; ``pi.xi``, ``pi.u_prev`` in positional form)."""
    names = list(spec.plant.state_names) or [f"plant.x[{i}]" for i in range(cl.n_plant)]
    names += [f"net.x[{i}]" for i in range(cl.n_net)]
    names += ["pi.u_prev", "pi.e_prev"] if spec.controller.form == "velocity" else ["pi.xi", "pi.u_prev"]
    return names[: cl.form.n]


def check_loop_region(cl: Any, spec: Any, *, solver: str | None = None, timeout: float | None = None,
                      solver_options: Mapping[str, Any] | None = None,
                      state_units: Mapping[str, str] | Sequence[str] | None = None) -> CheckResult:
    """:func:`check_regional` on an assembled loop (:func:`certify.loop.assemble.assemble`), with the states
    labelled by :func:`loop_state_labels` and the plant's states (absolute, physical units) marked.

    >>> from certify.networks import ElmanLayer, LinearHead, Network
    >>> from certify.loop.assemble import assemble
    >>> from certify.loop.spec import default_loop
    >>> net = Network((ElmanLayer(W=np.zeros((1, 4)), U=[[0.5]], b=[0.0]),),
    ...               head=LinearHead(W=[[0.1]], b=[-30.0], D=[[1.2, 0, 0, 0]]))
    >>> spec = default_loop("boiler")
    >>> r = check_loop_region(assemble(net, spec), spec)
    >>> r.name, r.status.value, [s["name"] for s in r.quantities["states"] if s["plant"]]
    ('loop.region', 'proved', ['p', 'E'])
    """
    return check_regional(getattr(cl, "form", None), solver=solver, timeout=timeout, solver_options=solver_options,
                          state_names=loop_state_labels(cl, spec), state_units=state_units,
                          plant_states=cl.plant_states)
