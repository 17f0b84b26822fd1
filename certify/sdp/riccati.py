"""Riccati polish of an LMI point: the best ``P`` for fixed multipliers (docs/theory.md §7.6).

For fixed multipliers the stability LMI is a discrete-time Kalman–Yakubovich–Popov inequality in ``P``:
with ``ξ = [x; u]``, ``x⁺ = A x + B̄ u`` and ``Q = Q(t)`` (whose ``x``-block is zero for every criterion),

    M(P) = [[A'PA − P, A'PB̄], [B̄'PA, B̄'PB̄]] + Q ⪯ −τ I .

With ``X = −P``, ``M(P) + τI ⪯ 0`` is the KKT matrix of the discrete algebraic Riccati equation (DARE)
``A'XA − X − (A'XB̄ + S)(R + B̄'XB̄)⁻¹(B̄'XA + S') + Q̂ = 0`` with ``Q̂ = −Q_xx − τI``, ``S = −Q_xu``,
``R = −Q_uu − τI``; at its stabilising solution the Schur complement vanishes and
``R + B̄'XB̄ ≻ 0``, so ``M(P) ⪯ −τI`` holds with equality in some direction (the discrete-time
Kalman–Yakubovich–Popov lemma and its Riccati equation: Boyd, El Ghaoui, Feron & Balakrishnan 1994;
Zhou, Doyle & Glover 1996).  A first-order solver's multipliers are usually good long before its ``P`` is accurate
enough to validate; recomputing ``P`` this way turns such a point into a certificate.  The result is
only a proposal: :func:`certify.criteria.validate.validate_certificate` decides.
"""

from __future__ import annotations

import numpy as np

__all__ = ["riccati_P"]


def riccati_P(A: np.ndarray, Bbar: np.ndarray, Q: np.ndarray, tau: float) -> np.ndarray | None:
    """``P`` with ``[[A'PA − P, A'PB̄], [B̄'PA, B̄'PB̄]] + Q ⪯ −τI`` from the stabilising DARE solution, or
    ``None`` when it does not exist or is not finite (``scipy.linalg.solve_discrete_are``).

    >>> A, Bb = np.array([[0.5]]), np.array([[-1.0]])
    >>> Q = np.array([[0.0, 1.0], [1.0, -2.0]])          # circle criterion, C = 1, K = 1, T = 1
    >>> P = riccati_P(A, Bb, Q, 0.1)
    >>> M = np.block([[A.T @ P @ A - P, A.T @ P @ Bb], [Bb.T @ P @ A, Bb.T @ P @ Bb]]) + Q
    >>> bool(abs(np.linalg.eigvalsh(M).max() + 0.1) < 1e-9), bool(P[0, 0] > 0)
    (True, True)
    """
    from scipy.linalg import solve_discrete_are

    n = A.shape[0]
    k = Bbar.shape[1]
    Qxx, S, R = Q[:n, :n], Q[:n, n:], Q[n:, n:]
    R = -(R + R.T) / 2.0 - tau * np.eye(k)
    try:
        np.linalg.cholesky(R)           # R ≻ 0 is necessary (B̄'PB̄ ⪰ 0)
        X = solve_discrete_are(A, Bbar, -(Qxx + Qxx.T) / 2.0 - tau * np.eye(n), R, s=-S)
    except (np.linalg.LinAlgError, ValueError):
        return None
    P = -(X + X.T) / 2.0
    return P if np.all(np.isfinite(P)) else None
