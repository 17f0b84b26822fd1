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
from typing import Any, NoReturn

from certify.batch.runner import ENGINES
from certify.errors import CertifyError
from certify.outputs import FORMATS
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

CHECK_EPILOG = """settings: command line > [tool.certify] in the nearest pyproject.toml (from the current folder up;
--isolated ignores it) > built-in defaults.  Keys: plant, loop, method, solver, timeout, input-range,
max-plant-states, jobs, engine, address, fail-fast, cache, format, output-dir, color.

examples:
  certify check models/ --jobs 4 --cache .certify-cache -o certify-junit.xml -o certify.sarif
  certify check 'ckpt/**/*.onnx' --fail-fast --format github
  certify check models.toml --output-dir reports/"""


def parse_input_range(text: str) -> tuple[list[float], list[float]]:
    """Parse ``LOW:HIGH`` (one bound for every input) or ``L1,L2,..:H1,H2,..``.

    >>> parse_input_range("-2:2")
    ([-2.0], [2.0])
    >>> parse_input_range("0,-1:1,1")
    ([0.0, -1.0], [1.0, 1.0])
    """
    from certify.batch.inputs import parse_range

    try:
        return parse_range(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_solver_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` for ``--solver-option``: integers, floats and true/false are converted.

    >>> parse_solver_option("max_iters=5000"), parse_solver_option("verbose=false"), parse_solver_option("eps=1e-6")
    (('max_iters', 5000), ('verbose', False), ('eps', 1e-06))
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    low = raw.strip().lower()
    value: Any
    if low in ("true", "false"):
        value = low == "true"
    else:
        try:
            value = int(raw)
        except ValueError:
            try:
                value = float(raw)
            except ValueError:
                value = raw
    return key.strip(), value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
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


def _suggestion(word: str, options: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``options``, or ``""``.

    >>> _suggestion("boilr", ["boiler", "quadruple_tank"])
    " (did you mean 'boiler'?)"
    """
    import difflib

    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose "invalid choice" errors suggest the closest choice."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        import re

        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            choices = re.findall(r"'([^']*)'", m.group(2))
            message += _suggestion(m.group(1), choices)
        super().error(message)


#: Options whose value may start with "-" (a negative number): ``--input-range -1:1``.
_NEGATIVE_OK = ("--input-range",)


def normalize_argv(argv: Sequence[str]) -> list[str]:
    """Join ``--input-range -1:1`` into ``--input-range=-1:1`` so that argparse accepts a negative LOW.

    >>> normalize_argv(["check", "m.onnx", "--input-range", "-1:1"])
    ['check', 'm.onnx', '--input-range=-1:1']
    >>> normalize_argv(["check", "--input-range", "--quiet"])
    ['check', '--input-range', '--quiet']
    """
    import re

    out: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        arg = items[i]
        if arg == "--":
            out += items[i:]
            break
        if arg in _NEGATIVE_OK and i + 1 < len(items) and re.match(r"^-\.?\d", items[i + 1]):
            out.append(f"{arg}={items[i + 1]}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation tools and tests)."""
    from certify import __version__

    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="certify", formatter_class=fmt, epilog=EXIT_CODES_HELP,
        description="Certify the stability of trained recurrent neural networks and of the control loops "
        "they sit in.",
    )
    parser.add_argument("--version", action="version", version=f"certify {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    c = sub.add_parser("check", formatter_class=fmt, epilog=CHECK_EPILOG + "\n\n" + EXIT_CODES_HELP,
                       help="prove (or refute) stability of one or more models",
                       description="Check each MODEL (ONNX or PyTorch state dict); one report per model.\nA MODEL "
                       "may be a file, a folder (searched recursively for *.onnx, *.pt, *.pth), a glob\n"
                       "('ckpt/**/*.onnx', quoted) or a manifest (.toml or .csv: per-model plant, loop, method, "
                       "input range).\nWith several models, --format json prints a JSON array of reports.")
    c.add_argument("models", nargs="+", metavar="MODEL", help="model files, folders, globs or manifests")
    where = c.add_mutually_exclusive_group()
    where.add_argument("--plant", metavar="NAME", help="close the loop around a built-in plant (see `certify plants`)")
    where.add_argument("--loop", metavar="FILE", help="close the loop as described by a loop file (TOML)")
    c.add_argument("--method", choices=("auto", "diss", "lmi", "all"), default=None,
                   help="diss: closed-form δISS tests; lmi: SNOF + Lur'e LMI (affine cells only); auto: the cheap "
                   "test first, then the LMI where it applies; all: every applicable criterion (default: auto)")
    c.add_argument("--solver", metavar="NAME", help="conic solver for the LMI (default: best available; a name "
                   "that is unknown or not installed is invalid input, exit 3)")
    c.add_argument("--solver-option", metavar="KEY=VALUE", action="append", type=parse_solver_option,
                   dest="solver_option", help="an option for the conic solver, e.g. --solver-option max_iters=5000 "
                   "(repeatable; numbers and true/false are converted)")
    c.add_argument("--format", choices=FORMATS, default=None,
                   help="output format (default: from the -o file's extension, else text): " + ", ".join(FORMATS))
    c.add_argument("-o", "--output", metavar="FILE", action="append",
                   help="write the output to FILE instead of stdout; repeat it for several formats, each taken "
                   "from the extension (.json .md .html .xml=junit .sarif .txt)")
    c.add_argument("--output-dir", metavar="DIR", help="also write every file format into DIR: certify.json, "
                   "certify.md, certify.html, certify-junit.xml, certify.sarif, gl-code-quality-report.json")
    c.add_argument("--certificate", metavar="FILE", help="write the validated LMI certificate (Luré system, P, "
                   "multipliers, validation figures) to FILE as JSON; re-check it with `certify verify FILE`")
    c.add_argument("--input-range", type=parse_input_range, metavar="LOW:HIGH",
                   help="network-input box, LOW:HIGH for all inputs or L1,L2,..:H1,H2,.. per input "
                   "(overrides model metadata; negative bounds work: --input-range -1:1)")
    c.add_argument("--timeout", type=_positive, metavar="S",
                   help="time limit for each model's check (import, LMI, counterexample search), seconds; "
                   "reaching it gives not_certified")
    c.add_argument("--max-plant-states", type=_positive_int, metavar="N",
                   help="largest plant (number of states) a loop or plant file may declare (default: 500)")
    c.add_argument("-j", "--jobs", type=_positive_int, metavar="N",
                   help="check N models at a time, each in its own worker process (default: all cores; 1: one "
                   "after the other in this process)")
    c.add_argument("--engine", choices=ENGINES, default=None,
                   help="where the checks run: local worker processes (default), or a Ray or Dask cluster "
                   "(needs pip install ray / 'dask[distributed]')")
    c.add_argument("--address", metavar="ADDR", help="address of an existing Ray / Dask cluster (default: start a "
                   "local one)")
    c.add_argument("--fail-fast", action="store_true", default=None,
                   help="stop after the first model that is not certified")
    c.add_argument("--cache", metavar="DIR", help="reuse reports of unchanged models from DIR (keyed by the "
                   "SHA-256 of the model's bytes, the settings and the certify version); default: no cache")
    c.add_argument("--no-cache", action="store_true", help="ignore a cache set in pyproject.toml")
    c.add_argument("-q", "--quiet", action="store_true", default=None,
                   help="no text report, summary or progress: only the requested machine output and the exit "
                   "code (without machine output: one line on stderr per model that cannot be checked)")
    c.add_argument("-v", "--verbose", action="count", default=0,
                   help="more detail on stderr: each stage as it starts, and each model of a batch as it ends")
    c.add_argument("--color", choices=("auto", "always", "never"), default=None,
                   help="colour the text report: auto (default: on a terminal, unless NO_COLOR is set or "
                   "TERM=dumb; FORCE_COLOR forces it), always, never")
    c.add_argument("--isolated", action="store_true", help="ignore [tool.certify] in pyproject.toml")
    c.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")

    i = sub.add_parser("inspect", help="show a model's architecture, sizes, conventions and SHA-256",
                       description="Describe MODEL without checking it.")
    i.add_argument("model", metavar="MODEL")
    i.add_argument("--format", choices=("text", "json"), default="text")
    i.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")

    p = sub.add_parser("plants", help="list the built-in plants for --plant, their signals and wiring",
                       description="List the built-in plants: their signals (inputs u, outputs y) and the "
                       "wiring --plant NAME uses, which a loop file spells out ([network] inputs, [controller]).")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")

    v = sub.add_parser("verify", formatter_class=fmt,
                       help="re-check the interval proof of a saved report's counterexample (no search)",
                       description="Repeat, in ball arithmetic, the proof behind an `unstable` REPORT (JSON) for "
                                   "MODEL: exit 0 when it holds, 1 when it does not, 3 for bad input.")
    v.add_argument("report", metavar="FILE", help="a JSON report written by `certify check --format json`, or a "
                   "certificate written by `certify check --certificate FILE`")
    v.add_argument("model", metavar="MODEL", nargs="?", help="the model file (required for a report; for a "
                   "certificate it also checks that the certificate's system is this model's)")
    vwhere = v.add_mutually_exclusive_group()
    vwhere.add_argument("--plant", metavar="NAME", help="for a loop report: the built-in plant (default: the report's)")
    vwhere.add_argument("--loop", metavar="FILE", help="for a loop report: the loop file (default: the report's)")
    v.add_argument("--format", choices=("text", "json"), default="text")
    v.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")

    from certify.train.retrain import add_arguments as retrain_arguments  # no torch/numpy at import

    r = sub.add_parser("retrain", formatter_class=fmt, epilog=EXIT_CODES_HELP,
                       help="retrain a network until it certifies, keeping it close to the original (needs torch)",
                       description="Retrain MODEL on DATA until `certify check` certifies it: by default the weights are "
                                   "moved just inside the certified set and fine-tuned there with the original model's "
                                   "outputs as extra targets (--strategy preserve); a result that loses more than "
                                   "--max-fit-drop FIT points is refused and kept apart. --into lpgrnn|grssnn distils "
                                   "a GRU/LSTM into a loop-certifiable student; --plant NAME / --loop FILE (--target "
                                   "loop) retrains until the closed loop certifies. Writes model.onnx, report.json, "
                                   "retrain.json and, where a state-dict layout exists, model.pt (+ sidecar) to the "
                                   "output folder. See docs/retrain.md.")
    retrain_arguments(r)
    r.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    return parser


# ---------------------------------------------------------------------------------------------------


def _internal_message(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if len(text) > 300:
        text = text[:297] + "..."
    return f"internal error ({text}); {ISSUES_HINT}"


def use_color(stream: Any, mode: str | None = "auto", environ: Any = None) -> bool:
    """Whether to colour text written to ``stream``.

    ``--color always`` / ``never`` decide; otherwise (``auto``) a non-empty ``NO_COLOR`` turns colour off,
    a ``FORCE_COLOR`` other than ``0`` turns it on, ``TERM=dumb`` turns it off, and else colour is on iff
    ``stream`` is a terminal.

    >>> import io
    >>> use_color(io.StringIO(), "auto", {}), use_color(io.StringIO(), "always", {"NO_COLOR": "1"})
    (False, True)
    >>> use_color(io.StringIO(), "auto", {"FORCE_COLOR": "1"}), use_color(io.StringIO(), "auto", {"FORCE_COLOR": "0"})
    (True, False)
    """
    env = os.environ if environ is None else environ
    if mode == "always":
        return True
    if mode == "never":
        return False
    if env.get("NO_COLOR"):
        return False
    force = env.get("FORCE_COLOR")
    if force is not None and force != "" and force != "0":
        return True
    if env.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _is_tty(stream: Any) -> bool:
    return use_color(stream, "auto")


def _input_files(args: argparse.Namespace) -> list[str]:
    """Every file a command reads (models, their sidecars and external data, loop and plant files)."""
    paths: list[str] = []
    for model in list(getattr(args, "model_files", None) or getattr(args, "models", None) or []) + [
            getattr(args, "model", None)]:
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
    from certify.outputs import render

    return render(reports, fmt, color=color)


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


class UsageError(CertifyError):
    """A command-line or ``[tool.certify]`` setting that cannot work (exit 2)."""

    exit_code = ExitCode.USAGE_ERROR


#: ``[tool.certify]`` keys → (argparse destination, kind).
CONFIG_KEYS: dict[str, tuple[str, Any]] = {
    "plant": ("plant", str), "loop": ("loop", "path"), "method": ("method", ("auto", "diss", "lmi", "all")),
    "solver": ("solver", str), "timeout": ("timeout", "seconds"), "input-range": ("input_range", "range"),
    "max-plant-states": ("max_plant_states", "count"), "jobs": ("jobs", "count"), "engine": ("engine", ENGINES),
    "address": ("address", str), "fail-fast": ("fail_fast", bool), "cache": ("cache", "path"),
    "format": ("format", FORMATS), "output-dir": ("output_dir", "path"), "color": ("color", ("auto", "always", "never")),
}


def find_config(start: str | None = None) -> tuple[str, dict[str, Any]] | None:
    """The nearest ``pyproject.toml`` (from ``start``, default the current folder, upwards) with a
    ``[tool.certify]`` table, and that table; ``None`` if there is none.

    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> _ = open(os.path.join(d, "pyproject.toml"), "w").write('[tool.certify]\\nmethod = "diss"\\n')
    >>> os.makedirs(os.path.join(d, "sub"))
    >>> path, table = find_config(os.path.join(d, "sub"))
    >>> os.path.dirname(path) == d, table
    (True, {'method': 'diss'})
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10 (the tomli dependency)
        import tomli as tomllib

    folder = os.path.abspath(start or os.getcwd())
    while True:
        candidate = os.path.join(folder, "pyproject.toml")
        if os.path.isfile(candidate):
            try:
                with open(candidate, "rb") as fh:
                    data = tomllib.load(fh)
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise UsageError(f"cannot read {candidate}: {exc}") from None
            table = data.get("tool", {}).get("certify") if isinstance(data.get("tool"), dict) else None
            if isinstance(table, dict):
                return candidate, table
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def apply_config(args: argparse.Namespace, table: dict[str, Any], source: str) -> None:
    """Fill every option not given on the command line from a ``[tool.certify]`` table (exact types).

    Relative paths (``loop``, ``cache``, ``output-dir``) are relative to the folder of ``source``.

    >>> ns = argparse.Namespace(method=None, plant=None, loop=None)
    >>> apply_config(ns, {"method": "diss"}, "pyproject.toml"); ns.method
    'diss'
    >>> apply_config(ns, {"methd": "diss"}, "pyproject.toml")
    Traceback (most recent call last):
    ...
    certify.cli.UsageError: pyproject.toml [tool.certify]: unknown key 'methd' (did you mean 'method'?); ...
    """
    folder = os.path.dirname(os.path.abspath(source))
    where = f"{source} [tool.certify]"
    for key, value in table.items():
        norm = key.replace("_", "-")
        if norm not in CONFIG_KEYS:
            raise UsageError(f"{where}: unknown key {key!r}{_suggestion(norm, list(CONFIG_KEYS))}; the keys are "
                             + ", ".join(CONFIG_KEYS) + ".")
        dest, kind = CONFIG_KEYS[norm]
        bad = f"{where}: key {key!r} must be "
        if kind is bool:
            if not isinstance(value, bool):
                raise UsageError(bad + f"true or false, not {value!r}.")
        elif kind in (str, "path"):
            if not isinstance(value, str) or not value:
                raise UsageError(bad + f"a non-empty string, not {value!r}.")
            if kind == "path" and not os.path.isabs(value):
                value = os.path.join(folder, value)
        elif kind == "seconds":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise UsageError(bad + f"a positive number of seconds, not {value!r}.")
            value = float(value)
        elif kind == "count":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(bad + f"a positive integer, not {value!r}.")
        elif kind == "range":
            from certify.batch.inputs import _range_value

            try:
                value = _range_value(value, where)
            except CertifyError as exc:
                raise UsageError(str(exc)) from None
        elif isinstance(kind, tuple):
            if value not in kind:
                raise UsageError(bad + f"one of {', '.join(kind)}, not {value!r}"
                                 f"{_suggestion(str(value), kind)}.")
        if not hasattr(args, dest):
            continue
        if dest in ("plant", "loop") and (args.plant is not None or args.loop is not None):
            continue  # the command line chose the loop: the file's plant/loop does not apply
        if getattr(args, dest) is None:
            setattr(args, dest, value)


_CHECK_DEFAULTS = {"method": "auto", "engine": "local", "fail_fast": False, "quiet": False, "color": "auto"}


def _check_names(args: argparse.Namespace) -> None:
    """Unknown plant or solver names: invalid input with the closest name (before any model is read)."""
    from certify.errors import InvalidInputError

    if args.plant is not None:
        from certify.batch.inputs import plant_names

        names = plant_names()
        if args.plant not in names:
            raise InvalidInputError(f"unknown plant {args.plant!r}{_suggestion(args.plant, names)}; built-in plants: "
                                    f"{', '.join(names)} (`certify plants` shows their signals and wiring; for "
                                    "another plant write a loop file and pass --loop).")
    if args.solver is not None:
        from certify.sdp.solvers import REGISTRY, available_solvers

        names = [spec.name for spec in REGISTRY]
        if args.solver.lower() not in names:
            raise InvalidInputError(f"unknown solver {args.solver!r}{_suggestion(args.solver.lower(), names)}; "
                                    f"installed SDP solvers: {', '.join(available_solvers())}.")
        installed = available_solvers()
        if args.solver.lower() not in installed:  # checked for every --method: a CI job should not pass by luck
            raise InvalidInputError(
                f"solver {args.solver!r} is known but not installed here; installed SDP solvers: "
                f"{', '.join(installed)}. Install it into this environment (CVXPY must find it) or leave out "
                f"--solver to use {installed[0] if installed else 'the default'}.")


def _outputs(args: argparse.Namespace) -> tuple[list[tuple[str, str]], str | None]:
    """The files to write as ``(path, format)`` and the format for stdout (``None``: nothing on stdout)."""
    from certify.outputs import OUTPUT_DIR_FILES, format_for_path

    files: list[tuple[str, str]] = []
    given = list(args.output or [])
    stdout_fmt = args.format
    if len(given) == 1 and args.format is not None:
        files.append((given[0], args.format))  # an explicit --format wins for a single -o
        stdout_fmt = None
    else:
        for path in given:
            fmt = format_for_path(path) or args.format or "text"
            files.append((path, fmt))
        if given and args.format is None:
            stdout_fmt = None
    if args.output_dir:
        files += [(os.path.join(args.output_dir, name), fmt) for fmt, name in OUTPUT_DIR_FILES.items()]
    if not files and stdout_fmt is None:
        stdout_fmt = "text"
    return files, stdout_fmt


def _summary_table(reports: list[Any], how: list[str], skipped: int) -> str:
    from certify.outputs import _rel
    from certify.results import worst_verdict

    rows = [(_rel(r.model.get("path")), r.verdict.value, str(int(r.exit_code)), "cached" if h == "cached" else "")
            for r, h in zip(reports, how)]
    head = ("model", "verdict", "exit", "")
    widths = [max(len(x[k]) for x in rows + [head]) for k in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(head, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    counts: dict[str, int] = {}
    for r in reports:
        counts[r.verdict.value] = counts.get(r.verdict.value, 0) + 1
    worst = worst_verdict([r.verdict for r in reports]).value if reports else "-"
    tail = f"{len(reports)} model{'s' if len(reports) != 1 else ''}: " + ", ".join(
        f"{n} {v}" for v, n in sorted(counts.items()))
    cached = sum(h == "cached" for h in how)
    if cached:
        tail += f"; {cached} from the cache"
    if skipped:
        tail += f"; {skipped} not checked (--fail-fast)"
    return "\n".join(lines + [tail + f"; worst verdict {worst}"])


def cmd_check(args: argparse.Namespace) -> int:
    if not args.isolated:
        found = find_config()
        if found is not None:
            apply_config(args, found[1], found[0])
    for key, value in _CHECK_DEFAULTS.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.no_cache:
        args.cache = None
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
    from certify.batch import expand, run_batch
    from certify.progress import Progress
    from certify.request import CheckRequest
    from certify.results import worst_verdict

    _check_names(args)
    items = expand(args.models)
    args.model_files = [item.path for item in items]
    files, stdout_fmt = _outputs(args)
    for path, _ in files:
        refuse_overwriting_inputs(path, _input_files(args))
    if getattr(args, "certificate", None):
        refuse_overwriting_inputs(args.certificate, _input_files(args))
    if args.output_dir:
        try:
            os.makedirs(args.output_dir, exist_ok=True)
        except OSError as exc:
            from certify.errors import InvalidInputError

            raise InvalidInputError(f"cannot create the output folder {args.output_dir}: {exc.strerror}") from None

    reports: list[Any] = [None] * len(items)
    how: list[str] = ["checked"] * len(items)
    requests: list[CheckRequest] = []
    where: list[int] = []
    for n, item in enumerate(items):
        s = dict(item.settings)
        plant, loop = (s.get("plant"), s.get("loop")) if ("plant" in s or "loop" in s) else (args.plant, args.loop)
        range_given = "input_range" in s
        try:
            requests.append(CheckRequest(
                model=item.path, plant=plant, loop=loop, method=s.get("method", args.method),
                solver=s.get("solver", args.solver), input_range=s["input_range"] if range_given else args.input_range,
                input_range_source=item.origin if range_given else "command line",
                timeout=s.get("timeout", args.timeout), solver_options=dict(args.solver_option or [])))
            where.append(n)
        except CertifyError as exc:
            from certify.api import file_sha256
            from certify.report import Report

            verdict = Verdict.INVALID_INPUT if exc.exit_code is ExitCode.INVALID_INPUT else Verdict.INTERNAL_ERROR
            reports[n] = Report.from_error(verdict, str(exc),
                model={"path": item.path, "sha256": file_sha256(item.path)}, error_type=type(exc).__name__,
                method=s.get("method", args.method), solver=s.get("solver", args.solver))
    verbose = args.verbose and not args.quiet
    one = len(requests) <= 1
    with Progress(total=len(requests), enabled=None if not args.quiet else False) as bar:
        def on_done(k: int, outcome: Any) -> None:
            reports[where[k]] = outcome.report
            how[where[k]] = outcome.how
            bar.stage(os.path.basename(items[where[k]].path) + f": {outcome.report.verdict.value}")
            bar.advance()
            if verbose and not one:
                sys.stderr.write(f"certify: {items[where[k]].path}: {outcome.report.verdict.value}"
                                 f"{' (cached)' if outcome.how == 'cached' else ''}\n")

        def stage(label: str) -> None:
            bar.stage(label)
            if verbose:
                sys.stderr.write(f"certify: {label}\n")

        jobs = 1 if one and args.engine == "local" else args.jobs
        run_batch(requests, jobs=jobs, engine=args.engine, address=args.address, cache_dir=args.cache,
                  fail_fast=args.fail_fast, debug=args.debug, on_done=on_done, progress=stage)
    done = [n for n, r in enumerate(reports) if r is not None]
    skipped = len(reports) - len(done)
    reports_done = [reports[n] for n in done]
    if getattr(args, "certificate", None):
        _write_certificates(args.certificate, reports_done)
    for path, fmt in files:
        _write(_render(reports_done, fmt, color=False), path)
        if fmt == "github":
            from certify.outputs import write_github_step_summary

            write_github_step_summary(reports_done)
    if stdout_fmt is not None and not (args.quiet and stdout_fmt == "text"):
        color = stdout_fmt == "text" and use_color(sys.stdout, args.color)
        _write(_render(reports_done, stdout_fmt, color=color), None)
        if stdout_fmt == "github":
            from certify.outputs import write_github_step_summary

            write_github_step_summary(reports_done)
    if args.quiet:
        if files or stdout_fmt != "text":
            pass  # the machine output carries every error
        else:  # nothing else says why: one line per model that could not be checked
            for r in reports_done:
                if r.verdict in (Verdict.INVALID_INPUT, Verdict.INTERNAL_ERROR):
                    sys.stderr.write(f"certify: error: {r.model.get('path')}: {'; '.join(r.reasons)}\n")
    else:
        color = use_color(sys.stderr, args.color)
        text_on_stdout = stdout_fmt == "text"
        if not text_on_stdout and reports_done:
            sys.stderr.write("\n\n".join(r.to_text(color=color) for r in reports_done) + "\n")
        if len(reports) > 1:
            sys.stderr.write(("\n" if reports_done else "") + _summary_table(reports_done, [how[n] for n in done],
                                                                              skipped) + "\n")
    if not reports_done:
        return int(ExitCode.INTERNAL_ERROR)
    return int(worst_verdict([r.verdict for r in reports_done]).exit_code)

def _write_certificates(path: str, reports: list[Any]) -> None:
    """The LMI certificate(s) of ``reports`` as JSON (one object, or a list for several models)."""
    import json

    certs = [r.certificate for r in reports]
    if not any(c is not None for c in certs):
        sys.stderr.write(f"certify: no LMI certificate to write to {path}: no model was certified by an LMI "
                         "(closed-form δISS proofs are their residuals, in the report; a cached report keeps no "
                         "certificate: rerun without --cache).\n")
        return
    data = certs[0] if len(certs) == 1 else certs
    _write(json.dumps(data, indent=1, allow_nan=False), path)


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
    try:
        from certify.loop.spec import DEFAULT_LOOPS
    except ImportError:
        DEFAULT_LOOPS = {}
    for r in rows:  # the wiring --plant NAME uses: what a loop file's [network] and [controller] spell out
        wiring = DEFAULT_LOOPS.get(r["name"])
        if wiring:
            r["wiring"] = {k: wiring[k] for k in ("network", "controller") if k in wiring}
    if args.format == "json":
        _write(json.dumps(rows, indent=2, ensure_ascii=False), None)
        return int(ExitCode.CERTIFIED)
    lines = []
    for r in rows:
        lines.append(f"{r['name']}: {r.get('summary', '')}")
        facts = {k: v for k, v in r.items() if k in ("Ts", "n_states", "spectral_radius", "source")}
        if facts:
            lines.append("  " + ", ".join(f"{k}={v}" for k, v in facts.items()))
        for kind, key in (("u", "inputs"), ("y", "outputs")):
            names = r.get(key) or []
            ops = r.get("u_op" if kind == "u" else "y_op") or []
            lo, hi = r.get("u_min") or [], r.get("u_max") or []
            parts = []
            for n, name in enumerate(names):
                text = f"{kind}:{name}"
                if n < len(ops):
                    text += f" (operating point {ops[n]:g}"
                    text += f", limits [{lo[n]:g}, {hi[n]:g}])" if kind == "u" and n < len(lo) and n < len(hi) else ")"
                parts.append(text)
            lines.append(f"  {key + ':':<9}" + "; ".join(parts))
        wiring = r.get("wiring")
        if wiring:
            net, ctl = wiring.get("network", {}), wiring.get("controller", {})
            lines.append(f"  wiring for --plant {r['name']} (a loop file with [plant] builtin = \"{r['name']}\" and "
                         "these sections reproduces it; change them and pass --loop FILE):")
            lines.append(f"    [network] inputs = {json.dumps(net.get('inputs', []))}, output = {net.get('output')}"
                         + (f", estimates = {json.dumps(net['estimates'])}" if "estimates" in net else ""))
            lines.append("    [controller] " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in ctl.items()))
        lines.append("")
    lines.append("network inputs: y:NAME a plant output, u:NAME a plant input u(k), u_prev:NAME the actuator's "
                 "previous value u(k-1), or a constant number.")
    _write("\n".join(lines) if rows else "no built-in plants", None)
    return int(ExitCode.CERTIFIED)


def cmd_verify(args: argparse.Namespace) -> int:
    import json

    from certify.verify import is_certificate, read_report, render, verify_counterexample

    data = read_report(args.report)
    if is_certificate(data):
        return _verify_certificate(args, data)
    if isinstance(data, list) and data and all(d is None or is_certificate(d) for d in data):
        codes = [_verify_certificate(args, d) for d in data if d is not None]  # a multi-model --certificate file
        return max(codes) if codes else int(ExitCode.NOT_CERTIFIED)
    if args.model is None:
        from certify.errors import InvalidInputError

        raise InvalidInputError("re-checking a report's counterexample needs the model: certify verify REPORT MODEL.")
    proof = verify_counterexample(data, args.model, plant=args.plant, loop=args.loop)
    if args.format == "json":
        _write(json.dumps(dict(proof.to_dict(), seconds=proof.seconds), indent=2), None)
    else:
        _write(render(proof), None)
    return int(ExitCode.CERTIFIED if proof.proved else ExitCode.NOT_CERTIFIED)


def _verify_certificate(args: argparse.Namespace, data: Any) -> int:
    import json

    from certify.verify import certificate_matches, verify_certificate

    v = verify_certificate(data)
    match = certificate_matches(data, args.model, plant=args.plant, loop=args.loop) if args.model else None
    ok = v.ok and (match is None or match[0])
    if args.format == "json":
        out = {"certificate_valid": v.ok, "validation": v.to_dict(), "ok": ok}
        if match is not None:
            out.update(matches_model=match[0], match_detail=match[1])
        _write(json.dumps(out, indent=2, allow_nan=False), None)
    else:
        lines = [f"certificate: {data.get('criterion')} LMI for {data.get('check', 'a check')} "
                 f"(model sha256 {str(data.get('model_sha256') or '?')[:12]})",
                 f"float64 re-check: max eig(M) = {v.max_eig_M:.3e} (must be ≤ −{v.margin_M:.1e}), "
                 f"min eig(P) = {v.min_eig_P:.3e} (must be ≥ {v.margin_P:.1e}): {'holds' if v.ok else 'FAILS'}"]
        if match is not None:
            lines.append(("model: " if match[0] else "model: MISMATCH: ") + match[1])
        lines.append("verdict: " + ("the certificate holds." if ok else "the certificate does NOT hold."))
        _write("\n".join(lines), None)
    return int(ExitCode.CERTIFIED if ok else ExitCode.NOT_CERTIFIED)


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
        args = parser.parse_args(normalize_argv(sys.argv[1:] if argv is None else argv))
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
