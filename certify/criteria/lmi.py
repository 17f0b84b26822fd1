"""Kim-type Luré–Postnikov LMI and its circle/Popov special cases on a SNOF (docs/theory.md §7).

The LMI is Hilgert & Schwung 2025, Theorem III.1 (after Kim 2009), with blocks derived in theory §7.2–7.3.

Pipeline of :func:`check_lmi` — a chain of reductions, each an (apply, invert) pair — equilibrium +
shift (theory §4.3) → slope normalisation to [0, K] (§4.2) → power-of-two balancing (exact, §7.7) →
well-posedness (§2) → criteria, cheapest first → float64 validation (:mod:`certify.criteria.validate`)
in the coordinates the LMI data was built in (balancing and the Lyapunov preconditioner are mapped
back and the certificate is validated again there).

The SDP (:func:`solve_lmi`) is the congruence form ``M(P, t) + τI ⪯ 0`` or its Schur-complement form
(:func:`psd_form`; theory §7.6) in δ-operator coordinates (``H = [A − I, B, 0]``), normalised by the same scale functional ``s(P, t) = 1`` the
validation uses in its rounding bound, and it maximises the relative margin τ in ``M ⪯ −τI``
(a first-order backend is asked only for ``τ ≥ cap``).  It is always feasible, so an interior-point
backend never has to detect infeasibility; a negative optimal τ is the LMI's infeasibility, proved
when the dual matrix passes :func:`certify.criteria.validate.validate_infeasibility`.
Only a validated certificate yields ``proved``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from certify.criteria.reductions import Balancing, Preconditioner, balance_lure  # noqa: F401 - re-exported
from certify.criteria.validate import (
    CRITERIA,
    LMICertificate,
    LureSystem,
    ValidationResult,
    lmi_structure,
    scale_weights,
    validate_certificate,
)
from certify.results import CheckResult, CheckStatus, Property
from certify.sdp import solvers as _solvers

#: ``auto`` order: by cost (PSD order n + m, then n + 2m with 3, then 4–5 multipliers).  Each criterion
#: contains the previous one (theory §7.4).
_AUTO_ORDER = ("circle", "popov", "lure_postnikov")
_CONTAINED = {"circle": (), "popov": ("circle",), "lure_postnikov": ("circle", "popov")}
#: vertex pre-check before the SDP only while it is cheap (vertices × n³ flops)
_VERTEX_UPFRONT_FLOPS = 5e7
#: an interior-point backend's optimal relative margin below −this is "infeasible"; between it and the
#: rounding bound (and for a first-order backend's margins) the solver's accuracy cannot tell, and the
#: fallback chain (other scalings, other backends) takes over
_DECIDE_INFEASIBLE = 1e-5
#: two high-accuracy solves with an optimal relative margin below this and no validated point end a criterion's
#: fallback chain: the LMI sits on the boundary of feasibility (or beyond it)
_MARGINAL_TAU = 1e-9
#: a first-order backend's SDP goes to a high-accuracy backend early when its PSD order is at most this many
#: times that backend's ``max_order_hint``
_EARLY_ACCURATE_ORDER_FACTOR = 2
#: SCS's first try uses its indirect (conjugate-gradient) linear solver from this many non-zeros in the conic data
_INDIRECT_NNZ = 100_000


@dataclass(frozen=True)
class VertexCheck:
    """Necessary condition: every vertex gain ``Δ ∈ {0, K}^m`` gives a Schur ``A + BΔ(I − DΔ)⁻¹C``."""

    ok: bool
    checked: int
    exhaustive: bool
    worst_rho: float
    worst_vertex: tuple[int, ...]
    detail: str
    marginal_vertex: tuple[int, ...] | None = None


def vertex_check(sys: LureSystem, *, max_exhaustive: int = 10, n_random: int = 64, seed: int = 0) -> VertexCheck:
    """Check vertex gains: all ``2^m`` when ``m ≤ max_exhaustive``; otherwise all-zero, all-K, every
    single-channel vertex and ``n_random`` random vertices (seeded).  A vertex with spectral radius
    ≥ 1 (or a singular ``I − DΔ``) makes every LMI of this module infeasible.

    >>> s = LureSystem(A=[[0.5]], B=[[-2.0]], C=[[1.0]], D=[[0.0]], K=[1.0])
    >>> vc = vertex_check(s)
    >>> vc.ok, vc.checked, round(vc.worst_rho, 3)
    (False, 2, 1.5)
    """
    m = sys.m
    if m <= max_exhaustive:
        ids = ((np.arange(2**m)[:, None] >> np.arange(m)[None, :]) & 1).astype(bool)
        exhaustive = True
    else:
        rng = np.random.default_rng(seed)
        ids = np.vstack([np.zeros((1, m), bool), np.ones((1, m), bool), np.eye(m, dtype=bool),
                         rng.random((n_random, m)) < 0.5])
        exhaustive = False
    from scipy.linalg import solve_triangular

    from certify.snof.form import channel_levels

    levels = channel_levels(sys.D)   # nilpotent: I − DΔ is unit lower triangular in level order
    perm = np.concatenate(levels) if levels is not None and m else np.arange(m)
    Dp, Cp, Bp, Kp = sys.D[np.ix_(perm, perm)], sys.C[perm], sys.B[:, perm], sys.K[perm]
    worst, marginal = -1.0, None
    worst_v: tuple[int, ...] = ()
    for v in ids:
        d = np.where(v[perm], Kp, 0.0)
        Im = np.eye(m) - Dp * d[None, :]
        if m and levels is None and np.linalg.cond(Im) > 1e12:
            rho = np.inf
        else:
            X = (solve_triangular(Im, Cp, lower=True, unit_diagonal=True) if levels is not None
                 else np.linalg.solve(Im, Cp)) if m else Cp
            Acl = sys.A + (Bp * d[None, :]) @ X if m else sys.A
            rho = float(np.max(np.abs(np.linalg.eigvals(Acl)), initial=0.0))
        if marginal is None and abs(rho - 1.0) < 1e-9:
            marginal = tuple(int(i) for i in np.flatnonzero(v))
        if rho > worst:
            worst, worst_v = rho, tuple(int(i) for i in np.flatnonzero(v))
    ok = worst < 1.0
    what = f"all {len(ids)}" if exhaustive else f"{len(ids)} sampled"
    detail = (f"{what} vertex gains checked; max spectral radius {worst:.6g}"
              + ("" if ok else f" at slopes K on channels {list(worst_v)[:20]} (0 elsewhere)"))
    return VertexCheck(bool(ok), len(ids), exhaustive, float(worst), worst_v, detail, marginal)


@dataclass(frozen=True)
class LMIAttempt:
    """One SDP solve: certificate (or None), backend outcome, validation, the SDP's margin τ and timings.

    ``decision``: ``"proved"`` (validated), ``"infeasible"`` (the backend's optimal relative margin
    τ* ≤ 0, so no certificate exists to its accuracy), or ``"undecided"`` (backend failure, refusal, or
    a point that failed validation).
    """

    criterion: str
    certificate: LMICertificate | None
    outcome: _solvers.SolveOutcome | None
    validation: ValidationResult | None
    order: int
    n_variables: int
    build_seconds: float
    message: str
    validate_seconds: float = 0.0
    tau: float | None = None
    decision: str = "undecided"
    scaling: str = "balanced"
    retry: bool = False
    #: a validated-or-not dual (infeasibility) certificate, when one was checked
    #: (:func:`certify.criteria.validate.validate_infeasibility`)
    dual: Any = None

    @property
    def proved(self) -> bool:
        return self.validation is not None and self.validation.ok

    def to_dict(self) -> dict[str, Any]:
        o = self.outcome
        return {"criterion": self.criterion, "proved": self.proved, "decision": self.decision,
                "message": self.message, "order": self.order, "variables": self.n_variables,
                "scaling": self.scaling, "retry": self.retry, "sdp_margin": self.tau,
                "seconds_build": self.build_seconds,
                "seconds_compile": None if o is None else o.compile_seconds,
                "seconds_solve": None if o is None else o.solve_seconds,
                "seconds_validate": self.validate_seconds,
                "solver": None if o is None else o.solver,
                "solver_status": None if o is None else o.raw_status,
                "iterations": None if o is None else o.iterations,
                "relative_margin": None if self.validation is None else self.validation.relative_margin,
                "dual_certificate": None if self.dual is None else self.dual.to_dict()}


def psd_form(sys: LureSystem, criterion: str, spec: _solvers.SolverSpec | None = None) -> str:
    """``"congruence"`` (``M ⪯ −τI`` directly, PSD order ``N``) for an interior-point ``spec``, whose KKT system
    holds a dense block of order ``k(k + 1)/2`` per PSD cone of order ``k`` (so the cost of an iteration
    grows like ``k⁶``: the Schur form's extra ``n`` rows made Clarabel 5–6 times slower on loop LMIs);
    otherwise (first-order backends, or ``spec`` not given) when ``H = [A − I, B]`` is so sparse that
    ``H'PH`` puts at most 4 times as many non-zeros into the cone data (``nnz(H)²``) as the Schur form's
    extra blocks ``PH``, ``H'P`` and ``−P`` (``2n·nnz(H) + n²``): LP-GRNNs, whose ``A`` is diagonal, and
    loops around them; else ``"schur"``
    (order ``N + n``, P enters linearly; theory §7.6).
    The smaller PSD block makes each first-order iteration cheaper (eigendecompositions cost ``O(k³)``).

    >>> dense = LureSystem(A=np.full((10, 10), 0.05), B=np.ones((10, 1)), C=np.ones((1, 10)), D=[[0.0]], K=[1.0])
    >>> psd_form(dense, "popov"), psd_orders(dense, "popov")
    ('schur', (22,))
    >>> z = np.diag([0.3, 0.5, 0.7, 0.4])        # LP-GRNN-like: A = diag(z), B = [0, I − Z]
    >>> psd_form(LureSystem(A=z, B=np.hstack([np.zeros((4, 4)), np.eye(4) - z]), C=np.ones((8, 4)),
    ...                     D=np.zeros((8, 8)), K=np.ones(8)), "lure_postnikov")
    'congruence'
    """
    if spec is not None and spec.interior_point:
        return "congruence"
    nnz_h = int(np.count_nonzero(sys.A - np.eye(sys.n)) + np.count_nonzero(sys.B))
    n = sys.n
    return "congruence" if nnz_h * nnz_h <= 4 * (2 * n * nnz_h + n * n) else "schur"


def psd_orders(sys: LureSystem, criterion: str, spec: _solvers.SolverSpec | None = None) -> tuple[int, ...]:
    """PSD cone orders of :func:`solve_lmi`'s SDP: ``N`` in the congruence form, ``N + n`` in the Schur form
    (``N = n + m`` for circle, ``n + 2m`` otherwise; see :func:`psd_form`, which depends on the backend).

    >>> psd_orders(LureSystem(A=[[0.5, 0.1], [0.2, 0.5]], B=[[1.0], [1.0]], C=[[1.0, 0.0]], D=[[0.0]],
    ...                       K=[1.0]), "popov")
    (4,)
    """
    N = sys.n + (sys.m if criterion == "circle" else 2 * sys.m)
    return (N,) if psd_form(sys, criterion, spec) == "congruence" else (N + sys.n,)


def choose_lmi_solver(sys: LureSystem, criterion: str) -> _solvers.SolverSpec:
    """Default backend for ``criterion``'s SDP on ``sys``: the first installed backend (registry order) whose
    ``max_order_hint`` covers the PSD order of the form it would solve (:func:`psd_form`), else the one with
    the largest hint.

    >>> s = LureSystem(A=[[0.5]], B=[[-1.0]], C=[[1.0]], D=[[0.0]], K=[1.0])
    >>> choose_lmi_solver(s, "circle").name
    'clarabel'
    """
    for name in _solvers.available_solvers():
        spec = _solvers.get_solver(name)
        if sum(psd_orders(sys, criterion, spec)) <= spec.max_order_hint:
            return spec
    return _solvers.choose_solver(sum(psd_orders(sys, criterion)))


def solve_lmi(sys: LureSystem, criterion: str, *, solver: str | None = None, margin: float | None = None,
              timeout: float | None = None, solver_options: Mapping[str, Any] | None = None,
              retry: bool = False, memory_fraction: float = 0.5, form: str | None = None,
              assembly: str = "auto", polish: bool = True) -> LMIAttempt:
    """Build and solve one criterion's SDP, then validate the returned certificate in float64.

    ``form``: ``"schur"`` or ``"congruence"`` (default: :func:`psd_form`).  ``assembly``: ``"direct"``
    writes the conic data itself (:mod:`certify.sdp.conic`, SCS only), ``"cvxpy"`` goes through CVXPY;
    ``"auto"`` (default) is direct for SCS.  ``polish``: when the backend's point fails validation,
    recompute ``P`` for its multipliers from the Riccati equation (:mod:`certify.sdp.riccati`) and
    validate that instead.

    The SDP (variables ``P = P'``, ``t_j ≥ 0``, ``τ``)::

        maximise τ  s.t.  [[Q(t) + He(E_x'PH) + τI, H'P], [PH, −P]] ⪯ 0,   s(P, t) = 1,   τ ≤ cap

    with ``H = [A − I, B, 0]`` and ``s`` the scale functional of
    :func:`certify.criteria.validate.scale_weights`; by the Schur complement the first constraint is
    ``M(P, t) ⪯ −τI`` (``P ⪰ 0`` is implied by the ``−P`` block).  ``cap`` is ``margin`` (default: the
    backend's ``default_margin``; 1.0 = no cap).  A first-order backend (SCS) first gets the equivalent
    homogeneous feasibility problem instead: ``M ⪯ −I`` at free scale (relative margin ``1/s(P, t)``),
    which it solves in tens of iterations where maximising τ takes hundreds; its retry (``retry=True``)
    maximises τ, which decides infeasibility without an infeasibility certificate.  Validation accepts the
    point when ``max eig M ≤ −c·(k + N)·u·s``, i.e. when the relative margin exceeds a rounding bound of
    order 1e-13: the solver is asked for strictly more than validation requires, in the same units.

    >>> s = LureSystem(A=[[0.5]], B=[[-1.0]], C=[[1.0]], D=[[0.0]], K=[1.0])
    >>> att = solve_lmi(s, "circle")
    >>> att.proved, att.decision
    (True, 'proved')
    """
    import cvxpy as cp
    import scipy.sparse as sp

    t0 = time.perf_counter()
    st = lmi_structure(sys, criterion)
    n, m, N = sys.n, sys.m, st.N
    spec = _solvers.get_solver(solver) if solver else choose_lmi_solver(sys, criterion)
    form = form or psd_form(sys, criterion, spec)
    orders = (N,) if form == "congruence" else (N + n,)
    cap = spec.default_margin if margin is None else float(margin)
    a, b = scale_weights(st)
    n_vars = n * (n + 1) // 2 + m * len(st.multiplier_names) + 1
    common = dict(order=sum(orders), n_variables=n_vars, retry=retry)
    if assembly == "direct" or (assembly == "auto" and spec.name == "scs"):
        if spec.name != "scs":
            raise ValueError(f"direct assembly is implemented for SCS only, not {spec.name}")
        from certify.sdp.conic import build_lmi_conic, run_scs

        data = build_lmi_conic(st.H, st.Ex, st.terms if m else (), st.multiplier_names if m else (), form=form,
                               objective="max_margin" if retry else "feasibility", weights=(a, b),
                               cap=None if cap is None or cap >= 1.0 else cap)
        build = time.perf_counter() - t0
        opts = dict(spec.retry_options if retry else spec.options)
        if not retry and data.A.nnz >= _INDIRECT_NNZ and _scs_indirect_available():
            # large conic data: conjugate gradients instead of factoring the KKT matrix (SCS's setup was 11 % of
            # a loop LMI at hidden 256, and the indirect solve is 15–25 % faster in all); the retry factors
            opts["linear_solver"] = "cpu_indirect"
        opts.update(solver_options or {})
        out, x, y = run_scs(data, opts, timeout=timeout)
        point = None if x is None else data.unpack(x)
        # the max-margin problem's dual (congruence form) is a candidate infeasibility certificate when τ* < 0
        dual = data.psd_dual(y) if y is not None and retry and form == "congruence" else None
        return _decide(sys, st, criterion, spec, out, point, polish and _time_left(t0, timeout),
                       dict(common, build_seconds=build), dual=dual)
    P = cp.Variable((n, n), symmetric=True)
    tau = cp.Variable()
    t = {name: cp.Variable(m, nonneg=True) for name in st.multiplier_names} if m else {}
    Q: Any = sp.csr_matrix((N, N))
    for name, L, R in st.terms if m else ():
        X = sp.csr_matrix(L.T) @ cp.multiply(cp.reshape(t[name], (m, 1), order="F"), R)
        Q = Q + X + X.T
    Ex = sp.csr_matrix(st.Ex)
    if form == "congruence":
        Hs = sp.csr_matrix(st.H)
        PH = P @ Hs
        XP = Ex.T @ PH
        S = Q + Hs.T @ PH + XP + XP.T + tau * sp.eye(N)   # = M(P, t) + τI, symmetric by construction
    else:
        PH = P @ st.H
        XP = Ex.T @ PH
        top = Q + XP + XP.T + tau * sp.eye(N)
        S = cp.bmat([[top, PH.T], [PH, -P]])
    norm = a * cp.trace(P) + sum((b[k] * cp.sum(v) for k, v in t.items()), start=0.0)
    lmi_con = S << 0
    if spec.interior_point or retry:
        cons = [lmi_con, norm == 1.0]
        if cap is not None:
            cons.append(tau <= cap)
        prob = cp.Problem(cp.Maximize(tau), cons)
    else:
        # first order, first try: the homogeneous feasibility problem M ⪯ −I (τ = 1 at free scale, i.e. a
        # relative margin 1/s(P, t)), which a first-order method solves in tens of iterations; validation
        # needs 1/s above the rounding bound.  Its infeasibility is slow to detect, so the retry maximises τ
        # on the bounded, always feasible normalised problem instead.
        cons = [lmi_con, tau == 1.0]
        prob = cp.Problem(cp.Minimize(0), cons)
    build = time.perf_counter() - t0
    out = _solvers.run(prob, spec, timeout=timeout, options=solver_options, retry=retry, psd_orders=orders,
                       memory_fraction=memory_fraction)
    point = None
    if out.has_point and P.value is not None and tau.value is not None:
        t_values: dict[str, Any] = {k: v.value for k, v in t.items()}  # a point: every variable has a value
        point = (P.value, t_values, float(tau.value))
    # the congruence form's dual matrix is a candidate infeasibility certificate when τ* < 0 (theory §7.6)
    dual = lmi_con.dual_value if form == "congruence" and (spec.interior_point or retry) else None
    return _decide(sys, st, criterion, spec, out, point, polish and _time_left(t0, timeout),
                   dict(common, build_seconds=build), dual=dual)


def _scs_indirect_available() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("scs._scs_indirect") is not None
    except (ImportError, ValueError):
        return False


def _time_left(t0: float, timeout: float | None) -> bool:
    return timeout is None or time.perf_counter() - t0 < timeout


def _decide(sys: LureSystem, st: Any, criterion: str, spec: _solvers.SolverSpec, out: _solvers.SolveOutcome,
            point: tuple[np.ndarray, dict[str, np.ndarray], float] | None, polish: bool,
            common: dict[str, Any], dual: Any = None) -> LMIAttempt:
    """Validate a backend's point (and, when it fails, its Riccati polish) and decide (theory §7.6, §7.9).

    When the point does not validate, the backend's optimal margin is negative and it returned the dual
    matrix ``Y`` of the congruence-form constraint, ``Y`` is checked as an infeasibility certificate
    (:func:`dual_certificate`); a validated one decides ``infeasible`` whatever the backend's accuracy."""
    if out.status == "infeasible":   # the backend's infeasibility certificate of M ⪯ −I (feasibility form)
        decided = spec.accuracy == "high"   # a first-order certificate is approximate: not a decision
        return LMIAttempt(criterion, None, out, None, message=f"{criterion} LMI: {spec.name} reports M ⪯ −I "
                          f"infeasible ({out.raw_status})" + ("." if decided else "; not trusted as a decision "
                          "(first-order accuracy): the solver could not decide."),
                          decision="infeasible" if decided else "undecided", **common)
    if not out.has_point or point is None:
        msg = out.message or f"{spec.name} returned {out.raw_status} without a point: the solver could not decide"
        return LMIAttempt(criterion, None, out, None, message=f"{criterion} LMI: {msg}.", **common)
    P_v, mult, tau_v = point
    cert = LMICertificate(criterion, P_v, mult)
    tv = time.perf_counter()
    val = validate_certificate(sys, cert)
    polished = ""
    if not val.ok and polish and sys.n and sys.m and tau_v > 0:
        pol = _riccati_polish(sys, st, cert, tau_v)
        if pol is not None:
            pval = validate_certificate(sys, pol)
            if pval.ok:
                cert, val, polished = pol, pval, " after recomputing P for the solver's multipliers (Riccati polish)"
    dual_res = None
    if not val.ok and dual is not None and tau_v < 0:
        dual_res = dual_certificate(sys, criterion, dual)
    validate_s = time.perf_counter() - tv
    if val.ok:
        decision = "proved"
        msg = f"{criterion} LMI certificate validated{polished} (relative margin {val.relative_margin:.2e})"
    elif dual_res is not None and dual_res.ok:
        decision = "infeasible"
        msg = (f"{criterion} LMI infeasible, proved by a validated dual certificate (min eig Z = "
               f"{dual_res.min_eig_Z:.2e} > rounding bound {dual_res.margin_Z:.1e}; {spec.name}'s optimal "
               f"relative margin τ* = {tau_v:.2e})")
    elif out.status == "solved" and spec.accuracy == "high" and tau_v <= -_DECIDE_INFEASIBLE:
        decision = "infeasible"
        msg = (f"{criterion} LMI infeasible: {spec.name}'s optimal relative margin is "
               f"τ* = {tau_v:.2e} < 0 in M ⪯ −τI with s(P, t) = 1")
    else:
        decision = "undecided"
        msg = (f"{criterion} LMI: {spec.name} returned {out.raw_status} with τ = {tau_v:.2e} but validation "
               f"failed ({val.reason}): the solver could not decide")
    return LMIAttempt(criterion, cert, out, val, message=msg + ".", validate_seconds=validate_s, tau=tau_v,
                      decision=decision, dual=dual_res, **common)


def _riccati_polish(sys: LureSystem, st: Any, cert: LMICertificate, tau: float) -> LMICertificate | None:
    """The certificate with ``P`` recomputed for its (projected) multipliers from the stabilising solution of
    the KYP Riccati equation at half the SDP's margin ``τ`` (theory §7.6); ``None`` when it does not exist."""
    from certify.criteria.validate import assemble_M
    from certify.sdp.riccati import riccati_P

    mult = {k: np.maximum(np.asarray(v, dtype=np.float64).reshape(-1), 0.0) for k, v in cert.multipliers.items()}
    n = sys.n
    Q = assemble_M(st, np.zeros((n, n)), mult)
    # the SDP's own scale: feasibility form τ = 1 at free scale; max-margin form τ relative to s(P, t) = 1
    P = riccati_P(st.G[:, :n], st.G[:, n:], Q, 0.5 * tau)
    return None if P is None else LMICertificate(cert.criterion, P, mult)


def infeasibility_certificate(sys: LureSystem, criterion: str, *, solver: str = "clarabel",
                              timeout: float | None = None) -> tuple[np.ndarray | None, Any]:
    """A dual certificate that ``criterion``'s LMI is infeasible on ``sys``, checked in float64.

    Solves the normalised max-margin SDP of :func:`solve_lmi` (congruence form, ``M(P, t) + τI ⪯ 0``) through
    CVXPY and takes the dual matrix ``Y ⪰ 0`` of the LMI constraint; when the optimal ``τ*`` is negative,
    ``Y`` satisfies ``Z(Y) = −τ*·a·I ≻ 0`` and ``c(Y) ≥ −τ*·b > 0`` (theory §7.6), which
    :func:`certify.criteria.validate.validate_infeasibility` re-checks from the factor ``W`` (``Y = WW'``).
    Returns ``(W, result)``; ``W`` is ``None`` when the backend returned no dual.

    >>> bad = LureSystem(A=[[0.5]], B=[[-2.0]], C=[[1.0]], D=[[0.0]], K=[1.0])   # vertex gain 1: x⁺ = −1.5x
    >>> infeasibility_certificate(bad, "lure_postnikov")[1].ok
    True
    >>> good = LureSystem(A=[[0.5]], B=[[-1.0]], C=[[1.0]], D=[[0.0]], K=[1.0])
    >>> infeasibility_certificate(good, "circle")[1].ok
    False
    """
    import cvxpy as cp
    import scipy.sparse as sp

    from certify.criteria.validate import validate_infeasibility

    st = lmi_structure(sys, criterion)
    n, m, N = sys.n, sys.m, st.N
    a, b = scale_weights(st)
    P = cp.Variable((n, n), symmetric=True)
    tau = cp.Variable()
    t = {name: cp.Variable(m, nonneg=True) for name in st.multiplier_names}
    Q: Any = sp.csr_matrix((N, N))
    for name, L, R in st.terms:
        X = sp.csr_matrix(L.T) @ cp.multiply(cp.reshape(t[name], (m, 1), order="F"), R)
        Q = Q + X + X.T
    Hs = sp.csr_matrix(st.H)
    XP = sp.csr_matrix(st.Ex).T @ (P @ Hs)
    S = Q + Hs.T @ (P @ Hs) + XP + XP.T + tau * sp.eye(N)
    lmi = S << 0
    norm = a * cp.trace(P) + sum((b[k] * cp.sum(v) for k, v in t.items()), start=0.0)
    prob = cp.Problem(cp.Maximize(tau), [lmi, norm == 1.0, tau <= 1.0])
    _solvers.run(prob, _solvers.get_solver(solver), timeout=timeout)
    W = _dual_factor(lmi.dual_value, N)
    return W, validate_infeasibility(sys, criterion, np.zeros((N, 0)) if W is None else W)


def _dual_factor(Y: Any, N: int) -> np.ndarray | None:
    """``W`` with ``WW' ≈ Y`` from the PSD part of a backend's dual matrix (``None``: no usable dual)."""
    if Y is None:
        return None
    Y = np.asarray(Y, dtype=np.float64)
    if Y.shape != (N, N) or not np.all(np.isfinite(Y)):
        return None
    lam, V = np.linalg.eigh((Y + Y.T) / 2.0)
    keep = lam > 1e-12 * max(float(lam.max(initial=0.0)), 0.0)
    return V[:, keep] * np.sqrt(lam[keep])[None, :]


def dual_certificate(sys: LureSystem, criterion: str, Y: Any) -> Any:
    """Check a backend's dual matrix ``Y`` of the congruence-form constraint ``M(P, t) + τI ⪯ 0`` as a proof
    that ``criterion``'s LMI is infeasible on ``sys``
    (:func:`certify.criteria.validate.validate_infeasibility` on the factor of its PSD part).

    >>> bad = LureSystem(A=[[0.5]], B=[[-2.0]], C=[[1.0]], D=[[0.0]], K=[1.0])
    >>> dual_certificate(bad, "circle", [[1.0, 0.9], [0.9, 0.81]]).ok
    True
    """
    from certify.criteria.validate import validate_infeasibility

    N = lmi_structure(sys, criterion).N
    W = _dual_factor(Y, N)
    return validate_infeasibility(sys, criterion, np.zeros((N, 0)) if W is None else W)


def lure_system(form: Any, eq: Any) -> tuple[LureSystem, Any, dict[str, Any]]:
    """Shift ``form`` to the equilibrium ``eq`` and normalise slopes to [0, K] (theory §4.2–4.3).

    Returns the :class:`LureSystem` the LMIs are solved on, the normalised SNOF (for
    well-posedness) and a dict of facts for the report.  Channels whose slope interval has zero
    width are affine; after normalisation they are identically 0 and are dropped.

    >>> from certify.snof import SNOF, Channel
    >>> from certify.snof.transform import equilibrium
    >>> f = SNOF(A=[[0.5]], B_p=[[-1.0]], C_q=[[1.0]], b_q=[0.2], channels=(Channel("tanh"),))
    >>> s, _, info = lure_system(f, equilibrium(f))
    >>> s.K.tolist(), s.odd
    ([1.0], False)
    """
    from certify.snof.transform import normalize_slopes, shift_to_equilibrium

    shifted, _ = shift_to_equilibrium(form, eq)
    normed, norm = normalize_slopes(shifted)
    K = normed.K
    keep = np.flatnonzero(K > 0)
    odd = bool(keep.size) and all(normed.channels[i].odd for i in keep)
    sys = LureSystem(normed.A, normed.B_p[:, keep], normed.C_q[keep], normed.D_qp[np.ix_(keep, keep)], K[keep], odd)
    info = {"channels_affine_dropped": int(normed.m - keep.size), "lower_slopes_moved": bool(np.any(norm.alpha))}
    return sys, normed, info


def _solve_chain(sys: LureSystem, crit: str, *, solver: str | None, margin: float | None,
                 left: Any, options: Mapping[str, Any] | None, fallback: bool) -> list[LMIAttempt]:
    """Try ``crit`` until a certificate validates or the LMI is decided infeasible: the chosen backend,
    a high-accuracy backend early (in both scalings) when the chosen one is first-order and the SDP is of
    moderate size,
    the state-scaled system, the same backend with its retry options (another internal scaling or tighter
    tolerances), the Lyapunov-preconditioned system (certificates mapped back and validated on ``sys``),
    then every other installed backend.  ``left()`` gives the remaining time budget (None: unlimited).

    The chain stops as soon as the question is answered: a validated certificate; a validated dual
    (infeasibility) certificate, checked whenever a high-accuracy backend solves to a negative optimal
    margin τ* (feasibility is invariant under the preconditioners, so a dual on a preconditioned system
    decides for ``sys``); or two high-accuracy solves (optimal or inaccurate) whose τ* is below 1e-9 (the LMI
    sits on the boundary of feasibility: other scalings and less accurate backends cannot create margin that
    is not there)."""
    first = _solvers.get_solver(solver) if solver else choose_lmi_solver(sys, crit)
    # very near the unit circle (c ≥ 10, 1 − ρ ≤ 0.01) the state-scaled system goes first (cheaper on average
    # than a failed plain try); otherwise it is the second scaling tried
    pc0 = Preconditioner.state_scale(sys)
    near = pc0 is not None and 1.0 / float(pc0.R[0, 0]) >= 10.0
    p0, p1 = ("state_scale", "") if near else ("", "state_scale")
    plan: list[tuple[_solvers.SolverSpec, bool, str]] = [(first, False, p0)]
    if fallback:
        others = list(_solvers.fallback_solvers(first))
        early = [o for o in others if first.accuracy != "high" and o.accuracy == "high"
                 and sum(psd_orders(sys, crit, o)) <= _EARLY_ACCURATE_ORDER_FACTOR * o.max_order_hint][:1]
        plan += [(o, False, p) for o in early for p in (p0, p1)]   # two accurate answers end a marginal chain
        plan += [(first, False, p1), (first, True, ""), (first, False, "lyapunov")]
        for other in others:
            plan += [(other, False, p) for p in (p0, p1) if (other, False, p) not in plan]
    out: list[LMIAttempt] = []
    if crit == "circle" and solver is None and fallback and first.accuracy != "high" and sys.n and sys.m:
        # large SDPs: group multipliers from the frequency domain and P from the Riccati equation first
        # (a few eigenvalue problems instead of hundreds of first-order iterations); validated like any point
        att = _frequency_attempt(sys, left())
        out.append(att)
        if att.proved:
            return out
    pc: Preconditioner | None = None
    for spec, retry, precond in plan:
        budget = left()
        if budget is not None and budget <= 0:
            break
        # a high-accuracy backend that *solved* the problem with τ* ≤ 1e-9 in both scalings has answered: the
        # retry options, the Lyapunov scaling and less accurate backends exist for numerical failures
        answered = [a for a in out if a.outcome is not None and a.outcome.has_point and a.tau is not None
                    and a.tau < _MARGINAL_TAU and _solvers.get_solver(a.outcome.solver).accuracy == "high"]
        if (retry or precond == "lyapunov" or spec is not first or precond == p1) and \
                len(answered) >= (2 if pc0 else 1):
            break
        target = sys
        pc = None
        if precond:
            pc = getattr(Preconditioner, precond)(sys)
            if pc is None:
                continue
            target = pc.apply(sys)
        att = solve_lmi(target, crit, solver=spec.name, margin=margin if spec is first else None,
                        timeout=budget, solver_options=options if spec is first else None, retry=retry)
        if att.decision == "undecided" and att.dual is None and spec.accuracy == "high" and att.tau is not None \
                and att.tau < 0 and att.outcome is not None and att.outcome.status == "solved" \
                and (budget is None or budget > 0):
            att = _with_dual(target, att, spec.name, left())
        if pc is not None:
            scaling = "balanced+" + precond
            if att.certificate is not None:
                cert = pc.invert(att.certificate)
                val = validate_certificate(sys, cert)
                dec = "proved" if val.ok else att.decision
                msg = att.message if val.ok == att.proved else (
                    f"{att.message} Mapped back to the balanced coordinates: "
                    + ("validated." if val.ok else f"validation failed ({val.reason})."))
                att = replace(att, certificate=cert, validation=val, message=msg, decision=dec, scaling=scaling,
                              retry=retry)
            else:
                att = replace(att, validation=None, scaling=scaling, retry=retry)
        out.append(att)
        if att.decision in ("proved", "infeasible"):
            break
    return out


def _frequency_attempt(sys: LureSystem, budget: float | None) -> LMIAttempt:
    """The circle criterion through :func:`certify.criteria.frequency.frequency_multipliers`, validated."""
    from certify.criteria.frequency import FrequencySearch, frequency_multipliers

    t = time.perf_counter()
    try:
        search = frequency_multipliers(sys, timeout=None if budget is None else 0.5 * budget)
    except (np.linalg.LinAlgError, ValueError, ArithmeticError) as exc:  # a shortcut: its failure leaves the SDP
        search = FrequencySearch(None, 0, (), float("nan"), 0, 0, time.perf_counter() - t,
                                 f"the search failed ({type(exc).__name__}: {str(exc)[:120]})")
    tv = time.perf_counter()
    val = None if search.certificate is None else validate_certificate(sys, search.certificate)
    ok = val is not None and val.ok
    outcome = _solvers.SolveOutcome(
        solver="frequency+riccati", status="solved" if search.certificate is not None else "undecided",
        raw_status=search.reason, compile_seconds=0.0, solve_seconds=search.seconds, iterations=search.evaluations,
        options={"groups": search.groups, "riccati_solves": search.riccati_solves})
    if ok:
        assert val is not None
        msg = (f"circle LMI certificate validated (multipliers constant on {search.groups} channel groups from the "
               f"frequency-domain condition, P from the Riccati equation; relative margin {val.relative_margin:.2e}).")
    elif val is not None:
        msg = (f"circle LMI: the frequency-domain group multipliers gave a point that failed validation "
               f"({val.reason}); the SDP decides.")
    else:
        msg = f"circle LMI: frequency-domain group multipliers: {search.reason}; the SDP decides."
    return LMIAttempt("circle", search.certificate if ok else None, outcome, val if ok else None,
                      order=sys.n + sys.m, n_variables=search.groups, build_seconds=tv - t - search.seconds,
                      message=msg, validate_seconds=time.perf_counter() - tv,
                      decision="proved" if ok else "undecided", scaling="balanced")


def _with_dual(target: LureSystem, att: LMIAttempt, solver: str, budget: float | None) -> LMIAttempt:
    """``att`` with a dual certificate from a congruence-form max-margin solve (:func:`infeasibility_certificate`)
    checked; ``decision`` becomes ``infeasible`` when it validates."""
    t = time.perf_counter()
    try:
        _, res = infeasibility_certificate(target, att.criterion, solver=solver, timeout=budget)
    except Exception:  # noqa: BLE001 - a failing extra solve leaves the attempt undecided, as it was
        return att
    secs = att.validate_seconds + time.perf_counter() - t
    if not res.ok:
        return replace(att, dual=res, validate_seconds=secs)
    msg = (f"{att.criterion} LMI infeasible, proved by a validated dual certificate (min eig Z = {res.min_eig_Z:.2e} "
           f"> rounding bound {res.margin_Z:.1e}; {solver}'s optimal relative margin τ* = {att.tau:.2e}).")
    return replace(att, dual=res, validate_seconds=secs, decision="infeasible", message=msg)


def _not_proved(name: str, prop: Property, criterion: str, msg: str, t0: float, q: dict[str, Any],
                status: CheckStatus = CheckStatus.NOT_PROVED, **kw: Any) -> CheckResult:
    return CheckResult(name=name, property=prop, status=status, criterion=criterion, message=msg,
                       quantities=q, seconds=time.perf_counter() - t0, **kw)


def _vertex_quantities(vc: VertexCheck) -> dict[str, Any]:
    return {"ok": vc.ok, "checked": vc.checked, "exhaustive": vc.exhaustive,
            "max_spectral_radius": vc.worst_rho, "worst_vertex_channels": list(vc.worst_vertex),
            "unit_circle_vertex_channels": None if vc.marginal_vertex is None else list(vc.marginal_vertex)}


def _vertex_message(vc: VertexCheck, rho0: float) -> str:
    hint = ""
    if abs(rho0 - 1.0) < 1e-9 or vc.marginal_vertex is not None:
        on = [] if vc.marginal_vertex is None else list(vc.marginal_vertex)[:20]
        hint = (f" The vertex gain with slope K on channels {on} (0 elsewhere) leaves an eigenvalue exactly "
                "on the unit circle (a structural obstruction, not a numerical one): typically an "
                "integrator left open, e.g. integral action around a purely neural estimate (no linear path "
                "from measurement to estimate) or a positional PI with output saturation; use a velocity "
                "(anti-windup) PI or a linear bypass.")
    elif rho0 >= 1.0:
        hint = " With every slope 0 the linear part is already unstable (A is not Schur)."
    return ("necessary condition fails, so no slope-[0,K] LMI can be feasible: " + vc.detail + ". This linear "
            "gain lies in the nonlinearity class; it does not prove the network itself unstable." + hint)


CERTIFICATE_FORMAT = "certify-lmi-certificate"


def certificate_dict(sys: LureSystem, cert: LMICertificate, validation: Any) -> dict[str, Any]:
    """A self-contained, JSON-ready certificate: the Luré system, ``P``, the multipliers, the figures.

    Re-checked without any solver by :func:`certify.verify.verify_certificate` (``certify verify FILE``).

    >>> s = LureSystem(A=[[0.5]], B=[[-1.0]], C=[[1.0]], D=[[0.0]], K=[1.0])
    >>> c = LMICertificate("circle", np.eye(1), {"T": np.ones(1)})
    >>> d = certificate_dict(s, c, validate_certificate(s, c))
    >>> d["format"], d["criterion"], d["P"]
    ('certify-lmi-certificate', 'circle', [[1.0]])
    """
    return {
        "format": CERTIFICATE_FORMAT, "version": 1, "criterion": cert.criterion,
        "system": {"A": sys.A.tolist(), "B": sys.B.tolist(), "C": sys.C.tolist(), "D": sys.D.tolist(),
                   "K": sys.K.tolist(), "odd": bool(sys.odd)},
        "P": np.asarray(cert.P).tolist(),
        "multipliers": {k: np.asarray(v).tolist() for k, v in cert.multipliers.items()},
        "validation": validation.to_dict() if hasattr(validation, "to_dict") else dict(validation or {}),
    }


def check_lmi(form: Any, *, criterion: str = "auto", solver: str | None = None, margin: float | None = None,
              timeout: float | None = None, prop: Property = Property.GAS, name: str = "lmi",
              w: np.ndarray | None = None, solver_options: Mapping[str, Any] | None = None,
              deadline: Any = None) -> CheckResult:
    """Certify global asymptotic stability of a SNOF's equilibrium with a validated LMI certificate.

    Parameters
    ----------
    form : SNOF
        The system (biases and constant inputs allowed; ``w`` is the constant input, default 0).
    criterion : {"auto", "circle", "popov", "lure_postnikov"}
        ``auto`` tries circle, popov, then the Luré–Postnikov (Kim-type) LMI (by cost; each contains the
        previous one) and stops at the first validated certificate.  A named criterion whose SDP is not
        proved infeasible by a validated dual certificate falls back to the criteria it contains, whose
        certificates prove the same property, so it never certifies less than they do
        (``criterion`` of the result says which one proved it).
    solver : str or None
        Backend name (see :func:`certify.sdp.solvers.available_solvers`); default by size.
    margin : float or None
        Cap on the relative margin τ asked of the backend (default: its ``default_margin``).
    timeout : float or None
        Wall-time budget in seconds for all solver calls together (capped by ``deadline``).
    solver_options : Mapping or None
        Options passed to the first backend's solve (e.g. ``{"max_iter": 500}`` for Clarabel).
    deadline : certify.deadline.Deadline or None
        The whole check's deadline; the solves get what is left of it.

    Returns
    -------
    CheckResult
        ``proved`` only with a validated certificate.  The vertex obstruction, infeasibility, a backend
        that could not decide, an exhausted time budget and failed validations give ``not_proved`` with
        the reason; ``quantities["criteria_tried"]`` lists every attempt (backend, scaling, margin τ).

    >>> from certify.snof import SNOF, Channel
    >>> f = SNOF(A=[[0.5]], B_p=[[-1.0]], C_q=[[1.0]], channels=(Channel("tanh"),))
    >>> r = check_lmi(f)
    >>> r.status.value, r.criterion
    ('proved', 'circle')
    """
    from certify.snof.transform import equilibrium

    t0 = time.perf_counter()
    if deadline is not None:
        timeout = deadline.cap(timeout)
    q: dict[str, Any] = {"criterion_requested": criterion}
    if criterion != "auto" and criterion not in CRITERIA:
        from certify.errors import InvalidInputError

        raise InvalidInputError(f"unknown LMI criterion {criterion!r}; use auto, circle, popov or lure_postnikov.")
    crit_list = _AUTO_ORDER if criterion == "auto" else (criterion,)
    if solver is not None:
        _solvers.get_solver(solver)  # unknown name -> clear error before any work
    label = crit_list[-1]
    if form.n == 0:
        return _not_proved(name, prop, label, "the system has no state; there is nothing to stabilise.", t0, q,
                           CheckStatus.NOT_APPLICABLE)
    # --- equilibrium and shift (theory §4.3) ----------------------------------------------------
    tp = time.perf_counter()
    eq = equilibrium(form, w)
    q["seconds_equilibrium"] = time.perf_counter() - tp
    q["equilibrium"] = eq.to_dict()
    if not eq.found:
        return _not_proved(name, prop, label, f"no equilibrium found for the constant input (residual "
                           f"{eq.residual:.2e}); the LMI certifies stability of an equilibrium only.", t0, q)
    sys0, normed, info = lure_system(form, eq)
    q.update(info)
    sys = sys0
    bal: Balancing | None = None
    if sys.n and sys.m:   # the reduction spine: balancing here, preconditioners per attempt (_solve_chain)
        bal = Balancing.of(sys0)
        sys = bal.apply(sys0)
        q["balancing"] = {"state_scales": bal.T.tolist(), "channel_scales": bal.S.tolist()}
    q.update({"n": sys.n, "m": sys.m, "odd": sys.odd})
    # --- well-posedness (theory §2) ---------------------------------------------------------------
    tp = time.perf_counter()
    wp = normed.well_posedness(solver=solver, timeout=None if timeout is None else max(
        timeout - (time.perf_counter() - t0), 0.0))
    q["well_posedness"] = wp.method
    q["seconds_well_posedness"] = time.perf_counter() - tp
    if not wp.ok:
        return _not_proved(name, prop, label, f"well-posedness not established: {wp.detail}", t0, q)
    rho0 = float(np.max(np.abs(np.linalg.eigvals(sys.A)), initial=0.0))
    q["spectral_radius_all_slopes_zero"] = rho0
    # --- vertex necessary condition (up front only while cheap) ---------------------------------
    n_vert = 2**sys.m if sys.m <= 10 else 2 + sys.m + 64
    vc: VertexCheck | None = None
    if n_vert * max(sys.n, 1) ** 3 <= _VERTEX_UPFRONT_FLOPS or rho0 >= 1.0:
        tp = time.perf_counter()
        vc = vertex_check(sys)
        q["seconds_vertex_check"] = time.perf_counter() - tp
        q["vertex_check"] = _vertex_quantities(vc)
        if not vc.ok:
            return _not_proved(name, prop, label, _vertex_message(vc, rho0), t0, q)
    # --- criteria, cheapest first, each through the fallback chain ------------------------------
    left = (lambda: None) if timeout is None else (lambda: timeout - (time.perf_counter() - t0))
    attempts: list[LMIAttempt] = []
    proved: LMIAttempt | None = None
    for crit in crit_list:
        chain = _solve_chain(sys, crit, solver=solver, margin=margin, left=left, options=solver_options,
                             fallback=True)
        attempts += chain
        if chain and chain[-1].proved:
            proved = chain[-1]
            break
        proved_infeasible = bool(chain) and chain[-1].decision == "infeasible" and chain[-1].dual is not None \
            and chain[-1].dual.ok
        if criterion != "auto" and not proved_infeasible:
            # undecided, or infeasible only by the backend's margin: a contained criterion's certificate
            # proves the same property (theory §7.4), so the named criterion never certifies less than it
            for sub in _CONTAINED[crit]:
                chain = _solve_chain(sys, sub, solver=solver, margin=margin, left=left, options=solver_options,
                                     fallback=True)
                attempts += chain
                if chain and chain[-1].proved:
                    proved = chain[-1]
                    break
    q["criteria_tried"] = [a.to_dict() for a in attempts]
    out_of_time = timeout is not None and (remaining := left()) is not None and remaining <= 0
    if proved is None and vc is None and (timeout is None or not out_of_time):
        tp = time.perf_counter()  # explain the failure with the vertex necessary condition
        vc = vertex_check(sys)
        q["seconds_vertex_check"] = time.perf_counter() - tp
        q["vertex_check"] = _vertex_quantities(vc)
    last = proved or (max(attempts, key=lambda a: -np.inf if a.tau is None else a.tau) if attempts else None)
    if last is None:
        spec_name = solver or choose_lmi_solver(sys, label).name
        why = "the time budget was exhausted before the first solve" if out_of_time else "no solve was run"
        return _not_proved(name, prop, label, f"LMI not solved: {why}.", t0, q, solver=spec_name)
    q["lmi_order"] = last.order
    q["variables"] = last.n_variables
    q["criterion_proved"] = None if proved is None else proved.criterion
    val = last.validation
    default_name = solver or choose_lmi_solver(sys, last.criterion).name
    common: dict[str, Any] = dict(criterion=last.criterion,
                                  solver=last.outcome.solver if last.outcome is not None else default_name,
                                  solver_status=None if last.outcome is None else last.outcome.raw_status,
                                  validation={} if val is None else val.to_dict(),
                                  margin=None if val is None else val.max_eig_M)
    if proved is not None:
        assert val is not None
        t4 = bool(np.any(np.asarray(proved.certificate.multipliers.get("T4", 0.0)) > 0)) \
            if proved.certificate is not None else False
        scope = ("the odd-nonlinearity term T4 is used, which is valid only where the shifted channels are odd "
                 "(pre-activations zero at the equilibrium), so this holds for the constant input checked only."
                 if t4 else "the LMI does not depend on the constant input, so this holds for every constant input "
                 "that has an equilibrium.")
        via = ""
        if criterion != "auto" and proved.criterion != criterion:
            via = (f" The {criterion} LMI could not be decided; the {proved.criterion} LMI it contains proved it "
                   "(its certificate is valid for the same class).")
        msg = (f"{proved.criterion} LMI feasible with a validated certificate (max eig M = {val.max_eig_M:.3e}, "
               f"relative margin {val.relative_margin:.2e}): the equilibrium is globally asymptotically stable "
               "(hence unique) for every slope-restricted nonlinearity in the declared class; " + scope + via)
        export_sys, export_cert, export_val = sys, proved.certificate, val
        if bal is not None and proved.certificate is not None:
            unbalanced = bal.invert(proved.certificate)
            orig = validate_certificate(sys0, unbalanced)
            q["validation_unbalanced"] = orig.to_dict()
            if orig.ok:  # export in the system's own coordinates when the certificate also holds there
                export_sys, export_cert, export_val = sys0, unbalanced, orig
        certificate = None if export_cert is None else certificate_dict(export_sys, export_cert, export_val)
        return CheckResult(name=name, property=prop, status=CheckStatus.PROVED, message=msg, quantities=q,
                           seconds=time.perf_counter() - t0, certificate=certificate, **common)
    parts = [a.message for a in attempts]
    if vc is not None and not vc.ok:
        parts.insert(0, _vertex_message(vc, rho0))
    if out_of_time:
        parts.append("the time budget was exhausted")
    return CheckResult(name=name, property=prop, status=CheckStatus.NOT_PROVED, message=" ".join(parts),
                       quantities=q, seconds=time.perf_counter() - t0, **common)
