"""Values passed from the checks to the report: verdicts, exit codes, check results, counterexamples.

These are the contract between the criteria (``certify.criteria``, ``certify.falsify``) and the
report layer (``certify.report``).  They are frozen dataclasses and enums, with no behaviour
beyond small conveniences, so that every report format renders from the same value.
"""

from __future__ import annotations

import builtins
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class ExitCode(enum.IntEnum):
    """Exit codes of the ``certify`` command (one meaning each; see the README's exit-code table).

    >>> int(ExitCode.CERTIFIED), int(ExitCode.UNSTABLE)
    (0, 4)
    """

    CERTIFIED = 0
    NOT_CERTIFIED = 1
    USAGE_ERROR = 2
    INVALID_INPUT = 3
    UNSTABLE = 4
    INTERNAL_ERROR = 5


class Verdict(str, enum.Enum):
    """The answer of one run for one model.

    >>> Verdict.CERTIFIED.exit_code
    <ExitCode.CERTIFIED: 0>
    """

    CERTIFIED = "certified"
    NOT_CERTIFIED = "not_certified"
    INVALID_INPUT = "invalid_input"
    UNSTABLE = "unstable"
    INTERNAL_ERROR = "internal_error"

    @property
    def exit_code(self) -> ExitCode:
        return _VERDICT_EXIT[self]

    @property
    def severity(self) -> int:
        """Order used to combine several verdicts into the worst one (higher is worse)."""
        return _SEVERITY[self]


_VERDICT_EXIT = {
    Verdict.CERTIFIED: ExitCode.CERTIFIED,
    Verdict.NOT_CERTIFIED: ExitCode.NOT_CERTIFIED,
    Verdict.INVALID_INPUT: ExitCode.INVALID_INPUT,
    Verdict.UNSTABLE: ExitCode.UNSTABLE,
    Verdict.INTERNAL_ERROR: ExitCode.INTERNAL_ERROR,
}
_SEVERITY = {
    Verdict.CERTIFIED: 0,
    Verdict.NOT_CERTIFIED: 1,
    Verdict.UNSTABLE: 2,
    Verdict.INVALID_INPUT: 3,
    Verdict.INTERNAL_ERROR: 4,
}


def worst_verdict(verdicts: list[Verdict]) -> Verdict:
    """The most severe of several verdicts (``certified`` when the list is empty is *not* allowed).

    >>> worst_verdict([Verdict.CERTIFIED, Verdict.NOT_CERTIFIED])
    <Verdict.NOT_CERTIFIED: 'not_certified'>
    """
    if not verdicts:
        raise ValueError("worst_verdict needs at least one verdict")
    return max(verdicts, key=lambda v: v.severity)


class CheckStatus(str, enum.Enum):
    """Outcome of one check.

    ``proved``: a validated certificate proves the property.
    ``not_proved``: the criterion could not prove it (inconclusive, with a reason).
    ``disproved``: a re-checked counterexample shows the property is false.
    ``not_applicable``: the criterion does not apply to this model (with a reason).
    ``error``: the check failed to run (solver crash, timeout); never counts as proved.

    >>> CheckStatus("not_proved"), CheckStatus.PROVED.value
    (<CheckStatus.NOT_PROVED: 'not_proved'>, 'proved')
    """

    PROVED = "proved"
    NOT_PROVED = "not_proved"
    DISPROVED = "disproved"
    NOT_APPLICABLE = "not_applicable"
    ERROR = "error"


class Property(str, enum.Enum):
    """Properties certify can prove.

    ``iss`` and ``delta_iss``: (incremental) input-to-state stability of a network on its input range;
    ``gas``: global asymptotic stability of the (shifted) equilibrium; ``well_posed``: the implicit
    SNOF equations have a unique solution; ``region_of_attraction``: an explicit set (an invariant
    ellipsoid) lies in the region of attraction of an equilibrium.  ``region_of_attraction`` is a
    regional result: it proves no other property and never makes a verdict ``certified``
    (docs/loops.md, "Regional results").

    >>> [p.value for p in Property]
    ['iss', 'delta_iss', 'gas', 'well_posed', 'region_of_attraction']
    """

    ISS = "iss"
    DELTA_ISS = "delta_iss"
    GAS = "gas"  # global asymptotic stability of the (shifted) equilibrium
    WELL_POSED = "well_posed"
    REGION = "region_of_attraction"  # an invariant ellipsoid inside the region of attraction; never global


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    from certify.frozen import FrozenDict

    return FrozenDict(mapping or {})


@dataclass(frozen=True)
class Counterexample:
    """A re-checked witness that a property is false.

    Parameters
    ----------
    kind : str
        ``"multiple_equilibria"``, ``"non_contracting_pair"``, ``"divergence"``, ``"limit_cycle"``, ...
    description : str
        One sentence for people.
    data : Mapping[str, Any]
        JSON-serialisable numbers that let anyone re-simulate the witness (lists, floats).
    residual : float
        How well the witness satisfies its defining equations (e.g. fixed-point residual), float64.

    Examples
    --------
    >>> cex = Counterexample("multiple_equilibria", "two equilibria for u = 0", {"x": [[0.0], [1.2]]})
    >>> cex.kind, dict(cex.data)
    ('multiple_equilibria', {'x': [[0.0], [1.2]]})
    """

    kind: str
    description: str
    data: Mapping[str, Any] = field(default_factory=dict)
    residual: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", _frozen(self.data))


@dataclass(frozen=True)
class CheckResult:
    """Result of one check (one criterion applied to one model or loop, for one property).

    Parameters
    ----------
    name : str
        Short identifier, e.g. ``"gru.delta_iss.layer0"`` or ``"lmi.lure_postnikov"``.
    property : Property
        What the check is about.
    status : CheckStatus
        See :class:`CheckStatus`.  Only ``proved`` backed by validation counts towards ``certified``.
    criterion : str
        The theorem or LMI used, e.g. ``"bonassi_gru_delta_iss"``, ``"circle"``, ``"kim_lure_postnikov"``.
    message : str
        One sentence for people: why proved / why not.
    margin : float or None
        Signed margin of the criterion, negative-is-good convention for residuals (``nu < 0``) or
        ``max eig(M)`` for LMIs.  ``None`` when not applicable.
    quantities : Mapping[str, Any]
        The numbers that make up the margin (sigma bars, norms, contraction rate, ...).
    solver, solver_status : str or None
        Backend name and its raw status string, for LMI checks.
    validation : Mapping[str, Any]
        Solver-independent re-check figures (``max_eig_M``, ``min_eig_P``, ``margin_required``, ...).
    seconds : float
        Wall time of the check.
    certificate : Mapping or None
        The validated certificate behind a ``proved`` LMI check (Luré data, ``P``, multipliers; see
        :meth:`certify.report.Report.certificate`); not part of the JSON report (it can be large).
    counterexample : Counterexample or None
        Set when ``status`` is ``disproved``.
    scope : str
        ``"model"`` for a check about the whole model or loop (these decide the verdict), or a part
        such as ``"layer0"`` for per-part sub-checks that explain a model-level check.

    Examples
    --------
    >>> c = CheckResult("diss.delta_iss", Property.DELTA_ISS, CheckStatus.PROVED, "bonassi_gru_delta_iss",
    ...                 margin=-0.07)
    >>> c.proved, c.scope, c.margin
    (True, 'model', -0.07)
    >>> CheckResult("x", Property.GAS, CheckStatus.DISPROVED, "falsification")
    Traceback (most recent call last):
    ...
    ValueError: check 'x' is disproved but carries no counterexample
    """

    name: str
    property: Property
    status: CheckStatus
    criterion: str
    message: str = ""
    margin: float | None = None
    quantities: Mapping[str, Any] = field(default_factory=dict)
    solver: str | None = None
    solver_status: str | None = None
    validation: Mapping[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    counterexample: Counterexample | None = None
    scope: str = "model"
    certificate: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "quantities", _frozen(self.quantities))
        object.__setattr__(self, "validation", _frozen(self.validation))
        if self.certificate is not None:
            object.__setattr__(self, "certificate", _frozen(self.certificate))
        if self.status is CheckStatus.DISPROVED and self.counterexample is None:
            raise ValueError(f"check {self.name!r} is disproved but carries no counterexample")

    @builtins.property  # the field ``property`` shadows the builtin for type checkers
    def proved(self) -> bool:
        return self.status is CheckStatus.PROVED
