"""The reduction spine between a Luré system and the SDP: (apply, invert) pairs (docs/theory.md §7.7).

A SNOF reaches the LMI through a chain of reductions.  The first two act on the SNOF and leave certificates
unchanged (:mod:`certify.snof.transform`): the shift to the equilibrium (theory §4.3) and the slope
normalisation to ``[0, K]`` (§4.2), composed by :func:`certify.criteria.lmi.lure_system`.  The ones here act
on the :class:`~certify.criteria.validate.LureSystem` and change coordinates:

* :class:`Balancing` — power-of-two diagonal state and channel scaling (exact in floating point);
* :class:`Preconditioner` — a state transformation ``x̃ = R x``: ``state_scale`` near the unit circle,
  ``lyapunov`` (``‖R A R⁻¹‖₂ < 1``) for fast sampling.

Each has ``apply(sys)`` and ``invert(cert)``: a certificate found for the reduced system is mapped back to
the coordinates before the step (and validated there again by :func:`certify.criteria.lmi.check_lmi`).
Feasibility of every LMI of :mod:`certify.criteria.lmi` is invariant under these steps (``P ↦ R'PR`` and
multipliers ``t ↦ t/s²`` are bijections of the certificate sets), so an infeasibility certificate found on
a reduced system decides the original one too.  :class:`ReductionChain` composes steps (applied left to
right, inverted right to left).

>>> s = LureSystem(A=[[0.5, 100.0], [0.0, 0.5]], B=[[1.0], [0.0]], C=[[0.0, 1.0]], D=[[0.0]], K=[1.0])
>>> bal = Balancing.of(s)
>>> chain = ReductionChain((bal, Preconditioner.lyapunov(bal.apply(s))))
>>> r = chain.apply(s)
>>> bool(np.allclose(sorted(np.linalg.eigvals(r.A).real), [0.5, 0.5]))
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from certify.criteria.validate import LMICertificate, LureSystem

__all__ = ["Balancing", "Preconditioner", "Reduction", "ReductionChain", "balance_lure"]


class Reduction(Protocol):
    """One step of the spine: a change of coordinates on the system and its inverse on certificates."""

    name: str

    def apply(self, sys: LureSystem) -> LureSystem: ...

    def invert(self, cert: LMICertificate) -> LMICertificate: ...


@dataclass(frozen=True, eq=False)
class Balancing:
    """Diagonal state and channel scaling that balances ``[[A, B], [C, D]]`` (powers of two, exact).

    With ``x = T x̃``, ``p = S p̃``, ``q = S q̃`` the system becomes ``Ã = T⁻¹AT``, ``B̃ = T⁻¹BS``,
    ``C̃ = S⁻¹CT``, ``D̃ = S⁻¹DS`` and ``p̃_i = ψ_i(s_i q̃_i)/s_i``, which has the same slope interval
    [0, K_i] (and is odd iff ψ_i is).  It is the same dynamical system in other coordinates, so a
    certificate validated for it proves the original; it only helps the solvers when plant, network
    and controller signals have very different units (the boiler loop mixes kg/cm², MW and valve positions).

    >>> s = LureSystem(A=[[0.5, 100.0], [0.0, 0.5]], B=[[1.0], [0.0]], C=[[0.0, 1.0]], D=[[0.0]], K=[1.0])
    >>> bal = Balancing.of(s)
    >>> b = bal.apply(s)
    >>> bool(np.allclose(np.linalg.eigvals(b.A), np.linalg.eigvals(s.A))), float(np.abs(b.A).max()) < 100
    (True, True)
    """

    T: np.ndarray
    S: np.ndarray
    name: str = "balanced"

    @classmethod
    def of(cls, sys: LureSystem) -> Balancing:
        """The balancing of ``sys`` (``scipy.linalg.matrix_balance`` of the magnitudes, no permutation)."""
        from scipy.linalg import matrix_balance

        n = sys.n
        M = np.block([[np.abs(sys.A), np.abs(sys.B)], [np.abs(sys.C), np.abs(sys.D)]])
        _, (d, _) = matrix_balance(M, permute=False, separate=True)
        return cls(np.asarray(d[:n], dtype=np.float64), np.asarray(d[n:], dtype=np.float64))

    def apply(self, sys: LureSystem) -> LureSystem:
        T, S = self.T, self.S
        return LureSystem(A=sys.A * T[None, :] / T[:, None], B=sys.B * S[None, :] / T[:, None],
                          C=sys.C * T[None, :] / S[:, None], D=sys.D * S[None, :] / S[:, None], K=sys.K, odd=sys.odd)

    def invert(self, cert: LMICertificate) -> LMICertificate:
        """``P = T⁻¹P̃T⁻¹`` and every multiplier divided by ``S²`` (exact: powers of two)."""
        P = cert.P / self.T[:, None] / self.T[None, :]
        return LMICertificate(cert.criterion, P, {k: np.asarray(v) / self.S**2 for k, v in cert.multipliers.items()})


def balance_lure(sys: LureSystem) -> tuple[LureSystem, np.ndarray, np.ndarray]:
    """``(balanced system, T, S)`` of :class:`Balancing` (kept for callers that want the scales).

    >>> s = LureSystem(A=[[0.5, 100.0], [0.0, 0.5]], B=[[1.0], [0.0]], C=[[0.0, 1.0]], D=[[0.0]], K=[1.0])
    >>> b, T, S = balance_lure(s)
    >>> bool(np.allclose(np.linalg.eigvals(b.A), np.linalg.eigvals(s.A)))
    True
    """
    bal = Balancing.of(sys)
    return bal.apply(sys), bal.T, bal.S


@dataclass(frozen=True, eq=False)
class Preconditioner:
    """State transformation ``x̃ = R x`` (apply) and its inverse on certificates (``P = R'P̃R``).

    ``lyapunov``: ``R`` is the Cholesky factor of ``X = A'XA + I`` (Lyapunov equation of the all-slopes-0
    system), so that ``‖R A R⁻¹‖₂ < 1``: the linear part becomes a strict contraction, which conditions the
    SDP when poles sit next to 1 (fast sampling).  The multipliers do not change (channels are not touched).

    >>> s = LureSystem(A=[[0.999, 0.01], [0.0, 0.998]], B=[[0.0], [0.01]], C=[[1.0, 0.0]], D=[[0.0]], K=[1.0])
    >>> pc = Preconditioner.lyapunov(s)
    >>> bool(np.linalg.norm(pc.apply(s).A, 2) < 1.0)
    True
    """

    name: str
    R: np.ndarray

    @classmethod
    def state_scale(cls, sys: LureSystem) -> Preconditioner | None:
        """``x = c x̃`` with ``c = (1 − ρ(A))^{-1/2}`` (clipped to [1, 1e3]): near the unit circle the
        x-block of ``M`` is ``O(1 − ρ)`` while the channel blocks are ``O(1)``; the scaling rebalances the
        normalisation ``s(P, t) = 1`` between ``P`` and the multipliers.  ``None`` when ``c < 3``.

        >>> s = LureSystem(A=[[0.9999]], B=[[1.0]], C=[[1.0]], D=[[0.0]], K=[1.0])
        >>> round(float(1 / Preconditioner.state_scale(s).R[0, 0]))
        100
        """
        if sys.n == 0:
            return None
        rho = float(np.max(np.abs(np.linalg.eigvals(sys.A))))
        if not rho < 1.0:
            return None
        c = float(np.clip((1.0 - rho) ** -0.5, 1.0, 1e3))
        return None if c < 3.0 else cls("state_scale", np.eye(sys.n) / c)

    @classmethod
    def lyapunov(cls, sys: LureSystem) -> Preconditioner | None:
        from scipy.linalg import cholesky, solve_discrete_lyapunov

        if sys.n == 0 or float(np.max(np.abs(np.linalg.eigvals(sys.A)))) >= 1.0:
            return None
        try:
            X = solve_discrete_lyapunov(sys.A.T, np.eye(sys.n))
            R = cholesky((X + X.T) / 2.0, lower=False)
        except (np.linalg.LinAlgError, ValueError):
            return None
        if not np.all(np.isfinite(R)):
            return None
        return cls("lyapunov", R)

    def apply(self, sys: LureSystem) -> LureSystem:
        Ri = np.linalg.inv(self.R)
        return LureSystem(self.R @ sys.A @ Ri, self.R @ sys.B, sys.C @ Ri, sys.D, sys.K, sys.odd)

    def invert(self, cert: LMICertificate) -> LMICertificate:
        P = self.R.T @ cert.P @ self.R
        return LMICertificate(cert.criterion, (P + P.T) / 2.0, dict(cert.multipliers))




@dataclass(frozen=True, eq=False)
class ReductionChain:
    """Steps applied left to right; certificates mapped back right to left (``None`` steps are skipped).

    >>> s = LureSystem(A=[[0.9999]], B=[[1.0]], C=[[1.0]], D=[[0.0]], K=[1.0])
    >>> ch = ReductionChain((Balancing.of(s), Preconditioner.state_scale(s)))
    >>> cert = LMICertificate("circle", np.eye(1), {"T": np.ones(1)})
    >>> back = ch.invert(cert)
    >>> ch.names, bool(np.allclose(ch.apply(s).A, s.A))
    (('balanced', 'state_scale'), True)
    """

    steps: tuple[Reduction | None, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.steps if s is not None)

    def apply(self, sys: LureSystem) -> LureSystem:
        for step in self.steps:
            if step is not None:
                sys = step.apply(sys)
        return sys

    def invert(self, cert: LMICertificate) -> LMICertificate:
        for step in reversed(self.steps):
            if step is not None:
                cert = step.invert(cert)
        return cert
