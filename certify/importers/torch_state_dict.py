"""PyTorch state dicts (``torch.save(model.state_dict())``) → canonical network.

Loaded with ``torch.load(path, weights_only=True, map_location="cpu")`` only: certify never
unpickles code.  The architecture is inferred from key names of ``nn.GRU``/``nn.LSTM``/``nn.RNN``
(``<prefix>weight_ih_l{k}`` …; any prefix such as ``rnn.``/``gru.``/``lstm.``; the gate count
``rows(weight_hh) / hidden`` tells GRU (3) / LSTM (4) / RNN (1)) plus an optional ``nn.Linear``
head (``fc.``/``head.``/``linear.``/``out.``/``readout.`` or any single ``weight``/``bias`` pair).
PyTorch gate orders: GRU ``[r|z|n]``, LSTM ``[i|f|g|o]``.  The sidecar ``<file>.certify.json``
(:mod:`certify.importers.sidecar`) supplies what weights cannot tell: the GRU reset convention,
the RNN nonlinearity (required: weights cannot tell tanh from relu), the LP-GRNN / SS-NN architectures, names, ranges and scalings.
A checkpoint dict whose ``"state_dict"``, ``"model_state_dict"`` or ``"model"`` (…) entry holds the
state dict is accepted too (PyTorch tutorial checkpoints); ``module.`` prefixes (DataParallel) are dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from certify.errors import InvalidInputError, ModelFileError, UnsupportedModelError, WeightError
from certify.importers.limits import Budget, ResourceLimitError
from certify.importers.onnx_load import input_range_from, scaling_from
from certify.importers.sidecar import read_sidecar, sidecar_path
from certify.importers.torch_layout import layer_from_torch_weights
from certify.networks import LinearHead, LPGRNNLayer, Network, StateSpaceLayer

HEAD_PREFIXES = ("fc.", "head.", "linear.", "out.", "readout.", "output.", "")
_RNN_KEY = re.compile(r"^(?P<prefix>.*?)(?P<name>weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(?P<k>\d+)"
                      r"(?P<rev>_reverse)?$")


#: checkpoint keys that hold the model's state dict (PyTorch tutorial / Lightning-style checkpoints)
CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "module")


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise InvalidInputError(
            "reading a PyTorch state dict needs PyTorch, which is not installed: install the torch extra: "
            "pip install 'certify[torch]' (or export the model to ONNX, which certify reads without torch)."
        ) from None
    return torch


def _unwrap(obj: Any, path: str) -> Any:
    """A checkpoint dict ``{"model_state_dict": {...}, "epoch": ..., ...}`` → the state dict inside it."""
    torch = _torch()
    if not isinstance(obj, Mapping) or all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    inner = [k for k in CHECKPOINT_KEYS if isinstance(obj.get(k), Mapping)]
    if len(inner) > 1:
        raise ModelFileError(
            f"{path} is a checkpoint with several candidate state dicts ({', '.join(inner)}); save the model's "
            "state dict alone with torch.save(model.state_dict(), path)."
        )
    return obj[inner[0]] if inner else obj


def _check_zip(data: bytes, path: str, budget: Budget) -> None:
    """Refuse zip archives whose entries would expand beyond the element budget (a zip bomb) before
    torch reads them: weights are at most 8 bytes per element."""
    import io
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, RecursionError) as exc:
        raise ModelFileError(f"{path} is not a readable PyTorch file (a damaged zip archive: {exc}).") from None
    limit = 8 * budget.max_elements + 2**20
    total = sum(max(i.file_size, 0) for i in infos)
    if len(infos) > 100_000 or total > limit:
        raise ResourceLimitError(
            f"{path}: the archive expands to {total:,} bytes in {len(infos):,} entries, more than the "
            f"{limit:,} bytes the element budget allows (load_model(..., max_elements=N) raises it)."
        )


def read_tensors(path: str, budget: Budget | None = None, data: bytes | None = None) -> dict[str, np.ndarray]:
    """``torch.load(weights_only=True)`` → float64 arrays, with clear errors.

    ``data`` (the file's bytes, already read and hashed) is loaded instead of re-reading ``path``.

    >>> import os, tempfile, torch
    >>> p = os.path.join(tempfile.mkdtemp(), "w.pt"); torch.save({"a": torch.ones(2)}, p)
    >>> read_tensors(p)["a"].dtype
    dtype('float64')
    """
    import io
    import pickle

    torch = _torch()
    budget = budget or Budget()
    src: Any = io.BytesIO(data) if data is not None else path
    if data is not None and data[:4] == b"PK\x03\x04":
        _check_zip(data, path, budget)
    try:
        obj = torch.load(src, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        msg = str(exc)
        if "weights_only" in msg or "Weights only load failed" in msg or "Unsupported global" in msg:
            raise ModelFileError(
                f"{path} contains pickled Python objects that a weights-only load refuses (it could run code). "
                "certify never unpickles code: save the model with torch.save(model.state_dict(), path)."
            ) from None
        raise ModelFileError(f"{path} is not a readable PyTorch file ({msg.splitlines()[0] if msg else exc}).") from None
    except (RecursionError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - zip/pickle/EOF errors all mean a broken file
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise ModelFileError(
            f"{path} is not a readable PyTorch state dict ({type(exc).__name__}: {first}). "
            "The file may be truncated or corrupted."
        ) from None
    obj = _unwrap(obj, path)
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelFileError(
            f"{path} does not hold a state dict (a mapping of names to tensors); save model.state_dict()."
        )
    if all(str(k).startswith("module.") for k in obj):  # nn.DataParallel / DistributedDataParallel
        obj = {str(k)[len("module."):]: v for k, v in obj.items()}
    out = {}
    for k, v in obj.items():
        if v.layout != torch.strided:
            raise UnsupportedModelError(
                f"{path}: tensor {k!r} is stored in the {str(v.layout).replace('torch.', '')} layout; certify "
                "reads dense weights only. Save v.to_dense() (model.state_dict() of a dense model)."
            )
        if v.is_quantized:
            raise UnsupportedModelError(
                f"{path}: tensor {k!r} is quantized ({v.dtype}); certify analyses the float network. Save the "
                "state dict of the float model (before quantization)."
            )
        if v.is_complex():
            raise UnsupportedModelError(f"{path}: tensor {k!r} has dtype {v.dtype}; certify reads real weights.")
        if v.device.type == "meta":
            raise ModelFileError(f"{path}: tensor {k!r} has no data (meta device).")
        budget.claim(int(v.numel()), f"{path}: tensor {k!r} of shape {tuple(v.shape)}")
        out[str(k)] = v.detach().cpu().double().numpy()
        budget.check("reading the state dict")
    return out


def _take(t: dict[str, np.ndarray], key: str, shape: tuple[int, ...], path: str) -> np.ndarray:
    if key not in t:
        raise WeightError(f"{path}: the state dict has no {key!r}.")
    v = t.pop(key)
    if v.shape != shape:
        raise WeightError(f"{path}: {key} has shape {tuple(v.shape)}, expected {shape}.")
    return v


def _torch_rnn(t: dict[str, np.ndarray], side: dict[str, Any], path: str) -> list[Any]:
    hits = [(m, k) for k in t if (m := _RNN_KEY.match(k))]
    if any(m["rev"] for m, _ in hits):
        raise UnsupportedModelError(
            f"{path}: the network is bidirectional ('_reverse' keys); a bidirectional RNN reads future inputs and "
            "is not a causal state-space model. Train a unidirectional network."
        )
    if any(m["name"] == "weight_hr" for m, _ in hits):
        raise UnsupportedModelError(f"{path}: the LSTM uses proj_size (weight_hr keys); projected LSTMs are not supported.")
    if any(m["name"] == "weight_hh" and t[k].ndim == 2 and t[k].shape[0] == t[k].shape[1] for m, k in hits) \
            and side.get("nonlinearity") is None:
        p_side = sidecar_path(path)
        example = json.dumps({"format": "certify.sidecar", "version": 1, "architecture": "rnn",
                              "nonlinearity": "tanh"})
        raise UnsupportedModelError(
            f"{path} holds nn.RNN weights, and a state dict cannot tell whether the network uses tanh or relu "
            "(the two behave completely differently, and certify never assumes). Write the sidecar "
            f"{p_side!r} with the nonlinearity of your nn.RNN, e.g. {example} (or \"nonlinearity\": \"relu\"), "
            "or export the model to ONNX, which records it."
        )
    prefixes = {m["prefix"] for m, _ in hits}
    if len(prefixes) != 1:
        raise UnsupportedModelError(f"{path}: recurrent weights under several prefixes {sorted(prefixes)}; expected one stack.")
    p = prefixes.pop()
    L = 1 + max(int(m["k"]) for m, _ in hits)
    layers: list[Any] = []
    arch = side.get("architecture")
    for k in range(L):
        U = t.get(f"{p}weight_hh_l{k}")
        W = t.get(f"{p}weight_ih_l{k}")
        if U is None or W is None or U.ndim != 2 or W.ndim != 2:
            raise WeightError(f"{path}: layer {k} needs 2-D {p}weight_ih_l{k} and {p}weight_hh_l{k}.")
        H = U.shape[1]
        G = U.shape[0] // H if H else 0
        if G not in (1, 3, 4) or G * H != U.shape[0]:
            raise WeightError(f"{path}: {p}weight_hh_l{k} has shape {U.shape}; expected (G*H, H) with G in 1, 3, 4.")
        kind = {1: "rnn", 3: "gru", 4: "lstm"}[G]
        if arch is not None and arch != kind:
            raise WeightError(f"{path}: the sidecar says {arch!r} but the weight shapes are those of a {kind!r}.")
        m_in = layers[-1].n_out if layers else W.shape[1]
        W = _take(t, f"{p}weight_ih_l{k}", (G * H, m_in), path)
        U = _take(t, f"{p}weight_hh_l{k}", (G * H, H), path)
        has_b = f"{p}bias_ih_l{k}" in t or f"{p}bias_hh_l{k}" in t
        bi = _take(t, f"{p}bias_ih_l{k}", (G * H,), path) if has_b else np.zeros(G * H)
        bh = _take(t, f"{p}bias_hh_l{k}", (G * H,), path) if has_b else np.zeros(G * H)
        layers.append(layer_from_torch_weights(kind, W, U, bi, bh, reset_after=bool(side.get("reset_after", True)),
                                                nonlinearity=side.get("nonlinearity", "tanh")))
    found = {"n_in": layers[0].n_in, "hidden": layers[0].n_out, "num_layers": len(layers)}
    bad = [f"{k!r} is {side[k]} but the weights have {v}" for k, v in found.items() if k in side and side[k] != v]
    if bad:
        raise WeightError(f"{path}: the sidecar does not describe these weights: {'; '.join(bad)}.")
    return layers


def _head(t: dict[str, np.ndarray], n_top: int, path: str) -> LinearHead | None:
    """The ``nn.Linear`` read-out: a known prefix first, else the only remaining 2-D ``*.weight``."""
    pre = next((p for p in HEAD_PREFIXES if f"{p}weight" in t), None)
    if pre is None:
        cands = [k[: -len("weight")] for k in t if k.endswith(".weight") and t[k].ndim == 2]
        if len(cands) != 1:
            return None
        pre = cands[0]
    W = t.pop(f"{pre}weight")
    if W.ndim != 2 or W.shape[1] != n_top:
        raise WeightError(f"{path}: head {pre}weight has shape {tuple(W.shape)}, expected (n_out, {n_top}).")
    b = t.pop(f"{pre}bias", np.zeros(W.shape[0]))
    if b.shape != (W.shape[0],):
        raise WeightError(f"{path}: head {pre}bias has shape {tuple(b.shape)}, expected ({W.shape[0]},).")
    return LinearHead(W=W, b=b)


def _bypass(t: dict[str, np.ndarray], n_in: int, path: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The head's direct term ``D u`` (``bypass``, an ``nn.Linear(n_in, n_out)`` next to the head, as
    :meth:`certify.train.modules._Stacked.add_bypass` writes it): ``(D, bias)``, or None."""
    if "bypass.weight" not in t:
        return None
    D = t.pop("bypass.weight")
    if D.ndim != 2 or D.shape[1] != n_in:
        raise WeightError(f"{path}: bypass.weight has shape {tuple(D.shape)}, expected (n_out, {n_in}).")
    c = t.pop("bypass.bias", np.zeros(D.shape[0]))
    if c.shape != (D.shape[0],):
        raise WeightError(f"{path}: bypass.bias has shape {tuple(c.shape)}, expected ({D.shape[0]},).")
    return D, c


def _lpgrnn(t: dict[str, np.ndarray], path: str) -> list[Any]:
    layers, k = [], 0
    while f"layers.{k}.W_h" in t:
        g = {n: t.pop(f"layers.{k}.{n}") for n in ("W_r", "U_r", "b_r", "W_h", "U_h", "V_h", "b_h", "theta_z")
             if f"layers.{k}.{n}" in t}
        if len(g) != 8:
            raise WeightError(f"{path}: LP-GRNN layer {k} is missing weights (has {sorted(g)}).")
        theta = g.pop("theta_z")
        layers.append(LPGRNNLayer(**g, z=1.0 / (1.0 + np.exp(-theta))))
        k += 1
    if not layers:
        raise WeightError(f"{path}: the sidecar says 'lpgrnn' but there are no 'layers.0.*' weights.")
    return layers


def _ssnn(t: dict[str, np.ndarray], side: dict[str, Any], path: str) -> list[Any]:
    names = ("A", "B", "C", "D", "W_fx", "W_fu", "b_f", "W_x", "b_x", "W_gx", "W_gu", "b_g", "W_y", "b_y")
    missing = [n for n in names if n not in t]
    if missing:
        raise WeightError(f"{path}: the sidecar says 'ssnn' but weights {missing} are missing.")
    return [StateSpaceLayer(**{n: t.pop(n) for n in names}, activation=side.get("activation", "tanh"))]


def load_state_dict(path: str, budget: Budget | None = None,
                    data: bytes | None = None) -> tuple[Network, dict[str, Any]]:
    """Build the network from a state dict file; returns it with the :class:`ModelInfo` fields.

    >>> import os, tempfile, torch
    >>> p = os.path.join(tempfile.mkdtemp(), "g.pt"); torch.save(torch.nn.GRU(2, 3).state_dict(), p)
    >>> net, fields = load_state_dict(p)
    >>> net.architecture, net.head is None
    ('gru', True)
    """
    files: list[tuple[str, str]] = []
    side = read_sidecar(path, files)
    t = read_tensors(path, budget, data)
    for k, v in t.items():
        if not np.all(np.isfinite(v)):
            raise WeightError(f"{path}: {k} contains NaN or Inf values; a non-finite network cannot be analysed.")
    arch = side.get("architecture")
    if arch == "lpgrnn":
        layers = _lpgrnn(t, path)
    elif arch == "ssnn":
        layers = _ssnn(t, side, path)
    elif any(_RNN_KEY.match(k) for k in t):
        layers = _torch_rnn(t, side, path)
    else:
        raise UnsupportedModelError(
            f"{path}: no nn.GRU/nn.LSTM/nn.RNN weights (…weight_ih_l0) were found and no sidecar "
            f"{sidecar_path(path)!r} names the architecture. Keys: {sorted(t)[:12]}."
        )
    bypass = _bypass(t, layers[0].n_in, path) if arch != "ssnn" else None
    head = None if arch == "ssnn" else _head(t, layers[-1].n_out, path)
    if bypass is not None:
        if head is None:
            raise WeightError(f"{path}: 'bypass.weight' (a direct input-to-output term) needs a linear head "
                              "('head.weight'/'fc.weight'), which the state dict does not have.")
        D, c = bypass
        if D.shape[0] != head.n_out:
            raise WeightError(f"{path}: bypass.weight has {D.shape[0]} rows but the head has {head.n_out} outputs.")
        head = LinearHead(W=head.W, b=head.b + c, D=D)
    if t:
        raise UnsupportedModelError(f"{path}: state dict entries certify does not understand: {sorted(t)}.")
    net = Network(layers=tuple(layers), head=head)
    fields: dict[str, Any] = {
        "input_names": tuple(side.get("input_names", ())),
        "output_names": tuple(side.get("output_names", ())),
        "input_range": input_range_from(side.get("input_range"), f"{sidecar_path(path)}"),
        "input_scaling": scaling_from(side.get("input_scaling"), f"{sidecar_path(path)}"),
        "output_scaling": scaling_from(side.get("output_scaling"), f"{sidecar_path(path)}"),
        "extra": {"sidecar": bool(side), "architecture_source": "sidecar" if arch else "key names"},
        "files_sha256": files,
    }
    if any(getattr(layer, "kind", "") == "gru" for layer in layers) and "reset_after" not in side:
        fields["extra"]["notes"] = [
            "GRU reset convention not stated in a sidecar: the PyTorch nn.GRU convention (reset gate applied "
            "after U_n h + b_hn, reset_after=true) is assumed; write \"reset_after\": false in the sidecar for "
            "a Cho-style GRU"
        ]
    return net, fields
