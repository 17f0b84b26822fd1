"""Registry of conic (SDP) backends reached through CVXPY, with capabilities, options and a strict
status map (lmi_engineering.md: formulation and solver choice decide speed; a status never decides).

Every raw status that is not in :data:`STATUS_MAP` raises :class:`~certify.errors.SolverError`; the
LMI check turns that into ``not_proved``/``error``, never ``proved``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from certify.errors import InvalidInputError, SolverError


@dataclass(frozen=True)
class SolverSpec:
    """One backend row.

    Parameters
    ----------
    name : str
        certify's name (lower case), e.g. ``"clarabel"``.
    cvxpy_name : str
        CVXPY's solver constant.
    sdp : bool
        Handles PSD cones.
    max_order_hint : int
        Largest total PSD order for which the backend is a good default (time/memory).
    accuracy : str
        ``"high"`` (interior point) or ``"medium"`` (first order).
    default_margin : float
        Margin δ asked of the solver (``M ⪯ −δI`` with ``P ⪰ I``), well above its tolerance.
    options : Mapping
        Options passed to ``Problem.solve``.
    timeout_option : str or None
        Name of the backend's wall-time option (seconds), if it has one.
    """

    name: str
    cvxpy_name: str
    sdp: bool
    max_order_hint: int
    accuracy: str
    default_margin: float
    options: Mapping[str, Any] = field(default_factory=dict)
    timeout_option: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))


REGISTRY: tuple[SolverSpec, ...] = (
    SolverSpec("clarabel", "CLARABEL", True, 48, "high", 1e-5, {}, "time_limit"),
    SolverSpec("scs", "SCS", True, 4000, "medium", 1e-3,
               {"eps_abs": 1e-7, "eps_rel": 1e-7, "max_iters": 200_000}, "time_limit_secs"),
    SolverSpec("mosek", "MOSEK", True, 2000, "high", 1e-6, {}, None),
    SolverSpec("cvxopt", "CVXOPT", True, 150, "high", 1e-5, {}, None),
    SolverSpec("sdpa", "SDPA", True, 300, "high", 1e-5, {}, None),
)

#: raw CVXPY status → certify status (``solved``/``inaccurate`` go to validation; ``infeasible`` is
#: reported as not proved).  Anything else is an error.
STATUS_MAP: Mapping[str, str] = MappingProxyType({
    "optimal": "solved",
    "optimal_inaccurate": "inaccurate",
    "infeasible": "infeasible",
    "infeasible_inaccurate": "infeasible",
})


def _installed() -> set[str]:
    import cvxpy as cp

    return set(cp.installed_solvers())


def available_solvers() -> tuple[str, ...]:
    """Names of the registered SDP backends installed here, in preference order.

    >>> "clarabel" in available_solvers()
    True
    """
    inst = _installed()
    return tuple(s.name for s in REGISTRY if s.sdp and s.cvxpy_name in inst)


def get_solver(name: str) -> SolverSpec:
    """The registry row for ``name`` (case-insensitive); unknown or missing → InvalidInputError.

    >>> get_solver("SCS").accuracy
    'medium'
    """
    key = str(name).lower()
    avail = available_solvers()
    for spec in REGISTRY:
        if spec.name == key:
            if key not in avail:
                raise InvalidInputError(
                    f"solver {name!r} is known but not installed; installed SDP solvers: {', '.join(avail)}.")
            return spec
    raise InvalidInputError(f"unknown solver {name!r}; installed SDP solvers: {', '.join(avail)}.")


def choose_solver(psd_order: int) -> SolverSpec:
    """Default backend for an SDP whose PSD blocks have total order ``psd_order``: the first installed
    backend (Clarabel first) whose ``max_order_hint`` covers it, else the one with the largest hint.

    >>> choose_solver(10).name, choose_solver(10_000).name
    ('clarabel', 'scs')
    """
    specs = [get_solver(n) for n in available_solvers()]
    if not specs:
        raise SolverError("no SDP solver is installed (install clarabel or scs).")
    for s in specs:
        if psd_order <= s.max_order_hint:
            return s
    return max(specs, key=lambda s: s.max_order_hint)


@dataclass(frozen=True)
class SolveOutcome:
    """What a backend returned: certify status, raw status, and timings (seconds)."""

    solver: str
    status: str
    raw_status: str
    compile_seconds: float
    solve_seconds: float
    iterations: int | None


def solve(problem: Any, spec: SolverSpec, *, timeout: float | None = None,
          options: Mapping[str, Any] | None = None) -> SolveOutcome:
    """Solve a CVXPY problem with ``spec``; map the status strictly (see :data:`STATUS_MAP`).

    >>> import cvxpy as cp, numpy as np
    >>> X = cp.Variable((2, 2), symmetric=True)
    >>> out = solve(cp.Problem(cp.Minimize(0), [X >> np.eye(2)]), get_solver("clarabel"))
    >>> out.status
    'solved'
    """
    import cvxpy as cp

    opts = dict(spec.options)
    opts.update(options or {})
    if timeout is not None:
        if timeout <= 0:
            raise SolverError(f"{spec.name}: the time budget is exhausted before the solve started.")
        if spec.timeout_option:
            opts[spec.timeout_option] = float(timeout)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "solution may be inaccurate": validation decides
            problem.solve(solver=spec.cvxpy_name, **opts)
    except cp.error.SolverError as exc:
        raise SolverError(f"{spec.name} failed: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a crashing backend must not crash the check
        raise SolverError(f"{spec.name} raised {type(exc).__name__}: {exc}") from None
    wall = time.perf_counter() - t0
    raw = str(problem.status)
    if raw not in STATUS_MAP:
        hint = " (time limit reached?)" if raw == "user_limit" else ""
        raise SolverError(f"{spec.name} returned status {raw!r}{hint}; certify treats it as a failure.")
    stats = problem.solver_stats
    solve_s = float(stats.solve_time) if stats is not None and stats.solve_time is not None else float("nan")
    comp = float(getattr(problem, "compilation_time", None) or max(wall - (solve_s if solve_s == solve_s else 0), 0))
    iters = None if stats is None or stats.num_iters is None else int(stats.num_iters)
    return SolveOutcome(spec.name, STATUS_MAP[raw], raw, comp, wall - comp, iters)
