"""Shared pieces of the canonical network representation: validation, metadata, the stack, the head.

A canonical network is a :class:`Network`: a tuple of recurrent layers (each layer is fed by the
*updated* output of the layer below, as in PyTorch and in Bonassi et al.), an optional linear
read-out and a :class:`ModelInfo`.  All weights are float64 numpy arrays, validated once at
construction; the numpy ``step``/``simulate`` methods are the semantic reference that importers,
SNOF conversions and the torch modules are tested against.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from certify.errors import WeightError
from certify.frozen import FrozenDict

# ---------------------------------------------------------------------------------------------
# validation helpers


def as_matrix(owner: str, name: str, value: Any, shape: tuple[int | None, ...]) -> np.ndarray:
    """Return ``value`` as a read-only float64 array of ``shape`` (``None`` = any), or raise.

    Errors name the owner, the array and both the expected and the actual shape.

    >>> as_matrix("GRULayer", "U_z", [[1.0, 2.0]], (1, 2)).dtype
    dtype('float64')
    """
    try:
        arr = np.array(value, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as exc:
        raise WeightError(f"{owner}: {name} is not a numeric array ({exc}).") from None
    if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
        want = "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"
        raise WeightError(f"{owner}: {name} has shape {tuple(arr.shape)}, expected {want}.")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise WeightError(
            f"{owner}: {name} contains {bad} non-finite value(s) (NaN or Inf); "
            "a network with non-finite weights cannot be analysed."
        )
    arr.setflags(write=False)
    return arr


def sigmoid(v: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    out = np.empty_like(v, dtype=np.float64)
    pos = v >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-v[pos]))
    ev = np.exp(v[~pos])
    out[~pos] = ev / (1.0 + ev)
    return out


def relu(v: np.ndarray) -> np.ndarray:
    return np.maximum(v, 0.0)


ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"tanh": np.tanh, "sigmoid": sigmoid, "relu": relu}


def check_activation(owner: str, name: str) -> str:
    if name not in ACTIVATIONS:
        raise WeightError(
            f"{owner}: activation {name!r} is not supported; supported: {', '.join(sorted(ACTIVATIONS))}."
        )
    return name


# ---------------------------------------------------------------------------------------------
# metadata


@dataclass(frozen=True)
class MinMaxScaling:
    """Affine map between raw (plant) units and network units, per signal (Hilgert & Schwung (2025) eq. 22).

    ``net = net_low + (raw - raw_low) * (net_high - net_low) / (raw_high - raw_low)``.

    >>> s = MinMaxScaling(raw_low=[0.0], raw_high=[10.0])
    >>> float(s.to_net(np.array([5.0]))[0])
    0.0
    """

    raw_low: np.ndarray
    raw_high: np.ndarray
    net_low: float = -1.0
    net_high: float = 1.0

    def __post_init__(self) -> None:
        lo = as_matrix("MinMaxScaling", "raw_low", self.raw_low, (None,))
        hi = as_matrix("MinMaxScaling", "raw_high", self.raw_high, (lo.shape[0],))
        if np.any(hi <= lo):
            raise WeightError("MinMaxScaling: every raw_high must exceed raw_low.")
        if not self.net_high > self.net_low:
            raise WeightError("MinMaxScaling: net_high must exceed net_low.")
        object.__setattr__(self, "raw_low", lo)
        object.__setattr__(self, "raw_high", hi)

    @property
    def gain(self) -> np.ndarray:
        """d(net)/d(raw) per signal."""
        return (self.net_high - self.net_low) / (self.raw_high - self.raw_low)

    def to_net(self, raw: np.ndarray) -> np.ndarray:
        return self.net_low + (raw - self.raw_low) * self.gain

    def to_raw(self, net: np.ndarray) -> np.ndarray:
        return self.raw_low + (net - self.net_low) / self.gain

    def to_dict(self) -> dict[str, Any]:
        return {
            "raw_low": self.raw_low.tolist(),
            "raw_high": self.raw_high.tolist(),
            "net_low": self.net_low,
            "net_high": self.net_high,
        }


@dataclass(frozen=True)
class InputRange:
    """Box of network inputs (in network units) that the model is used on: ``low <= u <= high``.

    The δISS theorems assume ``u`` in [-1, 1]; a declared range lets the checks rescale the input
    weights instead of assuming it.

    Parameters
    ----------
    low, high : array_like, shape (n_inputs,)
        Lower and upper bounds per input, ``high >= low`` (else :class:`~certify.errors.WeightError`).

    Examples
    --------
    >>> r = InputRange(low=[0.0, -2.0], high=[1.0, 2.0])
    >>> r.center.tolist(), r.radius.tolist(), r.abs_bound.tolist()
    ([0.5, 0.0], [0.5, 2.0], [1.0, 2.0])
    >>> InputRange.symmetric(2).to_dict()
    {'low': [-1.0, -1.0], 'high': [1.0, 1.0]}
    """

    low: np.ndarray
    high: np.ndarray

    def __post_init__(self) -> None:
        lo = as_matrix("InputRange", "low", self.low, (None,))
        hi = as_matrix("InputRange", "high", self.high, (lo.shape[0],))
        if np.any(hi < lo):
            raise WeightError("InputRange: every high must be >= low.")
        object.__setattr__(self, "low", lo)
        object.__setattr__(self, "high", hi)

    @classmethod
    def symmetric(cls, n: int, bound: float = 1.0) -> InputRange:
        return cls(-bound * np.ones(n), bound * np.ones(n))

    @property
    def center(self) -> np.ndarray:
        return (self.low + self.high) / 2.0

    @property
    def radius(self) -> np.ndarray:
        return (self.high - self.low) / 2.0

    @property
    def abs_bound(self) -> np.ndarray:
        """Per-input bound on ``|u|`` (what the norm tests need)."""
        return np.maximum(np.abs(self.low), np.abs(self.high))

    def to_dict(self) -> dict[str, Any]:
        return {"low": self.low.tolist(), "high": self.high.tolist()}


@dataclass(frozen=True)
class ModelInfo:
    """Where a network came from and how it is meant to be used.

    Parameters
    ----------
    input_names, output_names : tuple of str
        Signal names (from the ONNX graph or the sidecar); may be empty.
    input_range : InputRange or None
        Range of the network's inputs in network units; ``None`` means unknown (reports say so).
    input_scaling, output_scaling : MinMaxScaling or None
        Maps between plant units and network units, used when the network sits in a loop.
    source_format : str
        ``"onnx"``, ``"torch_state_dict"`` or ``"python"``.
    path : str
        File the network was read from (empty when built in Python).
    sha256 : str
        SHA-256 of that file.
    extra : Mapping
        Anything else the importer wants to report (exporter, opset, producer).

    Examples
    --------
    >>> info = ModelInfo(input_names=["flow", "temperature"], input_range=InputRange.symmetric(2))
    >>> info.input_names, info.source_format, info.input_range.high.tolist()
    (('flow', 'temperature'), 'python', [1.0, 1.0])
    """

    input_names: tuple[str, ...] = ()
    output_names: tuple[str, ...] = ()
    input_range: InputRange | None = None
    input_scaling: MinMaxScaling | None = None
    output_scaling: MinMaxScaling | None = None
    source_format: str = "python"
    path: str = ""
    sha256: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_names", tuple(self.input_names))
        object.__setattr__(self, "output_names", tuple(self.output_names))
        object.__setattr__(self, "extra", FrozenDict(self.extra))


# ---------------------------------------------------------------------------------------------
# layers


@runtime_checkable
class Layer(Protocol):
    """What every recurrent layer offers.  ``step`` works on batches: leading dimensions broadcast.

    A structural protocol: :class:`~certify.networks.GRULayer`, :class:`~certify.networks.LSTMLayer`,
    :class:`~certify.networks.ElmanLayer`, :class:`~certify.networks.LPGRNNLayer`,
    :class:`~certify.networks.StateSpaceLayer` and :class:`~certify.networks.AffineCell` satisfy it.

    Examples
    --------
    >>> from certify.networks import ElmanLayer
    >>> layer = ElmanLayer(W=[[1.0, 0.0]], U=[[0.5]], b=[0.0])
    >>> isinstance(layer, Layer), layer.kind, (layer.n_in, layer.n_state, layer.n_out)
    (True, 'elman', (2, 1, 1))
    >>> x_next, out = layer.step(np.zeros(1), np.array([1.0, 0.0]))
    >>> round(float(x_next[0]), 4), bool(out[0] == x_next[0])
    (0.7616, True)
    """

    kind: ClassVar[str]

    @property
    def n_in(self) -> int: ...

    @property
    def n_state(self) -> int: ...

    @property
    def n_out(self) -> int: ...

    def step(self, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(x_next, out)``; ``out`` feeds the next layer (or the head) at the same time step."""
        ...


def n_params(obj: Any) -> int:
    """Number of scalar weights in a dataclass of arrays."""
    total = 0
    for f in fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, np.ndarray):
            total += int(v.size)
    return total


@dataclass(frozen=True)
class LinearHead:
    """Linear read-out ``y = W h + b + D u`` (``D`` is an optional direct path from the network input).

    ``h`` is the output of the top layer at the same step; ``u`` the network input (a linear bypass,
    as in Schoukens (2021)'s explicit linear term, which matters for closed loops, see docs/theory.md).

    Parameters
    ----------
    W : array_like, shape (n_out, n_hidden)
    b : array_like, shape (n_out,)
    D : array_like, shape (n_out, n_inputs), optional
        Direct term from the network input; ``None`` means no direct path.

    Examples
    --------
    >>> head = LinearHead(W=[[2.0, 0.0]], b=[1.0], D=[[0.5]])
    >>> head.n_in, head.n_out
    (2, 1)
    >>> head(np.array([1.0, 3.0]), np.array([4.0])).tolist()
    [5.0]
    """

    W: np.ndarray
    b: np.ndarray
    D: np.ndarray | None = None

    def __post_init__(self) -> None:
        W = as_matrix("LinearHead", "W", self.W, (None, None))
        object.__setattr__(self, "W", W)
        object.__setattr__(self, "b", as_matrix("LinearHead", "b", self.b, (W.shape[0],)))
        if self.D is not None:
            object.__setattr__(self, "D", as_matrix("LinearHead", "D", self.D, (W.shape[0], None)))

    @property
    def n_in(self) -> int:
        return self.W.shape[1]

    @property
    def n_out(self) -> int:
        return self.W.shape[0]

    def __call__(self, h: np.ndarray, u: np.ndarray) -> np.ndarray:
        y = h @ self.W.T + self.b
        if self.D is not None:
            y = y + u @ self.D.T
        return y


@dataclass(frozen=True)
class Simulation:
    """States ``x`` (T+1 rows, x[0] is the initial state) and outputs ``y`` (T rows) of a run.

    Returned by :meth:`Network.simulate`.

    >>> from certify.networks import ElmanLayer
    >>> net = Network(layers=(ElmanLayer(W=[[0.0]], U=[[1.0]], b=[0.0]),))
    >>> sim = net.simulate(np.zeros((5, 1)))
    >>> sim.x.shape, sim.y.shape
    ((6, 1), (5, 1))
    """

    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class Network:
    """A stack of recurrent layers with an optional linear head.

    The state vector is the concatenation of the layers' states, bottom layer first.  At step k,
    layer 0 reads the network input u(k); layer i>0 reads the *updated* output of layer i-1; the
    head reads the top layer's output (and optionally u(k)).

    >>> from certify.networks import ElmanLayer
    >>> layer = ElmanLayer(W=[[1.0]], U=[[0.5]], b=[0.0])
    >>> net = Network(layers=(layer,))
    >>> sim = net.simulate(np.ones((3, 1)))
    >>> sim.y.shape, sim.x.shape
    ((3, 1), (4, 1))
    """

    layers: tuple[Any, ...]
    head: LinearHead | None = None
    info: ModelInfo = field(default_factory=ModelInfo)

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        if not layers:
            raise WeightError("Network: at least one recurrent layer is required.")
        object.__setattr__(self, "layers", layers)
        for i in range(1, len(layers)):
            if layers[i].n_in != layers[i - 1].n_out:
                raise WeightError(
                    f"Network: layer {i} ({layers[i].kind}) expects {layers[i].n_in} inputs but layer "
                    f"{i - 1} ({layers[i - 1].kind}) outputs {layers[i - 1].n_out}."
                )
        if self.head is not None:
            if self.head.n_in != layers[-1].n_out:
                raise WeightError(
                    f"Network: the head expects {self.head.n_in} inputs but the top layer outputs "
                    f"{layers[-1].n_out}."
                )
            if self.head.D is not None and self.head.D.shape[1] != layers[0].n_in:
                raise WeightError(
                    f"Network: the head's direct term D has {self.head.D.shape[1]} columns but the network "
                    f"has {layers[0].n_in} inputs."
                )
        if self.info.input_range is not None and self.info.input_range.low.shape[0] != layers[0].n_in:
            raise WeightError(
                f"Network: the declared input range has {self.info.input_range.low.shape[0]} entries but the "
                f"network has {layers[0].n_in} inputs."
            )

    # --- sizes ---------------------------------------------------------------------------------
    @property
    def n_inputs(self) -> int:
        return self.layers[0].n_in

    @property
    def n_outputs(self) -> int:
        return self.head.n_out if self.head is not None else self.layers[-1].n_out

    @property
    def n_states(self) -> int:
        return sum(layer.n_state for layer in self.layers)

    @property
    def n_params(self) -> int:
        total = sum(n_params(layer) for layer in self.layers)
        if self.head is not None:
            total += n_params(self.head)
        return total

    @property
    def architecture(self) -> str:
        """The layer kind when all layers agree (``"gru"``, ``"lstm"``, ...), else ``"mixed"``."""
        kinds = {layer.kind for layer in self.layers}
        return kinds.pop() if len(kinds) == 1 else "mixed"

    def state_slices(self) -> list[slice]:
        out, start = [], 0
        for layer in self.layers:
            out.append(slice(start, start + layer.n_state))
            start += layer.n_state
        return out

    def with_info(self, info: ModelInfo) -> Network:
        return Network(layers=self.layers, head=self.head, info=info)

    # --- semantics -----------------------------------------------------------------------------
    def initial_state(self, batch: tuple[int, ...] = ()) -> np.ndarray:
        return np.zeros(batch + (self.n_states,))

    def step(self, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One step: ``(x(k+1), y(k))`` from ``x(k)`` and ``u(k)``; batches broadcast over leading dims."""
        x = np.asarray(x, dtype=np.float64)
        u = np.asarray(u, dtype=np.float64)
        if x.shape[-1] != self.n_states:
            raise WeightError(f"Network.step: x has {x.shape[-1]} states, the network has {self.n_states}.")
        if u.shape[-1] != self.n_inputs:
            raise WeightError(f"Network.step: u has {u.shape[-1]} entries, the network has {self.n_inputs} inputs.")
        parts, sig = [], u
        for layer, sl in zip(self.layers, self.state_slices()):
            xn, sig = layer.step(x[..., sl], sig)
            parts.append(xn)
        y = self.head(sig, u) if self.head is not None else sig
        return np.concatenate(parts, axis=-1), y

    def simulate(self, u_seq: np.ndarray, x0: np.ndarray | None = None) -> Simulation:
        """Run the network on ``u_seq`` of shape (T, n_inputs) or (T, batch..., n_inputs)."""
        u_seq = np.asarray(u_seq, dtype=np.float64)
        if u_seq.ndim < 2:
            raise WeightError("Network.simulate: u_seq must have shape (T, n_inputs) or (T, batch, n_inputs).")
        batch = u_seq.shape[1:-1]
        x = self.initial_state(batch) if x0 is None else np.broadcast_to(
            np.asarray(x0, dtype=np.float64), batch + (self.n_states,)
        ).copy()
        xs = np.empty((u_seq.shape[0] + 1,) + batch + (self.n_states,))
        ys = np.empty((u_seq.shape[0],) + batch + (self.n_outputs,))
        xs[0] = x
        for k in range(u_seq.shape[0]):
            x, y = self.step(x, u_seq[k])
            xs[k + 1] = x
            ys[k] = y
        return Simulation(x=xs, y=ys)

    def summary(self) -> dict[str, Any]:
        """Architecture summary for reports and ``certify inspect``."""
        return {
            "architecture": self.architecture,
            "n_inputs": self.n_inputs,
            "n_outputs": self.n_outputs,
            "n_states": self.n_states,
            "n_params": self.n_params,
            "layers": [layer.describe() for layer in self.layers],
            "head": None
            if self.head is None
            else {"n_in": self.head.n_in, "n_out": self.head.n_out, "direct_term": self.head.D is not None},
            "input_names": list(self.info.input_names),
            "output_names": list(self.info.output_names),
            "input_range": None if self.info.input_range is None else self.info.input_range.to_dict(),
            "input_scaling": None if self.info.input_scaling is None else self.info.input_scaling.to_dict(),
            "output_scaling": None if self.info.output_scaling is None else self.info.output_scaling.to_dict(),
            "source_format": self.info.source_format,
            "path": self.info.path,
            "sha256": self.info.sha256,
            **_import_notes(self.info),
        }


def _import_notes(info: ModelInfo) -> dict[str, list[str]]:
    """``{"notes": [...]}`` with the importer's warnings and notes (what it ignored or assumed), or ``{}``."""
    notes = [str(n) for key in ("warnings", "notes") for n in (info.extra.get(key) or ())]
    return {"notes": notes} if notes else {}


def finite_or_raise(owner: str, value: float) -> float:
    if not math.isfinite(value):
        raise WeightError(f"{owner}: non-finite value {value}.")
    return value
