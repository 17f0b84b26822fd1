"""Kim-type Luré–Postnikov LMI and its circle/Popov special cases on a SNOF (lure notes §2, §8).

Pipeline of :func:`check_lmi`: equilibrium + shift (notes §3.3) → slope normalisation to [0, K]
(§3.2) → well-posedness (§1.2) → vertex necessary condition (§7, "generic necessary-condition
tests") → SDP in Schur-complement form (P enters linearly; lmi_engineering.md (b)), normalised by
``P ⪰ I`` and ``M ⪯ −δI`` → float64 validation (:mod:`certify.criteria.validate`).  Only a validated
certificate yields ``proved``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from certify.criteria import solvers as _solvers
from certify.criteria.validate import (
    LMICertificate,
    LureSystem,
    ValidationResult,
    lmi_structure,
    validate_certificate,
)
from certify.errors import SolverError
from certify.results import CheckResult, CheckStatus, Property

_AUTO_ORDER = ("circle", "lure_postnikov")


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
    worst, worst_v, marginal = -1.0, (), None
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
    """One criterion tried: certificate (or None), backend outcome, validation and timings."""

    criterion: str
    certificate: LMICertificate | None
    outcome: _solvers.SolveOutcome | None
    validation: ValidationResult | None
    order: int
    n_variables: int
    build_seconds: float
    message: str
    validate_seconds: float = 0.0

    @property
    def proved(self) -> bool:
        return self.validation is not None and self.validation.ok


def solve_lmi(sys: LureSystem, criterion: str, *, solver: str | None = None, margin: float | None = None,
              timeout: float | None = None, solver_options: dict[str, Any] | None = None) -> LMIAttempt:
    """Build and solve one criterion's SDP, then validate the returned certificate in float64.

    >>> s = LureSystem(A=[[0.5]], B=[[-1.0]], C=[[1.0]], D=[[0.0]], K=[1.0])
    >>> solve_lmi(s, "circle").proved
    True
    """
    import cvxpy as cp
    import scipy.sparse as sp

    t0 = time.perf_counter()
    st = lmi_structure(sys, criterion)
    n, m, N = sys.n, sys.m, st.N
    order = N + 2 * n  # Schur block (N + n) plus P ⪰ I (n)
    spec = _solvers.get_solver(solver) if solver else _solvers.choose_solver(order)
    delta = spec.default_margin if margin is None else float(margin)
    P = cp.Variable((n, n), symmetric=True)
    t = {name: cp.Variable(m, nonneg=True) for name in st.multiplier_names} if m else {}
    Q: Any = sp.csr_matrix((N, N))
    for name, L, R in st.terms if m else ():
        X = sp.csr_matrix(L.T) @ cp.multiply(cp.reshape(t[name], (m, 1), order="F"), R)
        Q = Q + X + X.T
    Ex = sp.csr_matrix(st.Ex)
    top = Q - Ex.T @ P @ Ex + delta * sp.eye(N)
    S = cp.bmat([[top, st.G.T @ P], [P @ st.G, -P]])
    prob = cp.Problem(cp.Minimize(0), [S << 0, P >> np.eye(n)])
    n_vars = n * (n + 1) // 2 + m * len(t)
    build = time.perf_counter() - t0
    try:
        out = _solvers.solve(prob, spec, timeout=timeout, options=solver_options)
    except SolverError as exc:
        return LMIAttempt(criterion, None, None, None, order, n_vars, build, str(exc))
    if out.status == "infeasible" or P.value is None:
        return LMIAttempt(criterion, None, out, None, order, n_vars, build,
                          f"{criterion} LMI infeasible ({spec.name}: {out.raw_status}).")
    cert = LMICertificate(criterion, P.value, {k: v.value for k, v in t.items()})
    tv = time.perf_counter()
    val = validate_certificate(sys, cert)
    validate_s = time.perf_counter() - tv
    msg = (f"{criterion} LMI certificate validated" if val.ok
           else f"{criterion} LMI: {spec.name} returned {out.raw_status} but validation failed ({val.reason}).")
    return LMIAttempt(criterion, cert, out, val, order, n_vars, build, msg, validate_s)


def lure_system(form: Any, eq: Any) -> tuple[LureSystem, Any, dict[str, Any]]:
    """Shift ``form`` to the equilibrium ``eq`` and normalise slopes to [0, K] (notes §3.2–3.3).

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


def balance_lure(sys: LureSystem) -> tuple[LureSystem, np.ndarray, np.ndarray]:
    """Diagonal state and channel scaling that balances ``[[A, B], [C, D]]`` (powers of two, exact).

    With ``x = T x̃``, ``p = S p̃``, ``q = S q̃`` the system becomes ``Ã = T⁻¹AT``, ``B̃ = T⁻¹BS``,
    ``C̃ = S⁻¹CT``, ``D̃ = S⁻¹DS`` and ``p̃_i = ψ_i(s_i q̃_i)/s_i``, which has the same slope interval
    [0, K_i] (and is odd iff ψ_i is).  It is the same dynamical system in other coordinates, so a
    certificate validated for it proves the original; it only helps the solvers when plant, network
    and controller signals have very different units (the boiler loop mixes kg/cm², MW and valve positions).

    >>> s = LureSystem(A=[[0.5, 100.0], [0.0, 0.5]], B=[[1.0], [0.0]], C=[[0.0, 1.0]], D=[[0.0]], K=[1.0])
    >>> b, T, S = balance_lure(s)
    >>> bool(np.allclose(np.linalg.eigvals(b.A), np.linalg.eigvals(s.A)))
    True
    """
    from scipy.linalg import matrix_balance

    n = sys.n
    M = np.block([[np.abs(sys.A), np.abs(sys.B)], [np.abs(sys.C), np.abs(sys.D)]])
    _, (d, _) = matrix_balance(M, permute=False, separate=True)
    T, S = d[:n], d[n:]
    out = LureSystem(A=sys.A * T[None, :] / T[:, None], B=sys.B * S[None, :] / T[:, None],
                     C=sys.C * T[None, :] / S[:, None], D=sys.D * S[None, :] / S[:, None], K=sys.K, odd=sys.odd)
    return out, T, S


def _not_proved(name: str, prop: Property, criterion: str, msg: str, t0: float, q: dict[str, Any],
                status: CheckStatus = CheckStatus.NOT_PROVED, **kw: Any) -> CheckResult:
    return CheckResult(name=name, property=prop, status=status, criterion=criterion, message=msg,
                       quantities=q, seconds=time.perf_counter() - t0, **kw)


def check_lmi(form: Any, *, criterion: str = "auto", solver: str | None = None, margin: float | None = None,
              timeout: float | None = None, prop: Property = Property.GAS, name: str = "lmi",
              w: np.ndarray | None = None) -> CheckResult:
    """Certify global asymptotic stability of a SNOF's equilibrium with a validated LMI certificate.

    Parameters
    ----------
    form : SNOF
        The system (biases and constant inputs allowed; ``w`` is the constant input, default 0).
    criterion : {"auto", "circle", "popov", "lure_postnikov"}
        ``auto`` tries circle, then the Luré–Postnikov (Kim-type) LMI.
    solver : str or None
        Backend name (see :func:`certify.criteria.solvers.available_solvers`); default by size.
    margin : float or None
        δ in ``M ⪯ −δI`` with ``P ⪰ I`` (default: the backend's ``default_margin``).
    timeout : float or None
        Wall-time budget in seconds for all solver calls together.

    Returns
    -------
    CheckResult
        ``proved`` only with a validated certificate; the vertex obstruction, infeasibility, solver
        failures and failed validations give ``not_proved`` with the reason.

    >>> from certify.snof import SNOF, Channel
    >>> f = SNOF(A=[[0.5]], B_p=[[-1.0]], C_q=[[1.0]], channels=(Channel("tanh"),))
    >>> check_lmi(f).status.value
    'proved'
    """
    from certify.snof.transform import equilibrium

    t0 = time.perf_counter()
    q: dict[str, Any] = {"criterion_requested": criterion}
    crit_list = _AUTO_ORDER if criterion == "auto" else (criterion,)
    if any(c not in ("circle", "popov", "lure_postnikov") for c in crit_list):
        from certify.errors import InvalidInputError

        raise InvalidInputError(f"unknown LMI criterion {criterion!r}; use auto, circle, popov or lure_postnikov.")
    if solver is not None:
        _solvers.get_solver(solver)  # unknown name -> clear error before any work
    label = crit_list[-1]
    if form.n == 0:
        return _not_proved(name, prop, label, "the system has no state; there is nothing to stabilise.", t0, q,
                           CheckStatus.NOT_APPLICABLE)
    # --- equilibrium and shift (notes §3.3) -----------------------------------------------------
    tp = time.perf_counter()
    eq = equilibrium(form, w)
    q["seconds_equilibrium"] = time.perf_counter() - tp
    q["equilibrium"] = eq.to_dict()
    if not eq.found:
        return _not_proved(name, prop, label, f"no equilibrium found for the constant input (residual "
                           f"{eq.residual:.2e}); the LMI certifies stability of an equilibrium only.", t0, q)
    sys, normed, info = lure_system(form, eq)
    q.update(info)
    if sys.n and sys.m:
        sys, T_bal, S_bal = balance_lure(sys)
        q["balancing"] = {"state_scales": T_bal.tolist(), "channel_scales": S_bal.tolist()}
    odd = sys.odd
    q.update({"n": sys.n, "m": sys.m, "odd": odd})
    # --- well-posedness (notes §1.2) ------------------------------------------------------------
    tp = time.perf_counter()
    wp = normed.well_posedness()
    q["well_posedness"] = wp.method
    q["seconds_well_posedness"] = time.perf_counter() - tp
    if not wp.ok:
        return _not_proved(name, prop, label, f"well-posedness not established: {wp.detail}", t0, q)
    # --- vertex necessary condition ---------------------------------------------------------------
    tp = time.perf_counter()
    vc = vertex_check(sys)
    q["seconds_vertex_check"] = time.perf_counter() - tp
    q["vertex_check"] = {"ok": vc.ok, "checked": vc.checked, "exhaustive": vc.exhaustive,
                         "max_spectral_radius": vc.worst_rho, "worst_vertex_channels": list(vc.worst_vertex),
                         "unit_circle_vertex_channels": None if vc.marginal_vertex is None
                         else list(vc.marginal_vertex)}
    rho0 = float(np.max(np.abs(np.linalg.eigvals(sys.A)), initial=0.0))
    q["spectral_radius_all_slopes_zero"] = rho0
    if not vc.ok:
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
        return _not_proved(name, prop, label, "necessary condition fails, so no slope-[0,K] LMI can be feasible: "
                           + vc.detail + ". This linear gain lies in the nonlinearity class; it does not prove "
                           "the network itself unstable." + hint, t0, q)
    # --- criteria, cheapest first ----------------------------------------------------------------
    tried: list[dict[str, Any]] = []
    last: LMIAttempt | None = None
    for crit in crit_list:
        left = None if timeout is None else timeout - (time.perf_counter() - t0)
        att = solve_lmi(sys, crit, solver=solver, margin=margin, timeout=left)
        last = att
        tried.append({"criterion": crit, "proved": att.proved, "message": att.message, "order": att.order,
                      "variables": att.n_variables, "seconds_build": att.build_seconds,
                      "seconds_compile": None if att.outcome is None else att.outcome.compile_seconds,
                      "seconds_solve": None if att.outcome is None else att.outcome.solve_seconds,
                      "seconds_validate": att.validate_seconds,
                      "solver": None if att.outcome is None else att.outcome.solver,
                      "solver_status": None if att.outcome is None else att.outcome.raw_status})
        if att.proved:
            break
    assert last is not None
    q["criteria_tried"] = tried
    q["lmi_order"] = last.order
    q["variables"] = last.n_variables
    val = last.validation
    common = dict(criterion=last.criterion, solver=None if last.outcome is None else last.outcome.solver,
                  solver_status=None if last.outcome is None else last.outcome.raw_status,
                  validation={} if val is None else val.to_dict(),
                  margin=None if val is None else val.max_eig_M)
    if last.proved:
        t4 = last.certificate is not None and bool(np.any(np.asarray(last.certificate.multipliers.get("T4", 0.0)) > 0))
        scope = ("the odd-nonlinearity term T4 is used, which is valid only where the shifted channels are odd "
                 "(pre-activations zero at the equilibrium), so this holds for the constant input checked only."
                 if t4 else "the LMI does not depend on the constant input, so this holds for every constant input "
                 "that has an equilibrium.")
        msg = (f"{last.criterion} LMI feasible with a validated certificate (max eig M = {val.max_eig_M:.3e}): "
               "the equilibrium is globally asymptotically stable (hence unique) for every slope-restricted "
               f"nonlinearity in the declared class; {scope}")
        return CheckResult(name=name, property=prop, status=CheckStatus.PROVED, message=msg, quantities=q,
                           seconds=time.perf_counter() - t0, **common)
    status = CheckStatus.ERROR if last.outcome is None else CheckStatus.NOT_PROVED
    return CheckResult(name=name, property=prop, status=status, message="; ".join(a["message"] for a in tried),
                       quantities=q, seconds=time.perf_counter() - t0, **common)
