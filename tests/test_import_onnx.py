"""ONNX importer: canonical simulation vs onnxruntime and vs torch, for both torch exporters."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from certify.importers import load_model
from certify.networks import AffineCell, GRULayer, InputRange
from tests._export_util import cell_model, gru_lbr0_model, randomize, run_ort, save, seeded, torch_forward

T_LONG = 200  # legacy exports: ORT, torch and canonical compared over 200 steps
T_DYNAMO_UNROLLED = 16  # dynamo fixes T at export and unrolls nn.RNN: a 200-step export takes ~40 s


def _t_dynamo(kind: str) -> int:
    """Sequence length of the dynamo exports: 200 for fused GRU/LSTM, shorter for the unrolled nn.RNN."""
    return T_DYNAMO_UNROLLED if kind == "rnn" else T_LONG
TOL = 1e-5
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LEGACY_CASES = [(k, L, b) for k in ("gru", "lstm", "rnn") for L in (1, 2, 3) for b in (True, False)]
DYNAMO_CASES = [("gru", 2, True), ("lstm", 1, False), ("rnn", 2, True)]


def _module(kind: str, layers: int, bias: bool, seed: int):
    from certify.train.modules import ElmanNet, GRUNet, LSTMNet

    rng = seeded(seed)
    cls = {"gru": GRUNet, "lstm": LSTMNet, "rnn": ElmanNet}[kind]
    kw = {"nonlinearity": "relu"} if (kind == "rnn" and layers == 2 and not bias) else {}
    mod = cls(2, 4 if kind != "lstm" else 3, layers, 2 if layers == 2 else 1, bias=bias, **kw)
    randomize(mod, rng)
    return mod.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Exports cached for the whole module: {(exporter, kind, layers, bias): (module, path)}."""
    pytest.importorskip("torch")
    from certify.train.modules import export_onnx

    d = tmp_path_factory.mktemp("onnx_exports")
    out = {}
    for i, (kind, L, bias) in enumerate(LEGACY_CASES):
        mod = _module(kind, L, bias, i)
        # 3-layer stacks use dynamic batch/time axes (zero initial states built from Shape(u) at run time)
        out[("legacy", kind, L, bias)] = (mod, export_onnx(mod, d / f"legacy_{kind}{L}{bias}.onnx", seq_len=T_LONG,
                                                           dynamic=L == 3))
    for i, (kind, L, bias) in enumerate(DYNAMO_CASES):
        mod = _module(kind, L, bias, 100 + i)
        out[("dynamo", kind, L, bias)] = (mod, export_onnx(mod, d / f"dyn_{kind}{L}{bias}.onnx",
                                                           seq_len=_t_dynamo(kind), dynamo=True))
    return out


def _input_dims(path) -> list:
    import onnx

    shape = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else None for d in shape.dim]


def _check_against_references(mod, path, T_file: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    net = load_model(path)
    u = rng.uniform(-1.5, 1.5, (2, T_LONG, 2))
    y_can = np.stack([net.simulate(u[b]).y for b in range(2)])
    y_torch = torch_forward(mod, u)
    assert np.max(np.abs(y_can - y_torch)) <= TOL
    u32 = u[:, :T_file].astype(np.float32)
    dims = _input_dims(path)
    if dims[0] is None:  # dynamic batch axis: one call for the whole batch
        y_ort = run_ort(path, {"u": u32})[0]
    else:
        y_ort = np.concatenate([run_ort(path, {"u": u32[b : b + 1]})[0] for b in range(2)])
    y_can32 = np.stack([net.simulate(u32[b].astype(np.float64)).y for b in range(2)])
    assert np.max(np.abs(y_can32 - y_ort)) <= TOL


@pytest.mark.torch
@pytest.mark.parametrize("case", LEGACY_CASES, ids=lambda c: f"{c[0]}-L{c[1]}-bias{c[2]}")
def test_legacy_export_matches_ort_and_torch(exported, case):
    mod, path = exported[("legacy",) + case]
    net = load_model(path)
    assert len(net.layers) == case[1]
    assert net.architecture == {"gru": "gru", "lstm": "lstm", "rnn": "elman"}[case[0]]
    assert net.info.source_format == "onnx" and net.info.extra["exporter"].startswith("torch.onnx (legacy")
    _check_against_references(mod, path, T_LONG, seed=hash(case) % 1000)


@pytest.mark.torch
@pytest.mark.parametrize("case", DYNAMO_CASES, ids=lambda c: f"{c[0]}-L{c[1]}-bias{c[2]}")
def test_dynamo_export_matches_ort_and_torch(exported, case):
    mod, path = exported[("dynamo",) + case]
    net = load_model(path)
    assert len(net.layers) == case[1]
    assert net.info.extra["exporter"] == "torch.onnx (dynamo)"
    if case[0] == "rnn":  # nn.RNN is unrolled by the dynamo exporter; the recurrence is recovered
        assert net.info.extra["unrolled_steps"] == T_DYNAMO_UNROLLED
    _check_against_references(mod, path, _t_dynamo(case[0]), seed=7)


@pytest.mark.torch
def test_same_weights_from_onnx_and_state_dict_are_identical(exported, tmp_path):
    from certify.train.modules import save_state_dict

    for key in [("legacy", "gru", 2, True), ("legacy", "lstm", 1, False), ("legacy", "rnn", 2, False),
                ("dynamo", "gru", 2, True), ("dynamo", "rnn", 2, True)]:
        mod, path = exported[key]
        pt, _ = save_state_dict(mod, tmp_path / f"{'_'.join(map(str, key))}.pt")
        a, b = load_model(path), load_model(pt)
        assert b.info.source_format == "torch_state_dict"
        assert len(a.layers) == len(b.layers)
        for la, lb in zip(a.layers, b.layers):
            assert type(la) is type(lb)
            for f in la.__dataclass_fields__:
                va, vb = getattr(la, f), getattr(lb, f)
                if isinstance(va, np.ndarray):
                    assert np.max(np.abs(va - vb), initial=0.0) <= 1e-7, (key, f)
                else:
                    assert va == vb
        assert np.max(np.abs(a.head.W - b.head.W)) <= 1e-7 and np.max(np.abs(a.head.b - b.head.b)) <= 1e-7


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("bias", [True, False])
def test_gru_linear_before_reset_0_matches_ort(tmp_path, layers, bias):
    rng = np.random.default_rng(layers + 10 * bias)
    path = save(gru_lbr0_model(rng, 2, 4, layers, 1, bias=bias, T=T_LONG), tmp_path / "g.onnx")
    net = load_model(path)
    assert all(isinstance(la, GRULayer) and not la.reset_after for la in net.layers)
    u = rng.uniform(-1.5, 1.5, (1, T_LONG, 2)).astype(np.float32)
    y = run_ort(path, {"u": u})[0]
    assert np.max(np.abs(net.simulate(u[0].astype(np.float64)).y - y[0])) <= TOL


@pytest.mark.torch
def test_gru_lbr0_matches_cho_gru_module(tmp_path):
    from certify.train.modules import from_canonical

    rng = np.random.default_rng(3)
    path = save(gru_lbr0_model(rng, 2, 4, 2, 1, T=T_LONG), tmp_path / "g.onnx")
    net = load_model(path)
    mod = from_canonical(net)
    u = rng.uniform(-1, 1, (1, T_LONG, 2))
    assert np.max(np.abs(torch_forward(mod, u)[0] - net.simulate(u[0]).y)) <= TOL


def test_lbr1_layout1_equals_layout0(tmp_path):
    """onnxruntime has no layout=1 GRU kernel: compare with the same weights in layout 0 instead."""
    p1 = save(gru_lbr0_model(np.random.default_rng(5), 3, 4, 2, 2, lbr=1, batch_first=True, T=30), tmp_path / "a.onnx")
    p0 = save(gru_lbr0_model(np.random.default_rng(5), 3, 4, 2, 2, lbr=1, batch_first=False, T=30), tmp_path / "b.onnx")
    n1, n0 = load_model(p1), load_model(p0)
    assert n1.info.extra["input_layout"] == "batch_first" and n1.layers[0].reset_after
    u = np.random.default_rng(1).uniform(-1, 1, (1, 30, 3)).astype(np.float32)
    y1 = n1.simulate(u[0].astype(np.float64)).y
    assert np.array_equal(y1, n0.simulate(u[0].astype(np.float64)).y)
    assert np.max(np.abs(y1 - run_ort(p0, {"u": u})[0][0])) <= TOL


@given(scale=st.floats(0.1, 3.0), seed=st.integers(0, 10_000), hidden=st.integers(1, 6))
def test_property_gru_lbr0_single_layer(tmp_path_factory, scale, seed, hidden):
    rng = np.random.default_rng(seed)
    W = rng.uniform(-scale, scale, (1, 3 * hidden, 2))
    path = save(gru_lbr0_model(rng, 2, hidden, 1, 1, T=12, W_override=W), tmp_path_factory.mktemp("p") / "g.onnx")
    net = load_model(path)
    u = rng.uniform(-2, 2, (1, 12, 2)).astype(np.float32)
    assert np.max(np.abs(net.simulate(u[0].astype(np.float64)).y - run_ort(path, {"u": u})[0][0])) <= TOL


# ---- one-step cell graphs ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def step_exports(tmp_path_factory):
    pytest.importorskip("torch")
    from certify.train.modules import SSNN, LPGRNNNet, export_step_onnx

    d = tmp_path_factory.mktemp("step_exports")
    out = {}
    for dyn in (False, True):
        rng = seeded(11 + dyn)
        for name, mod in (("lpgrnn", LPGRNNNet(2, 4, 3, 2, 1)), ("ssnn", SSNN(2, 3, 2, 5, 4)),
                          ("ssnn_plain", SSNN(2, 3, 1, 4, 4, linear=False, activation="relu"))):
            if dyn and name == "ssnn_plain":
                continue
            randomize(mod, rng)
            out[(name, dyn)] = (mod, export_step_onnx(mod, d / f"{name}_{dyn}.onnx", dynamo=dyn))
    return out


@pytest.mark.torch
@pytest.mark.parametrize(("name", "dynamo"), [("lpgrnn", False), ("ssnn", False), ("ssnn_plain", False),
                                             ("lpgrnn", True), ("ssnn", True)])
def test_step_graph_affine_cell_matches_ort_step_by_step(step_exports, name, dynamo):
    from certify.train.modules import to_canonical

    mod, path = step_exports[(name, dynamo)]
    net = load_model(path)
    cell = net.layers[0]
    assert isinstance(cell, AffineCell) and net.info.extra["graph_kind"] == "one_step_cell"
    rng = np.random.default_rng(1)
    u = rng.uniform(-1, 1, (T_LONG, 2))
    x = np.zeros(cell.n_state, dtype=np.float32)
    for k in range(T_LONG):
        x_next, y = run_ort(path, {"u": u[k : k + 1], "x": x[None]})
        xc, yc = cell.step(x.astype(np.float64), u[k].astype(np.float32).astype(np.float64))
        assert np.max(np.abs(xc - x_next[0])) <= TOL and np.max(np.abs(yc - y[0])) <= TOL
        x = x_next[0]
    ref = to_canonical(mod).simulate(u)
    assert np.max(np.abs(net.simulate(u).y - ref.y)) <= TOL
    assert np.max(np.abs(net.simulate(u).y - torch_forward(mod, u[None])[0])) <= TOL


def test_hand_built_cell_graph_with_split_concat_and_scalars(tmp_path):
    """x⁺ = 0.5 x + tanh(Wx x + Wu u) / 2 ; y = -[relu(x), x] @ C - 1 (Concat/Div/Neg/Sub/scalars)."""
    from onnx import helper

    rng = np.random.default_rng(0)
    Wx, Wu, C = rng.normal(size=(2, 2)), rng.normal(size=(3, 2)), rng.normal(size=(4, 1))
    nodes = [
        helper.make_node("MatMul", ["x", "Wx"], ["a"]), helper.make_node("MatMul", ["u", "Wu"], ["b"]),
        helper.make_node("Add", ["a", "b"], ["q"]), helper.make_node("Tanh", ["q"], ["p"]),
        helper.make_node("Div", ["p", "two"], ["p2"]), helper.make_node("Mul", ["x", "half"], ["xh"]),
        helper.make_node("Add", ["xh", "p2"], ["x_next"]),
        helper.make_node("Relu", ["x"], ["rx"]),
        helper.make_node("Concat", ["rx", "x"], ["cat"], axis=1), helper.make_node("MatMul", ["cat", "C"], ["yc"]),
        helper.make_node("Neg", ["yc"], ["yn"]), helper.make_node("Sub", ["yn", "one"], ["y"]),
    ]
    inits = {"Wx": Wx, "Wu": Wu, "C": C, "two": np.array(2.0), "half": np.array(0.5), "one": np.array([1.0])}
    path = save(cell_model(nodes, inits, 3, 2, 1), tmp_path / "cell.onnx")
    net = load_model(path)
    cell = net.layers[0]
    assert cell.activations == ("tanh", "tanh", "relu", "relu")
    x = np.zeros(2, dtype=np.float32)
    for _ in range(50):
        u = rng.uniform(-1, 1, 3).astype(np.float32)
        xn, y = run_ort(path, {"u": u[None], "x": x[None]})
        xc, yc = cell.step(x.astype(np.float64), u.astype(np.float64))
        assert np.max(np.abs(xc - xn[0])) <= TOL and np.max(np.abs(yc - y[0])) <= TOL
        x = xn[0]


# ---- metadata, external data, the bundled model, startup --------------------------------------


def test_metadata_and_argument_override(tmp_path):
    rng = np.random.default_rng(0)
    meta = {"certify.input_range": {"low": [-2, -1], "high": [2, 1]},
            "certify.input_scaling": {"raw_low": [0, 0], "raw_high": [10, 5]},
            "certify.output_scaling": {"raw_low": [0], "raw_high": [100], "net_low": 0, "net_high": 1},
            "certify.input_names": ["flow", "temp"]}
    path = save(gru_lbr0_model(rng, 2, 3, 1, 1, metadata=meta), tmp_path / "m.onnx")
    net = load_model(path)
    assert net.info.input_range.high.tolist() == [2.0, 1.0]
    assert net.info.input_scaling.gain.tolist() == [0.2, 0.4]
    assert net.info.output_scaling.net_low == 0.0
    assert net.info.input_names == ("flow", "temp") and net.info.output_names == ("y",)
    import hashlib

    assert net.info.sha256 == hashlib.sha256(open(path, "rb").read()).hexdigest()
    assert net.info.extra["producer"] == "certify-tests" and net.info.extra["opset"] == 17
    over = load_model(path, input_range=InputRange.symmetric(2, 0.5))
    assert over.info.input_range.high.tolist() == [0.5, 0.5]
    assert load_model(save(gru_lbr0_model(rng, 2, 3, 1, 1), tmp_path / "n.onnx")).info.input_range is None


def test_external_data_inside_folder_loads(tmp_path):
    import onnx

    rng = np.random.default_rng(0)
    model = gru_lbr0_model(rng, 2, 3, 2, 1, T=20)
    ref = load_model(save(model, tmp_path / "inline.onnx"))
    sub = tmp_path / "ext"
    sub.mkdir()
    onnx.save(model, str(sub / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="model.onnx.data", size_threshold=0)
    assert os.path.getsize(sub / "model.onnx.data") > 0
    net = load_model(sub / "model.onnx")
    assert np.array_equal(net.layers[1].U_n, ref.layers[1].U_n)
    import hashlib

    digest = hashlib.sha256((sub / "model.onnx.data").read_bytes()).hexdigest()
    assert net.info.extra["external_data_sha256"] == {"model.onnx.data": digest}


def test_bundled_gru_small():
    net = load_model(os.path.join(REPO, "models_zoo", "gru_small.onnx"))
    assert net.architecture == "gru" and net.n_inputs == 2 and net.n_states == 4 and net.n_outputs == 1
    assert net.info.input_range is not None
    assert os.path.getsize(os.path.join(REPO, "models_zoo", "gru_small.onnx")) < 20_000


def test_loading_onnx_does_not_import_torch(tmp_path):
    path = save(gru_lbr0_model(np.random.default_rng(0), 2, 3, 1, 1), tmp_path / "m.onnx")
    code = ("import sys; from certify.importers import load_model; "
            f"s = load_model({str(path)!r}).summary(); assert 'torch' not in sys.modules, 'torch imported'; "
            "print(s['architecture'])")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "gru"


def test_summary_is_json_serialisable(tmp_path):
    path = save(gru_lbr0_model(np.random.default_rng(0), 2, 3, 1, 1), tmp_path / "m.onnx")
    summary = json.loads(json.dumps(load_model(path).summary()))
    assert summary["architecture"] == "gru" and summary["n_inputs"] == 2
    assert summary["layers"][0]["reset_after"] is False  # linear_before_reset=0 → Cho/Bonassi convention


@pytest.mark.torch
@pytest.mark.parametrize(("kind", "form", "dynamo"), [("GRU", "h_n", False), ("LSTM", "last", False),
                                                      ("RNN", "h_n", True), ("RNN", "last", True)])
def test_sequence_to_one_models(tmp_path, kind, form, dynamo):
    """fc(h_n[-1]) and fc(o[:, -1]) read-outs (dynamo: nn.RNN unrolled, h_n read from the last step)."""
    import torch

    from certify.train.modules import _export

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(torch.nn, kind)(2, 4, num_layers=2, batch_first=True)
            self.fc = torch.nn.Linear(4, 1)

        def forward(self, u):
            o, h = self.rnn(u)
            h = h[0] if isinstance(h, tuple) else h
            return self.fc(h[-1] if form == "h_n" else o[:, -1, :])

    seeded(0)
    m = M()
    path = str(tmp_path / "m.onnx")
    _export(m, (torch.zeros(1, 8, 2),), path, (["u"], ["y"]), dynamo)
    net = load_model(path)
    assert net.info.extra["output"] == "last_step" and len(net.layers) == 2
    u = np.random.default_rng(0).uniform(-1, 1, (1, 8, 2))
    y_ort = run_ort(path, {"u": u})[0][0]
    with torch.no_grad():
        y_torch = m.double()(torch.as_tensor(u)).numpy()[0]
    y_can = net.simulate(u[0]).y[-1]
    assert np.max(np.abs(y_can - y_torch)) <= 1e-10
    assert np.max(np.abs(y_can - y_ort)) <= TOL


@st.composite
def _random_cell(draw):
    """A random one-step graph over signals of width 3: affine ops, activations, Concat+Slice, sums."""
    from onnx import helper

    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    nodes, inits, sigs = [], {}, ["x", "u"]
    for i in range(draw(st.integers(1, 7))):
        op = draw(st.sampled_from(["MatMul", "AddC", "Add", "Sub", "Mul", "Div", "Tanh", "Sigmoid", "Relu", "Neg",
                                   "CatSlice"]))
        a, b = draw(st.sampled_from(sigs)), draw(st.sampled_from(sigs))
        out = f"s{i}"
        if op == "MatMul":
            inits[f"W{i}"] = rng.normal(size=(3, 3))
            nodes.append(helper.make_node("MatMul", [a, f"W{i}"], [out]))
        elif op in ("AddC", "Mul", "Div"):
            inits[f"c{i}"] = rng.uniform(0.5, 1.5, 3) * rng.choice([-1, 1], 3)
            nodes.append(helper.make_node({"AddC": "Add"}.get(op, op), [a, f"c{i}"], [out]))
        elif op in ("Add", "Sub"):
            nodes.append(helper.make_node(op, [a, b], [out]))
        elif op == "CatSlice":
            inits[f"st{i}"], inits[f"en{i}"], inits[f"ax{i}"] = np.array([2]), np.array([5]), np.array([1])
            nodes.append(helper.make_node("Concat", [a, b], [f"cat{i}"], axis=1))
            nodes.append(helper.make_node("Slice", [f"cat{i}", f"st{i}", f"en{i}", f"ax{i}"], [out]))
        else:
            nodes.append(helper.make_node(op, [a], [out]))
        sigs.append(out)
    nodes.append(helper.make_node("Mul", [draw(st.sampled_from(sigs)), "half"], ["x_next"]))
    nodes.append(helper.make_node("Identity", [draw(st.sampled_from(sigs))], ["y"]))
    inits["half"] = np.array(0.5)
    return nodes, inits


@given(_random_cell())
def test_property_random_cell_graphs_match_ort(tmp_path_factory, cell):
    from onnx import numpy_helper

    nodes, inits = cell
    model = cell_model(nodes, {}, 3, 3, 3)
    for k, v in inits.items():
        arr = np.asarray(v, dtype=np.int64 if k[:2] in ("st", "en", "ax") else np.float32)
        model.graph.initializer.append(numpy_helper.from_array(arr, name=k))
    path = save(model, tmp_path_factory.mktemp("cell") / "c.onnx")
    net = load_model(path)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 3).astype(np.float32)
    for _ in range(5):
        u = rng.uniform(-1, 1, 3).astype(np.float32)
        xn, y = run_ort(path, {"u": u[None], "x": x[None]})
        xc, yc = net.layers[0].step(x.astype(np.float64), u.astype(np.float64))
        scale = 1.0 + np.max(np.abs(y))
        assert np.max(np.abs(xc - xn[0])) <= 1e-4 * scale and np.max(np.abs(yc - y[0])) <= 1e-4 * scale
        x = xn[0]


def test_constant_plumbing_folded_with_reference_evaluator(tmp_path):
    """Weights computed by ops certify has no numpy folder for (Sqrt) are folded by onnx.reference."""
    from onnx import helper, numpy_helper

    m = gru_lbr0_model(np.random.default_rng(0), 2, 3, 1, 1, T=10)
    for t in m.graph.initializer:
        if t.name == "R0":
            t.CopyFrom(numpy_helper.from_array(np.abs(numpy_helper.to_array(t)) ** 2, "R0sq"))
    m.graph.node.insert(0, helper.make_node("Sqrt", ["R0sq"], ["R0"], name="sqrt_plumbing"))
    path = save(m, tmp_path / "sqrt.onnx")
    net = load_model(path)
    u = np.random.default_rng(1).uniform(-1, 1, (1, 10, 2)).astype(np.float32)
    assert np.max(np.abs(net.simulate(u[0].astype(np.float64)).y - run_ort(path, {"u": u})[0][0])) <= TOL


def test_weights_as_constant_nodes_and_time_major_input(tmp_path):
    """Initializers moved into Constant nodes, and a [time, batch, feature] graph input, import the same."""
    from onnx import helper

    m = gru_lbr0_model(np.random.default_rng(2), 2, 3, 2, 1, T=20)
    ref = load_model(save(m, tmp_path / "ref.onnx"))
    consts = [helper.make_node("Constant", [], [t.name], value=t) for t in m.graph.initializer]
    del m.graph.initializer[:]
    nodes = consts + [n for n in m.graph.node if n.name not in ("to_time_major", "to_batch_first")]
    for n in nodes:  # feed u directly as [T, batch, F] and return the time-major output
        n.input[:] = ["u" if i == "u_t" else i for i in n.input]
        n.output[:] = ["o_bf" if o == "S1" else o for o in n.output]
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    for vi, dims in ((m.graph.input[0], (20, 1, 2)), (m.graph.output[0], (20, 1, 1))):
        for d, v in zip(vi.type.tensor_type.shape.dim, dims):
            d.dim_value = v
    net = load_model(save(m, tmp_path / "const.onnx"))
    assert net.info.extra["input_layout"] == "time_major"
    for la, lb in zip(net.layers, ref.layers):
        assert np.array_equal(la.U_n, lb.U_n) and np.array_equal(la.b_hn, lb.b_hn)
    u = np.random.default_rng(0).uniform(-1, 1, (20, 1, 2)).astype(np.float32)
    y = run_ort(str(tmp_path / "const.onnx"), {"u": u})[0]
    assert np.max(np.abs(net.simulate(u[:, 0].astype(np.float64)).y - y[:, 0])) <= TOL
