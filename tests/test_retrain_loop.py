"""``certify retrain --target loop``: the torch closed loop equals the checker's, term by term, and a soft
sensor whose boiler loop fails is retrained until ``certify check --plant boiler`` (not the trainer)
certifies it — or the run says it could not."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _loop_cases import RELAY_LOOP  # noqa: E402

from certify.loop.assemble import assemble, loop_wiring  # noqa: E402
from certify.loop.spec import default_loop  # noqa: E402
from certify.snof import from_network  # noqa: E402


def _modules():
    from certify.train.cells import AffineCellNet
    from certify.train.modules import SSNN, ElmanNet, LPGRNNNet
    from certify.train.students import lpgrnn_bypass_cell

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    u = rng.uniform(-1, 1, (300, 4))
    y = np.cumsum(u[:, :1], 0) * 0.01
    return {
        "elman_bypass": ElmanNet(4, 3, num_layers=2, n_out=1).add_bypass(rng.normal(size=(1, 4))),
        "elman_relu": ElmanNet(4, 3, n_out=1, nonlinearity="relu"),
        "lpgrnn": LPGRNNNet(4, 3, gate=2, num_layers=2, n_out=1),
        "ssnn": SSNN(4, 2, 1, 3, 4),
        "grssnn_sigmoid": SSNN(4, 2, 1, 3, 4, activation="sigmoid"),
        "cell": AffineCellNet(lpgrnn_bypass_cell(u, y, 3)),
    }


@pytest.mark.parametrize("name", list(_modules()))
def test_torch_snof_and_loop_equal_the_checkers(name):
    """network_snof = from_network and loop_snof = assemble(...).form, every matrix, to 1e-10 (float64)."""
    from certify.train.loop_penalty import loop_snof, network_snof
    from certify.train.modules import to_canonical

    mod = _modules()[name].double()
    net = to_canonical(mod)
    ref = from_network(net)
    got = network_snof(mod).numpy()
    for k, v in got.items():
        assert v.shape == getattr(ref, k).shape, k
        assert np.allclose(v, getattr(ref, k), rtol=0, atol=1e-10), k
    spec = default_loop("boiler")
    cl = assemble(net, spec).form
    got = loop_snof(mod, loop_wiring(net, spec)).numpy()
    for k, v in got.items():
        assert np.allclose(v, getattr(cl, k), rtol=0, atol=1e-10), k
    assert tuple(c.kind for c in cl.channels) == loop_snof(mod, loop_wiring(net, spec)).kinds


def test_loop_residual_gradient_matches_finite_differences():
    """The anchored loop residual is differentiable in the weights (central differences, float64)."""
    from certify.train.loop_penalty import LoopTarget
    from certify.train.modules import ElmanNet, to_canonical

    torch.manual_seed(1)
    mod = ElmanNet(4, 2, n_out=1).add_bypass(np.array([[1.2, 0, 0, 0]])).double()
    with torch.no_grad():
        mod.rnn.weight_hh_l0.mul_(0.3)
        mod.rnn.weight_ih_l0.mul_(0.01)
    tgt = LoopTarget(to_canonical(mod), default_loop("boiler"))
    assert tgt.select(mod) < 0 and tgt.validated  # a contracting network with the boiler's bypass certifies
    p = mod.rnn.weight_hh_l0
    nu = tgt.residuals(mod)[0]
    assert float(nu.detach()) == pytest.approx(-1.0, abs=1e-6)  # the anchor's weights: −1 in the anchor's units
    (g,) = torch.autograd.grad(nu, p)
    h = 1e-6
    with torch.no_grad():
        p[0, 1] += h
        up = float(tgt.residuals(mod)[0])
        p[0, 1] -= 2 * h
        dn = float(tgt.residuals(mod)[0])
        p[0, 1] += h
    assert float(g[0, 1]) == pytest.approx((up - dn) / (2 * h), rel=1e-3, abs=1e-6)


def _boiler_case(tmp_path, rho: float):
    """An Elman soft sensor (3 tanh units, a linear bypass from E) whose recurrent matrix has spectral radius
    about ``rho``; data from the same architecture with ``rho = 0.4``."""
    from certify.train.modules import ElmanNet, export_onnx
    from certify.train.trainer import simulate

    def make(r):
        torch.manual_seed(0)
        m = ElmanNet(4, 3, n_out=1).add_bypass(np.array([[1.2, 0, 0, 0]]))
        with torch.no_grad():
            m.rnn.weight_ih_l0.mul_(0.02)
            m.rnn.weight_hh_l0.copy_(torch.eye(3) * r + 0.1 * torch.randn(3, 3))
            m.head.weight.mul_(3.0)
            m.head.bias.fill_(-30.0)
        return m

    rng = np.random.default_rng(0)
    T = 1200
    u = np.column_stack([66.65 + np.cumsum(rng.normal(0, 0.3, T)).clip(-10, 10), rng.uniform(0, 1, (T, 3))])
    np.savez(tmp_path / "data.npz", u=u, y=simulate(make(0.4), u))
    export_onnx(make(rho), str(tmp_path / "bad.onnx"), seq_len=10)
    return tmp_path / "bad.onnx", tmp_path / "data.npz"


def _retrain(*argv: str) -> int:
    from certify.train.retrain import add_arguments, run

    return run(add_arguments(argparse.ArgumentParser()).parse_args(list(argv)))


def test_retrain_target_loop_certifies_with_the_checker(tmp_path, capsys):
    """Deterministic (seeded, CPU): the loop fails before; the written model certifies with certify.check on the
    boiler loop (the checker, not the trainer), and keeps the fit on held-out data."""
    from certify.api import check

    model, data = _boiler_case(tmp_path, 1.2)
    before = check(str(model), plant="boiler", search=False)
    assert before.verdict.value != "certified"
    out = tmp_path / "out"
    rc = _retrain(str(model), "--data", str(data), "-o", str(out), "--plant", "boiler", "--epochs", "8",
                  "--rounds", "2", "--penalty-weight", "1", "--lr", "0.02", "--seq-len", "40", "--batch-size", "8",
                  "--device", "cpu", "--log-every", "0")
    summary = json.loads((out / "retrain.json").read_text())
    assert summary["target"] == "loop" and summary["plant"] == "boiler" and summary["method"] == "lmi"
    after = check(str(out / "model.onnx"), plant="boiler", search=False)
    assert rc == 0, capsys.readouterr().err
    assert after.verdict.value == "certified" and summary["verdict"] == "certified"
    assert json.loads((out / "report.json").read_text())["verdict"] == "certified"
    assert min(summary["test_after"]["fit"]) > 80.0 > max(summary["test_before"]["fit"])


def test_retrain_loop_without_a_linear_path_says_it_could_not(tmp_path, capsys):
    """An LP-GRNN without a bypass cannot close a certifiable loop (no linear path to the estimate): the run
    ends with exit 1, the checker's reason and the next step, and the written model is not certified."""
    from certify.train.modules import LPGRNNNet, save_state_dict

    torch.manual_seed(0)
    pt, _ = save_state_dict(LPGRNNNet(4, 2, gate=2, n_out=1), str(tmp_path / "m.pt"))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", u=rng.uniform(0, 1, (200, 4)), y=rng.uniform(0, 1, (200, 1)))
    out = tmp_path / "out"
    rc = _retrain(pt, "--data", str(tmp_path / "d.npz"), "-o", str(out), "--plant", "boiler", "--epochs", "1",
                  "--rounds", "1", "--seq-len", "20", "--device", "cpu", "--log-every", "0")
    err = capsys.readouterr().err
    assert rc == 1
    assert "does not certify" in err and "linear" in err and "--into" in err
    report = json.loads((out / "report.json").read_text())  # written by certify.api.check on model.onnx
    assert report["verdict"] == "not_certified" and json.loads((out / "retrain.json").read_text())["verdict"] \
        == "not_certified"


def test_retrain_loop_refuses_gated_models_pointing_to_into(tmp_path, capsys):
    from certify.train.modules import GRUNet, save_state_dict

    pt, _ = save_state_dict(GRUNet(4, 2, n_out=1), str(tmp_path / "g.pt"))
    np.savez(tmp_path / "d.npz", u=np.zeros((100, 4)), y=np.zeros((100, 1)))
    rc = _retrain(pt, "--data", str(tmp_path / "d.npz"), "-o", str(tmp_path / "o"), "--plant", "boiler")
    err = capsys.readouterr().err
    assert rc == 3 and "no exact SNOF" in err and "--into lpgrnn" in err and "--plant boiler" in err


def test_retrain_loop_refuses_an_obstruction_no_network_removes(tmp_path, capsys):
    """A positional PI winds up while the actuator saturates, whatever the network: refused before training."""
    from certify.train.modules import ElmanNet, export_onnx

    loop = tmp_path / "loop.toml"
    loop.write_text(RELAY_LOOP.format(kp=0.5, ki=0.1).replace("kp = 0.5", 'form = "positional"\nkp = 0.5'))
    torch.manual_seed(0)
    export_onnx(ElmanNet(1, 2, n_out=1).add_bypass(np.ones((1, 1))), str(tmp_path / "m.onnx"), seq_len=4)
    np.savez(tmp_path / "d.npz", u=np.zeros((100, 1)), y=np.zeros((100, 1)))
    rc = _retrain(str(tmp_path / "m.onnx"), "--data", str(tmp_path / "d.npz"), "-o", str(tmp_path / "o"),
                  "--loop", str(loop))
    err = capsys.readouterr().err
    assert rc == 3 and "no weights of the network" in err and "positional" in err


@pytest.mark.parametrize("argv, target, error", [
    ([], "diss", None),
    (["--plant", "boiler"], "loop", None),
    (["--loop", "x.toml"], "loop", None),
    (["--target", "loop"], None, "needs the loop"),
    (["--target", "diss", "--plant", "boiler"], None, "go with --target loop"),
    (["--target", "loop", "--plant", "boiler", "--resume"], None, "--resume"),
    (["--plant", "boiler", "--into", "lpgrnn"], "loop", None),  # distil, then the loop: one run
    (["--plant", "boiler", "--into", "lpgrnn", "--strategy", "penalty"], None, "--into"),
])
def test_default_target_and_refusals(tmp_path, argv, target, error):
    from certify.errors import InvalidInputError
    from certify.train.retrain import add_arguments, check_arguments

    ns = add_arguments(argparse.ArgumentParser()).parse_args(["m.onnx", "--data", "d.npz", "-o",
                                                              str(tmp_path / "o"), *argv])
    if error is None:
        check_arguments(ns)
        assert ns.target == target
    else:
        with pytest.raises(InvalidInputError, match=error.replace("-", r"\-")):
            check_arguments(ns)
