"""Hostile and malformed inputs: special files, huge declared sizes, constant folding bombs, bad JSON,
unusual state dicts.  Every case ends in a clear InvalidInputError (exit 3) quickly: never a hang, a
MemoryError, a RecursionError or an internal error."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from certify.deadline import Deadline, DeadlineExceeded
from certify.errors import InvalidInputError, ModelFileError, UnsupportedModelError
from certify.importers import ResourceLimitError, load_model
from certify.results import ExitCode
from tests._export_util import gru_lbr0_model, save

POSIX = hasattr(os, "mkfifo")


@pytest.fixture(autouse=True)
def _no_hang():
    """Every case must finish in seconds; a hang fails the test instead of blocking the suite."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def boom(*_):
        raise TimeoutError("the importer hung")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(30)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _refused(path, exc=InvalidInputError, *words, **kw):
    with pytest.raises(exc) as info:
        load_model(path, **kw)
    msg = str(info.value)
    for w in words:
        assert w.lower() in msg.lower(), msg
    assert info.value.exit_code == ExitCode.INVALID_INPUT
    return msg


def _good(rng_seed: int = 0) -> onnx.ModelProto:
    return gru_lbr0_model(np.random.default_rng(rng_seed), 2, 3, 1, 1, T=10)


def _with_constant(nodes, inits) -> onnx.ModelProto:
    """A valid GRU model whose head bias is ``bh + 0 * sum(big)``: ``big`` comes from ``nodes``."""
    m = _good()
    g = m.graph
    extra = list(nodes) + [helper.make_node("ReduceSum", ["big"], ["s"], keepdims=0, name="sum"),
                           helper.make_node("Mul", ["s", "zero"], ["s0"], name="times0"),
                           helper.make_node("Add", ["bh", "s0"], ["bh2"], name="bias2")]
    for k, n in enumerate(extra):
        g.node.insert(k, n)
    g.initializer.extend(list(inits) + [numpy_helper.from_array(np.zeros((), np.float32), "zero")])
    for n in g.node:
        if n.name == "head_add":
            n.input[1] = "bh2"
    return m


def _i64(name, v):
    return numpy_helper.from_array(np.array(v, dtype=np.int64), name)


def _f32(name, v):
    return numpy_helper.from_array(np.array(v, dtype=np.float32), name)


_ONE = helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])
BOMBS = {
    "ConstantOfShape": ([helper.make_node("ConstantOfShape", ["shp"], ["big"], value=_ONE, name="bomb")],
                        [_i64("shp", [100000, 100000])]),
    "Expand": ([helper.make_node("Expand", ["one", "shp"], ["big"], name="bomb")],
               [_i64("shp", [100000, 100000]), _f32("one", [1.0])]),
    "Tile": ([helper.make_node("Tile", ["one", "shp"], ["big"], name="bomb")], [_i64("shp", [10**10]), _f32("one", [1.0])]),
    "Range": ([helper.make_node("Range", ["a", "b", "c"], ["big"], name="bomb")],
              [_f32("a", 0.0), _f32("b", 1e10), _f32("c", 1.0)]),
    "MatMul": ([helper.make_node("MatMul", ["col", "row"], ["big"], name="bomb")],
               [_f32("col", np.ones((20000, 1))), _f32("row", np.ones((1, 20000)))]),
}


@pytest.mark.parametrize("op", sorted(BOMBS))
def test_constant_folding_bombs_refused_before_allocating(tmp_path, op):
    nodes, inits = BOMBS[op]
    msg = _refused(save(_with_constant(nodes, inits), tmp_path / "bomb.onnx"), ResourceLimitError, op, "max_elements")
    assert "400,000,000" in msg or "10,000,000,000" in msg


def test_loop_with_huge_trip_count_is_not_run(tmp_path):
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Add", ["acc_in", "one"], ["acc_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [1])])
    nodes = [helper.make_node("Loop", ["trip", "cond", "one"], ["big"], body=body, name="forever")]
    inits = [_i64("trip", 10**12), numpy_helper.from_array(np.array(True), "cond"), _f32("one", [1.0])]
    _refused(save(_with_constant(nodes, inits), tmp_path / "loop.onnx"), UnsupportedModelError, "Loop", "control flow")


def test_element_budget_is_overridable(tmp_path):
    nodes = [helper.make_node("ConstantOfShape", ["shp"], ["big"], value=_ONE, name="medium")]
    p = save(_with_constant(nodes, [_i64("shp", [1000, 1000])]), tmp_path / "m.onnx")
    assert load_model(p).architecture == "gru"
    _refused(p, ResourceLimitError, "medium", "1,000,000", max_elements=500_000)
    assert load_model(p, max_elements=2_000_000).architecture == "gru"


@pytest.mark.parametrize("where", ["input feature axis", "initializer", "hidden_size"])
def test_huge_declared_sizes(tmp_path, where):
    m = _good()
    if where == "input feature axis":
        m.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 10**9
    elif where == "initializer":
        t = m.graph.initializer[0]
        t.dims[:] = [1, 10**5, 10**5]
    else:
        for n in m.graph.node:
            for a in n.attribute:
                if a.name == "hidden_size":
                    a.i = 10**9
    _refused(save(m, tmp_path / "huge.onnx"))


def test_deadline_is_checked_while_loading(tmp_path):
    p = save(_good(), tmp_path / "g.onnx")
    with pytest.raises(DeadlineExceeded):
        load_model(p, deadline=Deadline.after(0.0))
    assert load_model(p, deadline=Deadline.after(60.0)).architecture == "gru"


# ---- special files ------------------------------------------------------------------------------


@pytest.mark.skipif(not POSIX, reason="FIFOs need POSIX")
def test_fifo_as_model_is_refused_without_opening(tmp_path):
    p = tmp_path / "pipe.onnx"
    os.mkfifo(p)
    _refused(p, ModelFileError, "named pipe", "regular file")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_device_as_model():
    _refused("/dev/zero", ModelFileError, "character device")


def test_directory_and_missing(tmp_path):
    _refused(tmp_path, ModelFileError, "directory")
    _refused(tmp_path / "nope.onnx", ModelFileError, "does not exist")


@pytest.mark.parametrize("seed", range(4))
def test_random_and_truncated_bytes(tmp_path, seed):
    rng = np.random.default_rng(seed)
    p = tmp_path / "r.onnx"
    p.write_bytes(rng.bytes(int(rng.integers(1, 5000))))
    _refused(p)
    good = save(_good(seed), tmp_path / "g.onnx")
    data = open(good, "rb").read()
    p.write_bytes(data[: int(len(data) * rng.uniform(0.05, 0.95))])
    _refused(p)


def test_external_data_that_is_a_fifo_or_directory(tmp_path):
    m = _good()
    d = tmp_path / "m"
    d.mkdir()
    onnx.save(m, str(d / "model.onnx"), save_as_external_data=True, location="w.data", size_threshold=0)
    os.remove(d / "w.data")
    os.mkdir(d / "w.data")
    _refused(d / "model.onnx", ModelFileError, "directory")
    if POSIX:
        os.rmdir(d / "w.data")
        os.mkfifo(d / "w.data")
        _refused(d / "model.onnx", ModelFileError, "named pipe")


# ---- metadata and sidecar JSON -----------------------------------------------------------------


@pytest.mark.parametrize(("key", "value", "words"), [
    ("certify.input_range", "[" * 50000 + "]" * 50000, ["nested too deeply"]),
    ("certify.input_range", '{"low": "-1", "high": [1, 1]}', ["field 'low'", "array"]),
    ("certify.input_range", '{"low": [-1, -1], "hi": [1, 1]}', ["'hi'", "did you mean 'high'"]),
    ("certify.input_scaling", '{"raw_low": [0, 0], "raw_high": [1, 1], "net_low": "-1"}', ["net_low"]),
    ("certify.input_names", '["a", 2]', ["field '1'"]),
    ("certify.input_range", '{"low": [NaN, 0], "high": [1, 1]}', ["not valid JSON"]),
    ("certify.output_names", "{not json", ["not valid JSON"]),
])
def test_bad_metadata_json(tmp_path, key, value, words):
    m = _good()
    m.metadata_props.add(key=key, value=value)
    _refused(save(m, tmp_path / "meta.onnx"), ModelFileError, *words)


@pytest.fixture
def gru_pt(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    p = tmp_path / "g.pt"
    torch.save(torch.nn.GRU(2, 3).state_dict(), p)
    return p


@pytest.mark.torch
@pytest.mark.parametrize(("text", "words"), [
    (b'{"reset_after": ""}', ["'reset_after'", "boolean"]),
    (b'{"reset_after": 0}', ["'reset_after'", "boolean"]),
    (b'{"reset_after": "false"}', ["'reset_after'", "boolean"]),
    (b'{"reset_afer": false}', ["'reset_afer'", "did you mean 'reset_after'"]),
    (b'{"input_range": {"low": [-1, -1], "high": [1, "1"]}}', ["input_range.high.1"]),
    (b'{"architecture": "gru", "num_layers": 1.5}', ["num_layers"]),
    (b'{"version": 2}', ["version"]),
    (b'{"input_names": ["\xff\xfe"]}', ["UTF-8"]),
    (b"[" * 100000 + b"]" * 100000, ["nested too deeply"]),
    (b'"just a string"', ["JSON object"]),
])
def test_bad_sidecars_name_the_field(gru_pt, text, words):
    (gru_pt.parent / "g.pt.certify.json").write_bytes(text)
    _refused(gru_pt, ModelFileError, *words)


@pytest.mark.torch
def test_sidecar_special_files(gru_pt):
    side = gru_pt.parent / "g.pt.certify.json"
    os.mkdir(side)
    _refused(gru_pt, ModelFileError, "sidecar", "directory")
    os.rmdir(side)
    if POSIX:
        os.mkfifo(side)
        _refused(gru_pt, ModelFileError, "sidecar", "named pipe")


@pytest.mark.torch
def test_reset_after_false_is_honoured_not_coerced(gru_pt):
    side = gru_pt.parent / "g.pt.certify.json"
    side.write_text('{"reset_after": false}')
    assert load_model(gru_pt).layers[0].reset_after is False
    side.write_text('{"reset_after": true}')
    assert load_model(gru_pt).layers[0].reset_after is True


# ---- unusual state dicts -------------------------------------------------------------------------


@pytest.mark.torch
def test_sparse_and_quantized_tensors_refused(tmp_path):
    import warnings

    torch = pytest.importorskip("torch")
    sd = torch.nn.GRU(2, 3).state_dict()
    sd["weight_ih_l0"] = sd["weight_ih_l0"].to_sparse()
    torch.save(sd, tmp_path / "s.pt")
    _refused(tmp_path / "s.pt", UnsupportedModelError, "weight_ih_l0", "dense")
    sd = torch.nn.GRU(2, 3).state_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sd["weight_ih_l0"] = torch.quantize_per_tensor(sd["weight_ih_l0"], 0.1, 0, torch.qint8)
        torch.save(sd, tmp_path / "q.pt")
        _refused(tmp_path / "q.pt", UnsupportedModelError, "weight_ih_l0", "quantized")


@pytest.mark.torch
@pytest.mark.parametrize("key", ["model_state_dict", "model", "state_dict"])
def test_tutorial_checkpoints_accepted(tmp_path, key):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    lstm = torch.nn.LSTM(2, 3, num_layers=2)
    ckpt = {key: lstm.state_dict(), "epoch": 7, "loss": 0.25,
            "optimizer_state_dict": torch.optim.SGD(lstm.parameters(), lr=0.1).state_dict()}
    torch.save(ckpt, tmp_path / "ckpt.pt")
    net = load_model(tmp_path / "ckpt.pt")
    u = np.random.default_rng(0).uniform(-1, 1, (30, 2))
    with torch.no_grad():
        y = lstm.double()(torch.as_tensor(u))[0].numpy()
    assert net.architecture == "lstm" and np.max(np.abs(net.simulate(u).y - y)) <= 1e-10


@pytest.mark.torch
def test_rnn_state_dict_requires_the_nonlinearity(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(2)
    r = torch.nn.RNN(2, 3, nonlinearity="relu")
    p = tmp_path / "r.pt"
    torch.save(r.state_dict(), p)
    msg = _refused(p, UnsupportedModelError, "tanh or relu", "r.pt.certify.json")
    start = msg.index("{")
    example = json.loads(msg[start: msg.index("}", start) + 1])  # the message carries a valid sidecar
    example["nonlinearity"] = "relu"
    (tmp_path / "r.pt.certify.json").write_text(json.dumps(example))
    net = load_model(p)
    u = np.random.default_rng(0).uniform(-1, 1, (40, 2))
    with torch.no_grad():
        y = r.double()(torch.as_tensor(u))[0].numpy()
    assert net.layers[0].activation == "relu" and np.max(np.abs(net.simulate(u).y - y)) <= 1e-10


@pytest.mark.torch
def test_missing_torch_is_an_install_problem(gru_pt, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    msg = _refused(gru_pt, InvalidInputError, "pip install 'certify[torch]'")
    assert "<repo>" not in msg


# ---- integrity -----------------------------------------------------------------------------------


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_sha256_covers_external_data(tmp_path):
    """Two models that differ only in their external weights have different hashes (sha256sum manifest)."""
    hashes = []
    for k in range(2):
        d = tmp_path / f"m{k}"
        d.mkdir()
        onnx.save(_good(k), str(d / "model.onnx"), save_as_external_data=True, location="model.onnx.data",
                  size_threshold=0)
        net = load_model(d / "model.onnx")
        manifest = f"{_sha(d / 'model.onnx')}  model.onnx\n{_sha(d / 'model.onnx.data')}  model.onnx.data\n"
        assert net.info.sha256 == hashlib.sha256(manifest.encode()).hexdigest()
        hashes.append(net.info.sha256)
    assert hashes[0] != hashes[1]
    single = save(_good(), tmp_path / "single.onnx")
    assert load_model(single).info.sha256 == _sha(single)  # one file: its own sha256


@pytest.mark.torch
def test_sha256_covers_the_sidecar(gru_pt):
    plain = load_model(gru_pt).info.sha256
    assert plain == _sha(gru_pt)
    side = gru_pt.parent / "g.pt.certify.json"
    side.write_text('{"reset_after": false}')
    a = load_model(gru_pt).info.sha256
    side.write_text('{"reset_after": true}')
    b = load_model(gru_pt).info.sha256
    assert len({plain, a, b}) == 3


@pytest.mark.torch
def test_sidecar_sizes_must_match_the_weights(gru_pt):
    side = gru_pt.parent / "g.pt.certify.json"
    side.write_text('{"architecture": "gru", "n_in": 2, "hidden": 3, "num_layers": 1}')
    assert load_model(gru_pt).architecture == "gru"
    side.write_text('{"architecture": "gru", "hidden": 4}')
    _refused(gru_pt, InvalidInputError, "'hidden' is 4", "have 3")


# ---- byte-level damage: only clear errors ---------------------------------------------------------

_GOOD_BYTES = _good().SerializeToString()


@settings(max_examples=30)
@given(data=st.data())
def test_damaged_onnx_bytes_give_a_clear_error_or_a_network(tmp_path_factory, data):
    raw = bytearray(_GOOD_BYTES)
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        kind = data.draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
        if kind == "flip":
            raw[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "delete":
            del raw[pos: pos + data.draw(st.integers(1, 16))]
        elif kind == "insert":
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=16))
        else:
            del raw[max(pos, 1):]
        if not raw:
            raw = bytearray(b"\x08")
    p = tmp_path_factory.mktemp("dmg") / "m.onnx"
    p.write_bytes(bytes(raw))
    try:
        net = load_model(p)
    except InvalidInputError:
        return
    assert net.n_inputs >= 1 and np.all(np.isfinite(net.simulate(np.zeros((3, net.n_inputs))).y))


@pytest.mark.torch
def test_missing_torch_cli_exit_3(gru_pt, monkeypatch, capfd):
    from certify.cli import main

    monkeypatch.setitem(sys.modules, "torch", None)
    assert main(["check", str(gru_pt)]) == 3
    cap = capfd.readouterr()
    err = cap.err + cap.out
    assert "pip install 'certify[torch]'" in err and "internal error" not in err


@pytest.mark.torch
def test_zip_that_expands_beyond_the_budget(gru_pt, tmp_path):
    import zipfile

    src = zipfile.ZipFile(gru_pt)
    p = tmp_path / "bomb.pt"
    with zipfile.ZipFile(p, "w") as out:
        for info in src.infolist():
            out.writestr(info, src.read(info.filename))
        out.writestr(zipfile.ZipInfo("g/data/99"), b"\0" * 10**7, compress_type=zipfile.ZIP_DEFLATED)
    assert p.stat().st_size < 10**6
    _refused(p, ResourceLimitError, "expands", max_elements=10**5)
    (tmp_path / "bad.pt").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    _refused(tmp_path / "bad.pt", ModelFileError)
