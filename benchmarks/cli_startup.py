"""Whole-process wall time of ``certify --help`` and of ``certify check`` on a small ONNX GRU.

Run: ``python benchmarks/cli_startup.py [--runs N] [--model PATH]``.  Prints a table (mean / min over
runs, seconds).  The check row needs ``models_zoo/gru_small.onnx`` (or ``--model``); it is skipped
otherwise.  Each run is a fresh ``python -m certify`` process, so the figures include interpreter start,
imports, model loading, the checks and report rendering.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def time_command(args: list[str], runs: int) -> tuple[float, float, int]:
    """Mean and min wall time of ``python -m certify ARGS`` over ``runs`` runs, and the last exit code."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    times, code = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "certify", *args], capture_output=True, env=env, cwd=REPO)
        times.append(time.perf_counter() - t0)
        code = p.returncode
    return statistics.fmean(times), min(times), code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--model", default=str(REPO / "models_zoo" / "gru_small.onnx"))
    a = parser.parse_args()
    rows = [("certify --help", ["--help"]), ("certify --version", ["--version"])]
    if Path(a.model).is_file():
        name = os.path.basename(a.model)
        rows += [(f"certify check {name} (json)", ["check", a.model, "--format", "json", "--quiet"]),
                 (f"certify inspect {name}", ["inspect", a.model])]
    else:
        print(f"(no {a.model}: the check rows are skipped)")
    print(f"{'command':<44} {'runs':>4} {'mean s':>8} {'min s':>8} {'exit':>4}")
    for label, args in rows:
        mean, best, code = time_command(args, a.runs)
        print(f"{label:<44} {a.runs:>4} {mean:>8.3f} {best:>8.3f} {code:>4}")


if __name__ == "__main__":
    main()
