"""The ONNX fast path (:mod:`certify.importers.onnx_proto`) against the ``onnx`` package's Python layer.

Oracle: the same import with ``CERTIFY_ONNX_FULL=1`` (``onnx.load_from_string``, ``onnx.checker``,
``onnx.shape_inference``, ``onnx.inliner``, ``onnx.numpy_helper``, ``onnx.helper``) must give the same
network, every array bit for bit, the same metadata, and the same errors; ``onnx.numpy_helper.to_array``
and ``onnx.helper.get_attribute_value`` are compared directly on every element type. A fresh process
that checks a small GRU must not import onnx's Python layer, ml_dtypes, CVXPY, SciPy or matplotlib.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from certify.errors import CertifyError
from certify.importers import load_model, onnx_proto
from certify.importers.onnx_load import plainly_valid
from certify.importers.sidecar import METADATA_SCHEMAS, SIDECAR_SCHEMA
from tests._export_util import cell_model, gru_lbr0_model, save

REPO = Path(__file__).resolve().parents[1]
ZOO = sorted((REPO / "models_zoo").glob("*.onnx"))


def same(a, b, where="net"):
    """Assert ``a`` and ``b`` are equal, numpy arrays bit for bit (dtype, shape and bytes)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray), where
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"
        assert a.tobytes() == b.tobytes(), f"{where}: values differ"
    elif dataclasses.is_dataclass(a) and not isinstance(a, type):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), f"{where}: keys {list(a)} vs {list(b)}"
        for k in a:
            same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert np.float64(a).tobytes() == np.float64(b).tobytes(), f"{where}: {a!r} vs {b!r}"
    else:
        assert type(a) is type(b) and a == b, f"{where}: {a!r} vs {b!r}"


def _load(path, monkeypatch, full: bool):
    """``load_model(path)``, or the error it raises, with the fast or the full onnx path."""
    if full:
        monkeypatch.setenv(onnx_proto.FULL_ENV, "1")
    else:
        monkeypatch.delenv(onnx_proto.FULL_ENV, raising=False)
    try:
        return load_model(path)
    except CertifyError as exc:
        return (type(exc).__name__, str(exc))
    finally:
        monkeypatch.delenv(onnx_proto.FULL_ENV, raising=False)


def _both(path, monkeypatch):
    fast, full = _load(path, monkeypatch, False), _load(path, monkeypatch, True)
    same(fast, full, os.path.basename(str(path)))
    return fast


@pytest.mark.parametrize("path", ZOO, ids=[p.name for p in ZOO])
def test_zoo_models_identical(path, monkeypatch):
    net = _both(path, monkeypatch)
    assert not isinstance(net, tuple), net  # every zoo model imports


def _hand_built(d: Path) -> dict[str, str]:
    """ONNX files built by hand: the test helpers' GRU stacks and cells, metadata, external data, an
    inlined local function, float16/float64/int32/bool constants in node attributes."""
    rng = np.random.default_rng(7)
    meta = {"certify.input_range": {"low": [-2, -1.5, 0], "high": [2, 1.5, 0.25]},
            "certify.input_scaling": {"raw_low": [0, 0, 0], "raw_high": [10, 5, 1], "net_low": -1, "net_high": 1},
            "certify.output_names": ["p"]}
    out = {
        "gru_lbr0": save(gru_lbr0_model(rng, 3, 5, 2, 1), d / "gru_lbr0.onnx"),
        "gru_lbr1_bf": save(gru_lbr0_model(rng, 3, 4, 1, 2, lbr=1, batch_first=True, T=7), d / "gru_bf.onnx"),
        "gru_nobias_meta": save(gru_lbr0_model(rng, 3, 4, 1, 1, bias=False, metadata=meta), d / "gru_meta.onnx"),
    }
    ext = d / "ext"
    ext.mkdir()
    onnx.save(gru_lbr0_model(rng, 2, 6, 1, 1), str(ext / "model.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="model.onnx.data", size_threshold=0)
    out["external"] = str(ext / "model.onnx")
    nu, nx = 2, 3
    W, U = rng.uniform(-0.4, 0.4, (nx, nx)), rng.uniform(-0.4, 0.4, (nx, nu))
    consts = [
        helper.make_node("Constant", [], ["c16"], value=numpy_helper.from_array(np.array([0.5, -0.25, 1.0], np.float16))),
        helper.make_node("Cast", ["c16"], ["c16f"], to=TensorProto.FLOAT),
        helper.make_node("Constant", [], ["c64"], value=numpy_helper.from_array(np.array([0.1, 1e-300, -3.0]))),
        helper.make_node("Cast", ["c64"], ["c64f"], to=TensorProto.FLOAT),
        helper.make_node("Constant", [], ["shape"], value=numpy_helper.from_array(np.array([1, nx], np.int32))),
        helper.make_node("Cast", ["shape"], ["shape64"], to=TensorProto.INT64),
        helper.make_node("Constant", [], ["flag"], value=helper.make_tensor("flag", TensorProto.BOOL, [1], [True])),
        helper.make_node("Constant", [], ["alpha"], value_float=0.75),
    ]
    nodes = consts + [
        helper.make_node("MatMul", ["x", "Wt"], ["xw"]),
        helper.make_node("MatMul", ["u", "Ut"], ["uw"]),
        helper.make_node("Add", ["xw", "uw"], ["s0"]),
        helper.make_node("Add", ["s0", "c16f"], ["s1"]),
        helper.make_node("Reshape", ["s1", "shape64"], ["s2"]),
        helper.make_node("Tanh", ["s2"], ["h"]),
        helper.make_node("Mul", ["h", "alpha"], ["x_next"]),
        helper.make_node("Mul", ["h", "c64f"], ["y"]),
    ]
    out["cell_attr_dtypes"] = save(cell_model(nodes, {"Wt": W.T, "Ut": U.T}, nu, nx, nx), d / "cell.onnx")
    # a model-local function (what the dynamo exporter may emit), inlined before interpretation
    fn = helper.make_function("local", "AffTanh", ["a", "b"], ["o"],
                              [helper.make_node("MatMul", ["a", "b"], ["m"]), helper.make_node("Tanh", ["m"], ["o"])],
                              [helper.make_opsetid("", 17)])
    fnodes = [helper.make_node("AffTanh", ["x", "Wt"], ["hx"], domain="local"),
              helper.make_node("MatMul", ["u", "Ut"], ["hu"]),
              helper.make_node("Add", ["hx", "hu"], ["x_next"]),
              helper.make_node("Identity", ["hx"], ["y"])]
    m = cell_model(fnodes, {"Wt": W.T, "Ut": U.T}, nu, nx, nx)
    m.opset_import.append(helper.make_opsetid("local", 1))
    m.functions.append(fn)
    out["local_function"] = save(m, d / "fn.onnx")
    return out


def test_hand_built_models_identical(tmp_path, monkeypatch):
    files = _hand_built(tmp_path)
    for name, path in files.items():
        net = _both(path, monkeypatch)
        assert not isinstance(net, tuple), (name, net)
    meta = _both(files["gru_nobias_meta"], monkeypatch).info
    assert meta.input_range.high.tolist() == [2, 1.5, 0.25] and meta.output_names == ("p",)
    assert "files_sha256" in _both(files["external"], monkeypatch).info.extra


def test_bad_files_same_errors(tmp_path, monkeypatch):
    """Truncated, garbage, invalid (checker), invalid (strict shape inference) and bad metadata."""
    good = (REPO / "models_zoo" / "gru_small.onnx").read_bytes()
    rng = np.random.default_rng(3)
    undefined = gru_lbr0_model(rng, 2, 3, 1, 1)
    undefined.graph.node[1].input[0] = "nowhere"
    shapes = gru_lbr0_model(rng, 2, 3, 1, 1)
    shapes.graph.initializer[0].dims[:] = [1, 12, 2]              # W no longer matches hidden_size 3
    shapes.graph.initializer[0].raw_data = np.zeros(24, np.float32).tobytes()
    bad_raw = gru_lbr0_model(rng, 2, 3, 1, 1)
    bad_raw.graph.initializer[0].raw_data = b"\x00" * 7            # not a whole number of float32
    cases = {
        "garbage.onnx": b"\xff\xfe not a protobuf",
        "truncated.onnx": good[: len(good) // 2],
        "trailing.onnx": good + b"\x00",
        "undefined.onnx": undefined.SerializeToString(),
        "shapes.onnx": shapes.SerializeToString(),
        "bad_raw.onnx": bad_raw.SerializeToString(),
        "bad_meta.onnx": gru_lbr0_model(rng, 2, 3, 1, 1, metadata={"certify.input_range": {"low": [True, 0],
                                                                                            "high": [1, 1]}})
        .SerializeToString(),
        "extra_key.onnx": gru_lbr0_model(rng, 2, 3, 1, 1, metadata={"certify.input_range": {
            "low": [0, 0], "high": [1, 1], "hihg": [1, 1]}}).SerializeToString(),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        err = _both(tmp_path / name, monkeypatch)
        assert isinstance(err, tuple) and "Traceback" not in err[1], (name, err)


_VALUES = {
    TensorProto.FLOAT: np.array([[0.0, -0.0, 1.5], [np.inf, -np.inf, np.nan]], np.float32),
    TensorProto.DOUBLE: np.array([1e-308, -2.5, np.nan, 5e-324]),
    TensorProto.FLOAT16: np.array([0.0, -0.0, 65504.0, 6e-8, -1.0], np.float16),
    TensorProto.INT8: np.array([-128, 0, 127], np.int8),
    TensorProto.UINT8: np.array([0, 255, 7], np.uint8),
    TensorProto.INT16: np.array([-32768, 32767, -1], np.int16),
    TensorProto.UINT16: np.array([0, 65535, 1], np.uint16),
    TensorProto.INT32: np.array([[-(2**31), 2**31 - 1]], np.int32),
    TensorProto.INT64: np.array([-(2**63), 2**63 - 1, 0], np.int64),
    TensorProto.UINT32: np.array([0, 2**32 - 1], np.uint32),
    TensorProto.UINT64: np.array([0, 2**64 - 1], np.uint64),
    TensorProto.BOOL: np.array([True, False, True]),
    TensorProto.COMPLEX64: np.array([1 + 2j, -0.5j], np.complex64),
    TensorProto.COMPLEX128: np.array([1e300 - 1j], np.complex128),
}


@pytest.mark.parametrize("dtype", sorted(_VALUES), ids=[TensorProto.DataType.Name(k) for k in sorted(_VALUES)])
def test_to_array_matches_numpy_helper(dtype):
    arr = _VALUES[dtype]
    raw = numpy_helper.from_array(arr, name="t")                         # raw_data
    typed = helper.make_tensor("t", dtype, arr.shape, arr.reshape(-1).tolist() if dtype != TensorProto.FLOAT16
                               else arr.reshape(-1).astype(np.float32).tolist())   # the typed *_data field
    for t in (raw, typed):
        same(onnx_proto.to_array(t), numpy_helper.to_array(t), TensorProto.DataType.Name(dtype))
    assert onnx_proto.to_array(raw).tobytes() == arr.tobytes()


def test_to_array_falls_back_and_errors_alike():
    bf16 = helper.make_tensor("b", TensorProto.BFLOAT16, [2], [1.0, -2.0])   # decoded by numpy_helper itself
    same(onnx_proto.to_array(bf16), numpy_helper.to_array(bf16), "bfloat16")
    bad = [TensorProto(name="r", data_type=TensorProto.FLOAT, dims=[2, 2], float_data=[1.0, 2.0, 3.0]),  # 3 ≠ 4
           TensorProto(name="u", data_type=TensorProto.FLOAT, dims=[1], raw_data=b"\x00" * 3),
           TensorProto(name="z", data_type=TensorProto.UNDEFINED, dims=[1])]
    seg = helper.make_tensor("s", TensorProto.FLOAT, [1], [1.0])
    seg.segment.begin = 0
    for t in bad + [seg]:
        with pytest.raises(Exception) as mine:
            onnx_proto.to_array(t)
        with pytest.raises(Exception) as ref:
            numpy_helper.to_array(t)
        assert (type(mine.value), str(mine.value)) == (type(ref.value), str(ref.value))


def test_attribute_value_matches_helper():
    g = helper.make_graph([], "g", [], [])
    attrs = [helper.make_attribute("f", 0.25), helper.make_attribute("i", -3), helper.make_attribute("s", b"x"),
             helper.make_attribute("t", numpy_helper.from_array(np.eye(2))), helper.make_attribute("g", g),
             helper.make_attribute("fs", [1.0, 2.5]), helper.make_attribute("is", [1, 2]),
             helper.make_attribute("ss", [b"Tanh", b"Sigmoid"]),
             helper.make_attribute("ts", [numpy_helper.from_array(np.ones(1))]), helper.make_attribute("gs", [g]),
             onnx.AttributeProto(name="u", type=onnx.AttributeProto.UNDEFINED)]
    for a in attrs:
        assert onnx_proto.attribute_value(a) == helper.get_attribute_value(a), a.name
    ref = helper.make_attribute_ref("r", onnx.AttributeProto.FLOAT)
    with pytest.raises(ValueError) as mine:
        onnx_proto.attribute_value(ref)
    with pytest.raises(ValueError) as theirs:
        helper.get_attribute_value(ref)
    assert str(mine.value) == str(theirs.value)


def test_other_native_signature_uses_the_python_wrapper(monkeypatch, tmp_path):
    """An onnx version whose native functions take other arguments is served by its Python wrappers."""
    path = REPO / "models_zoo" / "gru_small.onnx"
    ref = load_model(path)
    monkeypatch.setattr(onnx_proto, "_SIGNATURES", {k: "not this signature(" for k in onnx_proto._SIGNATURES})
    assert onnx_proto._native_function("checker", "check_model") is None
    same(load_model(path), ref)


@pytest.mark.parametrize("value", [
    {"low": [-1, 0.5], "high": [1, 2]}, {"low": [-1], "high": [True]}, {"low": [], "high": [1]},
    {"low": [1], "high": [2], "extra": 1}, {"low": [1]}, {"low": "1", "high": [2]}, [1, 2], None, "x",
    {"raw_low": [0], "raw_high": [1e308]}, {"raw_low": [0], "raw_high": [1], "net_low": False},
    {"raw_low": [0], "raw_high": [1], "net_low": -1, "net_high": 1.0}, ["a", "b"], ["a", 1], [],
    {"low": [1e999], "high": [2]}, {"low": [[1]], "high": [2]}, {"low": [None], "high": [2]},
])
def test_plainly_valid_never_accepts_what_jsonschema_refuses(value):
    import jsonschema

    for schema in list(METADATA_SCHEMAS.values()) + [SIDECAR_SCHEMA]:
        if plainly_valid(value, schema):
            jsonschema.Draft202012Validator(schema).validate(value)
    assert not plainly_valid(value, SIDECAR_SCHEMA)  # "$schema", "const", "enum": left to jsonschema


def test_onnx_imported_later_still_works():
    """After a fast-path import, ``import onnx`` shares the message classes and its checker runs."""
    code = ("import sys; from certify.importers import load_model, onnx_proto; "
            "net = load_model('models_zoo/gru_small.onnx'); assert 'onnx' not in sys.modules; "
            "import onnx, onnx.reference, onnx.numpy_helper; "
            "assert onnx.ModelProto is onnx_proto.proto().ModelProto; "
            "m = onnx.load('models_zoo/gru_small.onnx'); onnx.checker.check_model(m, full_check=True); "
            "onnx.shape_inference.infer_shapes(m, strict_mode=True); "
            "assert load_model('models_zoo/gru_small.onnx').layers[0].W_z.tobytes() == net.layers[0].W_z.tobytes(); "
            "assert onnx.onnx_cpp2py_export is sys.modules['onnx.onnx_cpp2py_export']; "
            "print('ok')")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in os.environ.items() if k != onnx_proto.FULL_ENV})
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


def test_check_of_a_small_gru_imports_no_heavy_module(tmp_path):
    """A plain ``certify check`` of a small GRU with JSON output loads neither onnx's Python layer (nor
    ml_dtypes) nor CVXPY, SciPy, matplotlib or jsonschema; the JSON report is the usual one."""
    out = tmp_path / "report.json"
    heavy = ("onnx", "ml_dtypes", "cvxpy", "scipy", "matplotlib", "jsonschema", "torch")
    code = ("import sys, json\nfrom certify.cli import main\ntry:\n    rc = main(sys.argv[1:])\n"
            "except SystemExit as e:\n    rc = e.code\n"
            f"print(json.dumps([rc, [m for m in {heavy!r} if m in sys.modules]]))\n")
    res = subprocess.run([sys.executable, "-c", code, "check", "models_zoo/gru_small.onnx", "--format", "json",
                          "-o", str(out), "--quiet"], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={k: v for k, v in os.environ.items() if k != onnx_proto.FULL_ENV})
    rc, loaded = json.loads(res.stdout.strip().splitlines()[-1])
    assert rc == 1 and loaded == [], (rc, loaded, res.stderr[-2000:])
    report = json.loads(out.read_text())
    assert report["verdict"] == "not_certified" and report["model"]["architecture"] == "gru"
