"""Real torch exports as users write them, imported and compared with onnxruntime and torch.

Both exporters (legacy ``dynamo=False`` and the default ``dynamo=True``), static and dynamic axes
(``dynamic_axes`` / ``torch.export.Dim``), batch 1 and 2, ``h0``/``c0`` graph inputs, opsets 14–20,
GRU / LSTM / RNN (tanh and relu), 1–2 layers, an input ``BatchNorm1d``, external data.  Every accepted
export must match torch (float64, 200 steps) and onnxruntime (float32, the steps the file allows) to
1e-5; exports that onnxruntime refuses (or that have no exact canonical form) are refused clearly.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from certify.errors import InvalidInputError, ModelFileError, UnsupportedModelError
from certify.importers import load_model

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.torch

T = 200  # steps compared with torch (and with onnxruntime where the file allows it)
T_UNROLLED = 12  # the dynamo exporter unrolls nn.RNN for the export length: keep it short
T_DYNAMO = 12  # example length of the other dynamo exports (one is exported with T steps)
TOL = 1e-5
N_IN, HIDDEN = 2, 3


class Net(torch.nn.Module):
    """nn.GRU/LSTM/RNN stack (batch_first) + nn.Linear, optional input BatchNorm1d and h0/c0 arguments."""

    def __init__(self, kind: str, layers: int, act: str = "tanh", bn: bool = False, proj: int = 0) -> None:
        super().__init__()
        kw: dict = {"nonlinearity": act} if kind == "rnn" else {}
        if proj:
            kw["proj_size"] = proj
        cls = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM, "rnn": torch.nn.RNN}[kind]
        self.bn = torch.nn.BatchNorm1d(N_IN) if bn else None
        self.rnn = cls(N_IN, HIDDEN, layers, batch_first=True, **kw)
        self.fc = torch.nn.Linear(proj or HIDDEN, 1)

    def forward(self, u, *h):
        if self.bn is not None:
            u = self.bn(u.transpose(1, 2)).transpose(1, 2)
        out, _ = self.rnn(u, (h if len(h) > 1 else h[0])) if h else self.rnn(u)
        return self.fc(out)


@dataclass(frozen=True)
class Variant:
    name: str
    kind: str
    layers: int
    exporter: str  # "legacy" | "dynamo"
    batch: int = 1
    dyn: str = ""  # dynamic axes: "", "t", "b", "bt"
    h0: bool = False
    opset: int | None = None
    act: str = "tanh"
    bn: bool = False
    external: bool = False

    @property
    def steps(self) -> int:
        """Sequence length of the export example (the file's length unless the time axis is dynamic).

        The dynamo exporter unrolls nn.RNN for this length, and traces slowly with long examples and
        dynamic axes (it also specialises the graph to the example's length: onnxruntime runs such a file
        only for that length), so those examples are short.  torch is always compared over T steps.
        """
        if self.exporter == "legacy":
            return T
        if self.kind == "rnn":
            return T_UNROLLED
        return T if self.name == "dynamo-gru1" else T_DYNAMO


VARIANTS = [
    Variant("legacy-gru1-op14", "gru", 1, "legacy", opset=14),
    Variant("legacy-lstm2-op15-h0-b2", "lstm", 2, "legacy", batch=2, h0=True, opset=15),
    Variant("legacy-rnnrelu2-op16-dynbt-h0", "rnn", 2, "legacy", batch=2, dyn="bt", h0=True, opset=16, act="relu"),
    Variant("legacy-rnn1-op17-b2", "rnn", 1, "legacy", batch=2, opset=17),
    Variant("legacy-gru2-op17-dynbt-h0", "gru", 2, "legacy", dyn="bt", h0=True, opset=17),
    Variant("legacy-lstm1-op18-batchnorm", "lstm", 1, "legacy", opset=18, bn=True),
    Variant("legacy-gru1-op20-b2", "gru", 1, "legacy", batch=2, opset=20),
    Variant("dynamo-gru1", "gru", 1, "dynamo"),
    Variant("dynamo-gru1-dimbt-b2", "gru", 1, "dynamo", batch=2, dyn="bt"),
    Variant("dynamo-lstm1-dimt", "lstm", 1, "dynamo", dyn="t"),
    Variant("dynamo-lstm2-dimbt-h0-b2", "lstm", 2, "dynamo", batch=2, dyn="bt", h0=True),
    Variant("dynamo-rnn1-b2", "rnn", 1, "dynamo", batch=2),
    Variant("dynamo-rnn1-dimb-b2", "rnn", 1, "dynamo", batch=2, dyn="b"),
    Variant("dynamo-rnnrelu2-h0-b2", "rnn", 2, "dynamo", batch=2, h0=True, act="relu"),
    Variant("dynamo-gru1-h0-op20", "gru", 1, "dynamo", h0=True, opset=20),
    Variant("dynamo-lstm2-op16-b2", "lstm", 2, "dynamo", batch=2, opset=16),  # converted down from 18
    Variant("dynamo-gru1-batchnorm-dimb-b2", "gru", 1, "dynamo", batch=2, dyn="b", bn=True),
    Variant("dynamo-lstm1-op18-external", "lstm", 1, "dynamo", opset=18, external=True),
]


def _seed(name: str) -> int:
    return zlib.crc32(name.encode())


def _module(v: Variant) -> Net:
    torch.manual_seed(_seed(v.name) % 2**31)
    rng = np.random.default_rng(_seed(v.name))
    mod = Net(v.kind, v.layers, v.act, v.bn)
    with torch.no_grad():
        for p in mod.rnn.parameters():  # float32-representable weights, biases included
            p.copy_(torch.as_tensor(rng.uniform(-0.6, 0.6, tuple(p.shape)), dtype=torch.float32))
        if v.bn:
            mod.bn.running_mean.copy_(torch.as_tensor(rng.uniform(-1, 1, N_IN), dtype=torch.float32))
            mod.bn.running_var.copy_(torch.as_tensor(rng.uniform(0.5, 2, N_IN), dtype=torch.float32))
            mod.bn.weight.copy_(torch.as_tensor(rng.uniform(0.5, 2, N_IN), dtype=torch.float32))
            mod.bn.bias.copy_(torch.as_tensor(rng.uniform(-1, 1, N_IN), dtype=torch.float32))
    return mod.eval()


def _state_args(v: Variant, batch: int) -> list:
    L = v.layers
    n = 2 if v.kind == "lstm" else 1
    return [torch.zeros(L, batch, HIDDEN) for _ in range(n)] if v.h0 else []


def _export(v: Variant, mod: Net, folder) -> str:
    path = os.path.join(folder, v.name, "model.onnx")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    states = _state_args(v, v.batch)
    args = (torch.zeros(v.batch, v.steps, N_IN), *states)
    names = ["u"] + (["h0", "c0"][: len(states)])
    kw: dict = {}
    if v.opset is not None:
        kw["opset_version"] = v.opset
    if v.exporter == "legacy":
        if v.dyn:
            axes = {"u": {0: "batch", 1: "time"}, "y": {0: "batch", 1: "time"}}
            axes.update({n: {1: "batch"} for n in names[1:]})
            kw["dynamic_axes"] = axes
    else:
        kw["external_data"] = v.external
        if v.dyn:
            b = torch.export.Dim("batch", min=1, max=1024)
            t = torch.export.Dim("time", min=2, max=100000)
            u_axes = {**({0: b} if "b" in v.dyn else {}), **({1: t} if "t" in v.dyn else {})}
            spec: dict = {"u": u_axes}
            if states:
                spec["h"] = tuple({1: b} if "b" in v.dyn else None for _ in states)
            kw["dynamic_shapes"] = spec
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(mod, args, path, dynamo=v.exporter == "dynamo", input_names=names, output_names=["y"],
                          **kw)
    if v.external:  # tiny weights stay inline; store them outside as a large model would
        m = onnx.load(path)
        onnx.save(m, path, save_as_external_data=True, location="model.onnx.data", size_threshold=64)
    return path


@pytest.fixture(scope="session")
def exports(tmp_path_factory):
    """Lazily exported variants, cached for the session: ``exports(variant) -> (module, path)``."""
    folder = tmp_path_factory.mktemp("exports")
    cache: dict[str, tuple[Net, str]] = {}

    def get(v: Variant) -> tuple[Net, str]:
        if v.name not in cache:
            mod = _module(v)
            cache[v.name] = (mod, _export(v, mod, folder))
        return cache[v.name]

    return get


def _session(path: str):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 4
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def _run_ort(v: Variant, path: str, u32: np.ndarray) -> np.ndarray:
    """onnxruntime on ``u32`` (batch 2): the whole batch when the file allows it, else one by one."""
    sess = _session(path)
    dims = [d.dim_value if d.HasField("dim_value") else None
            for d in onnx.load(path, load_external_data=False).graph.input[0].type.tensor_type.shape.dim]
    chunk = u32.shape[0] if dims[0] in (None, u32.shape[0]) else dims[0]
    outs = []
    for k in range(0, u32.shape[0], chunk):
        feeds = {"u": u32[k:k + chunk]}
        for name, st in zip(["h0", "c0"], _state_args(v, chunk)):
            feeds[name] = st.numpy()
        outs.append(sess.run(None, feeds)[0])
    return np.concatenate(outs)


#: max deviations measured by the comparison test, per variant (printed by the summary test)
DEVIATIONS: dict[str, tuple[float, float, int]] = {}


@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: v.name)
def test_export_matches_onnxruntime_and_torch(exports, v):
    mod, path = exports(v)
    net = load_model(path)
    assert len(net.layers) == v.layers
    assert net.architecture == {"gru": "gru", "lstm": "lstm", "rnn": "elman"}[v.kind]
    if v.kind == "rnn":
        assert all(layer.activation == v.act for layer in net.layers)
    extra = dict(net.info.extra)
    assert extra["exporter"] == ("torch.onnx (dynamo)" if v.exporter == "dynamo" else
                                 "torch.onnx (legacy TorchScript)")
    if v.h0:  # the initial state is ignored, said so, and is not listed as a signal input
        ignored = ["h0", "c0"] if v.kind == "lstm" else ["h0"]
        assert extra["initial_state_inputs_ignored"] == ignored
        assert any("initial state input(s) h0" in n and "ignored" in n for n in extra["notes"])
        assert net.info.input_names == ("u",)
        assert any("h0" in n for n in net.summary()["notes"])  # shown in reports and `certify inspect`
    if v.external:
        assert "model.onnx.data" in extra["files_sha256"]
    rng = np.random.default_rng(_seed(v.name) + 1)
    u = rng.uniform(-1.5, 1.5, (2, T, N_IN))
    y_can = np.stack([net.simulate(u[b]).y for b in range(2)])
    mod.double()
    try:
        with torch.no_grad():
            y_torch = mod(torch.as_tensor(u)).numpy()
    finally:
        mod.float()
    dev_torch = float(np.max(np.abs(y_can - y_torch)))
    time_dim = onnx.load(path, load_external_data=False).graph.input[0].type.tensor_type.shape.dim[1]
    n_ort = v.steps if time_dim.HasField("dim_value") else T  # a dynamic time axis is run for T steps
    try:
        y_ort = _run_ort(v, path, u[:, :n_ort].astype(np.float32))
    except Exception:  # noqa: BLE001 - onnxruntime's graph optimiser may bake the export length into a
        n_ort = v.steps  # Reshape of a batch-1 dynamo export; the file then runs only for that length
        y_ort = _run_ort(v, path, u[:, :n_ort].astype(np.float32))
    u32 = u[:, :n_ort].astype(np.float32)
    y_can32 = np.stack([net.simulate(u32[b].astype(np.float64)).y for b in range(2)])
    dev_ort = float(np.max(np.abs(y_can32 - y_ort)))
    DEVIATIONS[v.name] = (dev_torch, dev_ort, n_ort)
    assert dev_torch <= TOL, dev_torch
    assert dev_ort <= TOL, dev_ort


# ---- exports that must be refused ------------------------------------------------------------------


def _export_module(mod, args, path, dynamo, names=("u",)):
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(mod.eval(), args, str(path), dynamo=dynamo, input_names=list(names), output_names=["y"])
    return str(path)


def test_lstm_proj_size_dynamo_export_refused_like_onnxruntime(tmp_path):
    """The dynamo exporter writes an invalid file for nn.LSTM(proj_size=…) (initial c of the projected size)."""
    torch.manual_seed(0)
    mod = Net("lstm", 1, proj=2)
    path = _export_module(mod, (torch.zeros(1, 6, N_IN),), tmp_path / "proj.onnx", dynamo=True)
    with pytest.raises(Exception):  # noqa: B017 - onnxruntime refuses it when it runs the LSTM node
        _session(path).run(None, {"u": np.zeros((1, 6, N_IN), np.float32)})
    with pytest.raises(ModelFileError, match="initial_c") as info:
        load_model(path)
    assert "proj_size" in str(info.value)


@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
def test_python_loop_over_grucell_is_named(tmp_path, dynamo):
    class CellLoop(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.cell, self.fc = torch.nn.GRUCell(N_IN, HIDDEN), torch.nn.Linear(HIDDEN, 1)

        def forward(self, u):
            h, outs = torch.zeros(u.shape[0], HIDDEN), []
            for t in range(u.shape[1]):
                h = self.cell(u[:, t], h)
                outs.append(h)
            return self.fc(torch.stack(outs, 1))

    path = _export_module(CellLoop(), (torch.zeros(1, 4, N_IN),), tmp_path / "cell.onnx", dynamo)
    with pytest.raises(UnsupportedModelError, match="unrolled gated cell") as info:
        load_model(path)
    assert "nn.GRUCell" in str(info.value) and "export nn.GRU" in str(info.value)


def test_packed_sequences_refused_clearly(tmp_path):
    class Packed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.fc = torch.nn.GRU(N_IN, HIDDEN, batch_first=True), torch.nn.Linear(HIDDEN, 1)

        def forward(self, u, lengths):
            pk = torch.nn.utils.rnn.pack_padded_sequence(u, lengths, batch_first=True, enforce_sorted=False)
            o, _ = torch.nn.utils.rnn.pad_packed_sequence(self.rnn(pk)[0], batch_first=True, total_length=u.shape[1])
            return self.fc(o)

    path = _export_module(Packed(), (torch.zeros(2, 5, N_IN), torch.tensor([5, 3])), tmp_path / "packed.onnx",
                          dynamo=False, names=("u", "lengths"))
    with pytest.raises(UnsupportedModelError, match="pack_padded_sequence") as info:
        load_model(path)
    assert "without packing" in str(info.value)


# ---- invalid files: refused whenever onnxruntime refuses them ---------------------------------------


def _lstm_file(H=2, m=2, h_shape=None, c_shape=None, hidden_attr=None, w_cols=None, x_shape=(5, 1, 2),
               w_dtype=np.float32) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    arr = lambda n, s, dt=np.float32: numpy_helper.from_array(rng.uniform(-1, 1, s).astype(dt), n)  # noqa: E731
    inits = [arr("W", (1, 4 * H, w_cols or m), w_dtype), arr("R", (1, 4 * H, H)), arr("B", (1, 8 * H))]
    ins = ["u", "W", "R", "B", "", "h", "c"]
    inits.append(numpy_helper.from_array(np.zeros(h_shape or (1, x_shape[1], H), np.float32), "h"))
    inits.append(numpy_helper.from_array(np.zeros(c_shape or (1, x_shape[1], H), np.float32), "c"))
    node = helper.make_node("LSTM", ins, ["Y"], hidden_size=hidden_attr or H, name="lstm0")
    y_shape = [x_shape[0], 1, x_shape[1], H]
    graph = helper.make_graph([node], "l", [helper.make_tensor_value_info("u", TensorProto.FLOAT, list(x_shape))],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, y_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


MUTANTS = {
    "valid": {},
    "initial_c too wide": {"c_shape": (1, 1, 3)},
    "initial_h too wide": {"h_shape": (1, 1, 3)},
    "initial_h two directions": {"h_shape": (2, 1, 2)},
    "initial_c wrong batch": {"c_shape": (1, 2, 2)},
    "hidden_size attribute mismatch": {"hidden_attr": 3},
    "W input columns mismatch": {"w_cols": 3},
    "W of type double": {"w_dtype": np.float64},
    "W of type int": {"w_dtype": np.int64},
}


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_refused_when_onnxruntime_refuses(tmp_path, name):
    path = str(tmp_path / "m.onnx")
    onnx.save(_lstm_file(**MUTANTS[name]), path)
    try:
        _session(path).run(None, {"u": np.zeros((5, 1, 2), np.float32)})
        ort_ok = True
    except Exception:  # noqa: BLE001 - any refusal by onnxruntime
        ort_ok = False
    try:
        load_model(path)
        ours_ok = True
    except InvalidInputError:
        ours_ok = False
    if name == "valid":
        assert ort_ok and ours_ok
    else:
        assert not ort_ok, f"onnxruntime accepts the mutant {name!r}; the oracle needs another mutant"
        assert not ours_ok, f"certify accepted {name!r}, which onnxruntime refuses"


if __name__ == "__main__":  # python -m tests.test_import_exports: the deviation table of every variant
    import tempfile

    _folder, _cache = tempfile.mkdtemp(), {}

    def _get(v: Variant) -> tuple[Net, str]:
        if v.name not in _cache:
            mod = _module(v)
            _cache[v.name] = (mod, _export(v, mod, _folder))
        return _cache[v.name]

    for _v in VARIANTS:
        test_export_matches_onnxruntime_and_torch(_get, _v)
        _dt, _do, _n = DEVIATIONS[_v.name]
        print(f"{_v.name:34s} vs torch ({T} steps) {_dt:.1e}   vs onnxruntime ({_n} steps) {_do:.1e}")


def _mutate(m: onnx.ModelProto, rng: np.random.Generator) -> str:
    """One random structural mutation of a valid model (shapes, attributes, types, wiring, opset)."""
    g = m.graph
    what = str(rng.choice(["init_reshape", "attr_int", "init_dtype", "input_dim", "output_dim", "drop_input",
                           "swap_inputs", "opset", "init_trunc"]))
    pick = lambda seq: seq[int(rng.integers(len(seq)))]  # noqa: E731
    if what in ("init_reshape", "init_dtype", "init_trunc"):
        t = pick(list(g.initializer))
        a = numpy_helper.to_array(t)
        if what == "init_reshape" and a.size > 1:
            a = a.reshape([a.size] if a.ndim != 1 else [1, a.size])
        elif what == "init_dtype":
            a = a.astype(pick([np.float64, np.float16, np.int64, np.int32]))
        elif what == "init_trunc" and a.ndim and a.shape[-1] > 1:
            a = a[..., :-1]
        t.CopyFrom(numpy_helper.from_array(a, t.name))
    elif what == "attr_int":
        ints = [a for n in g.node for a in n.attribute if a.type == onnx.AttributeProto.INT and a.name != "layout"]
        if ints:
            pick(ints).i += int(pick([-1, 1, 2]))
    elif what in ("input_dim", "output_dim"):
        dims = list((g.input if what == "input_dim" else g.output)[0].type.tensor_type.shape.dim)
        if dims:
            pick(dims).dim_value = int(pick([1, 2, 3, 5]))
    elif what in ("drop_input", "swap_inputs"):
        n = pick([n for n in g.node if len(n.input) > 1])
        i, j = rng.choice(len(n.input), 2, replace=False)
        if what == "drop_input":
            # not the last input: a trailing "" is a valid omission that onnxruntime's Squeeze kernel rejects
            n.input[int(min(i, j))] = ""
        else:
            n.input[int(i)], n.input[int(j)] = n.input[int(j)], n.input[int(i)]
    else:
        m.opset_import[0].version = int(pick([7, 9, 11, 13, 14, 21]))
    return what


def _ort_accepts(path: str) -> bool:
    try:
        sess = _session(path)
        feeds = {}
        for inp in sess.get_inputs():
            shape = [d if isinstance(d, int) else 2 for d in inp.shape]
            feeds[inp.name] = np.zeros(shape, np.float32) if "float" in inp.type else np.ones(shape, np.int64)
        sess.run(None, feeds)
        return True
    except Exception:  # noqa: BLE001 - any refusal by onnxruntime
        return False


@pytest.mark.parametrize("block", range(4))
def test_mutants_refused_whenever_onnxruntime_refuses(tmp_path, block):
    """Random mutants of valid fused GRU/LSTM graphs (ONNX layout 0: onnxruntime's CPU kernels do not
    implement layout=1, which certify reads): if onnxruntime refuses one, certify refuses it too."""
    from tests._export_util import gru_lbr0_model

    refused = 0
    for k in range(block * 25, block * 25 + 25):
        rng = np.random.default_rng(k)
        m = gru_lbr0_model(rng, 2, 3, int(rng.integers(1, 3)), 1, T=6) if k % 2 else _lstm_file()
        what = _mutate(m, rng)
        path = str(tmp_path / f"mutant{k}.onnx")
        onnx.save(m, path)
        if _ort_accepts(path):
            continue
        refused += 1
        with pytest.raises(InvalidInputError):
            load_model(path)
            pytest.fail(f"mutant {k} ({what}) is refused by onnxruntime but accepted by certify")
    assert refused >= 5  # the oracle is exercised
