"""The layer-kind registry: one row per architecture, read by every stage that depends on the kind.

Each :class:`LayerKind` says what certify knows about one layer class: whether it is Hadamard-gated (GRU,
LSTM: no exact SNOF, Hilgert & Schwung 2025, Prop. IV.2, so only the closed-form δISS/ISS tests of Bonassi,
Farina & Scattolini 2021 and Bonassi et al. 2023 apply), which closed-form test applies
(:mod:`certify.criteria.diss`), its SNOF conversion (:mod:`certify.snof.convert`), its torch twin
(:mod:`certify.train.modules`), its name and keys in a state-dict sidecar (:mod:`certify.importers.sidecar`),
and the facts the counterexample search uses (:mod:`certify.falsify`): a bound every equilibrium state
satisfies, the box starts are drawn from, and whether states can grow without bound.

Implementations in other packages are named by ``"module:attribute"`` strings and imported only when used
(:func:`resolve`): this package stays at the bottom of the import layers, and the core never imports the
torch side (``certify.train``).

>>> [k.name for k in KINDS.values() if k.gated]
['gru', 'lstm']
>>> kind_of(ElmanLayer(W=[[1.0]], U=[[0.5]], b=[0.0])).diss_test
'certify.criteria.diss_affine:elman_checks'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from certify.networks.affine_cell import AffineCell
from certify.networks.elman import ElmanLayer
from certify.networks.gru import GRULayer
from certify.networks.lpgrnn import LPGRNNLayer
from certify.networks.lstm import LSTMLayer
from certify.networks.state_space import StateSpaceLayer

__all__ = ["GATED_KINDS", "KINDS", "SIDECAR_ARCHITECTURES", "LayerKind", "kind_named", "kind_of", "resolve"]


def _ones(layer: Any) -> np.ndarray:
    return np.ones(layer.n_state)


def _unbounded(layer: Any) -> np.ndarray:
    return np.full(layer.n_state, np.inf)


def _wide(layer: Any) -> np.ndarray:
    return np.full(layer.n_state, 3.0)


def _lstm_bound(layer: Any) -> np.ndarray:  # [h; c]: |h| ≤ 1, the cell state has no a-priori bound
    return np.concatenate([np.ones(layer.hidden), np.full(layer.hidden, np.inf)])


def _lstm_scale(layer: Any) -> np.ndarray:
    return np.concatenate([np.ones(layer.hidden), np.full(layer.hidden, 3.0)])


def _elman_bound(layer: Any) -> np.ndarray:  # tanh states lie in [−1, 1]; relu states are unbounded
    return _ones(layer) if layer.activation == "tanh" else _unbounded(layer)


def _elman_scale(layer: Any) -> np.ndarray:
    return _wide(layer) if layer.activation == "relu" else _ones(layer)


def _lpgrnn_bound(layer: Any) -> np.ndarray:  # h⁺ = z h + (1 − z) tanh(·): |h| ≤ 1 is invariant for z ≠ 1
    return _ones(layer) if np.all(layer.z != 1.0) else _unbounded(layer)


def _never(layer: Any) -> bool:
    return False


def _always(layer: Any) -> bool:
    return True


@dataclass(frozen=True)
class LayerKind:
    """What certify knows about one layer kind (one row of :data:`KINDS`).

    Attributes
    ----------
    name : str
        The layer's ``kind`` (``Network.architecture`` when every layer has it).
    layer_class : type
        The canonical layer class (:mod:`certify.networks`).
    gated : bool
        Hadamard gating (GRU, LSTM): no exact SNOF, no LMI; closed-form δISS/ISS tests only.
    diss_test : str
        ``"module:function"`` of the closed-form ISS/δISS test (``fn(layer, LayerContext) → LayerOutcome``).
    snof : str or None
        ``"module:function"`` of the exact SNOF conversion of one layer; None for gated kinds.
    torch_module : str or None
        ``"module:class"`` of the torch twin that ``certify retrain`` trains (imported lazily).
    sidecar_architecture : str or None
        The state-dict sidecar's ``architecture`` for this kind; None: no state-dict layout (read from ONNX).
    sidecar_keys : tuple of str
        Sidecar keys specific to this kind (besides ``architecture``, sizes, names, ranges, scalings).
    state_size : callable
        ``layer → number of state entries`` (the layer's share of the network state).
    state_bound : callable
        ``layer → per-state bound every equilibrium satisfies`` (``inf`` where none is known).
    start_scale : callable
        ``layer → per-state half-width of the box counterexample searches draw starts from``.
    can_grow : callable
        ``layer → whether states can grow without bound`` (divergence is a possible counterexample).
    """

    name: str
    layer_class: type
    gated: bool
    diss_test: str
    snof: str | None
    torch_module: str | None
    sidecar_architecture: str | None
    sidecar_keys: tuple[str, ...]
    state_size: Callable[[Any], int]
    state_bound: Callable[[Any], np.ndarray]
    start_scale: Callable[[Any], np.ndarray]
    can_grow: Callable[[Any], bool]


_N = lambda layer: int(layer.n_state)  # noqa: E731

#: One row per layer kind, keyed by ``kind``.
KINDS: dict[str, LayerKind] = {k.name: k for k in (
    LayerKind("gru", GRULayer, True, "certify.criteria.diss_gated:gru_checks", None,
              "certify.train.modules:GRUNet", "gru", ("reset_after",), _N, _ones, _ones, _never),
    LayerKind("lstm", LSTMLayer, True, "certify.criteria.diss_gated:lstm_checks", None,
              "certify.train.modules:LSTMNet", "lstm", (), _N, _lstm_bound, _lstm_scale, _never),
    LayerKind("elman", ElmanLayer, False, "certify.criteria.diss_affine:elman_checks",
              "certify.snof.convert:elman_snof", "certify.train.modules:ElmanNet", "rnn", ("nonlinearity",), _N,
              _elman_bound, _elman_scale, lambda layer: layer.activation == "relu"),
    LayerKind("lpgrnn", LPGRNNLayer, False, "certify.criteria.diss_affine:lpgrnn_checks",
              "certify.snof.convert:lpgrnn_snof", "certify.train.modules:LPGRNNNet", "lpgrnn", ("gate",), _N,
              _lpgrnn_bound, _ones, lambda layer: bool(np.any(np.abs(layer.z) >= 1.0))),
    LayerKind("ssnn", StateSpaceLayer, False, "certify.criteria.diss_affine:ssnn_checks",
              "certify.snof.convert:ssnn_snof", "certify.train.modules:SSNN", "ssnn",
              ("n_state", "neurons_state", "neurons_output", "activation", "linear"), _N, _unbounded, _wide,
              _always),
    LayerKind("affine_cell", AffineCell, False, "certify.criteria.diss_affine:affine_cell_checks",
              "certify.snof.convert:affine_cell_snof", "certify.train.cells:AffineCellNet", None, (), _N,
              _unbounded, _wide, _always),
)}

#: The Hadamard-gated kinds (no exact SNOF; the LMI does not apply).
GATED_KINDS: frozenset[str] = frozenset(k.name for k in KINDS.values() if k.gated)

#: The sidecar ``architecture`` values (state-dict layouts), in registry order.
SIDECAR_ARCHITECTURES: tuple[str, ...] = tuple(k.sidecar_architecture for k in KINDS.values()
                                               if k.sidecar_architecture is not None)


def kind_of(layer: Any) -> LayerKind:
    """The registry row of ``layer`` (by its class; subclasses count).

    >>> kind_of(ElmanLayer(W=[[1.0]], U=[[0.5]], b=[0.0])).name
    'elman'

    Raises
    ------
    KeyError
        ``layer`` is no registered layer class.
    """
    for k in KINDS.values():
        if isinstance(layer, k.layer_class):
            return k
    raise KeyError(f"no registered layer kind for {type(layer).__name__}")


def kind_named(name: str) -> LayerKind:
    """The registry row of a kind name or a sidecar architecture name (``"rnn"`` is ``elman``).

    >>> kind_named("rnn").name
    'elman'
    """
    if name in KINDS:
        return KINDS[name]
    for k in KINDS.values():
        if k.sidecar_architecture == name:
            return k
    raise KeyError(f"unknown layer kind {name!r}; known: {', '.join(KINDS)}")


def resolve(ref: str) -> Any:
    """Import ``"module:attribute"`` and return the attribute.

    >>> resolve("certify.networks.kinds:kind_of") is kind_of
    True
    """
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)
