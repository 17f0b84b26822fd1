"""JSON schemas of loop files and plant files, and a validator whose messages name the field.

Types are exact: a name is a string (not the integer ``3``), a gain is a number (not the string
``"0.01"`` and not ``true``), a matrix is a list of rows of numbers.  NaN is refused everywhere and an
infinity everywhere except in the input limits ``u_min``/``u_max``.  Unknown keys are refused with a
did-you-mean suggestion.

>>> validate_plant({"A": [[0.5]], "B": [[1.0]], "C": [[1.0]], "Ts": "1"}, "plant file p.json")
Traceback (most recent call last):
...
certify.errors.LoopSpecError: plant file p.json: Ts must be a number, got the string '1'.
>>> validate_loop({"plant": {"builtin": "boiler"}, "network": {"inputs": ["y:E"]},
...                "controller": {"kp": 0.1, "kii": 0.1, "actuator": "u1_fuel", "reference": 1.0}}, "loop file")
Traceback (most recent call last):
...
certify.errors.LoopSpecError: loop file: unknown key 'kii' (did you mean 'ki'?) in [controller]; allowed: actuator, form, ki, kp, reference, type, u_max, u_min.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator, Mapping
from typing import Any

from certify.errors import LoopSpecError

__all__ = ["LOOP_SCHEMA", "PLANT_SCHEMA", "plain", "validate_loop", "validate_plant"]

_NUM = {"type": "number", "x-finite": True}
_LIMIT = {"type": "number", "x-finite": "no-nan"}  # ±inf allowed (no limit), NaN never
_VECTOR = {"x-vector": True}
_LIMITS = {"x-vector": "no-nan"}
_MATRIX = {"x-matrix": True}
_NAMES = {"type": "array", "items": {"type": "string"}}
_SIGNAL = {"type": ["string", "integer"], "x-expect": "a signal name (string) or a 0-based index (integer)"}

PLANT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "certify plant file",
    "type": "object",
    "required": ["A", "B", "C", "Ts"],
    "additionalProperties": False,
    "properties": {
        "A": _MATRIX, "B": _MATRIX, "C": _MATRIX, "D": _MATRIX,
        "Ts": {"type": "number", "x-finite": True, "exclusiveMinimum": 0},
        "continuous": {"type": "boolean"},
        "name": {"type": "string"},
        "description": {"type": "string"},
        "input_names": _NAMES, "output_names": _NAMES, "state_names": _NAMES,
        "x_op": _VECTOR, "u_op": _VECTOR, "y_op": _VECTOR,
        "u_min": _LIMITS, "u_max": _LIMITS,
    },
}

_SCALING = {
    "type": "object",
    "required": ["raw_low", "raw_high"],
    "additionalProperties": False,
    "properties": {"raw_low": _VECTOR, "raw_high": _VECTOR, "net_low": _NUM, "net_high": _NUM},
}

LOOP_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "certify loop file",
    "type": "object",
    "required": ["plant", "network", "controller"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        # the [plant] table is checked by validate_plant_table (builtin, file or an inline plant)
        "plant": {"type": "object"},
        "network": {
            "type": "object",
            "required": ["inputs"],
            "additionalProperties": False,
            "properties": {
                "inputs": {"type": "array", "minItems": 1,
                           "items": {"type": ["string", "number"], "x-finite": True,
                                     "x-expect": "'y:NAME', 'u:NAME', 'u_prev:NAME' or a number"}},
                "output": {"type": "integer", "minimum": 0},
                "estimates": _SIGNAL,
            },
        },
        "controller": {
            "type": "object",
            "required": ["kp", "ki", "actuator", "reference"],
            "additionalProperties": False,
            "properties": {
                "type": {"enum": ["pi"]},
                "form": {"enum": ["velocity", "positional"]},
                "kp": _NUM, "ki": _NUM, "reference": _NUM,
                "actuator": _SIGNAL,
                "u_min": _LIMIT, "u_max": _LIMIT,
            },
        },
        "scaling": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"input": _SCALING, "output": _SCALING},
        },
    },
}

_SECTIONS = ("plant", "network", "controller", "scaling")


# ------------------------------------------------------------------------------------------------


def plain(value: Any, depth: int = 0) -> Any:
    """``value`` with numpy arrays and scalars turned into Python lists and numbers (for validation).

    >>> import numpy as np
    >>> plain({"A": np.eye(1), "Ts": np.float32(2.0)})
    {'A': [[1.0]], 'Ts': 2.0}
    """
    if depth > 64:
        raise LoopSpecError("the description is nested too deeply.")
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        np = None  # type: ignore[assignment]
    if np is not None:
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, np.generic):
            return value.item()
    if isinstance(value, Mapping):
        return {k: plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, tuple):
        return [plain(v, depth + 1) for v in value]
    if isinstance(value, list):
        return [plain(v, depth + 1) for v in value]
    return value


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {text!r}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, list):
        return f"a list of {len(value)} item(s)"
    if isinstance(value, Mapping):
        return "a table"
    if value is None:
        return "null"
    return f"a value of type {type(value).__name__}"


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _bad_number(v: Any, mode: Any) -> str | None:
    if not _is_real(v):
        return f"is not a number: it is {_describe(v)}"
    if isinstance(v, float):
        if math.isnan(v):
            return "is NaN"
        if math.isinf(v) and mode is True:
            return "is infinite"
    return None


def _matrix(validator: Any, mode: Any, instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema import ValidationError

    if not isinstance(instance, list):
        yield ValidationError(f"is not a numeric array (a list of rows of numbers): it is {_describe(instance)}")
        return
    rows = instance
    if rows and not any(isinstance(r, list) for r in rows):  # one row written as a flat list
        rows = [rows]
        prefix: list[Any] = []
    else:
        prefix = [None]
    width = None
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            yield ValidationError(f"is not a numeric array: row {i} is {_describe(row)}, not a list of numbers")
            return
        if width is None:
            width = len(row)
        elif len(row) != width:
            yield ValidationError(f"is not a rectangular matrix: row 0 has {width} entries but row {i} has {len(row)}")
            return
        for j, v in enumerate(row):
            why = _bad_number(v, True)
            if why:
                where = f"[{i}][{j}]" if prefix else f"[{j}]"
                msg = "is not a numeric array" if why.startswith("is not") else "contains NaN or Inf"
                yield ValidationError(f"{msg}: entry {where} {why}")
                return


def _vector(validator: Any, mode: Any, instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema import ValidationError

    items = instance if isinstance(instance, list) else [instance]
    for j, v in enumerate(items):
        why = _bad_number(v, mode)
        if why:
            where = f"entry [{j}] " if isinstance(instance, list) else ""
            msg = "is not a list of numbers" if why.startswith("is not") else (
                "contains NaN" if why == "is NaN" else "contains NaN or Inf")
            yield ValidationError(f"{msg}: {where}{why}".replace(": is not a number: it is", ": it is")
                                  if not where else f"{msg}: {where}{why}")
            return


def _finite(validator: Any, mode: Any, instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema import ValidationError

    if isinstance(instance, float):
        if math.isnan(instance):
            yield ValidationError("must not be NaN")
        elif math.isinf(instance) and mode is True:
            yield ValidationError("must be finite, got an infinity")


_VALIDATOR: Any = None


def _validator_class() -> Any:
    global _VALIDATOR
    if _VALIDATOR is None:
        from jsonschema import Draft202012Validator, validators

        # exact types: 0.0 is not an integer and true is not a number (JSON Schema would accept 0.0)
        checker = Draft202012Validator.TYPE_CHECKER.redefine(
            "integer", lambda _, inst: isinstance(inst, int) and not isinstance(inst, bool))
        _VALIDATOR = validators.extend(
            Draft202012Validator, {"x-matrix": _matrix, "x-vector": _vector, "x-finite": _finite},
            type_checker=checker,
        )
    return _VALIDATOR


_TYPE_WORDS = {"number": "a number", "integer": "an integer", "string": "a string", "array": "a list",
               "object": "a table", "boolean": "true or false", "null": "null"}


def _field(path: list[Any], section_style: bool) -> str:
    parts = list(path)
    head = ""
    if section_style and parts and parts[0] in _SECTIONS:
        head = f"[{parts.pop(0)}]"
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return f"{head} {out}".strip()


def _message(err: Any, section_style: bool) -> str:
    path = list(err.absolute_path)
    field = _field(path, section_style)
    kind = err.validator
    schema = err.schema if isinstance(err.schema, Mapping) else {}
    inst = err.instance
    if kind == "additionalProperties" and isinstance(inst, Mapping):
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(str(k) for k in inst if k not in schema.get("properties", {}))
        where = f" in {field}" if field else ""
        parts = []
        for key in extra:
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            parts.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        noun = "section" if section_style and not path else "key"
        noun += "" if len(extra) == 1 else "s"
        return f"unknown {noun} {', '.join(parts)}{where}; allowed: {', '.join(allowed)}."
    if kind == "required":
        missing = str(err.message).split("'")[1] if "'" in str(err.message) else str(err.message)
        if section_style and not path:
            return f"missing [{missing}] table."
        return f"{field + ' ' if field else ''}needs '{missing}'."
    subject = field or "the file"
    if kind == "type":
        want = schema.get("x-expect")
        if not want:
            types = schema.get("type")
            types = [types] if isinstance(types, str) else list(types or [])
            want = " or ".join(_TYPE_WORDS.get(t, t) for t in types)
        return f"{subject} must be {want}, got {_describe(inst)}."
    if kind == "enum":
        opts = ", ".join(repr(v) for v in schema.get("enum", []))
        if isinstance(inst, str):
            return f"{subject} {inst!r} is unknown; use one of {opts}."
        return f"{subject} must be one of {opts}, got {_describe(inst)}."
    if kind == "minItems":
        return f"{subject} must not be empty."
    if kind in ("minimum", "exclusiveMinimum"):
        bound = schema.get(kind)
        rel = ">" if kind == "exclusiveMinimum" else "≥"
        return f"{subject} must be {rel} {bound}, got {_describe(inst)}."
    return f"{subject} {err.message}."


def _best(errors: list[Any]) -> Any:
    # report the shallowest problem first (a missing table before a bad entry in it), then in key order
    # (an unknown key explains a missing one: 'kii' for 'ki')
    return sorted(errors, key=lambda e: (len(e.absolute_path), e.validator != "additionalProperties",
                                         [str(p) for p in e.absolute_path]))[0]


def _validate(data: Any, schema: Mapping[str, Any], where: str, section_style: bool) -> None:
    errors = list(_validator_class()(schema).iter_errors(data))
    if errors:
        raise LoopSpecError(f"{where}: {_message(_best(errors), section_style)}")


def validate_plant(data: Any, where: str, *, table: str | None = None) -> None:
    """Check a plant description (a plant file, or the inline ``[plant]`` table of a loop file).

    Parameters
    ----------
    data : mapping
        Parsed file content (numpy arrays allowed; see :func:`plain`).
    where : str
        How messages name the file ("plant file p.json").
    table : str, optional
        Prefix fields with this table name ("[plant]") in messages.

    Raises
    ------
    LoopSpecError
        Naming the first offending field.

    Examples
    --------
    >>> validate_plant({"A": [[0.5]], "B": [[1.0]], "C": [[1.0, "x"]], "Ts": 1.0}, "plant file p.json")
    Traceback (most recent call last):
    ...
    certify.errors.LoopSpecError: plant file p.json: C is not a numeric array: entry [0][1] is not a number: it is the string 'x'.
    """
    errors = list(_validator_class()(PLANT_SCHEMA).iter_errors(plain(data)))
    if errors:
        msg = _message(_best(errors), False)
        if table:
            msg = f"{table} {msg}" if not msg.startswith(("unknown", "needs")) else (
                msg.replace("; allowed", f" in {table}; allowed", 1) if msg.startswith("unknown")
                else f"{table} {msg}")
        raise LoopSpecError(f"{where}: {msg}")


def validate_plant_table(data: Any, where: str) -> None:
    """Check the ``[plant]`` table of a loop file: ``builtin = NAME``, ``file = PATH`` or an inline plant."""
    if not isinstance(data, Mapping):
        raise LoopSpecError(f"{where}: [plant] must be a table, got {_describe(data)}.")
    for key in ("builtin", "file"):
        if key in data:
            if len(data) > 1:
                others = ", ".join(sorted(str(k) for k in data if k != key))
                raise LoopSpecError(f"{where}: [plant] with '{key}' takes no other keys (got {others}).")
            if not isinstance(data[key], str):
                what = "a built-in plant name" if key == "builtin" else "a path"
                raise LoopSpecError(f"{where}: [plant] {key} must be a string ({what}), got {_describe(data[key])}.")
            if not data[key]:
                raise LoopSpecError(f"{where}: [plant] {key} must not be empty.")
            return
    validate_plant(data, where, table="[plant]")


def validate_loop(data: Any, where: str) -> None:
    """Check a parsed loop file against :data:`LOOP_SCHEMA` (the ``[plant]`` table included).

    Raises
    ------
    LoopSpecError
        Naming the first offending section and field.

    Examples
    --------
    >>> body = {"plant": {"builtin": "boiler"}, "network": {"inputs": ["y:E"]},
    ...         "controller": {"kp": "0.01", "ki": 0.1, "actuator": "u1_fuel", "reference": 1.0}}
    >>> validate_loop(body, "loop file l.toml")
    Traceback (most recent call last):
    ...
    certify.errors.LoopSpecError: loop file l.toml: [controller] kp must be a number, got the string '0.01'.
    """
    data = plain(data)
    if not isinstance(data, Mapping):
        raise LoopSpecError(f"{where}: expected a table of sections ([plant], [network], [controller]).")
    _validate(data, LOOP_SCHEMA, where, True)
    validate_plant_table(data["plant"], where)
