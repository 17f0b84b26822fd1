"""Interpret an ONNX graph abstractly and assemble the canonical :class:`~certify.networks.Network`.

Two kinds of graphs are read:

* **sequence graphs** (one input ``u`` of shape [batch, time, features] or [time, batch, features]):
  fused ``GRU``/``LSTM``/``RNN`` nodes (or dynamo-unrolled Elman steps), stacked, followed by an
  affine read-out (``Gemm`` or ``MatMul`` + ``Add``; a direct term from ``u`` is kept as the head's ``D``);
* **one-step cell graphs** (inputs named ``u`` and ``x``, outputs ``x_next`` and ``y``, optional leading
  batch axis): compiled by symbolic affine propagation into one :class:`~certify.networks.AffineCell`,
  each activation element becoming one channel, in evaluation order (``D_qp`` strictly lower triangular).

Every node is handled by a converter of :mod:`certify.importers.onnx_ops`; nodes that only read
constants are folded; every node that touches the signal and has no converter is collected, and one
:class:`~certify.errors.UnsupportedModelError` lists them all.

>>> Context("cell").top_key()
('in',)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from certify.deadline import DeadlineExceeded
from certify.errors import CertifyError, ModelFileError, UnsupportedModelError, WeightError
from certify.importers import onnx_rnn  # noqa: F401  (registers the recurrent converters)
from certify.importers.limits import Budget, ResourceLimitError
from certify.importers.onnx_fold import fold, shape_like
from certify.importers.onnx_ops import REGISTRY
from certify.importers.onnx_values import Const, InitState, Poison, ShapeDep, Stack, Sym, Zero
from certify.networks import AffineCell, LinearHead, Network

CELL_INPUTS = ("u", "x")
_FLOAT_ELEM_TYPES = (1, 10, 11, 16)  # FLOAT, FLOAT16, DOUBLE, BFLOAT16
PACKED_MESSAGE = (
    "{what}: the model runs packed / variable-length sequences (torch.nn.utils.rnn.pack_padded_sequence, ONNX "
    "sequence_lens). certify analyses the recurrence itself, which does not depend on sequence lengths: export "
    "the same network without packing (call the nn.GRU/nn.LSTM/nn.RNN on the padded [batch, time, features] "
    "tensor), or save its state dict."
)
CELL_OUTPUTS = ("x_next", "y")
_RECURRENT = ("GRU", "LSTM", "RNN")


class Context:
    """Interpreter state: recovered layers, activation channel groups, the time axis label."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.layers: list[Any] = []
        self.acts: list[tuple[str, Sym]] = []
        self.time_label: str | None = None
        self.unrolled_steps: int | None = None
        self.shapes: dict[str, tuple[int | None, ...]] = {}
        self.state_mixed: list[str] = []

    def top_key(self) -> tuple[Any, ...]:
        return ("in",) if not self.layers else ("layer", len(self.layers) - 1)

    def set_time_label(self, label: str, what: str) -> None:
        if label in ("F", "1"):
            raise UnsupportedModelError(f"{what}: reads the feature or a singleton axis as time.")
        if self.time_label is None:
            self.time_label = label
        elif self.time_label != label:
            raise UnsupportedModelError(f"{what}: uses a different input axis as time than earlier nodes.")

    def activation(self, node: Any, s: Sym, kind: str) -> Sym:
        if self.mode == "sequence" and s.time is None:
            raise UnsupportedModelError(
                f"{node.op_type} node {node.name!r} applies a nonlinearity to a whole sequence outside a "
                "recurrent node (e.g. an output activation); certify's heads are affine."
            )
        self.acts.append((kind, s))
        return Sym.source(("act", len(self.acts) - 1), s.n_feat, s.labels, s.sizes, s.time)


def _attrs(node: Any) -> dict[str, Any]:
    from certify.importers.onnx_proto import attribute_value, to_array

    out = {}
    for a in node.attribute:
        v = attribute_value(a)
        if hasattr(v, "data_type"):
            v = to_array(v)
        out[a.name] = v
    return out


def _as_const(arr: np.ndarray) -> Const:
    arr = np.asarray(arr)
    return Const(arr.astype(np.float64) if arr.dtype.kind == "f" else arr)


def _dims(value_info: Any) -> tuple[int | None, ...]:
    t = value_info.type.tensor_type
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)


def graph_mode(graph: Any, initializers: set[str]) -> str:
    """``"cell"`` for one-step graphs with inputs u and x, else ``"sequence"``."""
    names = [i.name for i in graph.input if i.name not in initializers]
    has_rnn = any(n.op_type in _RECURRENT for n in graph.node)
    return "cell" if sorted(names) == sorted(CELL_INPUTS) and not has_rnn else "sequence"


def _input_sym(vi: Any, key: tuple[Any, ...], labels: tuple[str, ...], budget: Budget) -> Sym:
    dims = _dims(vi)
    if not dims or dims[-1] is None:
        raise UnsupportedModelError(f"graph input {vi.name!r} has no static feature size (last axis).")
    if dims[-1] <= 0:
        raise ModelFileError(f"graph input {vi.name!r} declares {dims[-1]} features; the file is malformed.")
    budget.claim(dims[-1] ** 2, f"graph input {vi.name!r} with {dims[-1]:,} features")
    return Sym.source(key, dims[-1], labels, dims)


def refuse_foreign_domains(graph: Any) -> None:
    """One error listing every node of a non-standard operator domain (nothing certify can interpret)."""
    foreign = [(n.op_type, n.name, n.domain) for n in graph.node if n.domain not in ("", "ai.onnx")]
    if foreign:
        listing = "; ".join(f"{op} (node {name!r}, domain {dom!r})" for op, name, dom in foreign)
        raise UnsupportedModelError(
            f"the model uses {len(foreign)} node(s) of custom operator domains, which certify cannot interpret: "
            f"{listing}. Export with standard ONNX operators only."
        )


def interpret(graph: Any, initializers: dict[str, np.ndarray], mode: str,
              shapes: dict[str, tuple[int | None, ...]] | None = None,
              budget: Budget | None = None) -> tuple[dict[str, Any], Context]:
    """Run every node of ``graph`` on abstract values; return all values and the context.

    ``shapes`` (from strict shape inference) lets constant folding bound sizes and lets recurrent
    nodes check their initial-state shapes; ``budget`` bounds elements and time.
    """
    budget = budget or Budget()
    shapes = shapes or {}
    ctx = Context(mode)
    ctx.shapes = shapes
    values: dict[str, Any] = {k: _as_const(v) for k, v in initializers.items()}
    inputs = [i for i in graph.input if i.name not in initializers]
    if not inputs:
        raise ModelFileError("the ONNX graph has no (non-initializer) input; it is not a network of a signal.")
    if mode == "cell":
        for vi in inputs:
            r = len(_dims(vi))
            labels = ("B",) * (r - 1) + ("F",)
            values[vi.name] = _input_sym(vi, (vi.name,), labels, budget)
    else:
        r = len(_dims(inputs[0]))
        values[inputs[0].name] = _input_sym(inputs[0], ("in",), tuple(f"a{i}" for i in range(r - 1)) + ("F",),
                                            budget)
        for vi in inputs[1:]:
            if vi.type.tensor_type.elem_type not in _FLOAT_ELEM_TYPES:
                raise UnsupportedModelError(PACKED_MESSAGE.format(what=f"graph input {vi.name!r} is an integer tensor "
                                                                       "(sequence lengths)"))
            values[vi.name] = InitState()
    unsupported: list[tuple[str, str, str]] = []
    for count, node in enumerate(graph.node):
        if count % 64 == 0:
            budget.check("interpreting the ONNX graph")
        attrs = _attrs(node)
        missing = [n for n in node.input if n and n not in values]
        if missing:
            raise ModelFileError(
                f"node {node.name!r} ({node.op_type}) reads undefined tensor(s) {missing}; the file is "
                "truncated or not a valid, topologically sorted ONNX graph."
            )
        ins = [values[n] if n else None for n in node.input]
        present = [v for v in ins if v is not None]
        has_sig = any(isinstance(v, Sym | Stack) for v in present)
        if node.op_type == "Constant":
            val = next(iter(attrs.values()))
            budget.claim(int(np.size(val)), f"Constant node {node.name!r}")
            outs: list[Any] = [_as_const(val)]
        elif any(isinstance(v, Poison) for v in present):
            outs = [Poison()] * len(node.output)
        elif all(isinstance(v, Const) for v in present) and node.op_type not in _RECURRENT:
            try:
                inferred = [shapes.get(o) for o in node.output]
                outs = [_as_const(v) for v in fold(node, [None if v is None else v.value for v in ins], attrs,
                                                   budget, inferred)]
            except (ResourceLimitError, DeadlineExceeded):
                raise
            except UnsupportedModelError as exc:
                unsupported.append((node.op_type, node.name, str(exc)))
                outs = [Poison()] * len(node.output)
            except Exception as exc:  # noqa: BLE001 - any failure of a folding backend is a bad node
                reason = f"it only reads constants but could not be evaluated ({type(exc).__name__}: {exc})"
                unsupported.append((node.op_type, node.name, reason))
                outs = [Poison()] * len(node.output)
        elif not has_sig and node.op_type not in _RECURRENT:
            outs = shape_like(node, ins, attrs, shapes.get(node.output[0])) if all(isinstance(v, Const | ShapeDep | Zero) for v in present) \
                else [ShapeDep()] * len(node.output)
        elif node.op_type not in REGISTRY:
            unsupported.append((node.op_type, node.name, ""))
            outs = [Poison()] * len(node.output)
        else:
            if any(isinstance(v, InitState) for v in present) and node.op_type not in _RECURRENT:
                ctx.state_mixed.append(f"{node.op_type} {node.name!r}")
            if any(isinstance(v, Stack) for v in present) and node.op_type not in ("Gather", "Slice", "Identity"):
                raise UnsupportedModelError(
                    f"{node.op_type} node {node.name!r} operates on a stack of signals (e.g. h_n of all layers); "
                    "only selecting one layer's state (Gather/Slice) is supported."
                )
            try:
                outs = REGISTRY[node.op_type](node, ins, attrs, ctx)
                outs = [_keep_rank(v, shapes.get(name)) for v, name in zip(outs, node.output)]
            except (ResourceLimitError, DeadlineExceeded, WeightError):
                raise
            except UnsupportedModelError as exc:
                unsupported.append((node.op_type, node.name, str(exc)))
                outs = [Poison()] * len(node.output)
            except CertifyError:
                raise
            except Exception as exc:  # noqa: BLE001 - malformed structure the converter did not foresee
                raise UnsupportedModelError(
                    f"{node.op_type} node {node.name!r} could not be interpreted on its inputs ({exc})."
                ) from None
        for name, v in zip(node.output, outs):
            if name:
                values[name] = v
    if unsupported:
        raise _unsupported_error(unsupported, ctx)
    return values, ctx


def _keep_rank(v: Any, inferred: tuple[int | None, ...] | None) -> Any:
    """Broadcasting against a value of higher rank whose shape certify does not track (an all-zero initial
    state ``Zero``) adds leading singleton axes; restore them from the inferred shape."""
    if isinstance(v, Sym) and inferred is not None and len(inferred) > len(v.labels):
        extra = len(inferred) - len(v.labels)
        if all(d == 1 for d in inferred[:extra]):
            return v.with_(labels=("1",) * extra + v.labels, sizes=(1,) * extra + v.sizes)
    return v


def _unsupported_error(unsupported: list[tuple[str, str, str]], ctx: Context) -> UnsupportedModelError:
    """One error for every node that could not be interpreted, each with what about it is unsupported."""
    if len(unsupported) == 1 and unsupported[0][2]:
        return UnsupportedModelError(unsupported[0][2])
    unknown = sorted({op for op, _, why in unsupported if not why})
    parts = []
    for op, name, why in unsupported:
        parts.append(f"{op} (node {name!r}): {why}" if why else f"{op} (node {name!r})")
    msg = f"the model uses {len(unsupported)} unsupported node(s) on its signal path: " + "; ".join(parts) + "."
    if unknown:
        msg += (f" certify has no converter for {', '.join(unknown)} on a signal. Supported on the signal path: "
                f"{', '.join(sorted(REGISTRY))}; anything that only reads constants is folded.")
    return UnsupportedModelError(msg)


def _output(values: dict[str, Any], name: str) -> Sym:
    v = values.get(name)
    if isinstance(v, Poison):
        raise UnsupportedModelError(v.reason or f"graph output {name!r} depends on an unsupported node.")
    if not isinstance(v, Sym):
        raise UnsupportedModelError(f"graph output {name!r} does not depend on the input signal.")
    return v


def assemble_sequence(graph: Any, values: dict[str, Any], ctx: Context) -> tuple[Network, dict[str, Any]]:
    """Build the layer stack and the linear head from the first graph output."""
    out = _output(values, graph.output[0].name)
    if isinstance(out.time, int) and any(k[0] == "act" for k in out.terms):
        from certify.importers.onnx_rnn import recover_last_state

        out = recover_last_state(out, ctx)
    if not ctx.layers:
        raise UnsupportedModelError(
            "no recurrent layer (fused GRU/LSTM/RNN node or unrolled Elman steps) was found. For a custom cell, "
            f"export a one-step graph with inputs {CELL_INPUTS} and outputs {CELL_OUTPUTS}."
        )
    top = ctx.top_key()
    suffix: tuple[Any, ...] = () if out.time is None else (out.time,)
    if out.time not in (None, "last") or (out.time is None and ctx.time_label not in out.labels):
        raise UnsupportedModelError(
            "the graph output is neither the whole output sequence nor its last step; not supported."
        )
    allowed = {top + suffix, ("in",) + suffix}
    if set(out.terms) - allowed:
        raise UnsupportedModelError(
            "the graph output depends on more than the top recurrent layer and the network input "
            "(e.g. skip connections from lower layers); not supported."
        )
    H = ctx.layers[-1].n_out
    W = out.terms.get(top + suffix, np.zeros((out.n_feat, H)))
    D = out.terms.get(("in",) + suffix)
    identity = W.shape == (H, H) and np.array_equal(W, np.eye(H)) and not np.any(out.c) and D is None
    head = None if identity else LinearHead(W=W, b=out.c, D=D)
    inputs = [i for i in graph.input if i.name in values and isinstance(values[i.name], Sym)]
    labels = values[inputs[0].name].labels
    extra: dict[str, Any] = {
        "input_layout": "time_major" if labels.index(ctx.time_label) == 0 else "batch_first",
        "output": "sequence" if out.time is None else "last_step",
    }
    if ctx.unrolled_steps is not None:
        extra["unrolled_steps"] = ctx.unrolled_steps
    state_inputs = [i.name for i in graph.input if isinstance(values.get(i.name), InitState)]
    if state_inputs and ctx.state_mixed and ctx.unrolled_steps is None:
        raise UnsupportedModelError(
            f"graph input(s) {state_inputs} are combined with the signal ({', '.join(ctx.state_mixed[:3])}) but not "
            "as the initial state of a recurrence; certify reads one input signal (the first graph input) and "
            "ignores initial-state inputs only. Concatenate all inputs into one [batch, time, features] tensor."
        )
    if state_inputs:
        extra["initial_state_inputs_ignored"] = state_inputs
        extra.setdefault("notes", []).append(
            f"initial state input(s) {', '.join(state_inputs)} ignored: stability is a property of the recurrence "
            "from every initial state, so the network is analysed from the zero state"
        )
    if len(graph.output) > 1:
        extra["outputs_ignored"] = [o.name for o in graph.output[1:]]
    return Network(layers=tuple(ctx.layers), head=head), extra


def assemble_cell(graph: Any, values: dict[str, Any], ctx: Context) -> tuple[Network, dict[str, Any]]:
    """Compile the one-step graph into an :class:`AffineCell` (docs/theory.md, SNOF form)."""
    names = [o.name for o in graph.output]
    if all(n in names for n in CELL_OUTPUTS):
        xn, y = (_output(values, n) for n in CELL_OUTPUTS)
    elif len(names) == 2:
        xn, y = (_output(values, n) for n in names)
    else:
        raise UnsupportedModelError(f"a one-step cell graph must have the outputs {CELL_OUTPUTS}; found {names}.")
    nx = values["x"].n_feat
    nu = values["u"].n_feat
    sizes = [s.n_feat for _, s in ctx.acts]
    off = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    m = int(off[-1])

    def split(s: Sym) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        X = s.terms.get(("x",), np.zeros((s.n_feat, nx)))
        U = s.terms.get(("u",), np.zeros((s.n_feat, nu)))
        P = np.zeros((s.n_feat, m))
        for j in range(len(ctx.acts)):
            if ("act", j) in s.terms:
                P[:, off[j]:off[j + 1]] = s.terms[("act", j)]
        return X, U, P, s.c

    q = [split(s) for _, s in ctx.acts]
    cat = lambda i, cols: np.vstack([b[i] for b in q]) if q else np.zeros((0, cols))
    A, B_u, B_p, b_x = split(xn)
    C_y, D_yu, D_yp, b_y = split(y)
    if A.shape[0] != nx:
        raise UnsupportedModelError(f"x_next has {A.shape[0]} entries but the state x has {nx}.")
    cell = AffineCell(
        A=A, B_p=B_p, B_u=B_u, b_x=b_x, C_q=cat(0, nx), D_qp=cat(2, m), D_qu=cat(1, nu),
        b_q=np.concatenate([b[3] for b in q]) if q else np.zeros(0), C_y=C_y, D_yp=D_yp, D_yu=D_yu, b_y=b_y,
        activations=tuple(k for k, s in ctx.acts for _ in range(s.n_feat)),
    )
    return Network(layers=(cell,)), {"graph_kind": "one_step_cell"}
