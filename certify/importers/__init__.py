"""Model importers: ONNX files and PyTorch state dicts → canonical :class:`~certify.networks.Network`.

:func:`load_model` dispatches on the file's *content* (a zip or pickle header means a torch state
dict, anything else is parsed as ONNX protobuf), never on the extension alone.  The returned
network's :class:`~certify.networks.ModelInfo` carries ``source_format`` (``"onnx"`` or
``"torch_state_dict"``), the path, the file's SHA-256, signal names, the input range (argument >
model metadata / sidecar > ``None``), the scalings, and ``extra`` (producer, opset, exporter, …).

Metadata keys (ONNX ``metadata_props``; JSON values) — documented with examples in docs/formats.md:

* ``certify.input_range``: ``{"low": [...], "high": [...]}``
* ``certify.input_scaling`` / ``certify.output_scaling``:
  ``{"raw_low": [...], "raw_high": [...], "net_low": -1.0, "net_high": 1.0}``
* ``certify.input_names`` / ``certify.output_names``: JSON lists of names.

Torch state dicts read the same fields from a sidecar ``<file>.certify.json``
(:mod:`certify.importers.sidecar`).  ONNX files are read with the ``onnx`` distribution's protobuf
classes and its native checker, shape inference and inliner, without importing the ``onnx`` package's
Python layer (:mod:`certify.importers.onnx_proto`; ``CERTIFY_ONNX_FULL=1`` uses it); ``torch`` is
imported only for state dicts.

Untrusted input (:mod:`certify.importers.limits`): only regular files are read (FIFOs and devices are
refused without being opened), with size limits; ONNX models are validated as onnxruntime does
(``onnx.checker``, strict shape inference, initial-state shapes) before their shapes are trusted; an
element budget (``max_elements``) bounds declared tensor sizes and constant folding before anything is
allocated; an optional :class:`~certify.deadline.Deadline` bounds the time.  ``ModelInfo.sha256``
covers every file read (model, external data, sidecar; see docs/formats.md).

>>> import os, tempfile
>>> p = os.path.join(tempfile.mkdtemp(), "empty.onnx"); _ = open(p, "wb").close()
>>> try:
...     load_model(p)
... except ModelFileError as e:
...     print(type(e).__name__)
ModelFileError
"""

from __future__ import annotations

import hashlib
import os

from certify.deadline import NO_DEADLINE, Deadline
from certify.errors import ModelFileError, WeightError
from certify.importers.limits import (
    DEFAULT_MAX_ELEMENTS,
    MAX_MODEL_BYTES,
    Budget,
    ResourceLimitError,
    manifest_sha256,
    read_regular_file,
)
from certify.networks import InputRange, ModelInfo, Network

__all__ = ["ResourceLimitError", "load_model", "sniff_format"]

_ZIP_MAGIC = b"PK\x03\x04"


def sniff_format(data: bytes) -> str:
    """``"torch_state_dict"`` for zip / pickle payloads, else ``"onnx"``.

    >>> sniff_format(b"PK\\x03\\x04..."), sniff_format(b"\\x08\\x08\\x12")
    ('torch_state_dict', 'onnx')
    """
    if data.startswith(_ZIP_MAGIC) or data[:1] == b"\x80":
        return "torch_state_dict"
    return "onnx"


def load_model(path: str | os.PathLike[str], *, input_range: InputRange | None = None,
               max_elements: int = DEFAULT_MAX_ELEMENTS, deadline: Deadline | None = None) -> Network:
    """Read a model file into a canonical :class:`Network`.

    Parameters
    ----------
    path : str or PathLike
        An ONNX file (fused GRU/LSTM/RNN graph or a one-step cell graph with inputs ``u``, ``x``)
        or a PyTorch state dict (``.pt``; optional sidecar ``<file>.certify.json``).
    input_range : InputRange, optional
        Overrides the range stored in the model's metadata or sidecar.
    max_elements : int, optional
        Budget of tensor elements the import may create (declared weight sizes and everything constant
        folding builds), checked before allocating; default 10**8.
    deadline : Deadline, optional
        Checked while reading, validating and folding (:class:`~certify.deadline.DeadlineExceeded`).

    Returns
    -------
    Network
        The canonical float64 network with its :class:`ModelInfo`.  ``info.sha256`` covers every file
        read (model, external data, sidecar; docs/formats.md); ``info.extra["notes"]`` and
        ``info.extra["warnings"]`` (lists of str) say what was ignored or assumed.

    Raises
    ------
    ModelFileError
        Missing, empty, truncated, unreadable or invalid file (also FIFOs, devices, directories).
    UnsupportedModelError
        Unsupported operators (all listed at once), attributes or architectures.
    WeightError
        Non-finite weights or inconsistent shapes.
    ResourceLimitError
        The model would exceed ``max_elements`` or a file-size limit.

    Examples
    --------
    >>> import certify
    >>> zoo = os.path.join(os.path.dirname(certify.__file__), os.pardir, "models_zoo", "gru_small.onnx")
    >>> net = load_model(zoo)
    >>> net.summary()["architecture"], net.info.source_format, net.info.input_range.high.tolist()
    ('gru', 'onnx', [1.0, 1.0])
    """
    p = os.fspath(path)
    budget = Budget(max_elements=int(max_elements), deadline=deadline or NO_DEADLINE)
    data = read_regular_file(p, "model file", MAX_MODEL_BYTES)
    if not data:
        raise ModelFileError(f"model file {p!r} is empty (0 bytes); the export or copy did not complete.")
    files = [(hashlib.sha256(data).hexdigest(), os.path.basename(p))]
    fmt = sniff_format(data)
    try:
        if fmt == "onnx":
            from certify.importers.onnx_load import load_onnx

            net, fields = load_onnx(data, p, budget)
        else:
            from certify.importers.torch_state_dict import load_state_dict

            net, fields = load_state_dict(p, budget, data=data)
    except RecursionError:
        raise ModelFileError(f"model file {p!r} nests structures too deeply to be read; refused.") from None
    except MemoryError:
        raise ResourceLimitError(
            f"model file {p!r} needs more memory than is available; it declares tensors far larger than any "
            "network certify can analyse."
        ) from None
    files += fields.pop("files_sha256", [])
    if input_range is not None:
        fields["input_range"] = input_range
    rng = fields.get("input_range")
    if rng is not None and rng.low.shape[0] != net.n_inputs:
        raise WeightError(
            f"{p}: the input range has {rng.low.shape[0]} entries but the network has {net.n_inputs} inputs."
        )
    extra = dict(fields.pop("extra", {}))
    if len(files) > 1:
        extra["files_sha256"] = {name: h for h, name in files}
    info = ModelInfo(source_format=fmt, path=os.path.abspath(p), sha256=manifest_sha256(files), extra=extra,
                     **fields)
    return net.with_info(info)
