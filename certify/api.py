"""The public Python API: :func:`load_model` and :func:`check` (returns a :class:`~certify.report.Report`).

What :func:`check` runs, per ``method`` (the stages are in :mod:`certify.pipeline`):

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
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from certify.deadline import Deadline
from certify.errors import CertifyError, InvalidInputError
from certify.networks.kinds import GATED_KINDS  # noqa: F401  (re-exported; the layer-kind registry defines it)
from certify.report.model import Report
from certify.results import ExitCode, Verdict

if TYPE_CHECKING:
    from certify.falsify import SearchBudget
    from certify.loop.spec import LoopSpec
    from certify.networks import InputRange, Network

METHODS = ("auto", "diss", "lmi", "all")
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
    import numpy as np

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
        ir = InputRange(np.asarray(low), np.asarray(high))
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
    solver_options: Mapping[str, Any] | None = None,
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
    solver_options : Mapping, optional
        Options passed to the conic solver (e.g. ``{"max_iters": 5000}`` for SCS).
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
    from certify.pipeline import run
    from certify.request import CheckRequest

    try:
        request = CheckRequest(
            model=model, plant=plant, loop=loop, method=method, solver=solver,
            solver_options=solver_options or {}, input_range=input_range, input_range_source=input_range_source,
            timeout=timeout, seed=seed, search=False if falsify_budget == 0 else search, created=created,
        )
    except CertifyError as exc:
        if exc.exit_code is not ExitCode.INVALID_INPUT:
            raise
        path = os.fspath(model) if isinstance(model, (str, os.PathLike)) else None
        stub = {"path": path, "sha256": file_sha256(path)} if path is not None else {}
        kw: dict[str, Any] = {"method": method if isinstance(method, str) else str(method), "solver": solver}
        if created is not None:
            kw["created"] = created
        return Report.from_error(Verdict.INVALID_INPUT, str(exc), model=stub, error_type=type(exc).__name__, **kw)
    return run(request, progress)
