"""Every bad input raises its own clear CertifyError (never a traceback from onnx/torch internals)."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import helper

from certify.errors import ModelFileError, UnsupportedModelError, WeightError
from certify.importers import load_model
from certify.results import ExitCode
from tests._export_util import cell_model, gru_lbr0_model, save


@pytest.fixture
def good_onnx(tmp_path):
    return save(gru_lbr0_model(np.random.default_rng(0), 2, 3, 2, 1, T=10), tmp_path / "good.onnx")


def _raises(exc, path, *words):
    with pytest.raises(exc) as info:
        load_model(path)
    msg = str(info.value)
    for w in words:
        assert w.lower() in msg.lower(), msg
    assert info.value.exit_code == ExitCode.INVALID_INPUT
    return msg


def test_missing_file(tmp_path):
    _raises(ModelFileError, tmp_path / "nope.onnx", "does not exist")


def test_directory(tmp_path):
    _raises(ModelFileError, tmp_path, "not a regular file")


def test_empty_file(tmp_path):
    p = tmp_path / "empty.onnx"
    p.write_bytes(b"")
    _raises(ModelFileError, p, "empty")


@pytest.mark.parametrize("frac", [0.3, 0.6, 0.9, 0.99])
def test_truncated_onnx(good_onnx, tmp_path, frac):
    data = open(good_onnx, "rb").read()
    p = tmp_path / "trunc.onnx"
    p.write_bytes(data[: int(len(data) * frac)])
    with pytest.raises((ModelFileError, WeightError, UnsupportedModelError)):
        load_model(p)


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes(tmp_path, seed):
    p = tmp_path / "random.onnx"
    p.write_bytes(np.random.default_rng(seed).bytes(3000))
    with pytest.raises(ModelFileError):
        load_model(p)


def test_text_file_with_onnx_name(tmp_path):
    p = tmp_path / "notes.onnx"
    p.write_text("this is not a model\n" * 20)
    _raises(ModelFileError, p)


def test_unsupported_ops_listed_all_at_once(tmp_path):
    nodes = [helper.make_node("MatMul", ["x", "A"], ["a"], name="mm"),
             helper.make_node("Sin", ["a"], ["s"], name="weird_sin"),
             helper.make_node("Add", ["s", "x"], ["x_next"], name="add"),
             helper.make_node("Abs", ["u"], ["y0"], name="weird_abs"),
             helper.make_node("MatMul", ["y0", "Cu"], ["y"], name="out")]
    p = save(cell_model(nodes, {"A": np.eye(2), "Cu": np.ones((2, 1))}, 2, 2, 1), tmp_path / "ops.onnx")
    msg = _raises(UnsupportedModelError, p, "Sin", "weird_sin", "Abs", "weird_abs", "2 unsupported")
    assert "Supported" in msg


def test_custom_domain_listed(tmp_path):
    nodes = [helper.make_node("MyCell", ["x", "u"], ["x_next"], name="custom", domain="com.example"),
             helper.make_node("Identity", ["x"], ["y"])]
    model = cell_model(nodes, {}, 1, 1, 1)
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    _raises(UnsupportedModelError, save(model, tmp_path / "c.onnx"), "MyCell", "custom")


def test_hadamard_cell_explains_gated_cells(tmp_path):
    nodes = [helper.make_node("Sigmoid", ["x"], ["g"]), helper.make_node("Tanh", ["u"], ["c"]),
             helper.make_node("Mul", ["g", "c"], ["x_next"], name="gate_product"),
             helper.make_node("Identity", ["x"], ["y"])]
    p = save(cell_model(nodes, {}, 2, 2, 2), tmp_path / "h.onnx")
    _raises(UnsupportedModelError, p, "Hadamard", "gate_product", "no exact SNOF", "GRU/LSTM")


def _single_gru(direction: str) -> onnx.ModelProto:
    """One fused GRU node whose output Y is the graph output (valid for any direction)."""
    rng = np.random.default_rng(0)
    D, H, m = (2 if direction == "bidirectional" else 1), 3, 2
    inits = [onnx.numpy_helper.from_array(rng.uniform(-1, 1, s).astype(np.float32), n)
             for n, s in (("W", (D, 3 * H, m)), ("R", (D, 3 * H, H)))]
    node = helper.make_node("GRU", ["u", "W", "R"], ["Y"], hidden_size=H, direction=direction, name="gru0")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("u", onnx.TensorProto.FLOAT, [5, 1, m])],
                              [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, [5, D, 1, H])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("direction", ["bidirectional", "reverse"])
def test_bidirectional_and_reverse(tmp_path, direction):
    msg = _raises(UnsupportedModelError, save(_single_gru(direction), tmp_path / "b.onnx"), direction)
    if direction == "bidirectional":
        assert "causal" in msg


@pytest.mark.parametrize(("attrs", "word"), [({"clip": 5.0}, "clip"), ({"activations": ["Relu", "Tanh"]}, "activations")])
def test_rejected_attributes(tmp_path, attrs, word):
    m = gru_lbr0_model(np.random.default_rng(0), 2, 3, 1, 1, extra_attrs=attrs)
    _raises(UnsupportedModelError, save(m, tmp_path / "a.onnx"), word)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_weights(tmp_path, bad):
    W = np.random.default_rng(0).uniform(-1, 1, (1, 9, 2))
    W[0, 4, 1] = bad
    m = gru_lbr0_model(np.random.default_rng(0), 2, 3, 1, 1, W_override=W)
    _raises(WeightError, save(m, tmp_path / "nan.onnx"), "NaN or Inf")


def test_inconsistent_shapes_name_both(tmp_path):
    W = np.zeros((1, 9, 3))  # 3 input columns, but the graph input has 2 features
    m = gru_lbr0_model(np.random.default_rng(0), 2, 3, 1, 1, W_override=W)
    _raises(WeightError, save(m, tmp_path / "shape.onnx"), "(1, 9, 3)", "(1, 9, 2)")


def test_head_shape_mismatch(tmp_path):
    """A MatMul of incompatible shapes is an invalid ONNX file (onnxruntime refuses it): refused as such."""
    nodes = [helper.make_node("MatMul", ["x", "A"], ["x_next"]), helper.make_node("MatMul", ["x", "C"], ["y"])]
    p = save(cell_model(nodes, {"A": np.eye(2), "C": np.ones((3, 1))}, 1, 2, 1), tmp_path / "m.onnx")
    _raises(ModelFileError, p, "not a valid ONNX model", "matrix multiplication")


def _external(tmp_path, location: str) -> str:
    model = gru_lbr0_model(np.random.default_rng(0), 2, 3, 1, 1)
    d = tmp_path / "m"
    d.mkdir()
    onnx.save(model, str(d / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="model.onnx.data", size_threshold=0)
    m2 = onnx.load(str(d / "model.onnx"), load_external_data=False)
    for t in m2.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = location
    onnx.save(m2, str(d / "model.onnx"))
    return str(d / "model.onnx")


@pytest.mark.parametrize("loc", ["../evil.data", "/etc/passwd", "sub/../../evil.data"])
def test_external_data_escaping_folder(tmp_path, loc):
    (tmp_path / "evil.data").write_bytes(b"\0" * 4096)
    _raises(ModelFileError, _external(tmp_path, loc), "outside the model's folder")


def test_external_data_missing(tmp_path):
    p = _external(tmp_path, "model.onnx.data")
    os.remove(os.path.join(os.path.dirname(p), "model.onnx.data"))
    _raises(ModelFileError, p, "missing")


def test_graph_without_recurrent_layer(tmp_path):
    nodes = [helper.make_node("Transpose", ["u"], ["y"], perm=[0, 1, 2])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("u", onnx.TensorProto.FLOAT, [1, 5, 2])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 5, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    _raises(UnsupportedModelError, save(model, tmp_path / "n.onnx"), "no recurrent layer", "x_next")


# ---- torch state dicts ------------------------------------------------------------------------------


@pytest.mark.torch
def test_malicious_pickle_refused(tmp_path):
    torch = pytest.importorskip("torch")

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    p = tmp_path / "evil.pt"
    torch.save({"rnn.weight_ih_l0": torch.zeros(3, 2), "x": Payload()}, p)
    _raises(ModelFileError, p, "never unpickles code")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.torch
def test_whole_module_pickle_refused(tmp_path):
    torch = pytest.importorskip("torch")
    p = tmp_path / "module.pt"
    torch.save(torch.nn.GRU(2, 3), p)
    _raises(ModelFileError, p, "never unpickles code")


@pytest.mark.torch
def test_truncated_and_garbage_state_dicts(tmp_path):
    torch = pytest.importorskip("torch")
    p = tmp_path / "sd.pt"
    torch.save(torch.nn.GRU(2, 3).state_dict(), p)
    data = p.read_bytes()
    q = tmp_path / "trunc.pt"
    q.write_bytes(data[: len(data) // 2])
    _raises(ModelFileError, q, "truncated")
    r = tmp_path / "zip.pt"
    r.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    _raises(ModelFileError, r)


@pytest.mark.torch
def test_state_dict_bidirectional_and_proj(tmp_path):
    torch = pytest.importorskip("torch")
    p = tmp_path / "bi.pt"
    torch.save(torch.nn.LSTM(2, 3, bidirectional=True).state_dict(), p)
    _raises(UnsupportedModelError, p, "bidirectional", "causal")
    torch.save(torch.nn.LSTM(2, 4, proj_size=2).state_dict(), p)
    _raises(UnsupportedModelError, p, "proj_size")


@pytest.mark.torch
def test_state_dict_bad_weights(tmp_path):
    torch = pytest.importorskip("torch")
    sd = torch.nn.GRU(2, 3).state_dict()
    sd["weight_ih_l0"][0, 0] = float("nan")
    p = tmp_path / "nan.pt"
    torch.save(sd, p)
    _raises(WeightError, p, "weight_ih_l0", "NaN")
    sd = torch.nn.GRU(2, 3).state_dict()
    sd["bias_hh_l0"] = torch.zeros(7)
    torch.save(sd, p)
    _raises(WeightError, p, "bias_hh_l0", "(7,)", "(9,)")
    sd = {"rnn.weight_ih_l0": torch.zeros(3, 2), "rnn.weight_hh_l0": torch.zeros(3, 3), "mystery": torch.zeros(2)}
    torch.save(sd, p)
    (tmp_path / "nan.pt.certify.json").write_text('{"nonlinearity": "tanh"}')
    _raises(UnsupportedModelError, p, "mystery")
    torch.save({"foo": torch.zeros(2)}, p)
    _raises(UnsupportedModelError, p, "no nn.GRU")
    torch.save([torch.zeros(2)], p)
    _raises(ModelFileError, p, "state dict")


@pytest.mark.torch
def test_bad_sidecar(tmp_path):
    torch = pytest.importorskip("torch")
    p = tmp_path / "m.pt"
    torch.save(torch.nn.GRU(2, 3).state_dict(), p)
    side = tmp_path / "m.pt.certify.json"
    side.write_text("{not json")
    _raises(ModelFileError, p, "certify.json")
    side.write_text('{"architecture": "transformer"}')
    _raises(ModelFileError, p, "transformer")
    side.write_text('{"architecture": "lstm"}')
    _raises(WeightError, p, "sidecar says")


def _lstm_model(P=None, attrs=None):
    rng = np.random.default_rng(0)
    H, m = 2, 2
    inits = [onnx.numpy_helper.from_array(rng.uniform(-1, 1, s).astype(np.float32), n)
             for n, s in (("W", (1, 4 * H, m)), ("R", (1, 4 * H, H)), ("B", (1, 8 * H)))]
    ins = ["u", "W", "R", "B", "", "", ""]
    if P is not None:
        inits.append(onnx.numpy_helper.from_array(np.asarray(P, dtype=np.float32), "P"))
        ins.append("P")
    node = helper.make_node("LSTM", ins, ["Y"], hidden_size=H, name="lstm0", **(attrs or {}))
    graph = helper.make_graph([node], "l", [helper.make_tensor_value_info("u", onnx.TensorProto.FLOAT, [5, 1, m])],
                              [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, [5, 1, 1, H])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_lstm_peepholes_and_input_forget(tmp_path):
    assert load_model(save(_lstm_model(P=np.zeros((1, 6))), tmp_path / "ok.onnx")).architecture == "lstm"
    _raises(UnsupportedModelError, save(_lstm_model(P=np.ones((1, 6))), tmp_path / "p.onnx"), "peephole")
    _raises(UnsupportedModelError, save(_lstm_model(attrs={"input_forget": 1}), tmp_path / "f.onnx"), "input_forget")


def _seq_model_with(extra_nodes, out: str) -> onnx.ModelProto:
    """The GRU test model with ``extra_nodes`` inserted between the GRU stack output and the head."""
    m = gru_lbr0_model(np.random.default_rng(0), 2, 3, 1, 1, T=10)
    g = m.graph
    idx = next(i for i, n in enumerate(g.node) if n.name == "head_mm")
    for k, n in enumerate(extra_nodes):
        g.node.insert(idx + k, n)
    g.node[idx + len(extra_nodes)].input[0] = out
    g.output[0].type.tensor_type.shape.dim[1].dim_param = "time"
    return m


def test_messages_say_what_about_a_supported_op_is_unsupported(tmp_path):
    """A Slice/Cast that certify supports in general but not with these inputs is not called an unknown op."""
    steps = onnx.numpy_helper.from_array(np.array([2], np.int64), "two")
    starts = onnx.numpy_helper.from_array(np.array([0], np.int64), "zero")
    ends = onnx.numpy_helper.from_array(np.array([10], np.int64), "ten")
    axes = onnx.numpy_helper.from_array(np.array([1], np.int64), "one")
    m = _seq_model_with([helper.make_node("Slice", ["o_bf", "zero", "ten", "one", "two"], ["sl"], name="every_other"),
                         helper.make_node("Cast", ["sl"], ["ci"], to=onnx.TensorProto.INT64, name="to_int"),
                         helper.make_node("Cast", ["ci"], ["cf"], to=onnx.TensorProto.FLOAT, name="back")], "cf")
    m.graph.initializer.extend([steps, starts, ends, axes])
    msg = _raises(UnsupportedModelError, save(m, tmp_path / "s.onnx"), "every_other", "step 2")
    assert "Supported on the signal path" not in msg
    m = _seq_model_with([helper.make_node("Cast", ["o_bf"], ["ci"], to=onnx.TensorProto.INT64, name="to_int"),
                         helper.make_node("Cast", ["ci"], ["cf"], to=onnx.TensorProto.FLOAT, name="back")], "cf")
    msg = _raises(UnsupportedModelError, save(m, tmp_path / "c.onnx"), "to_int", "INT64", "to=7")
    assert "Supported on the signal path" not in msg


def test_several_unsupported_nodes_in_one_message(tmp_path):
    m = _seq_model_with([helper.make_node("Sin", ["o_bf"], ["s"], name="weird_sin"),
                         helper.make_node("Cast", ["s"], ["ci"], to=onnx.TensorProto.INT32, name="to_int"),
                         helper.make_node("Cast", ["ci"], ["cf"], to=onnx.TensorProto.FLOAT, name="back")], "cf")
    msg = _raises(UnsupportedModelError, save(m, tmp_path / "two.onnx"), "weird_sin", "Supported on the signal path")
    assert "Sin" in msg.split("Supported on the signal path")[0]
