"""certify: stability certificates for trained recurrent networks and the control loops they sit in.

The public API is small and loaded lazily (``import certify`` pulls in no numpy/cvxpy/onnx/torch):

>>> import certify
>>> certify.Verdict.CERTIFIED.exit_code
<ExitCode.CERTIFIED: 0>
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["ExitCode", "Report", "Verdict", "__version__", "check", "load_model"]

_LAZY = {
    "check": ("certify.api", "check"),
    "load_model": ("certify.api", "load_model"),
    "Report": ("certify.report.model", "Report"),
    "Verdict": ("certify.results", "Verdict"),
    "ExitCode": ("certify.results", "ExitCode"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'certify' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
