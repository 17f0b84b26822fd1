"""The sidecar file ``<model file>.certify.json`` that accompanies a PyTorch state dict.

A state dict holds weights only; the sidecar says what they mean.  Format (docs/formats.md)::

    {"format": "certify.sidecar", "version": 1,
     "architecture": "gru" | "lstm" | "rnn" | "lpgrnn" | "ssnn",
     "n_in": 2, "hidden": 4, "num_layers": 1, "n_out": 1,       # informative, checked when present
     "reset_after": true,          # gru only (false = Cho/Bonassi convention)
     "nonlinearity": "tanh",       # rnn only ("tanh" | "relu")
     "activation": "tanh",         # ssnn only
     "input_names": [...], "output_names": [...],
     "input_range": {"low": [...], "high": [...]},
     "input_scaling": {...}, "output_scaling": {...}}

Every key is optional except ``architecture`` for ``lpgrnn``/``ssnn``.

>>> sidecar_path("model.pt")
'model.pt.certify.json'
"""

from __future__ import annotations

import json
import os
from typing import Any

from certify.errors import ModelFileError

SIDECAR_SUFFIX = ".certify.json"
FORMAT = "certify.sidecar"
ARCHITECTURES = ("gru", "lstm", "rnn", "lpgrnn", "ssnn")


def sidecar_path(model_path: str) -> str:
    """Path of the sidecar of ``model_path``."""
    return os.fspath(model_path) + SIDECAR_SUFFIX


def read_sidecar(model_path: str) -> dict[str, Any]:
    """Read and check the sidecar of ``model_path``; ``{}`` when there is none.

    >>> read_sidecar("/nonexistent/model.pt")
    {}
    """
    p = sidecar_path(model_path)
    if not os.path.exists(p):
        return {}
    try:
        with open(p, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"sidecar {p!r} is not readable JSON ({exc}).") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"sidecar {p!r} must hold a JSON object.")
    if data.get("format", FORMAT) != FORMAT:
        raise ModelFileError(f"sidecar {p!r} has format {data.get('format')!r}, expected {FORMAT!r}.")
    arch = data.get("architecture")
    if arch is not None and arch not in ARCHITECTURES:
        raise ModelFileError(f"sidecar {p!r}: architecture {arch!r} is not one of {', '.join(ARCHITECTURES)}.")
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
