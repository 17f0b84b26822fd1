"""Whole-process start-up time of loading an ONNX model (target: < 1 s).

Builds a 3-layer, 64-unit GRU ONNX file (hand-built with onnx.helper, no torch needed), then times
``python -c "from certify.importers import load_model; load_model(path).summary()"`` and, when
certify/cli.py exists, ``python -m certify inspect path``, over several runs; prints mean/min.

Run from the repository root: ``python benchmarks/inspect_startup.py [--runs 7]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def build_model(path: str, hidden: int = 64, layers: int = 3, n_in: int = 4) -> str:
    """Write a stacked fused-GRU graph (legacy-exporter layout) with a linear head."""
    from tests._export_util import gru_lbr0_model, save

    rng = np.random.default_rng(0)
    return save(gru_lbr0_model(rng, n_in, hidden, layers, 1, lbr=1, T=None), path)


def time_cmd(cmd: list[str], runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if res.returncode != 0:
            raise SystemExit(f"command failed: {' '.join(cmd)}\n{res.stderr}")
    return statistics.mean(times), min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = build_model(os.path.join(d, "gru3x64.onnx"))
        rows = [("python -c 'import sys' (interpreter baseline)", [sys.executable, "-c", "import sys"]),
                ("python -c 'import certify'", [sys.executable, "-c", "import certify"]),
                ("load_model(path).summary()", [sys.executable, "-c",
                 f"from certify.importers import load_model; load_model({path!r}).summary()"])]
        if os.path.exists(os.path.join(REPO, "certify", "cli.py")):
            rows.append(("certify inspect path", [sys.executable, "-m", "certify", "inspect", path]))
        print(f"model: 3-layer GRU, 64 hidden, {os.path.getsize(path) / 1024:.0f} KiB; {args.runs} runs each")
        print(f"{'command':<48} {'mean [s]':>9} {'min [s]':>9}")
        for name, cmd in rows:
            mean, best = time_cmd(cmd, args.runs)
            print(f"{name:<48} {mean:9.3f} {best:9.3f}")


if __name__ == "__main__":
    main()
