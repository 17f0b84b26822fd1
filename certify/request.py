"""One validated, picklable description of a check: :class:`CheckRequest`.

``certify.check`` and the command line both build one and hand it to :func:`certify.pipeline.run`; a
batch run sends the same requests to worker processes (or a Ray/Dask cluster).  Everything that can be
checked without reading the model is checked here, once; what depends on the model (the input range's
length, the loop's signals) is checked by the pipeline's stages.

>>> r = CheckRequest(model="models_zoo/gru_small.onnx", method="diss", timeout=30)
>>> r.method, r.timeout
('diss', 30.0)
>>> CheckRequest(model="m.onnx", method="fast")
Traceback (most recent call last):
...
certify.errors.InvalidInputError: unknown method 'fast'; choose one of auto, diss, lmi, all.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from certify.errors import InvalidInputError
from certify.frozen import FrozenDict

METHODS = ("auto", "diss", "lmi", "all")


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInputError(f"{name} must be a number, got {value!r}.")
    return float(value)


@dataclass(frozen=True)
class CheckRequest:
    """What to check and how (see :func:`certify.api.check` for the meaning of each field).

    Parameters
    ----------
    model : str or Network
        A model file path, or a network built in Python.
    plant, loop : str, str or LoopSpec
        A built-in plant, or a loop file / :class:`~certify.loop.spec.LoopSpec` (not both).
    method, solver, solver_options
        Criteria to run; conic solver and its options for the LMI.
    input_range, input_range_source
        Network-input box (an ``InputRange`` or ``(low, high)``) and where it came from.
    timeout : float or None
        Seconds for the whole check.
    seed, search
        Counterexample search seed, and ``True`` / ``False`` / a :class:`~certify.falsify.SearchBudget`.
    created : str or None
        Timestamp for the report.
    """

    model: Any
    plant: str | None = None
    loop: Any = None
    method: str = "auto"
    solver: str | None = None
    solver_options: Mapping[str, Any] = field(default_factory=FrozenDict)
    input_range: Any = None
    input_range_source: str = "argument"
    timeout: float | None = None
    seed: int = 0
    search: Any = True
    created: str | None = None

    def __post_init__(self) -> None:
        from certify.networks import Network

        model = self.model
        if isinstance(model, os.PathLike):
            model = os.fspath(model)
        if not isinstance(model, (str, Network)):
            raise InvalidInputError(f"model must be a file path or a certify Network, not {type(model).__name__}.")
        object.__setattr__(self, "model", model)
        if self.method not in METHODS:
            raise InvalidInputError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}.")
        if self.plant is not None and self.loop is not None:
            raise InvalidInputError("give either a plant or a loop file, not both.")
        if self.plant is not None and not isinstance(self.plant, str):
            raise InvalidInputError(f"plant must be the name of a built-in plant, not {type(self.plant).__name__}; "
                                    "build other plants with certify.loop.build.make_loop and pass loop=.")
        loop = self.loop
        if isinstance(loop, os.PathLike):
            object.__setattr__(self, "loop", os.fspath(loop))
        elif loop is not None and not isinstance(loop, str):
            from certify.loop.spec import LoopSpec

            if not isinstance(loop, LoopSpec):
                raise InvalidInputError(f"loop must be a loop file or a LoopSpec, not {type(loop).__name__}.")
        if self.solver is not None:  # an unknown solver is bad input even when no LMI ends up running
            from certify.criteria.solvers import get_solver

            get_solver(self.solver)
        if not isinstance(self.solver_options, Mapping):
            raise InvalidInputError("solver_options must be a mapping of option names to values.")
        object.__setattr__(self, "solver_options", FrozenDict(self.solver_options))
        if self.timeout is not None:
            t = _number("timeout", self.timeout)
            if not (math.isfinite(t) and t >= 0):
                raise InvalidInputError(f"timeout must be a finite number of seconds ≥ 0, got {self.timeout!r}.")
            object.__setattr__(self, "timeout", t)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InvalidInputError(f"seed must be a non-negative integer, got {self.seed!r}.")
        if not isinstance(self.search, bool):
            from certify.falsify import SearchBudget

            if not isinstance(self.search, SearchBudget):
                raise InvalidInputError("search must be True, False or a certify.falsify.SearchBudget.")

    @property
    def model_path(self) -> str | None:
        """The model file, when the model is one."""
        return self.model if isinstance(self.model, str) else None
