"""Recurrent ONNX operators: fused ``GRU``/``LSTM``/``RNN`` nodes and unrolled Elman chains.

Fused nodes (ONNX operator spec; gate orders W/R/B: GRU ``[z|r|h]``, LSTM ``[i|o|f|c]``,
``B = [Wb, Rb]``) become canonical layers.  Any affine map between the previous layer's output (or
the network input) and the node's ``X`` is folded exactly into the input weights and input biases
(``W ← W M``, ``Wb ← Wb + W c``), which is exact because ``X`` enters every gate only through
``W X + Wb``.  ``linear_before_reset=1`` maps to ``reset_after=True`` with ``b_hn = Rb_h`` kept apart
(docs/theory.md §8).

Unrolled chains: the dynamo exporter writes ``nn.RNN`` as one ``MatMul/Add/Tanh`` block per time step.
:func:`recover_chain` checks that the steps concatenated along time share the same weights (to 1e-12
relative), start from a zero state, and returns them as one :class:`~certify.networks.ElmanLayer`.

>>> sorted(k for k in ("GRU", "LSTM", "RNN") if k in REGISTRY)
['GRU', 'LSTM', 'RNN']
"""

from __future__ import annotations

from typing import Any

import numpy as np

from certify.errors import ModelFileError, UnsupportedModelError, WeightError
from certify.importers.onnx_ops import REGISTRY, register
from certify.importers.onnx_values import Const, InitState, Poison, Sym, Zero
from certify.networks import ElmanLayer, GRULayer, LSTMLayer

_DEFAULT_ACTS = {"GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"], "RNN": ["Tanh"]}
_GATES = {"GRU": 3, "LSTM": 4, "RNN": 1}


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _check_attrs(node: Any, attrs: dict[str, Any]) -> str:
    """Reject attributes that change the semantics away from a causal canonical layer; return the RNN act."""
    op, name = node.op_type, node.name
    where = f"{op} node {name!r}"
    direction = _text(attrs.get("direction", "forward"))
    if direction == "bidirectional":
        raise UnsupportedModelError(
            f"{where} is bidirectional: its output at time k depends on future inputs, so it is not a causal "
            "state-space model and has no stability certificate in certify's sense. Export a unidirectional "
            "network (bidirectional=False)."
        )
    if direction != "forward":
        raise UnsupportedModelError(f"{where} runs in direction {direction!r}; only 'forward' is causal.")
    if attrs.get("clip") is not None:
        raise UnsupportedModelError(
            f"{where} sets clip={attrs['clip']}: clipped gate pre-activations are not part of the canonical "
            "layers. Export without clipping."
        )
    if attrs.get("activation_alpha") or attrs.get("activation_beta"):
        raise UnsupportedModelError(f"{where} sets activation_alpha/beta; only default activations are supported.")
    if attrs.get("input_forget", 0):
        raise UnsupportedModelError(f"{where} sets input_forget=1 (coupled input/forget gates); not supported.")
    acts = [_text(a) for a in attrs.get("activations", _DEFAULT_ACTS[op])]
    if op == "RNN":
        if len(acts) != 1 or acts[0] not in ("Tanh", "Relu"):
            raise UnsupportedModelError(f"{where} uses activations {acts}; only Tanh or Relu are supported.")
        return acts[0].lower()
    if acts != _DEFAULT_ACTS[op]:
        raise UnsupportedModelError(
            f"{where} uses activations {acts}; only the defaults {_DEFAULT_ACTS[op]} are supported."
        )
    return ""


def _check_state_shapes(node: Any, ins: list[Any], attrs: dict[str, Any], X: Sym, ctx: Any) -> None:
    """initial_h / initial_c must have shape [num_directions, batch, hidden_size] (layout 0) or
    [batch, num_directions, hidden_size] (layout 1), as the ONNX operator spec and onnxruntime require.

    An exporter that writes another shape (torch's dynamo exporter for ``nn.LSTM(proj_size=…)``) has
    written a different network than the weights suggest; such a file is refused.
    """
    H = attrs.get("hidden_size")
    layout = int(attrs.get("layout", 0))
    for k, label in ((5, "initial_h"), (6, "initial_c")):
        if k >= len(node.input) or not node.input[k] or ins[k] is None:
            continue
        v = ins[k]
        shape = tuple(v.value.shape) if isinstance(v, Const) else ctx.shapes.get(node.input[k])
        if shape is None:
            continue
        want = ["num_directions", "batch", "hidden_size"] if not layout else ["batch", "num_directions", "hidden_size"]
        bad = len(shape) != 3
        if not bad:
            d_ax, b_ax = (0, 1) if not layout else (1, 0)
            x_batch = X.sizes[1 - (1 if layout else 0)] if len(X.sizes) == 3 else None
            bad = (shape[d_ax] not in (None, 1) or (H is not None and shape[2] not in (None, int(H)))
                   or (x_batch is not None and shape[b_ax] not in (None, x_batch)))
        if bad:
            if node.op_type == "LSTM" and k == 6 and len(shape) == 3 and H is not None and shape[2] != H:
                hint = (" torch's dynamo exporter writes such a file for nn.LSTM(proj_size=…), whose projected "
                        "LSTM has no ONNX operator; certify does not support LSTM projections (proj_size). ")
            else:
                hint = " "
            raise ModelFileError(
                f"{node.op_type} node {node.name!r}: {label} has shape {list(shape)} but the operator needs "
                f"[{', '.join(want)}] = [1, batch, {H}] for hidden_size={H} (ONNX {node.op_type} spec); "
                f"onnxruntime refuses this file too.{hint}Re-export the model."
            )


def _const(v: Any, what: str) -> np.ndarray | None:
    if v is None or isinstance(v, Zero | InitState):
        return None
    if isinstance(v, Const):
        return np.asarray(v.value, dtype=np.float64)
    raise UnsupportedModelError(f"{what} depends on the input; it must be a constant.")


@register("GRU", "LSTM", "RNN")
def _op_recurrent(node, ins, attrs, ctx):
    op = node.op_type
    where = f"{op} node {node.name!r}"
    act = _check_attrs(node, attrs)
    ins = list(ins) + [None] * (8 - len(ins))
    X = ins[0]
    if not isinstance(X, Sym) or X.time is not None or len(X.labels) != 3 or X.labels[2] != "F":
        raise UnsupportedModelError(f"{where}: its input X is not a [time, batch, feature] sequence signal.")
    if ins[4] is not None and not isinstance(ins[4], Zero):
        from certify.importers.onnx_graph import PACKED_MESSAGE

        raise UnsupportedModelError(PACKED_MESSAGE.format(what=f"{where} uses sequence_lens"))
    _check_state_shapes(node, ins, attrs, X, ctx)
    for k in (5, 6):
        v = _const(ins[k], f"{where} initial state")
        if v is not None and np.any(v):
            raise UnsupportedModelError(
                f"{where} starts from a non-zero constant initial state; certify's canonical networks start "
                "from zero. Export with a zero (or omitted) initial state."
            )
    if op == "LSTM":
        P = _const(ins[7], f"{where} peepholes P")
        if P is not None and np.any(P):
            raise UnsupportedModelError(f"{where} has non-zero peephole weights P; peephole LSTMs are not supported.")
    layout = int(attrs.get("layout", 0))
    t_ax = 1 if layout else 0
    ctx.set_time_label(X.labels[t_ax], where)
    key = ctx.top_key()
    if set(X.terms) != {key}:
        raise UnsupportedModelError(
            f"{where}: its input is not the output of the layer below (or the network input); only plain "
            "stacks of recurrent layers are supported."
        )
    M, c = X.terms[key], X.c
    W, R = _const(ins[1], f"{where} W"), _const(ins[2], f"{where} R")
    if W is None or R is None:
        raise UnsupportedModelError(f"{where} has no W or R input.")
    G = _GATES[op]
    H = int(attrs.get("hidden_size", R.shape[-1]))
    if W.shape != (1, G * H, X.n_feat) or R.shape != (1, G * H, H):
        raise WeightError(
            f"{where}: W has shape {W.shape} and R has shape {R.shape}, but hidden_size={H} and an input of "
            f"{X.n_feat} features need W {(1, G * H, X.n_feat)} and R {(1, G * H, H)}."
        )
    B = _const(ins[3], f"{where} B")
    if B is None:
        B = np.zeros((1, 2 * G * H))
    if B.shape != (1, 2 * G * H):
        raise WeightError(f"{where}: B has shape {B.shape}, expected {(1, 2 * G * H)}.")
    for nm, arr in (("W", W), ("R", R), ("B", B)):
        if not np.all(np.isfinite(arr)):
            raise WeightError(f"{where}: {nm} contains NaN or Inf values; a non-finite network cannot be analysed.")
    Wx = W[0] @ M
    Wb = B[0, : G * H] + W[0] @ c
    Rb = B[0, G * H:]
    R = R[0]
    blk = lambda a, i: a[i * H:(i + 1) * H]
    if op == "GRU":
        layer: Any = GRULayer(
            W_z=blk(Wx, 0), W_r=blk(Wx, 1), W_n=blk(Wx, 2), U_z=blk(R, 0), U_r=blk(R, 1), U_n=blk(R, 2),
            b_z=blk(Wb, 0) + blk(Rb, 0), b_r=blk(Wb, 1) + blk(Rb, 1), b_in=blk(Wb, 2), b_hn=blk(Rb, 2),
            reset_after=bool(attrs.get("linear_before_reset", 0)),
        )
    elif op == "LSTM":  # ONNX [i|o|f|c] -> canonical i, f, g(=c), o
        idx = {"i": 0, "o": 1, "f": 2, "g": 3}
        kw = {}
        for g, i in idx.items():
            kw[f"W_{g}"] = blk(Wx, i)
            kw[f"U_{g}"] = blk(R, i)
            kw[f"b_{g}"] = blk(Wb, i) + blk(Rb, i)
        layer = LSTMLayer(**kw)
    else:
        layer = ElmanLayer(W=Wx, U=R, b=Wb + Rb, activation=act)
    ctx.layers.append(layer)
    new = ctx.top_key()
    eye = np.eye(H)
    b_lab, b_size = X.labels[1 - t_ax], X.sizes[1 - t_ax]
    T_lab, T_size = X.labels[t_ax], X.sizes[t_ax]
    if layout:
        Y = Sym((b_lab, T_lab, "1", "F"), (b_size, T_size, 1, H), {new: eye}, np.zeros(H))
        Yh = Sym((b_lab, "1", "F"), (b_size, 1, H), {new + ("last",): eye}, np.zeros(H), "last")
    else:
        Y = Sym((T_lab, "1", b_lab, "F"), (T_size, 1, b_size, H), {new: eye}, np.zeros(H))
        Yh = Sym(("1", b_lab, "F"), (1, b_size, H), {new + ("last",): eye}, np.zeros(H), "last")
    outs: list[Any] = [Y, Yh, Poison(f"{where}: the LSTM cell state output Y_c is not a supported model output.")]
    return outs[: len(node.output)]


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    scale = max(1.0, float(np.max(np.abs(a), initial=0.0)))
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= 1e-12 * scale))


def _bad_chain(where: str) -> UnsupportedModelError:
    return UnsupportedModelError(
        f"{where}: signals along a sequence axis are not the steps of one unrolled recurrence "
        "act(W s_t + U h_(t-1) + b) with shared weights and a zero initial state. Export recurrent layers as "
        "fused ONNX GRU/LSTM/RNN nodes (torch.onnx.export(..., dynamo=False)) instead."
    )


def _chain_layer(steps: list[int], ctx: Any, where: str) -> None:
    """Check that activation groups ``steps`` (in time order) are one Elman layer; append it to ``ctx``."""
    key = ctx.top_key()
    kinds = {ctx.acts[j][0] for j in steps}
    if len(kinds) != 1 or not kinds <= {"tanh", "relu"}:
        raise _bad_chain(where)
    W: np.ndarray | None = None
    U: np.ndarray | None = None
    b: np.ndarray | None = None
    for t, j in enumerate(steps):
        pre: Sym = ctx.acts[j][1]
        kt = key + (t,)
        extra = set(pre.terms) - {kt} - ({("act", steps[t - 1])} if t else set())
        if pre.time != t or extra or kt not in pre.terms:
            raise _bad_chain(where)
        Wt, bt = pre.terms[kt], pre.c
        Ut = pre.terms.get(("act", steps[t - 1])) if t else None
        if t == 0:
            W, b = Wt, bt
        else:
            assert W is not None and b is not None  # set at t == 0
            if not (_close(W, Wt) and _close(b, bt)):
                raise _bad_chain(where)
        if t == 1:
            U = Ut if Ut is not None else np.zeros((Wt.shape[0],) * 2)
        elif t > 1:
            assert U is not None  # set at t == 1
            if not _close(U, Ut if Ut is not None else np.zeros_like(U)):
                raise _bad_chain(where)
    assert W is not None and b is not None  # steps is not empty
    H = W.shape[0]
    ctx.layers.append(ElmanLayer(W=W, U=np.zeros((H, H)) if U is None else U, b=b, activation=kinds.pop()))
    ctx.unrolled_steps = len(steps)


def recover_chain(node: Any, ins: list[Any], ax: int, ctx: Any) -> Sym:
    """Turn ``Concat`` over time of unrolled ``act(W s_t + U h_{t-1} + b)`` steps into one Elman layer."""
    where = f"Concat node {node.name!r}"
    steps = []
    for t, v in enumerate(ins):
        if not isinstance(v, Sym) or v.time != t or v.labels[ax] != "1" or len(v.terms) != 1 or np.any(v.c):
            raise _bad_chain(where)
        (k, m), = v.terms.items()
        if k[0] != "act" or not np.array_equal(m, np.eye(m.shape[0])):
            raise _bad_chain(where)
        steps.append(k[1])
    _chain_layer(steps, ctx, where)
    H = ctx.layers[-1].n_out
    labels, sizes = list(ins[0].labels), list(ins[0].sizes)
    labels[ax], sizes[ax] = ctx.time_label, len(steps)
    return Sym(tuple(labels), tuple(sizes), {ctx.top_key(): np.eye(H)}, np.zeros(H))


def recover_last_state(out: Sym, ctx: Any) -> Sym:
    """An output computed from the last unrolled step only (``h_n`` of a dynamo-unrolled nn.RNN).

    Walks the recurrence back from the single activation group the output reads, recovers the layer
    and re-keys the output as that layer's last step.
    """
    acts = [k for k in out.terms if k[0] == "act"]
    if len(acts) != 1 or not isinstance(out.time, int):
        raise _bad_chain("graph output")
    steps = [acts[0][1]]
    while True:
        prev = [k for k in ctx.acts[steps[0]][1].terms if k[0] == "act"]
        if not prev:
            break
        if len(prev) != 1:
            raise _bad_chain("graph output")
        steps.insert(0, prev[0][1])
    if out.time != len(steps) - 1 or set(out.terms) - {acts[0], ("in", out.time)}:
        raise _bad_chain("graph output")
    _chain_layer(steps, ctx, "graph output")
    terms = {(ctx.top_key() + ("last",)): out.terms[acts[0]]}
    if ("in", out.time) in out.terms:
        terms[("in", "last")] = out.terms[("in", out.time)]
    return out.with_(terms=terms, time="last")


assert {"GRU", "LSTM", "RNN"} <= set(REGISTRY)
