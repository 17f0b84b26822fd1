"""Fit metrics of simulated outputs: FIT (= BFR in %), RMSE, BFR, per output channel.

``FIT = 100·(1 − ‖y − ŷ‖₂ / ‖y − mean(y)‖₂)`` per channel (the system-identification "best fit
rate"; Bonassi, Farina & Scattolini 2021 report it as FIT); ``BFR`` is the same quantity clipped at 0 (MATLAB's convention).
"""

from __future__ import annotations

import numpy as np

__all__ = ["bfr", "fit", "metrics", "rmse"]


def _pair(y: np.ndarray, y_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, y_hat = np.asarray(y, float), np.asarray(y_hat, float)
    if y.shape != y_hat.shape:
        raise ValueError(f"shape mismatch: y {y.shape} vs ŷ {y_hat.shape}")
    y = y.reshape(-1, y.shape[-1]) if y.ndim > 1 else y[:, None]
    return y, y_hat.reshape(y.shape)


def fit(y: np.ndarray, y_hat: np.ndarray) -> np.ndarray:
    """Per-channel FIT in percent.

    >>> fit(np.array([[0.0], [2.0]]), np.array([[0.5], [1.5]])).round(6).tolist()
    [50.0]
    """
    y, y_hat = _pair(y, y_hat)
    den = np.linalg.norm(y - y.mean(axis=0), axis=0)
    return 100.0 * (1.0 - np.linalg.norm(y - y_hat, axis=0) / np.maximum(den, 1e-300))


def bfr(y: np.ndarray, y_hat: np.ndarray) -> np.ndarray:
    """Per-channel best fit rate, ``max(0, FIT)``.

    >>> bfr(np.array([[0.0], [2.0]]), np.array([[5.0], [-5.0]])).tolist()
    [0.0]
    """
    return np.maximum(fit(y, y_hat), 0.0)


def rmse(y: np.ndarray, y_hat: np.ndarray) -> np.ndarray:
    """Per-channel root-mean-square error.

    >>> rmse(np.array([[0.0], [2.0]]), np.array([[1.0], [1.0]])).tolist()
    [1.0]
    """
    y, y_hat = _pair(y, y_hat)
    return np.sqrt(np.mean((y - y_hat) ** 2, axis=0))


def metrics(y: np.ndarray, y_hat: np.ndarray) -> dict[str, list[float]]:
    """``{"fit": [...], "rmse": [...], "bfr": [...]}`` per channel (JSON-ready).

    >>> metrics(np.array([[0.0], [2.0]]), np.array([[0.5], [1.5]]))["rmse"]
    [0.5]
    """
    return {"fit": fit(y, y_hat).tolist(), "rmse": rmse(y, y_hat).tolist(), "bfr": bfr(y, y_hat).tolist()}
