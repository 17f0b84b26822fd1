"""Retraining that keeps the fit: projection onto the certified set, then fine-tuning that never leaves it.

A plain penalty (:mod:`certify.train.penalties`) trades the fit against the residual from the first epoch and,
on a well-trained network with a large residual, destroys the fit before the residual becomes negative.
This module instead starts from the trained weights and stays close to them (Bonassi, Farina & Scattolini
2021 report that the δISS constraint costs a GRU almost no accuracy):

1. **Projection** (:func:`project`): minimise the distance of the outputs to the original model's outputs
   (distillation) and to the data subject to ``ν_layer(θ) ≤ −ε`` for every layer, by an augmented Lagrangian
   on ``g = log(1 + ν) − log(1 − ε)`` (the log balances residuals of order 10³ against a mean-square error);
   it stops at the first step whose training residuals are all below ``−ε``.  When its budget runs out, the
   recurrent weights are scaled towards zero by bisection (:func:`scale_into`): at zero every supported
   architecture contracts, so the scaled point is certified by the training residuals.
2. **Fine-tuning** (:func:`finetune`): loss = data MSE + ``distill`` × MSE to the original outputs, Adam
   with a cosine learning-rate schedule; every step that would leave the set ``max ν < −ε`` is shortened
   (backtracking) or projected back — a projected gradient method — so every epoch is feasible.  With a
   barrier weight ``μ > 0`` it runs two *tracks* from the projected weights: first an interior path with the
   log barrier ``−μ Σ log(−g)`` (``μ`` annealed to ``μ/1000``), then, from the projected weights again, a
   path along the boundary without it.  Which one fits better depends on the model (measured: the boiler
   GRU's fit lies inside the certified set, the four-tank GRU's on its boundary); the caller keeps the best
   certified epoch of both.
3. The caller (``certify retrain``) keeps the epoch with the best validation FIT whose exported file the
   checker certifies.

The training residuals are the checker's formulas in torch (:mod:`certify.train.residuals`,
:mod:`certify.train.contraction`); the checker remains the judge.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from certify.train.metrics import fit
from certify.train.trainer import simulate

__all__ = ["PreserveConfig", "constraint_value", "finetune", "project", "recurrent_parameters", "scale_into",
           "worst_residual"]

ResidualFn = Callable[[nn.Module], Sequence[torch.Tensor]]


@dataclass(frozen=True)
class PreserveConfig:
    """Hyper-parameters of the projection and the fine-tuning (defaults: a small CPU budget)."""

    epochs: int = 100
    project_steps: int = 400
    lr: float = 3e-2  # `certify retrain` passes --lr (preserve default 3e-2)
    project_lr: float = 1e-2
    lr_final: float = 0.1  # cosine schedule from lr to lr·lr_final over the epochs
    batch_size: int = 16
    seq_len: int = 100
    washout: int = 10
    batches_per_epoch: int = 4
    distill: float = 1.0
    eps: float = 0.05
    barrier: float = 1e-4  # > 0: an interior track with this log-barrier weight, then a boundary track
    interior_beta2: float = 0.99  # Adam's β₂ on the interior track: forgets the barrier's early large gradients

    @property
    def switch_epoch(self) -> int:
        """First epoch of the boundary track: half the epochs with a barrier (at least one), else 0.

        >>> PreserveConfig(epochs=150).switch_epoch, PreserveConfig(epochs=1).switch_epoch
        (75, 1)
        >>> PreserveConfig(epochs=150, barrier=0).switch_epoch
        0
        """
        return max(1, self.epochs // 2) if self.barrier > 0 else 0

    def _span(self, epoch: int, track: str, start: int | None) -> float:
        """Progress ``∈ [0, 1]`` of ``epoch`` within its track (which began at epoch ``start``)."""
        lo, hi = (0, self.switch_epoch) if track == "interior" else (self.switch_epoch, self.epochs)
        lo = lo if start is None else start  # a resumed run whose --epochs moved the switch: the track goes on
        return min(1.0, max(0.0, (epoch - lo) / max(1, hi - lo - 1)))

    def barrier_at(self, epoch: int, track: str = "interior", start: int | None = None) -> float:
        """Barrier weight of fine-tuning epoch ``epoch``: on the interior track ``barrier`` decaying geometrically
        to ``barrier/1000`` (an interior-point path: first away from the boundary of the certified set, at the
        end onto it); 0 on the boundary track.

        >>> c = PreserveConfig(epochs=6, barrier=1.0)
        >>> c.barrier_at(0), round(c.barrier_at(1), 6), round(c.barrier_at(2), 6), c.barrier_at(3, "boundary")
        (1.0, 0.031623, 0.001, 0.0)
        """
        return 0.0 if track != "interior" else self.barrier * 1e-3 ** self._span(epoch, track, start)

    def lr_at(self, epoch: int, track: str | None = None, start: int | None = None) -> float:
        """Learning rate of fine-tuning epoch ``epoch``: a cosine decay from ``lr`` to ``lr·lr_final`` over each
        track (restarted at the boundary track).

        >>> c = PreserveConfig(epochs=11, lr=1.0, lr_final=0.0, barrier=0)
        >>> c.lr_at(0), round(c.lr_at(5), 6), round(c.lr_at(10), 6)
        (1.0, 0.5, 0.0)
        >>> c = PreserveConfig(epochs=4, lr=1.0, lr_final=0.0)
        >>> [round(c.lr_at(e, t), 6) for e, t in ((0, "interior"), (1, "interior"), (2, "boundary"))]
        [1.0, 0.0, 1.0]
        """
        if track is None:
            track = "interior" if epoch < self.switch_epoch else "boundary"
        frac = self._span(epoch, track, start)
        return self.lr * (self.lr_final + (1.0 - self.lr_final) * 0.5 * (1.0 + math.cos(math.pi * frac)))


def constraint_value(nu: torch.Tensor, eps: float) -> torch.Tensor:
    """``g = log(1 + ν) − log(1 − ε)``: negative exactly when ``ν < −ε`` (residuals are ≥ −1).

    >>> abs(float(constraint_value(torch.tensor(-0.05, dtype=torch.float64), 0.05))) < 1e-12
    True
    >>> bool(constraint_value(torch.tensor(1829.0), 0.05) < 8)
    True
    """
    return torch.log(torch.clamp(1.0 + nu, min=1e-12)) - math.log1p(-eps)


def worst_residual(module: nn.Module, residuals: ResidualFn) -> float:
    """``max_layer ν`` as a float (no gradient).

    >>> from certify.train.modules import ElmanNet
    >>> from certify.train.contraction import affine_residuals
    >>> m = ElmanNet(1, 2)
    >>> worst_residual(m, lambda m: affine_residuals(m).diss) > -1
    True
    """
    with torch.no_grad():
        return max(float(v) for v in residuals(module))


def recurrent_parameters(module: nn.Module) -> list[torch.Tensor]:
    """The weights that feed the state back (scaled by :func:`scale_into`); at zero the module contracts.

    >>> from certify.train.modules import GRUNet
    >>> [tuple(p.shape) for p in recurrent_parameters(GRUNet(2, 3, num_layers=2))]
    [(9, 3), (9, 3)]
    """
    from certify.train.cells import AffineCellNet
    from certify.train.modules import SSNN, LPGRNNCell, LPGRNNNet, _Stacked

    if isinstance(module, _Stacked):
        return [getattr(module.rnn, f"weight_hh_l{k}") for k in range(module.num_layers)]
    if isinstance(module, LPGRNNNet):
        return [p for c in cast("Iterable[LPGRNNCell]", module.layers) for p in (c.U_r, c.U_h)]
    if isinstance(module, SSNN):
        return [p for p in (module.A, module.W_fx) if isinstance(p, nn.Parameter)] or [module.W_fx]
    if isinstance(module, AffineCellNet):
        return [module.A, module.C_q]
    raise TypeError(f"recurrent_parameters: {type(module).__name__} is not a certify.train module.")


def scale_into(module: nn.Module, residuals: ResidualFn, eps: float, *, iters: int = 30) -> float | None:
    """Scale the recurrent weights by the largest ``s ∈ [0, 1]`` (bisection) with ``max ν < −ε``.

    Returns ``s`` (1.0: already feasible) or None when even ``s = 0`` is not feasible (weights unchanged).

    >>> from certify.train.modules import ElmanNet
    >>> from certify.train.contraction import affine_residuals
    >>> m = ElmanNet(1, 3)
    >>> with torch.no_grad():
    ...     _ = m.rnn.weight_hh_l0.mul_(10)
    >>> s = scale_into(m, lambda m: affine_residuals(m).diss, 0.05)
    >>> 0 < s < 1 and worst_residual(m, lambda m: affine_residuals(m).diss) < -0.05
    True
    """
    params = recurrent_parameters(module)
    orig = [p.detach().clone() for p in params]

    def at(s: float) -> float:
        with torch.no_grad():
            for p, o in zip(params, orig):
                p.copy_(o * s)
        return worst_residual(module, residuals)

    if at(1.0) < -eps:
        return 1.0
    if not at(0.0) < -eps:
        at(1.0)
        return None
    lo, hi = 0.0, 1.0
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if at(mid) < -eps:
            lo = mid
        else:
            hi = mid
    at(lo)
    return lo


class _Batches:
    """Random training windows with the original model's outputs on them (distillation targets)."""

    def __init__(self, u: np.ndarray, y: np.ndarray, teacher: nn.Module | None, cfg: PreserveConfig,
                 dev: torch.device, rng: np.random.Generator) -> None:
        self.U = torch.as_tensor(np.asarray(u, np.float32), device=dev)
        self.Y = torch.as_tensor(np.asarray(y, np.float32), device=dev)
        self.L = min(cfg.seq_len, self.U.shape[0])
        self.w = min(cfg.washout, self.L - 1)
        self.teacher, self.cfg, self.rng, self.dev = teacher, cfg, rng, dev
        self.idx = torch.arange(self.L, device=dev)

    def loss(self, module: nn.Module) -> torch.Tensor:
        starts = self.rng.integers(0, max(1, self.U.shape[0] - self.L + 1), size=self.cfg.batch_size)
        sel = torch.as_tensor(starts, device=self.dev)[:, None] + self.idx[None, :]
        ub, w = self.U[sel], self.w
        y_hat = module(ub)[:, w:]
        loss = torch.mean((y_hat - self.Y[sel][:, w:]) ** 2)
        if self.teacher is not None and self.cfg.distill > 0:
            with torch.no_grad():
                y_t = self.teacher(ub)[:, w:]
            loss = (loss + self.cfg.distill * torch.mean((y_hat - y_t) ** 2)) / (1.0 + self.cfg.distill)
        return loss


def project(module: nn.Module, teacher: nn.Module | None, u: np.ndarray, y: np.ndarray, residuals: ResidualFn,
            cfg: PreserveConfig, rng: np.random.Generator, *, stop: Callable[[], bool] = lambda: False,
            progress: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Move ``module`` (in place) into ``{max ν < −ε}`` while keeping its outputs close to ``teacher``'s.

    Augmented Lagrangian on ``g_i = constraint_value(ν_i, 1.1 ε)`` (multipliers updated every 10 steps,
    penalty parameter doubled when the violation does not halve), at most ``cfg.project_steps`` Adam steps;
    then, if still infeasible, :func:`scale_into`.  Returns a summary dict (``method``, ``steps``, ``scale``,
    ``residual``, ``feasible``).

    >>> from certify.train.modules import ElmanNet
    >>> from certify.train.contraction import affine_residuals
    >>> torch.manual_seed(0); m = ElmanNet(1, 3, n_out=1)  # doctest: +ELLIPSIS
    <...>
    >>> with torch.no_grad():
    ...     _ = m.rnn.weight_hh_l0.mul_(5)
    >>> u = np.random.default_rng(0).uniform(-1, 1, (120, 1)); y = 0.5 * u
    >>> res = lambda m: affine_residuals(m).diss
    >>> out = project(m, None, u, y, res, PreserveConfig(seq_len=30, project_steps=50), np.random.default_rng(0))
    >>> out["feasible"], worst_residual(m, res) < -0.05
    (True, True)
    """
    dev = next(module.parameters()).device
    eps_in = 1.1 * cfg.eps  # a little inside, so the barrier of the fine-tuning starts finite
    batches = _Batches(u, y, teacher, cfg, dev, rng)
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.project_lr)
    n = len(residuals(module))
    lam = torch.zeros(n, device=dev)
    rho, last_viol, steps = 1.0, math.inf, 0
    module.train()
    while steps < cfg.project_steps and worst_residual(module, residuals) >= -eps_in and not stop():
        g = torch.stack([constraint_value(v, eps_in) for v in residuals(module)])
        aug = (0.5 * rho * torch.clamp(g + lam / rho, min=0.0) ** 2 - lam ** 2 / (2 * rho)).sum()
        loss = batches.loss(module) + aug
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
        if steps % 10 == 0:
            with torch.no_grad():
                g = torch.stack([constraint_value(v, eps_in) for v in residuals(module)])
                lam = torch.clamp(lam + rho * g, min=0.0)
                viol = float(torch.clamp(g, min=0).max())
            if viol > 0.5 * last_viol:
                rho = min(rho * 2.0, 1e6)
            last_viol = viol
            if progress is not None:
                progress(steps, worst_residual(module, residuals))
    module.eval()
    worst = worst_residual(module, residuals)
    out: dict[str, Any] = {"method": "augmented-lagrangian", "steps": steps, "scale": None}
    if worst >= -cfg.eps and not stop():
        s = scale_into(module, residuals, eps_in)
        out.update(method="augmented-lagrangian+scaling", scale=s)
        worst = worst_residual(module, residuals)
    out.update(residual=worst, feasible=bool(worst < -cfg.eps))
    return out


def _newton_back(module: nn.Module, params: list[torch.Tensor], residuals: ResidualFn, eps: float,
                 steps: int = 6) -> bool:
    """Move the weights along ``−∇g`` of the violated constraints (Gauss–Newton steps aiming 5 % inside)
    until ``max ν < −ε``; True on success (else the weights are left where they are)."""
    for _ in range(steps):
        nus = residuals(module)
        g = torch.stack([constraint_value(v, 1.05 * eps) for v in nus])
        if float(g.detach().max()) < 0 and worst_residual(module, residuals) < -eps:
            return True
        viol = torch.clamp(g, min=0.0)
        target = (viol ** 2).sum() / 2
        grads = torch.autograd.grad(target, params, allow_unused=True)
        sq = sum(float((gr ** 2).sum()) for gr in grads if gr is not None)
        if sq == 0 or not math.isfinite(sq):
            return False
        alpha = 2.0 * float(target.detach()) / sq
        with torch.no_grad():
            for p, gr in zip(params, grads):
                if gr is not None:
                    p.sub_(alpha * gr)
    return worst_residual(module, residuals) < -eps


def _snapshot(params: list[torch.Tensor]) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


def _assign(params: list[torch.Tensor], values: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for p, v in zip(params, values):
            p.copy_(v)


# kept in the optimiser's state dict (saved by the checkpoint, restored by --resume)
_TRACK, _START, _ANCHOR = "certify_track", "certify_track_start", "certify_anchor"


def _adam(params: list[torch.Tensor], cfg: PreserveConfig, track: str, start: int) -> torch.optim.Optimizer:
    beta2 = cfg.interior_beta2 if track == "interior" else 0.999
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=(0.9, beta2))
    opt.param_groups[0].update({_TRACK: track, _START: start})
    if track == "interior":  # the boundary track starts again from these (the projected) weights
        opt.param_groups[0][_ANCHOR] = _snapshot(params)
    return opt


def finetune(module: nn.Module, teacher: nn.Module | None, u: np.ndarray, y: np.ndarray, u_val: np.ndarray,
             y_val: np.ndarray, residuals: ResidualFn, cfg: PreserveConfig, rng: np.random.Generator, *,
             start_epoch: int = 0, optimizer_state: dict | None = None,
             on_epoch: Callable[[dict[str, Any], Any], None] | None = None,
             stop: Callable[[], bool] = lambda: False) -> torch.optim.Optimizer:
    """Fine-tune a feasible ``module`` (``max ν < −ε``) in place for epochs ``start_epoch … cfg.epochs − 1``.

    Every optimiser step that would leave the feasible set is halved up to six times; if that does not bring
    it back, the full step is projected back by Gauss–Newton steps on the violated residuals, else by
    :func:`scale_into` (or undone when both fail).  With ``cfg.barrier > 0`` the epochs before
    ``cfg.switch_epoch`` form the *interior* track (loss − ``μ Σ log(−g_i)``, ``μ`` annealed, Adam with
    ``β₂ = cfg.interior_beta2``); then the weights go back to where fine-tuning started and the *boundary*
    track (no barrier, a fresh Adam, the cosine schedule restarted) runs to the end.  After each epoch
    ``on_epoch(record, optimizer)`` gets ``{"phase": "fine-tune", "epoch", "track", "loss", "lr", "val_fit",
    "residual", "rejected_steps", "projected_steps"}`` (the module holds that epoch's weights).  Returns the
    optimiser (its state — track and starting weights included — is what ``--resume`` restores).

    >>> from certify.train.modules import ElmanNet
    >>> from certify.train.contraction import affine_residuals
    >>> torch.manual_seed(0); m = ElmanNet(1, 3, n_out=1)  # doctest: +ELLIPSIS
    <...>
    >>> u = np.random.default_rng(0).uniform(-1, 1, (120, 1)); y = 0.5 * u
    >>> res = lambda m: affine_residuals(m).diss
    >>> _ = scale_into(m, res, 0.06); recs = []
    >>> _ = finetune(m, None, u, y, u, y, res, PreserveConfig(epochs=4, seq_len=30), np.random.default_rng(0),
    ...              on_epoch=lambda r, o: recs.append(r))
    >>> [r["track"] for r in recs], all(r["residual"] < -0.05 for r in recs)
    (['interior', 'interior', 'boundary', 'boundary'], True)
    """
    dev = next(module.parameters()).device
    batches = _Batches(u, y, teacher, cfg, dev, rng)
    params: list[torch.Tensor] = [p for p in module.parameters() if p.requires_grad]
    opt = _adam(params, cfg, "interior" if start_epoch < cfg.switch_epoch else "boundary", start_epoch)
    if optimizer_state is not None:
        opt.load_state_dict(optimizer_state)
        opt.param_groups[0].setdefault(_TRACK, "boundary")  # a checkpoint of a single-track run
        opt.param_groups[0].setdefault(_START, 0)
    w = batches.w

    def feasible() -> bool:
        return worst_residual(module, residuals) < -cfg.eps

    for epoch in range(start_epoch, cfg.epochs):
        if stop():
            break
        if opt.param_groups[0][_TRACK] == "interior" and epoch >= cfg.switch_epoch:
            anchor = opt.param_groups[0][_ANCHOR]
            _assign(params, [a.to(p.device) for a, p in zip(anchor, params)])
            opt = _adam(params, cfg, "boundary", epoch)
        track, t0 = opt.param_groups[0][_TRACK], opt.param_groups[0][_START]
        lr, mu = cfg.lr_at(epoch, track, t0), cfg.barrier_at(epoch, track, t0)
        for group in opt.param_groups:
            group["lr"] = lr
        module.train()
        loss_sum, rejected, projected = 0.0, 0, 0
        for _ in range(cfg.batches_per_epoch):
            loss = batches.loss(module)
            if mu > 0:
                g = torch.stack([constraint_value(v, cfg.eps) for v in residuals(module)])
                loss = loss - mu * torch.log(torch.clamp(-g, min=1e-30)).sum()
            opt.zero_grad()
            loss.backward()
            before = _snapshot(params)
            opt.step()
            if not feasible():
                after = _snapshot(params)
                t, ok = 0.5, False
                for _ in range(6):
                    _assign(params, [b + t * (a - b) for a, b in zip(after, before)])
                    if feasible():
                        ok = True
                        break
                    t *= 0.5
                if not ok:  # project the full step back: Newton steps on the violated constraints, else scaling
                    _assign(params, after)
                    if _newton_back(module, params, residuals, cfg.eps):
                        projected += 1
                    elif scale_into(module, residuals, cfg.eps, iters=20) is None:
                        _assign(params, before)
                        rejected += 1
                    else:
                        projected += 1
            loss_sum += float(loss.detach())
        module.eval()
        y_sim = simulate(module, u_val)
        val_fit = float(np.mean(fit(np.asarray(y_val)[w:], y_sim[w:])))
        rec = {"phase": "fine-tune", "epoch": epoch, "track": track, "loss": loss_sum / cfg.batches_per_epoch,
               "lr": lr, "val_fit": val_fit if math.isfinite(val_fit) else None,
               "residual": worst_residual(module, residuals), "rejected_steps": rejected,
               "projected_steps": projected}
        if on_epoch is not None:
            on_epoch(rec, opt)
    module.eval()
    return opt
