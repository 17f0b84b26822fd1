"""Whole-process start-up time of loading an ONNX model (target: < 1 s).

Builds a 3-layer, 64-unit GRU ONNX file (hand-built with onnx.helper, no torch needed), then times
``python -c "from certify.importers import load_model; load_model(path).summary()"`` and, when
certify/cli.py exists, ``python -m certify inspect path``, over several runs; prints mean/min wall time
and the least CPU time (user + system), for certify as shipped (``fast``: ONNX read without the ``onnx``
package's Python layer) and with ``CERTIFY_ONNX_FULL=1`` (``full``: through ``onnx``, as before).
The processes write their bytecode cache in a temporary folder (``PYTHONPYCACHEPREFIX``), as an
installed package has its ``.pyc`` files.

Run from the repository root: ``python benchmarks/inspect_startup.py [--runs 7]``.
"""

from __future__ import annotations

import argparse
import os
import resource
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


def time_cmd(cmd: list[str], runs: int, env: dict[str, str]) -> tuple[float, float, float]:
    """Mean and min wall time and min CPU time of ``cmd`` over ``runs`` runs (after one warm-up run)."""
    times, cpus = [], []
    for k in range(runs + 1):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if res.returncode != 0:
            raise SystemExit(f"command failed: {' '.join(cmd)}\n{res.stderr}")
        if k:
            times.append(wall)
            cpus.append((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime))
    return statistics.mean(times), min(times), min(cpus)


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
        base = {k: v for k, v in os.environ.items() if k not in ("CERTIFY_ONNX_FULL", "PYTHONDONTWRITEBYTECODE")}
        base["PYTHONPYCACHEPREFIX"] = os.path.join(d, "pycache")
        envs = {"fast": base, "full": dict(base, CERTIFY_ONNX_FULL="1")}
        print(f"{'command':<48} {'mode':>4} {'mean [s]':>9} {'min [s]':>9} {'cpu [s]':>9}")
        for name, cmd in rows:
            for mode, env in envs.items():
                mean, best, cpu = time_cmd(cmd, args.runs, env)
                print(f"{name:<48} {mode:>4} {mean:9.3f} {best:9.3f} {cpu:9.3f}", flush=True)


if __name__ == "__main__":
    main()
