"""``certify retrain`` end to end on simulated quadruple-tank data (CPU, seconds), and its input errors."""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import pytest
import torch

from certify.api import check
from certify.datasets import quadruple_tank_dataset
from certify.results import Verdict
from certify.train.metrics import fit
from certify.train.modules import GRUNet, export_onnx
from certify.train.retrain import add_arguments, run
from certify.train.trainer import TrainConfig, simulate, train

META = {"certify.input_range": json.dumps({"low": [-1, -1], "high": [1, 1]})}
EPOCHS = 60


def _args(*argv: str) -> argparse.Namespace:
    return add_arguments(argparse.ArgumentParser()).parse_args(list(argv))


@pytest.fixture(scope="module")
def quadtank(tmp_path_factory):
    d = quadruple_tank_dataset(800, seed=0)
    sc = lambda a: 2 * (a - a.min(0)) / (a.max(0) - a.min(0)) - 1  # noqa: E731  min-max to [-1, 1]
    u, y = sc(d.u), sc(d.y)
    root = tmp_path_factory.mktemp("rt")
    np.savez(root / "d.npz", u=u, y=y)
    # an unconstrained GRU (hidden 4) trained the way retrain trains: the starting model and the reference
    torch.manual_seed(0)
    m = GRUNet(2, 4, n_out=2)
    cfg = TrainConfig(epochs=EPOCHS, seq_len=60, washout=10, lr=2e-2, device="cpu", require_certified=False,
                      progress=False)
    train(m, u[:480], y[:480], u[480:600], y[480:600], cfg)
    plain_fit = float(np.mean(fit(y[610:], simulate(m, u[600:])[10:])))
    export_onnx(m, str(root / "plain.onnx"), seq_len=10, metadata=META)
    return root, plain_fit


def test_retrain_certifies_uncertified_gru(quadtank, capsys):
    root, plain_fit = quadtank
    assert check(str(root / "plain.onnx"), method="diss", falsify_budget=0).verdict is not Verdict.CERTIFIED
    out = root / "out"
    rc = run(_args(str(root / "plain.onnx"), "--data", str(root / "d.npz"), "-o", str(out), "--epochs", str(EPOCHS),
                   "--device", "cpu", "--seq-len", "60", "--lr", "2e-2", "--penalty-weight", "0.02"))
    assert rc == 0
    assert {"model.onnx", "model.pt", "model.pt.certify.json", "report.json", "retrain.json"} <= set(os.listdir(out))
    # the independent checker, on the written file
    assert check(str(out / "model.onnx"), method="diss").verdict is Verdict.CERTIFIED
    assert check(str(out / "model.pt"), method="diss").verdict is Verdict.CERTIFIED
    assert json.loads((out / "report.json").read_text())["verdict"] == "certified"
    summary = json.loads((out / "retrain.json").read_text())
    after = float(np.mean(summary["test_after"]["fit"]))
    # stated tolerance: on this tiny budget the certified model loses at most 30 FIT points (mean over h1, h2)
    assert after > plain_fit - 30.0, (after, plain_fit)
    assert summary["worst_residual"] < 0
    assert "test after" in capsys.readouterr().out


@pytest.mark.parametrize("make, msg", [
    (lambda p: np.savez(p, u=np.zeros((100, 3)), y=np.zeros((100, 2))), "columns"),
    (lambda p: np.savez(p, x=np.zeros(3)), "needs arrays"),
    (lambda p: np.savez(p, u=np.full((100, 2), np.nan), y=np.zeros((100, 2))), "finite"),
    (lambda p: open(p, "w").write("not an npz"), "cannot read"),
])
def test_bad_data_exit_3(quadtank, tmp_path, capsys, make, msg):
    root, _ = quadtank
    make(str(tmp_path / "bad.npz"))
    rc = run(_args(str(root / "plain.onnx"), "--data", str(tmp_path / "bad.npz"), "-o", str(tmp_path / "o"),
                   "--device", "cpu"))
    assert rc == 3
    assert msg in capsys.readouterr().err


def test_bad_model_and_target_exit_3(quadtank, tmp_path, capsys):
    root, _ = quadtank
    assert run(_args(str(tmp_path / "missing.onnx"), "--data", str(root / "d.npz"), "-o", str(tmp_path))) == 3
    assert run(_args(str(root / "plain.onnx"), "--data", str(root / "d.npz"), "-o", str(tmp_path),
                     "--target", "lmi")) == 3
    assert "lmi" in capsys.readouterr().err
