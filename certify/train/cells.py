"""torch mirror of :class:`certify.networks.AffineCell` (the compiled form of one-step ONNX cell graphs).

An LP-GRNN or SS-NN exported with :func:`~certify.train.modules.export_step_onnx` is read back by the
importer as an ``AffineCell``; :class:`AffineCellNet` lets ``certify retrain`` train such a model in
that form.  The cell's **sparsity pattern is kept**: entries that are exactly zero in the imported cell
(the structure of the original architecture, e.g. the diagonal ``A = diag(z)`` of an LP-GRNN, the
strictly lower triangular ``D_qp``) receive zero gradients, so Adam/RMSProp never move them and the
retrained cell has the same structure (and stays explicit, hence well-posed).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from certify.networks import AffineCell
from certify.train.modules import _StepNet

__all__ = ["AffineCellNet", "MATRICES"]

#: Parameter names, in :class:`~certify.networks.AffineCell` order.
MATRICES = ("A", "B_p", "B_u", "b_x", "C_q", "D_qp", "D_qu", "b_q", "C_y", "D_yp", "D_yu", "b_y")
_ACT = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu}


class AffineCellNet(_StepNet):
    """``q = C_q x + D_qp p + D_qu u + b_q``, ``p = φ(q)``, ``x⁺ = A x + B_p p + B_u u + b_x``,
    ``y = C_y x + D_yp p + D_yu u + b_y`` (certify.networks.affine_cell), trainable, zeros kept.

    >>> cell = AffineCell(A=[[0.5]], B_p=[[1.0]], B_u=[[0.0]], b_x=[0.0], C_q=[[1.0]], D_qp=[[0.0]],
    ...                   D_qu=[[0.0]], b_q=[0.0], C_y=[[1.0]], D_yp=[[0.0]], D_yu=[[0.0]], b_y=[0.0],
    ...                   activations=("tanh",))
    >>> net = AffineCellNet(cell)
    >>> with torch.no_grad():
    ...     x, y = net.step(torch.ones(1, 1), torch.zeros(1, 1))
    >>> round(float(x), 6), float(y)
    (1.261594, 1.0)
    >>> net.to_canonical().activations
    ('tanh',)
    """

    # the MATRICES and their masks, registered by name in __init__
    A: torch.Tensor
    B_p: torch.Tensor
    B_u: torch.Tensor
    b_x: torch.Tensor
    C_q: torch.Tensor
    D_qp: torch.Tensor
    D_qu: torch.Tensor
    b_q: torch.Tensor
    C_y: torch.Tensor
    D_yp: torch.Tensor
    D_yu: torch.Tensor
    b_y: torch.Tensor
    mask_D_qp: torch.Tensor

    def __init__(self, cell: AffineCell, *, keep_zeros: bool = True) -> None:
        super().__init__()
        self.activations = tuple(cell.activations)
        self.n_in, self.n_state, self.n_out = cell.n_in, cell.n_state, cell.n_out
        self.keep_zeros = keep_zeros
        for name in MATRICES:
            value = np.asarray(getattr(cell, name), dtype=np.float64)
            param = nn.Parameter(torch.tensor(value, dtype=torch.float32))
            self.register_parameter(name, param)
            mask = torch.as_tensor(value != 0.0, dtype=torch.float32)
            if name == "D_qp":  # explicit cell: only the strictly lower triangle may ever be non-zero
                mask = torch.tril(mask if keep_zeros else torch.ones_like(mask), diagonal=-1)
            elif not keep_zeros:
                mask = torch.ones_like(mask)
            self.register_buffer(f"mask_{name}", mask, persistent=False)
            param.register_hook(lambda g, m=mask: g * m.to(g.device))
        self._runs = _runs(self.activations, self.mask_D_qp)

    def channels(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """The activations ``p``, run by run (a run: contiguous channels with one activation that do not
        feed each other through ``D_qp``); exports as Slice/activation/Concat nodes, one node per channel."""
        base = x @ self.C_q.T + u @ self.D_qu.T + self.b_q
        parts: list[torch.Tensor] = []
        for a, b, act in self._runs:
            q = base[..., a:b]
            if a and bool(torch.any(self.mask_D_qp[a:b, :a])):
                q = q + torch.cat(parts, dim=-1) @ self.D_qp[a:b, :a].T
            parts.append(_ACT[act](q))
        return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]

    def step(self, x: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.channels(x, u)
        x_next = x @ self.A.T + p @ self.B_p.T + u @ self.B_u.T + self.b_x
        y = x @ self.C_y.T + p @ self.D_yp.T + u @ self.D_yu.T + self.b_y
        return x_next, y

    def to_canonical(self) -> AffineCell:
        """The float64 :class:`~certify.networks.AffineCell` with the current weights."""
        vals: dict[str, Any] = {n: getattr(self, n).detach().cpu().double().numpy() for n in MATRICES}
        return AffineCell(**vals, activations=self.activations)


def _runs(acts: tuple[str, ...], mask_D: torch.Tensor) -> list[tuple[int, int, str]]:
    """Split channels ``0..m`` into evaluation runs ``[a, b)`` (same activation, no dependency inside)."""
    runs: list[tuple[int, int, str]] = []
    a = 0
    for i in range(1, len(acts) + 1):
        if i == len(acts) or acts[i] != acts[a] or bool(torch.any(mask_D[i, a:i])):
            runs.append((a, i, acts[a]))
            a = i
    return runs
