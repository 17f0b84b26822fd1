"""Simulated identification data sets (nothing is downloaded: the plants are in ``certify.loop``).

Each generator returns a :class:`Dataset` with input and output sequences in plant units, produced by
simulating the nonlinear model with multi-level pseudo-random step (MPRS) inputs.  Saved as ``.npz``
with arrays ``u`` (T, m) and ``y`` (T, p) (the format ``certify retrain --data`` reads).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Dataset:
    """Input/output sequences with signal names, in plant units.

    :meth:`save` writes the ``.npz`` that ``certify retrain --data`` reads (arrays ``u`` (T, m),
    ``y`` (T, p), plus ``input_names``, ``output_names`` and ``Ts``).

    >>> import os, tempfile
    >>> d = Dataset(u=np.zeros((3, 1)), y=np.ones((3, 1)), input_names=("u",), output_names=("y",), Ts=1.0)
    >>> path = os.path.join(tempfile.mkdtemp(), "data.npz")
    >>> d.save(path)
    >>> sorted(np.load(path).files)
    ['Ts', 'input_names', 'output_names', 'u', 'y']
    """

    u: np.ndarray
    y: np.ndarray
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    Ts: float

    def save(self, path: str | Path) -> None:
        np.savez(path, u=self.u, y=self.y, input_names=np.array(self.input_names),
                 output_names=np.array(self.output_names), Ts=self.Ts)


def _check_length(T: int, Ts: float) -> None:
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 1:
        raise ValueError(f"the number of samples T must be a positive integer, got {T!r}.")
    if not (isinstance(Ts, (int, float)) and np.isfinite(Ts) and Ts > 0):
        raise ValueError(f"the sampling time Ts must be a positive number of seconds, got {Ts!r}.")


def mprs(rng: np.random.Generator, T: int, low: np.ndarray, high: np.ndarray, hold: tuple[int, int]) -> np.ndarray:
    """Multi-level pseudo-random steps: each channel holds a uniform level for a random number of samples."""
    low, high = np.asarray(low, float), np.asarray(high, float)
    out = np.empty((T, low.size))
    for j in range(low.size):
        k = 0
        while k < T:
            d = int(rng.integers(hold[0], hold[1] + 1))
            out[k : k + d, j] = rng.uniform(low[j], high[j])
            k += d
    return out


def boiler_pressure_dataset(T: int = 3000, seed: int = 0, Ts: float = 10.0) -> Dataset:
    """Virtual pressure sensor data: inputs (E, u1(k−1), u2, u3), output p, around operating point #4.

    The fuel input enters delayed by one sample, as it does in the loop (the network reads the
    velocity PI's state u(k−1), which keeps the loop causal).

    >>> d = boiler_pressure_dataset(T=20)
    >>> d.u.shape, d.y.shape, d.input_names, d.output_names
    ((20, 4), (20, 1), ('E', 'u1_prev', 'u2', 'u3'), ('p',))
    """
    from certify.loop.boiler_model import U_OP4, X_OP4, simulate_boiler

    _check_length(T, Ts)

    rng = np.random.default_rng(seed)
    u_cmd = mprs(rng, T + 1, U_OP4 - [0.08, 0.06, 0.06], U_OP4 + [0.08, 0.06, 0.06], (10, 60))
    x, y, ua = simulate_boiler(u_cmd, X_OP4, Ts)
    u_prev = np.concatenate([[ua[0, 0]], ua[:-1, 0]])
    inputs = np.column_stack([y[:, 1], u_prev, ua[:, 1], ua[:, 2]])[1:]
    return Dataset(u=inputs, y=y[1:, :1], input_names=("E", "u1_prev", "u2", "u3"), output_names=("p",), Ts=Ts)


def quadruple_tank_dataset(T: int = 4000, seed: int = 0, Ts: float = 15.0) -> Dataset:
    """Quadruple-tank identification data (Bonassi, Farina & Scattolini (2021) §V): inputs (qa, qb) in m³/h, outputs (h1, h2) in m.

    Parameters
    ----------
    T : int
        Number of samples.
    seed : int
        Seed of the multi-level pseudo-random step inputs.
    Ts : float
        Sampling time in seconds (the plant is integrated with RK4, ten sub-steps per sample).

    Returns
    -------
    Dataset
        Starts at the equilibrium of the built-in ``quadruple_tank`` plant.

    Examples
    --------
    >>> d = quadruple_tank_dataset(T=50)
    >>> d.u.shape, d.y.shape, d.input_names, d.output_names, d.Ts
    ((50, 2), (50, 2), ('qa', 'qb'), ('h1', 'h2'), 15.0)
    """
    from certify.loop.builtin import QUAD_Q_MAX, quadruple_tank_equilibrium, quadruple_tank_f

    _check_length(T, Ts)

    rng = np.random.default_rng(seed)
    q = mprs(rng, T, 0.1 * QUAD_Q_MAX, 0.95 * QUAD_Q_MAX, (5, 40))
    h = quadruple_tank_equilibrium()
    out = np.empty((T, 2))
    sub = 10
    dt = Ts / sub
    for k in range(T):
        out[k] = h[:2]
        for _ in range(sub):
            k1 = quadruple_tank_f(h, q[k])
            k2 = quadruple_tank_f(h + 0.5 * dt * k1, q[k])
            k3 = quadruple_tank_f(h + 0.5 * dt * k2, q[k])
            k4 = quadruple_tank_f(h + dt * k3, q[k])
            h = np.maximum(h + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4), 0.0)
    return Dataset(u=q * 3600.0, y=out, input_names=("qa", "qb"), output_names=("h1", "h2"), Ts=Ts)
