"""An LMI-based training penalty for affine cells: keep the weights inside the set certified by an anchor.

For fixed weights the Lur'e LMI of :mod:`certify.criteria.validate` is linear in ``(P, t)``; for a fixed
certificate ``(P*, t*)`` its matrix ``M(θ) = G'P*G − E_x'P*E_x + Σ He(L' diag(t*) R)`` is a smooth
(quadratic) function of the weights ``θ``.  :class:`LMITarget` alternates:

1. at the end of every epoch, :meth:`LMITarget.select` builds the network's Lur'e system in float64
   (:func:`certify.train.contraction.network_lure`, channel slopes ``[0, L_i]``; after the equilibrium
   shift the matrices are the same), balances it exactly (:func:`certify.criteria.lmi.balance_lure`) and
   solves the circle, then the Luré–Postnikov LMI (:func:`certify.criteria.lmi.solve_lmi`, which validates
   in float64).  A validated certificate becomes the new **anchor** and the epoch qualifies;
2. during the next epoch the penalty acts on ``ν_LMI(θ) = λ_max(M(θ; P*, t*)) / ‖P*‖₂`` — negative exactly
   when the anchor still certifies the current weights.  Before the first anchor exists the penalty acts on
   the contraction residuals (a sufficient condition that drives the weights towards a certifiable region).

The anchor never certifies anything on its own: ``certify retrain --target lmi`` judges the exported model
with ``certify check --method lmi``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from certify.train.contraction import LureMatrices, contraction_residual, layer_lure, network_lure

__all__ = ["Anchor", "LMITarget", "lmi_matrix", "solve_anchor"]


@dataclass(frozen=True)
class Anchor:
    """A validated certificate of the balanced system: ``x_b = x / T``, ``p_b = p / S`` (power-of-two scalings)."""

    criterion: str
    P: np.ndarray
    multipliers: dict[str, np.ndarray]
    T: np.ndarray
    S: np.ndarray
    max_eig_M: float


def _balanced(lm: LureMatrices, T: torch.Tensor, S: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The exact similarity of :func:`certify.criteria.lmi.balance_lure`."""
    A = lm.A * T[None, :] / T[:, None]
    B = lm.B * S[None, :] / T[:, None]
    C = lm.C * T[None, :] / S[:, None]
    D = lm.D * S[None, :] / S[:, None]
    return A, B, C, D


def lmi_matrix(lm: LureMatrices, anchor: Anchor) -> torch.Tensor:
    """``M(θ)`` of :func:`certify.criteria.validate.assemble_M` with the anchor's ``P`` and multipliers (torch).

    >>> from certify.criteria.validate import LureSystem, assemble_M, lmi_structure
    >>> t = torch.tensor
    >>> lm = LureMatrices(t([[0.5]], dtype=torch.float64), t([[-1.0]], dtype=torch.float64),
    ...                   t([[1.0]], dtype=torch.float64), t([[0.0]], dtype=torch.float64), t([1.0], dtype=torch.float64))
    >>> a = Anchor("circle", np.eye(1), {"T": np.ones(1)}, np.ones(1), np.ones(1), -0.5)
    >>> lmi_matrix(lm, a).numpy().round(3).tolist()
    [[-0.75, 0.5], [0.5, -1.0]]
    """
    ref = lm.A
    as_t = lambda v: torch.as_tensor(np.asarray(v), dtype=ref.dtype, device=ref.device)  # noqa: E731
    A, B, C, D = _balanced(lm, as_t(anchor.T), as_t(anchor.S))
    K = lm.L
    n, m = A.shape[0], K.shape[0]
    Km = K[:, None]
    eye_n, eye_m = torch.eye(n, dtype=ref.dtype, device=ref.device), torch.eye(m, dtype=ref.dtype, device=ref.device)
    z = lambda r, c: torch.zeros(r, c, dtype=ref.dtype, device=ref.device)  # noqa: E731
    # the selection matrices of certify.criteria.validate.lmi_structure, in torch
    if anchor.criterion == "circle":
        Ex, Ep = torch.cat([eye_n, z(n, m)], 1), torch.cat([z(m, n), eye_m], 1)
        G, Gq = torch.cat([A, B], 1), torch.cat([C, D], 1)
        terms = [("T", Ep, Km * Gq - Ep)]
    else:
        Ex = torch.cat([eye_n, z(n, 2 * m)], 1)
        Ep = torch.cat([z(m, n), eye_m, z(m, m)], 1)
        Epp = torch.cat([z(m, n), z(m, m), eye_m], 1)
        G = torch.cat([A, B, z(n, m)], 1)
        Gq = torch.cat([C, D, z(m, m)], 1)
        Gqp = torch.cat([C @ A, C @ B, D], 1)
        dG, dE = Gqp - Gq, Epp - Ep
        terms = [("Lambda", Epp, dG), ("Lambda", dE, -0.5 * dE / Km), ("T1", Ep, Km * Gq - Ep),
                 ("T2", Epp, Km * Gqp - Epp)]
        if anchor.criterion == "lure_postnikov":
            terms.append(("T3", dE, Km * dG - dE))
            if "T4" in anchor.multipliers:   # odd channels only (validate.lmi_structure)
                S_, Sq = Ep + Epp, Gq + Gqp
                terms.append(("T4", S_, Km * Sq - S_))
    P = as_t(anchor.P)
    M = G.T @ P @ G - Ex.T @ P @ Ex
    for name, Lm, Rm in terms:
        X = Lm.T @ (as_t(anchor.multipliers[name])[:, None] * Rm)
        M = M + X + X.T
    return 0.5 * (M + M.T)


def solve_anchor(lm: LureMatrices, *, solver: str | None = None) -> Anchor | None:
    """Solve the circle, then the Luré–Postnikov LMI for the (detached) system; a validated certificate or None.

    >>> t = torch.tensor
    >>> lm = LureMatrices(t([[0.5]]), t([[-1.0]]), t([[1.0]]), t([[0.0]]), t([1.0]))
    >>> solve_anchor(lm).criterion
    'circle'
    """
    from certify.criteria.lmi import balance_lure, solve_lmi
    from certify.criteria.validate import LureSystem
    from certify.errors import SolverError

    f = lambda x: x.detach().cpu().double().numpy()  # noqa: E731
    sys = LureSystem(f(lm.A), f(lm.B), f(lm.C), f(lm.D), f(lm.L), odd=False)
    bal, T, S = balance_lure(sys)
    for crit in ("circle", "lure_postnikov"):
        try:
            att = solve_lmi(bal, crit, solver=solver)
        except SolverError:
            continue
        if att.validation is not None and att.validation.ok and att.certificate is not None:
            c = att.certificate
            mult = {k: np.maximum(np.asarray(v, dtype=float).reshape(-1), 0.0) for k, v in c.multipliers.items()}
            return Anchor(crit, np.asarray(c.P), mult, T, S, att.validation.max_eig_M)
    return None


class LMITarget:
    """Residuals and epoch selection for ``--target lmi`` (see the module docstring).

    >>> from certify.train.modules import ElmanNet
    >>> net = ElmanNet(1, 2)
    >>> with torch.no_grad():
    ...     _ = net.rnn.weight_hh_l0.mul_(0.1)
    >>> tgt = LMITarget()
    >>> tgt.select(net) < 0, tgt.anchor is not None
    (True, True)
    """

    def __init__(self, *, solver: str | None = None) -> None:
        self.solver = solver
        self.anchor: Anchor | None = None
        self.solves = 0

    def residuals(self, module: nn.Module) -> list[torch.Tensor]:
        """``[ν_LMI]`` against the anchor, or the contraction residuals while there is no anchor."""
        if self.anchor is None:
            return [contraction_residual(lm) for lm in layer_lure(module)]
        M = lmi_matrix(network_lure(module), self.anchor)
        return [torch.linalg.eigvalsh(M).max() / float(np.linalg.norm(self.anchor.P, 2))]

    def select(self, module: nn.Module) -> float:
        """Solve the LMI for the current weights; a validated certificate re-anchors and the epoch qualifies
        (returns ``max eig M / ‖P‖ < 0``); otherwise returns the anchor residual (≥ 0) or +inf."""
        self.solves += 1
        with torch.no_grad():
            lm = network_lure(module)
            anchor = solve_anchor(lm, solver=self.solver)
            if anchor is not None:
                self.anchor = anchor
                return anchor.max_eig_M / float(np.linalg.norm(anchor.P, 2))
            if self.anchor is None:
                return float("inf")
            return max(0.0, float(torch.linalg.eigvalsh(lmi_matrix(lm, self.anchor)).max()))
