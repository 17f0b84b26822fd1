"""From a GRU soft sensor to a certified closed loop in one command: `certify retrain --into lpgrnn --plant boiler`.

A GRU virtual pressure sensor (inputs E, u1(k−1), u2, u3 → p; simulated nonlinear boiler, Ts = 10 s; min-max
scalings in the model metadata, as `models_zoo/make_boiler_soft_sensor.py` writes them) is trained without any
stability term.  `certify check --plant boiler` cannot certify the loop around it (a GRU has no exact SNOF;
Hilgert & Schwung 2025, Prop. IV.2).  Then the one-command path

    certify retrain gru.onnx --data boiler.npz -o out --into lpgrnn --hidden 6 --epochs 100 --plant boiler

runs: stage 1 distils the GRU into an LP-GRNN with a linear bypass (`out/student/`, the same as `--into lpgrnn`
without a loop), stage 2 retrains the student for the loop (skipped when the checker certifies the student's
own loop: the student is then the result).  Prints, for the teacher, the student and the result: test FIT (plant
units, after the washout) against the data and against the teacher, validation FIT (network units, what the
selection uses), the verdict of `certify check MODEL --plant boiler` (the same call as the command line), and the
seconds of each stage.  One row pair per `--lr`.

    OPENBLAS_NUM_THREADS=1 python benchmarks/retrain_boiler_loop.py [--student 6] [--epochs 100] [--lr 1e-2 --lr 3e-2]
                                                                  [--workdir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
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


def _verdict(path: str | None) -> tuple[str, float]:
    """`certify check PATH --plant boiler`: the verdict (with the deciding check's margin) and the seconds."""
    if path is None:
        return "none", 0.0
    t = time.perf_counter()
    rep = check(path, plant="boiler")
    sec = time.perf_counter() - t
    txt = rep.verdict.value
    if rep.checks and rep.checks[0].margin is not None:  # the global check; margin < 0: proved with that clearance
        txt += f" ({rep.checks[0].name} margin {rep.checks[0].margin:+.2g})"
    return txt, sec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=3000)
    ap.add_argument("--hidden", type=int, default=16, help="GRU units of the teacher")
    ap.add_argument("--train-epochs", type=int, default=150, help="training epochs of the teacher")
    ap.add_argument("--student", type=int, default=6, help="LP-GRNN states of the student (--hidden of retrain)")
    ap.add_argument("--epochs", type=int, default=100, help="retrain epochs (fine-tuning, then per loop round)")
    ap.add_argument("--lr", type=float, action="append", default=None,
                    help="retrain --lr (repeat for several runs; default: retrain's default)")
    ap.add_argument("--workdir", default=None,
                    help="keep gru.onnx, boiler.npz and the outputs (out-lr*/) here (default: a temporary folder)")
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
    root = a.workdir or tempfile.mkdtemp()
    os.makedirs(root, exist_ok=True)
    data = os.path.join(root, "boiler.npz")
    d.save(data)  # plant units: retrain scales with the metadata
    torch.manual_seed(0)
    gru = GRUNet(4, a.hidden, n_out=1)
    t = time.perf_counter()
    train(gru, U[:vcut], Y[:vcut], U[vcut:cut], Y[vcut:cut],
          TrainConfig(epochs=a.train_epochs, lr=1e-2, require_certified=False, progress=False, device="cpu"))
    t_gru = time.perf_counter() - t
    gru_path = os.path.join(root, "gru.onnx")
    export_onnx(gru.cpu(), gru_path, seq_len=10, metadata=meta)
    fit_gru = float(fit(d.y[cut + 10:], s_out.to_raw(simulate(gru, U[cut:]))[10:])[0])
    loop_gru, t_chk_gru = _verdict(gru_path)

    rows = []
    for lr in a.lr or [None]:
        tag = "default" if lr is None else f"{lr:g}"
        out = os.path.join(root, f"out-lr{tag}")
        argv = [gru_path, "--data", data, "-o", out, "--into", "lpgrnn", "--hidden", str(a.student), "--epochs",
                str(a.epochs), "--plant", "boiler", "--device", "cpu", "--log-every", "0"]
        if lr is not None:
            argv += ["--lr", str(lr)]
        t = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            rc = run(add_arguments(argparse.ArgumentParser()).parse_args(argv))
        wall = time.perf_counter() - t
        with open(os.path.join(out, "retrain.json")) as fh:
            s = json.load(fh)
        distil = s["stages"][0]
        loop = s["stages"][1] if len(s["stages"]) > 1 else None
        student_check = _verdict(distil.get("onnx"))[0]
        result_check = _verdict(s["onnx"])[0]
        rows.append({"lr": tag, "rc": rc, "status": s["status"], "wall": wall, "distil": distil, "loop": loop,
                     "result": s, "student_check": student_check, "result_check": result_check})

    f2 = lambda v: "—" if v is None else f"{v:.2f}"  # noqa: E731
    first = lambda m, key="fit": None if not m else float(m[key][0])  # noqa: E731
    print(f"boiler, {a.samples} samples; GRU {a.hidden} trained {a.train_epochs} epochs in {t_gru:.0f} s; "
          f"`certify retrain gru.onnx --data boiler.npz -o out --into lpgrnn --hidden {a.student} --epochs "
          f"{a.epochs} --plant boiler [--lr LR]`; test FIT in plant units after the washout, validation FIT in "
          "network units (the selection's)")
    print("| model | test FIT vs data % | test FIT vs teacher % | validation FIT % | `certify check --plant boiler` "
          "| seconds |")
    print("| --- | --- | --- | --- | --- | --- |")
    v_teacher = rows[0]["result"]["val_fit_before"] if rows else None
    print(f"| GRU {a.hidden} (teacher, unconstrained) | {fit_gru:.2f} | — | {f2(v_teacher)} | {loop_gru} | "
          f"{t_gru:.0f} (training) + {t_chk_gru:.1f} (check) |")
    for r in rows:
        distil, loop, s = r["distil"], r["loop"], r["result"]
        lr = f"`--lr {r['lr']}`" if r["lr"] != "default" else "default `--lr`"
        print(f"| {lr}: student, LP-GRNN {a.student} + bypass (stage 1, `out/student`) | "
              f"{f2(first(distil.get('test_after')))} | "
              f"{f2(first(distil.get('distance_to_original'), 'fit_vs_original'))} | "
              f"{f2(distil.get('val_fit_after'))} | {r['student_check']} | {distil.get('seconds', 0):.0f} (distil) |")
        if loop is None:
            stage2, loop_sec = "no usable student, loop stage not run", "—"
        elif loop.get("status") == "skipped":
            stage2, loop_sec = "the student: loop stage skipped", "skipped"
        else:
            kept = loop.get("kept") or {}
            stage2 = f"loop stage round {kept.get('round', -1) + 1} epoch {kept.get('epoch')}"
            loop_sec = f"{loop.get('seconds', 0):.0f}"
        print(f"| {lr}: result (`out`; exit {r['rc']}, {r['status']}; {stage2}) | {f2(first(s.get('test_after')))} | "
              f"{f2(first(s.get('distance_to_original'), 'fit_vs_original'))} | {f2(s.get('val_fit_after'))} | "
              f"{r['result_check']} | {loop_sec} (loop stage); {r['wall']:.0f} (retrain, wall) |")
    if a.workdir:
        print(f"files kept in {root}")


if __name__ == "__main__":
    main()
