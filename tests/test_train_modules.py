"""certify.train.modules: torch modules mirror the canonical networks exactly, both ways."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from certify.errors import UnsupportedModelError, WeightError
from certify.importers import load_model
from certify.networks import GRULayer, LPGRNNLayer, Network
from tests._export_util import randomize, seeded, torch_forward

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from certify.train.modules import (  # noqa: E402
    SSNN,
    ElmanNet,
    GRUNet,
    LPGRNNNet,
    LSTMNet,
    export_onnx,
    from_canonical,
    save_state_dict,
    to_canonical,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _builders():
    return {
        "gru_pt": lambda: GRUNet(2, 4, 2, 1),
        "gru_cho": lambda: GRUNet(2, 4, 2, 1, reset_after=False),
        "gru_nobias": lambda: GRUNet(3, 3, 1, None, bias=False),
        "lstm": lambda: LSTMNet(2, 3, 3, 2),
        "rnn_tanh": lambda: ElmanNet(2, 5, 2, 1),
        "rnn_relu": lambda: ElmanNet(2, 4, 1, 1, nonlinearity="relu"),
        "lpgrnn": lambda: LPGRNNNet(2, 4, 3, 2, 1),
        "ssnn": lambda: SSNN(2, 3, 2, 5, 4),
        "ssnn_plain": lambda: SSNN(2, 3, 1, 4, 4, linear=False, activation="sigmoid"),
    }


@pytest.mark.parametrize("name", list(_builders()))
def test_module_equals_canonical_and_roundtrips(name, tmp_path):
    rng = seeded(1)
    mod = _builders()[name]()
    randomize(mod, rng)
    net = to_canonical(mod)
    u = rng.uniform(-1.5, 1.5, (3, 60, mod.n_in))
    y_t = torch_forward(mod, u)
    y_c = np.stack([net.simulate(u[b]).y for b in range(3)])
    assert np.max(np.abs(y_t - y_c)) <= 1e-10  # both float64: identical up to roundoff
    back = from_canonical(net)
    assert np.max(np.abs(torch_forward(back, u) - y_t)) <= 1e-6  # float32 parameters
    pt, side = save_state_dict(back, tmp_path / "m.pt", input_range={"low": [-1.0] * mod.n_in, "high": [1.0] * mod.n_in})
    loaded = load_model(pt)
    assert json.load(open(side))["format"] == "certify.sidecar"
    assert loaded.info.input_range is not None
    assert np.max(np.abs(np.stack([loaded.simulate(u[b]).y for b in range(3)]) - y_t)) <= 1e-6


def test_gru_conventions_differ_and_are_marked():
    rng = seeded(0)
    a = GRUNet(2, 3, 1, 1)
    randomize(a, rng)
    b = GRUNet(2, 3, 1, 1, reset_after=False)
    b.load_state_dict(a.state_dict())
    na, nb = to_canonical(a), to_canonical(b)
    assert na.layers[0].reset_after and not nb.layers[0].reset_after
    assert np.array_equal(na.layers[0].b_hn, nb.layers[0].b_hn)
    u = rng.uniform(-1, 1, (1, 20, 2))
    assert np.max(np.abs(torch_forward(a, u) - torch_forward(b, u))) > 1e-4
    assert np.max(np.abs(torch_forward(b, u)[0] - nb.simulate(u[0]).y)) <= 1e-10


def test_gate_order_hand_derived():
    """A PyTorch GRU whose only non-zero weight is the r-block of weight_ih maps to W_r (and nowhere else)."""
    m = GRUNet(1, 1, 1, None, bias=False)
    with torch.no_grad():
        m.rnn.weight_ih_l0.zero_()
        m.rnn.weight_hh_l0.zero_()
        m.rnn.weight_ih_l0[0, 0] = 2.0  # PyTorch order [r|z|n]
        m.rnn.weight_ih_l0[1, 0] = 3.0
    layer: GRULayer = to_canonical(m).layers[0]
    assert layer.W_r[0, 0] == 2.0 and layer.W_z[0, 0] == 3.0 and layer.W_n[0, 0] == 0.0


def test_lpgrnn_z_is_sigmoid_theta():
    m = LPGRNNNet(1, 2, 1)
    with torch.no_grad():
        m.layers[0].theta_z.copy_(torch.tensor([0.0, 2.0]))
    layer: LPGRNNLayer = to_canonical(m).layers[0]
    assert np.allclose(layer.z, [0.5, 1 / (1 + np.exp(-2.0))])
    bad = Network(layers=(LPGRNNLayer(W_r=[[0.0]], U_r=[[0.0, 0.0]], b_r=[0.0], W_h=[[1.0], [1.0]], U_h=np.eye(2),
                                      V_h=[[0.0], [0.0]], b_h=[0.0, 0.0], z=[1.0, 0.5]),))
    with pytest.raises(WeightError, match="z must lie"):
        from_canonical(bad)


def test_export_onnx_refuses_cho_gru_with_the_dynamo_exporter(tmp_path):
    # the dynamo exporter unrolls the recurrence (no GRU node to mark linear_before_reset=0): refused clearly
    with pytest.raises(UnsupportedModelError, match="reset_after=False"):
        export_onnx(GRUNet(2, 3, reset_after=False), tmp_path / "x.onnx", seq_len=5, dynamo=True)


def test_from_canonical_direct_term_stacks_only():
    from certify.networks import ElmanLayer, LinearHead

    net = Network(layers=(ElmanLayer(W=[[1.0]], U=[[0.5]], b=[0.0]),), head=LinearHead(W=[[1.0]], b=[0.0], D=[[1.0]]))
    mod = from_canonical(net)  # an Elman (GRU, LSTM) stack keeps the bypass D u
    assert to_canonical(mod).head.D.tolist() == [[1.0]]
    lp = to_canonical(LPGRNNNet(1, 2, 2, n_out=1))
    lp = Network(layers=lp.layers, head=LinearHead(W=lp.head.W, b=lp.head.b, D=[[1.0]]))
    with pytest.raises(UnsupportedModelError, match="direct"):
        from_canonical(lp)


def test_import_certify_train_does_not_import_torch():
    code = "import sys, certify.train; assert 'torch' not in sys.modules; print('ok')"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


@pytest.mark.parametrize("layers", [1, 2])
def test_cho_convention_gru_exports_to_onnx_equal_to_torch_and_onnxruntime(layers, tmp_path):
    """reset_after=False (ONNX linear_before_reset=0): onnxruntime, torch and certify's import agree."""
    ort = pytest.importorskip("onnxruntime")
    from certify.importers import load_model
    from certify.train.modules import GRUNet, export_onnx

    torch.manual_seed(layers)
    m = GRUNet(2, 4, num_layers=layers, n_out=2, reset_after=False).eval()
    p = export_onnx(m, str(tmp_path / "cho.onnx"), seq_len=7)
    u = np.random.default_rng(layers).uniform(-1, 1, (1, 7, 2)).astype(np.float32)
    ref = m(torch.as_tensor(u)).detach().numpy()[0]
    sess = ort.InferenceSession(p)
    got = sess.run(None, {sess.get_inputs()[0].name: u})[0].reshape(ref.shape)
    assert np.allclose(got, ref, rtol=0, atol=1e-5)
    net = load_model(p)
    assert all(not layer.reset_after for layer in net.layers)
    sim = np.asarray(net.simulate(u[0].astype(np.float64)).y).reshape(ref.shape)
    assert np.allclose(sim, ref, rtol=0, atol=1e-5)
    # the standard convention on the same weights gives different outputs: the test can tell them apart
    std = GRUNet(2, 4, num_layers=layers, n_out=2).eval()
    std.load_state_dict(m.state_dict())
    assert not np.allclose(std(torch.as_tensor(u)).detach().numpy()[0], ref, atol=1e-4)
