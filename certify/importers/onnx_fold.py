"""Constant folding for the ONNX interpreter, and values that depend only on the input's shape.

Nodes whose inputs are all constant (the exporters' weight plumbing, ``Constant`` nodes) are folded
with numpy (``FOLD``) or, for operators not listed there, with ``onnx.reference`` one node at a time.

>>> import onnx.helper as oh, numpy as np
>>> fold(oh.make_node("Add", ["a", "b"], ["c"]), [np.ones(2), np.ones(2)], {})[0].tolist()
[2.0, 2.0]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numpy as np

from certify.errors import UnsupportedModelError
from certify.importers.limits import Budget, numel
from certify.importers.onnx_values import Const, InitState, ShapeDep, ShapeVec, Zero

# ------------------------------------------------------------------------------------------------
# shape-only values and zeros


_ZERO_KEEPING = ("Tile", "Reshape", "Unsqueeze", "Squeeze", "Cast", "Identity", "Slice", "Gather", "Transpose",
                 "Split", "Mul", "Neg", "Expand", "Flatten", "MatMul")


def shape_like(node: Any, ins: list[Any], attrs: dict[str, Any],
               out_shape: tuple[int | None, ...] | None = None) -> list[Any]:
    """Nodes that only see constants, shapes and zeros: Expand/ConstantOfShape of 0 → Zero, else ShapeDep.

    Values computed only from an initial-state input stay :class:`InitState` (a zero that is noted).
    """
    op = node.op_type
    if any(isinstance(v, ShapeVec) for v in ins) and op in SHAPE_OPS:
        try:
            return [SHAPE_OPS[op](node, ins, attrs)]
        except (ValueError, TypeError, IndexError, KeyError, OverflowError):
            return [ShapeDep() for _ in node.output]
    zero_cls = InitState if any(isinstance(v, InitState) for v in ins) else Zero
    if op == "Expand" and (isinstance(ins[0], Zero) or (isinstance(ins[0], Const) and not np.any(ins[0].value))):
        return [zero_cls()]
    if op == "ConstantOfShape":
        val = attrs.get("value")
        if val is None or not np.any(val):
            return [Zero()]
    if op in _ZERO_KEEPING and isinstance(ins[0], Zero):
        return [zero_cls() for _ in node.output]
    if op in ("Mul", "MatMul") and any(isinstance(v, Zero) for v in ins):
        return [zero_cls()]
    zero = lambda v: v is None or isinstance(v, Zero) or (isinstance(v, Const) and not np.any(v.value))
    if op in ("Concat", "Add", "Sub", "Max", "Min") and all(zero(v) for v in ins):
        return [zero_cls()]
    if op in ("Add", "Sub") and len(ins) == 2 and any(isinstance(v, Zero) for v in ins) \
            and any(isinstance(v, Const) for v in ins):
        # 0 + c = c (an initial state of zero plus a bias): the constant, broadcast later against the signal
        c = next(v for v in ins if isinstance(v, Const))
        val = -c.value if (op == "Sub" and ins[1] is c) else c.value
        if out_shape is not None and len(out_shape) > val.ndim:  # keep the rank of the broadcast result
            val = val.reshape((1,) * (len(out_shape) - val.ndim) + val.shape)
        return [Const(val)]
    return [ShapeDep() for _ in node.output]


# ------------------------------------------------------------------------------------------------
# shape vectors (Shape(signal) → Slice/Gather/Concat/Mul … → a Reshape's target shape)


def _dims_of(v: Any) -> tuple[list[Any], bool]:
    if isinstance(v, ShapeVec):
        return list(v.dims), v.scalar
    arr = np.asarray(v.value)
    if arr.dtype.kind not in "iu" or arr.ndim > 1 or arr.size > 64:
        raise ValueError("not a small integer vector")
    return [int(x) for x in arr.reshape(-1)], arr.ndim == 0


def _sv_gather(node, ins, attrs):
    dims, _ = _dims_of(ins[0])
    idx = np.asarray(ins[1].value)
    if int(attrs.get("axis", 0)) != 0 or idx.ndim > 1:
        raise ValueError
    picked = tuple(dims[int(i)] for i in idx.reshape(-1))
    return ShapeVec(picked, scalar=idx.ndim == 0)


def _sv_slice(node, ins, attrs):
    dims, _ = _dims_of(ins[0])
    arg = lambda k: None if len(ins) <= k or ins[k] is None else [int(x) for x in np.asarray(ins[k].value).reshape(-1)]
    starts, ends, axes, steps = arg(1), arg(2), arg(3), arg(4)
    if starts is None:  # opset < 10: attributes
        starts, ends, axes = list(attrs["starts"]), list(attrs["ends"]), attrs.get("axes")
    if len(starts) != 1 or (axes is not None and axes[0] not in (0, -1)):
        raise ValueError
    step = 1 if steps is None else steps[0]
    return ShapeVec(tuple(dims[slice(starts[0], ends[0], step)]))


def _sv_concat(node, ins, attrs):
    out: list[Any] = []
    for v in ins:
        d, scalar = _dims_of(v)
        if scalar:
            raise ValueError
        out += d
    return ShapeVec(tuple(out))


def _sv_unsqueeze(node, ins, attrs):
    d, scalar = _dims_of(ins[0])
    if not scalar:
        raise ValueError
    return ShapeVec(tuple(d))


def _sv_squeeze(node, ins, attrs):
    d, scalar = _dims_of(ins[0])
    if scalar or len(d) != 1:
        raise ValueError
    return ShapeVec(tuple(d), scalar=True)


def _sv_reshape(node, ins, attrs):
    d, _ = _dims_of(ins[0])
    target = [int(x) for x in np.asarray(ins[1].value).reshape(-1)]
    if target == []:
        if len(d) != 1:
            raise ValueError
        return ShapeVec(tuple(d), scalar=True)
    if len(target) != 1 or target[0] not in (-1, len(d)):
        raise ValueError
    return ShapeVec(tuple(d))


def _sv_same(node, ins, attrs):
    d, scalar = _dims_of(ins[0])
    return ShapeVec(tuple(d), scalar=scalar)


def _sv_arith(node, ins, attrs):
    (a, sa), (b, sb) = _dims_of(ins[0]), _dims_of(ins[1])
    if len(a) == 1 and len(b) > 1:
        a = a * len(b)
    if len(b) == 1 and len(a) > 1:
        b = b * len(a)
    if len(a) != len(b):
        raise ValueError
    op = node.op_type
    out: list[Any] = []
    for x, y in zip(a, b):
        if isinstance(x, int) and isinstance(y, int):
            out.append({"Mul": x * y, "Add": x + y, "Sub": x - y, "Div": x // y if y else None}[op])
        elif op == "Mul" and (x == 1 or y == 1):
            out.append(y if x == 1 else x)
        elif op in ("Add", "Sub") and y == 0:
            out.append(x)
        elif op == "Add" and x == 0:
            out.append(y)
        elif op == "Div" and y == 1:
            out.append(x)
        else:
            out.append(None)
    return ShapeVec(tuple(out), scalar=sa and sb)


SHAPE_OPS: dict[str, Callable[..., Any]] = {
    "Gather": _sv_gather, "Slice": _sv_slice, "Concat": _sv_concat, "Unsqueeze": _sv_unsqueeze,
    "Squeeze": _sv_squeeze, "Reshape": _sv_reshape, "Cast": _sv_same, "Identity": _sv_same,
    "Mul": _sv_arith, "Add": _sv_arith, "Sub": _sv_arith, "Div": _sv_arith,
}


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


_CONTROL_FLOW = ("Loop", "Scan", "If", "SequenceMap")
#: ops whose output can be much larger than their inputs; folded only when the size is known beforehand
_GENERATORS = ("ConstantOfShape", "Expand", "Tile", "Range", "Pad", "Resize", "Upsample", "OneHot", "EyeLike",
               "Gather", "GatherElements", "GatherND", "MatMul", "Gemm", "Einsum", "Conv", "ConvTranspose",
               "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
               "Bernoulli", "Col2Im", "CenterCropPad", "Compress", "NonZero", "Unique", "TfIdfVectorizer",
               "StringSplit", "Trilu", "MaxUnpool", "SplitToSequence", "ConcatFromSequence", "SequenceConstruct",
               "SequenceInsert", "SequenceEmpty", "Mod", "BitShift")


def _broadcast_numel(shapes: list[tuple[int, ...]]) -> int:
    rank = max((len(sh) for sh in shapes), default=0)
    out = 1
    for ax in range(rank):
        out *= max((sh[len(sh) - rank + ax] if ax >= rank - len(sh) else 1) for sh in shapes)
    return out


def estimate_elements(node: Any, values: list[np.ndarray | None], attrs: dict[str, Any],
                      inferred: list[tuple[int | None, ...] | None] | None = None) -> int | None:
    """Elements a node's outputs will have, computed from its inputs *before* evaluating it.

    ``None`` when it cannot be bounded (the node is then not folded).

    >>> import onnx.helper as oh
    >>> estimate_elements(oh.make_node("ConstantOfShape", ["s"], ["o"]), [np.array([10**5, 10**5])], {})
    10000000000
    >>> estimate_elements(oh.make_node("Range", ["a", "b", "c"], ["o"]), [np.array(0), np.array(1e10), np.array(1)], {})
    10000000000
    """
    op = node.op_type
    vals = [v for v in values if v is not None]
    shapes = [tuple(np.shape(v)) for v in vals]
    total_in = sum(int(np.size(v)) for v in vals)
    try:
        if op == "ConstantOfShape":
            return numel(np.asarray(values[0]).reshape(-1).tolist()) if values else 1
        if op == "Expand":
            return _broadcast_numel([shapes[0], tuple(int(d) for d in np.asarray(values[1]).reshape(-1))])
        if op == "Tile":
            reps = [int(r) for r in np.asarray(values[1]).reshape(-1)]
            return numel(shapes[0]) * numel(reps)
        if op == "Range":
            start, limit, delta = (float(np.asarray(v).reshape(-1)[0]) for v in values[:3])
            if delta == 0 or not all(np.isfinite([start, limit, delta])):
                return None
            return max(int(np.ceil((limit - start) / delta)), 0)
        if op == "Pad":
            pads = [int(p) for p in np.asarray(values[1] if len(values) > 1 and values[1] is not None
                                               else attrs.get("pads", [])).reshape(-1)]
            r = len(shapes[0])
            return numel(shapes[0][k] + pads[k] + pads[k + r] for k in range(r))
        if op == "EyeLike":
            return numel(shapes[0])
        if op == "MatMul":
            a, b = shapes[0], shapes[1]
            if len(a) < 1 or len(b) < 1:
                return None
            m = a[-2] if len(a) > 1 else 1
            n = b[-1] if len(b) > 1 else 1
            return _broadcast_numel([a[:-2], b[:-2]]) * m * n
        if op == "Gemm":
            a, b = shapes[0], shapes[1]
            m = a[1] if attrs.get("transA", 0) else a[0]
            n = b[0] if attrs.get("transB", 0) else b[1]
            return m * n
        if op == "Gather":
            ax = int(attrs.get("axis", 0)) % max(len(shapes[0]), 1)
            return numel(shapes[0][:ax]) * numel(shapes[1]) * numel(shapes[0][ax + 1:])
    except (IndexError, TypeError, ValueError, OverflowError):
        return None
    if inferred and all(sh is not None and all(d is not None for d in sh) for sh in inferred):
        return sum(numel(cast("tuple[int, ...]", sh)) for sh in inferred)  # every dimension known (above)
    if op in _GENERATORS:
        return None
    if shapes and len(node.output) == 1:
        return max(_broadcast_numel(shapes), total_in)
    return total_in * max(len(node.output), 1)


def fold(node: Any, values: list[np.ndarray | None], attrs: dict[str, Any], budget: Budget | None = None,
         inferred: list[tuple[int | None, ...] | None] | None = None) -> list[np.ndarray]:
    """Evaluate a node whose inputs are all constant (within ``budget``, checked before evaluating)."""
    op = node.op_type
    if op in _CONTROL_FLOW or any(a.HasField("g") or len(a.graphs) for a in node.attribute):
        raise UnsupportedModelError(
            f"{op} node {node.name!r} is control flow (a subgraph); certify does not evaluate loops or branches "
            "in a model, even on constants. Export a graph without them (fixed-size recurrent ops)."
        )
    if budget is not None:
        n = estimate_elements(node, values, attrs, inferred)
        if n is None:
            raise UnsupportedModelError(
                f"{op} node {node.name!r} computes a constant whose size cannot be bounded before evaluating it."
            )
        budget.claim(n, f"{op} node {node.name!r}")
        budget.check("folding constants")
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
