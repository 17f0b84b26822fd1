"""The check as a pipeline of stages: load → configure → criteria → counterexample search → report.

:func:`run` takes one validated :class:`~certify.request.CheckRequest` and returns one
:class:`~certify.report.Report`; ``certify.check`` and the command line both call it, and batch runs
call it in worker processes.  What each stage runs, per ``method``:

* gated networks (any GRU/LSTM layer): the closed-form δISS tests (``check_diss``); the LMI does not
  apply (Hadamard-gated cells have no exact SNOF, Hilgert & Schwung 2025, Prop. IV.2) and asking for
  it is invalid input.
* affine cells (Elman, LP-GRNN, SS-NN, affine cells): ``diss`` = norm tests only, ``lmi`` = SNOF +
  Lur'e LMI only, ``auto`` = norm tests first and the LMI only if they do not prove it, ``all`` = both.
* a closed loop (``plant`` or ``loop``): ``certify.loop.check_closed_loop``; GAS of the loop.

When nothing proves the requested property, the counterexample search runs (``certify.falsify`` for a
network, ``certify.loop.refute`` for a loop); only an interval-proved witness makes it ``unstable``.

>>> from certify.networks import ElmanLayer, Network
>>> from certify.request import CheckRequest
>>> run(CheckRequest(Network(layers=(ElmanLayer(W=[[0.5]], U=[[0.3]], b=[0.0]),)), method="diss")).verdict.value
'certified'
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from certify.deadline import Deadline, DeadlineExceeded
from certify.errors import CertifyError, NotApplicableError, SolverError
from certify.networks.kinds import GATED_KINDS
from certify.report.model import Report
from certify.report.verdict import decide, refutes
from certify.request import CheckRequest
from certify.results import CheckResult, CheckStatus, Counterexample, ExitCode, Property, Verdict

if TYPE_CHECKING:
    from certify.falsify import SearchBudget
    from certify.networks import InputRange, Network

#: Counterexample kinds that only refute δISS (all others refute GAS, hence δISS too).
_DELTA_ONLY_KINDS = frozenset({"non_contracting_pair"})
_UNKNOWN_RANGE_NOTE = (
    "no input range was declared (model metadata or --input-range): the closed-form δISS tests assume "
    "every network input lies in [-1, 1] (network units)"
)


def _requested(net: Network, method: str, loop: bool) -> tuple[Property, ...]:
    if loop or method == "lmi":
        return (Property.GAS,)
    if method == "diss" or any(layer.kind in GATED_KINDS for layer in net.layers):
        return (Property.DELTA_ISS,)
    return (Property.GAS,)


def _falsified_property(cex: Counterexample, requested: Sequence[Property]) -> Property:
    """The property to disprove with ``cex``: one it refutes (``data["disproves"]``), a requested one if possible.

    >>> cex = Counterexample("multiple_equilibria", "", {"disproves": ["delta_iss", "gas"]})
    >>> _falsified_property(cex, [Property.GAS]).value
    'gas'
    """
    names = {p.value for p in Property}
    disproves = [Property(p) for p in cex.data.get("disproves", ()) if p in names]
    if not disproves:
        disproves = [Property.DELTA_ISS if cex.kind in _DELTA_ONLY_KINDS else Property.GAS]
    for r in requested:
        if r in disproves:
            return r
    return next((q for q in disproves if any(refutes(q, r) for r in requested)), disproves[0])


def _not_applicable(name: str, prop: Property, criterion: str, exc: Exception) -> CheckResult:
    return CheckResult(name, prop, CheckStatus.NOT_APPLICABLE, criterion, message=str(exc))


def _network_checks(
    net: Network, method: str, solver: str | None, deadline: Deadline, ir: InputRange | None,
    stage: Callable[[str], None], solver_options: Mapping[str, Any] | None = None,
) -> list[CheckResult]:
    gated = any(layer.kind in GATED_KINDS for layer in net.layers)
    requested = _requested(net, method, loop=False)
    checks: list[CheckResult] = []
    if method == "lmi" and gated:
        raise NotApplicableError(
            f"the LMI criterion does not apply to a {net.architecture} network: Hadamard-gated cells (GRU, LSTM) "
            "have no exact SNOF; use --method diss (closed-form δISS tests) or --method auto."
        )
    if method in ("diss", "auto", "all"):
        stage("closed-form δISS tests")
        from certify.criteria.diss import check_diss

        try:
            checks += check_diss(net, input_range=ir)
        except NotApplicableError as exc:
            if method == "diss":
                raise
            checks.append(_not_applicable("diss", Property.DELTA_ISS, "closed_form_delta_iss", exc))
    want_lmi = method in ("lmi", "all") or (
        method == "auto" and not gated and decide(checks, requested).verdict is not Verdict.CERTIFIED
    )
    if want_lmi:
        stage("SNOF + LMI")
        from certify.snof import from_network

        try:
            form = from_network(net)
        except NotApplicableError as exc:
            if method == "lmi":
                raise
            checks.append(_not_applicable("lmi", Property.GAS, "lmi", exc))
        else:
            from certify.criteria.lmi import check_lmi

            t0 = time.perf_counter()
            try:
                extra: dict[str, Any] = {"solver_options": dict(solver_options)} if solver_options else {}
                checks.append(check_lmi(form, solver=solver, timeout=deadline.remaining(), prop=Property.GAS,
                                        name="lmi", **extra))
            except SolverError as exc:  # a solver failure is a check that did not prove anything
                checks.append(CheckResult("lmi", Property.GAS, CheckStatus.ERROR, "lmi", message=str(exc),
                                          solver=solver, seconds=time.perf_counter() - t0))
    return checks


def _search(
    net: Network, ir: InputRange | None, seed: int, budget: SearchBudget | None, deadline: Deadline,
    requested: Sequence[Property], checks: list[CheckResult],
) -> dict[str, Any]:
    """Run the counterexample search; append its check to ``checks``; return its record for the report."""
    from certify.falsify import falsification_check, search

    t0 = time.perf_counter()
    try:
        out = search(net, input_range=ir, seed=seed, budget=budget, deadline=deadline)
        if out.counterexample is not None:
            cex = out.counterexample
            checks.append(falsification_check(net, cex, _falsified_property(cex, requested)))
    except CertifyError as exc:  # the search is a bonus: its failure concludes nothing
        if isinstance(exc, DeadlineExceeded):
            raise
        checks.append(CheckResult("falsify", requested[0], CheckStatus.ERROR, "falsification",
                                  message=f"counterexample search failed: {exc}", seconds=time.perf_counter() - t0))
        return {"seed": seed, "error": str(exc)}
    if out.counterexample is not None:
        pass
    elif out.unproved or out.truncated:
        why = []
        if out.unproved:
            why.append(f"{len(out.unproved)} floating-point candidate(s) found but not proved in interval "
                       f"arithmetic, so not counted as counterexamples (first: {out.unproved[0]})")
        if out.truncated:
            why.append("the search was stopped by the time limit before its budget was spent")
        checks.append(CheckResult("falsify", requested[0], CheckStatus.NOT_PROVED, "falsification",
                                  message="no proved counterexample: " + "; ".join(why) + ".",
                                  quantities={"unproved_candidates": len(out.unproved),
                                              "truncated": out.truncated},
                                  seconds=out.seconds, scope="model"))
    return out.to_dict()


def _search_loop(
    cl: Any, plant: str | None, loop: Any, seed: int, budget: SearchBudget | None, deadline: Deadline,
    checks: list[CheckResult],
) -> dict[str, Any]:
    """The closed-loop counterexample search (:mod:`certify.loop.refute`); its check goes to ``checks``."""
    from certify.loop.check import resolve_loop
    from certify.loop.refute import loop_falsification_check, refute_loop

    spec = resolve_loop(plant, loop)
    out = refute_loop(cl, spec, seed=seed, budget=budget, deadline=deadline)
    if out.counterexample is not None:
        checks.append(loop_falsification_check(cl, out.counterexample))
    elif out.unproved or out.truncated:
        why = "; ".join(list(out.unproved[:1]) + (["stopped by the time limit"] if out.truncated else []))
        checks.append(CheckResult("loop.falsify", Property.GAS, CheckStatus.NOT_PROVED, "falsification",
                                  message=f"no proved counterexample ({why}).", seconds=out.seconds,
                                  quantities={"unproved_candidates": len(out.unproved), "truncated": out.truncated},
                                  scope="model"))
    return out.to_dict()


def _assumptions(
    ir: InputRange | None, source: str, checks: Sequence[CheckResult], timeout: float | None,
    falsification: Mapping[str, Any] | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "input_range": None if ir is None else ir.to_dict(),
        "input_range_source": source if ir is not None else "unknown",
    }
    if ir is None:
        out["input_range_note"] = _UNKNOWN_RANGE_NOTE
    norms = sorted({str(c.quantities["norm"]) for c in checks if "norm" in c.quantities})
    if norms:
        out["norms"] = norms
    margins = {c.name: {k: v for k, v in c.validation.items() if k.startswith("margin_required")} for c in checks}
    margins = {name: m for name, m in margins.items() if m}
    if margins:  # the float64 re-check margins each LMI certificate had to clear
        out["margins_required"] = margins
    stated = {c.name: c.quantities["assumptions"] for c in checks
              if c.scope == "model" and isinstance(c.quantities.get("assumptions"), Mapping)}
    if stated:  # what each criterion says it assumed
        out["criteria"] = stated
    out["timeout_seconds"] = timeout
    if falsification is not None:
        out["falsification"] = dict(falsification)
    return out


def run(request: CheckRequest, progress: Callable[[str], None] | None = None) -> Report:
    """Run every stage for ``request``; bad input gives an ``invalid_input`` report, never an exception."""
    from certify.api import as_input_range, file_sha256, load_model

    t_start = time.perf_counter()
    deadline = Deadline.after(request.timeout)
    stage = progress or (lambda label: None)
    method, solver, timeout = request.method, request.solver, request.timeout
    kw: dict[str, Any] = {"method": method, "solver": solver}
    if request.created is not None:
        kw["created"] = request.created
    path = request.model_path
    model_stub: dict[str, Any] = {"path": path, "sha256": file_sha256(path)} if path is not None else {}
    try:
        stage("loading model")
        net = load_model(path, deadline=deadline) if path is not None else request.model
        t_loaded = time.perf_counter()
        if request.input_range is not None:
            ir: InputRange | None = as_input_range(request.input_range, net.n_inputs)
            net = net.with_info(replace(net.info, input_range=ir))
            source = request.input_range_source
        else:
            ir, source = net.info.input_range, "model metadata"
        summary = net.summary()
        if path is not None and not summary.get("sha256"):
            summary["sha256"] = model_stub["sha256"]
        model_stub = summary  # errors from here on still report what was loaded
        if request.plant is not None or request.loop is not None:
            return _loop_report(net, summary, request, ir, source, kw, t_start, t_loaded, stage, deadline)
        checks = _network_checks(net, method, solver, deadline, ir, stage, request.solver_options)
        t_checks = time.perf_counter()
        requested = _requested(net, method, loop=False)
        falsification = None
        if decide(checks, requested).verdict is Verdict.NOT_CERTIFIED and request.search is not False:
            stage("searching for a counterexample")
            budget = None if request.search is True else request.search
            falsification = _search(net, ir, request.seed, budget, deadline, requested, checks)
        t_end = time.perf_counter()
        return Report(
            model=summary, checks=tuple(checks), requested=requested, subject="model",
            assumptions=_assumptions(ir, source, checks, timeout, falsification),
            timings={"load": t_loaded - t_start, "checks": t_checks - t_loaded, "falsify": t_end - t_checks,
                     "total": t_end - t_start},
            **kw,
        )
    except DeadlineExceeded as exc:  # the time limit concludes nothing: not certified, and why
        return Report(model=model_stub, checks=(CheckResult("timeout", Property.GAS, CheckStatus.ERROR, "timeout",
                                                            message=str(exc)),),
                      requested=(Property.GAS,), notes=(str(exc),), assumptions={"timeout_seconds": timeout},
                      timings={"total": time.perf_counter() - t_start}, **kw)
    except CertifyError as exc:
        if exc.exit_code is not ExitCode.INVALID_INPUT:
            raise
        return Report.from_error(Verdict.INVALID_INPUT, str(exc), model=model_stub, error_type=type(exc).__name__,
                                 timings={"total": time.perf_counter() - t_start}, **kw)


def _loop_report(
    net: Network, summary: dict[str, Any], request: CheckRequest, ir: InputRange | None, source: str,
    kw: dict[str, Any], t_start: float, t_loaded: float, stage: Callable[[str], None], deadline: Deadline,
) -> Report:
    from certify.api import file_sha256

    try:
        from certify.loop import check_closed_loop
    except ImportError:
        raise NotApplicableError(
            "closed-loop analysis (--plant/--loop) is not available in this installation of certify "
            "(certify.loop.check_closed_loop is missing)."
        ) from None
    stage("closed-loop analysis")
    plant, loop_obj, method = request.plant, request.loop, request.method
    extra: dict[str, Any] = {"solver_options": dict(request.solver_options)} if request.solver_options else {}
    outcome = check_closed_loop(net, plant=plant, loop=loop_obj, method=method, solver=request.solver,
                                timeout=deadline.remaining(), **extra)
    checks = list(outcome.checks)
    falsification = None
    cl = getattr(outcome, "closed_loop", None)
    if (request.search is not False and cl is not None and method != "diss"
            and decide(checks, (Property.GAS,), "loop").verdict is Verdict.NOT_CERTIFIED):
        stage("searching the closed loop for a counterexample")
        budget = None if request.search is True else request.search
        falsification = _search_loop(cl, plant, loop_obj, request.seed, budget, deadline, checks)
    t_end = time.perf_counter()
    description = dict(outcome.description or {})
    if isinstance(loop_obj, str):
        description.setdefault("loop_file", loop_obj)
        description.setdefault("loop_file_sha256", file_sha256(loop_obj))
    if plant is not None:
        description.setdefault("plant", plant)
        description["builtin_plant"] = plant  # what `certify verify` rebuilds the loop from
    return Report(
        model=summary, checks=tuple(checks), requested=(Property.GAS,), subject="loop", loop=description,
        counterexample=outcome.counterexample, simulation=outcome.simulation,
        assumptions=_assumptions(ir, source, checks, request.timeout, falsification),
        timings={"load": t_loaded - t_start, "checks": t_end - t_loaded, "total": t_end - t_start},
        **kw,
    )
