"""Solver-independent re-check of Luré-type LMI certificates (lure notes §2.3, §8; lmi_engineering.md).

The LMI is written in the compact selection-matrix form of notes §2.3 on ``ξ = [x; p; p⁺]`` (or
``ξ = [x; p]`` for the circle criterion)::

    M(P, t) = G'P G − E_x'P E_x + Σ_j He(L_j' diag(t_j) R_j)

with ``G = G_x+ = [A B 0]`` and one ``(L_j, R_j)`` pair per S-procedure / Luré term.  This module
builds those matrices in float64 from the plant data, rebuilds ``M`` from the multipliers a solver
returned, and decides with eigenvalues — never with the solver's status.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

CRITERIA = ("circle", "popov", "lure_postnikov")
_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True, eq=False)
class LureSystem:
    """Shifted, normalised Luré system ``x⁺ = A x + B p, q = C x + D p, p = ψ(q)``, ψ_i slope [0, K_i].

    ``odd`` is True when every ψ_i is odd (then the T4 term of notes §2.3 is allowed).

    >>> s = LureSystem(A=[[0.5]], B=[[-1.0]], C=[[1.0]], D=[[0.0]], K=[1.0])
    >>> s.n, s.m
    (1, 1)
    """

    A: np.ndarray
    B: np.ndarray
    C: np.ndarray
    D: np.ndarray
    K: np.ndarray
    odd: bool = False

    def __post_init__(self) -> None:
        A = np.atleast_2d(np.asarray(self.A, dtype=np.float64))
        n = A.shape[0]
        K = np.asarray(self.K, dtype=np.float64).reshape(-1)
        m = K.shape[0]
        object.__setattr__(self, "A", A.reshape(n, n))
        object.__setattr__(self, "B", np.asarray(self.B, dtype=np.float64).reshape(n, m))
        object.__setattr__(self, "C", np.asarray(self.C, dtype=np.float64).reshape(m, n))
        object.__setattr__(self, "D", np.asarray(self.D, dtype=np.float64).reshape(m, m))
        if np.any(K <= 0) or not np.all(np.isfinite(K)):
            raise ValueError("LureSystem: every slope bound K_i must be finite and > 0.")
        object.__setattr__(self, "K", K)

    @property
    def n(self) -> int:
        return self.A.shape[0]

    @property
    def m(self) -> int:
        return self.K.shape[0]


@dataclass(frozen=True, eq=False)
class LMIStructure:
    """Float64 data of ``M(P, t)``: ξ dimension ``N``, ``G``, ``E_x`` and the multiplier terms."""

    criterion: str
    N: int
    G: np.ndarray
    Ex: np.ndarray
    terms: tuple[tuple[str, np.ndarray, np.ndarray], ...]

    @property
    def multiplier_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(name for name, _, _ in self.terms))


@dataclass(frozen=True, eq=False)
class LMICertificate:
    """Lyapunov matrix ``P`` and diagonal multipliers (vectors) for one criterion.

    >>> c = LMICertificate("circle", np.eye(1), {"T": np.ones(1)})
    >>> sorted(c.multipliers)
    ['T']
    """

    criterion: str
    P: np.ndarray
    multipliers: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "P", np.atleast_2d(np.asarray(self.P, dtype=np.float64)))
        object.__setattr__(self, "multipliers", MappingProxyType(
            {k: np.asarray(v, dtype=np.float64) for k, v in self.multipliers.items()}))


def lmi_structure(sys: LureSystem, criterion: str, use_odd: bool | None = None) -> LMIStructure:
    """Selection-matrix data of notes §2.3 (3-block) or §2.4(a) (circle, 2-block).

    ``popov`` is the 3-block LMI with the Luré–Postnikov term and the sector terms only
    (Λ, T1, T2; no slope term T3), which contains the circle and DT Popov criteria (notes §2.4c).
    ``lure_postnikov`` adds the slope term T3, and T4 when ``use_odd`` (default: ``sys.odd``).

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
    if criterion == "circle":
        N = n + m
        Ex = np.hstack([np.eye(n), np.zeros((n, m))])
        Ep = np.hstack([np.zeros((m, n)), np.eye(m)])
        G = np.hstack([A, B])
        Gq = np.hstack([C, D])
        return LMIStructure(criterion, N, G, Ex, (("T", Ep, Km * Gq - Ep),))
    N = n + 2 * m
    Zmn, Zmm = np.zeros((m, n)), np.zeros((m, m))
    Ex = np.hstack([np.eye(n), np.zeros((n, 2 * m))])
    Ep = np.hstack([Zmn, np.eye(m), Zmm])
    Epp = np.hstack([Zmn, Zmm, np.eye(m)])
    G = np.hstack([A, B, np.zeros((n, m))])
    Gq = np.hstack([C, D, Zmm])
    Gqp = np.hstack([C @ A, C @ B, D])
    dG, dE = Gqp - Gq, Epp - Ep
    terms: list[tuple[str, np.ndarray, np.ndarray]] = [
        # 2 p⁺'Λ Δq − Δp'Λ K⁻¹ Δp  (Luré–Postnikov integral bound, notes §2.2)
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
    return LMIStructure(criterion, N, G, Ex, tuple(terms))


def assemble_M(st: LMIStructure, P: np.ndarray, multipliers: Mapping[str, np.ndarray]) -> np.ndarray:
    """``M = G'PG − E_x'PE_x + Σ He(L' diag(t) R)`` in float64 (symmetrised).

    >>> s = LureSystem(A=[[0.5]], B=[[-1.0]], C=[[1.0]], D=[[0.0]], K=[1.0])
    >>> M = assemble_M(lmi_structure(s, "circle"), np.eye(1), {"T": np.ones(1)})
    >>> M.round(3).tolist()
    [[-0.75, 0.5], [0.5, -1.0]]
    """
    M = st.G.T @ P @ st.G - st.Ex.T @ P @ st.Ex
    for name, L, R in st.terms:
        X = L.T @ (multipliers[name][:, None] * R)
        M = M + X + X.T
    return (M + M.T) / 2.0


@dataclass(frozen=True)
class ValidationResult:
    """Figures of a float64 re-check; ``ok`` is the only thing that may lead to ``proved``."""

    ok: bool
    max_eig_M: float
    min_eig_P: float
    margin_M: float
    margin_P: float
    scale: float
    projected: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "max_eig_M": self.max_eig_M, "min_eig_P": self.min_eig_P,
                "margin_required_M": self.margin_M, "margin_required_P": self.margin_P,
                "scale": self.scale, "projected_negative_multipliers": self.projected, "reason": self.reason}


def validate_certificate(
    sys: LureSystem,
    cert: LMICertificate,
    *,
    c_round: float = 100.0,
    rel_floor: float = 1e-9,
    abs_floor: float = 1e-12,
) -> ValidationResult:
    """Re-insert a certificate into the LMI in float64 and decide by eigenvalues.

    Steps: symmetrise P; project each multiplier onto diagonal ≥ 0 (a full matrix keeps its
    diagonal; negative entries are set to 0 and the largest clipped amount is reported); reject a T4
    term unless every channel is odd; rebuild ``M`` with :func:`assemble_M`.

    Margin: with ``N`` the order of ``M`` and
    ``scale = ‖G‖²‖P‖ + ‖P‖ + Σ_j 2‖L_j‖‖diag t_j‖‖R_j‖`` (Frobenius norms, which bound the spectral ones; an upper bound on
    ``‖M‖`` and on the size of every product summed into it),

        margin_M = max(abs_floor, rel_floor · scale, c_round · N · eps · scale)
        margin_P = max(abs_floor, rel_floor · ‖P‖, c_round · n · eps · ‖P‖)

    so rounding in the assembly and in ``eigvalsh`` (each ≲ N·eps·scale) cannot turn an indefinite
    ``M`` into an apparently definite one.  ``ok`` requires ``max eig(M) ≤ −margin_M`` and
    ``min eig(P) ≥ margin_P``.

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
    nrm = lambda X: float(np.linalg.norm(X)) if X.size else 0.0  # noqa: E731  Frobenius ≥ spectral
    nP = nrm(P)
    scale = nrm(st.G) ** 2 * nP + nP + sum(
        2 * nrm(L) * float(np.max(mult[name], initial=0.0)) * nrm(R) for name, L, R in st.terms)
    margin_M = max(abs_floor, rel_floor * scale, c_round * st.N * _EPS * scale)
    margin_P = max(abs_floor, rel_floor * nP, c_round * max(sys.n, 1) * _EPS * nP)
    max_M = float(np.linalg.eigvalsh(M).max()) if M.size else -np.inf
    min_P = float(np.linalg.eigvalsh(P).min()) if P.size else np.inf
    ok = max_M <= -margin_M and min_P >= margin_P
    if ok:
        reason = "max eig(M) and min eig(P) clear the rounding margins"
    elif max_M > -margin_M:
        reason = f"max eig(M) = {max_M:.3e} is not ≤ −{margin_M:.1e}"
    else:
        reason = f"min eig(P) = {min_P:.3e} is not ≥ {margin_P:.1e}"
    return ValidationResult(bool(ok), max_M, min_P, margin_M, margin_P, scale, projected, reason)
