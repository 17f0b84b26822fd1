"""Time the closed-form ISS / δISS residuals on 3-layer, 1024-unit GRU and LSTM stacks.

Run:  OPENBLAS_NUM_THREADS=1 python benchmarks/diss_residuals.py [--hidden 1024] [--layers 3] [--repeat 3]

(On a busy 2-core machine OpenBLAS's threads fight other processes and a 1024² matrix-vector product
can take 50× longer; one BLAS thread gives stable figures.  Measured that way on the 2-core dev box:
GRU 0.03 s, LSTM 0.04 s when the ∞-norm test passes, 1.8 s with all twelve spectral norms.)

Weights are random, scaled so that the row sums (∞-norms) are O(1): some layers pass, some not.
The LSTM rows show the cost of the spectral-norm (2-norm) variant: ``auto`` computes it only when the
∞-norm test fails (or the layer is small), ``full`` always (one λ_max(UᵀU) per recurrent matrix).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from certify.criteria.diss import check_diss  # noqa: E402
from certify.networks import GRULayer, InputRange, LSTMLayer, Network  # noqa: E402


def gru_stack(H: int, m: int, n_layers: int, reset_after: bool, rng: np.random.Generator, c: float) -> Network:
    layers = []
    for i in range(n_layers):
        n_in = m if i == 0 else H
        W = [rng.uniform(-c / n_in, c / n_in, size=(H, n_in)) for _ in range(3)]
        U = [rng.uniform(-c / H, c / H, size=(H, H)) for _ in range(3)]
        b = [rng.uniform(-0.1, 0.1, size=H) for _ in range(4)]
        layers.append(GRULayer(*W, *U, *b, reset_after))
    return Network(layers=tuple(layers))


def lstm_stack(H: int, m: int, n_layers: int, rng: np.random.Generator, c: float) -> Network:
    layers = []
    for i in range(n_layers):
        n_in = m if i == 0 else H
        W = [rng.uniform(-c / n_in, c / n_in, size=(H, n_in)) for _ in range(4)]
        U = [rng.uniform(-c / H, c / H, size=(H, H)) for _ in range(4)]
        b = [rng.uniform(-0.1, 0.1, size=H) for _ in range(4)]
        layers.append(LSTMLayer(*W, *U, *b))
    return Network(layers=tuple(layers))


def timed(net: Network, repeat: int, **kw) -> tuple[float, list]:
    times, checks = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        checks = check_diss(net, input_range=InputRange.symmetric(net.n_inputs), **kw)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), checks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--inputs", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    H, L, m = args.hidden, args.layers, args.inputs
    rng = np.random.default_rng(0)
    cases = [
        ("GRU (Bonassi, lbr=0)", gru_stack(H, m, L, False, rng, 1.0), {}),
        ("GRU (PyTorch, lbr=1)", gru_stack(H, m, L, True, rng, 1.0), {}),
        ("LSTM, ∞-norm passes, auto", lstm_stack(H, m, L, rng, 0.5), {}),
        ("LSTM, ∞-norm passes, full 2-norm", lstm_stack(H, m, L, rng, 0.5), {"full_2norm": True}),
        ("LSTM, ∞-norm fails, auto", lstm_stack(H, m, L, rng, 4.0), {}),
    ]
    print(f"{L} layers x {H} units, {m} inputs, median of {args.repeat} runs\n")
    print(f"{'model':36s} {'seconds':>8s} {'worst ν_ISS':>12s} {'worst ν_δISS':>13s}  δISS    norms (layer 0)")
    for name, net, kw in cases:
        secs, checks = timed(net, 1 if kw else args.repeat, **kw)
        by = {c.name: c for c in checks}
        iss, d = by["diss.iss"], by["diss.delta_iss"]
        norms = by["diss.delta_iss.layer0"].quantities.get("norms_computed", ["inf"])
        fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
        print(f"{name:36s} {secs:8.4f} {fmt(iss.margin):>12s} {fmt(d.margin):>13s}  {d.status.value:7s} {norms}")
    print("\nper-layer residuals of the PyTorch GRU:")
    _, checks = timed(cases[1][1], 1)
    for c in checks:
        if c.scope != "model":
            q = c.quantities
            print(f"  {c.scope:7s} {c.property.value:9s} ν = {c.margin:+.4f}  rate = {q.get('contraction_rate', 0):.4f}"
                  f"  σ̄_z = {q['sigma_bar_z']:.4f}  σ̄_r = {q['sigma_bar_r']:.4f}  φ̄ = {q['phi_bar']:.4f}")


if __name__ == "__main__":
    main()
