"""PyTorch state-dict importer: key-name inference, prefixes, sidecar, gate orders."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from certify.errors import UnsupportedModelError
from certify.importers import load_model

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from certify.train.modules import ElmanNet, GRUNet, LSTMNet, save_state_dict, to_canonical  # noqa: E402


@given(hidden=st.integers(1, 5), layers=st.integers(1, 3), seed=st.integers(0, 1000),
       kind=st.sampled_from(["gru", "lstm", "rnn"]))
def test_property_state_dict_roundtrip(tmp_path_factory, hidden, layers, seed, kind):
    cls = {"gru": GRUNet, "lstm": LSTMNet, "rnn": ElmanNet}[kind]
    torch.manual_seed(seed)
    mod = cls(2, hidden, layers, 1)
    pt, _ = save_state_dict(mod, tmp_path_factory.mktemp("sd") / "m.pt")
    net, ref = load_model(pt), to_canonical(mod)
    for la, lb in zip(net.layers, ref.layers):
        for f in la.__dataclass_fields__:
            va, vb = getattr(la, f), getattr(lb, f)
            assert np.array_equal(va, vb) if isinstance(va, np.ndarray) else va == vb


def test_plain_nn_modules_with_common_prefixes(tmp_path):
    """State dicts of user models (gru./fc. prefixes, nn.RNN relu via sidecar) import correctly."""

    class User(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = torch.nn.GRU(2, 3, batch_first=True)
            self.fc = torch.nn.Linear(3, 1)

        def forward(self, u):
            return self.fc(self.gru(u)[0])

    m = User()
    p = tmp_path / "user.pt"
    torch.save(m.state_dict(), p)
    net = load_model(p)
    u = np.random.default_rng(0).uniform(-1, 1, (1, 30, 2))
    with torch.no_grad():
        y = m.double()(torch.as_tensor(u)).numpy()[0]
    assert np.max(np.abs(net.simulate(u[0]).y - y)) <= 1e-10
    r = torch.nn.RNN(2, 3, nonlinearity="relu")
    torch.save({"epoch": 3, "state_dict": r.state_dict()}, p)  # a checkpoint dict is accepted too
    with pytest.raises(UnsupportedModelError, match="tanh or relu") as info:  # cannot be inferred: required
        load_model(p)
    assert '"nonlinearity": "tanh"' in str(info.value) and "user.pt.certify.json" in str(info.value)
    (tmp_path / "user.pt.certify.json").write_text(json.dumps({"nonlinearity": "relu"}))
    assert load_model(p).layers[0].activation == "relu"


@pytest.mark.parametrize(("rnn_prefix", "head_prefix"), [("lstm.", "head."), ("encoder.rnn.", "linear."), ("", "out.")])
def test_lstm_prefixes_and_sidecar_fields(tmp_path, rnn_prefix, head_prefix):
    lstm, lin = torch.nn.LSTM(3, 4, num_layers=2), torch.nn.Linear(4, 2)
    sd = {rnn_prefix + k: v for k, v in lstm.state_dict().items()}
    sd.update({head_prefix + k: v for k, v in lin.state_dict().items()})
    p = tmp_path / "m.pt"
    torch.save(sd, p)
    (tmp_path / "m.pt.certify.json").write_text(json.dumps({
        "input_names": ["a", "b", "c"], "output_names": ["y1", "y2"],
        "input_range": {"low": [0, 0, 0], "high": [1, 2, 3]},
        "output_scaling": {"raw_low": [0, 0], "raw_high": [5, 5]}}))
    net = load_model(p)
    assert net.architecture == "lstm" and len(net.layers) == 2 and net.n_outputs == 2
    assert net.info.input_names == ("a", "b", "c") and net.info.input_range.high.tolist() == [1, 2, 3]
    assert net.info.output_scaling is not None and net.info.source_format == "torch_state_dict"
    u = np.random.default_rng(0).uniform(-1, 1, (25, 3))
    with torch.no_grad():
        h = lstm.double()(torch.as_tensor(u))[0]
        y = lin.double()(h).numpy()
    assert np.max(np.abs(net.simulate(u).y - y)) <= 1e-10


def test_no_head_and_no_bias(tmp_path):
    r = torch.nn.GRU(2, 3, num_layers=3, bias=False)
    p = tmp_path / "g.pt"
    torch.save(r.state_dict(), p)
    net = load_model(p)
    assert net.head is None and len(net.layers) == 3
    u = np.random.default_rng(1).uniform(-1, 1, (30, 2))
    with torch.no_grad():
        y = r.double()(torch.as_tensor(u))[0].numpy()
    assert np.max(np.abs(net.simulate(u).y - y)) <= 1e-10


def test_legacy_non_zip_serialization_and_extension_ignored(tmp_path):
    """Content decides the format: an old-style (non-zip) torch file named .onnx still loads as a state dict."""
    r = torch.nn.RNN(2, 3)
    p = tmp_path / "weights.onnx"
    torch.save(r.state_dict(), p, _use_new_zipfile_serialization=False)
    (tmp_path / "weights.onnx.certify.json").write_text('{"nonlinearity": "tanh"}')
    assert p.read_bytes()[:1] == b"\x80"
    net = load_model(p)
    assert net.info.source_format == "torch_state_dict" and net.architecture == "elman"


@pytest.mark.parametrize("cls", [ElmanNet, GRUNet, LSTMNet])
def test_bypass_state_dicts_import_and_match_torch(tmp_path, cls):
    """A head with a direct input term (``add_bypass``) is read into ``LinearHead.D``; the imported network's
    outputs equal torch's forward pass on the same inputs (float32 weights, float64 evaluation)."""
    torch.manual_seed(1)
    mod = cls(2, 3, 1, 1).add_bypass(np.array([[0.7, -0.2]]))
    pt, _ = save_state_dict(mod, tmp_path / "m.pt")
    net = load_model(pt)
    np.testing.assert_array_equal(net.head.D, to_canonical(mod).head.D)
    u = np.random.default_rng(0).normal(size=(25, 2))
    with torch.no_grad():
        y_torch = mod(torch.tensor(u[None], dtype=torch.float32)).numpy()[0]
    np.testing.assert_allclose(net.simulate(u).y, y_torch, atol=1e-5)


def test_bypass_with_the_wrong_shape_or_without_a_head_is_refused(tmp_path):
    from certify.errors import WeightError

    mod = ElmanNet(2, 3, 1, 1).add_bypass(np.ones((1, 2)))
    sd = mod.state_dict()
    sd["bypass.weight"] = torch.ones(1, 3)
    pt, _ = save_state_dict(mod, tmp_path / "m.pt")
    torch.save(sd, pt)
    with pytest.raises(WeightError, match="bypass.weight has shape"):
        load_model(pt)
    headless = {k: v for k, v in mod.state_dict().items() if not k.startswith("head.")}
    torch.save(headless, pt)
    with pytest.raises(WeightError, match="needs a linear head"):
        load_model(pt)
