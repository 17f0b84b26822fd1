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

import os
from typing import Any

import numpy as np

from certify.errors import ModelFileError, UnsupportedModelError, WeightError
from certify.importers import onnx_proto
from certify.importers.limits import MAX_EXTERNAL_BYTES, Budget, RegularFile, ResourceLimitError, numel
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
    onnx_proto.preload()
    try:
        model = onnx_proto.parse_model(data)
    except (Exception, RecursionError, MemoryError) as exc:  # noqa: BLE001 - protobuf raises several types
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


def _tensors(model: Any) -> list[tuple[Any, str]]:
    """Every tensor stored in the model: initializers and tensor attributes (also in subgraphs)."""
    out = [(t, f"initializer {t.name!r}") for t in model.graph.initializer]

    def walk(graph: Any, depth: int) -> None:
        if depth > 64:
            raise ModelFileError("the ONNX graph nests subgraphs more than 64 levels deep; refused.")
        for n in graph.node:
            for a in n.attribute:
                if a.HasField("t"):
                    out.append((a.t, f"{n.op_type} node {n.name!r} attribute {a.name!r}"))
                out.extend((t, f"{n.op_type} node {n.name!r} attribute {a.name!r}") for t in a.tensors)
                if a.HasField("g"):
                    walk(a.g, depth + 1)
                for g in a.graphs:
                    walk(g, depth + 1)

    walk(model.graph, 0)
    return out


def check_declared_sizes(model: Any, path: str, budget: Budget) -> None:
    """Refuse sparse tensors and tensors whose declared size exceeds the element budget (before decoding).

    >>> import onnx.helper as oh
    >>> t = oh.make_tensor("W", 1, [1], [0.0]); t.dims[:] = [10**5, 10**5]
    >>> g = oh.make_graph([oh.make_node("Identity", ["u"], ["y"])], "g", [], [], [t])
    >>> try:
    ...     check_declared_sizes(oh.make_model(g), "m.onnx", Budget())
    ... except ResourceLimitError as e:
    ...     "10,000,000,000" in str(e)
    True
    """
    if len(model.graph.sparse_initializer) or any(
            a.HasField("sparse_tensor") or len(a.sparse_tensors) for n in model.graph.node for a in n.attribute):
        raise UnsupportedModelError(
            f"{path}: the model stores sparse tensors (sparse_initializer or a sparse Constant); certify reads "
            "dense weights only. Re-export with dense weights."
        )
    for t, where in _tensors(model):
        if any(d < 0 for d in t.dims):
            raise ModelFileError(f"{path}: {where} declares a negative dimension {list(t.dims)}.")
        budget.claim(numel(t.dims), f"{path}: {where} of shape {list(t.dims)}")
    budget.check("reading the model's tensors")


def load_external(model: Any, path: str, budget: Budget | None = None) -> list[tuple[str, str]]:
    """Load external tensor data, refusing any location that escapes the model's folder.

    Returns ``[(sha256, location), ...]`` of the external files read, sorted by location (the model's
    own SHA-256 would not change when only the weights in ``model.onnx.data`` do).
    """
    external = onnx_proto.proto().TensorProto.EXTERNAL
    budget = budget or Budget()
    folder = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    digests: dict[str, str] = {}
    for t, _where in _tensors(model):
        if t.data_location != external:
            continue
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location", "")
        target = os.path.realpath(os.path.join(folder, loc))
        if not loc or os.path.isabs(loc) or "\x00" in loc or os.path.commonpath([folder, target]) != folder \
                or target == folder:
            raise ModelFileError(
                f"{path}: tensor {t.name!r} points to external data {loc!r} outside the model's folder; "
                "certify only reads external data stored beside the model."
            )
        if not os.path.lexists(target):
            raise ModelFileError(
                f"{path}: tensor {t.name!r} needs the external data file {loc!r}, which is missing. Copy it "
                "next to the model (the exporter writes it as <model>.onnx.data)."
            )
        try:
            offset = int(info.get("offset", 0))
            length = None if info.get("length") is None else int(info["length"])
        except ValueError:
            raise ModelFileError(f"{path}: tensor {t.name!r} has a malformed external-data offset or length.") from None
        if offset < 0 or (length is not None and length < 0):
            raise ModelFileError(f"{path}: tensor {t.name!r} has a negative external-data offset or length.")
        with RegularFile(target, f"external data of {path}", MAX_EXTERNAL_BYTES) as f:
            if loc not in digests:
                digests[loc] = f.sha256(budget)
            if length is None:
                length = max(f.size - offset, 0)
            if length > 16 * max(numel(t.dims), 1) + 64:
                raise ModelFileError(
                    f"{path}: external data of tensor {t.name!r} declares {length:,} bytes for "
                    f"{numel(t.dims):,} elements; the file is inconsistent."
                )
            raw = f.read(offset, length)
        if len(raw) != length:
            raise ModelFileError(f"{path}: external data {loc!r} of tensor {t.name!r} is truncated.")
        t.raw_data = raw
        del t.external_data[:]
        t.data_location = onnx_proto.proto().TensorProto.DEFAULT
        budget.check("reading external data")
    return sorted((h, loc) for loc, h in digests.items())


def initializers(model: Any, path: str) -> dict[str, np.ndarray]:
    out = {}
    for t in model.graph.initializer:
        try:
            out[t.name] = onnx_proto.to_array(t)
        except Exception as exc:  # noqa: BLE001
            raise ModelFileError(f"{path}: initializer {t.name!r} cannot be decoded ({exc}).") from None
    return out


def validate(model: Any, path: str) -> Any:
    """Check the model as onnxruntime would before trusting its shapes; return the shape-inferred model.

    Runs ``onnx.checker.check_model(full_check=True)`` and strict shape inference with data
    propagation (ONNX IR spec; onnxruntime refuses models that fail them): ONNX's own native checker and
    inference, called without importing the ``onnx`` package's Python layer (:mod:`.onnx_proto`).
    """
    if not model.graph.output:
        raise ModelFileError(f"{path}: the ONNX graph declares no output; there is nothing to analyse. Re-export it.")
    for vi in list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info):
        t = vi.type.tensor_type
        if t.HasField("shape") and any(d.HasField("dim_value") and d.dim_value < 0 for d in t.shape.dim):
            raise ModelFileError(f"{path}: value {vi.name!r} declares a negative dimension; the file is malformed.")
    if model.ByteSize() > 2**31 - 1:
        raise ResourceLimitError(f"{path}: the model with its external data exceeds 2 GiB; refused.")
    try:
        onnx_proto.check_model_full(model)
        inferred = onnx_proto.infer_shapes_strict(model)
    except (Exception, RecursionError) as exc:  # noqa: BLE001 - checker/inference raise several types
        msg = " ".join(str(exc).split())
        msg = msg[:400] + ("…" if len(msg) > 400 else "")
        raise ModelFileError(
            f"{path} is not a valid ONNX model: {type(exc).__name__}: {msg} (onnx.checker and strict shape "
            "inference refuse it, and so would onnxruntime). Re-export the model."
        ) from None
    return inferred


def value_shapes(model: Any) -> dict[str, tuple[int | None, ...]]:
    """Declared or inferred shapes of every named value of the (shape-inferred) main graph."""
    out: dict[str, tuple[int | None, ...]] = {}
    g = model.graph
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            out[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
    for t in g.initializer:
        out[t.name] = tuple(int(d) for d in t.dims)
    return out


_SIMPLE_KEYWORDS = frozenset({"type", "required", "additionalProperties", "properties", "items", "minItems"})
_JSON_TYPES: dict[str, Any] = {"object": dict, "array": list, "string": str}


def plainly_valid(value: Any, schema: dict[str, Any]) -> bool:
    """True only when ``value`` (parsed JSON) certainly satisfies ``schema`` (JSON Schema 2020-12).

    Understands the keywords of the metadata schemas (``type`` object/array/number/string, ``required``,
    ``additionalProperties: false``, ``properties``, ``items``, ``minItems``) and answers ``False`` for
    any other keyword, so that the caller runs the full validator (``jsonschema``, imported only then),
    which also words the error. ``number`` excludes booleans, as JSON Schema does.

    >>> s = {"type": "array", "items": {"type": "number"}, "minItems": 1}
    >>> plainly_valid([1, 2.5], s), plainly_valid([True], s), plainly_valid([], s)
    (True, False, False)
    """
    if not isinstance(schema, dict) or not set(schema) <= _SIMPLE_KEYWORDS:
        return False
    kind = schema.get("type")
    if kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind in _JSON_TYPES:
        ok = isinstance(value, _JSON_TYPES[kind])
    else:
        return False
    if not ok:
        return False
    if kind == "object":
        props = schema.get("properties", {})
        if any(k not in value for k in schema.get("required", ())):
            return False
        extra = schema.get("additionalProperties", True)
        if extra is not True and (extra is not False or any(k not in props for k in value)):
            return False
        return all(k not in value or plainly_valid(value[k], sub) for k, sub in props.items())
    if any(k in schema for k in ("required", "properties", "additionalProperties")):
        return False
    if kind == "array":
        if len(value) < schema.get("minItems", 0):
            return False
        return "items" not in schema or all(plainly_valid(v, schema["items"]) for v in value)
    return not any(k in schema for k in ("items", "minItems"))


def _meta_json(meta: dict[str, str], key: str, path: str) -> Any:
    if key not in meta:
        return None
    from certify.importers.sidecar import METADATA_SCHEMAS, check_metadata_value, parse_json_text

    value = parse_json_text(meta[key], f"{path}: metadata {key!r}")
    schema = METADATA_SCHEMAS.get(key)
    if schema is not None and (onnx_proto.full_requested() or not plainly_valid(value, schema)):
        check_metadata_value(key, value, f"{path}: metadata {key!r}")  # jsonschema: the verdict and its wording
    return value


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


def load_onnx(data: bytes, path: str, budget: Budget | None = None) -> tuple[Network, dict[str, Any]]:
    """Build the network from ONNX bytes; returns it with the metadata fields for :class:`ModelInfo`.

    ``fields["files_sha256"]`` lists ``(sha256, location)`` of the external data files read.

    >>> import certify
    >>> p = os.path.join(os.path.dirname(certify.__file__), os.pardir, "models_zoo", "gru_small.onnx")
    >>> net, fields = load_onnx(open(p, "rb").read(), p)
    >>> fields["input_names"], fields["extra"]["exporter"]
    (('u1', 'u2'), 'torch.onnx (legacy TorchScript)')
    """
    from certify.importers.onnx_graph import (
        assemble_cell,
        assemble_sequence,
        graph_mode,
        interpret,
        refuse_foreign_domains,
    )

    budget = budget or Budget()
    model = parse_model(data, path)
    if len(model.functions):
        model = _inline_functions(model, path)
    refuse_foreign_domains(model.graph)
    check_declared_sizes(model, path, budget)
    external = load_external(model, path, budget)
    inferred = validate(model, path)
    inits = initializers(model, path)
    budget.check("decoding the model's weights")
    mode = graph_mode(model.graph, set(inits))
    values, ctx = interpret(model.graph, inits, mode, shapes=value_shapes(inferred), budget=budget)
    net, extra = (assemble_cell if mode == "cell" else assemble_sequence)(model.graph, values, ctx)
    meta = {p.key: p.value for p in model.metadata_props}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    extra.update({"producer": f"{model.producer_name} {model.producer_version}".strip(), "opset": opset,
                  "exporter": _exporter(model)})
    if external:
        extra["external_data_sha256"] = {loc: h for h, loc in external}
    in_names = _meta_json(meta, META_INPUT_NAMES, path)
    out_names = _meta_json(meta, META_OUTPUT_NAMES, path)
    ignored = set(extra.get("initial_state_inputs_ignored", ()))
    graph_inputs = [i.name for i in model.graph.input if i.name not in inits and i.name not in ignored]
    fields = {
        "input_names": tuple(in_names) if in_names else tuple(graph_inputs),
        "output_names": tuple(out_names) if out_names else tuple(o.name for o in model.graph.output),
        "input_range": input_range_from(_meta_json(meta, META_INPUT_RANGE, path), f"{path} metadata"),
        "input_scaling": scaling_from(_meta_json(meta, META_INPUT_SCALING, path), f"{path} metadata"),
        "output_scaling": scaling_from(_meta_json(meta, META_OUTPUT_SCALING, path), f"{path} metadata"),
        "extra": extra,
        "files_sha256": external,
    }
    return net, fields


def _inline_functions(model: Any, path: str) -> Any:
    """Inline model-local functions (the dynamo exporter may emit them) so every node is a standard op."""
    if len(model.functions) > 10_000:
        raise ModelFileError(f"{path}: the model defines {len(model.functions)} local functions; refused.")
    try:
        return onnx_proto.inline_local_functions(model)
    except (Exception, RecursionError) as exc:  # noqa: BLE001
        raise ModelFileError(f"{path}: the model's local functions cannot be inlined ({type(exc).__name__}).") from None


def _exporter(model: Any) -> str:
    """Best guess of the exporter from naming conventions (dynamo: ``val_*`` values, ``node_*`` nodes;
    legacy TorchScript: ``/module/Op_output_0`` and ``onnx::*`` names)."""
    if model.producer_name != "pytorch":
        return model.producer_name or "unknown"
    names = [i.name for i in model.graph.initializer] + [o for n in model.graph.node for o in n.output]
    if any(n.startswith("val_") for n in names) or any(n.name.startswith("node_") for n in model.graph.node):
        return "torch.onnx (dynamo)"
    return "torch.onnx (legacy TorchScript)"
