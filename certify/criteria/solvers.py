"""Compatibility re-export: the backend registry lives in :mod:`certify.sdp.solvers` (the SDP layer below
both :mod:`certify.snof` and :mod:`certify.criteria`).

>>> from certify.criteria.solvers import get_solver
>>> get_solver("scs").name
'scs'
"""

from __future__ import annotations

from certify.sdp.solvers import (  # noqa: F401
    REGISTRY,
    STATUS_MAP,
    SolveOutcome,
    SolverSpec,
    available_memory,
    available_solvers,
    choose_solver,
    estimate_memory,
    fallback_solvers,
    get_solver,
    run,
    solve,
)
