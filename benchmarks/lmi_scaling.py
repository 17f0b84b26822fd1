"""LMI scaling on random certifiable LP-GRNNs and closed loops: order, time split, memory, validation, and a plain
CVXPY transcription of the same LMI side by side.

Run: ``python benchmarks/lmi_scaling.py [--sizes 64 128 256 512] [--loop-sizes 64 128 256]
[--solvers auto] [--criteria circle lure_postnikov] [--loop-criteria auto] [--loop-gain growing constant]
[--plain-max 64]``.

Two kinds of systems:

* ``lpgrnn``: a random LP-GRNN (small recurrent weights, z ∈ (0.2, 0.8)) on its own;
* ``loop``: the built-in boiler plant (docs/theory.md §6) with a saturated PI controller and a random LP-GRNN
  soft sensor of the given hidden size (a linear term from the measurement to the estimate, as in the bundled
  model), assembled by :func:`certify.loop.assemble.assemble`: poles next to 1 from the plant and the PI;
* ``loop-c`` (``--loop-gain constant``): the same loops with the sensor's input weights scaled by
  √(64/hidden) above 64 units, so that the loop's margin does not shrink with the size.

One row per (kind, hidden size, criterion, solver):

* ``build``/``setup``/``solve``/``valid.``: seconds in certify's SDP assembly, the conic compile / solver setup
  (CVXPY's compilation, or SCS's normalisation and factorisation on the direct path), the solver's
  iterations, and the float64 validation (with the Riccati polish when it runs), summed over the attempts of
  the fallback chain; ``vertex``: the vertex pre-check (up front only while cheap); ``total``: the whole
  ``check_lmi`` call (wall); ``cpu``: its process CPU seconds (the figure to compare on a shared machine);
* ``eig30``: 30 dense eigendecompositions (``eigh``: values and vectors, what a projection onto the PSD cone
  needs; about 3× ``eigvalsh``) of a matrix of the LMI's PSD order (the practical floor of a first-order SDP
  solve) and ``ratio`` = cpu / eig30;
* ``it/eig``: seconds per solver iteration ÷ one such eigendecomposition (how close each iteration is to the
  floor; the rest of ``ratio`` is the number of iterations);
* ``peakMB``: Python-side peak allocation during the check (tracemalloc; native solver memory not included);
* ``plain``: the same criterion written as a user would (congruence form ``G'PG − E'PE + …`` with ``P ⪰ I``,
  ``M ⪯ −1e-6 I``, default SCS/Clarabel settings), validated with the same float64 check: its CPU seconds,
  whether its certificate validated, and plain CPU / certify CPU (``-`` above ``--plain-max``).

The script uses only :func:`certify.criteria.lmi.check_lmi` and public helpers, so the same command run with
``PYTHONPATH`` pointing at another checkout of certify measures that version on the same systems.
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
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from certify.criteria.lmi import balance_lure, check_lmi, choose_lmi_solver, lure_system  # noqa: E402
from certify.criteria.validate import LMICertificate, lmi_structure, validate_certificate  # noqa: E402
from certify.networks import LinearHead, LPGRNNLayer, Network  # noqa: E402
from certify.snof import from_network  # noqa: E402
from certify.snof.transform import equilibrium  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def random_lpgrnn(hidden: int, n_in: int = 2, seed: int = 0, scale: float = 0.3) -> Network:
    """A random LP-GRNN with small recurrent weights (spectral norm ≈ ``scale``) and z ∈ (0.2, 0.8)."""
    rng = np.random.default_rng(seed)
    n = nr = hidden
    g = lambda *s: rng.normal(size=s) / np.sqrt(s[-1])  # noqa: E731
    layer = LPGRNNLayer(W_r=g(nr, n_in), U_r=scale * g(nr, n), b_r=0.1 * rng.normal(size=nr), W_h=g(n, n_in),
                        U_h=scale * g(n, n), V_h=scale * g(n, nr), b_h=0.1 * rng.normal(size=n),
                        z=rng.uniform(0.2, 0.8, n))
    return Network(layers=(layer,), head=LinearHead(W=g(1, n), b=np.zeros(1)))


def boiler_sensor(hidden: int, info, constant_gain: bool = False) -> Network:
    """A random small-weight LP-GRNN soft sensor with the bundled boiler model's signals (``info``) and a linear
    bypass, seeded by ``hidden`` (also used by tests/test_lmi_boiler.py).

    The input weights are N(0, 0.3²) whatever the size, so the gain from the measurements to the hidden state
    grows like √hidden and the loop's circle-criterion margin shrinks with the size.  ``constant_gain`` scales
    them by √(64/hidden) above 64 units (the same weights otherwise), which keeps that gain, and the margin,
    about constant: a family that tests the solver's scaling rather than the loop's certifiability."""
    rng = np.random.default_rng(hidden)
    n, nr = hidden, max(1, hidden // 2)
    s = 0.3 / np.sqrt(n)
    g = 0.3 * (min(1.0, np.sqrt(64.0 / n)) if constant_gain else 1.0)
    layer = LPGRNNLayer(rng.normal(size=(nr, 4)) * g, rng.normal(size=(nr, n)) * s, rng.normal(size=nr) * 0.1,
                        rng.normal(size=(n, 4)) * g, rng.normal(size=(n, n)) * s, rng.normal(size=(n, nr)) * s,
                        rng.normal(size=n) * 0.1, rng.uniform(0.3, 0.8, size=n))
    head = LinearHead(W=rng.normal(size=(1, n)) * 0.05 / np.sqrt(n), b=[-0.1], D=[[1.05, 0.05, -0.05, 0.0]])
    return Network((layer,), head=head, info=info)


def random_loop(hidden: int, constant_gain: bool = False):
    """The boiler loop (built-in plant, saturated PI) around :func:`boiler_sensor` of ``hidden`` states, scaled
    like the bundled model (as in ``benchmarks/loop_check.py``); returns the closed-loop SNOF."""
    from certify.importers import load_model
    from certify.loop.assemble import assemble
    from certify.loop.spec import default_loop

    info = load_model(ROOT / "models_zoo" / "boiler_lpgrnn_linear.onnx").info
    return assemble(boiler_sensor(hidden, info, constant_gain), default_loop("boiler")).form


def plain_cvxpy(sys, criterion: str, solver: str) -> tuple[float, bool]:
    """The LMI as a user would write it in CVXPY (congruence form, P ⪰ I, M ⪯ −1e-6 I); CPU seconds and
    whether the returned point passes certify's float64 validation."""
    import cvxpy as cp

    t0 = time.process_time()
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
        return time.process_time() - t0, False
    ok = False
    if P.value is not None:
        ok = validate_certificate(sys, LMICertificate(criterion, P.value, {k: v.value for k, v in t.items()})).ok
    return time.process_time() - t0, ok


def eig_floor(order: int, reps: int = 30) -> float:
    X = np.random.default_rng(0).normal(size=(order, order))
    X = X + X.T
    np.linalg.eigh(X)   # warm-up (LAPACK workspace, page faults)
    t0 = time.process_time()
    for _ in range(reps):
        np.linalg.eigh(X)
    return time.process_time() - t0


def row(kind: str, h: int, form, crit: str, solver: str, plain_max: int, timeout: float) -> str:
    tracemalloc.start()
    t0, c0 = time.perf_counter(), time.process_time()
    r = check_lmi(form, criterion=crit, solver=None if solver == "auto" else solver, timeout=timeout)
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    tried = r.quantities.get("criteria_tried", [])
    sm = lambda k, tried=tried: sum(float(a.get(k) or 0.0) for a in tried)  # noqa: E731
    iters = sum(int(a.get("iterations") or 0) for a in tried)
    order = r.quantities.get("lmi_order", 0) or 0
    e30 = eig_floor(order) if order else float("nan")   # CPU-bound, single thread: wall ≈ CPU when idle
    plain = "-"
    if h <= plain_max:
        sys0, _, _ = lure_system(form, equilibrium(form))
        sysb, _, _ = balance_lure(sys0)
        pcrit = r.criterion if crit == "auto" else crit
        # the plain transcription gets the backend certify's own SDP would use (SCS at these orders)
        ps, pok = plain_cvxpy(sysb, pcrit, choose_lmi_solver(sysb, pcrit).name)
        plain = f"{ps:.1f}s/{'ok' if pok else 'fail'}/{ps / cpu:.1f}x"
    rel = r.validation.get("relative_margin")
    return (f"{kind:>6} {h:>6} {form.n:>5} {form.m:>5} {str(r.criterion):>14} {str(r.solver):>8} {order:>6} "
            f"{sm('seconds_build'):>6.2f} {sm('seconds_compile'):>6.2f} {sm('seconds_solve'):>7.2f} "
            f"{sm('seconds_validate'):>6.2f} {float(r.quantities.get('seconds_vertex_check', 0.0)):>6.2f} "
            f"{total:>7.2f} {cpu:>7.2f} {iters:>6} {e30:>6.2f} {cpu / e30:>6.1f} "
            f"{(sm('seconds_solve') / max(iters, 1)) / (e30 / 30):>6.1f} {peak:>6.0f} "
            f"{r.status.value:>10} {'-' if rel is None else format(rel, '.1e'):>9} {plain:>18}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="*", default=[64, 128, 256, 512], help="LP-GRNN hidden sizes")
    ap.add_argument("--loop-sizes", type=int, nargs="*", default=[64, 128, 256], help="closed-loop hidden sizes")
    ap.add_argument("--solvers", nargs="*", default=["auto"])
    ap.add_argument("--criteria", nargs="*", default=["circle", "lure_postnikov"], help="for the LP-GRNNs")
    ap.add_argument("--loop-criteria", nargs="*", default=["auto"], help="for the closed loops")
    ap.add_argument("--loop-gain", nargs="*", choices=("growing", "constant"), default=["growing"],
                    help="sensor families for the closed loops: 'growing' (input weights N(0, 0.3²): the loop's "
                         "margin shrinks with the size; kind 'loop') and/or 'constant' (input weights scaled by "
                         "√(64/hidden) above 64 units; kind 'loop-c')")
    ap.add_argument("--plain-max", type=int, default=64, help="largest hidden size for the plain CVXPY column")
    ap.add_argument("--timeout", type=float, default=900.0)
    args = ap.parse_args()
    check_lmi(from_network(random_lpgrnn(4)), criterion="circle", solver="scs")   # warm-up: lazy imports …
    from certify.criteria.frequency import frequency_multipliers
    from certify.sdp.types import LureSystem

    frequency_multipliers(LureSystem(A=[[0.5]], B=[[-1.0]], C=[[1.0]], D=[[0.0]], K=[1.0]))  # … of its first try
    print(f"{'kind':>6} {'hidden':>6} {'n':>5} {'m':>5} {'criterion':>14} {'solver':>8} {'order':>6} {'build':>6} "
          f"{'setup':>6} {'solve':>7} {'valid.':>6} {'vertex':>6} {'total':>7} {'cpu':>7} {'iters':>6} {'eig30':>6} "
          f"{'ratio':>6} {'it/eig':>6} {'peakMB':>6} {'status':>10} {'relmargin':>9} {'plain s/ok/ratio':>18}", flush=True)
    for gain in args.loop_gain:
        for h in args.loop_sizes:
            form = random_loop(h, constant_gain=gain == "constant")
            for crit in args.loop_criteria:
                for solver in args.solvers:
                    print(row("loop" if gain == "growing" else "loop-c", h, form, crit, solver, args.plain_max,
                              args.timeout), flush=True)
    for h in args.sizes:
        form = from_network(random_lpgrnn(h))
        for crit in args.criteria:
            for solver in args.solvers:
                print(row("lpgrnn", h, form, crit, solver, args.plain_max, args.timeout), flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process peak RSS: {rss:.0f} MB (tracemalloc peaks above cover Python allocations only)")


if __name__ == "__main__":
    main()
