"""Linear initialisation of the gR-SS-NN's ``A, B, C, D`` (Schoukens 2021) from input/output data.

Method: an ARX model fitted by (ridge-regularised) least squares,
``y(k+1) = Σ_{i=1..nₐ} A_i y(k+1−i) + B₁ u(k) + c``, realised in block-companion form with state
``x(k) = [y(k); y(k−1); …; y(k−nₐ+1)]`` (``nₐ = n_state // p``; remaining states are decoupled zeros),
``C = [I 0 … 0]`` and ``D = 0``.  The offset ``c`` goes into ``b_x`` (first block).  If the fitted ``A`` is
not Schur it is scaled down to spectral radius 0.95 (an unstable initial guess helps nobody).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LinearSS", "fit_arx_ss", "init_gr_ssnn"]


@dataclass(frozen=True)
class LinearSS:
    """``x⁺ = A x + B u + c``, ``y = C x + D u``."""

    A: np.ndarray
    B: np.ndarray
    C: np.ndarray
    D: np.ndarray
    c: np.ndarray


def fit_arx_ss(u: np.ndarray, y: np.ndarray, n_state: int, *, ridge: float = 1e-6) -> LinearSS:
    """ARX least squares realised as a state-space model of dimension ``n_state`` (≥ p).

    >>> rng = np.random.default_rng(0); u = rng.uniform(-1, 1, (300, 1)); y = np.zeros((300, 1))
    >>> for k in range(299): y[k + 1] = 0.8 * y[k] + 0.5 * u[k]
    >>> ss = fit_arx_ss(u, y, 1)
    >>> round(float(ss.A[0, 0]), 6), round(float(ss.B[0, 0]), 6)
    (0.8, 0.5)
    """
    u, y = np.asarray(u, float), np.asarray(y, float)
    T, p = y.shape
    m = u.shape[1]
    if n_state < p:
        raise ValueError(f"n_state ({n_state}) must be at least the number of outputs ({p}).")
    na = n_state // p
    rows = range(na - 1, T - 1)
    Phi = np.array([np.concatenate([*(y[k - i] for i in range(na)), u[k], [1.0]]) for k in rows])
    target = y[na:]
    theta = np.linalg.solve(Phi.T @ Phi + ridge * np.eye(Phi.shape[1]), Phi.T @ target).T  # (p, p·na + m + 1)
    A = np.zeros((n_state, n_state))
    A[:p, :p * na] = theta[:, :p * na]
    A[p:p * na, :p * (na - 1)] = np.eye(p * (na - 1))  # shift register
    rho = max(abs(np.linalg.eigvals(A))) if n_state else 0.0
    if rho >= 1.0:
        A[:p] *= 0.95 / rho
    B = np.zeros((n_state, m))
    B[:p] = theta[:, p * na:p * na + m]
    c = np.zeros(n_state)
    c[:p] = theta[:, -1]
    C = np.zeros((p, n_state))
    C[:, :p] = np.eye(p)
    return LinearSS(A, B, C, np.zeros((p, m)), c)


def init_gr_ssnn(module, u: np.ndarray, y: np.ndarray) -> LinearSS:
    """Set ``A, B, C, D`` (and ``b_x``) of a gR-SS-NN (:class:`~certify.train.modules.SSNN`, ``linear=True``)
    to the ARX fit, and scale the nonlinear output weights ``W_x``/``W_y`` by 0.1 so the model starts near it.

    >>> from certify.train.modules import SSNN
    >>> rng = np.random.default_rng(0); u = rng.uniform(-1, 1, (200, 1)); y = np.cumsum(u, 0)[:, :1] * 0.01
    >>> init_gr_ssnn(SSNN(1, 2, 1, 4, 4), u, y).A.shape
    (2, 2)
    """
    import torch

    if not getattr(module, "linear", False):
        raise ValueError("init_gr_ssnn: the module has no linear part (SSNN(linear=True) needed).")
    ss = fit_arx_ss(u, y, module.n_state)
    with torch.no_grad():
        for name in ("A", "B", "C", "D"):
            getattr(module, name).copy_(torch.as_tensor(getattr(ss, name), dtype=module.A.dtype))
        module.b_x.copy_(torch.as_tensor(ss.c, dtype=module.b_x.dtype))
        module.W_x.mul_(0.1)
        module.W_y.mul_(0.1)
    return ss
