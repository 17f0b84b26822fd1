"""Built-in plants (registered on import): ``boiler`` and ``quadruple_tank``.

boiler
    Bell & Åström (1987) / Tan et al. (2005) boiler–turbine linearised at operating point #4,
    reduced to its (p, E) subsystem and sampled by exact ZOH at Ts = 10 s (a project choice).  The fluid
    density ρf (and with it the drum level) is a pure integrator that neither p nor E sees: with a
    saturated actuator the "saturation slope 0" member of the sector class leaves it open, so no loop that
    includes it can be certified globally (docs/theory.md §9).  The (p, E) subsystem is self-contained and
    asymptotically stable; inputs u1 (fuel), u2 (steam valve), u3 (feed-water) in [0, 1].
quadruple_tank
    HD-MPC four-tank benchmark (Alvarado et al. 2011) linearised at its exact equilibrium for
    q° = (1.63, 2.00) m³/h, ZOH at Ts = 15 s (Alvarado et al. 2011); inputs qa, qb in m³/s, outputs h1, h2 in m.
"""

from __future__ import annotations

import numpy as np

from certify.loop.boiler_model import U_MAX, U_MIN, U_OP4, X_OP4, boiler_jacobian
from certify.loop.plants import BuiltinPlant, Plant, plant_from_continuous, register_plant

BOILER_TS = 10.0


def boiler_plant(Ts: float | None = None) -> Plant:
    """The built-in boiler plant, ZOH-sampled at ``Ts`` seconds (default :data:`BOILER_TS`).

    >>> boiler_plant(1.0).Ts, round(float(max(abs(np.linalg.eigvals(boiler_plant(1.0).A)))), 4)
    (1.0, 0.9975)
    """
    Ts = BOILER_TS if Ts is None else float(Ts)
    A3, B3 = boiler_jacobian(X_OP4, U_OP4)
    A, B = A3[:2, :2], B3[:2, :]
    return plant_from_continuous(
        A, B, np.eye(2), np.zeros((2, 3)), Ts,
        name="boiler",
        description="Boiler-turbine (Bell & Astrom; Tan et al. 2005) at operating point #4, (p, E) subsystem, "
        f"ZOH Ts = {Ts:g} s",
        input_names=("u1_fuel", "u2_steam_valve", "u3_feedwater"),
        output_names=("p", "E"),
        state_names=("p", "E"),
        x_op=X_OP4[:2], u_op=U_OP4, y_op=X_OP4[:2], u_min=U_MIN, u_max=U_MAX,
        source="builtin: Tan et al. 2005",
    )


# HD-MPC four-tank (Alvarado et al. 2011), SI units.
_A_AREAS = np.array([1.31e-4, 1.51e-4, 9.27e-5, 8.82e-5])
_S, _GA, _GB, _G = 0.06, 0.3, 0.4, 9.81
QUAD_Q_OP = np.array([1.63, 2.00]) / 3600.0
QUAD_Q_MAX = np.array([3.26, 4.00]) / 3600.0


def quadruple_tank_equilibrium(q: np.ndarray = QUAD_Q_OP) -> np.ndarray:
    """Exact equilibrium levels for constant flows ``q = (qa, qb)`` in m³/s (Alvarado et al. 2011)."""
    qa, qb = q
    a1, a2, a3, a4 = _A_AREAS
    h3 = ((1 - _GB) * qb / a3) ** 2 / (2 * _G)
    h4 = ((1 - _GA) * qa / a4) ** 2 / (2 * _G)
    h1 = ((_GA * qa + (1 - _GB) * qb) / a1) ** 2 / (2 * _G)
    h2 = ((_GB * qb + (1 - _GA) * qa) / a2) ** 2 / (2 * _G)
    return np.array([h1, h2, h3, h4])


def quadruple_tank_f(h: np.ndarray, q: np.ndarray) -> np.ndarray:
    """dh/dt of the nonlinear four-tank model (levels clipped at 0 inside the square roots)."""
    a1, a2, a3, a4 = _A_AREAS
    s = np.sqrt(2 * _G * np.maximum(h, 0.0))
    qa, qb = q[..., 0], q[..., 1]
    return np.stack(
        [
            (-a1 * s[..., 0] + a3 * s[..., 2] + _GA * qa) / _S,
            (-a2 * s[..., 1] + a4 * s[..., 3] + _GB * qb) / _S,
            (-a3 * s[..., 2] + (1 - _GB) * qb) / _S,
            (-a4 * s[..., 3] + (1 - _GA) * qa) / _S,
        ],
        axis=-1,
    )


def quadruple_tank_plant(Ts: float = 15.0) -> Plant:
    h = quadruple_tank_equilibrium()
    T = (_S / _A_AREAS) * np.sqrt(2 * h / _G)
    A = np.array(
        [
            [-1 / T[0], 0, 1 / T[2], 0],
            [0, -1 / T[1], 0, 1 / T[3]],
            [0, 0, -1 / T[2], 0],
            [0, 0, 0, -1 / T[3]],
        ]
    )
    B = np.array([[_GA / _S, 0], [0, _GB / _S], [0, (1 - _GB) / _S], [(1 - _GA) / _S, 0]])
    C = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
    return plant_from_continuous(
        A, B, C, np.zeros((2, 2)), Ts,
        name="quadruple_tank",
        description="HD-MPC four-tank (Alvarado et al. 2011) at its exact equilibrium, ZOH Ts = 15 s",
        input_names=("qa", "qb"), output_names=("h1", "h2"), state_names=("h1", "h2", "h3", "h4"),
        x_op=h, u_op=QUAD_Q_OP, y_op=h[:2], u_min=np.zeros(2), u_max=QUAD_Q_MAX,
        source="builtin: Alvarado et al. 2011",
    )


register_plant(BuiltinPlant("boiler", "boiler-turbine (p, E) subsystem at operating point #4, Ts = 10 s", boiler_plant))
register_plant(
    BuiltinPlant("quadruple_tank", "HD-MPC quadruple tank, levels h1, h2 from flows qa, qb, Ts = 15 s",
                 quadruple_tank_plant)
)
