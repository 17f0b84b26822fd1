"""Truncated-BPTT training of sequence modules with an optional stability penalty (Bonassi, Farina & Scattolini 2021).

Loss per minibatch of ``batch_size`` random sub-sequences of length ``seq_len`` (zero initial state)::

    L = MSE(ŷ[:, washout:], y[:, washout:]) + penalty(ν(θ))

Each epoch ends with a free-run simulation of the validation sequence (from the zero state); the kept
model is the best-validation epoch AMONG EPOCHS WHOSE RESIDUALS ALL CERTIFY (``max ν < −tol``), as
Bonassi's ``EarlyStoppingCallback`` does — unless ``require_certified=False`` (unconstrained training).
Deterministic given ``seed`` on CPU; float32, no mixed precision.
"""

from __future__ import annotations

import copy
import math
import numbers
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from certify.train.metrics import fit

__all__ = ["EpochRecord", "TrainConfig", "TrainResult", "pick_device", "simulate", "train"]

ResidualFn = Callable[[nn.Module], Sequence[torch.Tensor]]


def pick_device(device: str = "auto") -> torch.device:
    """``"auto"`` → cuda when available, else cpu; ``"cpu"``/``"cuda"`` as given.

    >>> pick_device("cpu").type
    'cpu'
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}.")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch.cuda.is_available() is False.")
    return torch.device(device)


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters (defaults: a small CPU budget)."""

    epochs: int = 100
    lr: float = 1e-2
    batch_size: int = 16
    seq_len: int = 100
    washout: int = 10
    batches_per_epoch: int = 4
    optimizer: str = "adam"  # or "rmsprop"
    patience: int | None = None  # epochs without improvement before stopping (None: run all)
    require_certified: bool = True  # select only epochs whose residuals all certify
    tol: float = 1e-9
    seed: int = 0
    device: str = "auto"
    progress: bool | None = None  # None: a tqdm bar only on a TTY
    desc: str = "training"  # the progress bar's (and log lines') label, e.g. "round 2/3 epoch"
    log_every: int = 0  # without a bar: one line on stderr every N epochs (0: none)

    def __post_init__(self) -> None:
        for name, low in (("epochs", 1), ("batch_size", 1), ("seq_len", 1), ("batches_per_epoch", 1), ("washout", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
                raise ValueError(f"TrainConfig.{name} must be an integer ≥ {low}, got {v!r}.")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"TrainConfig.lr must be a finite positive number, got {self.lr!r}.")
        if self.optimizer not in ("adam", "rmsprop"):
            raise ValueError(f"TrainConfig.optimizer must be 'adam' or 'rmsprop', got {self.optimizer!r}.")


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    loss: float
    val_mse: float
    val_fit: float
    worst_residual: float | None


@dataclass(frozen=True)
class TrainResult:
    """Outcome; the module passed to :func:`train` holds the weights of ``best_epoch`` (None: none qualified)."""

    best_epoch: int | None
    best_val_mse: float
    worst_residual: float | None
    history: tuple[EpochRecord, ...] = field(repr=False)

    @property
    def certified(self) -> bool:
        """Whether the kept epoch's residuals all certify (by the training residuals, not the checker)."""
        return self.best_epoch is not None and (self.worst_residual is None or self.worst_residual < 0)


def simulate(module: nn.Module, u: np.ndarray) -> np.ndarray:
    """Free-run output of ``module`` on one sequence ``u`` (T, m) from the zero state, as float64 numpy.

    >>> from certify.train.modules import GRUNet
    >>> simulate(GRUNet(2, 3, n_out=1), np.zeros((5, 2))).shape
    (5, 1)
    """
    p = next(module.parameters())
    with torch.no_grad():
        out = module(torch.as_tensor(np.asarray(u), dtype=p.dtype, device=p.device)[None])
    return out[0].detach().cpu().double().numpy()


def _windows(rng: np.random.Generator, T: int, L: int, n: int) -> np.ndarray:
    return rng.integers(0, max(1, T - L + 1), size=n)


def train(module: nn.Module, u: np.ndarray, y: np.ndarray, u_val: np.ndarray, y_val: np.ndarray,
          config: TrainConfig = TrainConfig(), *, residuals: ResidualFn | None = None,
          penalty: Callable[[Sequence[torch.Tensor]], torch.Tensor] | None = None,
          select: Callable[[nn.Module], float] | None = None,
          stop: Callable[[], bool] | None = None) -> TrainResult:
    """Train ``module`` in place on ``(u, y)`` (T, m)/(T, p) in network units; keep the best epoch.

    Parameters
    ----------
    module : nn.Module
        Sequence module ``(B, T, m) → (B, T, p)`` (``certify.train.modules``).
    u, y, u_val, y_val : ndarray
        Training and validation sequences.
    config : TrainConfig
    residuals : callable, optional
        ``module → [ν_layer …]`` (e.g. ``lambda m: gated_residuals(m, ū).diss``); drives selection.
    penalty : callable, optional
        ``[ν …] → scalar`` added to the loss (:class:`~certify.train.penalties.Penalty`).
    select : callable, optional
        ``module → ν`` evaluated once per epoch, replacing ``max(residuals(module))`` for the epoch
        selection (e.g. :meth:`certify.train.lmi_penalty.LMITarget.select`, which solves the LMI).
    stop : callable, optional
        ``() → bool`` polled after every epoch; True ends training early (keeping the best epoch so far),
        e.g. :class:`certify.train.session.Interrupt` after Ctrl-C.

    >>> from certify.train.modules import GRUNet
    >>> u = np.random.default_rng(0).uniform(-1, 1, (200, 1)); y = np.cumsum(u, 0) * 0.05
    >>> r = train(GRUNet(1, 3, n_out=1), u, y, u, y, TrainConfig(epochs=2, seq_len=50, device="cpu",
    ...           require_certified=False, progress=False))
    >>> r.best_epoch is not None
    True
    """
    cfg = config
    dev = pick_device(cfg.device)
    threads = torch.get_num_threads()
    if dev.type == "cpu":  # small recurrent models: one thread is several times faster than two contending
        torch.set_num_threads(1)
    try:
        return _train(module, u, y, u_val, y_val, cfg, dev, residuals, penalty, select, stop)
    finally:
        torch.set_num_threads(threads)


def _train(module, u, y, u_val, y_val, cfg: TrainConfig, dev: torch.device, residuals, penalty,
           select=None, stop=None) -> TrainResult:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    module.to(dev).float().train()
    U = torch.as_tensor(np.asarray(u, np.float32), device=dev)
    Y = torch.as_tensor(np.asarray(y, np.float32), device=dev)
    opt_cls = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}[cfg.optimizer]
    opt = opt_cls(module.parameters(), lr=cfg.lr)
    L = min(cfg.seq_len, U.shape[0])
    w = min(cfg.washout, L - 1)
    show = sys.stderr.isatty() if cfg.progress is None else cfg.progress
    bar = None
    if show:
        from tqdm import tqdm

        bar = tqdm(total=cfg.epochs, desc=cfg.desc, leave=False)
    best_state, best_epoch, best_mse, best_res, stall = None, None, math.inf, None, 0
    history: list[EpochRecord] = []
    idx = torch.arange(L, device=dev)
    for epoch in range(cfg.epochs):
        module.train()
        loss_sum = 0.0
        for _ in range(cfg.batches_per_epoch):
            starts = torch.as_tensor(_windows(rng, U.shape[0], L, cfg.batch_size), device=dev)
            sel = starts[:, None] + idx[None, :]
            y_hat = module(U[sel])
            loss = torch.mean((y_hat[:, w:] - Y[sel][:, w:]) ** 2)
            if penalty is not None and residuals is not None:
                loss = loss + penalty(residuals(module))
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach())
        module.eval()
        y_sim = simulate(module, u_val)
        val_mse = float(np.mean((y_sim[w:] - np.asarray(y_val)[w:]) ** 2))
        val_fit = float(np.mean(fit(np.asarray(y_val)[w:], y_sim[w:])))
        worst = None
        if select is not None:
            worst = float(select(module))
        elif residuals is not None:
            with torch.no_grad():
                worst = max(float(v) for v in residuals(module))
        rec = EpochRecord(epoch, loss_sum / cfg.batches_per_epoch, val_mse, val_fit, worst)
        history.append(rec)
        ok = not cfg.require_certified or worst is None or worst < -cfg.tol
        if ok and math.isfinite(val_mse) and val_mse < best_mse:
            best_state, best_epoch, best_mse, best_res, stall = copy.deepcopy(module.state_dict()), epoch, \
                val_mse, worst, 0
        else:
            stall += 1
        if bar is not None:
            bar.set_postfix(loss=f"{rec.loss:.3g}", fit=f"{val_fit:.1f}", nu="-" if worst is None else f"{worst:.3f}")
            bar.update(1)
        elif cfg.log_every and ((epoch + 1) % cfg.log_every == 0 or epoch + 1 == cfg.epochs):
            print(f"certify retrain: {cfg.desc} {epoch + 1}/{cfg.epochs}: loss {rec.loss:.4g}, val FIT "
                  f"{val_fit:.2f} %, ν {'-' if worst is None else f'{worst:.4g}'}, kept epoch {best_epoch}",
                  file=sys.stderr, flush=True)
        if cfg.patience is not None and best_epoch is not None and stall > cfg.patience:
            break
        if stop is not None and stop():
            break
    if bar is not None:
        bar.close()
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return TrainResult(best_epoch, best_mse, best_res, tuple(history))
