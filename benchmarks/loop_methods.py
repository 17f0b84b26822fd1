"""Which method certifies which trained soft-sensor loop, how long it takes, and whether the loop simulates stable.

Run: ``python benchmarks/loop_methods.py [--epochs 40] [--quick]``.  Needs torch (``certify[torch]``).

A two-state process (a primary temperature that is not measured, a secondary one that is) is simulated by
this script; soft sensors estimate the primary output from the secondary output and the previous actuator
value, and a saturated velocity PI drives the actuator so that the estimate tracks a set-point.  Networks
trained on the simulated data (GRU and LSTM, hidden 4–32, with a linear bypass; Elman with a bypass; plain
LP-GRNN) are put in that loop and checked with ``certify.check``.  One row per model:

* ``fit``: validation FIT (%) of the soft sensor on held-out simulated data;
* ``method``: the check that decided (``loop.gas`` global slope class, ``loop.gas.absorbing`` tightened
  slopes, ``loop.gas.contraction`` for gated networks, ``loop.region`` regional only, or ``-``);
* ``verdict`` and ``seconds`` of the whole check;
* ``sim``: ``stable`` when 100 simulations from random far starts (real saturation) all reach one point.

A certified loop that does not simulate stable would be a soundness bug; the table makes it visible.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

A = np.array([[0.92, 0.06], [0.04, 0.88]])
B = np.array([[0.08], [0.06]])
U_MIN, U_MAX = 0.0, 1.0


def simulate_process(T: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``[y_secondary(k), u(k−1)]`` and target ``y_primary(k)`` under random actuator steps."""
    rng = np.random.default_rng(seed)
    u = np.repeat(rng.uniform(U_MIN, U_MAX, T // 20 + 1), 20)[:T]
    x = np.zeros(2)
    X = np.empty((T, 2))
    for k in range(T):
        X[k] = x
        x = A @ x + B[:, 0] * u[k]
    u_prev = np.concatenate([[0.0], u[:-1]])
    return np.column_stack([X[:, 1], u_prev]), X[:, :1]


def loop_spec(reference: float = 0.6):
    from certify.loop.build import make_loop

    plant = {"A": A.tolist(), "B": B.tolist(), "C": [[1.0, 0.0], [0.0, 1.0]], "D": [[0.0], [0.0]], "Ts": 1.0,
             "u_min": [U_MIN], "u_max": [U_MAX], "output_names": ["primary", "secondary"], "input_names": ["heat"]}
    return make_loop(plant, inputs=["y:secondary", "u_prev:heat"], kp=0.5, ki=0.3, reference=reference,
                     estimates="primary")


def train_models(epochs: int, quick: bool) -> list[tuple[str, object, float]]:
    import torch

    from certify.train.modules import ElmanNet, GRUNet, LPGRNNNet, LSTMNet, to_canonical
    from certify.train.trainer import TrainConfig, train

    torch.set_num_threads(1)
    u, y = simulate_process(3000, 0)
    uv, yv = simulate_process(1000, 1)
    specs = [("gru", 4), ("gru", 8), ("gru", 16), ("gru", 32), ("lstm", 4), ("lstm", 8), ("lstm", 16),
             ("elman+bypass", 8), ("elman+bypass", 16), ("lpgrnn", 8), ("lpgrnn", 16)]
    if quick:
        specs = [("gru", 4), ("lstm", 4), ("elman+bypass", 8)]
    out = []
    for kind, H in specs:
        torch.manual_seed(0)
        if kind == "gru":
            mod = GRUNet(2, H, n_out=1).add_bypass()
        elif kind == "lstm":
            mod = LSTMNet(2, H, n_out=1).add_bypass()
        elif kind == "elman+bypass":
            mod = ElmanNet(2, H, n_out=1).add_bypass()
        else:
            mod = LPGRNNNet(2, H, gate=H, n_out=1)
        res = train(mod, u, y, uv, yv, TrainConfig(epochs=epochs, require_certified=False, progress=False))
        best = max((r.val_fit for r in res.history if r.epoch == res.best_epoch), default=float("nan"))
        out.append((f"{kind} {H}", to_canonical(mod), best))
    return out


def simulate_stable(report_loop, net, spec, starts: int = 100, steps: int = 4000) -> str:
    """``stable`` if all far starts reach one point (to 1e-6), else ``not stable``."""
    from certify.loop.assemble import assemble
    from certify.loop.gated import gated_loop

    rng = np.random.default_rng(11)
    gated = any(layer.kind in ("gru", "lstm") for layer in net.layers)
    n = 2 + net.n_states + 2
    x = rng.uniform(-1, 1, size=(starts, n)) * np.r_[[5.0, 5.0], [2.0] * net.n_states, 1.0, 5.0]
    if gated:
        gl = gated_loop(net, spec)
        for _ in range(steps):
            x = gl.step(x)
    else:
        form = assemble(net, spec).form
        x = form.simulate(np.zeros((steps, starts, form.n_w)), x).x[-1]
    spread = float(np.max(np.ptp(x, axis=0)))
    return "stable" if spread < 1e-6 else f"not stable ({spread:.2g})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--quick", action="store_true", help="three small models only")
    args = ap.parse_args()
    import certify

    spec = loop_spec()
    models = train_models(args.epochs, args.quick)
    print(f"{'model':<18}{'fit %':>8}  {'method':<22}{'verdict':<15}{'seconds':>8}  sim")
    for name, net, fit in models:
        t0 = time.perf_counter()
        rep = certify.check(net, loop=spec)
        secs = time.perf_counter() - t0
        proved = [c.name for c in rep.checks if c.status.value == "proved"]
        method = proved[0] if proved else "-"
        sim = simulate_stable(None, net, spec)
        print(f"{name:<18}{fit:>8.1f}  {method:<22}{rep.verdict.value:<15}{secs:>8.2f}  {sim}", flush=True)


if __name__ == "__main__":
    main()
