"""torch modules that mirror the canonical networks exactly, with converters and exporters.

All sequence modules take ``u`` of shape (batch, time, n_in) and return (batch, time, n_out);
``step(x, u)`` maps the flat state (layer states concatenated, as in :class:`certify.networks.Network`)
and one input to ``(x_next, y)``.  Parameter names of GRU/LSTM/Elman stacks are PyTorch's
(``rnn.weight_ih_l0`` …, head ``head.weight``/``head.bias``) so their state dicts import like any
``nn.GRU``/``nn.LSTM``/``nn.RNN`` model; the Cho/Bonassi GRU (``reset_after=False``) keeps the same
names and layout and is marked in the sidecar.

>>> net = ElmanNet(2, 3, n_out=1)
>>> to_canonical(net).architecture
'elman'
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from certify.errors import UnsupportedModelError, WeightError
from certify.importers.torch_layout import layer_from_torch_weights
from certify.networks import LinearHead, LPGRNNLayer, Network, StateSpaceLayer
from certify.networks.kinds import KINDS, resolve

_ACT = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu}


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


class _Stacked(nn.Module):
    """Base for GRU/LSTM/Elman stacks: ``self.rnn`` (torch RNN or the Cho GRU) and optional ``self.head``."""

    kind = ""
    rnn: nn.Module  # set by each subclass

    def __init__(self, n_in: int, hidden: int, num_layers: int, n_out: int | None, bias: bool) -> None:
        super().__init__()
        self.n_in, self.hidden, self.num_layers, self.bias = n_in, hidden, num_layers, bias
        self.head = nn.Linear(hidden, n_out) if n_out is not None else None
        self.bypass: nn.Linear | None = None  # direct term D u of the head (LinearHead.D); see add_bypass

    def add_bypass(self, D: np.ndarray | None = None) -> _Stacked:
        """Give the head a direct path from the input, ``y = W h + b + D u`` (a linear bypass).

        >>> net = ElmanNet(2, 3, n_out=1).add_bypass(np.ones((1, 2)))
        >>> to_canonical(net).head.D.tolist()
        [[1.0, 1.0]]
        """
        if self.head is None:
            raise UnsupportedModelError("add_bypass: the module has no linear head to add a direct term to.")
        self.bypass = nn.Linear(self.n_in, self.head.out_features, bias=False)
        with torch.no_grad():
            self.bypass.weight.copy_(torch.zeros_like(self.bypass.weight) if D is None else torch.as_tensor(
                np.array(D, dtype=float), dtype=self.bypass.weight.dtype))
        return self

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(u)
        y = self.head(out) if self.head is not None else out
        return y + self.bypass(u) if self.bypass is not None else y

    def sidecar(self) -> dict[str, Any]:
        return {"architecture": self.kind, "n_in": self.n_in, "hidden": self.hidden,
                "num_layers": self.num_layers, "n_out": None if self.head is None else self.head.out_features}


class ChoGRU(nn.Module):
    """GRU stack with the reset gate before ``U_n`` (Cho/Bonassi, ONNX ``linear_before_reset=0``).

    Same parameter names, shapes and gate order ``[r|z|n]`` as ``nn.GRU`` (batch_first).

    >>> out, _ = ChoGRU(2, 3, num_layers=2)(torch.zeros(1, 5, 2))
    >>> out.shape
    torch.Size([1, 5, 3])
    """

    def __init__(self, n_in: int, hidden: int, num_layers: int = 1, bias: bool = True) -> None:
        super().__init__()
        self.hidden_size, self.num_layers, self.bias = hidden, num_layers, bias
        k = 1.0 / math.sqrt(hidden)
        for layer in range(num_layers):
            m = n_in if layer == 0 else hidden
            self.register_parameter(f"weight_ih_l{layer}", nn.Parameter(torch.empty(3 * hidden, m).uniform_(-k, k)))
            self.register_parameter(f"weight_hh_l{layer}", nn.Parameter(torch.empty(3 * hidden, hidden).uniform_(-k, k)))
            if bias:
                self.register_parameter(f"bias_ih_l{layer}", nn.Parameter(torch.empty(3 * hidden).uniform_(-k, k)))
                self.register_parameter(f"bias_hh_l{layer}", nn.Parameter(torch.empty(3 * hidden).uniform_(-k, k)))

    def forward(self, u: torch.Tensor) -> tuple[torch.Tensor, None]:
        H, seq = self.hidden_size, u
        for layer in range(self.num_layers):
            Wi, Wh = getattr(self, f"weight_ih_l{layer}"), getattr(self, f"weight_hh_l{layer}")
            bi = getattr(self, f"bias_ih_l{layer}") if self.bias else torch.zeros(3 * H, dtype=u.dtype)
            bh = getattr(self, f"bias_hh_l{layer}") if self.bias else torch.zeros(3 * H, dtype=u.dtype)
            h = torch.zeros(u.shape[0], H, dtype=u.dtype)
            outs = []
            for t in range(seq.shape[1]):
                gi = seq[:, t] @ Wi.T + bi
                r = torch.sigmoid(gi[:, :H] + h @ Wh[:H].T + bh[:H])
                z = torch.sigmoid(gi[:, H:2 * H] + h @ Wh[H:2 * H].T + bh[H:2 * H])
                n = torch.tanh(gi[:, 2 * H:] + (r * h) @ Wh[2 * H:].T + bh[2 * H:])
                h = z * h + (1 - z) * n
                outs.append(h)
            seq = torch.stack(outs, dim=1)
        return seq, None


class GRUNet(_Stacked):
    """GRU stack + optional linear head; ``reset_after=True`` wraps ``nn.GRU``, False uses :class:`ChoGRU`.

    >>> GRUNet(2, 4, num_layers=2, n_out=1)(torch.zeros(3, 5, 2)).shape
    torch.Size([3, 5, 1])
    """

    kind = "gru"

    def __init__(self, n_in: int, hidden: int, num_layers: int = 1, n_out: int | None = None, *,
                 bias: bool = True, reset_after: bool = True) -> None:
        super().__init__(n_in, hidden, num_layers, n_out, bias)
        self.reset_after = reset_after
        self.rnn = (nn.GRU(n_in, hidden, num_layers, bias=bias, batch_first=True) if reset_after
                    else ChoGRU(n_in, hidden, num_layers, bias))

    def sidecar(self) -> dict[str, Any]:
        return {**super().sidecar(), "reset_after": self.reset_after}


class LSTMNet(_Stacked):
    """``nn.LSTM`` stack + optional linear head (state per layer ``[h; c]``).

    >>> to_canonical(LSTMNet(2, 3, n_out=1)).n_states
    6
    """

    kind = "lstm"

    def __init__(self, n_in: int, hidden: int, num_layers: int = 1, n_out: int | None = None, *,
                 bias: bool = True) -> None:
        super().__init__(n_in, hidden, num_layers, n_out, bias)
        self.rnn = nn.LSTM(n_in, hidden, num_layers, bias=bias, batch_first=True)


class ElmanNet(_Stacked):
    """``nn.RNN`` stack (tanh or relu) + optional linear head.

    >>> to_canonical(ElmanNet(2, 3, nonlinearity="relu")).layers[0].activation
    'relu'
    """

    kind = "rnn"

    def __init__(self, n_in: int, hidden: int, num_layers: int = 1, n_out: int | None = None, *,
                 bias: bool = True, nonlinearity: str = "tanh") -> None:
        super().__init__(n_in, hidden, num_layers, n_out, bias)
        self.nonlinearity = nonlinearity
        self.rnn = nn.RNN(n_in, hidden, num_layers, nonlinearity=nonlinearity, bias=bias, batch_first=True)

    def sidecar(self) -> dict[str, Any]:
        return {**super().sidecar(), "nonlinearity": self.nonlinearity}


class LPGRNNCell(nn.Module):
    """One LP-GRNN layer (certify.networks.lpgrnn): ``z = σ(θ_z)`` keeps ``A = diag(z)`` Schur.

    >>> LPGRNNCell(2, 4, 3)(torch.zeros(1, 4), torch.zeros(1, 2)).shape
    torch.Size([1, 4])
    """

    def __init__(self, n_in: int, hidden: int, gate: int) -> None:
        super().__init__()
        k = 1.0 / math.sqrt(hidden)
        p = lambda *s: nn.Parameter(torch.empty(*s).uniform_(-k, k))
        self.W_r, self.U_r, self.b_r = p(gate, n_in), p(gate, hidden), p(gate)
        self.W_h, self.U_h, self.V_h, self.b_h = p(hidden, n_in), p(hidden, hidden), p(hidden, gate), p(hidden)
        self.theta_z = nn.Parameter(torch.zeros(hidden))

    def forward(self, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        r = torch.sigmoid(u @ self.W_r.T + h @ self.U_r.T + self.b_r)
        cand = torch.tanh(u @ self.W_h.T + h @ self.U_h.T + r @ self.V_h.T + self.b_h)
        z = torch.sigmoid(self.theta_z)
        return z * h + (1 - z) * cand


class _StepNet(nn.Module):
    """Sequence forward by repeated ``step``."""

    # set by each subclass (annotations only: ``hasattr(module, "step")`` tells step modules apart)
    n_state: int
    step: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        x = torch.zeros(u.shape[0], self.n_state, dtype=u.dtype, device=u.device)
        ys = []
        for t in range(u.shape[1]):
            x, y = self.step(x, u[:, t])
            ys.append(y)
        return torch.stack(ys, dim=1)


class LPGRNNNet(_StepNet):
    """LP-GRNN stack + optional linear head; ``step(x, u)`` works on the flat state.

    >>> net = LPGRNNNet(2, 4, gate=3, num_layers=2, n_out=1)
    >>> [t.shape for t in net.step(torch.zeros(1, 8), torch.zeros(1, 2))]
    [torch.Size([1, 8]), torch.Size([1, 1])]
    """

    def __init__(self, n_in: int, hidden: int, gate: int, num_layers: int = 1, n_out: int | None = None) -> None:
        super().__init__()
        self.n_in, self.hidden, self.gate = n_in, hidden, gate
        self.layers = nn.ModuleList(LPGRNNCell(n_in if i == 0 else hidden, hidden, gate) for i in range(num_layers))
        self.head = nn.Linear(hidden, n_out) if n_out is not None else None
        self.n_state = hidden * num_layers

    def step(self, x: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        parts, sig = [], u
        for i, cell in enumerate(self.layers):
            sig = cell(x[..., i * self.hidden:(i + 1) * self.hidden], sig)
            parts.append(sig)
        return torch.cat(parts, dim=-1), (self.head(sig) if self.head is not None else sig)

    def sidecar(self) -> dict[str, Any]:
        return {"architecture": "lpgrnn", "n_in": self.n_in, "hidden": self.hidden, "gate": self.gate,
                "num_layers": len(self.layers), "n_out": None if self.head is None else self.head.out_features}


class SSNN(_StepNet):
    """SS-NN (``linear=False``: A, B, C, D fixed at zero) or gR-SS-NN (Schoukens 2021, eqs. 4–5).

    >>> to_canonical(SSNN(2, 3, 1, 5, 4, linear=False)).layers[0].linear
    False
    """

    A: torch.Tensor  # A, B, C, D: parameters (linear) or zero buffers, registered by name
    B: torch.Tensor
    C: torch.Tensor
    D: torch.Tensor

    def __init__(self, n_in: int, n_state: int, n_out: int, neurons_state: int, neurons_output: int, *,
                 activation: str = "tanh", linear: bool = True) -> None:
        super().__init__()
        self.n_in, self.n_state, self.n_out, self.activation, self.linear = n_in, n_state, n_out, activation, linear
        nf, ng = neurons_state, neurons_output
        p = lambda *s: nn.Parameter(torch.randn(*s) / math.sqrt(max(s[-1], 1)))
        for name, shape in (("A", (n_state, n_state)), ("B", (n_state, n_in)), ("C", (n_out, n_state)),
                            ("D", (n_out, n_in))):
            if linear:
                self.register_parameter(name, p(*shape))
            else:
                self.register_buffer(name, torch.zeros(*shape))
        self.W_fx, self.W_fu, self.b_f = p(nf, n_state), p(nf, n_in), nn.Parameter(torch.zeros(nf))
        self.W_x, self.b_x = p(n_state, nf), nn.Parameter(torch.zeros(n_state))
        self.W_gx, self.W_gu, self.b_g = p(ng, n_state), p(ng, n_in), nn.Parameter(torch.zeros(ng))
        self.W_y, self.b_y = p(n_out, ng), nn.Parameter(torch.zeros(n_out))

    def step(self, x: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        act = _ACT[self.activation]
        pf = act(x @ self.W_fx.T + u @ self.W_fu.T + self.b_f)
        pg = act(x @ self.W_gx.T + u @ self.W_gu.T + self.b_g)
        return (x @ self.A.T + u @ self.B.T + pf @ self.W_x.T + self.b_x,
                x @ self.C.T + u @ self.D.T + pg @ self.W_y.T + self.b_y)

    def sidecar(self) -> dict[str, Any]:
        return {"architecture": "ssnn", "n_in": self.n_in, "n_state": self.n_state, "n_out": self.n_out,
                "neurons_state": self.W_fx.shape[0], "neurons_output": self.W_gx.shape[0],
                "activation": self.activation, "linear": self.linear}


# ------------------------------------------------------------------------------------------------
# conversions


def _rnn_params(rnn: nn.Module, layer: int, G: int, H: int) -> tuple[np.ndarray, ...]:
    W = _np(getattr(rnn, f"weight_ih_l{layer}"))
    U = _np(getattr(rnn, f"weight_hh_l{layer}"))
    if getattr(rnn, "bias", True):
        bi, bh = _np(getattr(rnn, f"bias_ih_l{layer}")), _np(getattr(rnn, f"bias_hh_l{layer}"))
    else:
        bi = bh = np.zeros(G * H)
    return W, U, bi, bh


def to_canonical(module: nn.Module) -> Network:
    """The canonical float64 :class:`Network` of a module of this file.

    >>> to_canonical(GRUNet(2, 4, n_out=1, reset_after=False)).layers[0].reset_after
    False
    """
    head = None
    m_head, m_bypass = getattr(module, "head", None), getattr(module, "bypass", None)
    if m_head is not None:
        D = None if m_bypass is None else _np(m_bypass.weight)
        head = LinearHead(W=_np(m_head.weight), b=_np(m_head.bias), D=D)
    if isinstance(module, _Stacked):
        G = {"gru": 3, "lstm": 4, "rnn": 1}[module.kind]
        layers = tuple(
            layer_from_torch_weights(module.kind, *_rnn_params(module.rnn, k, G, module.hidden),
                                      reset_after=getattr(module, "reset_after", True),
                                      nonlinearity=getattr(module, "nonlinearity", "tanh"))
            for k in range(module.num_layers))
        return Network(layers=layers, head=head)
    if isinstance(module, LPGRNNNet):
        layers = tuple(LPGRNNLayer(W_r=_np(c.W_r), U_r=_np(c.U_r), b_r=_np(c.b_r), W_h=_np(c.W_h), U_h=_np(c.U_h),
                                   V_h=_np(c.V_h), b_h=_np(c.b_h), z=1.0 / (1.0 + np.exp(-_np(c.theta_z))))
                       for c in cast("Iterable[LPGRNNCell]", module.layers))
        return Network(layers=layers, head=head)
    from certify.train.cells import AffineCellNet

    if isinstance(module, AffineCellNet):
        return Network(layers=(module.to_canonical(),))
    if isinstance(module, SSNN):
        names = ("A", "B", "C", "D", "W_fx", "W_fu", "b_f", "W_x", "b_x", "W_gx", "W_gu", "b_g", "W_y", "b_y")
        layer = StateSpaceLayer(**{n: _np(getattr(module, n)) for n in names}, activation=module.activation)
        return Network(layers=(layer,))
    raise UnsupportedModelError(f"to_canonical: {type(module).__name__} is not a certify.train module.")


def _set(param: torch.Tensor, value: np.ndarray) -> None:
    with torch.no_grad():
        param.copy_(torch.as_tensor(np.array(value), dtype=param.dtype))


def from_canonical(net: Network) -> nn.Module:
    """A module of this file computing exactly ``net`` (float32 weights).

    GRU/LSTM/Elman stacks put the summed gate biases in ``bias_ih`` (``bias_hh`` keeps only the GRU's
    ``b_hn``).  Heads with a direct term ``D`` and mixed stacks have no module here.

    >>> net = to_canonical(ElmanNet(2, 3, n_out=1))
    >>> type(from_canonical(net)).__name__
    'ElmanNet'
    """
    kind = net.architecture
    head = net.head
    row = KINDS.get(kind)  # the layer-kind registry names each kind's torch twin
    if row is None or row.torch_module is None:
        raise UnsupportedModelError(f"from_canonical: no torch module mirrors a {kind!r} network here.")
    cls = resolve(row.torch_module)
    stacked = issubclass(cls, _Stacked)
    if head is not None and head.D is not None and not stacked:
        raise UnsupportedModelError("from_canonical: a head with a direct input term D has a torch module here "
                                    "only for GRU, LSTM and Elman stacks.")
    n_out = None if head is None else head.n_out
    L0 = net.layers[0]
    if stacked:
        H = L0.n_out
        if kind == "gru":
            ras = {layer.reset_after for layer in net.layers}
            if len(ras) != 1:
                raise UnsupportedModelError("from_canonical: GRU layers mix reset conventions.")
            mod: Any = GRUNet(L0.n_in, H, len(net.layers), n_out, reset_after=ras.pop())  # or the others below
        elif kind == "lstm":
            mod = LSTMNet(L0.n_in, H, len(net.layers), n_out)
        else:
            acts = {layer.activation for layer in net.layers}
            if len(acts) != 1:
                raise UnsupportedModelError("from_canonical: Elman layers mix activations.")
            mod = ElmanNet(L0.n_in, H, len(net.layers), n_out, nonlinearity=acts.pop())
        for k, layer in enumerate(net.layers):
            if kind == "gru":
                W = np.vstack([layer.W_r, layer.W_z, layer.W_n])
                U = np.vstack([layer.U_r, layer.U_z, layer.U_n])
                bi = np.concatenate([layer.b_r, layer.b_z, layer.b_in])
                bh = np.concatenate([np.zeros(2 * H), layer.b_hn])
            elif kind == "lstm":
                W = np.vstack([getattr(layer, f"W_{g}") for g in "ifgo"])
                U = np.vstack([getattr(layer, f"U_{g}") for g in "ifgo"])
                bi, bh = np.concatenate([getattr(layer, f"b_{g}") for g in "ifgo"]), np.zeros(4 * H)
            else:
                W, U, bi, bh = layer.W, layer.U, layer.b, np.zeros(H)
            for name, v in (("weight_ih", W), ("weight_hh", U), ("bias_ih", bi), ("bias_hh", bh)):
                _set(getattr(mod.rnn, f"{name}_l{k}"), v)
    elif cls is LPGRNNNet:
        mod = LPGRNNNet(L0.n_in, L0.n_state, L0.n_gate, len(net.layers), n_out)
        for cell, layer in zip(mod.layers, net.layers):
            if np.any(layer.z <= 0) or np.any(layer.z >= 1):
                raise WeightError("from_canonical: LP-GRNN z must lie in (0, 1) to be written as sigmoid(theta_z).")
            for n in ("W_r", "U_r", "b_r", "W_h", "U_h", "V_h", "b_h"):
                _set(getattr(cell, n), getattr(layer, n))
            _set(cell.theta_z, np.log(layer.z / (1.0 - layer.z)))
    elif cls is SSNN and len(net.layers) == 1 and head is None:
        s = L0
        mod = SSNN(s.n_in, s.n_state, s.n_out, s.W_fx.shape[0], s.W_gx.shape[0], activation=s.activation,
                   linear=s.linear)
        for n in ("A", "B", "C", "D", "W_fx", "W_fu", "b_f", "W_x", "b_x", "W_gx", "W_gu", "b_g", "W_y", "b_y"):
            _set(getattr(mod, n), getattr(s, n))
    elif row.name == "affine_cell" and len(net.layers) == 1 and head is None:
        return cls(L0)
    else:
        raise UnsupportedModelError(f"from_canonical: no torch module mirrors a {kind!r} network here.")
    if head is not None:
        _set(mod.head.weight, head.W)
        _set(mod.head.bias, head.b)
        if head.D is not None:
            mod.add_bypass(head.D)
    return mod


# ------------------------------------------------------------------------------------------------
# export


class _StepWrapper(nn.Module):
    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module: Any = module  # a module with step(x, u)

    def forward(self, u: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.module.step(x, u)


def _add_metadata(path: str, metadata: dict[str, str] | None) -> None:
    if not metadata:
        return
    import onnx

    model = onnx.load(path)
    for k, v in metadata.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, path)


def _export(module: nn.Module, args: tuple[torch.Tensor, ...], path: str, names: tuple[list[str], list[str]],
            dynamo: bool, dynamic_axes: dict[str, dict[int, str]] | None = None) -> None:
    import contextlib
    import io
    import warnings

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        kw: dict[str, Any] = {"verbose": False} if dynamo else {}
        if dynamic_axes:
            kw["dynamic_axes"] = dynamic_axes
        torch.onnx.export(module.eval(), args, os.fspath(path), dynamo=dynamo, input_names=names[0],
                          output_names=names[1], **kw)


def export_onnx(module: nn.Module, path: str, *, seq_len: int, dynamo: bool = False,
                metadata: dict[str, str] | None = None, dynamic: bool = False) -> str:
    """Export a GRU (both reset conventions)/LSTM/Elman module as fused ONNX ops; input ``u`` (1, seq_len, n_in).

    ``dynamic=True`` (legacy exporter only) leaves the batch and time axes of ``u`` and ``y`` free.

    The dynamo exporter unrolls ``nn.RNN`` for exactly ``seq_len`` steps (certify recovers the recurrence).
    ``metadata`` entries (e.g. ``{"certify.input_range": json}``) are written to ``metadata_props``.

    >>> import tempfile
    >>> from certify.importers import load_model
    >>> p = export_onnx(GRUNet(2, 3, n_out=1), os.path.join(tempfile.mkdtemp(), "g.onnx"), seq_len=4)
    >>> load_model(p).architecture
    'gru'
    """
    if not isinstance(module, _Stacked):
        raise UnsupportedModelError(
            "export_onnx: only GRU, LSTM and Elman stacks have fused ONNX ops. Use export_step_onnx for LP-GRNN / "
            "SS-NN."
        )
    if not getattr(module, "reset_after", True):
        return _export_cho_gru(module, path, seq_len=seq_len, dynamo=dynamo, metadata=metadata, dynamic=dynamic)
    if dynamic and dynamo:
        raise UnsupportedModelError("export_onnx: dynamic=True is only supported with the legacy exporter.")
    axes = {"u": {0: "batch", 1: "time"}, "y": {0: "batch", 1: "time"}} if dynamic else None
    _export(module, (torch.zeros(1, seq_len, module.n_in),), path, (["u"], ["y"]), dynamo, axes)
    _add_metadata(os.fspath(path), metadata)
    return os.fspath(path)


def _export_cho_gru(module: Any, path: str, *, seq_len: int, dynamo: bool, metadata: dict[str, str] | None,
                    dynamic: bool) -> str:
    """A GRU with the reset gate before ``U_n`` (``reset_after=False``) as ONNX ``GRU`` nodes with
    ``linear_before_reset=0``: torch writes only ``linear_before_reset=1``, so the same weights (``ChoGRU`` has
    ``nn.GRU``'s names, shapes and gate order) are exported through an ``nn.GRU`` twin and the attribute of every
    GRU node is then set to 0, the ONNX default, which is exactly this convention (ONNX operator GRU)."""
    import copy

    import onnx

    if dynamo:
        raise UnsupportedModelError("export_onnx: a GRU with reset_after=False is exported with the legacy "
                                    "exporter only (dynamo=False).")
    twin = copy.deepcopy(module).cpu().float()
    gru = nn.GRU(module.n_in, module.hidden, module.num_layers, bias=module.bias, batch_first=True)
    gru.load_state_dict(module.rnn.state_dict())
    twin.rnn, twin.reset_after = gru, True
    export_onnx(twin, path, seq_len=seq_len, dynamo=False, metadata=metadata, dynamic=dynamic)
    model = onnx.load(os.fspath(path))
    nodes = [n for n in model.graph.node if n.op_type == "GRU"]
    if len(nodes) != module.num_layers:
        raise UnsupportedModelError(f"export_onnx: expected {module.num_layers} ONNX GRU nodes from torch's exporter, "
                                    f"found {len(nodes)}; cannot write linear_before_reset=0.")
    for node in nodes:
        for a in node.attribute:
            if a.name == "linear_before_reset":
                a.i = 0
    onnx.save(model, os.fspath(path))
    return os.fspath(path)


def export_step_onnx(module: nn.Module, path: str, *, dynamo: bool = False,
                     metadata: dict[str, str] | None = None) -> str:
    """Export ``module.step`` as a one-step graph: inputs ``u`` (1, n_in), ``x`` (1, n_state);
    outputs ``x_next``, ``y``.  certify compiles it into an :class:`~certify.networks.AffineCell`.

    >>> import tempfile
    >>> from certify.importers import load_model
    >>> p = export_step_onnx(SSNN(2, 3, 1, 4, 4), os.path.join(tempfile.mkdtemp(), "s.onnx"))
    >>> load_model(p).layers[0].kind
    'affine_cell'
    """
    if not hasattr(module, "step"):
        raise UnsupportedModelError(f"export_step_onnx: {type(module).__name__} has no step().")
    args = (torch.zeros(1, cast(Any, module).n_in), torch.zeros(1, cast(Any, module).n_state))
    _export(_StepWrapper(module), args, path, (["u", "x"], ["x_next", "y"]), dynamo)
    _add_metadata(os.fspath(path), metadata)
    return os.fspath(path)


def save_state_dict(module: nn.Module, path: str, **sidecar: Any) -> tuple[str, str]:
    """``torch.save(module.state_dict())`` plus the sidecar ``<path>.certify.json``.

    Extra keyword arguments (``input_names``, ``input_range`` = {"low", "high"}, scalings …) go into
    the sidecar.  Returns both paths.

    >>> import tempfile
    >>> from certify.importers import load_model
    >>> pt, side = save_state_dict(LPGRNNNet(2, 4, 3), os.path.join(tempfile.mkdtemp(), "m.pt"))
    >>> load_model(pt).architecture
    'lpgrnn'
    """
    from certify.importers.sidecar import write_sidecar

    torch.save(module.state_dict(), os.fspath(path))
    return os.fspath(path), write_sidecar(os.fspath(path), {**cast(Any, module).sidecar(), **sidecar})
