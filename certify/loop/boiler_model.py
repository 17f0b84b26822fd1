"""Nonlinear boiler–turbine model (Bell & Åström 1987; Tan et al. 2005), docs/loops.md.

Used to simulate training data for the bundled soft sensors and to build the built-in ``boiler``
plant by analytic linearisation.  States ``x = (p, E, ρf)`` (drum pressure kg/cm², electric output MW,
fluid density kg/m³), inputs ``u = (u1 fuel, u2 steam valve, u3 feed-water)`` in [0, 1].
"""

from __future__ import annotations

import numpy as np

#: Operating point #4 of Tan et al. 2005: p, E, ρf and u.
X_OP4 = np.array([108.0, 66.65, 428.0])
U_OP4 = np.array([0.34, 0.69, 0.433])
U_MIN = np.zeros(3)
U_MAX = np.ones(3)
#: Rate limits per second (Tan et al. 2005): (lower, upper) for u1, u2, u3.
RATE_LIMITS = np.array([[-0.007, 0.007], [-2.0, 0.02], [-0.05, 0.05]])


def boiler_f(x: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Time derivative of the state (Tan et al. 2005)."""
    p, E = x[..., 0], x[..., 1]
    u1, u2, u3 = u[..., 0], u[..., 1], u[..., 2]
    p98 = np.power(np.maximum(p, 0.0), 9.0 / 8.0)
    dp = -0.0018 * u2 * p98 + 0.9 * u1 - 0.15 * u3
    dE = ((0.73 * u2 - 0.16) * p98 - E) / 10.0
    drho = (141.0 * u3 - (1.1 * u2 - 0.19) * p) / 85.0
    return np.stack([dp, dE, drho], axis=-1)


def boiler_y(x: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Outputs (p, E, L) with L the drum water-level deviation in metres (Tan et al. 2005)."""
    p, E, rho = x[..., 0], x[..., 1], x[..., 2]
    u1, u2, u3 = u[..., 0], u[..., 1], u[..., 2]
    a_cs = (1.0 - 0.001538 * rho) * (0.8 * p - 25.6) / (rho * (1.0394 - 0.0012304 * p))
    q_e = (0.854 * u2 - 0.147) * p + 45.59 * u1 - 2.514 * u3 - 2.096
    L = 0.05 * (0.13073 * rho + 100.0 * a_cs + q_e / 9.0 - 67.975)
    return np.stack([p, E, L], axis=-1)


def boiler_jacobian(x_op: np.ndarray, u_op: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Analytic continuous-time (A, B) at an operating point (Tan et al. 2005)."""
    p, u2 = float(x_op[0]), float(u_op[1])
    p18 = p ** (1.0 / 8.0)
    p98 = p ** (9.0 / 8.0)
    A = np.array(
        [
            [-0.0018 * u2 * 9.0 / 8.0 * p18, 0.0, 0.0],
            [(0.73 * u2 - 0.16) * 9.0 / 8.0 * p18 / 10.0, -0.1, 0.0],
            [-(1.1 * u2 - 0.19) / 85.0, 0.0, 0.0],
        ]
    )
    B = np.array(
        [
            [0.9, -0.0018 * p98, -0.15],
            [0.0, 0.073 * p98, 0.0],
            [0.0, -1.1 * p / 85.0, 141.0 / 85.0],
        ]
    )
    return A, B


def simulate_boiler(
    u_seq: np.ndarray, x0: np.ndarray, Ts: float, *, substeps: int = 10, rate_limit: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Simulate the nonlinear model with zero-order-hold inputs (RK4, ``substeps`` per sample).

    Returns ``(x, y, u_applied)`` with ``x`` of shape (T+1, 3), ``y`` (T, 3) sampled at the start of each
    interval, and the inputs actually applied after magnitude and (optionally) rate limits.
    """
    u_seq = np.asarray(u_seq, dtype=np.float64)
    T = u_seq.shape[0]
    x = np.empty((T + 1, 3))
    y = np.empty((T, 3))
    ua = np.empty((T, 3))
    x[0] = x0
    u_prev = np.clip(u_seq[0], U_MIN, U_MAX)
    h = Ts / substeps
    for k in range(T):
        u = np.clip(u_seq[k], U_MIN, U_MAX)
        if rate_limit and k > 0:
            u = u_prev + np.clip(u - u_prev, RATE_LIMITS[:, 0] * Ts, RATE_LIMITS[:, 1] * Ts)
        ua[k] = u
        y[k] = boiler_y(x[k], u)
        xs = x[k]
        for _ in range(substeps):
            k1 = boiler_f(xs, u)
            k2 = boiler_f(xs + 0.5 * h * k1, u)
            k3 = boiler_f(xs + 0.5 * h * k2, u)
            k4 = boiler_f(xs + h * k3, u)
            xs = xs + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        x[k + 1] = xs
        u_prev = u
    return x, y, ua
