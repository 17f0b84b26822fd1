"""Training-side helpers (torch).  Nothing in the core imports this package.

Importing ``certify.train`` does not import torch; the modules live in :mod:`certify.train.modules`
(``from certify.train.modules import GRUNet, to_canonical, export_onnx``), which does.
"""

from __future__ import annotations

__all__: list[str] = []
