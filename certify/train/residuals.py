"""Differentiable (torch) ISS / δISS residuals ν of GRU and LSTM stacks, for training penalties.

They reproduce EXACTLY the formulas and input-bound handling of the numpy checker
(:mod:`certify.criteria.diss_gated`; Bonassi, Farina & Scattolini 2021, eqs. 14 and 24; Bonassi et al. 2023):

* layer 0 uses the per-input absolute bound ``ū`` of the declared input range (``W·diag(ū)``),
  layer ``i ≥ 1`` the bound 1 (GRU states / LSTM hidden outputs lie in ``[−1, 1]``);
* GRU, PyTorch convention (``reset_after=True``): ``κ = σ̄_r‖U_n‖∞ + ¼‖U_r‖∞‖[U_n b_hn]‖∞`` and the
  tighter candidate bound ``φ̄ = tanh(max_j Σ|W_n|ū + |b_in| + σ̄_r(Σ|U_n| + |b_hn|))``; Cho/Bonassi
  (``reset_after=False``) ``κ = ‖U_n‖∞(¼‖U_r‖∞ + σ̄_r)``;
  ``ν_δISS = κ − 1 + ¼(1 + φ̄)/(1 − σ̄_z)‖U_z‖∞`` and ``ν_ISS = σ̄_r‖U_n‖∞ − 1``;
* LSTM: the ∞-norm and (when ``norm2``) the 2-norm variant, the smaller residual counting, as the checker
  does for hidden ≤ 256.

The checker is the judge; these are only the training signal (tests compare them to it to 1e-6).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["Residuals", "gated_residuals"]


@dataclass(frozen=True)
class Residuals:
    """Per-layer residuals (0-d tensors, differentiable): ``iss[i]``, ``diss[i]`` for layer ``i``."""

    iss: tuple[torch.Tensor, ...]
    diss: tuple[torch.Tensor, ...]

    def of(self, target: str) -> tuple[torch.Tensor, ...]:
        """The residuals of ``target`` in {"diss", "iss", "both"} (``both``: ISS then δISS)."""
        if target == "diss":
            return self.diss
        if target == "iss":
            return self.iss
        return self.iss + self.diss

    def worst(self, target: str = "diss") -> float:
        """``max ν`` over the layers as a float (the model-level residual of the checker)."""
        return max(float(v.detach()) for v in self.of(target))


def _rs(*mats: torch.Tensor) -> torch.Tensor:
    """Row sums of absolute values of ``[M₁ M₂ …]`` (vectors count as one column)."""
    return sum(m.abs() if m.dim() == 1 else m.abs().sum(dim=1) for m in mats)  # type: ignore[return-value]


def _ninf(A: torch.Tensor) -> torch.Tensor:
    return A.abs().sum(dim=1).max()


def _params(rnn: nn.Module, k: int, G: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    W, U = getattr(rnn, f"weight_ih_l{k}"), getattr(rnn, f"weight_hh_l{k}")
    if getattr(rnn, "bias", True):
        bi, bh = getattr(rnn, f"bias_ih_l{k}"), getattr(rnn, f"bias_hh_l{k}")
    else:
        bi = bh = torch.zeros(W.shape[0], dtype=W.dtype, device=W.device)
    return W, U, bi, bh


def _gru(W, U, bi, bh, ub, reset_after: bool) -> tuple[torch.Tensor, torch.Tensor]:
    H = U.shape[1]
    Wr, Wz, Wn = (W[g * H:(g + 1) * H] * ub[None, :] for g in range(3))  # W·diag(ū)
    Ur, Uz, Un = (U[g * H:(g + 1) * H] for g in range(3))
    b_r, b_z = bi[:H] + bh[:H], bi[H:2 * H] + bh[H:2 * H]  # summed gate biases
    b_in, b_hn = bi[2 * H:], bh[2 * H:]
    arg_z = _rs(Wz, Uz, b_z).max()
    s_r = torch.sigmoid(_rs(Wr, Ur, b_r).max())  # (15)
    nUn, nUr, nUz = _ninf(Un), _ninf(Ur), _ninf(Uz)
    rs_Wn, rs_Un = _rs(Wn), _rs(Un)
    if reset_after:  # PyTorch convention (reset gate after U_n h + b_hn)
        nUn_b = (rs_Un + b_hn.abs()).max()
        phi = torch.tanh((rs_Wn + b_in.abs() + s_r * (rs_Un + b_hn.abs())).max())
        kappa = s_r * nUn + 0.25 * nUr * nUn_b
    else:  # Thm. 2 (24)
        phi = torch.tanh((rs_Wn + (b_in + b_hn).abs() + s_r * rs_Un).max())
        kappa = nUn * (0.25 * nUr + s_r)
    nu_iss = s_r * nUn - 1.0  # Thm. 1 (14)
    nu_d = kappa - 1.0 + 0.25 * (1.0 + phi) / torch.sigmoid(-arg_z) * nUz
    return nu_iss, nu_d


def _lstm(W, U, bi, bh, ub, norm2: bool) -> tuple[torch.Tensor, torch.Tensor]:
    H = U.shape[1]
    b = bi + bh
    gate = {}
    mats = {}
    for g, name in enumerate("ifgo"):  # PyTorch gate order [i|f|g|o]
        sl = slice(g * H, (g + 1) * H)
        gate[name] = _rs(W[sl] * ub[None, :], U[sl], b[sl]).max()
        mats[name] = U[sl]
    s_f, s_i, s_o = (torch.sigmoid(gate[k]) for k in "fio")
    phi_c = torch.tanh(gate["g"])
    x_bar = s_i * phi_c / torch.sigmoid(-gate["f"])
    phi_x = torch.tanh(x_bar)

    def variant(norm) -> tuple[torch.Tensor, torch.Tensor]:  # Bonassi et al. 2023, Prop. 1 and Thm. 1
        nUc, nUf, nUi, nUo = (norm(mats[k]) for k in "gfio")
        nu_iss = s_f + s_o * s_i * nUc - 1.0
        alpha = 0.25 * nUf * x_bar + s_i * nUc + 0.25 * nUi * phi_c
        nu_d = s_f + s_o * alpha + 0.25 * phi_x * nUo * (1.0 - s_f) - 1.0
        return nu_iss, nu_d

    iss, d = variant(_ninf)
    if norm2:
        iss2, d2 = variant(lambda A: torch.linalg.matrix_norm(A, ord=2))
        iss, d = torch.minimum(iss, iss2), torch.minimum(d, d2)
    return iss, d


def gated_residuals(module: nn.Module, u_bar: torch.Tensor | None = None, *, norm2: bool | None = None) -> Residuals:
    """ISS / δISS residuals of every layer of a :class:`~certify.train.modules.GRUNet` or ``LSTMNet``.

    Parameters
    ----------
    module : GRUNet or LSTMNet
        The module (any dtype/device; the result is on the same).
    u_bar : tensor or None
        Per-input absolute bound of layer 0 (``InputRange.abs_bound``); None = the checker's assumed [−1, 1].
    norm2 : bool or None
        LSTM only: also the 2-norm variant (None: when hidden ≤ 256, as the checker's default).

    >>> from certify.train.modules import GRUNet
    >>> r = gated_residuals(GRUNet(2, 3, n_out=1))
    >>> len(r.diss), r.diss[0].requires_grad
    (1, True)
    """
    kind = getattr(module, "kind", "")
    if kind not in ("gru", "lstm"):
        raise TypeError(f"gated_residuals: expected a GRUNet or LSTMNet, got {type(module).__name__}.")
    stack: Any = module  # a GRUNet or LSTMNet (by its kind)
    rnn = stack.rnn
    p0 = rnn.weight_ih_l0
    ub = torch.ones(stack.n_in, dtype=p0.dtype, device=p0.device) if u_bar is None else \
        torch.as_tensor(u_bar, dtype=p0.dtype, device=p0.device)
    iss, diss = [], []
    for k in range(stack.num_layers):
        if kind == "gru":
            a, b = _gru(*_params(rnn, k, 3), ub, getattr(module, "reset_after", True))
        else:
            a, b = _lstm(*_params(rnn, k, 4), ub, stack.hidden <= 256 if norm2 is None else norm2)
        iss.append(a)
        diss.append(b)
        ub = torch.ones(stack.hidden, dtype=p0.dtype, device=p0.device)  # layers ≥ 1: bound 1
    return Residuals(tuple(iss), tuple(diss))
