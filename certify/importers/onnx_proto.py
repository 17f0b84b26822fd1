"""ONNX protobufs, checker, shape inference and tensor decoding without the ``onnx`` package's Python layer.

``import onnx`` runs ``onnx/__init__.py``, which imports ``onnx.helper`` and through it ``ml_dtypes``
(a C++ extension registering exotic float types with numpy); on the development machine that alone
costs 0.4–0.7 s, more than everything else a check of a small GRU does apart from the counterexample
search. certify needs none of it to read the models it accepts. This module loads the two pieces of
the installed ``onnx`` distribution it does need, by file path, without executing ``onnx/__init__.py``:

* ``onnx/onnx_ml_pb2.py``, the generated protobuf classes (``ModelProto``, ``TensorProto`` …), parsed by
  ``google.protobuf`` alone;
* ``onnx/onnx_cpp2py_export``, the C++ extension behind ``onnx.checker.check_model``,
  ``onnx.shape_inference.infer_shapes`` and ``onnx.inliner``. The *same* native checker, strict shape
  inference and inliner run, called with the same arguments the Python wrappers pass, so no validation
  is weakened or re-implemented.

A later ``import onnx`` in the same process works as usual: the message classes live in protobuf's
default descriptor pool, so ``onnx.ModelProto`` is the very class :func:`proto` returned, and the
native module is registered under its own name (``onnx.onnx_cpp2py_export``), so it is never
initialised twice (the one difference: the attribute ``onnx.onnx_cpp2py_export`` of a package imported
after certify's first read is bound at certify's next read; ``import onnx.onnx_cpp2py_export.checker``
and the ``onnx`` package's own uses go through ``sys.modules`` and work throughout).

:func:`to_array` decodes the tensor element types certify's graphs use (float16/32/64, the signed and
unsigned integers, bool, complex) exactly as ``onnx.numpy_helper.to_array`` does (the same numpy
calls, so bit-identical arrays and the same errors); any other element type (bfloat16, float8, 4-bit
and 2-bit types, strings), external data or a big-endian host falls back to ``onnx.numpy_helper``
itself, which is then imported. :func:`attribute_value` mirrors ``onnx.helper.get_attribute_value``.

Setting the environment variable ``CERTIFY_ONNX_FULL=1`` makes every function here use the ``onnx``
package instead (``onnx.load_from_string``, ``onnx.checker``, ``onnx.shape_inference``,
``onnx.inliner``, ``onnx.numpy_helper``, ``onnx.helper``): the reference the tests compare with, and the
"before" of ``benchmarks/cli_startup.py``.

>>> import numpy as np
>>> t = proto().TensorProto(data_type=1, dims=[2], float_data=[0.5, -2.0])
>>> to_array(t).tolist(), to_array(t).dtype.name
([0.5, -2.0], 'float32')
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
from types import ModuleType
from typing import Any

import numpy as np

#: Environment variable that forces the ``onnx`` package's Python layer (``1``; unset or ``0``: fast path).
FULL_ENV = "CERTIFY_ONNX_FULL"

_PB2 = "onnx.onnx_ml_pb2"
_PB2_PRIVATE = "certify.importers._onnx_ml_pb2"
_CPP = "onnx.onnx_cpp2py_export"

#: Element types decoded here: data_type → (numpy dtype, storage field, storage dtype) as in onnx._mapping.
_DECODED: dict[int, tuple[str, str, str]] = {
    1: ("float32", "float_data", "float32"),       # FLOAT
    2: ("uint8", "int32_data", "int32"),           # UINT8
    3: ("int8", "int32_data", "int32"),            # INT8
    4: ("uint16", "int32_data", "int32"),          # UINT16
    5: ("int16", "int32_data", "int32"),           # INT16
    6: ("int32", "int32_data", "int32"),           # INT32
    7: ("int64", "int64_data", "int64"),           # INT64
    9: ("bool", "int32_data", "int32"),            # BOOL
    10: ("float16", "int32_data", "int32"),        # FLOAT16
    11: ("float64", "double_data", "float64"),     # DOUBLE
    12: ("uint32", "uint64_data", "uint64"),       # UINT32
    13: ("uint64", "uint64_data", "uint64"),       # UINT64
    14: ("complex64", "float_data", "float32"),     # COMPLEX64
    15: ("complex128", "double_data", "float64"),  # COMPLEX128
}
_SIXTEEN_BIT = (4, 5, 10)   # UINT16, INT16, FLOAT16: stored as the 16-bit pattern in int32_data
_COMPLEX = (14, 15)
_BOOL = 9
_EXTERNAL = 1               # TensorProto.DataLocation.EXTERNAL


def full_requested() -> bool:
    """True when ``CERTIFY_ONNX_FULL`` asks for the ``onnx`` package's Python layer.

    >>> full_requested() == (os.environ.get(FULL_ENV, "0") not in ("", "0"))
    True
    """
    return os.environ.get(FULL_ENV, "0") not in ("", "0")


def _onnx_dir() -> str:
    """Folder of the installed ``onnx`` package (found without importing it)."""
    spec = importlib.util.find_spec("onnx")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("No module named 'onnx' (certify reads ONNX files with it: pip install onnx)",
                                  name="onnx")
    return list(spec.submodule_search_locations)[0]


def _load(name: str, path: str) -> ModuleType:
    """Execute the module file ``path`` as ``name`` (registered in ``sys.modules`` first, as import does)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {name} from {path}", name=name, path=path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def proto() -> ModuleType:
    """The generated ONNX protobuf module (``ModelProto``, ``TensorProto``, ``AttributeProto`` …).

    ``onnx``'s own module when the package is imported; otherwise the same file loaded as
    ``certify.importers._onnx_ml_pb2`` (its classes are registered in protobuf's default descriptor
    pool under their ONNX names, so a later ``import onnx`` gets the very same message classes).
    """
    module = sys.modules.get(_PB2) or sys.modules.get(_PB2_PRIVATE)
    if module is not None:
        return module
    path = None if full_requested() else os.path.join(_onnx_dir(), "onnx_ml_pb2.py")
    if path is None or not os.path.isfile(path):
        import onnx.onnx_pb  # the full path, or an unusual build: let onnx choose its module

        return onnx.onnx_pb
    return _load(_PB2_PRIVATE, path)


def native() -> ModuleType:
    """ONNX's C++ extension (``checker``, ``shape_inference``, ``inliner``).

    A native module can be initialised once per process, under its own name: it is registered as
    ``onnx.onnx_cpp2py_export``, where ``import onnx`` finds it later.
    """
    module = sys.modules.get(_CPP)
    if module is None:
        folder = _onnx_dir()
        suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
        found = sorted(f for f in os.listdir(folder) if f.startswith("onnx_cpp2py_export") and f.endswith(suffixes))
        if found:
            module = _load(_CPP, os.path.join(folder, found[0]))
        else:
            module = importlib.import_module(_CPP)  # an unusual layout: let import find it
    parent = sys.modules.get("onnx")
    if parent is not None and getattr(parent, "onnx_cpp2py_export", None) is not module:
        vars(parent)["onnx_cpp2py_export"] = module  # bind the submodule on the package, as import does
    return module


#: The native signatures the fast path calls (as the Python wrappers of this onnx version call them).
_SIGNATURES = {
    ("checker", "check_model"): "check_model(bytes: bytes, full_check: bool = False, "
                                "skip_opset_compatibility_check: bool = False, check_custom_domain: bool = False)",
    ("shape_inference", "infer_shapes"): "infer_shapes(bytes: bytes, check_type: bool = False, "
                                         "strict_mode: bool = False, data_prop: bool = False)",
    ("inliner", "inline_local_functions"): "inline_local_functions(arg0: bytes, arg1: bool, /)",
}


def _native_function(submodule: str, name: str) -> Any:
    """The native function, or ``None`` when the full path is requested or its signature is not the one
    this module was written for (another onnx version: its Python wrapper is then used)."""
    if full_requested():
        return None
    fn = getattr(getattr(native(), submodule, None), name, None)
    doc = getattr(fn, "__doc__", None) or ""
    return fn if doc.startswith(_SIGNATURES[(submodule, name)]) else None


def preload() -> None:
    """Load what reading a model needs (outside any ``try`` that words file errors: a broken installation
    is an import error, never a verdict on the model)."""
    if full_requested():
        import onnx  # noqa: F401
    else:
        proto()
        native()


def parse_model(data: bytes) -> Any:
    """Parse ``data`` as a ``ModelProto`` as ``onnx.load_from_string`` does (every byte must be consumed).

    >>> parse_model(b"").ir_version
    0
    """
    if full_requested():
        import onnx

        return onnx.load_from_string(data)
    if not isinstance(data, bytes):
        raise TypeError(f"Parameter 'serialized' must be bytes, but got type: {type(data)}")
    model = proto().ModelProto()
    decoded = model.ParseFromString(data)
    if decoded is not None and decoded != len(data):
        from google.protobuf.message import DecodeError  # type: ignore[import-untyped, unused-ignore]

        raise DecodeError(f"Protobuf decoding consumed too few bytes: {decoded} out of {len(data)}")
    return model


def check_model_full(model: Any) -> None:
    """``onnx.checker.check_model(model, full_check=True)``: the native checker, shape inference included.

    The caller refuses models over 2 GiB first (the Python wrapper's only check of its own).
    """
    fn = _native_function("checker", "check_model")
    if fn is None:
        import onnx

        onnx.checker.check_model(model, full_check=True)
        return
    # the arguments onnx.checker.check_model passes: full_check, skip_opset_compatibility_check, check_custom_domain
    fn(model.SerializeToString(), True, False, False)


def infer_shapes_strict(model: Any) -> Any:
    """``onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)``."""
    fn = _native_function("shape_inference", "infer_shapes")
    if fn is None:
        import onnx

        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    return parse_model(fn(model.SerializeToString(), True, True, True))


def inline_local_functions(model: Any) -> Any:
    """``onnx.inliner.inline_local_functions(model)`` (``convert_version=False``)."""
    fn = _native_function("inliner", "inline_local_functions")
    if fn is None:
        import onnx.inliner

        return onnx.inliner.inline_local_functions(model)
    inlined = proto().ModelProto()
    inlined.ParseFromString(fn(model.SerializeToString(), False))
    return inlined


def to_array(tensor: Any) -> np.ndarray:
    """A ``TensorProto`` as a numpy array, exactly as ``onnx.numpy_helper.to_array`` returns it.

    >>> t = proto().TensorProto(data_type=10, dims=[2], int32_data=[0x3C00, 0xC000])   # float16 1, -2
    >>> to_array(t).tolist()
    [1.0, -2.0]
    >>> t = proto().TensorProto(data_type=7, dims=[2, 2], raw_data=np.arange(4, dtype="<i8").tobytes())
    >>> to_array(t).tolist()
    [[0, 1], [2, 3]]
    """
    dtype = tensor.data_type
    if full_requested() or dtype not in _DECODED or sys.byteorder != "little" \
            or tensor.data_location == _EXTERNAL:
        from onnx import numpy_helper  # types and layouts certify does not decode itself

        return numpy_helper.to_array(tensor)
    if tensor.HasField("segment"):
        raise ValueError("Currently not supporting loading segments.")
    np_name, field, storage = _DECODED[dtype]
    np_dtype = np.dtype(np_name)
    dims = tensor.dims
    if tensor.HasField("raw_data"):
        return np.frombuffer(tensor.raw_data, dtype=np_dtype).reshape(dims)
    if dtype in _SIXTEEN_BIT:
        return np.array(tensor.int32_data, dtype=np.int32).view(np.uint32).astype(np.uint16).reshape(dims) \
            .view(np_dtype)
    if dtype == _BOOL:
        return np.array(tensor.int32_data, dtype=np.int32).view(np.uint32).astype(np.uint8).view(np_dtype) \
            .reshape(dims)
    data = getattr(tensor, field)
    if dtype in _COMPLEX:
        return np.array(data, dtype=np.dtype(storage)).view(dtype=np_dtype).reshape(dims)
    return np.asarray(data, dtype=np.dtype(storage)).astype(np_dtype).reshape(dims)


def attribute_value(attr: Any) -> Any:
    """The value of an ``AttributeProto``, as ``onnx.helper.get_attribute_value`` returns it.

    >>> a = proto().AttributeProto(name="alpha", type=1, f=0.5)
    >>> attribute_value(a)
    0.5
    """
    if full_requested():
        from onnx import helper

        return helper.get_attribute_value(attr)
    A = proto().AttributeProto
    if attr.ref_attr_name:
        raise ValueError(f"Cannot get value of reference attribute: {attr}")
    kind = attr.type
    single = {A.FLOAT: "f", A.INT: "i", A.STRING: "s", A.TENSOR: "t", A.SPARSE_TENSOR: "sparse_tensor",
              A.GRAPH: "g", A.TYPE_PROTO: "tp"}
    repeated = {A.FLOATS: "floats", A.INTS: "ints", A.STRINGS: "strings", A.TENSORS: "tensors",
                A.SPARSE_TENSORS: "sparse_tensors", A.GRAPHS: "graphs", A.TYPE_PROTOS: "type_protos"}
    if kind in single:
        return getattr(attr, single[kind])
    if kind in repeated:
        return list(getattr(attr, repeated[kind]))
    if kind == A.UNDEFINED:
        return None
    raise ValueError(f"Unsupported ONNX attribute: {attr}")
