"""Read an ONNX file safely (external data confined to the model's folder) and build the network.

Metadata keys read from ``metadata_props`` (all optional, JSON values; see docs/formats.md):

``certify.input_range``
    ``{"low": [...], "high": [...]}`` — the box of network inputs (network units).
``certify.input_scaling`` / ``certify.output_scaling``
    ``{"raw_low": [...], "raw_high": [...], "net_low": -1, "net_high": 1}`` — min-max scalings.
``certify.input_names`` / ``certify.output_names``
    JSON lists of signal names (default: the graph input/output names).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from certify.errors import ModelFileError, WeightError
from certify.networks import InputRange, MinMaxScaling, Network

META_INPUT_RANGE = "certify.input_range"
META_INPUT_SCALING = "certify.input_scaling"
META_OUTPUT_SCALING = "certify.output_scaling"
META_INPUT_NAMES = "certify.input_names"
META_OUTPUT_NAMES = "certify.output_names"


def parse_model(data: bytes, path: str) -> Any:
    """Parse ``data`` as an ONNX ModelProto or raise :class:`ModelFileError`.

    >>> try:
    ...     parse_model(b"garbage bytes", "x.onnx")
    ... except ModelFileError as e:
    ...     "not" in str(e)
    True
    """
    import onnx

    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # noqa: BLE001 - protobuf raises several types
        raise ModelFileError(
            f"{path} is not a readable ONNX model: the protobuf could not be parsed ({type(exc).__name__}). "
            "The file may be truncated or corrupted; re-export it."
        ) from None
    if model.ir_version <= 0 or not model.HasField("graph") or not model.graph.node:
        raise ModelFileError(
            f"{path} is not an ONNX model (no IR version or no graph nodes). The file may be truncated, "
            "empty, or another format saved with a .onnx name."
        )
    return model


def load_external(model: Any, path: str) -> dict[str, str]:
    """Load external tensor data, refusing any location that escapes the model's folder.

    Returns ``{location: sha256}`` of the external files read (the model's SHA-256 alone would not
    change when only the weights in ``model.onnx.data`` do).
    """
    import hashlib

    from onnx import TensorProto

    digests: dict[str, str] = {}

    folder = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    tensors = list(model.graph.initializer)
    tensors += [a.t for n in model.graph.node for a in n.attribute if a.HasField("t")]
    for t in tensors:
        if t.data_location != TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location", "")
        target = os.path.realpath(os.path.join(folder, loc))
        if os.path.isabs(loc) or os.path.commonpath([folder, target]) != folder:
            raise ModelFileError(
                f"{path}: tensor {t.name!r} points to external data {loc!r} outside the model's folder; "
                "certify only reads external data stored beside the model."
            )
        if not os.path.isfile(target):
            raise ModelFileError(
                f"{path}: tensor {t.name!r} needs the external data file {loc!r}, which is missing. Copy it "
                "next to the model (the exporter writes it as <model>.onnx.data)."
            )
        if loc not in digests:
            with open(target, "rb") as fh:
                digests[loc] = hashlib.sha256(fh.read()).hexdigest()
        offset, length = int(info.get("offset", 0)), info.get("length")
        with open(target, "rb") as fh:
            fh.seek(offset)
            raw = fh.read(-1 if length is None else int(length))
        if length is not None and len(raw) != int(length):
            raise ModelFileError(f"{path}: external data {loc!r} of tensor {t.name!r} is truncated.")
        t.raw_data = raw
        del t.external_data[:]
        t.data_location = TensorProto.DEFAULT
    return digests


def initializers(model: Any, path: str) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    out = {}
    for t in model.graph.initializer:
        try:
            out[t.name] = numpy_helper.to_array(t)
        except Exception as exc:  # noqa: BLE001
            raise ModelFileError(f"{path}: initializer {t.name!r} cannot be decoded ({exc}).") from None
    return out


def _meta_json(meta: dict[str, str], key: str, path: str) -> Any:
    if key not in meta:
        return None
    try:
        return json.loads(meta[key])
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}: metadata {key!r} is not valid JSON ({exc}).") from None


def input_range_from(obj: Any, where: str) -> InputRange | None:
    """``{"low": [...], "high": [...]}`` → :class:`InputRange` (``None`` passes through).

    >>> input_range_from({"low": [-1], "high": [2]}, "x").high.tolist()
    [2.0]
    """
    if obj is None:
        return None
    try:
        return InputRange(low=obj["low"], high=obj["high"])
    except (KeyError, TypeError) as exc:
        raise WeightError(f"{where}: an input range needs 'low' and 'high' lists ({exc}).") from None


def scaling_from(obj: Any, where: str) -> MinMaxScaling | None:
    """``{"raw_low", "raw_high", "net_low", "net_high"}`` → :class:`MinMaxScaling`.

    >>> scaling_from({"raw_low": [0], "raw_high": [10]}, "x").gain.tolist()
    [0.2]
    """
    if obj is None:
        return None
    try:
        return MinMaxScaling(raw_low=obj["raw_low"], raw_high=obj["raw_high"],
                             net_low=float(obj.get("net_low", -1.0)), net_high=float(obj.get("net_high", 1.0)))
    except (KeyError, TypeError, AttributeError) as exc:
        raise WeightError(f"{where}: a scaling needs 'raw_low' and 'raw_high' lists ({exc}).") from None


def load_onnx(data: bytes, path: str) -> tuple[Network, dict[str, Any]]:
    """Build the network from ONNX bytes; returns it with the metadata fields for :class:`ModelInfo`.

    >>> import certify
    >>> p = os.path.join(os.path.dirname(certify.__file__), os.pardir, "models_zoo", "gru_small.onnx")
    >>> net, fields = load_onnx(open(p, "rb").read(), p)
    >>> fields["input_names"], fields["extra"]["exporter"]
    (('u1', 'u2'), 'torch.onnx (legacy TorchScript)')
    """
    from certify.importers.onnx_graph import assemble_cell, assemble_sequence, graph_mode, interpret

    model = parse_model(data, path)
    external = load_external(model, path)
    inits = initializers(model, path)
    mode = graph_mode(model.graph, set(inits))
    values, ctx = interpret(model.graph, inits, mode)
    net, extra = (assemble_cell if mode == "cell" else assemble_sequence)(model.graph, values, ctx)
    meta = {p.key: p.value for p in model.metadata_props}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    extra.update({"producer": f"{model.producer_name} {model.producer_version}".strip(), "opset": opset,
                  "exporter": _exporter(model)})
    if external:
        extra["external_data_sha256"] = external
    in_names = _meta_json(meta, META_INPUT_NAMES, path)
    out_names = _meta_json(meta, META_OUTPUT_NAMES, path)
    graph_inputs = [i.name for i in model.graph.input if i.name not in inits]
    fields = {
        "input_names": tuple(in_names) if in_names else tuple(graph_inputs),
        "output_names": tuple(out_names) if out_names else tuple(o.name for o in model.graph.output),
        "input_range": input_range_from(_meta_json(meta, META_INPUT_RANGE, path), f"{path} metadata"),
        "input_scaling": scaling_from(_meta_json(meta, META_INPUT_SCALING, path), f"{path} metadata"),
        "output_scaling": scaling_from(_meta_json(meta, META_OUTPUT_SCALING, path), f"{path} metadata"),
        "extra": extra,
    }
    return net, fields


def _exporter(model: Any) -> str:
    """Best guess of the exporter from naming conventions (dynamo: ``val_*`` values, ``node_*`` nodes;
    legacy TorchScript: ``/module/Op_output_0`` and ``onnx::*`` names)."""
    if model.producer_name != "pytorch":
        return model.producer_name or "unknown"
    names = [i.name for i in model.graph.initializer] + [o for n in model.graph.node for o in n.output]
    if any(n.startswith("val_") for n in names) or any(n.name.startswith("node_") for n in model.graph.node):
        return "torch.onnx (dynamo)"
    return "torch.onnx (legacy TorchScript)"
