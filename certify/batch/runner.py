"""Run many checks: in this process, in a local pool of worker processes, or on a Ray / Dask cluster.

With ``jobs > 1`` the models go to ``jobs`` worker processes (forked once, each checking one model at a
time and keeping its imports warm), so a model that crashes the interpreter or never returns costs only
its own report: a worker that dies gives an ``internal_error`` report, and one that is still running
:data:`KILL_GRACE_S` seconds after its ``timeout`` is killed and gives ``not_certified``; either way a
fresh worker takes its place.  Results come
back in the order of the items, whatever order they finish in.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from certify.request import CheckRequest

#: Seconds a worker may run past its request's timeout before it is killed.
KILL_GRACE_S = 10.0

ENGINES = ("local", "ray", "dask")


@dataclass(frozen=True)
class Outcome:
    """The report of one item and how it was obtained (``"checked"``, ``"cached"``, ``"killed"``, ``"skipped"``)."""

    report: Any
    how: str = "checked"
    seconds: float = 0.0


def _error_report(request: CheckRequest, verdict: Any, message: str, error_type: str) -> Any:
    from certify.api import file_sha256
    from certify.report import Report

    path = request.model_path
    return Report.from_error(verdict, message, model={"path": path, "sha256": file_sha256(path) if path else None},
                             error_type=error_type, method=request.method, solver=request.solver)


def _remote_outcome(request: Any, get: Any, engine: str, start: float) -> Outcome:
    """The report a cluster task returned, or an internal-error report when the task failed (a lost
    worker costs one report, never the batch)."""
    from certify.results import Verdict

    try:
        return Outcome(get(), "checked", time.monotonic() - start)
    except Exception as exc:  # noqa: BLE001
        return Outcome(_error_report(request, Verdict.INTERNAL_ERROR,
                                     f"internal error (the {engine} task failed: {type(exc).__name__}: {exc}); "
                                     "rerun this model with --jobs 1 --debug.", type(exc).__name__))


def _killed_report(request: CheckRequest, seconds: float) -> Any:
    """``not_certified``: the worker overran its timeout and was killed (nothing was proved or refuted)."""
    from certify.api import file_sha256
    from certify.report import Report
    from certify.results import CheckResult, CheckStatus, Property

    message = (f"the check did not stop within its --timeout of {request.timeout:g} s (+{KILL_GRACE_S:g} s grace); "
               "its worker process was killed. Give it a longer --timeout.")
    path = request.model_path
    check = CheckResult("batch.timeout", Property.GAS, CheckStatus.ERROR, "deadline", message=message,
                        seconds=seconds)
    return Report(model={"path": path, "sha256": file_sha256(path) if path else None}, checks=(check,),
                  method=request.method, solver=request.solver, notes=(message,), timings={"total": seconds})


def check_one(request: CheckRequest, progress: Callable[[str], None] | None = None, debug: bool = False) -> Any:
    """Check one request and return its :class:`~certify.report.Report`; never raises for a model's fault.

    A FIFO or device is never opened (invalid input); a bug becomes an ``internal_error`` report.

    >>> check_one(CheckRequest("no/such/model.onnx")).verdict.value
    'invalid_input'
    """
    import stat

    from certify.results import Verdict

    path = request.model_path
    if path is not None:
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            st = None
        if st is not None and not stat.S_ISREG(st.st_mode):
            from certify.schemas.files import file_kind

            return _error_report(request, Verdict.INVALID_INPUT,
                                 f"model path {path} is {file_kind(st.st_mode)}, not a regular file.", "ModelFileError")
    try:
        from certify import api

        r = request
        return api.check(r.model, plant=r.plant, loop=r.loop, method=r.method, solver=r.solver,
                         input_range=r.input_range, timeout=r.timeout, seed=r.seed, search=r.search,
                         solver_options=r.solver_options, input_range_source=r.input_range_source,
                         progress=progress, created=r.created)
    except Exception as exc:  # a bug (or a missing extra): a report, never a traceback
        if debug:
            import traceback

            traceback.print_exc()
        from certify.cli import _input_error_message, _internal_message

        bad = _input_error_message(exc)
        return _error_report(request, Verdict.INVALID_INPUT if bad else Verdict.INTERNAL_ERROR,
                             bad or _internal_message(exc), type(exc).__name__)


def _check_payload(request: CheckRequest) -> Any:
    """What a remote worker returns: the :class:`~certify.report.Report` (it pickles, certificate included)."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    return check_one(request)


def _worker(conn: Any, debug: bool) -> None:  # runs in the child process: one request at a time
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent, which stops the workers
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        while True:
            try:
                request = conn.recv()
            except EOFError:
                return
            if request is None:
                return
            conn.send(check_one(request, debug=debug))  # the Report pickles whole (with its certificate)
    finally:
        conn.close()


def _preload() -> None:
    """Import the checking code once, before forking, so that each worker starts with it loaded."""
    import importlib

    for name in ("certify.api", "certify.pipeline", "certify.importers", "certify.criteria.diss", "certify.falsify",
                 "onnx"):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a missing optional part is reported by the check itself
            pass


def _mp_context() -> Any:
    import multiprocessing

    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods and sys.platform != "darwin" else "spawn")


def run_local(
    requests: Sequence[CheckRequest], jobs: int, *, fail_fast: bool = False, debug: bool = False,
    on_done: Callable[[int, Outcome], None] | None = None, progress: Callable[[str], None] | None = None,
) -> list[Outcome | None]:
    """Check ``requests`` with ``jobs`` workers (1: in this process); ``None`` for items skipped by fail-fast.

    Examples
    --------
    >>> from certify.networks import ElmanLayer, Network
    >>> net = Network(layers=(ElmanLayer(W=[[0.5]], U=[[0.3]], b=[0.0]),))
    >>> [o.report.verdict.value for o in run_local([CheckRequest(net, method="diss")], jobs=1)]
    ['certified']
    """
    from certify.results import Verdict

    results: list[Outcome | None] = [None] * len(requests)

    def finish(i: int, outcome: Outcome) -> bool:
        results[i] = outcome
        if on_done is not None:
            on_done(i, outcome)
        return fail_fast and outcome.report.verdict is not Verdict.CERTIFIED

    if jobs <= 1:
        for i, request in enumerate(requests):
            t0 = time.perf_counter()
            report = check_one(request, progress, debug)
            if finish(i, Outcome(report, "checked", time.perf_counter() - t0)):
                break
        return results

    from multiprocessing.connection import wait

    ctx = _mp_context()
    if ctx.get_start_method() == "fork":
        _preload()
    pending = list(range(len(requests)))[::-1]
    idle: list[tuple[Any, Any]] = []  # (process, conn) of live workers without a task
    running: dict[int, tuple[Any, Any, float | None, float]] = {}  # i -> (process, conn, kill_at, start)
    stop = False

    def spawn() -> tuple[Any, Any]:
        parent, child = ctx.Pipe(duplex=True)
        proc = ctx.Process(target=_worker, args=(child, debug), daemon=True)
        proc.start()
        child.close()
        return proc, parent

    def retire(proc: Any, conn: Any, kill: bool) -> None:
        if kill:
            proc.kill()
        else:
            try:
                conn.send(None)
            except OSError:
                proc.kill()
        conn.close()
        proc.join(1 if kill else 5)
        if proc.is_alive():
            proc.kill()
            proc.join(1)

    try:
        while (pending and not stop) or running:
            while pending and not stop and len(running) < jobs:
                i = pending.pop()
                proc, conn = idle.pop() if idle else spawn()
                try:
                    conn.send(requests[i])
                except OSError:  # the idle worker died meanwhile: a fresh one
                    retire(proc, conn, True)
                    proc, conn = spawn()
                    conn.send(requests[i])
                t = requests[i].timeout
                now = time.monotonic()
                running[i] = (proc, conn, None if t is None else now + t + KILL_GRACE_S, now)
            deadlines = [k for (_, _, k, _) in running.values() if k is not None]
            wait_for = None if not deadlines else max(0.0, min(deadlines) - time.monotonic())
            ready = set(wait([r[1] for r in running.values()], timeout=wait_for))
            now = time.monotonic()
            for i in list(running):
                proc, conn, kill_at, start = running[i]
                outcome = None
                if conn in ready:
                    try:
                        outcome = Outcome(conn.recv(), "checked", now - start)
                        idle.append((proc, conn))
                    except (EOFError, OSError):
                        proc.join(5)
                        code = proc.exitcode
                        why = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
                        outcome = Outcome(_error_report(
                            requests[i], Verdict.INTERNAL_ERROR,
                            f"internal error (the worker process checking this model died: {why}); "
                            "rerun this model alone with --jobs 1 --debug for the traceback, and report it as a "
                            "bug in certify.", "WorkerDied"), "checked", now - start)
                        retire(proc, conn, True)
                elif kill_at is not None and now >= kill_at:
                    retire(proc, conn, True)
                    outcome = Outcome(_killed_report(requests[i], now - start), "killed", now - start)
                if outcome is not None:
                    del running[i]
                    if finish(i, outcome):
                        stop = True
                        for j in list(running):  # fail fast: the others are not needed any more
                            retire(running[j][0], running[j][1], True)
                            del running[j]
    finally:
        for proc, conn, _, _ in running.values():
            retire(proc, conn, True)
        for proc, conn in idle:
            retire(proc, conn, False)
    return results


def _missing_engine(name: str) -> Exception:
    from certify.errors import InvalidInputError

    pkg = {"ray": "ray", "dask": "dask[distributed]"}[name]
    return InvalidInputError(f"--engine {name} needs the {name} package, which is not installed; install it "
                             f"into this environment with: pip install '{pkg}' (what the certify[{name}] extra "
                             "installs), or leave out --engine to use local worker processes.")


def run_dask(requests: Sequence[CheckRequest], jobs: int, address: str | None, *, fail_fast: bool = False,
             on_done: Callable[[int, Outcome], None] | None = None) -> list[Outcome | None]:
    """Run on a Dask cluster (``address``) or a local one with ``jobs`` single-threaded worker processes."""
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise _missing_engine("dask") from None
    from certify.results import Verdict

    results: list[Outcome | None] = [None] * len(requests)
    cluster = None if address else LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                                dashboard_address=None)
    client = Client(address) if address else Client(cluster)
    try:
        futures = client.map(_check_payload, list(requests), pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        start = time.monotonic()
        for fut in as_completed(futures):
            i = index[fut.key]
            outcome = _remote_outcome(requests[i], fut.result, "Dask", start)
            results[i] = outcome
            if on_done is not None:
                on_done(i, outcome)
            if fail_fast and outcome.report.verdict is not Verdict.CERTIFIED:
                client.cancel(futures)
                break
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return results


def run_ray(requests: Sequence[CheckRequest], jobs: int, address: str | None, *, fail_fast: bool = False,
            on_done: Callable[[int, Outcome], None] | None = None) -> list[Outcome | None]:
    """Run on a Ray cluster (``address``) or a local one with ``jobs`` CPUs."""
    try:
        import ray
    except ImportError:
        raise _missing_engine("ray") from None
    from certify.results import Verdict

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=None if address else jobs, include_dashboard=False,
                 log_to_driver=False)
    results: list[Outcome | None] = [None] * len(requests)
    try:
        remote = ray.remote(max_retries=0, num_cpus=1)(_check_payload)
        refs = [remote.remote(r) for r in requests]
        index = {ref: i for i, ref in enumerate(refs)}
        left = list(refs)
        start = time.monotonic()
        while left:
            done, left = ray.wait(left, num_returns=1)
            i = index[done[0]]
            ref = done[0]
            outcome = _remote_outcome(requests[i], lambda ref=ref: ray.get(ref), "Ray", start)
            results[i] = outcome
            if on_done is not None:
                on_done(i, outcome)
            if fail_fast and outcome.report.verdict is not Verdict.CERTIFIED:
                for ref in left:
                    ray.cancel(ref, force=True)
                break
    finally:
        if started:
            ray.shutdown()
    return results


def run_batch(
    requests: Sequence[CheckRequest], *, jobs: int | None = None, engine: str = "local", address: str | None = None,
    cache_dir: str | None = None, fail_fast: bool = False, debug: bool = False,
    on_done: Callable[[int, Outcome], None] | None = None, progress: Callable[[str], None] | None = None,
) -> list[Outcome | None]:
    """Check many requests; cached reports are reused, the others run on ``engine``.

    Parameters
    ----------
    requests : sequence of CheckRequest
        One per model (see :func:`certify.batch.requests_for`).
    jobs : int, optional
        Worker processes (default: all cores); ``1`` checks in this process.
    engine : {"local", "ray", "dask"}
        Where the checks run; ``address`` names an existing Ray / Dask cluster (default: a local one).
    cache_dir : str, optional
        Result cache folder (:mod:`certify.batch.cache`); ``None``: no cache.
    fail_fast : bool
        Stop after the first model that is not certified (the others are ``None``).
    on_done : callable, optional
        ``on_done(index, outcome)`` as each model finishes.

    Returns
    -------
    list of Outcome or None
        In the order of ``requests``.

    Examples
    --------
    >>> from certify.networks import ElmanLayer, Network
    >>> net = Network(layers=(ElmanLayer(W=[[0.5]], U=[[0.3]], b=[0.0]),))
    >>> [o.how for o in run_batch([CheckRequest(net, method="diss")], jobs=1)]
    ['checked']
    """
    from certify.batch.cache import ResultCache, cache_key
    from certify.results import Verdict

    if engine not in ENGINES:
        from certify.errors import InvalidInputError

        raise InvalidInputError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}.")
    jobs = max(1, jobs if jobs is not None else (os.cpu_count() or 1))
    results: list[Outcome | None] = [None] * len(requests)
    cache = ResultCache(cache_dir) if cache_dir else None
    keys: list[str | None] = [cache_key(r) if cache else None for r in requests]
    todo: list[int] = []
    for i, key in enumerate(keys):
        hit = cache.get(key) if cache is not None and key is not None else None
        if hit is not None:
            results[i] = Outcome(hit, "cached")
            if on_done is not None:
                on_done(i, results[i])  # type: ignore[arg-type]
            if fail_fast and hit.verdict is not Verdict.CERTIFIED:
                return results
        else:
            todo.append(i)

    def done(k: int, outcome: Outcome) -> None:
        i = todo[k]
        if cache is not None and keys[i] is not None and outcome.how == "checked":
            cache.put(keys[i], outcome.report)  # type: ignore[arg-type]
        if on_done is not None:
            on_done(i, outcome)

    subset = [requests[i] for i in todo]
    if not subset:
        return results
    if jobs > 1:  # keep worker isolation even for one model left, but never more workers than models
        jobs = max(2, min(jobs, len(subset)))
    if engine == "dask":
        got = run_dask(subset, jobs, address, fail_fast=fail_fast, on_done=done)
    elif engine == "ray":
        got = run_ray(subset, jobs, address, fail_fast=fail_fast, on_done=done)
    else:
        got = run_local(subset, jobs, fail_fast=fail_fast, debug=debug, on_done=done, progress=progress)
    for k, outcome in enumerate(got):
        results[todo[k]] = outcome
    return results
