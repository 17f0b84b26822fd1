"""Differentiable contraction residuals and Lur'e matrices of affine cells (Elman, LP-GRNN, SS-NN, AffineCell).

Every affine cell is a Lur'e system ``x⁺ = A x + B p + …, q = C x + D p + …, p = φ(q)`` with channel slopes in
``[0, L_i]`` (certify.criteria.diss_affine).  This module gives, in torch:

* :func:`layer_lure` — per layer ``(A, B, C, D, L)`` exactly as the numpy checker builds them
  (``elman_checks``, ``lpgrnn_checks``, ``ssnn_checks``, ``affine_cell_checks``);
* :func:`contraction_residual` — ``ν = λ − 1`` with ``λ`` the smallest of the checker's contraction rates
  (∞-norm of the comparison matrix ``G``, the weighted ∞-norm with the Perron weights of the detached ``G``,
  and the 2-norm bound when ``D = 0``); the checker's extra diagonally scaled 2-norm (Elman) is not used,
  so this residual is never smaller than the checker's;
* :func:`affine_residuals` — the per-layer residuals as :class:`~certify.train.residuals.Residuals`;
* :func:`network_lure` — the whole stack as one Lur'e system (for the LMI penalty,
  :mod:`certify.train.lmi_penalty`): layer ``i+1`` reads ``x_i⁺ = A_i x_i + B_i p_i`` (Elman and LP-GRNN
  layers output their new state), so ``D`` gets the strictly lower blocks ``W_{i+1} B_i``.

These are training signals; ``certify check`` is the judge.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from certify.train.residuals import Residuals

__all__ = ["LureMatrices", "affine_residuals", "contraction_residual", "layer_lure", "network_lure"]

_SLOPE = {"tanh": 1.0, "relu": 1.0, "sigmoid": 0.25}


@dataclass(frozen=True)
class LureMatrices:
    """``x⁺ = A x + B p``, ``q = C x + D p`` (input terms dropped), ``p_i = φ_i(q_i)`` slope in ``[0, L_i]``.

    ``W`` maps the layer's input into ``q`` (used to chain layers); ``None`` for single-cell modules.
    """

    A: torch.Tensor
    B: torch.Tensor
    C: torch.Tensor
    D: torch.Tensor
    L: torch.Tensor
    W: torch.Tensor | None = None


def _slopes(acts, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor([_SLOPE[a] for a in acts], dtype=like.dtype, device=like.device)


def layer_lure(module: nn.Module) -> list[LureMatrices]:
    """Per-layer Lur'e matrices of an ElmanNet, LPGRNNNet, SSNN or AffineCellNet (differentiable).

    >>> from certify.train.modules import ElmanNet
    >>> [tuple(m.C.shape) for m in layer_lure(ElmanNet(2, 3, num_layers=2))]
    [(3, 3), (3, 3)]
    """
    from certify.train.cells import AffineCellNet
    from certify.train.modules import SSNN, ElmanNet, LPGRNNCell, LPGRNNNet

    if isinstance(module, ElmanNet):
        out = []
        for k in range(module.num_layers):
            U, W = getattr(module.rnn, f"weight_hh_l{k}"), getattr(module.rnn, f"weight_ih_l{k}")
            H = U.shape[0]
            Z = torch.zeros(H, H, dtype=U.dtype, device=U.device)
            out.append(LureMatrices(Z, torch.eye(H, dtype=U.dtype, device=U.device), U, Z,
                                    _slopes([module.nonlinearity] * H, U), W))
        return out
    if isinstance(module, LPGRNNNet):
        out = []
        for c in cast("Iterable[LPGRNNCell]", module.layers):
            z = torch.sigmoid(c.theta_z)
            n, nr = c.U_h.shape[0], c.U_r.shape[0]
            zr = torch.zeros(n, nr, dtype=z.dtype, device=z.device)
            B = torch.cat([zr, torch.diag(1.0 - z)], dim=1)
            C = torch.cat([c.U_r, c.U_h], dim=0)
            D = torch.cat([z.new_zeros(nr, nr + n), torch.cat([c.V_h, z.new_zeros(n, n)], dim=1)], dim=0)
            L = _slopes(["sigmoid"] * nr + ["tanh"] * n, z)
            out.append(LureMatrices(torch.diag(z), B, C, D, L, torch.cat([c.W_r, c.W_h], dim=0)))
        return out
    if isinstance(module, SSNN):
        nf = module.W_fx.shape[0]
        D = torch.zeros(nf, nf, dtype=module.A.dtype, device=module.A.device)
        return [LureMatrices(module.A, module.W_x, module.W_fx, D, _slopes([module.activation] * nf, module.A))]
    if isinstance(module, AffineCellNet):
        return [LureMatrices(module.A, module.B_p, module.C_q, module.D_qp, _slopes(module.activations, module.A))]
    raise TypeError(f"layer_lure: {type(module).__name__} is not an Elman/LP-GRNN/SS-NN/affine-cell module.")


def network_lure(module: nn.Module) -> LureMatrices:
    """The whole module as one Lur'e system (stacks chained through ``x_i⁺``; see the module docstring).

    >>> from certify.train.modules import LPGRNNNet
    >>> m = network_lure(LPGRNNNet(1, 3, gate=2, num_layers=2))
    >>> tuple(m.A.shape), tuple(m.D.shape)
    ((6, 6), (10, 10))
    """
    parts = layer_lure(module)
    if len(parts) == 1:
        return parts[0]
    ref = parts[0].A
    zeros = lambda r, c: torch.zeros(r, c, dtype=ref.dtype, device=ref.device)  # noqa: E731
    rows_C, rows_D = [], []
    for i, p in enumerate(parts):
        mi = p.L.shape[0]
        bc, bd = [], []
        for j, q in enumerate(parts):
            if j == i:
                bc.append(p.C)
                bd.append(p.D)
            elif j == i - 1:  # layer i reads x_{i-1}⁺ = A_{i-1} x_{i-1} + B_{i-1} p_{i-1}
                assert p.W is not None
                bc.append(p.W @ q.A)
                bd.append(p.W @ q.B)
            else:
                bc.append(zeros(mi, q.A.shape[0]))
                bd.append(zeros(mi, q.L.shape[0]))
        rows_C.append(torch.cat(bc, dim=1))
        rows_D.append(torch.cat(bd, dim=1))
    A = torch.block_diag(*[p.A for p in parts])
    B = torch.block_diag(*[p.B for p in parts])
    C, D = torch.cat(rows_C, dim=0), torch.cat(rows_D, dim=0)
    return LureMatrices(A, B, C, D, torch.cat([p.L for p in parts]))


def _rates(lm: LureMatrices) -> dict[str, torch.Tensor]:
    """The checker's contraction rates (certify.criteria.diss_affine.contraction_rates), in torch."""
    import numpy as np

    from certify.criteria.diss_common import perron_rate

    A, B, C, D, L = lm.A, lm.B, lm.C, lm.D, lm.L
    Lc = 0.5 * L
    absC = C.abs()
    R = Lc[:, None] * absC
    has_d = bool(torch.any(D != 0))
    if has_d:
        eye = torch.eye(L.shape[0], dtype=A.dtype, device=A.device)
        P = torch.linalg.solve_triangular(eye - L[:, None] * D.abs(), L[:, None] * absC, upper=False,
                                          unitriangular=True)
        R = R + (L[:, None] * D.abs()) @ torch.clamp(P, min=0.0)
    J = A + B @ (Lc[:, None] * C)
    G = J.abs() + B.abs() @ R
    out = {"inf": G.sum(dim=1).max()}
    _, v = perron_rate(np.asarray(G.detach().cpu().double().numpy()))
    vt = torch.as_tensor(v, dtype=G.dtype, device=G.device)
    out["inf_weighted"] = ((G @ vt) / vt).max()
    if not has_d:
        S = torch.sqrt(Lc)
        out["2"] = (torch.linalg.matrix_norm(J, ord=2) + torch.linalg.matrix_norm(B * S[None, :], ord=2)
                    * torch.linalg.matrix_norm(S[:, None] * C, ord=2))
    return out


def contraction_residual(lm: LureMatrices) -> torch.Tensor:
    """``ν = min(contraction rates) − 1`` (0-d tensor; ``ν < 0`` ⇒ global contraction, δISS and ISS).

    >>> t = torch.tensor
    >>> lm = LureMatrices(t([[0.0]]), t([[1.0]]), t([[-0.5]]), t([[0.0]]), t([1.0]))
    >>> round(float(contraction_residual(lm)), 6)
    -0.5
    """
    return torch.stack(list(_rates(lm).values())).min() - 1.0


def affine_residuals(module: nn.Module) -> Residuals:
    """Per-layer contraction residuals (ISS = δISS for these cells, as in the checker).

    >>> from certify.train.modules import ElmanNet
    >>> r = affine_residuals(ElmanNet(2, 3, num_layers=2))
    >>> len(r.diss), r.diss[0].requires_grad
    (2, True)
    """
    nus = tuple(contraction_residual(lm) for lm in layer_lure(module))
    return Residuals(nus, nus)
