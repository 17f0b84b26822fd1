"""LMI scaling on random certifiable LP-GRNNs: order, variables, time split, memory, validation, and a plain
CVXPY transcription of the same LMI side by side.

Run: ``python benchmarks/lmi_scaling.py [--sizes 16 32 64 128 256 512] [--solvers auto clarabel scs]
[--criteria circle lure_postnikov] [--plain-max 32]``.  One row per (hidden size, criterion, solver):

* ``build``/``compile``/``solve``/``valid.``: seconds in certify's SDP assembly, CVXPY compilation, the
  backend, and the float64 validation, summed over the attempts of the fallback chain; ``vertex``: the
  vertex pre-check (run up front only while cheap); ``total``: the whole ``check_lmi`` call;
* ``eig30``: 30 dense ``eigvalsh`` of a matrix of the LMI's order (the practical floor of a first-order
  SDP solve) and ``ratio`` = total / eig30;
* ``plain``: the same criterion written as a user would (congruence form ``G'PG − E'PE + …`` with
  ``P ⪰ I``, ``M ⪯ −1e-6 I``, default SCS/Clarabel), validated with the same float64 check; ``plain``
  shows its total seconds and whether its certificate validated (``-`` above ``--plain-max``).
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

from certify.criteria.lmi import balance_lure, check_lmi, lure_system  # noqa: E402
from certify.criteria.validate import LMICertificate, lmi_structure, validate_certificate  # noqa: E402
from certify.networks import LinearHead, LPGRNNLayer, Network  # noqa: E402
from certify.snof import from_network  # noqa: E402
from certify.snof.transform import equilibrium  # noqa: E402


def random_lpgrnn(hidden: int, n_in: int = 2, seed: int = 0, scale: float = 0.3) -> Network:
    """A random LP-GRNN with small recurrent weights (spectral norm ≈ ``scale``) and z ∈ (0.2, 0.8)."""
    rng = np.random.default_rng(seed)
    n = nr = hidden
    g = lambda *s: rng.normal(size=s) / np.sqrt(s[-1])  # noqa: E731
    layer = LPGRNNLayer(W_r=g(nr, n_in), U_r=scale * g(nr, n), b_r=0.1 * rng.normal(size=nr), W_h=g(n, n_in),
                        U_h=scale * g(n, n), V_h=scale * g(n, nr), b_h=0.1 * rng.normal(size=n),
                        z=rng.uniform(0.2, 0.8, n))
    return Network(layers=(layer,), head=LinearHead(W=g(1, n), b=np.zeros(1)))


def plain_cvxpy(sys, criterion: str, solver: str) -> tuple[float, bool]:
    """The LMI as a user would write it in CVXPY (congruence form, P ⪰ I, M ⪯ −1e-6 I); seconds and whether
    the returned point passes certify's float64 validation."""
    import cvxpy as cp

    t0 = time.perf_counter()
    st = lmi_structure(sys, criterion)
    n, m = sys.n, sys.m
    P = cp.Variable((n, n), symmetric=True)
    t = {k: cp.Variable(m, nonneg=True) for k in st.multiplier_names}
    G = st.G
    M = G.T @ P @ G - st.Ex.T @ P @ st.Ex
    for name, L, R in st.terms:
        X = L.T @ cp.diag(t[name]) @ R
        M = M + X + X.T
    prob = cp.Problem(cp.Minimize(0), [(M + M.T) / 2 << -1e-6 * np.eye(st.N), P >> np.eye(n)])
    try:
        prob.solve(solver=solver.upper())
    except Exception:  # noqa: BLE001 - a failing plain solve is a data point
        return time.perf_counter() - t0, False
    ok = False
    if P.value is not None:
        ok = validate_certificate(sys, LMICertificate(criterion, P.value, {k: v.value for k, v in t.items()})).ok
    return time.perf_counter() - t0, ok


def eig_floor(order: int, reps: int = 30) -> float:
    X = np.random.default_rng(0).normal(size=(order, order))
    X = X + X.T
    t0 = time.perf_counter()
    for _ in range(reps):
        np.linalg.eigvalsh(X)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="*", default=[16, 32, 64, 128])
    ap.add_argument("--solvers", nargs="*", default=["auto"])
    ap.add_argument("--criteria", nargs="*", default=["circle", "lure_postnikov"])
    ap.add_argument("--plain-max", type=int, default=32, help="largest hidden size for the plain CVXPY column")
    ap.add_argument("--timeout", type=float, default=600.0)
    args = ap.parse_args()
    hdr = (f"{'hidden':>6} {'criterion':>15} {'solver':>8} {'order':>6} {'vars':>7} {'build':>6} {'compile':>7} "
           f"{'solve':>7} {'valid.':>6} {'vertex':>6} {'total':>7} {'eig30':>6} {'ratio':>6} {'peakMB':>6} "
           f"{'status':>10} {'relmargin':>9} {'plain':>12}")
    print(hdr)
    for h in args.sizes:
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
                tried = r.quantities.get("criteria_tried", [])
                sm = lambda k, tried=tried: sum(float(a.get(k) or 0.0) for a in tried)  # noqa: E731
                order = r.quantities.get("lmi_order", 0) or 0
                e30 = eig_floor(order) if order else float("nan")
                plain = "-"
                if h <= args.plain_max:
                    sys0, _, _ = lure_system(form, equilibrium(form))
                    sysb, _, _ = balance_lure(sys0)
                    ps, pok = plain_cvxpy(sysb, crit, "scs" if r.solver == "scs" else "clarabel")
                    plain = f"{ps:.2f}s/{'ok' if pok else 'fail'}"
                rel = r.validation.get("relative_margin")
                print(f"{h:>6} {crit:>15} {str(r.solver):>8} {order:>6} {r.quantities.get('variables', '-'):>7} "
                      f"{sm('seconds_build'):>6.2f} {sm('seconds_compile'):>7.2f} {sm('seconds_solve'):>7.2f} "
                      f"{sm('seconds_validate'):>6.2f} {float(r.quantities.get('seconds_vertex_check', 0.0)):>6.2f} "
                      f"{total:>7.2f} {e30:>6.2f} {total / e30:>6.1f} {peak:>6.0f} {r.status.value:>10} "
                      f"{'-' if rel is None else format(rel, '.1e'):>9} {plain:>12}", flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process peak RSS: {rss:.0f} MB (tracemalloc peaks above cover Python allocations only)")


if __name__ == "__main__":
    main()
