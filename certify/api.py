"""The public Python API: :func:`load_model` and :func:`check` (returns a :class:`~certify.report.Report`).

What :func:`check` runs, per ``method`` (DESIGN.md pipeline):

* gated networks (any GRU/LSTM layer): the closed-form δISS tests (``check_diss``); the LMI does not
  apply (Hadamard-gated cells have no exact SNOF) and asking for it is invalid input.
* affine cells (Elman, LP-GRNN, SS-NN, affine cells): ``diss`` = norm tests only, ``lmi`` = SNOF +
  Lur'e LMI only, ``auto`` = norm tests first and the LMI only if they do not prove it, ``all`` = both.
* a closed loop (``plant`` or ``loop`` given): ``certify.loop.check_closed_loop``; GAS of the loop.

When no criterion proves the requested property, a counterexample search (``certify.falsify``) runs;
a re-checked counterexample turns the verdict into ``unstable``.  Bad input gives a report with verdict
``invalid_input`` (never an exception); bugs propagate (the command line reports them as internal errors).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from certify.deadline import Deadline, DeadlineExceeded
from certify.errors import CertifyError, InvalidInputError, NotApplicableError, SolverError
from certify.report.model import Report
from certify.report.verdict import decide, refutes
from certify.results import CheckResult, CheckStatus, Counterexample, ExitCode, Property, Verdict

if TYPE_CHECKING:
    from certify.falsify import SearchBudget
    from certify.loop.spec import LoopSpec
    from certify.networks import InputRange, Network

METHODS = ("auto", "diss", "lmi", "all")
GATED_KINDS = frozenset({"gru", "lstm"})
#: Counterexample kinds that only refute δISS (all others refute GAS, hence δISS too).
_DELTA_ONLY_KINDS = frozenset({"non_contracting_pair"})
_UNKNOWN_RANGE_NOTE = (
    "no input range was declared (model metadata or --input-range): the closed-form δISS tests assume "
    "every network input lies in [-1, 1] (network units)"
)


def load_model(path: str | os.PathLike[str], *, input_range: InputRange | None = None,
               deadline: Deadline | None = None, max_elements: int | None = None) -> Network:
    """Read a model file (ONNX or PyTorch state dict) into a canonical :class:`~certify.networks.Network`.

    The format is recognised by content, not by extension (docs/formats.md).

    Parameters
    ----------
    path : str or PathLike
        An ONNX file or a PyTorch state dict (with an optional sidecar ``<path>.certify.json``).
    input_range : InputRange, optional
        Network-input box; overrides the range in the model's metadata or sidecar.
    deadline : Deadline, optional
        Reading and constant folding stop with :class:`~certify.deadline.DeadlineExceeded` after it.
    max_elements : int, optional
        Largest number of tensor elements the import may build (default: the importer's budget).

    Returns
    -------
    Network
        The float64 network; ``net.info`` holds the source format, path, SHA-256, signal names,
        input range and scalings.

    Raises
    ------
    InvalidInputError
        A subclass of it (``ModelFileError``, ``UnsupportedModelError``, ``WeightError``) for missing,
        malformed or unsupported files.

    Examples
    --------
    >>> import os, certify
    >>> zoo = os.path.join(os.path.dirname(certify.__file__), os.pardir, "models_zoo")
    >>> net = load_model(os.path.join(zoo, "gru_small.onnx"))
    >>> net.architecture, net.n_inputs, net.n_outputs, net.info.source_format
    ('gru', 2, 1, 'onnx')
    >>> load_model("no/such/model.onnx")
    Traceback (most recent call last):
    ...
    certify.errors.ModelFileError: model file not found: no/such/model.onnx
    """
    from certify.errors import ModelFileError

    if not os.path.isfile(path):
        if os.path.exists(path):
            raise ModelFileError(f"model path is not a file: {os.fspath(path)}")
        raise ModelFileError(f"model file not found: {os.fspath(path)}")

    from certify.importers import load_model as _load

    kw: dict[str, Any] = {} if max_elements is None else {"max_elements": int(max_elements)}
    return _load(path, input_range=input_range, deadline=deadline, **kw)


def as_input_range(spec: Any, n_inputs: int) -> InputRange:
    """An :class:`~certify.networks.InputRange` from an InputRange or ``(low, high)``.

    Scalars and one-element lists apply to every input.

    Parameters
    ----------
    spec : InputRange or (low, high)
        ``low`` and ``high`` are scalars or sequences of ``n_inputs`` (or one) numbers.
    n_inputs : int
        Number of network inputs the range must cover.

    Raises
    ------
    InvalidInputError
        Malformed ``spec`` or a length that does not match ``n_inputs``.

    Examples
    --------
    >>> as_input_range((-2.0, 2.0), 3).high.tolist()
    [2.0, 2.0, 2.0]
    """
    from certify.networks import InputRange

    if isinstance(spec, InputRange):
        ir = spec
    else:
        try:
            low, high = spec
        except (TypeError, ValueError):
            raise InvalidInputError(f"input range {spec!r}: expected (low, high).") from None
        low = [float(low)] * n_inputs if isinstance(low, (int, float)) else [float(v) for v in low]
        high = [float(high)] * n_inputs if isinstance(high, (int, float)) else [float(v) for v in high]
        if len(low) != len(high):
            raise InvalidInputError(f"input range: {len(low)} lower bounds but {len(high)} upper bounds.")
        if len(low) == 1:  # one LOW:HIGH for every input
            low, high = low * n_inputs, high * n_inputs
        ir = InputRange(low, high)
    if ir.low.shape[0] != n_inputs:
        raise InvalidInputError(
            f"input range has {ir.low.shape[0]} entries but the network has {n_inputs} inputs; "
            "give one LOW:HIGH for all inputs or one bound per input."
        )
    return ir


def file_sha256(path: str | os.PathLike[str]) -> str | None:
    """SHA-256 of a readable regular file, else ``None`` (FIFOs and devices are never opened).

    >>> file_sha256("no/such/file") is None
    True
    """
    import stat

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()
    except OSError:
        return None


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
    net: Network, method: str, solver: str | None, timeout: float | None, ir: InputRange | None,
    stage: Callable[[str], None],
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
                checks.append(check_lmi(form, solver=solver, timeout=timeout, prop=Property.GAS, name="lmi"))
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


def check(
    model: str | os.PathLike[str] | Network,
    plant: str | None = None,
    loop: str | os.PathLike[str] | LoopSpec | None = None,
    method: str = "auto",
    solver: str | None = None,
    input_range: InputRange | tuple[Any, Any] | None = None,
    timeout: float | None = None,
    *,
    seed: int = 0,
    search: bool | SearchBudget = True,
    falsify_budget: float | None = None,
    input_range_source: str = "argument",
    progress: Callable[[str], None] | None = None,
    created: str | None = None,
) -> Report:
    """Check one model (or the closed loop around it) and return the :class:`~certify.report.Report`.

    Parameters
    ----------
    model : path or Network
        A model file (ONNX / PyTorch state dict) or a network built in Python.
    plant, loop : str, path or LoopSpec, optional
        Close the loop around a built-in plant (``certify plants``), as a loop file describes, or as a
        :class:`~certify.loop.spec.LoopSpec` built in Python (:func:`certify.loop.build.make_loop`:
        python-control plants, PI gains as arguments).
    method : {"auto", "diss", "lmi", "all"}
        Which criteria to run (see the module docstring).
    solver : str, optional
        Conic solver for the LMI (``certify.criteria.solvers.available_solvers()``).
    input_range : InputRange or (low, high), optional
        Network-input box; overrides the model's metadata.  Scalars apply to every input.
    timeout : float, optional
        Hard limit in seconds for the whole check (LMI solves and counterexample search); a search
        stopped by it says so in ``assumptions["falsification"]["truncated"]``.
    seed : int
        Seed of the counterexample search (the verdict does not depend on the machine's speed).
    search : bool or SearchBudget
        Run the counterexample search when nothing is proved (``True``: the default
        :class:`~certify.falsify.SearchBudget`; a budget sets its size; ``False``: no search).
    falsify_budget : float, optional
        Deprecated: ``0`` disables the search (as ``search=False``); other values are ignored.
    progress : callable, optional
        Called with a short label at each stage.
    created : str, optional
        Timestamp to put in the report (for reproducible output).

    Returns
    -------
    Report
        Verdict, exit code, reasons, checks and assumptions; render it with ``to_text()``,
        ``to_json()``, ``to_markdown()`` or ``to_html()``.  Bad input gives a report with verdict
        ``invalid_input`` instead of an exception.

    Examples
    --------
    >>> from certify.networks import ElmanLayer, Network
    >>> net = Network(layers=(ElmanLayer(W=[[0.5]], U=[[0.3]], b=[0.0]),))
    >>> report = check(net, method="diss")
    >>> report.verdict
    <Verdict.CERTIFIED: 'certified'>
    >>> check("missing.onnx").verdict
    <Verdict.INVALID_INPUT: 'invalid_input'>
    """
    t_start = time.perf_counter()
    deadline = Deadline.after(timeout)
    stage = progress or (lambda label: None)
    kw: dict[str, Any] = {"method": method, "solver": solver}
    if created is not None:
        kw["created"] = created
    is_path = isinstance(model, (str, os.PathLike))
    model_stub: dict[str, Any] = {"path": os.fspath(model), "sha256": file_sha256(model)} if is_path else {}
    try:
        if method not in METHODS:
            raise InvalidInputError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}.")
        if plant is not None and loop is not None:
            raise InvalidInputError("give either a plant or a loop file, not both.")
        if solver is not None:  # an unknown solver is bad input even when no LMI ends up running
            from certify.criteria.solvers import get_solver

            get_solver(solver)
        stage("loading model")
        if is_path:
            net = load_model(model, deadline=deadline)
        else:
            from certify.networks import Network

            if not isinstance(model, Network):
                raise InvalidInputError(f"model must be a file path or a certify Network, not {type(model).__name__}.")
            net = model
        t_loaded = time.perf_counter()
        if input_range is not None:
            ir = as_input_range(input_range, net.n_inputs)
            net = net.with_info(replace(net.info, input_range=ir))
            source = input_range_source
        else:
            ir, source = net.info.input_range, "model metadata"
        summary = net.summary()
        if is_path and not summary.get("sha256"):
            summary["sha256"] = model_stub["sha256"]
        model_stub = summary  # errors from here on still report what was loaded
        if plant is not None or loop is not None:
            return _loop_report(net, summary, plant, loop, method, solver, timeout, ir, source, kw,
                                t_start, t_loaded, stage, deadline=deadline, seed=seed,
                                search=False if falsify_budget == 0 else search)
        checks = _network_checks(net, method, solver, deadline.remaining(), ir, stage)
        t_checks = time.perf_counter()
        requested = _requested(net, method, loop=False)
        falsification = None
        if decide(checks, requested).verdict is Verdict.NOT_CERTIFIED and search is not False and falsify_budget != 0:
            stage("searching for a counterexample")
            falsification = _search(net, ir, seed, None if search is True else search, deadline, requested, checks)
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
    net: Network, summary: dict[str, Any], plant: str | None, loop: Any, method: str, solver: str | None,
    timeout: float | None, ir: InputRange | None, source: str, kw: dict[str, Any], t_start: float,
    t_loaded: float, stage: Callable[[str], None], *, deadline: Deadline, seed: int = 0,
    search: bool | SearchBudget = True,
) -> Report:
    try:
        from certify.loop import check_closed_loop
    except ImportError:
        raise NotApplicableError(
            "closed-loop analysis (--plant/--loop) is not available in this installation of certify "
            "(certify.loop.check_closed_loop is missing)."
        ) from None
    stage("closed-loop analysis")
    from certify.loop.spec import LoopSpec

    loop_obj = loop if isinstance(loop, LoopSpec) else (None if loop is None else os.fspath(loop))
    outcome = check_closed_loop(net, plant=plant, loop=loop_obj, method=method,
                                solver=solver, timeout=deadline.remaining())
    checks = list(outcome.checks)
    falsification = None
    cl = getattr(outcome, "closed_loop", None)
    if (search is not False and cl is not None and method != "diss"
            and decide(checks, (Property.GAS,), "loop").verdict is Verdict.NOT_CERTIFIED):
        stage("searching the closed loop for a counterexample")
        falsification = _search_loop(cl, plant, loop_obj, seed, None if search is True else search, deadline, checks)
    t_end = time.perf_counter()
    checks = tuple(checks)
    description = dict(outcome.description or {})
    if isinstance(loop_obj, str):
        description.setdefault("loop_file", loop_obj)
        description.setdefault("loop_file_sha256", file_sha256(loop_obj))
    if plant is not None:
        description.setdefault("plant", plant)
    return Report(
        model=summary, checks=checks, requested=(Property.GAS,), subject="loop", loop=description,
        counterexample=outcome.counterexample, simulation=outcome.simulation,
        assumptions=_assumptions(ir, source, checks, timeout, falsification),
        timings={"load": t_loaded - t_start, "checks": t_end - t_loaded, "total": t_end - t_start},
        **kw,
    )
