"""The sidecar file ``<model file>.certify.json`` that accompanies a PyTorch state dict.

A state dict holds weights only; the sidecar says what they mean.  Format (docs/formats.md)::

    {"format": "certify.sidecar", "version": 1,
     "architecture": "gru" | "lstm" | "rnn" | "lpgrnn" | "ssnn",
     "n_in": 2, "hidden": 4, "num_layers": 1, "n_out": 1,       # informative
     "reset_after": true,          # gru only (false = Cho/Bonassi convention)
     "nonlinearity": "tanh",       # rnn: required for nn.RNN weights ("tanh" | "relu")
     "activation": "tanh",         # ssnn only
     "input_names": [...], "output_names": [...],
     "input_range": {"low": [...], "high": [...]},
     "input_scaling": {...}, "output_scaling": {...}}

Every key is optional except ``architecture`` for ``lpgrnn``/``ssnn`` and ``nonlinearity`` for
``nn.RNN`` weights.  The file is validated against :data:`SIDECAR_SCHEMA` (JSON Schema, exact types:
``"reset_after": "false"`` or ``0`` is refused, naming the field; unknown fields are refused with a
suggestion).  The same value schemas check the ``certify.*`` ONNX metadata entries.

>>> sidecar_path("model.pt")
'model.pt.certify.json'
"""

from __future__ import annotations

import difflib
import json
import os
from typing import Any

from certify.errors import ModelFileError
from certify.importers.limits import MAX_JSON_BYTES, RegularFile, ResourceLimitError
from certify.networks.kinds import SIDECAR_ARCHITECTURES

SIDECAR_SUFFIX = ".certify.json"
FORMAT = "certify.sidecar"
#: The state-dict layouts a sidecar may declare (the layer-kind registry's ``sidecar_architecture``).
ARCHITECTURES = SIDECAR_ARCHITECTURES

_NUMBERS = {"type": "array", "items": {"type": "number"}, "minItems": 1}
_NAMES = {"type": "array", "items": {"type": "string"}}
RANGE_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["low", "high"], "additionalProperties": False,
    "properties": {"low": _NUMBERS, "high": _NUMBERS},
}
SCALING_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["raw_low", "raw_high"], "additionalProperties": False,
    "properties": {"raw_low": _NUMBERS, "raw_high": _NUMBERS, "net_low": {"type": "number"},
                   "net_high": {"type": "number"}},
}
_COUNT = {"type": "integer", "minimum": 1}
#: JSON Schema of the sidecar (draft 2020-12).
SIDECAR_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "format": {"const": FORMAT},
        "version": {"const": 1},
        "architecture": {"enum": list(ARCHITECTURES)},
        "n_in": _COUNT, "hidden": _COUNT, "num_layers": _COUNT, "gate": _COUNT, "n_state": _COUNT,
        "neurons_state": _COUNT, "neurons_output": _COUNT,
        "n_out": {"anyOf": [_COUNT, {"type": "null"}]},
        "reset_after": {"type": "boolean"},
        "nonlinearity": {"enum": ["tanh", "relu"]},
        "activation": {"enum": ["tanh", "sigmoid", "relu"]},
        "linear": {"type": "boolean"},
        "input_names": _NAMES, "output_names": _NAMES,
        "input_range": RANGE_SCHEMA, "input_scaling": SCALING_SCHEMA, "output_scaling": SCALING_SCHEMA,
    },
}
#: Schemas of the ONNX ``metadata_props`` values certify reads.
METADATA_SCHEMAS: dict[str, dict[str, Any]] = {
    "certify.input_range": RANGE_SCHEMA,
    "certify.input_scaling": SCALING_SCHEMA,
    "certify.output_scaling": SCALING_SCHEMA,
    "certify.input_names": _NAMES,
    "certify.output_names": _NAMES,
}


def sidecar_path(model_path: str) -> str:
    """Path of the sidecar of ``model_path``."""
    return os.fspath(model_path) + SIDECAR_SUFFIX


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_text(text: str | bytes, where: str) -> Any:
    """Parse JSON text strictly: UTF-8 only, no NaN/Infinity, bounded size and nesting.

    >>> parse_json_text('{"a": [1, 2]}', "x")
    {'a': [1, 2]}
    >>> try:
    ...     parse_json_text("[" * 100000 + "]" * 100000, "metadata 'k'")
    ... except ModelFileError as e:
    ...     "nested" in str(e)
    True
    """
    if len(text) > MAX_JSON_BYTES:
        raise ResourceLimitError(f"{where} has {len(text):,} bytes; certify reads at most {MAX_JSON_BYTES:,}.")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ModelFileError(f"{where} is not UTF-8 text (byte {exc.start}); save it as UTF-8 JSON.") from None
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise ModelFileError(f"{where} is nested too deeply to be read; refused.") from None
    except (ValueError, TypeError) as exc:
        raise ModelFileError(f"{where} is not valid JSON ({exc}).") from None


def _field(path: Any) -> str:
    parts = [str(p) for p in path]
    return ".".join(parts) if parts else "(top level)"


def schema_errors(value: Any, schema: dict[str, Any], where: str) -> None:
    """Validate ``value`` against ``schema`` (JSON Schema 2020-12); raise one error naming each bad field.

    Unknown object keys are reported with the closest known key ("did you mean …?").

    >>> try:
    ...     schema_errors({"reset_after": "false"}, SIDECAR_SCHEMA, "sidecar")
    ... except ModelFileError as e:
    ...     print(e)
    sidecar: field 'reset_after': 'false' is not of type 'boolean'.
    """
    import jsonschema

    if isinstance(value, dict) and schema.get("additionalProperties") is False:
        known = list(schema.get("properties", {}))
        unknown = [k for k in value if k not in known]
        if unknown:
            hints = []
            for k in unknown:
                close = difflib.get_close_matches(str(k), known, n=1, cutoff=0.6)
                hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ModelFileError(
                f"{where}: unknown field(s) {', '.join(hints)}; known fields: {', '.join(known)}."
            )
    validator = jsonschema.Draft202012Validator(schema)
    try:
        errors = sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path])
    except RecursionError:
        raise ModelFileError(f"{where} is nested too deeply to be checked; refused.") from None
    if errors:
        msgs = []
        for e in errors[:5]:
            text = e.message if len(e.message) <= 200 else e.message[:200] + "…"
            msgs.append(f"field {_field(e.absolute_path)!r}: {text}")
        raise ModelFileError(f"{where}: " + "; ".join(msgs) + ".")


def check_metadata_value(key: str, value: Any, where: str) -> None:
    """Check a ``certify.*`` ONNX metadata value against its schema (other keys pass).

    >>> try:
    ...     check_metadata_value("certify.input_range", {"low": "-1", "high": [1]}, "metadata")
    ... except ModelFileError as e:
    ...     "field 'low'" in str(e)
    True
    """
    schema = METADATA_SCHEMAS.get(key)
    if schema is not None:
        schema_errors(value, schema, where)


def read_sidecar(model_path: str, files: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """Read and check the sidecar of ``model_path``; ``{}`` when there is none.

    ``files``, when given, receives ``(sha256, name)`` of the sidecar read (for the model's hash).

    >>> read_sidecar("/nonexistent/model.pt")
    {}
    """
    import hashlib

    p = sidecar_path(model_path)
    if not os.path.lexists(p):
        return {}
    with RegularFile(p, "sidecar", MAX_JSON_BYTES) as f:
        raw = f.read()
    if files is not None:
        files.append((hashlib.sha256(raw).hexdigest(), os.path.basename(p)))
    data = parse_json_text(raw, f"sidecar {p!r}")
    if not isinstance(data, dict):
        raise ModelFileError(f"sidecar {p!r} must hold a JSON object, not {type(data).__name__}.")
    if "format" in data and data["format"] != FORMAT:
        raise ModelFileError(f"sidecar {p!r} has format {data.get('format')!r}, expected {FORMAT!r}.")
    if "architecture" in data and data["architecture"] not in ARCHITECTURES:
        raise ModelFileError(
            f"sidecar {p!r}: architecture {data['architecture']!r} is not one of {', '.join(ARCHITECTURES)}."
        )
    schema_errors(data, SIDECAR_SCHEMA, f"sidecar {p!r}")
    return data


def write_sidecar(model_path: str, data: dict[str, Any]) -> str:
    """Write ``data`` (``format``/``version`` added) as the sidecar of ``model_path``; return its path.

    >>> import tempfile, os
    >>> p = write_sidecar(os.path.join(tempfile.mkdtemp(), "m.pt"), {"architecture": "gru"})
    >>> read_sidecar(p[: -len(SIDECAR_SUFFIX)])["architecture"]
    'gru'
    """
    p = sidecar_path(model_path)
    with open(p, "w", encoding="utf-8") as fh:
        json.dump({"format": FORMAT, "version": 1, **data}, fh, indent=2)
    return p
