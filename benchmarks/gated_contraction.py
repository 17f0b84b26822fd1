"""How often the contraction check certifies loops around random GRU/LSTM soft sensors, and how long it takes.

Run: ``python benchmarks/gated_contraction.py [--seeds 6]``.  One row per (kind, hidden size, weight scale):
``proved``/``seeds``, the median seconds of ``check_contraction``, and the median spectral radius of the
worst member of the Jacobian set found at its interval ends (``ρ_lft``; ≥ 1 means no contraction certificate
can exist for that set) next to the worst real Jacobian sampled in the box (``ρ_real``).

The loop: first-order plant ``x⁺ = 0.8 x + 0.2 u``, ``u ∈ [−1, 1]``, a velocity PI (kp 0.3, ki 0.5); the
network reads ``y`` and ``u(k−1)``; its head has a linear bypass 0.8·y (a linear path from the measurement).
Weights are ``scale·N(0, 1)``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

PLANT = {"A": [[0.8]], "B": [[0.2]], "C": [[1.0]], "D": [[0.0]], "u_min": [-1.0], "u_max": [1.0], "Ts": 1.0}


def network(kind: str, H: int, scale: float, seed: int):
    from certify.networks import GRULayer, LinearHead, LSTMLayer, Network

    rng = np.random.default_rng(seed)
    m = 2
    g = lambda *s: scale * rng.normal(size=s)  # noqa: E731
    if kind == "gru":
        layer = GRULayer(W_z=g(H, m), W_r=g(H, m), W_n=g(H, m), U_z=g(H, H), U_r=g(H, H), U_n=g(H, H), b_z=g(H),
                         b_r=g(H), b_in=g(H), b_hn=g(H), reset_after=seed % 2 == 0)
    else:
        layer = LSTMLayer(W_i=g(H, m), W_f=g(H, m), W_g=g(H, m), W_o=g(H, m), U_i=g(H, H), U_f=g(H, H),
                          U_g=g(H, H), U_o=g(H, H), b_i=g(H), b_f=g(H), b_g=g(H), b_o=g(H))
    return Network((layer,), head=LinearHead(W=0.3 * rng.normal(size=(1, H)) / np.sqrt(H), b=[0.0],
                                             D=[[0.8, 0.0]]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=6)
    args = ap.parse_args()
    from certify.loop.build import make_loop
    from certify.loop.contraction import check_contraction

    spec = make_loop(PLANT, inputs=["y:y0", "u_prev:u0"], kp=0.3, ki=0.5, reference=0.2)
    print(f"{'kind':<6}{'H':>4}{'scale':>7}{'proved':>9}{'median s':>10}{'ρ_lft':>8}{'ρ_real':>8}")
    for kind, H, scale in [("gru", 4, 0.15), ("gru", 4, 0.25), ("gru", 8, 0.15), ("gru", 16, 0.15),
                           ("lstm", 4, 0.15), ("lstm", 4, 0.25), ("lstm", 8, 0.15)]:
        proved, secs, lft, real = 0, [], [], []
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            res = check_contraction(network(kind, H, scale, seed), spec)
            secs.append(time.perf_counter() - t0)
            proved += res.proved
            nec = res.quantities.get("necessary_condition", {})
            lft.append(nec.get("max_spectral_radius_lft_vertices", float("nan")))
            real.append(nec.get("max_spectral_radius_sampled", float("nan")))
        print(f"{kind:<6}{H:>4}{scale:>7.2f}{f'{proved}/{args.seeds}':>9}{statistics.median(secs):>10.2f}"
              f"{statistics.median(lft):>8.3f}{statistics.median(real):>8.3f}", flush=True)


if __name__ == "__main__":
    main()
