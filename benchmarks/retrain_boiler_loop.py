"""From a GRU soft sensor to a certified closed loop: `certify retrain --into lpgrnn` on the boiler.

A GRU virtual pressure sensor (inputs E, u1(k−1), u2, u3 → p; simulated nonlinear boiler, Ts = 10 s; min-max
scalings in the model metadata, as `models_zoo/make_boiler_soft_sensor.py` writes them) is trained without any
stability term.  `certify check --plant boiler` cannot certify the loop around it (a GRU has no exact SNOF;
Hilgert & Schwung 2025, Prop. IV.2).  `certify retrain --into lpgrnn` distils it into an LP-GRNN with a linear
bypass; the loop around the student is then checked.  Prints the verdicts, the test FIT (plant units) of the
GRU against the data, of the student against the data and against the GRU's outputs, and the seconds.

    OPENBLAS_NUM_THREADS=1 python benchmarks/retrain_boiler_loop.py [--hidden 16] [--student 6] [--epochs 100]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import torch

from certify.api import check
from certify.datasets import boiler_pressure_dataset
from certify.networks import MinMaxScaling
from certify.train.metrics import fit
from certify.train.modules import GRUNet, export_onnx
from certify.train.retrain import add_arguments, run
from certify.train.trainer import TrainConfig, simulate, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=3000)
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--train-epochs", type=int, default=150)
    ap.add_argument("--student", type=int, default=6, help="LP-GRNN states of the student")
    ap.add_argument("--epochs", type=int, default=100, help="retrain (fine-tuning) epochs")
    a = ap.parse_args()
    d = boiler_pressure_dataset(T=a.samples, seed=0)
    lo_u, hi_u = d.u.min(0), d.u.max(0)
    lo_y, hi_y = d.y.min(0), d.y.max(0)
    s_in = MinMaxScaling(raw_low=lo_u - 0.1 * (hi_u - lo_u), raw_high=hi_u + 0.1 * (hi_u - lo_u))
    s_out = MinMaxScaling(raw_low=lo_y - 0.1 * (hi_y - lo_y), raw_high=hi_y + 0.1 * (hi_y - lo_y))
    meta = {"certify.input_range": json.dumps({"low": [-1] * 4, "high": [1] * 4}),
            "certify.input_scaling": json.dumps(s_in.to_dict()), "certify.output_scaling": json.dumps(s_out.to_dict()),
            "certify.input_names": json.dumps(list(d.input_names)),
            "certify.output_names": json.dumps(list(d.output_names))}
    U, Y = s_in.to_net(d.u), s_out.to_net(d.y)
    cut = int(0.75 * len(U))
    vcut = int(0.8 * cut)
    root = tempfile.mkdtemp()
    d.save(os.path.join(root, "boiler.npz"))  # plant units: retrain scales with the metadata
    torch.manual_seed(0)
    gru = GRUNet(4, a.hidden, n_out=1)
    t = time.perf_counter()
    train(gru, U[:vcut], Y[:vcut], U[vcut:cut], Y[vcut:cut],
          TrainConfig(epochs=a.train_epochs, lr=1e-2, require_certified=False, progress=False, device="cpu"))
    t_gru = time.perf_counter() - t
    gru_path = os.path.join(root, "gru.onnx")
    export_onnx(gru.cpu(), gru_path, seq_len=10, metadata=meta)
    fit_gru = float(fit(d.y[cut + 10:], s_out.to_raw(simulate(gru, U[cut:]))[10:])[0])
    loop_gru = check(gru_path, plant="boiler").verdict.value
    out = os.path.join(root, "out")
    t = time.perf_counter()
    rc = run(add_arguments(argparse.ArgumentParser()).parse_args(
        [gru_path, "--data", os.path.join(root, "boiler.npz"), "-o", out, "--into", "lpgrnn", "--hidden",
         str(a.student), "--epochs", str(a.epochs), "--device", "cpu", "--log-every", "0"]))
    t_ret = time.perf_counter() - t
    s = json.load(open(os.path.join(out, "retrain.json")))
    onnx = s["onnx"]
    fit_st = float(s["test_after"]["fit"][0]) if s["test_after"] else float("nan")
    fit_st_t = float(s["distance_to_original"]["fit_vs_original"][0]) if s["distance_to_original"] else float("nan")
    t = time.perf_counter()
    rep = check(onnx, plant="boiler") if onnx else None
    loop_st = "none" if rep is None else rep.verdict.value
    if rep is not None and rep.checks and rep.checks[0].margin is not None:  # < 0: proved with that clearance
        loop_st += f" ({rep.checks[0].name} margin {rep.checks[0].margin:.2g})"
    t_loop = time.perf_counter() - t
    print(f"boiler, {a.samples} samples; GRU {a.hidden} trained in {t_gru:.0f} s; test FIT in plant units after the "
          "washout")
    print("| model | FIT vs data % | FIT vs teacher % | `check --plant boiler` | seconds |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| GRU {a.hidden} (teacher, unconstrained) | {fit_gru:.2f} | — | {loop_gru} | {t_gru:.0f} (training) |")
    print(f"| LP-GRNN {a.student} + bypass (`--into lpgrnn`, exit {rc}, {s['status']}) | {fit_st:.2f} "
          f"({100 * fit_st / fit_gru:.1f} % of the GRU's) | {fit_st_t:.2f} | {loop_st} | {t_ret:.0f} (retrain) + "
          f"{t_loop:.1f} (loop) |")


if __name__ == "__main__":
    main()
