"""The ``certify`` command line (``certify ...`` or ``python -m certify ...``).

Machine output (the chosen ``--format``) goes to stdout or ``-o FILE``; the human summary goes to
stderr (``--quiet`` silences it).  The exit code is the worst verdict over all models (see
:class:`certify.results.ExitCode`).  Heavy libraries are imported only by the sub-command that needs
them, so ``certify --help`` and ``certify --version`` start fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from certify.errors import CertifyError
from certify.results import ExitCode, Verdict

# Small dense linear algebra dominates certify's work; multi-threaded BLAS makes it far slower on a
# loaded machine (measured: the vertex check of a 64-unit LP-GRNN went from 0.1 s to 15 s).  Users who
# want threads can still set these variables themselves.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ISSUES_HINT = (
    "this is a bug in certify: please report it as a bug in certify with the command line, this message and "
    "the output of `certify --version`; rerun with --debug for the traceback."
)
TORCH_HINT = "install the torch extra: pip install 'certify[torch]'"

EXIT_CODES_HELP = """exit codes:
  0  certified       every requested property is proved by a validated certificate
  1  not_certified   no criterion proved it and no counterexample was found (inconclusive)
  2  usage error     bad command line
  3  invalid_input   the model, plant or loop file cannot be read, is malformed, or is unsupported
  4  unstable        a counterexample was found and proved (interval arithmetic): the property is false
  5  internal_error  a bug in certify
with several models, the exit code is that of the worst verdict (internal_error > invalid_input >
unstable > not_certified > certified)."""


def parse_input_range(text: str) -> tuple[list[float], list[float]]:
    """Parse ``LOW:HIGH`` (one bound for every input) or ``L1,L2,..:H1,H2,..``.

    >>> parse_input_range("-2:2")
    ([-2.0], [2.0])
    >>> parse_input_range("0,-1:1,1")
    ([0.0, -1.0], [1.0, 1.0])
    """
    try:
        lo_txt, hi_txt = text.split(":")
        low = [float(v) for v in lo_txt.split(",")]
        high = [float(v) for v in hi_txt.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid input range {text!r}: expected LOW:HIGH or L1,L2,..:H1,H2,.. (write --input-range=-1:1 "
            "when LOW is negative)"
        ) from None
    if len(low) != len(high) or any(h < l for l, h in zip(low, high)):
        raise argparse.ArgumentTypeError(f"invalid input range {text!r}: need as many LOWs as HIGHs and LOW <= HIGH")
    return low, high


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation tools and tests)."""
    from certify import __version__

    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="certify", formatter_class=fmt, epilog=EXIT_CODES_HELP,
        description="Certify the stability of trained recurrent neural networks and of the control loops "
        "they sit in.",
    )
    parser.add_argument("--version", action="version", version=f"certify {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("check", formatter_class=fmt, epilog=EXIT_CODES_HELP,
                       help="prove (or refute) stability of one or more models",
                       description="Check each MODEL (ONNX or PyTorch state dict); one report per model.\nWith "
                       "several models, --format json prints a JSON array of reports.")
    c.add_argument("models", nargs="+", metavar="MODEL", help="model file(s)")
    where = c.add_mutually_exclusive_group()
    where.add_argument("--plant", metavar="NAME", help="close the loop around a built-in plant (see `certify plants`)")
    where.add_argument("--loop", metavar="FILE", help="close the loop as described by a loop file (TOML)")
    c.add_argument("--method", choices=("auto", "diss", "lmi", "all"), default="auto",
                   help="diss: closed-form δISS tests; lmi: SNOF + Lur'e LMI (affine cells only); auto: the cheap "
                   "test first, then the LMI where it applies; all: every applicable criterion (default: auto)")
    c.add_argument("--solver", metavar="NAME", help="conic solver for the LMI (default: best available)")
    c.add_argument("--format", choices=("text", "json", "markdown", "html"), default="text",
                   help="machine output format (default: text)")
    c.add_argument("-o", "--output", metavar="FILE", help="write the output to FILE instead of stdout")
    c.add_argument("--input-range", type=parse_input_range, metavar="LOW:HIGH",
                   help="network-input box, LOW:HIGH for all inputs or L1,L2,..:H1,H2,.. per input "
                   "(overrides model metadata; use --input-range=-1:1 for a negative LOW)")
    c.add_argument("--timeout", type=_positive, metavar="S", help="time limit for the whole check (import, LMI, counterexample search), seconds; reaching it gives not_certified")
    c.add_argument("--max-plant-states", type=_positive_int, metavar="N",
                   help="largest plant (number of states) a loop or plant file may declare (default: 500)")
    c.add_argument("--quiet", action="store_true", help="no human summary or progress on stderr")
    c.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")

    i = sub.add_parser("inspect", help="show a model's architecture, sizes, conventions and SHA-256",
                       description="Describe MODEL without checking it.")
    i.add_argument("model", metavar="MODEL")
    i.add_argument("--format", choices=("text", "json"), default="text")
    i.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")

    p = sub.add_parser("plants", help="list the built-in plants for --plant")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")

    v = sub.add_parser("verify", formatter_class=fmt,
                       help="re-check the interval proof of a saved report's counterexample (no search)",
                       description="Repeat, in ball arithmetic, the proof behind an `unstable` REPORT (JSON) for "
                                   "MODEL: exit 0 when it holds, 1 when it does not, 3 for bad input.")
    v.add_argument("report", metavar="REPORT", help="a JSON report written by `certify check --format json`")
    v.add_argument("model", metavar="MODEL", help="the model file the report is about")
    vwhere = v.add_mutually_exclusive_group()
    vwhere.add_argument("--plant", metavar="NAME", help="for a loop report: the built-in plant (default: the report's)")
    vwhere.add_argument("--loop", metavar="FILE", help="for a loop report: the loop file (default: the report's)")
    v.add_argument("--format", choices=("text", "json"), default="text")
    v.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")

    from certify.train.retrain import add_arguments as retrain_arguments  # no torch/numpy at import

    r = sub.add_parser("retrain", formatter_class=fmt, epilog=EXIT_CODES_HELP,
                       help="retrain a network with a stability penalty until it certifies (needs torch)",
                       description="Retrain MODEL on DATA with a stability penalty (δISS/ISS residuals, or the LMI for "
                                   "Elman, LP-GRNN, SS-NN and cell graphs) until `certify check` certifies it; writes "
                                   "model.onnx, report.json, retrain.json and, where a state-dict layout exists, "
                                   "model.pt (+ sidecar) to the output folder. "
                                   "See docs/retrain.md.")
    retrain_arguments(r)
    r.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    return parser


# ---------------------------------------------------------------------------------------------------


def _internal_message(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if len(text) > 300:
        text = text[:297] + "..."
    return f"internal error ({text}); {ISSUES_HINT}"


def _no_color() -> bool:
    return bool(os.environ.get("NO_COLOR"))


def _is_tty(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and not _no_color()


def _input_files(args: argparse.Namespace) -> list[str]:
    """Every file a command reads (models, their sidecars and external data, loop and plant files)."""
    paths: list[str] = []
    for model in list(getattr(args, "models", None) or []) + [getattr(args, "model", None)]:
        if model:
            paths += [model, model + ".certify.json", model + ".data"]
    for key in ("data", "loop"):
        if getattr(args, key, None):
            paths.append(getattr(args, key))
    loop = getattr(args, "loop", None)
    if loop:  # the plant file a loop file names (best effort: a malformed loop file is reported later)
        try:
            import json
            from pathlib import Path

            from certify.loop.plants import _decode, _load_toml, read_regular_file

            if loop.lower().endswith(".json"):
                data = json.loads(_decode(read_regular_file(loop, "loop file", max_bytes=1 << 24), Path(loop)))
            else:
                data = _load_toml(Path(loop))
            plant = data.get("plant", {}) if isinstance(data, dict) else {}
            if isinstance(plant, dict) and isinstance(plant.get("file"), str):
                paths.append(os.path.join(os.path.dirname(loop), plant["file"]))
        except Exception:  # noqa: BLE001 - reading the loop file properly happens later
            pass
    return paths


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        try:
            return os.path.realpath(a) == os.path.realpath(b)
        except (OSError, ValueError):
            return False


def refuse_overwriting_inputs(output: str | None, inputs: Sequence[str]) -> None:
    """Raise :class:`~certify.errors.InvalidInputError` if ``output`` names one of ``inputs``.

    Parameters
    ----------
    output : str or None
        The ``-o`` path (``None``: stdout, nothing to check).
    inputs : sequence of str
        Files the command reads.

    Examples
    --------
    >>> import os, tempfile
    >>> model = os.path.join(tempfile.mkdtemp(), "model.onnx")
    >>> _ = open(model, "wb").write(b"onnx")
    >>> refuse_overwriting_inputs(model, [model])
    Traceback (most recent call last):
    ...
    certify.errors.InvalidInputError: refusing to write the output to .../model.onnx: it is an input of this command ...
    """
    from certify.errors import InvalidInputError

    if output is None:
        return
    candidates = [c for c in {output, os.path.realpath(output)} if os.path.lexists(c)]
    for path in inputs:
        if path and os.path.lexists(path) and any(_same_file(c, path) or _references(path, c) for c in candidates):
            raise InvalidInputError(
                f"refusing to write the output to {output}: it is an input of this command ({path}) and would be "
                "destroyed. Choose another -o/--output path."
            )


def _references(model: str, output: str) -> bool:
    """Whether ONNX file ``model`` names ``output`` (a file in its folder) as external data."""
    import stat

    try:
        if not model.lower().endswith(".onnx") or not _same_file(os.path.dirname(os.path.abspath(model)),
                                                                 os.path.dirname(os.path.abspath(output))):
            return False
        st = os.stat(model)
        if not stat.S_ISREG(st.st_mode) or st.st_size > 1 << 28:
            return False
        with open(model, "rb") as fh:
            return os.path.basename(output).encode("utf-8") in fh.read()
    except (OSError, ValueError):
        return False


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a temporary file in the same folder, then ``os.replace``.

    A reader never sees a half-written file and an interrupted write leaves the old file intact.
    Devices and FIFOs (``-o /dev/stdout``) are written directly.

    Examples
    --------
    >>> import os, tempfile
    >>> out = os.path.join(tempfile.mkdtemp(), "report.json")
    >>> write_atomic(out, "{}")
    >>> open(out).read()
    '{}'
    """
    import stat
    import tempfile

    data = text.encode("utf-8")
    if os.path.islink(path):
        path = os.path.realpath(path)  # write through a symbolic link, keep the link
    try:
        st = os.stat(path)
    except OSError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(21, "it is a directory", path)
    if st is not None and not stat.S_ISREG(st.st_mode):  # /dev/stdout, /dev/null, a FIFO the user chose
        with open(path, "wb") as fh:
            fh.write(data)
        return
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if st is not None:
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _write(text: str, output: str | None) -> None:
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
        return
    try:
        write_atomic(output, text if text.endswith("\n") else text + "\n")
    except OSError as exc:
        from certify.errors import InvalidInputError

        raise InvalidInputError(f"cannot write the output file {output}: {exc.strerror or exc}") from None


def _input_error_message(exc: BaseException) -> str | None:
    """The message for an exception that bad input (or a missing extra), not a bug, caused; else None."""
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] == "torch":
        return f"reading this model needs PyTorch, which is not installed; {TORCH_HINT}"
    if isinstance(exc, MemoryError):
        return ("the input needs more memory than is available (declared sizes too large?); certify refuses "
                "it. Check the sizes in the model, loop or plant file.")
    if isinstance(exc, RecursionError):
        return "the input is nested too deeply (metadata, sidecar, loop or plant file); certify refuses it."
    if isinstance(exc, UnicodeDecodeError):
        return f"the input is not valid UTF-8 text ({exc.reason} at byte {exc.start})."
    return None


def _render(reports: list[Any], fmt: str, color: bool) -> str:
    if fmt == "json":
        from certify.report import reports_to_json

        return reports_to_json(reports)
    if fmt == "markdown":
        from certify.report.markdown import render_markdown_many

        return render_markdown_many(reports)
    if fmt == "html":
        from certify.report.html import render_html

        return render_html(reports)
    return "\n\n".join(r.to_text(color=color) for r in reports)


def _not_a_regular_file(path: str) -> str | None:
    """The message for a model path that exists but is not a regular file (FIFO, device, directory)."""
    import stat

    from certify.schemas.files import file_kind

    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None  # missing or unreadable: the importer says so
    if stat.S_ISREG(st.st_mode):
        return None
    return f"model path {path} is {file_kind(st.st_mode)}, not a regular file."


def cmd_check(args: argparse.Namespace) -> int:
    limit = getattr(args, "max_plant_states", None)
    if limit is None:
        return _cmd_check(args)
    old = os.environ.get("CERTIFY_MAX_PLANT_STATES")
    os.environ["CERTIFY_MAX_PLANT_STATES"] = str(limit)
    try:
        return _cmd_check(args)
    finally:
        if old is None:
            os.environ.pop("CERTIFY_MAX_PLANT_STATES", None)
        else:
            os.environ["CERTIFY_MAX_PLANT_STATES"] = old


def _cmd_check(args: argparse.Namespace) -> int:
    from certify.api import check, file_sha256
    from certify.progress import Progress
    from certify.report import Report
    from certify.results import worst_verdict

    refuse_overwriting_inputs(args.output, _input_files(args))
    reports = []
    with Progress(total=len(args.models), enabled=None if not args.quiet else False) as bar:
        for path in args.models:
            special = _not_a_regular_file(path)
            if special is not None:  # a FIFO or a device: never open it (reading would block or never end)
                reports.append(Report.from_error(Verdict.INVALID_INPUT, special, model={"path": path, "sha256": None},
                                                 error_type="ModelFileError", method=args.method, solver=args.solver))
                bar.advance()
                continue
            try:
                report = check(
                    path, plant=args.plant, loop=args.loop, method=args.method, solver=args.solver,
                    input_range=args.input_range, timeout=args.timeout, input_range_source="command line",
                    progress=lambda label, path=path: bar.stage(f"{os.path.basename(path)}: {label}"),
                )
            except Exception as exc:  # a bug: report it as such, never a wall of traceback
                if args.debug:
                    import traceback

                    traceback.print_exc()
                bad_input = _input_error_message(exc)
                report = Report.from_error(
                    Verdict.INVALID_INPUT if bad_input else Verdict.INTERNAL_ERROR, bad_input or _internal_message(exc),
                    model={"path": path, "sha256": file_sha256(path)},
                    error_type=type(exc).__name__, method=args.method, solver=args.solver,
                )
            reports.append(report)
            bar.advance()
    to_stdout_text = args.format == "text" and args.output is None
    _write(_render(reports, args.format, color=to_stdout_text and _is_tty(sys.stdout)), args.output)
    if not args.quiet and not to_stdout_text:
        color = _is_tty(sys.stderr)
        sys.stderr.write("\n\n".join(r.to_text(color=color) for r in reports) + "\n")
    return int(worst_verdict([r.verdict for r in reports]).exit_code)


def cmd_inspect(args: argparse.Namespace) -> int:
    import json

    from certify.api import file_sha256, load_model
    from certify.report import jsonable

    net = load_model(args.model)
    summary = jsonable(net.summary())
    if not summary.get("sha256"):
        summary["sha256"] = file_sha256(args.model)
    if args.format == "json":
        _write(json.dumps(summary, indent=2, ensure_ascii=False), None)
        return int(ExitCode.CERTIFIED)
    lines = [f"model:        {args.model}"]
    for key in ("architecture", "source_format", "n_inputs", "n_outputs", "n_states", "n_params", "sha256"):
        lines.append(f"{key + ':':<13} {summary.get(key)}")
    ir = summary.get("input_range")
    lines.append(f"{'input_range:':<13} {ir if ir is not None else 'unknown (δISS tests will assume [-1, 1])'}")
    for key in ("input_names", "output_names", "input_scaling", "output_scaling", "head"):
        if summary.get(key):
            lines.append(f"{key + ':':<13} {summary[key]}")
    lines.append("layers:")
    for n, layer in enumerate(summary.get("layers") or []):
        lines.append(f"  {n}: " + ", ".join(f"{k}={v}" for k, v in layer.items()))
    for key in ("warnings", "notes"):  # what the importer ignored or assumed
        for text in net.info.extra.get(key) or ():
            lines.append(f"{key[:-1]}: {text}")
    _write("\n".join(lines), None)
    return int(ExitCode.CERTIFIED)


def cmd_plants(args: argparse.Namespace) -> int:
    import json

    try:
        from certify.loop.plants import list_plants
    except ImportError:
        from certify.errors import NotApplicableError

        raise NotApplicableError("closed-loop support (certify.loop) is not available in this installation.") from None
    from certify.report import jsonable

    rows = jsonable(list_plants())
    if args.format == "json":
        _write(json.dumps(rows, indent=2, ensure_ascii=False), None)
    else:
        width = max((len(r["name"]) for r in rows), default=4)
        lines = []
        for r in rows:
            lines.append(f"{r['name']:<{width}}  {r.get('summary', '')}")
            extra = {k: v for k, v in r.items() if k not in ("name", "summary", "description") and not isinstance(v, (list, dict))}
            if extra:
                lines.append(f"{'':<{width}}  " + ", ".join(f"{k}={v}" for k, v in extra.items()))
        _write("\n".join(lines) if lines else "no built-in plants", None)
    return int(ExitCode.CERTIFIED)


def cmd_verify(args: argparse.Namespace) -> int:
    import json

    from certify.verify import render, verify_counterexample

    proof = verify_counterexample(args.report, args.model, plant=args.plant, loop=args.loop)
    if args.format == "json":
        _write(json.dumps(dict(proof.to_dict(), seconds=proof.seconds), indent=2), None)
    else:
        _write(render(proof), None)
    return int(ExitCode.CERTIFIED if proof.proved else ExitCode.NOT_CERTIFIED)


def cmd_retrain(args: argparse.Namespace) -> int:
    from certify.train.retrain import run

    return run(args)


_COMMANDS = {"check": cmd_check, "inspect": cmd_inspect, "plants": cmd_plants, "verify": cmd_verify,
             "retrain": cmd_retrain}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code (never raises for user errors).

    >>> main(["--version"])  # doctest: +ELLIPSIS
    certify ...
    0
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help / --version (0) and usage errors (2)
        return int(exc.code) if isinstance(exc.code, int) else int(ExitCode.USAGE_ERROR)
    if args.command is None:
        parser.print_help(sys.stderr)
        return int(ExitCode.USAGE_ERROR)
    try:
        return _COMMANDS[args.command](args)
    except CertifyError as exc:
        sys.stderr.write(f"certify: error: {exc}\n")
        return int(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("certify: interrupted\n")
        return 130
    except Exception as exc:
        if getattr(args, "debug", False):
            import traceback

            traceback.print_exc()
        bad_input = _input_error_message(exc)
        if bad_input:
            sys.stderr.write(f"certify: error: {bad_input}\n")
            return int(ExitCode.INVALID_INPUT)
        sys.stderr.write(f"certify: {_internal_message(exc)}\n")
        return int(ExitCode.INTERNAL_ERROR)
