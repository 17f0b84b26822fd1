"""``certify retrain --strategy preserve``: certified by the checker, FIT kept, refusal, Ctrl-C and --resume.

Tiny models and few epochs (CPU seconds); every assertion is a property (the checker's verdict, a stated FIT
tolerance on held-out data, files present and consistent), never a figure of one seed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from certify.api import check
from certify.datasets import quadruple_tank_dataset
from certify.importers import load_model
from certify.results import Verdict
from certify.train.modules import GRUNet, LSTMNet, export_onnx
from certify.train.retrain import add_arguments, run
from certify.train.trainer import TrainConfig, train

META = {"certify.input_range": json.dumps({"low": [-1, -1], "high": [1, 1]})}


def _args(*argv: str) -> argparse.Namespace:
    return add_arguments(argparse.ArgumentParser()).parse_args(list(argv))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Unconstrained GRU (hidden 4) and LSTM (hidden 3) on the simulated four-tank: both fail the δISS test."""
    d = quadruple_tank_dataset(700, seed=2)
    sc = lambda a: 2 * (a - a.min(0)) / (a.max(0) - a.min(0)) - 1  # noqa: E731  min-max to [-1, 1]
    u, y = sc(d.u), sc(d.y)
    root = tmp_path_factory.mktemp("pres")
    np.savez(root / "d.npz", u=u, y=y)
    cfg = TrainConfig(epochs=25, seq_len=50, washout=10, lr=2e-2, device="cpu", require_certified=False,
                      progress=False)
    for name, make in (("gru", lambda: GRUNet(2, 4, n_out=2)), ("lstm", lambda: LSTMNet(2, 3, n_out=2))):
        torch.manual_seed(0)
        net = make()
        with torch.no_grad():
            net.rnn.weight_hh_l0.mul_(3.0)  # far outside the certified set
        train(net, u[:420], y[:420], u[420:525], y[420:525], cfg)
        export_onnx(net, str(root / f"{name}.onnx"), seq_len=10, metadata=META)
        assert check(str(root / f"{name}.onnx"), method="diss", falsify_budget=0).verdict is not Verdict.CERTIFIED
    return root


COMMON = ("--device", "cpu", "--seq-len", "50", "--lr", "2e-2", "--project-steps", "200", "--log-every", "5")


@pytest.mark.parametrize("arch", ["gru", "lstm"])
def test_preserve_certifies_and_keeps_fit(trained, arch, capsys):
    root = trained
    out = root / f"out_{arch}"
    rc = run(_args(str(root / f"{arch}.onnx"), "--data", str(root / "d.npz"), "-o", str(out), "--epochs", "40",
                   "--max-fit-drop", "1000", *COMMON))
    err = capsys.readouterr().err
    assert rc == 0, err
    # the judge is the checker, on the written files
    assert check(str(out / "model.onnx"), method="diss").verdict is Verdict.CERTIFIED
    assert check(str(out / "model.pt"), method="diss").verdict is Verdict.CERTIFIED
    s = json.loads((out / "retrain.json").read_text())
    assert s["strategy"] == "preserve" and s["status"] == "certified" and s["interrupted"] is False
    assert s["worst_residual"] < -0.05
    hist = s["history"]
    assert hist[0]["phase"] == "projection"
    tune = [h for h in hist if h["phase"] == "fine-tune"]
    assert [h["epoch"] for h in tune] == list(range(40))
    assert all({"loss", "val_fit", "residual", "feasible", "checker", "lr"} <= set(h) for h in tune)
    assert all(h["feasible"] for h in tune)  # fine-tuning never leaves the certified set
    assert s["kept"]["val_fit"] == max(h["val_fit"] for h in hist if h["checker"] == "certified")
    # stated tolerance: the certified model loses at most 25 test-FIT points (mean over h1, h2) on held-out data
    before, after = (float(np.mean(s[k]["fit"])) for k in ("test_before", "test_after"))
    assert after > before - 25.0, (before, after)
    assert len(s["distance_to_original"]["rmse"]) == 2
    assert "certified (diss)" in err and "fine-tune epoch 10/40" in err


def test_fit_drop_refused_not_written_as_result(trained, capsys):
    root = trained
    out = root / "out_refuse"
    rc = run(_args(str(root / "gru.onnx"), "--data", str(root / "d.npz"), "-o", str(out), "--epochs", "1",
                   "--max-fit-drop", "0", *COMMON))
    s = json.loads((out / "retrain.json").read_text())
    err = capsys.readouterr().err
    if rc == 0:  # fine-tuning already matched the original: accepted only then
        assert s["val_fit_after"] >= s["val_fit_before"]
        return
    assert rc == 1 and s["status"] in ("fit_loss_too_large", "not_certified")
    assert not (out / "model.onnx").exists() and not (out / "report.json").exists()
    assert "advice" in s and "Next:" in err
    if s["status"] == "fit_loss_too_large":
        assert "NOT the result" in err
        assert check(str(out / "rejected" / "model.onnx"), method="diss").verdict is Verdict.CERTIFIED


def test_sigint_keeps_best_and_resume_continues(trained, tmp_path):
    root = trained
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "certify.train.retrain", str(root / "gru.onnx"), "--data", str(root / "d.npz"),
           "-o", str(out), "--epochs", "400", "--max-fit-drop", "1000", *COMMON]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (out / "report.json").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (out / "report.json").exists(), proc.communicate(timeout=5) if proc.poll() is not None else "slow"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "--resume" in err
    s = json.loads((out / "retrain.json").read_text())
    assert s["interrupted"] is True and s["status"] == "certified"
    assert check(str(out / "model.onnx"), method="diss").verdict is Verdict.CERTIFIED
    u = np.random.default_rng(0).uniform(-1, 1, (30, 2))
    np.testing.assert_allclose(load_model(str(out / "model.pt")).simulate(u).y,
                               load_model(str(out / "model.onnx")).simulate(u).y, atol=1e-6)
    done = [h["epoch"] for h in s["history"] if h["phase"] == "fine-tune"]
    assert (out / "checkpoint.pt").exists() and len(done) < 400
    # resume: the history continues where it stopped
    rc = run(_args(str(root / "gru.onnx"), "--data", str(root / "d.npz"), "-o", str(out), "--resume",
                   "--epochs", str(len(done) + 3), "--max-fit-drop", "1000", *COMMON))
    assert rc == 0
    s2 = json.loads((out / "retrain.json").read_text())
    epochs = [h["epoch"] for h in s2["history"] if h["phase"] == "fine-tune"]
    assert epochs == list(range(len(done) + 3))
    assert s2["history"][:len(s["history"])] == s["history"]
    assert s2["kept"]["val_fit"] >= s["kept"]["val_fit"]
    assert check(str(out / "model.onnx"), method="diss").verdict is Verdict.CERTIFIED


def test_resume_needs_checkpoint(trained, tmp_path, capsys):
    rc = run(_args(str(trained / "gru.onnx"), "--data", str(trained / "d.npz"), "-o", str(tmp_path), "--resume"))
    assert rc == 3 and "checkpoint.pt" in capsys.readouterr().err


@pytest.mark.parametrize("into", ["lpgrnn", "grssnn"])
def test_into_distils_gru_into_certified_student(trained, into, capsys):
    root = trained
    out = root / f"out_into_{into}"
    rc = run(_args(str(root / "gru.onnx"), "--data", str(root / "d.npz"), "-o", str(out), "--epochs", "10",
                   "--into", into, "--hidden", "3", "--max-fit-drop", "1000", *COMMON))
    assert rc == 0, capsys.readouterr().err
    assert check(str(out / "model.onnx"), method="diss").verdict is Verdict.CERTIFIED
    net = load_model(str(out / "model.onnx"))
    assert net.architecture == "affine_cell" and net.n_inputs == 2 and net.n_outputs == 2
    s = json.loads((out / "retrain.json").read_text())
    assert s["into"] == into and s["architecture"] == f"gru->{into}"
    # stated tolerance: the student keeps the teacher's test FIT within 25 points (mean over outputs)
    before, after = (float(np.mean(s[k]["fit"])) for k in ("test_before", "test_after"))
    assert after > before - 25.0, (before, after)
    if into == "lpgrnn":  # the bypass model is an affine cell: the LMI (loop-ready criterion) applies too
        assert check(str(out / "model.onnx"), method="lmi").verdict is Verdict.CERTIFIED


def test_into_refuses_penalty_strategy(trained, tmp_path, capsys):
    rc = run(_args(str(trained / "gru.onnx"), "--data", str(trained / "d.npz"), "-o", str(tmp_path),
                   "--into", "lpgrnn", "--strategy", "penalty"))
    assert rc == 3 and "--into" in capsys.readouterr().err


def test_elman_with_bypass_is_retrained(trained, capsys):
    """An Elman RNN whose head has a direct input term (a linear bypass, LinearHead.D) keeps it."""
    from certify.train.modules import ElmanNet

    root = trained
    d = np.load(root / "d.npz")
    u, y = d["u"], d["y"]
    torch.manual_seed(1)
    m = ElmanNet(2, 4, n_out=2).add_bypass(np.full((2, 2), 0.1))
    with torch.no_grad():
        m.rnn.weight_hh_l0.mul_(4.0)
    train(m, u[:420], y[:420], u[420:525], y[420:525], TrainConfig(epochs=10, seq_len=50, washout=10, lr=2e-2,
                                                                 device="cpu", require_certified=False,
                                                                 progress=False))
    export_onnx(m, str(root / "elman_bypass.onnx"), seq_len=10, metadata=META)
    assert load_model(str(root / "elman_bypass.onnx")).head.D is not None
    assert check(str(root / "elman_bypass.onnx"), method="diss", falsify_budget=0).verdict is not Verdict.CERTIFIED
    out = root / "out_elman_bypass"
    rc = run(_args(str(root / "elman_bypass.onnx"), "--data", str(root / "d.npz"), "-o", str(out), "--epochs", "10",
                   "--max-fit-drop", "1000", *COMMON))
    assert rc == 0, capsys.readouterr().err
    assert check(str(out / "model.onnx"), method="diss").verdict is Verdict.CERTIFIED
    assert load_model(str(out / "model.onnx")).head.D is not None
    assert not (out / "model.pt").exists()  # a state dict cannot carry the head's D: ONNX only
    s = json.loads((out / "retrain.json").read_text())
    before, after = (float(np.mean(s[k]["fit"])) for k in ("test_before", "test_after"))
    assert after > before - 25.0, (before, after)  # stated tolerance, as above


def test_two_tracks_restart_from_projected_weights_and_resume_across_the_switch():
    """With a barrier the fine-tuning runs an interior track, then a boundary track from the projected weights
    again; a run stopped before the switch and resumed from its optimiser state (as ``--resume`` does through
    checkpoint.pt) repeats the uninterrupted run exactly, and every epoch stays in the certified set."""
    import copy
    import io

    from certify.train.contraction import affine_residuals
    from certify.train.modules import ElmanNet
    from certify.train.preserve import PreserveConfig, finetune, scale_into

    rng0 = np.random.default_rng(0)
    u = rng0.uniform(-1, 1, (150, 2))
    y = np.tanh(np.cumsum(u, 0) * 0.1)[:, :1]
    res = lambda m: affine_residuals(m).diss  # noqa: E731
    torch.manual_seed(0)
    start = ElmanNet(2, 4, n_out=1)
    with torch.no_grad():
        start.rnn.weight_hh_l0.mul_(4.0)
    assert scale_into(start, res, 0.06) is not None
    cfg = PreserveConfig(epochs=6, seq_len=30, batch_size=4, lr=2e-2, barrier=1e-3)
    assert cfg.switch_epoch == 3

    def go(m, rng, **kw):
        recs: list = []
        opt = finetune(m, None, u, y, u, y, res, cfg, rng, on_epoch=lambda r, o: recs.append(r), **kw)
        return recs, opt

    full, _ = go(copy.deepcopy(start), np.random.default_rng(1))
    assert [r["track"] for r in full] == ["interior"] * 3 + ["boundary"] * 3
    assert all(r["residual"] < -cfg.eps for r in full)
    assert full[0]["lr"] == full[3]["lr"] == cfg.lr  # the cosine schedule restarts with the boundary track
    # interrupted after two interior epochs, then resumed from the saved state
    m, rng = copy.deepcopy(start), np.random.default_rng(1)
    recs: list = []
    opt = finetune(m, None, u, y, u, y, res, cfg, rng, stop=lambda: len(recs) >= 2,
                   on_epoch=lambda r, o: recs.append(r))
    buf = io.BytesIO()
    torch.save({"state": m.state_dict(), "optimizer": opt.state_dict()}, buf)
    buf.seek(0)
    ck = torch.load(buf, weights_only=True)
    anchor = ck["optimizer"]["param_groups"][0]["certify_anchor"]  # where the boundary track will start
    for a, p in zip(anchor, [p for p in start.parameters() if p.requires_grad]):
        assert torch.equal(a, p.detach())
    m2 = copy.deepcopy(start)
    m2.load_state_dict(ck["state"])
    rest, _ = go(m2, rng, start_epoch=2, optimizer_state=ck["optimizer"])
    both = recs + rest
    assert [r["epoch"] for r in both] == list(range(6))
    for a, b in zip(full, both):
        assert a["track"] == b["track"]
        np.testing.assert_allclose([a["loss"], a["val_fit"], a["residual"]], [b["loss"], b["val_fit"], b["residual"]],
                                   rtol=1e-5, atol=1e-7)
