"""Retraining a well-trained, uncertified GRU: `--strategy preserve` vs `--strategy penalty`.

An unconstrained GRU (hidden 16) is trained on the simulated four-tank (min-max scaled to [-1, 1]); its δISS
residual is far above 0 (Bonassi, Farina & Scattolini 2021, eq. 24).  It is then retrained by `certify retrain`
with each strategy; the table gives the checker's verdict, the held-out test FIT (per output) before/after, the
validation FIT before/after and the wall time.

    OPENBLAS_NUM_THREADS=1 python benchmarks/retrain_preserve.py [--samples 3000] [--hidden 16]
        [--train-epochs 300] [--epochs 150] [--dataset quadtank|boiler]
        [--strategies preserve,penalty,into-lpgrnn,into-grssnn] [--into-hidden 8] [--workdir DIR]
        [--retrain-args "--barrier 1e-4"]

`--workdir DIR` keeps the data and the trained GRU there and reuses them on the next run with the same
settings (the training of the GRU is deterministic, so this only saves time).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import torch

from certify.datasets import boiler_pressure_dataset, quadruple_tank_dataset
from certify.train.metrics import fit
from certify.train.modules import GRUNet, export_onnx
from certify.train.residuals import gated_residuals
from certify.train.retrain import add_arguments, run
from certify.train.trainer import TrainConfig, simulate, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=3000)
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--train-epochs", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=150, help="retrain epochs (preserve: fine-tuning)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dataset", choices=("quadtank", "boiler"), default="quadtank")
    ap.add_argument("--strategies", default="preserve,penalty",
                    help="comma-separated: preserve, penalty, into-lpgrnn, into-grssnn")
    ap.add_argument("--into-hidden", type=int, default=8)
    ap.add_argument("--workdir", default=None, help="keep (and reuse) the data and the trained GRU here")
    ap.add_argument("--retrain-args", default="", help="extra `certify retrain` options for every strategy")
    a = ap.parse_args()
    d = quadruple_tank_dataset(a.samples, seed=1) if a.dataset == "quadtank" else boiler_pressure_dataset(a.samples)
    m_in, p_out = d.u.shape[1], d.y.shape[1]
    meta = {"certify.input_range": json.dumps({"low": [-1] * m_in, "high": [1] * m_in})}
    sc = lambda v: 2 * (v - v.min(0)) / (v.max(0) - v.min(0)) - 1  # noqa: E731
    u, y = sc(d.u), sc(d.y)
    tag = f"{a.dataset}-{a.samples}-{a.hidden}-{a.train_epochs}"
    root = os.path.join(a.workdir, tag) if a.workdir else tempfile.mkdtemp()
    os.makedirs(root, exist_ok=True)
    np.savez(os.path.join(root, "d.npz"), u=u, y=y)
    cut = int(0.75 * len(u))
    vcut = int(0.8 * cut)
    plain, pt = os.path.join(root, "plain.onnx"), os.path.join(root, "plain.pt")
    torch.manual_seed(0)
    m = GRUNet(m_in, a.hidden, n_out=p_out)
    t = time.perf_counter()
    reused = bool(a.workdir and os.path.isfile(plain) and os.path.isfile(pt))
    if reused:
        m.load_state_dict(torch.load(pt, weights_only=True))
    else:
        train(m, u[:vcut], y[:vcut], u[vcut:cut], y[vcut:cut],
              TrainConfig(epochs=a.train_epochs, lr=1e-2, seq_len=100, require_certified=False, progress=False,
                          device=a.device))
        m = m.cpu()
        torch.save(m.state_dict(), pt)
        export_onnx(m, plain, seq_len=10, metadata=meta)
    took = "reused from --workdir" if reused else f"{time.perf_counter() - t:.1f} s"
    print(f"{a.dataset}, {a.samples} samples; unconstrained GRU {a.hidden}: {took}, test FIT "
          f"{fit(y[cut + 10:], simulate(m, u[cut:])[10:]).round(2).tolist()}, ν = {gated_residuals(m).worst():.4g}")
    rows = []
    for strategy in a.strategies.split(","):
        out = os.path.join(root, strategy)
        t = time.perf_counter()
        extra = (["--into", strategy[5:], "--hidden", str(a.into_hidden)] if strategy.startswith("into-")
                 else ["--strategy", strategy])
        rc = run(add_arguments(argparse.ArgumentParser()).parse_args(
            [plain, "--data", os.path.join(root, "d.npz"), "-o", out, "--epochs", str(a.epochs), "--device",
             a.device, "--log-every", "0", *extra, *a.retrain_args.split()]))
        sec = time.perf_counter() - t
        s = json.load(open(os.path.join(out, "retrain.json")))
        kept = s.get("kept") or {}
        track = next((h.get("track") for h in s.get("history", []) if h.get("epoch") == kept.get("epoch")
                      and h.get("phase") == kept.get("phase")), None)
        where = "—" if not kept else " ".join(str(v) for v in (kept.get("phase"), track, kept.get("epoch"))
                                              if v is not None)
        rows.append((strategy, rc, s["verdict"], s["test_before"]["fit"], (s["test_after"] or {}).get("fit"),
                     s.get("val_fit_before"), s.get("val_fit_after"), where, sec))
    print("| strategy | exit | verdict | test FIT before | test FIT after | test FIT loss | val FIT before → after "
          "| kept | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    f2 = lambda v: "—" if v is None else "/".join(f"{x:.1f}" for x in v)  # noqa: E731
    f1 = lambda v: "—" if v is None else f"{v:.1f}"  # noqa: E731
    for name, rc, verdict, fb, fa, vb, va, where, sec in rows:
        loss = None if fa is None else float(np.mean(fb)) - float(np.mean(fa))
        print(f"| {name} | {rc} | {verdict} | {f2(fb)} | {f2(fa)} | {f1(loss)} | {f1(vb)} → {f1(va)} | {where} "
              f"| {sec:.0f} |")


if __name__ == "__main__":
    main()
