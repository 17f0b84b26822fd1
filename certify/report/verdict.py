"""The verdict rule: from check results and requested properties to one verdict (the README's exit-code table).

Only checks with ``scope == "model"`` decide; per-part checks (``"layer0"``, ...) only explain.

* ``unstable``: a model-scope ``disproved`` check (it always carries a re-checked counterexample) whose
  property being false makes a *requested* property false.  A disproved δISS does not refute GAS, so
  a non-contracting pair found while GAS was requested is reported as a reason, not as ``unstable``.
* ``certified``: every requested property has a model-scope ``proved`` check, where, for a network on
  its own (``subject == "model"``), a proved δISS also proves GAS: a contraction has a unique globally
  attracting equilibrium for each constant input in the input set (docs/theory.md §8, δISS ⇒
  incremental contraction).  For a closed loop (``subject == "loop"``) only the loop's own GAS counts.
* ``not_certified`` otherwise, with the reasons collected from the checks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from certify.results import CheckResult, CheckStatus, Counterexample, Property, Verdict

#: For a network on its own: the properties that a proof of the key property also proves.
_IMPLIED_BY: dict[Property, frozenset[Property]] = {
    Property.DELTA_ISS: frozenset({Property.DELTA_ISS, Property.GAS}),
}


@dataclass(frozen=True)
class Decision:
    """Verdict, the one-line reasons for it, and the counterexample that made it ``unstable`` (if any).

    Returned by :func:`decide`.

    >>> d = decide([], [Property.GAS])
    >>> d.verdict, d.counterexample is None
    (<Verdict.NOT_CERTIFIED: 'not_certified'>, True)
    """

    verdict: Verdict
    reasons: tuple[str, ...]
    counterexample: Counterexample | None = None


def proves(proved: Property, requested: Property, subject: str = "model") -> bool:
    """Whether a proof of ``proved`` is a proof of ``requested``.

    >>> proves(Property.DELTA_ISS, Property.GAS), proves(Property.DELTA_ISS, Property.GAS, "loop")
    (True, False)
    """
    if proved is requested:
        return True
    return subject == "model" and requested in _IMPLIED_BY.get(proved, frozenset())


def refutes(disproved: Property, requested: Property, subject: str = "model") -> bool:
    """Whether ``disproved`` being false makes ``requested`` false (``requested`` ⇒ ``disproved``).

    >>> refutes(Property.GAS, Property.DELTA_ISS), refutes(Property.DELTA_ISS, Property.GAS)
    (True, False)
    """
    return proves(requested, disproved, subject)


def decide(checks: Iterable[CheckResult], requested: Iterable[Property], subject: str = "model") -> Decision:
    """Apply the verdict rule of the module docstring.

    >>> ok = CheckResult("diss", Property.DELTA_ISS, CheckStatus.PROVED, "bonassi_gru_delta_iss")
    >>> decide([ok], [Property.GAS]).verdict
    <Verdict.CERTIFIED: 'certified'>
    >>> decide([], [Property.GAS]).reasons
    ('no applicable criterion ran: nothing could prove gas',)
    """
    checks = tuple(checks)
    requested = tuple(dict.fromkeys(requested))
    model = [c for c in checks if c.scope == "model"]
    if not requested:
        return Decision(Verdict.NOT_CERTIFIED, ("no property was requested",))
    for c in model:
        if c.status is CheckStatus.DISPROVED and c.counterexample is not None:
            if any(refutes(c.property, r, subject) for r in requested):
                why = f"{c.name} disproved {c.property.value}: {c.message or c.counterexample.description}"
                return Decision(Verdict.UNSTABLE, (why,), c.counterexample)
    unproved = [r for r in requested if not any(c.proved and proves(c.property, r, subject) for c in model)]
    if not unproved:
        reasons = []
        for r in requested:
            by = next(c for c in model if c.proved and proves(c.property, r, subject))
            reasons.append(f"{r.value} proved by {by.name}" + (f" ({by.message})" if by.message else ""))
        return Decision(Verdict.CERTIFIED, tuple(reasons))
    ran = [c for c in model if c.status is not CheckStatus.NOT_APPLICABLE]
    reasons = []
    if not ran:
        want = ", ".join(r.value for r in unproved)
        reasons.append(f"no applicable criterion ran: nothing could prove {want}")
    for c in model:  # only checks that could have decided a requested property explain the verdict
        relevant = any(proves(c.property, r, subject) or refutes(c.property, r, subject) for r in requested)
        if not c.proved and relevant:
            reasons.append(f"{c.name} ({c.property.value}): {c.status.value}" + (f": {c.message}" if c.message else ""))
    for r in unproved:
        if ran:
            reasons.append(f"{r.value} is not proved by any check")
    return Decision(Verdict.NOT_CERTIFIED, tuple(reasons))
