"""Retraining affine cells: `--target diss` (contraction penalty) vs `--target lmi` (anchored LMI penalty).

An unconstrained Elman RNN and LP-GRNN (hidden 6) are trained on the simulated four-tank (min-max scaled to
[-1, 1]), then retrained by `certify retrain` with each target; the table gives the checker's verdict, the test
FIT (mean over both outputs) before/after, the round/epoch kept and the wall time.

    OPENBLAS_NUM_THREADS=1 python benchmarks/retrain_affine.py [--epochs 60] [--samples 800]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import torch

from certify.api import check
from certify.datasets import quadruple_tank_dataset
from certify.train.metrics import fit
from certify.train.modules import ElmanNet, LPGRNNNet, export_onnx, export_step_onnx
from certify.train.retrain import add_arguments, run
from certify.train.trainer import TrainConfig, simulate, train

META = {"certify.input_range": json.dumps({"low": [-1, -1], "high": [1, 1]})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--samples", type=int, default=800)
    a = ap.parse_args()
    d = quadruple_tank_dataset(a.samples, seed=0)
    sc = lambda v: 2 * (v - v.min(0)) / (v.max(0) - v.min(0)) - 1  # noqa: E731
    u, y = sc(d.u), sc(d.y)
    root = tempfile.mkdtemp()
    np.savez(os.path.join(root, "d.npz"), u=u, y=y)
    n_tr, n_val = int(0.6 * len(u)), int(0.75 * len(u))
    rows = []
    for kind in ("elman", "lpgrnn"):
        torch.manual_seed(0)
        m = ElmanNet(2, 6, n_out=2) if kind == "elman" else LPGRNNNet(2, 6, gate=3, n_out=2)
        cfg = TrainConfig(epochs=a.epochs, seq_len=60, washout=10, lr=2e-2, device="cpu", require_certified=False,
                          progress=False)
        train(m, u[:n_tr], y[:n_tr], u[n_tr:n_val], y[n_tr:n_val], cfg)
        path = os.path.join(root, f"{kind}.onnx")
        export_onnx(m, path, seq_len=10, metadata=META) if kind == "elman" else export_step_onnx(m, path, metadata=META)
        plain = {meth: check(path, method=meth, falsify_budget=0).verdict.value for meth in ("diss", "lmi")}
        rows.append((kind, "(unconstrained)", f"diss {plain['diss']}, lmi {plain['lmi']}",
                     float(np.mean(fit(y[n_val + 10:], simulate(m, u[n_val:])[10:]))), None, "", 0.0))
        for target in ("diss", "lmi"):
            out = os.path.join(root, f"out_{kind}_{target}")
            t0 = time.perf_counter()
            run(add_arguments(argparse.ArgumentParser()).parse_args([
                path, "--data", os.path.join(root, "d.npz"), "-o", out, "--epochs", str(a.epochs), "--device", "cpu",
                "--seq-len", "60", "--lr", "2e-2", "--penalty-weight", "0.02", "--target", target]))
            s = json.load(open(os.path.join(out, "retrain.json")))
            kept = [f"r{r['round']}e{r['best_epoch']}" for r in s["rounds"] if r["best_epoch"] is not None]
            rows.append((kind, target, s["verdict"], float(np.mean(s["test_before"]["fit"])),
                         float(np.mean(s["test_after"]["fit"])), ",".join(kept) or "-", time.perf_counter() - t0))
    print(f"{'model':7} {'target':16} {'verdict':34} {'FIT before':>10} {'FIT after':>10} {'kept':>10} {'s':>6}")
    for kind, tgt, verdict, before, after, kept, sec in rows:
        aft = "" if after is None else f"{after:10.1f}"
        print(f"{kind:7} {tgt:16} {verdict:34} {before:10.1f} {aft:>10} {kept:>10} {sec:6.1f}")


if __name__ == "__main__":
    main()
