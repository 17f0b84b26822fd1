"""Per-operator converters for the ONNX interpreter (one small function per operator).

A converter has the signature ``fn(node, ins, attrs, ctx) -> list[value]`` where ``ins`` are the
abstract values of :mod:`certify.importers.onnx_values` and ``ctx`` is the interpreter state
(:class:`certify.importers.onnx_graph.Context`).  ``REGISTRY``
maps op types to converters for nodes that touch a signal; the recurrent ops register themselves
from :mod:`certify.importers.onnx_rnn`; constant folding lives in :mod:`certify.importers.onnx_fold`.

>>> sorted(REGISTRY)[:3]
['Add', 'BatchNormalization', 'Cast']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from certify.errors import UnsupportedModelError, WeightError
from certify.importers.onnx_values import (
    Const,
    ShapeDep,
    ShapeVec,
    Stack,
    Sym,
    Zero,
    add_syms,
    combine_time,
    feature_vector,
)

Converter = Callable[[Any, list[Any], dict[str, Any], Any], list[Any]]
REGISTRY: dict[str, Converter] = {}


def register(*ops: str) -> Callable[[Converter], Converter]:
    def deco(fn: Converter) -> Converter:
        for op in ops:
            REGISTRY[op] = fn
        return fn

    return deco


def _const_arg(v: Any, what: str) -> np.ndarray:
    if isinstance(v, Const):
        return v.value
    if isinstance(v, ShapeVec) and (known := v.known()) is not None:
        return known
    raise UnsupportedModelError(f"{what} must be a constant, but it depends on the input.")


def _axis(ax: int, rank: int) -> int:
    return ax + rank if ax < 0 else ax


# ------------------------------------------------------------------------------------------------
# structural operators on signals


_FLOAT_TYPES = (1, 10, 11, 16)  # TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16


@register("Identity", "Cast", "Dropout")
def _op_identity(node, ins, attrs, ctx):
    if node.op_type == "Cast" and int(attrs.get("to", 1)) not in _FLOAT_TYPES:
        from onnx import TensorProto

        to = int(attrs.get("to", 1))
        name = TensorProto.DataType.Name(to) if to in TensorProto.DataType.values() else str(to)
        raise UnsupportedModelError(
            f"Cast node {node.name!r} converts the signal to {name} (attribute to={to}); only casts between "
            "float types are affine. A cast to an integer or bool type rounds or thresholds the signal."
        )
    out = [ins[0]]
    return out + [Const(np.ones(1, dtype=bool))] * (len(node.output) - 1)


@register("Shape", "Size")
def _op_shape(node, ins, attrs, ctx):
    s = ins[0]
    if node.op_type == "Size" or not isinstance(s, Sym):
        return [ShapeDep()]
    dims = tuple(s.n_feat if lab == "F" else (sz if sz is not None else lab) for lab, sz in zip(s.labels, s.sizes))
    dims = tuple(d if not (isinstance(d, str) and d == "1") else 1 for d in dims)
    r = len(dims)
    start, end = int(attrs.get("start", 0)), attrs.get("end")
    return [ShapeVec(dims[slice(start, r if end is None else int(end))])]


@register("Transpose")
def _op_transpose(node, ins, attrs, ctx):
    s: Sym = ins[0]
    perm = attrs.get("perm", list(range(len(s.labels)))[::-1])
    return [s.with_(labels=tuple(s.labels[p] for p in perm), sizes=tuple(s.sizes[p] for p in perm))]


def _axes_arg(ins: list[Any], attrs: dict[str, Any], what: str) -> list[int] | None:
    if len(ins) > 1 and ins[1] is not None:
        return [int(a) for a in np.atleast_1d(_const_arg(ins[1], what))]
    return attrs.get("axes")


@register("Squeeze")
def _op_squeeze(node, ins, attrs, ctx):
    s: Sym = ins[0]
    r = len(s.labels)
    axes = _axes_arg(ins, attrs, "Squeeze axes")
    axes = [i for i in range(r) if s.sizes[i] == 1 or s.labels[i] == "1"] if axes is None else [_axis(a, r) for a in axes]
    if s.faxis in axes:
        raise UnsupportedModelError(f"Squeeze {node.name!r} removes the feature axis of a signal.")
    keep = [i for i in range(r) if i not in axes]
    return [s.with_(labels=tuple(s.labels[i] for i in keep), sizes=tuple(s.sizes[i] for i in keep))]


@register("Unsqueeze")
def _op_unsqueeze(node, ins, attrs, ctx):
    s: Sym = ins[0]
    axes = _axes_arg(ins, attrs, "Unsqueeze axes") or []
    r = len(s.labels) + len(axes)
    labels, sizes = list(s.labels), list(s.sizes)
    for a in sorted(_axis(a, r) for a in axes):
        labels.insert(a, "1")
        sizes.insert(a, 1)
    return [s.with_(labels=tuple(labels), sizes=tuple(sizes))]


@register("Reshape", "Flatten")
def _op_reshape(node, ins, attrs, ctx):
    """Reshapes that only add or drop singleton axes (matched right to left, so the feature axis wins)."""
    s: Sym = ins[0]
    if node.op_type == "Flatten":
        raise UnsupportedModelError(f"Flatten {node.name!r} on a signal is not supported.")
    target = ins[1]
    if isinstance(target, ShapeVec) and target.known() is None:  # built from the input's shape at run time
        raw: list[Any] = list(target.dims)
    else:
        raw = [int(d) for d in np.atleast_1d(_const_arg(target, f"Reshape {node.name!r} target shape"))]
    if int(attrs.get("allowzero", 0)) and 0 in raw:
        raise UnsupportedModelError(f"Reshape {node.name!r} with allowzero=1 and a 0 in the target shape {raw}.")
    copy = lambda i: s.sizes[i] if s.sizes[i] is not None else s.labels[i]  # noqa: E731
    shape = [copy(i) if d == 0 and i < len(s.sizes) else d for i, d in enumerate(raw)]
    shape = [(-2 if d is None else d) for d in shape]  # -2: an unknown entry (matches nothing)
    essential = [i for i in range(len(s.labels)) if s.labels[i] == "F" or s.sizes[i] != 1]
    labels: list[str] = []
    sizes: list[int | None] = []
    for d in reversed(shape):
        if essential:
            i = essential[-1]
            if isinstance(d, str):  # the size of input axis d (unknown until run time)
                ok = d == s.labels[i]
            else:
                # a literal 1 is a singleton axis, never an input axis of unknown size
                ok = d == -1 or (d > 1 and s.sizes[i] is None and s.labels[i] != "F") or d == s.sizes[i]
            if ok:
                labels.insert(0, s.labels[i])
                sizes.insert(0, s.sizes[i])
                essential.pop()
                continue
        if d != 1:
            raise UnsupportedModelError(
                f"Reshape {node.name!r} to {raw} merges, splits or reorders axes of a signal with axes "
                f"{s.labels} and sizes {s.sizes}; only adding or removing singleton axes is supported."
            )
        labels.insert(0, "1")
        sizes.insert(0, 1)
    if essential:
        raise UnsupportedModelError(f"Reshape {node.name!r} to {shape} merges axes of a signal.")
    return [s.with_(labels=tuple(labels), sizes=tuple(sizes))]


def _time_index(s: Sym, ax: int, start: int, end: int, ctx: Any, what: str) -> Sym | None:
    """Selecting one step of a sequence along input axis ``ax`` (``None`` when it keeps the whole axis)."""
    n = s.sizes[ax]
    if n is not None:
        lo, hi, _ = slice(start, end).indices(n)
        if lo == 0 and hi == n:
            return None
        if hi - lo != 1:
            raise UnsupportedModelError(f"{what}: a slice of {hi - lo} steps out of {n} along a sequence axis.")
        t: int | str = "last" if lo == n - 1 and start < 0 else lo
    elif start == -1 and end >= 2**31 - 1:
        t = "last"
    elif start >= 0 and end == start + 1:
        t = start
    else:
        raise UnsupportedModelError(f"{what}: a slice along a sequence axis of unknown length.")
    if s.time is not None:
        raise UnsupportedModelError(f"{what}: selects a time step of a signal that is already one step.")
    if ctx.mode == "cell":
        raise UnsupportedModelError(f"{what}: slices the batch axis of a one-step cell graph.")
    ctx.set_time_label(s.labels[ax], what)
    terms = {(k + (t,) if k[0] in ("in", "layer") else k): v for k, v in s.terms.items()}
    labels = list(s.labels)
    labels[ax] = "1"
    sizes = list(s.sizes)
    sizes[ax] = 1
    return s.with_(labels=tuple(labels), sizes=tuple(sizes), time=t, terms=terms)


@register("Slice")
def _op_slice(node, ins, attrs, ctx):
    s: Sym = ins[0]
    starts = [int(v) for v in _const_arg(ins[1], "Slice starts")]
    ends = [int(v) for v in _const_arg(ins[2], "Slice ends")]
    if isinstance(s, Stack):
        ax0 = int(_const_arg(ins[3], "Slice axes")[0]) if len(ins) > 3 and ins[3] is not None else 0
        lo, hi, _ = slice(starts[0], ends[0]).indices(len(s.items))
        if len(starts) != 1 or hi - lo != 1:
            raise UnsupportedModelError(f"Slice {node.name!r}: only one item of a stack of signals can be selected.")
        return [_stack_item(node, s, _axis(ax0, len(s.items[0].labels)), lo, True)]
    axes = [int(v) for v in _const_arg(ins[3], "Slice axes")] if len(ins) > 3 and ins[3] is not None else list(
        range(len(starts)))
    steps = [int(v) for v in _const_arg(ins[4], "Slice steps")] if len(ins) > 4 and ins[4] is not None else [1] * len(
        starts)
    r = len(s.labels)
    for st, en, ax, sp in zip(starts, ends, axes, steps):
        ax = _axis(ax, r)
        if s.labels[ax] == "F":
            s = s.rows(np.arange(s.n_feat)[slice(st, en, sp)])
        elif sp != 1:
            raise UnsupportedModelError(f"Slice {node.name!r} with step {sp} along a sequence axis.")
        elif s.labels[ax] != "1":
            s = _time_index(s, ax, st, en, ctx, f"Slice {node.name!r}") or s
    return [s]


def _stack_item(node: Any, st: Stack, ax: int, idx: int, keep: bool) -> Sym:
    if ax != st.ax or not -len(st.items) <= idx < len(st.items):
        raise UnsupportedModelError(f"{node.op_type} {node.name!r}: only one item of a stack of signals can be selected.")
    item = st.items[idx]
    if keep:
        return item
    labels = tuple(lab for i, lab in enumerate(item.labels) if i != ax)
    return item.with_(labels=labels, sizes=tuple(sz for i, sz in enumerate(item.sizes) if i != ax))


@register("Gather")
def _op_gather(node, ins, attrs, ctx):
    s: Sym = ins[0]
    idx = _const_arg(ins[1], f"Gather {node.name!r} indices").astype(np.int64)
    if isinstance(s, Stack):
        if idx.ndim != 0:
            raise UnsupportedModelError(f"Gather {node.name!r}: only one item of a stack of signals can be selected.")
        return [_stack_item(node, s, _axis(int(attrs.get("axis", 0)), len(s.items[0].labels)), int(idx), False)]
    ax = _axis(int(attrs.get("axis", 0)), len(s.labels))
    if s.labels[ax] == "F":
        if idx.ndim != 1:
            raise UnsupportedModelError(f"Gather {node.name!r}: feature selection needs a 1-D index.")
        return [s.rows(idx % s.n_feat)]
    if idx.ndim != 0:
        raise UnsupportedModelError(f"Gather {node.name!r}: only a single time step can be gathered.")
    i = int(idx)
    out = _time_index(s, ax, i, i + 1 if i != -1 else 2**63 - 1, ctx, f"Gather {node.name!r}") or s
    keep = [k for k in range(len(out.labels)) if k != ax]
    return [out.with_(labels=tuple(out.labels[k] for k in keep), sizes=tuple(out.sizes[k] for k in keep))]


@register("Split")
def _op_split(node, ins, attrs, ctx):
    s: Sym = ins[0]
    ax = _axis(int(attrs.get("axis", 0)), len(s.labels))
    if s.labels[ax] != "F":
        raise UnsupportedModelError(f"Split {node.name!r} along a non-feature axis of a signal.")
    if len(ins) > 1 and ins[1] is not None:
        parts = [int(v) for v in _const_arg(ins[1], "Split sizes")]
    elif "split" in attrs:
        parts = list(attrs["split"])
    else:
        k = len(node.output)
        parts = [-(-s.n_feat // k)] * (k - 1)
        parts.append(s.n_feat - sum(parts))
    bounds = np.cumsum([0] + parts)
    return [s.rows(np.arange(bounds[i], bounds[i + 1])) for i in range(len(parts))]


@register("Concat")
def _op_concat(node, ins, attrs, ctx):
    syms = [v for v in ins if isinstance(v, Sym)]
    ref = syms[0]
    time = ref.time
    for v in syms[1:]:
        time = combine_time(time, v.time, f"Concat {node.name!r}")
    ax = _axis(int(attrs["axis"]), len(ref.labels))
    if ref.labels[ax] != "F":
        from certify.importers.onnx_rnn import recover_chain

        is_chain = [v.time if isinstance(v, Sym) else None for v in ins] == list(range(len(ins)))
        if not is_chain and all(isinstance(v, Sym) and v.labels[ax] == "1" for v in ins):
            return [Stack(tuple(ins), ax)]
        return [recover_chain(node, ins, ax, ctx)]
    terms: dict[Any, list[np.ndarray]] = {}
    blocks = []
    for v in ins:
        if isinstance(v, Sym):
            blocks.append(v)
        else:
            arr = np.moveaxis(np.asarray(_const_arg(v, "Concat input"), dtype=np.float64), ax, -1)
            flat = arr.reshape(-1, arr.shape[-1])
            if not np.all(flat == flat[0]):
                raise UnsupportedModelError(f"Concat {node.name!r}: a constant block varies along a non-feature axis.")
            vec = flat[0]
            blocks.append(Sym(ref.labels, ref.sizes, {}, vec, ref.time))
    keys = {k for b in blocks for k in b.terms}
    for k in keys:
        n = next(b.terms[k].shape[1] for b in blocks if k in b.terms)
        terms[k] = [b.terms.get(k, np.zeros((b.n_feat, n))) for b in blocks]
    c = np.concatenate([b.c for b in blocks])
    sizes = list(ref.sizes)
    sizes[ax] = c.shape[0]
    return [Sym(ref.labels, tuple(sizes), {k: np.vstack(v) for k, v in terms.items()}, c, time)]


# ------------------------------------------------------------------------------------------------
# affine operators


def _hadamard(node: Any, ctx: Any = None) -> UnsupportedModelError:
    if ctx is not None and ctx.mode == "sequence":
        return UnsupportedModelError(
            f"{node.op_type} node {node.name!r} multiplies two signals: the graph is an unrolled gated cell "
            "(e.g. a Python loop over nn.GRUCell or nn.LSTMCell, one Mul per gate and time step). certify reads "
            "gated recurrences only as fused ONNX GRU/LSTM operators: export nn.GRU / nn.LSTM instead (copy the "
            "cell's weight_ih/weight_hh/bias_ih/bias_hh into weight_ih_l0 … of an nn.GRU with one layer), or "
            "save the state dict of that nn.GRU/nn.LSTM."
        )
    return UnsupportedModelError(
        f"{node.op_type} node {node.name!r} multiplies two signals (a Hadamard product, as in GRU/LSTM gates). "
        "Gated cells have no exact SNOF representation, so a cell graph with such a product cannot be "
        "compiled; export the fused ONNX GRU/LSTM operator instead (torch.onnx.export of nn.GRU/nn.LSTM) "
        "and certify will use the closed-form δISS tests for it."
    )


def _lift(s: Any, k: Any) -> Any:
    """Prepend singleton axes to signal ``s`` when constant ``k`` has a higher rank (numpy broadcasting)."""
    if isinstance(s, Sym) and isinstance(k, Const) and k.value.ndim > len(s.labels):
        extra = k.value.ndim - len(s.labels)
        return s.with_(labels=("1",) * extra + s.labels, sizes=(1,) * extra + s.sizes)
    return s


@register("Add", "Sub")
def _op_add(node, ins, attrs, ctx):
    a, b = _lift(ins[0], ins[1]), _lift(ins[1], ins[0])
    sign = -1.0 if node.op_type == "Sub" else 1.0
    what = f"{node.op_type} {node.name!r}"
    if isinstance(a, Sym) and isinstance(b, Sym):
        return [add_syms(a, b, sign, what)]
    if isinstance(b, Zero):
        return [a]
    if isinstance(a, Zero):
        return [b.linear(sign * np.eye(b.n_feat))]
    if isinstance(a, Sym):
        return [a.with_(c=a.c + sign * feature_vector(a, _const_arg(b, what), what))]
    return [b.linear(sign * np.eye(b.n_feat), feature_vector(b, _const_arg(a, what), what))]


@register("Mul", "Div")
def _op_mul(node, ins, attrs, ctx):
    a, b = _lift(ins[0], ins[1]), _lift(ins[1], ins[0])
    what = f"{node.op_type} {node.name!r}"
    if isinstance(a, Sym) and isinstance(b, Sym):
        raise _hadamard(node, ctx)
    if node.op_type == "Div":
        if not isinstance(a, Sym):
            raise UnsupportedModelError(f"{what} divides by a signal; only division by constants is affine.")
        return [a.linear(np.diag(1.0 / feature_vector(a, _const_arg(b, what), what)))]
    s, k = (a, b) if isinstance(a, Sym) else (b, a)
    return [s.linear(np.diag(feature_vector(s, _const_arg(k, what), what)))]


@register("Neg")
def _op_neg(node, ins, attrs, ctx):
    return [ins[0].linear(-np.eye(ins[0].n_feat))]


def _weight_matrix(W: np.ndarray, what: str) -> np.ndarray:
    W = np.asarray(W, dtype=np.float64)
    while W.ndim > 2 and W.shape[0] == 1:
        W = W[0]
    if W.ndim != 2:
        raise UnsupportedModelError(f"{what}: weight of shape {W.shape} is not a matrix.")
    return W


@register("MatMul")
def _op_matmul(node, ins, attrs, ctx):
    a, b = ins
    what = f"MatMul {node.name!r}"
    if isinstance(a, Sym) and isinstance(b, Sym):
        raise _hadamard(node, ctx)
    if not isinstance(a, Sym):
        raise UnsupportedModelError(f"{what} multiplies a constant by a signal from the left; use x @ W.")
    if a.faxis != len(a.labels) - 1:
        raise UnsupportedModelError(f"{what}: the signal's feature axis is not the last axis.")
    W = _weight_matrix(_const_arg(b, what), what)
    if W.shape[0] != a.n_feat:
        raise WeightError(f"{what}: signal with {a.n_feat} features times a weight of shape {W.shape}.")
    return [a.linear(W.T)]


@register("Gemm")
def _op_gemm(node, ins, attrs, ctx):
    a, b = ins[0], ins[1]
    what = f"Gemm {node.name!r}"
    if not isinstance(a, Sym) or attrs.get("transA", 0):
        raise UnsupportedModelError(f"{what}: only signal @ constant (transA=0) is supported.")
    W = _weight_matrix(_const_arg(b, what), what)
    W = W.T if attrs.get("transB", 0) else W
    if W.shape[0] != a.n_feat:
        raise WeightError(f"{what}: signal with {a.n_feat} features times a weight of shape {W.shape}.")
    out = a.linear(float(attrs.get("alpha", 1.0)) * W.T)
    if len(ins) > 2 and ins[2] is not None:
        out = out.with_(c=out.c + float(attrs.get("beta", 1.0)) * feature_vector(out, _const_arg(ins[2], what), what))
    return [out]


@register("Tanh", "Sigmoid", "Relu")
def _op_activation(node, ins, attrs, ctx):
    return [ctx.activation(node, ins[0], node.op_type.lower())]


@register("BatchNormalization")
def _op_batchnorm(node, ins, attrs, ctx):
    """Inference-mode batch normalisation (torch ``BatchNorm1d`` in eval mode) is the exact affine map
    ``y = scale (x - mean) / sqrt(var + eps) + B`` per channel (ONNX BatchNormalization spec); it is
    folded into the next layer's input weights like any other affine plumbing."""
    s: Sym = ins[0]
    what = f"BatchNormalization {node.name!r}"
    if int(attrs.get("training_mode", 0)) or len([o for o in node.output if o]) > 1:
        raise UnsupportedModelError(f"{what} runs in training mode (batch statistics); export the model in eval mode.")
    if len(s.labels) < 2 or s.labels[1] != "F":
        raise UnsupportedModelError(
            f"{what} normalises axis 1 of a signal whose axis 1 is not the feature axis (axes {s.labels})."
        )
    scale, bias, mean, var = (np.asarray(_const_arg(v, f"{what} statistics"), dtype=np.float64).reshape(-1)
                              for v in ins[1:5])
    n = s.n_feat
    if any(a.shape != (n,) for a in (scale, bias, mean, var)):
        raise WeightError(f"{what}: scale/B/mean/var must have {n} entries (the signal's features).")
    denom = var + float(attrs.get("epsilon", 1e-5))
    if not np.all(np.isfinite(denom)) or np.any(denom <= 0):
        raise WeightError(f"{what}: variance + epsilon is not positive and finite.")
    g = scale / np.sqrt(denom)
    if not np.all(np.isfinite(g)) or not np.all(np.isfinite(bias - mean * g)):
        raise WeightError(f"{what}: non-finite normalisation constants.")
    return [s.linear(np.diag(g), bias - mean * g)]
