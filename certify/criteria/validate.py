"""Solver-independent re-check of Luré-type LMI certificates (docs/theory.md §7.3, §7.9).

The LMI is written in the compact selection-matrix form of theory §7.3 on ``ξ = [x; p; p⁺]`` (or
``ξ = [x; p]`` for the circle criterion)::

    M(P, t) = G'P G − E_x'P E_x + Σ_j He(L_j' diag(t_j) R_j)

with ``G = G_x+ = [A B 0]`` and one ``(L_j, R_j)`` pair per S-procedure / Luré term.  This module
builds those matrices in float64 from the plant data, rebuilds ``M`` from the multipliers a solver
returned, and decides with eigenvalues — never with the solver's status.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from certify.sdp.types import LMICertificate, LureSystem

__all__ = ["CRITERIA", "InfeasibilityResult", "LMICertificate", "LMIStructure", "LureSystem", "ValidationResult",
           "assemble_M", "lmi_structure", "rounding_margin", "scale_weights", "validate_certificate",
           "validate_infeasibility"]

CRITERIA = ("circle", "popov", "lure_postnikov")
_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True, eq=False)
class LMIStructure:
    """Float64 data of ``M(P, t)``: ξ dimension ``N``, ``H = G − E_x``, ``E_x`` and the multiplier terms.

    ``M = H'PH + He(E_x'PH) + Σ_j He(L_j' diag(t_j) R_j)``, which equals ``G'PG − E_x'PE_x + …`` with
    ``G = [A B 0]``, written without the cancellation of ``A'PA − P`` when ``A`` is close to ``I`` (poles
    near 1, fast sampling): ``H = [A − I, B, 0]`` is the δ-operator form of the same matrix.
    """

    criterion: str
    N: int
    H: np.ndarray
    Ex: np.ndarray
    terms: tuple[tuple[str, np.ndarray, np.ndarray], ...]
    omega: float = 0.0

    @property
    def G(self) -> np.ndarray:
        """``G = [A B 0]`` (``x⁺ = Gξ``)."""
        return self.H + self.Ex

    @property
    def multiplier_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(name for name, _, _ in self.terms))


def lmi_structure(sys: LureSystem, criterion: str, use_odd: bool | None = None) -> LMIStructure:
    """Selection-matrix data of theory §7.3 (3-block) or §7.4 (circle, 2-block).

    ``popov`` is the 3-block LMI with the Luré–Postnikov term and the sector terms only
    (Λ, T1, T2; no slope term T3), which contains the circle and DT Popov criteria (theory §7.4).
    ``lure_postnikov`` adds the slope term T3, and T4 when ``use_odd`` (default: ``sys.odd``).
    ``Δq = C(A − I)x + CBp + Dp⁺ − Dp`` is formed with ``A − I`` (no cancellation near the unit circle).

    >>> s = LureSystem(A=[[0.5]], B=[[-1.0]], C=[[1.0]], D=[[0.0]], K=[1.0])
    >>> st = lmi_structure(s, "lure_postnikov")
    >>> st.N, st.multiplier_names
    (3, ('Lambda', 'T1', 'T2', 'T3'))
    """
    if criterion not in CRITERIA:
        raise ValueError(f"unknown LMI criterion {criterion!r}; choose one of {', '.join(CRITERIA)}.")
    A, B, C, D, K = sys.A, sys.B, sys.C, sys.D, sys.K
    n, m = sys.n, sys.m
    Km = K[:, None]
    AmI = A - np.eye(n)
    nf = lambda X: float(np.linalg.norm(X)) if X.size else 0.0  # noqa: E731
    # bound on the magnitude of every product of data formed below (for the rounding bound)
    omega = float(np.max(K, initial=0.0)) * (nf(C) * (1.0 + nf(A) + nf(B)) + nf(D))
    if criterion == "circle":
        N = n + m
        Ex = np.hstack([np.eye(n), np.zeros((n, m))])
        Ep = np.hstack([np.zeros((m, n)), np.eye(m)])
        H = np.hstack([AmI, B])
        Gq = np.hstack([C, D])
        return LMIStructure(criterion, N, H, Ex, (("T", Ep, Km * Gq - Ep),), omega)
    N = n + 2 * m
    Zmn, Zmm = np.zeros((m, n)), np.zeros((m, m))
    Ex = np.hstack([np.eye(n), np.zeros((n, 2 * m))])
    Ep = np.hstack([Zmn, np.eye(m), Zmm])
    Epp = np.hstack([Zmn, Zmm, np.eye(m)])
    H = np.hstack([AmI, B, np.zeros((n, m))])
    Gq = np.hstack([C, D, Zmm])
    CB = C @ B
    dG = np.hstack([C @ AmI, CB - D, D])            # Δq = q⁺ − q
    Gqp = np.hstack([C @ A, CB, D])                 # q⁺
    dE = Epp - Ep
    terms: list[tuple[str, np.ndarray, np.ndarray]] = [
        # 2 p⁺'Λ Δq − Δp'Λ K⁻¹ Δp  (Luré–Postnikov integral bound, theory §7.2)
        ("Lambda", Epp, dG),
        ("Lambda", dE, -0.5 * dE / Km),
        ("T1", Ep, Km * Gq - Ep),        # sector at k
        ("T2", Epp, Km * Gqp - Epp),     # sector at k+1
    ]
    if criterion == "lure_postnikov":
        terms.append(("T3", dE, Km * dG - dE))   # slope between k and k+1
        if sys.odd if use_odd is None else use_odd:
            S, Sq = Ep + Epp, Gq + Gqp
            terms.append(("T4", S, Km * Sq - S))  # odd: slope between q⁺ and −q
    return LMIStructure(criterion, N, H, Ex, tuple(terms), omega)


def assemble_M(st: LMIStructure, P: np.ndarray, multipliers: Mapping[str, np.ndarray]) -> np.ndarray:
    """``M = H'PH + He(E_x'PH) + Σ He(L' diag(t) R)`` in float64 (symmetrised); equals
    ``G'PG − E_x'PE_x + Σ He(L' diag(t) R)``.

    >>> s = LureSystem(A=[[0.5]], B=[[-1.0]], C=[[1.0]], D=[[0.0]], K=[1.0])
    >>> M = assemble_M(lmi_structure(s, "circle"), np.eye(1), {"T": np.ones(1)})
    >>> M.round(3).tolist()
    [[-0.75, 0.5], [0.5, -1.0]]
    """
    PH = P @ st.H
    M = st.H.T @ PH
    X = st.Ex.T @ PH
    M = M + X + X.T
    for name, L, R in st.terms:
        X = L.T @ (multipliers[name][:, None] * R)
        M = M + X + X.T
    return (M + M.T) / 2.0


def scale_weights(st: LMIStructure) -> tuple[float, dict[str, float]]:
    """Weights ``(a, b)`` of the scale functional ``s(P, t) = a·tr P + Σ_j b_j Σ_i t_{j,i}`` (P ⪰ 0, t ≥ 0).

    ``a = ‖H‖_F² + 2‖H‖_F`` and ``b_j = Σ 2‖L‖_F (‖R‖_F + ω)`` over the pairs of multiplier ``j``, with ``ω``
    a bound on the products of data formed in :func:`lmi_structure`.  Since ``‖P‖_F ≤ tr P`` and
    ``‖diag t‖_2 ≤ Σ t``, ``s`` bounds the Frobenius norm of the sum of the absolute values of every
    product added into ``M`` (hence ``‖M‖_2``).  The SDP fixes the homogeneous scale by ``s(P, t) = 1``;
    validation uses the same ``s`` in its rounding bound, so both speak about the same margin.

    >>> s = LureSystem(A=[[0.5]], B=[[-1.0]], C=[[1.0]], D=[[0.0]], K=[1.0])
    >>> a, b = scale_weights(lmi_structure(s, "circle"))
    >>> round(a, 3), sorted(b)
    (3.486, ['T'])
    """
    nf = lambda X: float(np.linalg.norm(X)) if X.size else 0.0  # noqa: E731
    hn = nf(st.H)
    a = hn * hn + 2.0 * hn
    b: dict[str, float] = {}
    for name, L, R in st.terms:
        b[name] = b.get(name, 0.0) + 2.0 * nf(L) * (nf(R) + st.omega)
    return a, b


def rounding_margin(st: LMIStructure, s: float, c_round: float = 8.0) -> float:
    """Bound on ``|λ_max(fl(M)) − λ_max(M)|`` for certificates of scale ``s`` (:func:`scale_weights`).

    With unit roundoff ``u = 2⁻⁵³``, each product and sum in :func:`assemble_M` and in
    :func:`lmi_structure` has inner length at most ``k = 2n + m + J + 4`` (``J`` terms), so the assembled
    matrix differs from the exact one by at most ``γ_k·s``, ``γ_k = ku/(1 − ku)`` (Higham 2002, Lemma 3.5,
    entrywise, then the Frobenius norm).  LAPACK's symmetric eigensolver is backward stable: the computed
    eigenvalues are exact for ``M + ΔM`` with ``‖ΔM‖_2 ≤ p(N)·u·‖M‖_2`` (Anderson et al. 1999, §4.7), and
    by Weyl's inequality each eigenvalue moves by at most ``‖ΔM‖_2``.  certify takes ``p(N) = N`` and a
    safety factor ``c_round`` (default 8): ``margin = c_round·(k + N)·u·s``.

    >>> s = LureSystem(A=[[0.5]], B=[[-1.0]], C=[[1.0]], D=[[0.0]], K=[1.0])
    >>> rounding_margin(lmi_structure(s, "circle"), 1.0) < 1e-13
    True
    """
    n, N = st.Ex.shape
    m = max(N - n, 0)
    k = 2 * n + m + len(st.terms) + 4
    u = _EPS / 2.0
    gk = k * u / max(1.0 - k * u, 0.5)
    return float(c_round * (gk + N * u) * s)


@dataclass(frozen=True)
class ValidationResult:
    """Figures of a float64 re-check; ``ok`` is the only thing that may lead to ``proved``.

    ``relative_margin`` is ``−max eig(M) / scale`` (the margin τ the SDP maximises); the certificate
    passes when it exceeds ``margin_M / scale`` (the relative rounding bound).
    """

    ok: bool
    max_eig_M: float
    min_eig_P: float
    margin_M: float
    margin_P: float
    scale: float
    projected: float
    reason: str

    @property
    def relative_margin(self) -> float:
        return -self.max_eig_M / self.scale if self.scale > 0 and np.isfinite(self.max_eig_M) else -np.inf

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "max_eig_M": self.max_eig_M, "min_eig_P": self.min_eig_P,
                "margin_required_M": self.margin_M, "margin_required_P": self.margin_P,
                "scale": self.scale, "relative_margin": self.relative_margin,
                "relative_margin_required": self.margin_M / self.scale if self.scale > 0 else None,
                "projected_negative_multipliers": self.projected, "reason": self.reason}


def validate_certificate(
    sys: LureSystem,
    cert: LMICertificate,
    *,
    c_round: float = 8.0,
    rel_floor: float = 0.0,
    abs_floor: float = 0.0,
) -> ValidationResult:
    """Re-insert a certificate into the LMI in float64 and decide by eigenvalues.

    Steps: symmetrise P; project each multiplier onto diagonal ≥ 0 (a full matrix keeps its
    diagonal; negative entries are set to 0 and the largest clipped amount is reported); reject a T4
    term unless every channel is odd; rebuild ``M`` with :func:`assemble_M`.

    Margin: with ``s = a·Σ|λ_i(P)| + Σ_j b_j Σ t_j`` (:func:`scale_weights`; for ``P ⪰ 0`` this is the SDP's
    normalisation functional) and the rounding bound of :func:`rounding_margin`,

        margin_M = max(abs_floor, rel_floor · s, c_round · (k + N) · u · s)
        margin_P = max(abs_floor, rel_floor · ‖P‖_*, c_round · (n + 1) · u · ‖P‖_*)

    so rounding in the assembly and in ``eigvalsh`` cannot turn an indefinite ``M`` into an apparently
    definite one.  ``ok`` requires ``max eig(M) ≤ −margin_M`` and ``min eig(P) ≥ margin_P`` (both
    margins > 0).  ``rel_floor`` and ``abs_floor`` are optional extra floors (default 0); validation is
    never looser than the rounding bound.

    >>> s = LureSystem(A=[[0.5]], B=[[-1.0]], C=[[1.0]], D=[[0.0]], K=[1.0])
    >>> validate_certificate(s, LMICertificate("circle", np.eye(1), {"T": np.ones(1)})).ok
    True
    """
    st = lmi_structure(sys, cert.criterion, use_odd="T4" in cert.multipliers)
    P = np.asarray(cert.P, dtype=np.float64)
    if P.shape != (sys.n, sys.n) or not np.all(np.isfinite(P)):
        return ValidationResult(False, np.inf, -np.inf, 0.0, 0.0, 0.0, 0.0,
                                f"P has shape {P.shape} or non-finite entries; expected ({sys.n}, {sys.n}).")
    P = (P + P.T) / 2.0
    mult: dict[str, np.ndarray] = {}
    projected = 0.0
    for name in st.multiplier_names:
        v = np.asarray(cert.multipliers.get(name, np.zeros(sys.m)), dtype=np.float64)
        v = np.diag(v).copy() if v.ndim == 2 else v.reshape(-1).copy()
        if v.shape != (sys.m,) or not np.all(np.isfinite(v)):
            return ValidationResult(False, np.inf, -np.inf, 0.0, 0.0, 0.0, 0.0,
                                    f"multiplier {name} has the wrong size or non-finite entries.")
        projected = max(projected, float(np.max(-v, initial=0.0)))
        mult[name] = np.maximum(v, 0.0)
    if "T4" in mult and np.any(mult["T4"] > 0) and not sys.odd:
        return ValidationResult(False, np.inf, -np.inf, 0.0, 0.0, 0.0, projected,
                                "T4 (odd-nonlinearity term) is used but not every channel is odd.")
    M = assemble_M(st, P, mult)
    eigP = np.linalg.eigvalsh(P) if P.size else np.zeros(0)
    nuc = float(np.sum(np.abs(eigP)))
    a, b = scale_weights(st)
    scale = a * nuc + sum(b[name] * float(np.sum(mult[name])) for name in b)
    u = _EPS / 2.0
    tiny = float(np.finfo(np.float64).tiny) * 2**60   # stay far from underflow, where rounding is not relative
    margin_M = max(abs_floor, rel_floor * scale, rounding_margin(st, scale, c_round), tiny)
    margin_P = max(abs_floor, rel_floor * nuc, c_round * (sys.n + 1) * u * nuc, tiny)
    max_M = float(np.linalg.eigvalsh(M).max()) if M.size else -np.inf
    min_P = float(eigP.min()) if P.size else np.inf
    ok = bool(np.isfinite(scale)) and max_M <= -margin_M and min_P >= margin_P
    if ok:
        reason = "max eig(M) and min eig(P) clear the rounding margins"
    elif max_M > -margin_M:
        reason = f"max eig(M) = {max_M:.3e} is not ≤ −{margin_M:.1e}"
    else:
        reason = f"min eig(P) = {min_P:.3e} is not ≥ {margin_P:.1e}"
    return ValidationResult(bool(ok), max_M, min_P, margin_M, margin_P, scale, projected, reason)


@dataclass(frozen=True)
class InfeasibilityResult:
    """Figures of a float64 check of a dual (infeasibility) certificate ``Y = WW' ⪰ 0`` of one criterion's LMI.

    ``ok``: ``Z = H Y H' + E_x Y H' + H Y E_x'`` is positive definite and every multiplier coefficient
    ``c_{j,i} = ⟨He(L_j' e_i e_i' R_j), Y⟩`` is non-negative, both beyond their rounding bounds.
    """

    ok: bool
    min_eig_Z: float
    margin_Z: float
    min_coefficient: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "min_eig_Z": self.min_eig_Z, "margin_required_Z": self.margin_Z,
                "min_multiplier_coefficient": self.min_coefficient, "reason": self.reason}


def validate_infeasibility(sys: LureSystem, criterion: str, W: np.ndarray, *, use_odd: bool | None = None,
                           c_round: float = 8.0) -> InfeasibilityResult:
    """Check in float64 that ``Y = WW'`` proves the criterion's LMI infeasible (theorem of alternatives).

    For every symmetric ``P`` and multipliers ``t``, ``⟨M(P, t), Y⟩ = ⟨P, Z⟩ + Σ t_{j,i} c_{j,i}`` (exact
    identity, theory §7.6).  A certificate needs ``P ≻ 0``, ``t ≥ 0`` and ``M(P, t) ≺ 0``, hence
    ``⟨M, Y⟩ ≤ 0``; with ``Z ≻ 0`` and ``c ≥ 0`` the right side is ``> 0``: no certificate exists, for any
    solver.  Every product is formed from ``W`` (so ``Y ⪰ 0`` holds by construction) and accepted only beyond
    a rounding bound of the kind of :func:`rounding_margin`: ``Z``'s entries carry errors at most
    ``γ_k (‖H‖_F + 1)² ‖W‖_F²`` (Higham 2002, Lemma 3.5), ``eigvalsh`` adds ``n·u·‖Z‖_2`` (Anderson et
    al. 1999, §4.7); each ``c_{j,i}`` at most ``γ_k · 2 Σ ‖L_{j,i}‖ ‖R_{j,i}‖ ‖W‖_F²``, times ``c_round``.

    >>> s = LureSystem(A=[[0.5]], B=[[-2.0]], C=[[1.0]], D=[[0.0]], K=[1.0])   # vertex ρ = 1.5
    >>> W = np.array([[1.0], [0.9]])      # ξ = [x; p], p = 0.9q inside the sector: x⁺ = −1.3x
    >>> validate_infeasibility(s, "circle", W).ok
    True
    """
    st = lmi_structure(sys, criterion, use_odd=use_odd)
    W = np.asarray(W, dtype=np.float64)
    if W.ndim == 1:
        W = W[:, None]
    if W.shape[0] != st.N or not np.all(np.isfinite(W)):
        return InfeasibilityResult(False, -np.inf, 0.0, -np.inf, f"W must have {st.N} finite rows.")
    n, r = sys.n, W.shape[1]
    HW, XW = st.H @ W, st.Ex @ W
    Z = HW @ HW.T + XW @ HW.T + HW @ XW.T
    Z = (Z + Z.T) / 2.0
    u = _EPS / 2.0
    k = st.N + r + 4
    gk = k * u / max(1.0 - k * u, 0.5)
    wn2 = float(np.linalg.norm(W)) ** 2
    hn = float(np.linalg.norm(st.H))
    eigZ = np.linalg.eigvalsh(Z) if n else np.zeros(0)
    normZ = float(np.max(np.abs(eigZ), initial=0.0))
    margin_Z = c_round * (gk * (hn + 1.0) ** 2 * wn2 + n * u * normZ)
    min_c = np.inf
    worst = ""
    coef: dict[str, np.ndarray] = {}
    err: dict[str, np.ndarray] = {}
    for name, L, R in st.terms:
        LW, RW = L @ W, R @ W
        coef[name] = coef.get(name, 0.0) + 2.0 * np.sum(LW * RW, axis=1)
        err[name] = err.get(name, 0.0) + 2.0 * np.linalg.norm(L, axis=1) * np.linalg.norm(R, axis=1) * wn2
    for name in coef:
        slack = coef[name] - c_round * gk * err[name]
        if sys.m and float(slack.min()) < min_c:
            min_c, worst = float(slack.min()), name
    min_Z = float(eigZ.min()) if n else np.inf
    ok = bool(min_Z > margin_Z and min_c >= 0.0)
    if ok:
        reason = "Z ≻ 0 and every multiplier coefficient ≥ 0 beyond the rounding bounds: the LMI is infeasible"
    elif min_Z <= margin_Z:
        reason = f"min eig(Z) = {min_Z:.3e} is not > {margin_Z:.1e}"
    else:
        reason = f"a coefficient of multiplier {worst} is {min_c:.3e} < 0 after the rounding bound"
    return InfeasibilityResult(ok, min_Z, float(margin_Z), float(min_c), reason)
