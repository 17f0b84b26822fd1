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
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from certify.train.metrics import fit

__all__ = ["EpochRecord", "TrainConfig", "TrainResult", "learning_rate", "pick_device", "simulate", "train"]

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
    checkpoint: str | None = None  # a file: the whole training state is saved there (atomically) every …
    checkpoint_every: int = 25  # … this many epochs and at the end, and a run with resume=True continues it
    anneal_epochs: int = 0  # the last this-many epochs (0: none) lower the learning rate on a cosine, from lr …
    anneal_to: float = 0.01  # … to lr · anneal_to at the final epoch

    def __post_init__(self) -> None:
        for name, low in (("epochs", 1), ("batch_size", 1), ("seq_len", 1), ("batches_per_epoch", 1), ("washout", 0),
                          ("checkpoint_every", 1), ("anneal_epochs", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
                raise ValueError(f"TrainConfig.{name} must be an integer ≥ {low}, got {v!r}.")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"TrainConfig.lr must be a finite positive number, got {self.lr!r}.")
        if self.anneal_epochs > self.epochs:
            raise ValueError(f"TrainConfig.anneal_epochs ({self.anneal_epochs}) must not exceed epochs ({self.epochs}).")
        if not (isinstance(self.anneal_to, (int, float)) and 0 < self.anneal_to <= 1):
            raise ValueError(f"TrainConfig.anneal_to must be in (0, 1], got {self.anneal_to!r}.")
        if self.optimizer not in ("adam", "rmsprop"):
            raise ValueError(f"TrainConfig.optimizer must be 'adam' or 'rmsprop', got {self.optimizer!r}.")


def learning_rate(cfg: TrainConfig, epoch: int) -> float:
    """The learning rate of ``epoch`` (0-based): ``cfg.lr``, then a cosine down to ``lr · anneal_to`` over the
    last ``anneal_epochs`` epochs (a function of the epoch alone, so a resumed run follows the same schedule).

    >>> cfg = TrainConfig(epochs=10, lr=1.0, anneal_epochs=4, anneal_to=0.01)
    >>> [round(learning_rate(cfg, e), 3) for e in (5, 6, 7, 8, 9)]
    [1.0, 1.0, 0.752, 0.258, 0.01]
    """
    start = cfg.epochs - cfg.anneal_epochs
    if cfg.anneal_epochs == 0 or epoch < start:
        return float(cfg.lr)
    if cfg.anneal_epochs == 1:
        return float(cfg.lr * cfg.anneal_to)
    t = min(1.0, (epoch - start) / (cfg.anneal_epochs - 1))
    return float(cfg.lr * (cfg.anneal_to + (1 - cfg.anneal_to) * 0.5 * (1 + math.cos(math.pi * t))))


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
          stop: Callable[[], bool] | None = None, resume: bool = False) -> TrainResult:
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
    resume : bool
        Continue from ``config.checkpoint`` (weights, optimiser, random generators, best epoch, history), so
        that an interrupted run and its continuation give the same result as one uninterrupted run.  The file
        is read with ``torch.load(weights_only=True)`` (no arbitrary unpickling).

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
        return _train(module, u, y, u_val, y_val, cfg, dev, residuals, penalty, select, stop, resume)
    finally:
        torch.set_num_threads(threads)


def _save_checkpoint(path: str, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (temporary file in the same folder, then ``os.replace``)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".ckpt-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load_checkpoint(path: str) -> dict[str, Any]:
    from certify.errors import InvalidInputError

    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InvalidInputError(f"resume: no checkpoint at {path}; start without resume.") from None
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file is bad input, not a crash
        raise InvalidInputError(f"resume: {path} is not a training checkpoint of certify ({type(exc).__name__}).") \
            from None
    if not isinstance(ck, dict) or ck.get("format") != "certify-train-checkpoint":
        raise InvalidInputError(f"resume: {path} is not a training checkpoint of certify.")
    return ck


def _train(module, u, y, u_val, y_val, cfg: TrainConfig, dev: torch.device, residuals, penalty,
           select=None, stop=None, resume: bool = False) -> TrainResult:
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
    first = 0
    if resume:
        if cfg.checkpoint is None:
            raise ValueError("train(resume=True) needs TrainConfig.checkpoint.")
        ck = _load_checkpoint(cfg.checkpoint)
        try:
            module.load_state_dict(ck["module"])
            opt.load_state_dict(ck["optimizer"])
            rng.bit_generator.state = ck["numpy_rng"]
            torch.set_rng_state(ck["torch_rng"])
            history = [EpochRecord(int(r[0]), float(r[1]), float(r[2]), float(r[3]),
                                   None if r[4] is None else float(r[4])) for r in ck["history"]]
            best_state, best_epoch, best_mse, best_res, stall = (ck["best_state"], ck["best_epoch"], ck["best_mse"],
                                                                 ck["best_res"], int(ck["stall"]))
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
            from certify.errors import InvalidInputError

            raise InvalidInputError(f"resume: {cfg.checkpoint} was written for another model or optimiser, or is "
                                    f"incomplete ({type(exc).__name__}: {str(exc).splitlines()[0][:160]}).") from None
        first = len(history)
        if bar is not None:
            bar.update(first)

    def checkpoint() -> None:
        if cfg.checkpoint is None:
            return
        _save_checkpoint(cfg.checkpoint, {
            "format": "certify-train-checkpoint", "module": module.state_dict(), "optimizer": opt.state_dict(),
            "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
            "history": [[r.epoch, r.loss, r.val_mse, r.val_fit, r.worst_residual] for r in history],
            "best_state": best_state, "best_epoch": best_epoch, "best_mse": best_mse, "best_res": best_res,
            "stall": stall})

    for epoch in range(first, cfg.epochs):
        module.train()
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, epoch)
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
        if cfg.checkpoint is not None and (epoch + 1) % cfg.checkpoint_every == 0:
            checkpoint()
        if cfg.patience is not None and best_epoch is not None and stall > cfg.patience:
            break
        if stop is not None and stop():
            break
    checkpoint()
    if bar is not None:
        bar.close()
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return TrainResult(best_epoch, best_mse, best_res, tuple(history))
