"""Whole-process wall time of ``certify --help``, ``--version``, ``check`` and ``inspect`` on a small ONNX GRU.

Run: ``python benchmarks/cli_startup.py [--runs N] [--model PATH] [--no-compare]``.  Each run is a fresh
``python -m certify`` process, so the figures include interpreter start, imports, model loading, the
checks (the counterexample search included) and report rendering.  The model rows need
``models_zoo/gru_small.onnx`` (or ``--model``); they are skipped otherwise.

Two columns per figure: ``fast`` is certify as shipped (ONNX read with protobuf and ONNX's native
checker only, :mod:`certify.importers.onnx_proto`), ``full`` the same command with
``CERTIFY_ONNX_FULL=1``, which makes the importer use the ``onnx`` package's Python layer (and so
import ``ml_dtypes``), as certify did before.  The two are run alternately, so machine load affects both
alike; compare the minima.  ``--no-compare`` times the ``fast`` column only.
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
FULL_ENV = "CERTIFY_ONNX_FULL"


def run_once(args: list[str], full: bool) -> tuple[float, int]:
    """Wall time and exit code of one fresh ``python -m certify ARGS`` process."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    env.pop(FULL_ENV, None)
    if full:
        env[FULL_ENV] = "1"
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "certify", *args], capture_output=True, env=env, cwd=REPO)
    return time.perf_counter() - t0, p.returncode


def time_command(args: list[str], runs: int, compare: bool) -> dict[str, tuple[float, float, int]]:
    """``{"fast": (mean, min, exit), "full": ...}`` over ``runs`` alternating runs."""
    modes = ("fast", "full") if compare else ("fast",)
    times: dict[str, list[float]] = {m: [] for m in modes}
    codes: dict[str, int] = {}
    run_once(args, False)  # warm the file cache and the bytecode cache once, outside the figures
    for _ in range(runs):
        for m in modes:
            t, codes[m] = run_once(args, m == "full")
            times[m].append(t)
    return {m: (statistics.fmean(times[m]), min(times[m]), codes[m]) for m in modes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--model", default=str(REPO / "models_zoo" / "gru_small.onnx"))
    parser.add_argument("--no-compare", action="store_true", help=f"skip the {FULL_ENV}=1 column")
    a = parser.parse_args()
    rows = [("certify --help", ["--help"]), ("certify --version", ["--version"])]
    if Path(a.model).is_file():
        name = os.path.basename(a.model)
        rows += [(f"certify check {name} (json)", ["check", a.model, "--format", "json", "--quiet"]),
                 (f"certify inspect {name}", ["inspect", a.model])]
    else:
        print(f"(no {a.model}: the model rows are skipped)")
    compare = not a.no_compare
    head = f"{'command':<40} {'runs':>4} {'fast mean':>9} {'fast min':>9}"
    if compare:
        head += f" {'full mean':>9} {'full min':>9}"
    print(head + f" {'exit':>4}")
    for label, args in rows:
        res = time_command(args, a.runs, compare)
        line = f"{label:<40} {a.runs:>4} {res['fast'][0]:>9.3f} {res['fast'][1]:>9.3f}"
        if compare:
            line += f" {res['full'][0]:>9.3f} {res['full'][1]:>9.3f}"
            if res["full"][2] != res["fast"][2]:
                line += f" (exit differs: fast {res['fast'][2]}, full {res['full'][2]})"
        print(line + f" {res['fast'][2]:>4}")


if __name__ == "__main__":
    main()
