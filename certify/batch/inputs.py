"""What a batch checks: model files, folders, globs and manifests → :class:`BatchItem` s.

A folder is searched recursively for ``*.onnx``, ``*.pt`` and ``*.pth`` (hidden folders and
``.certify-cache`` are skipped); a glob (``models/**/*.onnx``) is expanded with ``**`` support; a file
ending in ``.toml`` or ``.csv`` given as a model is read as a *manifest*: one row per model with its own
plant or loop, method, solver, input range and timeout.  Paths in a manifest are relative to the
manifest's folder.

TOML manifest::

    [[model]]
    path = "models/a.onnx"
    plant = "boiler"
    method = "auto"
    input_range = "-1:1"          # or [[-1, -1], [1, 1]] or [-1, 1]

CSV manifest (header row; empty cells mean "the command line's value")::

    model,plant,loop,method,solver,input_range,timeout
    models/a.onnx,boiler,,auto,,-1:1,
"""

from __future__ import annotations

import glob
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from certify.errors import InvalidInputError

MODEL_SUFFIXES = (".onnx", ".pt", ".pth")
MANIFEST_SUFFIXES = (".toml", ".csv")
#: The fields a manifest row may set, with the Python type each must have in TOML.
MANIFEST_FIELDS = ("model", "path", "plant", "loop", "method", "solver", "input_range", "timeout")
_SKIP_DIRS = {".certify-cache", "__pycache__", "node_modules"}


@dataclass(frozen=True)
class BatchItem:
    """One model to check and the settings that differ from the command line's.

    Attributes
    ----------
    path : str
        The model file.
    settings : Mapping
        Per-model overrides (``plant``, ``loop``, ``method``, ``solver``, ``input_range``, ``timeout``).
    origin : str
        Where the model came from (``"command line"``, ``"manifest.toml row 3"``), for messages.
    """

    path: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    origin: str = "command line"


def parse_range(text: str) -> tuple[list[float], list[float]]:
    """Parse ``LOW:HIGH`` (one bound for every input) or ``L1,L2,..:H1,H2,..``.

    Raises :class:`ValueError` with a message for malformed text.

    >>> parse_range("-2:2")
    ([-2.0], [2.0])
    >>> parse_range("0,-1:1,1")
    ([0.0, -1.0], [1.0, 1.0])
    """
    try:
        lo_txt, hi_txt = text.split(":")
        low = [float(v) for v in lo_txt.split(",")]
        high = [float(v) for v in hi_txt.split(",")]
    except ValueError:
        raise ValueError(f"invalid input range {text!r}: expected LOW:HIGH or L1,L2,..:H1,H2,..") from None
    if not all(math.isfinite(v) for v in low + high):
        raise ValueError(f"invalid input range {text!r}: bounds must be finite numbers")
    if len(low) != len(high) or any(h < lo for lo, h in zip(low, high)):
        raise ValueError(f"invalid input range {text!r}: need as many LOWs as HIGHs and LOW <= HIGH")
    return low, high


def _is_model_file(name: str) -> bool:
    return name.lower().endswith(MODEL_SUFFIXES)


def _walk(folder: str) -> list[str]:
    found = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS)
        found += [os.path.join(root, f) for f in sorted(files) if _is_model_file(f)]
    return found


def is_manifest(path: str) -> bool:
    """Whether a command-line MODEL argument names a manifest (``.toml`` / ``.csv``).

    >>> is_manifest("models.toml"), is_manifest("m.onnx")
    (True, False)
    """
    return path.lower().endswith(MANIFEST_SUFFIXES)


def expand(specs: Sequence[str]) -> list[BatchItem]:
    """Files, folders, globs and manifests → one :class:`BatchItem` per model, duplicates removed.

    A path that does not exist (and is no glob) stays as it is: checking it gives an
    ``invalid_input`` report naming it, as for a single model.

    Raises
    ------
    InvalidInputError
        A manifest that cannot be read, or a folder / glob that holds no model.

    Examples
    --------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> for name in ("a.onnx", "sub/b.pt", "notes.txt"):
    ...     os.makedirs(os.path.dirname(os.path.join(d, name)), exist_ok=True)
    ...     _ = open(os.path.join(d, name), "wb").write(b"x")
    >>> [os.path.relpath(i.path, d) for i in expand([d])]
    ['a.onnx', 'sub/b.pt']
    >>> [os.path.relpath(i.path, d) for i in expand([os.path.join(d, "**", "*.pt")])]
    ['sub/b.pt']
    """
    items: list[BatchItem] = []
    for spec in specs:
        if os.path.isdir(spec):
            found = _walk(spec)
            if not found:
                raise InvalidInputError(f"folder {spec} holds no model (*.onnx, *.pt, *.pth).")
            items += [BatchItem(p) for p in found]
        elif is_manifest(spec) and os.path.lexists(spec):
            items += read_manifest(spec)
        elif glob.has_magic(spec) and not os.path.lexists(spec):
            found = sorted(p for p in glob.glob(spec, recursive=True) if _is_model_file(p) and not os.path.isdir(p))
            if not found:
                raise InvalidInputError(f"no model matches {spec!r}.")
            items += [BatchItem(p) for p in found]
        else:
            items.append(BatchItem(spec))
    seen: set[tuple[str, str]] = set()
    unique = []
    for item in items:
        key = (os.path.normpath(item.path), repr(sorted(item.settings.items())))
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique


# ------------------------------------------------------------------------------------------------
# manifests


def _row_error(where: str, field_name: str | None, message: str) -> InvalidInputError:
    return InvalidInputError(f"{where}" + (f", field {field_name!r}" if field_name else "") + f": {message}")


def plant_names() -> list[str]:
    """Names of the built-in plants, without building them (building one needs SciPy).

    >>> "boiler" in plant_names()
    True
    """
    from certify.loop import builtin  # noqa: F401  (registers the built-ins)
    from certify.loop.plants import _REGISTRY

    return sorted(_REGISTRY)


def _suggest(name: str, options: Iterable[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _range_value(value: Any, where: str) -> tuple[list[float], list[float]]:
    if isinstance(value, str):
        try:
            return parse_range(value)
        except ValueError as exc:
            raise _row_error(where, "input_range", str(exc)) from None
    if isinstance(value, list) and len(value) == 2:
        low, high = value
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
            text = f"{float(low)}:{float(high)}"
        elif (isinstance(low, list) and isinstance(high, list)
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in low + high)):
            text = ",".join(str(float(v)) for v in low) + ":" + ",".join(str(float(v)) for v in high)
        else:
            text = ""
        if text:
            try:
                return parse_range(text)
            except ValueError as exc:
                raise _row_error(where, "input_range", str(exc)) from None
    raise _row_error(where, "input_range", f"expected \"LOW:HIGH\", [low, high] or [[lows], [highs]], "
                     f"got {value!r}")


def validate_row(row: Mapping[str, Any], where: str, folder: str) -> BatchItem:
    """Check one manifest row (exact types) and turn it into a :class:`BatchItem`.

    Parameters
    ----------
    row : Mapping
        The row's fields (TOML values, or CSV cells converted by the reader).
    where : str
        ``"<manifest> row N"`` for messages.
    folder : str
        The manifest's folder: relative ``model`` / ``loop`` paths are resolved against it.

    Examples
    --------
    >>> validate_row({"model": "a.onnx", "method": "diss", "timeout": 5}, "m.toml row 1", "/x").settings
    {'method': 'diss', 'timeout': 5.0}
    >>> validate_row({"model": "a.onnx", "methd": "diss"}, "m.toml row 2", "/x")
    Traceback (most recent call last):
    ...
    certify.errors.InvalidInputError: m.toml row 2, field 'methd': unknown field (did you mean 'method'?); ...
    """
    from certify.request import METHODS

    if not isinstance(row, Mapping):
        raise _row_error(where, None, f"expected a table of fields, got {type(row).__name__}")
    for key in row:
        if key not in MANIFEST_FIELDS:
            raise _row_error(where, str(key), f"unknown field{_suggest(str(key), MANIFEST_FIELDS)}; the fields are "
                             + ", ".join(f for f in MANIFEST_FIELDS if f != "path") + ".")
    if "model" in row and "path" in row:
        raise _row_error(where, "path", "give 'model' or 'path' (the same thing), not both.")
    model = row.get("model", row.get("path"))
    if model is None:
        raise _row_error(where, "model", "missing: every row names its model file.")
    if not isinstance(model, str) or not model:
        raise _row_error(where, "model", f"expected a file path (string), got {model!r}")
    settings: dict[str, Any] = {}
    for key in ("plant", "loop", "method", "solver"):
        if key in row and row[key] is not None:
            value = row[key]
            if not isinstance(value, str) or not value:
                raise _row_error(where, key, f"expected a non-empty string, got {value!r}")
            settings[key] = value
    if "plant" in settings and "loop" in settings:
        raise _row_error(where, "loop", "give either a plant or a loop file, not both.")
    if "method" in settings and settings["method"] not in METHODS:
        raise _row_error(where, "method", f"unknown method {settings['method']!r}"
                         f"{_suggest(settings['method'], METHODS)}; choose one of {', '.join(METHODS)}.")
    if "plant" in settings:
        names = plant_names()
        if settings["plant"] not in names:
            raise _row_error(where, "plant", f"unknown built-in plant {settings['plant']!r}"
                             f"{_suggest(settings['plant'], names)}; `certify plants` lists them.")
    if "loop" in settings and not os.path.isabs(settings["loop"]):
        settings["loop"] = os.path.join(folder, settings["loop"])
    if row.get("input_range") is not None:
        settings["input_range"] = _range_value(row["input_range"], where)
    if row.get("timeout") is not None:
        t = row["timeout"]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not (math.isfinite(t) and t > 0):
            raise _row_error(where, "timeout", f"expected a positive number of seconds, got {t!r}")
        settings["timeout"] = float(t)
    path = model if os.path.isabs(model) else os.path.join(folder, model)
    return BatchItem(path, settings, where)


def read_manifest(path: str) -> list[BatchItem]:
    """Read a TOML (``[[model]]`` tables) or CSV manifest into :class:`BatchItem` s.

    Raises
    ------
    InvalidInputError
        Unreadable or malformed manifest; the message names the row and the field.

    Examples
    --------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> m = os.path.join(d, "models.csv")
    >>> _ = open(m, "w").write("model,method,input_range\\na.onnx,diss,-1:1\\n")
    >>> [(os.path.basename(i.path), i.settings["method"], i.origin[-5:]) for i in read_manifest(m)]
    [('a.onnx', 'diss', 'row 1')]
    """
    from certify.schemas.files import read_regular_file

    folder = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    raw = read_regular_file(path, "manifest", max_bytes=1 << 24)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"manifest {path} is not UTF-8 text (byte {exc.start}).") from None
    rows: list[tuple[str, Mapping[str, Any]]] = []
    if path.lower().endswith(".toml"):
        import sys

        if sys.version_info >= (3, 11):
            import tomllib
        else:  # Python 3.10 (the tomli dependency)
            import tomli as tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInputError(f"manifest {path} is not valid TOML: {exc}") from None
        unknown = [k for k in data if k != "model"]
        if unknown:
            raise InvalidInputError(f"manifest {path}: unknown top-level key {unknown[0]!r}"
                                    f"{_suggest(unknown[0], ['model'])}; write one [[model]] table per model.")
        models = data.get("model")
        if not isinstance(models, list) or not models:
            raise InvalidInputError(f"manifest {path} has no [[model]] table; write one per model.")
        rows = [(f"{name} row {n}", r) for n, r in enumerate(models, 1)]
    else:
        import csv
        import io

        reader = csv.DictReader(io.StringIO(text))
        header = [h.strip() for h in (reader.fieldnames or [])]
        if "model" not in header and "path" not in header:
            raise InvalidInputError(f"manifest {path}: the header row must name a 'model' column "
                                    f"(got {', '.join(header) or 'no header'}).")
        for n, cells in enumerate(reader, 1):
            if None in cells:
                raise InvalidInputError(f"{name} row {n}: more cells than header columns.")
            row: dict[str, Any] = {}
            for key, value in cells.items():
                key = key.strip()
                value = (value or "").strip()
                if value == "":
                    continue
                if key == "timeout":
                    try:
                        row[key] = float(value)
                    except ValueError:
                        raise _row_error(f"{name} row {n}", "timeout",
                                         f"expected a number of seconds, got {value!r}") from None
                else:
                    row[key] = value
            rows.append((f"{name} row {n}", row))
        if not rows:
            raise InvalidInputError(f"manifest {path} has a header but no rows.")
    return [validate_row(row, where, folder) for where, row in rows]
