"""Counterexample search + interval proof: time per model, proof time per witness, seed robustness.

Run:  OPENBLAS_NUM_THREADS=1 python benchmarks/falsify.py [--seeds 10]

Networks (random weights, fixed seeds, scaled so that they have several equilibria or orbits): GRU
3×64, LSTM 2×64, Elman 128, plus the boiler loop with the plain LP-GRNN (no witness exists: the
search's full cost) and a saturated high-gain PI loop that oscillates.  For each: the verdict of the
search with seed 0, its total wall time and CPU time (``time.process_time``: less sensitive to other work
on the machine; with ``OPENBLAS_NUM_THREADS=1`` the two agree on an idle machine), the time spent in
Krawczyk proofs, the re-check time of the stored proof (``verify_witness``), how many of ``--seeds``
seeds give a proved witness, and the CPU time of those seeded searches together.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from certify.falsify import search
from certify.networks import ElmanLayer, GRULayer, LinearHead, LSTMLayer, Network
from certify.witness.proofs import verify_witness


def _g(rng, scale, *s):
    return rng.normal(size=s) * scale / np.sqrt(s[-1])


def gru_stack(layers: int, H: int, self_gain: float, seed: int, scale: float = 0.5) -> Network:
    """Candidate weights ``U_n = self_gain·I + noise``: self-excited units, several equilibria when
    ``self_gain > 1`` (a random-weight GRU this size is usually contracting or chaotic instead)."""
    rng = np.random.default_rng(seed)
    out, m = [], 2
    for _ in range(layers):
        U_n = self_gain * np.eye(H) + _g(rng, scale, H, H)
        out.append(GRULayer(_g(rng, 1.0, H, m), _g(rng, 1.0, H, m), _g(rng, 1.0, H, m), _g(rng, scale, H, H),
                            _g(rng, scale, H, H), U_n, *(rng.normal(size=H) * 0.1 for _ in range(4))))
        m = H
    return Network(layers=tuple(out))


def lstm_stack(layers: int, H: int, self_gain: float, seed: int, scale: float = 0.5) -> Network:
    rng = np.random.default_rng(seed)
    out, m = [], 2
    for _ in range(layers):
        U = [_g(rng, scale, H, H) for _ in range(4)]
        U[2] = U[2] + self_gain * np.eye(H)  # candidate gate g
        b = [rng.normal(size=H) * 0.1 for _ in range(4)]
        b[1] = b[1] + 2.0  # forget gates mostly open
        out.append(LSTMLayer(*(_g(rng, 1.0, H, m) for _ in range(4)), *U, *b))
        m = H
    return Network(layers=tuple(out))


def elman(H: int, self_gain: float, seed: int, scale: float = 0.5) -> Network:
    rng = np.random.default_rng(seed)
    return Network(layers=(ElmanLayer(W=_g(rng, 1.0, H, 2), U=self_gain * np.eye(H) + _g(rng, scale, H, H),
                                      b=rng.normal(size=H) * 0.1),))


def loops():
    from certify.importers import load_model
    from certify.loop.assemble import assemble
    from certify.loop.check import resolve_loop
    from certify.loop.spec import loop_from_mapping

    out = []
    spec = resolve_loop("boiler", None)
    net = load_model("models_zoo/boiler_lpgrnn_plain.onnx")
    out.append(("boiler loop, plain LP-GRNN", assemble(net, spec), spec))
    body = {"plant": {"A": [[0.9, 0.1], [0.0, 0.0]], "B": [[0.0], [1.0]], "C": [[1.0, 0.0]], "Ts": 0.5,
                      "u_min": [-1.0], "u_max": [1.0], "input_names": ["u"], "output_names": ["y"]},
            "network": {"inputs": ["y:y"]},
            "controller": {"kp": 50.0, "ki": 20.0, "actuator": "u", "reference": 0.3}}
    spec = loop_from_mapping(body)
    net = Network((ElmanLayer(W=[[0.1]], U=[[0.2]], b=[0.0]),), head=LinearHead(W=[[0.05]], b=[0.0], D=[[1.0]]))
    out.append(("relay-like PI loop", assemble(net, spec), spec))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args()
    t0 = time.perf_counter()  # one-off costs (importing python-flint, first ball evaluations), reported apart
    search(elman(2, 2.5, 0), seed=0)
    warmup = time.perf_counter() - t0
    rows = []
    nets = [("GRU 3x64 (self-excited)", gru_stack(3, 64, 3.0, 1)),
            ("LSTM 2x64 (self-excited)", lstm_stack(2, 64, 4.0, 2)),
            ("Elman 128 (self-excited)", elman(128, 2.5, 3)),
            ("GRU 3x64 (random, contracting)", gru_stack(3, 64, 0.0, 4))]
    for name, net in nets:
        t0, c0 = time.perf_counter(), time.process_time()
        out = search(net, seed=0)
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
        cex = out.counterexample
        recheck = float("nan")
        if cex is not None and "proof" in cex.data:
            t1 = time.perf_counter()
            assert verify_witness(net, cex.data["proof"]).proved
            recheck = time.perf_counter() - t1
        c1 = time.process_time()
        hits = sum(search(net, seed=s).counterexample is not None for s in range(args.seeds))
        rows.append((name, net.n_states, None if cex is None else cex.kind, total, cpu, out.proof_seconds, recheck,
                     out.evaluations, f"{hits}/{args.seeds}", time.process_time() - c1))
    from certify.loop.refute import refute_loop
    from certify.witness.systems import SNOFSystem

    for name, cl, spec in loops():
        t0, c0 = time.perf_counter(), time.process_time()
        out = refute_loop(cl, spec)
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
        cex = out.counterexample
        recheck = float("nan")
        if cex is not None:
            t1 = time.perf_counter()
            assert verify_witness(SNOFSystem(cl.form), cex.data["proof"]).proved
            recheck = time.perf_counter() - t1
        c1 = time.process_time()
        hits = sum(refute_loop(cl, spec, seed=s).counterexample is not None for s in range(args.seeds))
        rows.append((name, cl.form.n, None if cex is None else cex.kind, total, cpu, out.proof_seconds, recheck,
                     out.evaluations, f"{hits}/{args.seeds}", time.process_time() - c1))
    print(f"{'system':32} {'states':>6} {'witness (seed 0)':20} {'search+proof s':>14} {'cpu s':>7} {'proof s':>8} "
          f"{'re-check s':>10} {'evaluations':>11} {'seeds with witness':>18} {'seeds cpu s':>11}")
    for name, n, kind, total, cpu, proof, rc, ev, hits, seeds_cpu in rows:
        print(f"{name:32} {n:6d} {str(kind):20} {total:14.2f} {cpu:7.2f} {proof:8.3f} {rc:10.3f} {ev:11d} {hits:>18} "
              f"{seeds_cpu:11.2f}")
    print(f"(one-off warm-up before the table: {warmup:.2f} s, mostly importing python-flint)")


if __name__ == "__main__":
    main()
