"""Registry of conic (SDP) backends reached through CVXPY: capabilities, options, a strict status map,
a memory estimate for interior-point solves, and a typed outcome (docs/theory.md §7.6: formulation and
solver choice decide speed; a status never decides).

Every SDP certify solves (the stability LMIs and the well-posedness LMI) goes through :func:`run`, with
the user's backend, options and time budget.  :func:`run` never raises for a backend failure: it
returns a :class:`SolveOutcome` whose ``status`` is one of

``solved`` / ``inaccurate``
    a point came back; only a float64 re-check of that point may prove anything;
``infeasible``
    the backend reports a certificate of infeasibility (for a feasibility problem);
``undecided``
    the backend stopped without deciding (``infeasible_inaccurate``, ``user_limit``, a numerical
    error, a crash, a refused solve).  This is *not* "infeasible".

:func:`solve` is the raising variant (``SolverError`` unless ``solved``/``inaccurate``/``infeasible``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
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
        Cap on the relative margin τ the stability SDP maximises (``M ⪯ −τI`` with ``s(P, t) = 1``; τ ≤ 1
        always holds there, so 1.0 means "no cap").  A first-order backend converges fastest on a
        feasibility problem, so it is capped well above its tolerance; an interior-point backend maximises
        τ at no extra cost.
    options : Mapping
        First-try options passed to ``Problem.solve`` (loose where the backend is first order).
    retry_options : Mapping
        Options of the second try, used when the first point fails validation or the backend could not
        decide (tighter tolerances, or another internal scaling).
    timeout_option : str or None
        Name of the backend's wall-time option (seconds), if it has one.
    interior_point : bool
        Builds and factors a KKT system with dense blocks per PSD cone (see :func:`estimate_memory`).
    """

    name: str
    cvxpy_name: str
    sdp: bool
    max_order_hint: int
    accuracy: str
    default_margin: float
    options: Mapping[str, Any] = field(default_factory=dict)
    timeout_option: str | None = None
    retry_options: Mapping[str, Any] = field(default_factory=dict)
    interior_point: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
        object.__setattr__(self, "retry_options", MappingProxyType(dict(self.retry_options)))


REGISTRY: tuple[SolverSpec, ...] = (
    SolverSpec("clarabel", "CLARABEL", True, 48, "high", 1.0, {}, "time_limit",
               {"equilibrate_enable": False}),
    SolverSpec("scs", "SCS", True, 4000, "medium", 1e-4,
               {"eps_abs": 1e-5, "eps_rel": 1e-5, "max_iters": 2_000, "adaptive_scale": False}, "time_limit_secs",
               {"eps_abs": 1e-6, "eps_rel": 1e-6, "max_iters": 20_000}, interior_point=False),
    SolverSpec("mosek", "MOSEK", True, 2000, "high", 1.0, {}, None),
    SolverSpec("cvxopt", "CVXOPT", True, 150, "high", 1.0, {}, None),
    SolverSpec("sdpa", "SDPA", True, 300, "high", 1.0, {}, None),
)

#: raw CVXPY status → certify status.  ``solved``/``inaccurate`` go to validation; ``infeasible`` is a
#: backend's infeasibility certificate; ``infeasible_inaccurate`` and ``user_limit`` are *undecided*.
#: Any other raw status is undecided too (and :func:`solve` raises for it).
STATUS_MAP: Mapping[str, str] = MappingProxyType({
    "optimal": "solved",
    "optimal_inaccurate": "inaccurate",
    "infeasible": "infeasible",
    "infeasible_inaccurate": "undecided",
    "user_limit": "undecided",
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


def fallback_solvers(first: SolverSpec) -> tuple[SolverSpec, ...]:
    """The other installed backends, in registry order, to try after ``first`` could not decide.

    >>> [s.name for s in fallback_solvers(get_solver("clarabel"))][:1]
    ['scs']
    """
    return tuple(get_solver(n) for n in available_solvers() if n != first.name)


def available_memory() -> int:
    """Bytes this process may still allocate: ``MemAvailable`` of ``/proc/meminfo``, capped by
    ``RLIMIT_AS``/``RLIMIT_DATA`` when set (a conservative 4 GiB when neither can be read).

    >>> available_memory() > 0
    True
    """
    avail = None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    try:
        import resource

        for lim in (resource.RLIMIT_AS, resource.RLIMIT_DATA):
            soft = resource.getrlimit(lim)[0]
            if soft != resource.RLIM_INFINITY and soft > 0:
                avail = soft if avail is None else min(avail, soft)
    except (ImportError, OSError, ValueError):
        pass
    return int(avail) if avail is not None else 4 * 2**30


def estimate_memory(spec: SolverSpec, psd_orders: Sequence[int], n_scalar: int = 0) -> int:
    """Rough peak bytes of one solve of an SDP with PSD cones of the given orders.

    An interior-point backend forms a KKT matrix whose block for a PSD cone of order ``k`` is dense, of
    side ``k(k+1)/2``, and factors it: about ``8 · 4 · Σ (k(k+1)/2)²`` bytes (matrix, factor and work
    copies, float64; Clarabel 0.11 measured 0.18 GB at order 48 and 0.80 GB at order 96, estimate 0.16 and
    0.77 GB).  A first-order backend (SCS) stores the sparse cone data and one
    ``k × k`` eigendecomposition per cone: about ``8 · 8 · Σ k²`` bytes.  The estimate is used to refuse
    an interior-point solve that would exhaust memory (a native allocation failure aborts the process).

    >>> estimate_memory(get_solver("clarabel"), [192]) > 2**30
    True
    >>> estimate_memory(get_solver("scs"), [192]) < 2**27
    True
    """
    if spec.interior_point:
        dense = sum((k * (k + 1) // 2) ** 2 for k in psd_orders) + n_scalar**2
        return int(8 * 4 * dense + 64 * 2**20)
    return int(8 * 8 * sum(k * k for k in psd_orders) + 8 * 4 * n_scalar + 64 * 2**20)


@dataclass(frozen=True)
class SolveOutcome:
    """What a backend returned: certify status, raw status, timings (seconds), iterations, and a message
    when the backend failed or was refused."""

    solver: str
    status: str
    raw_status: str
    compile_seconds: float
    solve_seconds: float
    iterations: int | None
    message: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def has_point(self) -> bool:
        """Whether a primal point came back for validation."""
        return self.status in ("solved", "inaccurate")

    def to_dict(self) -> dict[str, Any]:
        return {"solver": self.solver, "status": self.status, "raw_status": self.raw_status,
                "seconds_compile": self.compile_seconds, "seconds_solve": self.solve_seconds,
                "iterations": self.iterations, "message": self.message,
                "options": {k: v for k, v in self.options.items() if isinstance(v, (int, float, str, bool))}}


def run(problem: Any, spec: SolverSpec, *, timeout: float | None = None,
        options: Mapping[str, Any] | None = None, retry: bool = False,
        psd_orders: Sequence[int] = (), memory_fraction: float = 0.5) -> SolveOutcome:
    """Solve a CVXPY problem with ``spec`` and map the status; never raises for a backend failure.

    ``options`` (user options) override the registry's (``retry_options`` when ``retry``).  When
    ``psd_orders`` is given, the backend is interior point and :func:`estimate_memory` exceeds
    ``memory_fraction`` of :func:`available_memory`, the solve is refused (status ``undecided``) instead of
    risking an abort.

    >>> import cvxpy as cp, numpy as np
    >>> X = cp.Variable((2, 2), symmetric=True)
    >>> run(cp.Problem(cp.Minimize(0), [X >> np.eye(2)]), get_solver("clarabel")).status
    'solved'
    """
    import cvxpy as cp

    opts = dict(spec.retry_options if retry else spec.options)
    opts.update(options or {})
    if psd_orders and spec.interior_point:   # dense KKT factorisation: the native-abort risk
        need, have = estimate_memory(spec, psd_orders), available_memory()
        if need > memory_fraction * have:
            return SolveOutcome(spec.name, "undecided", "refused", 0.0, 0.0, None,
                                f"{spec.name}: refused, the solve would need about {need / 2**30:.1f} GiB "
                                f"(PSD orders {list(psd_orders)}) and {have / 2**30:.1f} GiB are available.",
                                opts)
    if timeout is not None:
        if timeout <= 0:
            return SolveOutcome(spec.name, "undecided", "time_limit", 0.0, 0.0, None,
                                f"{spec.name}: the time budget is exhausted before the solve started.", opts)
        if spec.timeout_option:
            opts[spec.timeout_option] = float(timeout)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "solution may be inaccurate": validation decides
            problem.solve(solver=spec.cvxpy_name, **opts)
    except cp.error.SolverError as exc:
        return SolveOutcome(spec.name, "undecided", "solver_error", time.perf_counter() - t0, 0.0, None,
                            f"{spec.name} could not decide (numerical failure: {exc})", opts)
    except Exception as exc:  # noqa: BLE001 - a crashing backend must not crash the check
        return SolveOutcome(spec.name, "undecided", "exception", time.perf_counter() - t0, 0.0, None,
                            f"{spec.name} raised {type(exc).__name__}: {exc}", opts)
    wall = time.perf_counter() - t0
    raw = str(problem.status)
    status = STATUS_MAP.get(raw, "undecided")
    stats = problem.solver_stats
    solve_s = float(stats.solve_time) if stats is not None and stats.solve_time is not None else float("nan")
    comp = float(getattr(problem, "compilation_time", None) or max(wall - (solve_s if solve_s == solve_s else 0), 0))
    iters = None if stats is None or stats.num_iters is None else int(stats.num_iters)
    msg = ""
    if status == "undecided":
        hint = " (time limit reached)" if raw == "user_limit" else ""
        msg = f"{spec.name} returned status {raw!r}{hint}: the solver could not decide"
    return SolveOutcome(spec.name, status, raw, comp, max(wall - comp, 0.0), iters, msg, opts)


def solve(problem: Any, spec: SolverSpec, *, timeout: float | None = None,
          options: Mapping[str, Any] | None = None) -> SolveOutcome:
    """Raising variant of :func:`run`: ``SolverError`` unless the status is ``solved``, ``inaccurate``
    or ``infeasible``.

    >>> import cvxpy as cp, numpy as np
    >>> X = cp.Variable((2, 2), symmetric=True)
    >>> out = solve(cp.Problem(cp.Minimize(0), [X >> np.eye(2)]), get_solver("clarabel"))
    >>> out.status
    'solved'
    """
    out = run(problem, spec, timeout=timeout, options=options)
    if out.status == "undecided":
        raise SolverError(out.message + "; certify treats it as a failure.")
    return out
