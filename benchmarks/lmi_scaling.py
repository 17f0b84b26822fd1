"""LMI scaling on random certifiable LP-GRNNs: order, variables, compile/solve time, memory, validation.

Run: ``python benchmarks/lmi_scaling.py [--sizes 3 8 16 32 64] [--with-128] [--solvers clarabel scs]
[--criteria circle lure_postnikov]``.  Prints one table row per (hidden size, criterion, solver).
"""

from __future__ import annotations

import os

# Single-threaded BLAS: on a loaded 2-core machine OpenBLAS threads oversubscribe and small dense
# operations (vertex check, validation) slow down ~100x.  Must be set before numpy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402

from certify.criteria.lmi import check_lmi  # noqa: E402
from certify.networks import LinearHead, LPGRNNLayer, Network  # noqa: E402
from certify.snof import from_network  # noqa: E402


def random_lpgrnn(hidden: int, n_in: int = 2, seed: int = 0, scale: float = 0.3) -> Network:
    """A random LP-GRNN with small recurrent weights (spectral norm ≈ ``scale``) and z ∈ (0.2, 0.8)."""
    rng = np.random.default_rng(seed)
    n = nr = hidden
    g = lambda *s: rng.normal(size=s) / np.sqrt(s[-1])  # noqa: E731
    layer = LPGRNNLayer(W_r=g(nr, n_in), U_r=scale * g(nr, n), b_r=0.1 * rng.normal(size=nr), W_h=g(n, n_in),
                        U_h=scale * g(n, n), V_h=scale * g(n, nr), b_h=0.1 * rng.normal(size=n),
                        z=rng.uniform(0.2, 0.8, n))
    return Network(layers=(layer,), head=LinearHead(W=g(1, n), b=np.zeros(1)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="*", default=[3, 8, 16, 32, 64])
    ap.add_argument("--with-128", action="store_true", help="also hidden size 128 (slow, memory hungry)")
    ap.add_argument("--solvers", nargs="*", default=["auto"])
    ap.add_argument("--criteria", nargs="*", default=["circle", "lure_postnikov"])
    ap.add_argument("--timeout", type=float, default=300.0)
    args = ap.parse_args()
    sizes = list(args.sizes) + ([128] if args.with_128 else [])
    hdr = (f"{'hidden':>6} {'criterion':>15} {'solver':>8} {'order':>6} {'vars':>7} {'build':>7} {'compile':>8} "
           f"{'solve':>8} {'total':>8} {'peakMB':>7} {'status':>10} {'valid':>5} {'maxeigM':>10}")
    print(hdr)
    for h in sizes:
        form = from_network(random_lpgrnn(h))
        for crit in args.criteria:
            for solver in args.solvers:
                tracemalloc.start()
                t0 = time.perf_counter()
                r = check_lmi(form, criterion=crit, solver=None if solver == "auto" else solver,
                              timeout=args.timeout)
                total = time.perf_counter() - t0
                peak = tracemalloc.get_traced_memory()[1] / 2**20
                tracemalloc.stop()
                tr = r.quantities.get("criteria_tried", [{}])[-1]
                f = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
                print(f"{h:>6} {crit:>15} {str(r.solver):>8} {r.quantities.get('lmi_order', '-'):>6} "
                      f"{r.quantities.get('variables', '-'):>7} {f(tr.get('seconds_build')):>7} "
                      f"{f(tr.get('seconds_compile')):>8} {f(tr.get('seconds_solve')):>8} {total:>8.2f} "
                      f"{peak:>7.0f} {r.status.value:>10} {str(bool(r.validation.get('ok'))):>5} "
                      f"{r.margin if r.margin is None else format(r.margin, '.2e'):>10}", flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process peak RSS: {rss:.0f} MB (tracemalloc peaks above cover Python allocations only)")


if __name__ == "__main__":
    main()
