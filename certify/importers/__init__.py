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
(:mod:`certify.importers.sidecar`).  Only ``onnx`` is imported to read ONNX files; ``torch`` is
imported only for state dicts.

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

from certify.errors import ModelFileError, WeightError
from certify.networks import InputRange, ModelInfo, Network

__all__ = ["load_model", "sniff_format"]

_ZIP_MAGIC = b"PK\x03\x04"


def sniff_format(data: bytes) -> str:
    """``"torch_state_dict"`` for zip / pickle payloads, else ``"onnx"``.

    >>> sniff_format(b"PK\\x03\\x04..."), sniff_format(b"\\x08\\x08\\x12")
    ('torch_state_dict', 'onnx')
    """
    if data.startswith(_ZIP_MAGIC) or data[:1] == b"\x80":
        return "torch_state_dict"
    return "onnx"


def load_model(path: str | os.PathLike[str], *, input_range: InputRange | None = None) -> Network:
    """Read a model file into a canonical :class:`Network`.

    Parameters
    ----------
    path : str or PathLike
        An ONNX file (fused GRU/LSTM/RNN graph or a one-step cell graph with inputs ``u``, ``x``)
        or a PyTorch state dict (``.pt``; optional sidecar ``<file>.certify.json``).
    input_range : InputRange, optional
        Overrides the range stored in the model's metadata or sidecar.

    Returns
    -------
    Network
        The canonical float64 network with its :class:`ModelInfo`.

    Raises
    ------
    ModelFileError
        Missing, empty, truncated or unreadable file.
    UnsupportedModelError
        Unsupported operators (all listed at once), attributes or architectures.
    WeightError
        Non-finite weights or inconsistent shapes.

    Examples
    --------
    >>> import certify
    >>> zoo = os.path.join(os.path.dirname(certify.__file__), os.pardir, "models_zoo", "gru_small.onnx")
    >>> net = load_model(zoo)
    >>> net.summary()["architecture"], net.info.source_format, net.info.input_range.high.tolist()
    ('gru', 'onnx', [1.0, 1.0])
    """
    p = os.fspath(path)
    if not os.path.exists(p):
        raise ModelFileError(f"model file {p!r} does not exist. Check the path (it is relative to {os.getcwd()!r}).")
    if not os.path.isfile(p):
        raise ModelFileError(f"model path {p!r} is not a regular file.")
    try:
        with open(p, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ModelFileError(f"model file {p!r} cannot be read ({exc.strerror}).") from None
    if not data:
        raise ModelFileError(f"model file {p!r} is empty (0 bytes); the export or copy did not complete.")
    fmt = sniff_format(data)
    if fmt == "onnx":
        from certify.importers.onnx_load import load_onnx

        net, fields = load_onnx(data, p)
    else:
        from certify.importers.torch_state_dict import load_state_dict

        net, fields = load_state_dict(p)
    if input_range is not None:
        fields["input_range"] = input_range
    rng = fields.get("input_range")
    if rng is not None and rng.low.shape[0] != net.n_inputs:
        raise WeightError(
            f"{p}: the input range has {rng.low.shape[0]} entries but the network has {net.n_inputs} inputs."
        )
    info = ModelInfo(source_format=fmt, path=os.path.abspath(p), sha256=hashlib.sha256(data).hexdigest(), **fields)
    return net.with_info(info)
