"""Whole-process wall time of ``certify --help``, ``--version``, ``check`` and ``inspect`` on a small ONNX GRU.

Run: ``python benchmarks/cli_startup.py [--runs N] [--model PATH] [--no-compare]``.  Each run is a fresh
``python -m certify`` process, so the figures include interpreter start, imports, model loading, the
checks (the counterexample search included) and report rendering.  The model rows need
``models_zoo/gru_small.onnx`` (or ``--model``); they are skipped otherwise.

The processes may write a bytecode cache in a temporary folder (``PYTHONPYCACHEPREFIX``; after one
warm-up run per command, certify's modules load from ``.pyc`` as in an installed package), even where the
environment sets ``PYTHONDONTWRITEBYTECODE=1``; ``--no-bytecode-cache`` keeps the environment's setting.

Two columns per figure: ``fast`` is certify as shipped (ONNX read with protobuf and ONNX's native
checker only, :mod:`certify.importers.onnx_proto`), ``full`` the same command with
``CERTIFY_ONNX_FULL=1``, which makes the importer use the ``onnx`` package's Python layer (and so
import ``ml_dtypes``), as certify did before.  The two are run alternately, so machine load affects both
alike; compare the minima.  ``cpu`` is the least user + system CPU time of the process over the runs,
less sensitive than wall time to other work on the machine.  ``--no-compare`` times the ``fast``
columns only.
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FULL_ENV = "CERTIFY_ONNX_FULL"


def run_once(args: list[str], full: bool, pycache: str | None) -> tuple[float, float, int]:
    """Wall time, CPU time (user + system) and exit code of one fresh ``python -m certify ARGS`` process.

    ``pycache``: a bytecode-cache folder (``PYTHONPYCACHEPREFIX``) the process may write, as an installed
    package has its ``.pyc`` files; ``None`` keeps the environment's setting (``PYTHONDONTWRITEBYTECODE=1``
    makes every run compile certify's sources again).
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    env.pop(FULL_ENV, None)
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = pycache
    if full:
        env[FULL_ENV] = "1"
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "certify", *args], capture_output=True, env=env, cwd=REPO)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), p.returncode


def time_command(args: list[str], runs: int, compare: bool,
                 pycache: str | None) -> dict[str, tuple[float, float, float, int]]:
    """``{"fast": (mean wall, min wall, min CPU, exit), "full": ...}`` over ``runs`` alternating runs."""
    modes = ("fast", "full") if compare else ("fast",)
    walls: dict[str, list[float]] = {m: [] for m in modes}
    cpus: dict[str, list[float]] = {m: [] for m in modes}
    codes: dict[str, int] = {}
    for m in modes:  # warm the file cache and the bytecode cache once, outside the figures
        run_once(args, m == "full", pycache)
    for _ in range(runs):
        for m in modes:
            wall, cpu, codes[m] = run_once(args, m == "full", pycache)
            walls[m].append(wall)
            cpus[m].append(cpu)
    return {m: (statistics.fmean(walls[m]), min(walls[m]), min(cpus[m]), codes[m]) for m in modes}


def _row(label: str, args: list[str], runs: int, compare: bool, pycache: str | None) -> str:
    """One table line: label, runs, mean/min wall and min CPU per mode, exit code."""
    modes = ("fast", "full") if compare else ("fast",)
    res = time_command(args, runs, compare, pycache)
    line = f"{label:<36} {runs:>4}" + "".join(f" {res[m][0]:>9.3f} {res[m][1]:>9.3f} {res[m][2]:>9.3f}" for m in modes)
    line += f" {res['fast'][3]:>4}"
    if compare and res["full"][3] != res["fast"][3]:
        line += f" (exit differs: full {res['full'][3]})"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--model", default=str(REPO / "models_zoo" / "gru_small.onnx"))
    parser.add_argument("--no-compare", action="store_true", help=f"skip the {FULL_ENV}=1 column")
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="keep the environment's bytecode setting (with PYTHONDONTWRITEBYTECODE=1 every run "
                             "compiles certify's sources)")
    a = parser.parse_args()
    rows = [("certify --help", ["--help"]), ("certify --version", ["--version"])]
    if Path(a.model).is_file():
        name = os.path.basename(a.model)
        rows += [(f"certify check {name} (json)", ["check", a.model, "--format", "json", "--quiet"]),
                 (f"certify inspect {name}", ["inspect", a.model])]
    else:
        print(f"(no {a.model}: the model rows are skipped)")
    compare = not a.no_compare
    modes = ("fast", "full") if compare else ("fast",)
    head = f"{'command':<36} {'runs':>4}" + "".join(f" {m + ' mean':>9} {m + ' min':>9} {m + ' cpu':>9}" for m in modes)
    print(head + f" {'exit':>4}")
    with tempfile.TemporaryDirectory(prefix="certify-pycache-") as tmp:
        pycache = None if a.no_bytecode_cache else tmp
        for label, args in rows:
            print(_row(label, args, a.runs, compare, pycache), flush=True)


if __name__ == "__main__":
    main()
