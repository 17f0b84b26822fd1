"""Closed-loop benchmark: README main-job command (whole process) and closed-loop LMI time vs LP-GRNN size.

Run: ``python benchmarks/loop_check.py [--runs 5]``.  Prints three tables (the third: absorbing-set
tightening on plain LP-GRNNs, docs/theory.md §6.1).  The LP-GRNNs are random (small
recurrent weights, a linear term from E to the estimate like the bundled model) inside the built-in boiler
loop; the scaling is the bundled model's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def whole_process(runs: int) -> list[float]:
    cmd = [sys.executable, "-m", "certify", "check", "models_zoo/boiler_lpgrnn_linear.onnx", "--plant", "boiler",
           "--quiet"]
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True)
        times.append(time.perf_counter() - t)
        if r.returncode != 0:
            raise SystemExit(f"main job exited {r.returncode}: {r.stderr.decode()[-500:]}")
    return times


def lmi_sizes(sizes: list[int]) -> list[tuple[int, int, int, str, str, float, float]]:
    from certify.criteria.lmi import check_lmi
    from certify.importers import load_model
    from certify.loop.assemble import assemble
    from certify.loop.spec import default_loop
    from certify.networks import LinearHead, LPGRNNLayer, Network

    info = load_model(ROOT / "models_zoo" / "boiler_lpgrnn_linear.onnx").info
    spec = default_loop("boiler")
    rows = []
    for n in sizes:
        rng = np.random.default_rng(n)
        nr = max(1, n // 2)
        s = 0.3 / np.sqrt(n)
        layer = LPGRNNLayer(rng.normal(size=(nr, 4)) * 0.3, rng.normal(size=(nr, n)) * s, rng.normal(size=nr) * 0.1,
                            rng.normal(size=(n, 4)) * 0.3, rng.normal(size=(n, n)) * s, rng.normal(size=(n, nr)) * s,
                            rng.normal(size=n) * 0.1, rng.uniform(0.3, 0.8, size=n))
        head = LinearHead(W=rng.normal(size=(1, n)) * 0.05 / np.sqrt(n), b=[-0.1], D=[[1.05, 0.05, -0.05, 0.0]])
        net = Network((layer,), head=head, info=info)
        t = time.perf_counter()
        cl = assemble(net, spec)
        t_asm = time.perf_counter() - t
        res = check_lmi(cl.form)
        rows.append((n, cl.form.n, cl.form.m, res.status.value, res.criterion, t_asm, res.seconds))
    return rows


def absorbing_sizes(sizes: list[int], scale: float = 0.3) -> list[tuple[int, int, str, str, float, float, float]]:
    """Absorbing-set tightening (docs/theory.md §6.1) on plain LP-GRNNs (no linear term) in the boiler loop.

    Returns rows (hidden, channels, status, criterion, κ_min, box seconds, check seconds).
    """
    from certify.importers import load_model
    from certify.loop.absorbing import check_absorbing
    from certify.loop.assemble import assemble
    from certify.loop.spec import default_loop
    from certify.networks import LinearHead, LPGRNNLayer, Network

    info = load_model(ROOT / "models_zoo" / "boiler_lpgrnn_plain.onnx").info
    spec = default_loop("boiler")
    rows = []
    for n in sizes:
        rng = np.random.default_rng(n)
        nr = max(1, n // 2)
        s = scale / np.sqrt(n)
        layer = LPGRNNLayer(rng.normal(size=(nr, 4)) * scale, rng.normal(size=(nr, n)) * s, rng.normal(size=nr) * 0.1,
                            rng.normal(size=(n, 4)) * scale, rng.normal(size=(n, n)) * s, rng.normal(size=(n, nr)) * s,
                            rng.normal(size=n) * 0.1, rng.uniform(0.3, 0.8, size=n))
        head = LinearHead(W=rng.normal(size=(1, n)) * 0.5 / np.sqrt(n), b=[-0.1])
        cl = assemble(Network((layer,), head=head, info=info), spec)
        res = check_absorbing(cl.form)
        k = res.quantities.get("kappa_min")
        t_box = (res.quantities.get("absorbing_set") or {}).get("seconds", float("nan"))
        rows.append((n, cl.form.m, res.status.value, res.criterion, float("nan") if k is None else k, t_box,
                     res.seconds))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sizes", type=int, nargs="*", default=[3, 8, 16, 32])
    ap.add_argument("--absorbing-sizes", type=int, nargs="*", default=[8, 16, 32, 64])
    args = ap.parse_args()
    times = whole_process(args.runs)
    print("README main job: certify check models_zoo/boiler_lpgrnn_linear.onnx --plant boiler")
    print(f"| runs | mean s | min s | max s |\n| --- | --- | --- | --- |\n| {args.runs} | {statistics.mean(times):.2f} "
          f"| {min(times):.2f} | {max(times):.2f} |\n")
    print("| hidden | loop states | channels | status | criterion | assemble s | LMI check s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n, ns, m, st, crit, ta, tl in lmi_sizes(args.sizes):
        print(f"| {n} | {ns} | {m} | {st} | {crit} | {ta:.3f} | {tl:.2f} |")
    print("\nAbsorbing-set tightening, plain LP-GRNN (no linear term) in the boiler loop")
    print("| hidden | channels | status | criterion | κ_min | box s | check s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n, m, st, crit, k, tb, tc in absorbing_sizes(args.absorbing_sizes):
        print(f"| {n} | {m} | {st} | {crit} | {k:.2e} | {tb:.2f} | {tc:.2f} |")


if __name__ == "__main__":
    main()
