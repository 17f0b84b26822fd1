"""Batch throughput of ``certify check``: 1 and 2 local workers, a local Dask / Ray cluster, a warm cache,
and farm-style start-up timing.

Run: ``python benchmarks/batch.py [--n 200] [--runs 5] [--skip-engines]``.  Writes ``--n`` distinct
checkpoints (copies of the zoo's GRUs, LSTM and LP-GRNN loop models whose ``doc_string`` differs, so
every file has its own SHA-256) into a temporary folder with a manifest (LP-GRNN rows close the loop
around the built-in boiler), then times whole ``certify check MANIFEST`` processes.  Prints a table:
wall seconds, CPU seconds (the process and its workers), models per second, the speed-up over one
worker, and the CPU-bound speed-up ``jobs × CPU(1 worker) / CPU(N workers)`` that idle cores would
give (on a machine other jobs load, the wall-clock speed-up understates it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ZOO = REPO / "models_zoo"
#: (zoo file, manifest settings) — certified and not-certified networks, and closed loops.
KINDS = [
    ("quadtank_gru_diss.onnx", ""),
    ("quadtank_lstm_diss.onnx", ""),
    ("gru_small.onnx", ""),
    ("boiler_lpgrnn_linear.onnx", 'plant = "boiler"\n'),
]


def make_batch(folder: Path, n: int) -> Path:
    """``n`` distinct checkpoints and ``models.toml`` listing them; returns the manifest."""
    import onnx

    protos = {name: onnx.load(str(ZOO / name)) for name, _ in KINDS}
    rows = []
    for i in range(n):
        name, extra = KINDS[i % len(KINDS)]
        m = protos[name]
        m.doc_string = f"checkpoint {i}"
        path = folder / f"ckpt_{i:04d}_{name}"
        path.write_bytes(m.SerializeToString())
        rows.append(f'[[model]]\npath = "{path.name}"\n{extra}')
    manifest = folder / "models.toml"
    manifest.write_text("\n".join(rows))
    return manifest


def _cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(args: list[str], cwd: Path) -> tuple[float, int, float]:
    """Wall seconds, exit code and CPU seconds (user + system, the process and its workers) of one run."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               OPENBLAS_NUM_THREADS="1")
    c0, t0 = _cpu(), time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "certify", *args], capture_output=True, text=True, env=env, cwd=cwd)
    return time.perf_counter() - t0, p.returncode, _cpu() - c0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="number of checkpoints (default 200)")
    parser.add_argument("--runs", type=int, default=5, help="repetitions of the start-up timing (default 5)")
    parser.add_argument("--skip-engines", action="store_true", help="no Dask / Ray rows")
    a = parser.parse_args()
    import importlib.util

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        manifest = make_batch(folder, a.n)
        base = ["check", str(manifest), "--isolated", "-q", "--format", "json", "-o", str(folder / "r.json")]
        rows: list[tuple[str, float, int, float, int]] = []
        t1, code, cpu1 = run(base + ["--jobs", "1"], folder)
        rows.append(("local, --jobs 1 (in-process)", t1, code, cpu1, 1))
        t2, code, cpu = run(base + ["--jobs", "2"], folder)
        rows.append(("local, --jobs 2", t2, code, cpu, 2))
        if not a.skip_engines:
            for engine, module in (("dask", "dask.distributed"), ("ray", "ray")):
                try:
                    found = importlib.util.find_spec(module) is not None
                except ModuleNotFoundError:
                    found = False
                if found:
                    t, code, cpu = run(base + ["--jobs", "2", "--engine", engine], folder)
                    rows.append((f"{engine} local cluster, 2 workers", t, code, cpu, 2))
                else:
                    print(f"({engine} not installed: no row)")
        cache = str(folder / "cache")
        t_cold, code, cpu = run(base + ["--jobs", "2", "--cache", cache], folder)
        rows.append(("--jobs 2, cold cache (fills it)", t_cold, code, cpu, 2))
        t_warm, code, cpu = run(base + ["--jobs", "2", "--cache", cache], folder)
        rows.append(("--jobs 2, warm cache", t_warm, code, cpu, 0))
        print(f"{a.n} checkpoints ({', '.join(k for k, _ in KINDS)}), {os.cpu_count()} cores, "
              f"load average {os.getloadavg()[0]:.1f}")
        print(f"{'run':<36} {'wall s':>8} {'CPU s':>8} {'models/s':>9} {'vs 1 worker':>12} {'CPU-bound':>10} "
              f"{'exit':>5}")
        for label, t, code, cpu, jobs in rows:
            bound = f"{jobs * cpu1 / cpu:9.2f}x" if jobs else f"{'-':>10}"
            print(f"{label:<36} {t:8.2f} {cpu:8.2f} {a.n / t:9.1f} {t1 / t:11.2f}x {bound} {code:5d}")

        print()
        print(f"start-up, {a.runs} fresh processes each (mean / min, s)")
        for label, argv in (("certify --version", ["--version"]),
                            ("certify check gru_small.onnx", ["check", str(ZOO / "gru_small.onnx"), "-q"]),
                            ("certify check quadtank_lstm_diss.onnx", ["check", str(ZOO / "quadtank_lstm_diss.onnx"),
                                                                       "-q"])):
            times = [run(argv, folder)[0] for _ in range(a.runs)]
            print(f"  {label:<40} {statistics.fmean(times):6.3f} / {min(times):6.3f}")


if __name__ == "__main__":
    main()
