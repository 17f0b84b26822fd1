"""Constant folding for the ONNX interpreter, and values that depend only on the input's shape.

Nodes whose inputs are all constant (the exporters' weight plumbing, ``Constant`` nodes) are folded
with numpy (``FOLD``) or, for operators not listed there, with ``onnx.reference`` one node at a time.

>>> import onnx.helper as oh, numpy as np
>>> fold(oh.make_node("Add", ["a", "b"], ["c"]), [np.ones(2), np.ones(2)], {})[0].tolist()
[2.0, 2.0]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from certify.importers.onnx_values import Const, ShapeDep, Zero

# ------------------------------------------------------------------------------------------------
# shape-only values and zeros


_ZERO_KEEPING = ("Tile", "Reshape", "Unsqueeze", "Squeeze", "Cast", "Identity", "Slice", "Gather", "Transpose",
                 "Split", "Mul", "Neg", "Expand", "Flatten")


def shape_like(node: Any, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
    """Nodes that only see constants, shapes and zeros: Expand/ConstantOfShape of 0 → Zero, else ShapeDep."""
    op = node.op_type
    if op == "Expand" and (isinstance(ins[0], Zero) or (isinstance(ins[0], Const) and not np.any(ins[0].value))):
        return [Zero()]
    if op == "ConstantOfShape":
        val = attrs.get("value")
        if val is None or not np.any(val):
            return [Zero()]
    if op in _ZERO_KEEPING and isinstance(ins[0], Zero):
        return [Zero() for _ in node.output]
    zero = lambda v: v is None or isinstance(v, Zero) or (isinstance(v, Const) and not np.any(v.value))
    if op in ("Concat", "Add", "Sub", "Max", "Min") and all(zero(v) for v in ins):
        return [Zero()]
    return [ShapeDep() for _ in node.output]



# ------------------------------------------------------------------------------------------------
# constant folding


def _np_slice(x, starts, ends, axes=None, steps=None):
    axes = range(len(starts)) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    idx = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        idx[int(a)] = slice(int(s), int(e), int(st))
    return x[tuple(idx)]


def _np_reshape(x, shape, allowzero=0):
    shape = [x.shape[i] if (d == 0 and not allowzero) else int(d) for i, d in enumerate(shape)]
    return x.reshape(shape)


FOLD: dict[str, Callable[..., np.ndarray]] = {
    "Identity": lambda a, **k: a,
    "Add": lambda a, b, **k: a + b,
    "Sub": lambda a, b, **k: a - b,
    "Mul": lambda a, b, **k: a * b,
    "Neg": lambda a, **k: -a,
    "MatMul": lambda a, b, **k: a @ b,
    "Tanh": lambda a, **k: np.tanh(a),
    "Sigmoid": lambda a, **k: 1.0 / (1.0 + np.exp(-a)),
    "Transpose": lambda a, perm=None, **k: np.transpose(a, perm),
    "Reshape": lambda a, s, allowzero=0, **k: _np_reshape(a, s, allowzero),
    "Squeeze": lambda a, axes=None, **k: np.squeeze(a, axis=None if axes is None else tuple(int(v) for v in axes)),
    "Unsqueeze": lambda a, axes, **k: np.expand_dims(a, tuple(sorted(int(v) % (a.ndim + len(axes)) for v in axes))),
    "Concat": lambda *a, axis, **k: np.concatenate(a, axis=axis),
    "Slice": lambda a, *r, **k: _np_slice(a, *r),
    "Gather": lambda a, i, axis=0, **k: np.take(a, i, axis=axis),
}


def fold(node: Any, values: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    """Evaluate a node whose inputs are all constant."""
    op = node.op_type
    if op in FOLD and len(node.output) == 1 and all(v is not None for v in values):
        if op in ("Squeeze", "Unsqueeze") and len(values) > 1:
            attrs = {**attrs, "axes": values[1]}
            values = values[:1]
        return [np.asarray(FOLD[op](*values, **attrs))]
    import onnx.helper as oh
    from onnx.reference import ReferenceEvaluator

    names = [f"i{k}" if v is not None else "" for k, v in enumerate(values)]
    outs = [f"o{k}" for k in range(len(node.output))]
    single = oh.make_node(op, names, outs, domain=node.domain or None)
    single.attribute.extend(node.attribute)
    feeds = {n: v for n, v in zip(names, values) if n}
    return list(ReferenceEvaluator(single).run(None, feeds))
