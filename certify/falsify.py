"""Counterexample search: witnesses that δISS / GAS (or ISS) of a network is false.

Three kinds of witness, all for a *constant* input ``u`` in the input range, all re-checked by a
fresh float64 evaluation of :meth:`certify.networks.Network.step` (:func:`recheck`):

``multiple_equilibria``
    two states with ``‖f(x*, u) − x*‖∞ ≤ 1e-9`` each, at distance ≫ residual and ≫ the Newton
    correction ``‖(I − J)⁻¹ (f(x*) − x*)‖∞`` (so an exact equilibrium lies next to each).  Two
    constant trajectories that never approach: δISS and GAS are false.
``limit_cycle``
    a state with ``‖f^p(x*) − x*‖∞ ≤ 1e-9`` and ``‖f(x*) − x*‖∞`` ≫ that residual: the trajectories
    from ``x*`` and ``f(x*)`` never approach (δISS and GAS false).
``divergence``
    (only for layers whose states can grow: SS-NN, affine cells, relu Elman, LP-GRNN with |z| ≥ 1) a
    trajectory whose ∞-norm grows by ≥ 1e6 and keeps growing over the second half of the run (ISS and
    GAS false).  This witness is numerical evidence from a re-simulated run, not a proof.

The search is vectorised over many starts (batched ``Network.step``), deterministic for a seed, and
bounded by ``budget_seconds``.  Witness data are JSON lists so anyone can re-simulate them.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from certify.errors import InvalidInputError
from certify.networks import (
    AffineCell,
    ElmanLayer,
    InputRange,
    LPGRNNLayer,
    LSTMLayer,
    Network,
    StateSpaceLayer,
)
from certify.results import CheckResult, CheckStatus, Counterexample, Property

EQ_RESIDUAL = 1e-9  # fixed-point residual a witness must reach (‖f(x,u) − x‖∞)
MIN_DISTANCE = 1e-6  # and the smallest distance between two witnesses / orbit points
SEPARATION = 1e3  # distance must exceed SEPARATION × (residual + Newton correction)
GROWTH = 1e6  # divergence: ‖x_T‖∞ ≥ GROWTH · max(1, ‖x_0‖∞)


def _f(net: Network, x: np.ndarray, u: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):  # diverging runs overflow on purpose
        return net.step(x, np.broadcast_to(u, x.shape[:-1] + u.shape))[0]


def _can_grow(net: Network) -> bool:
    for layer in net.layers:
        if isinstance(layer, (StateSpaceLayer, AffineCell)):
            return True
        if isinstance(layer, ElmanLayer) and layer.activation == "relu":
            return True
        if isinstance(layer, LPGRNNLayer) and np.any(np.abs(layer.z) >= 1.0):
            return True
    return False


def _state_scale(net: Network) -> np.ndarray:
    parts = []
    for layer in net.layers:
        if isinstance(layer, LSTMLayer):
            parts.append(np.concatenate([np.ones(layer.hidden), np.full(layer.hidden, 3.0)]))
        elif isinstance(layer, (StateSpaceLayer, AffineCell)) or (
            isinstance(layer, ElmanLayer) and layer.activation == "relu"
        ):
            parts.append(np.full(layer.n_state, 3.0))
        else:
            parts.append(np.ones(layer.n_state))
    return np.concatenate(parts)


def _jacobian(net: Network, x: np.ndarray, u: np.ndarray, p: int = 1) -> np.ndarray:
    """Central finite-difference Jacobian of ``f^p`` at ``x`` (one batched evaluation)."""
    n = x.size
    h = 1e-6 * max(1.0, float(np.abs(x).max()))
    X = np.concatenate([x + h * np.eye(n), x - h * np.eye(n)])
    for _ in range(p):
        X = _f(net, X, u)
    return (X[:n] - X[n:]).T / (2 * h)


def _iterate(net: Network, x: np.ndarray, u: np.ndarray, p: int) -> np.ndarray:
    for _ in range(p):
        x = _f(net, x, u)
    return x


def _newton(net: Network, x: np.ndarray, u: np.ndarray, p: int = 1, iters: int = 30) -> np.ndarray:
    """Newton on ``F(x) = f^p(x) − x`` with a finite-difference Jacobian (small n only)."""
    n = x.size
    for _ in range(iters):
        F = _iterate(net, x, u, p) - x
        if not np.all(np.isfinite(F)):
            break
        if float(np.abs(F).max()) <= 1e-13 * max(1.0, float(np.abs(x).max())):
            break
        J = _jacobian(net, x, u, p) - np.eye(n)
        try:
            dx = np.linalg.lstsq(J, -F, rcond=None)[0]
        except np.linalg.LinAlgError:
            break
        x = x + dx
    return x


def _newton_correction(net: Network, x: np.ndarray, u: np.ndarray, p: int = 1) -> float:
    F = _iterate(net, x, u, p) - x
    J = _jacobian(net, x, u, p) - np.eye(x.size)
    try:
        return float(np.abs(np.linalg.solve(J, F)).max())
    except np.linalg.LinAlgError:
        return math.inf


def _inputs(rng_box: InputRange, rng: np.random.Generator, k: int) -> list[np.ndarray]:
    lo, hi = rng_box.low, rng_box.high
    out = [rng_box.center, lo.copy(), hi.copy()]
    out += [lo + (hi - lo) * rng.random(lo.shape) for _ in range(max(0, k - 3))]
    return out[:k]


def _equilibria_witness(net: Network, u: np.ndarray, cands: list[np.ndarray]) -> Counterexample | None:
    found: list[tuple[np.ndarray, float, float]] = []
    for x in cands:
        x = _newton(net, x, u) if x.size <= 200 else x
        res = float(np.abs(_f(net, x, u) - x).max())
        if not (math.isfinite(res) and res <= EQ_RESIDUAL):
            continue
        corr = _newton_correction(net, x, u) if x.size <= 200 else res
        if any(float(np.abs(x - y).max()) <= MIN_DISTANCE for y, _, _ in found):
            continue
        found.append((x, res, corr))
        for y, r2, c2 in found[:-1]:
            d = float(np.abs(x - y).max())
            if d >= max(MIN_DISTANCE, SEPARATION * (max(res, r2) + max(corr, c2))):
                return Counterexample(
                    kind="multiple_equilibria",
                    description=(f"two distinct equilibria for the same constant input (distance {d:.3g}, "
                                 f"residuals {res:.2g}, {r2:.2g}): trajectories from them never approach."),
                    data={"u": u.tolist(), "x_a": y.tolist(), "x_b": x.tolist(), "distance": d,
                          "residual_a": r2, "residual_b": res, "newton_correction": max(corr, c2),
                          "disproves": ["delta_iss", "gas"]},
                    residual=max(res, r2),
                )
    return None


def _cycle_witness(net: Network, u: np.ndarray, x: np.ndarray, max_period: int) -> Counterexample | None:
    traj = [x]
    for _ in range(max_period):
        traj.append(_f(net, traj[-1], u))
    scale = max(1.0, float(np.abs(x).max()))
    for p in range(2, max_period + 1):
        if float(np.abs(traj[p] - x).max()) > 1e-5 * scale:
            continue
        xs = _newton(net, x, u, p) if x.size <= 100 else x
        res = float(np.abs(_iterate(net, xs, u, p) - xs).max())
        step = float(np.abs(_f(net, xs, u) - xs).max())
        corr = _newton_correction(net, xs, u, p) if x.size <= 100 else res
        if res <= EQ_RESIDUAL and step >= max(MIN_DISTANCE, SEPARATION * (res + corr)):
            return Counterexample(
                kind="limit_cycle",
                description=(f"a periodic orbit of period {p} under a constant input (‖f(x)−x‖∞ = {step:.3g}, "
                             f"period residual {res:.2g}): trajectories from x and f(x) never approach."),
                data={"u": u.tolist(), "x0": xs.tolist(), "period": p, "step_distance": step,
                      "newton_correction": corr, "disproves": ["delta_iss", "gas"]},
                residual=res,
            )
    return None


def falsify(
    net: Network,
    *,
    input_range: InputRange | None = None,
    seed: int = 0,
    budget_seconds: float = 2.0,
    n_starts: int = 64,
    n_inputs: int = 6,
    horizon: int = 300,
    max_period: int = 24,
) -> Counterexample | None:
    """Search for a witness that δISS / GAS (or ISS) is false; ``None`` when none was found.

    Parameters
    ----------
    net : Network
        The network.
    input_range : InputRange or None
        Constant inputs are drawn from it (default: ``net.info.input_range``, else ``[−1, 1]``).
    seed : int
        Seed of the deterministic search.
    budget_seconds : float
        Soft wall-clock budget.
    n_starts, n_inputs, horizon, max_period : int
        Starts per input, constant inputs tried, fixed-point iterations, longest period looked for.

    >>> from certify.networks import ElmanLayer
    >>> bistable = Network(layers=(ElmanLayer(W=[[0.0]], U=[[2.0]], b=[0.0]),))
    >>> cex = falsify(bistable)
    >>> cex.kind, recheck(bistable, cex)
    ('multiple_equilibria', True)
    """
    from certify.criteria.diss import resolve_input_range

    box, _ = resolve_input_range(net, input_range)
    rng = np.random.default_rng(seed)
    t_end = time.perf_counter() + budget_seconds
    n = net.n_states
    scale = _state_scale(net)
    grow = _can_grow(net)
    for u in _inputs(box, rng, n_inputs):
        if time.perf_counter() > t_end:
            break
        X0 = (2.0 * rng.random((n_starts, n)) - 1.0) * scale
        X0[0] = 0.0
        X = X0.copy()
        for k in range(horizon):
            t_step = time.perf_counter()
            X = _f(net, X, u)
            if k == 0 and time.perf_counter() - t_step > budget_seconds / 20 and X.shape[0] > 8:
                X0, X = X0[:8], X[:8]  # large network: fewer starts, so that the budget buys iterations
            if time.perf_counter() > t_end:
                break
        finite = np.all(np.isfinite(X), axis=1) & (np.abs(X).max(axis=1) < 1e12)
        if grow:
            cex = _divergence(net, u, X0, X, finite, horizon)
            if cex is not None:
                return cex
        Xf = X[finite]
        if Xf.shape[0] == 0:
            continue
        step = np.abs(_f(net, Xf, u) - Xf).max(axis=1)
        order = np.argsort(step)
        # candidates: converged rows first (distinct), then a few non-converged ones for Newton
        cands: list[np.ndarray] = []
        for i in order:
            if all(float(np.abs(Xf[i] - c).max()) > 1e-4 for c in cands):
                cands.append(Xf[i])
            if len(cands) >= 8:
                break
        cex = _equilibria_witness(net, u, cands)
        if cex is not None:
            return cex
        if time.perf_counter() > t_end:
            break
        for i in order[::-1][:3]:
            if step[i] > 1e-6 and time.perf_counter() < t_end:
                cex = _cycle_witness(net, u, Xf[i], max_period)
                if cex is not None:
                    return cex
        if time.perf_counter() > t_end:
            break
    return None


def _divergence(net: Network, u: np.ndarray, X0: np.ndarray, X: np.ndarray, finite: np.ndarray,
                horizon: int) -> Counterexample | None:
    norms0 = np.maximum(1.0, np.abs(X0).max(axis=1))
    big = ~finite | (np.abs(np.where(np.isfinite(X), X, np.inf)).max(axis=1) >= GROWTH * norms0)
    for i in np.flatnonzero(big)[:4]:
        x0 = X0[i]
        # shortest run that reaches the growth factor while staying finite
        x, norms = x0.copy(), []
        for _ in range(horizon):
            x = _f(net, x, u)
            nrm = float(np.abs(x).max())
            if not math.isfinite(nrm):
                break
            norms.append(nrm)
            if nrm >= GROWTH * norms0[i] and len(norms) >= 4:
                data = {"u": u.tolist(), "x0": x0.tolist(), "steps": len(norms), "final_norm": nrm,
                        "disproves": ["iss", "gas"], "rigorous": False}
                cex = Counterexample(
                    kind="divergence",
                    description=(f"under a constant input the state grows from ‖x0‖∞ = {norms0[i]:.3g} to "
                                 f"{nrm:.3g} in {len(norms)} steps, still growing (numerical evidence)."),
                    data=data, residual=float(norms0[i] / nrm),
                )
                if recheck(net, cex):
                    return cex
                break
    return None


def recheck(net: Network, cex: Counterexample, *, input_range: InputRange | None = None) -> bool:
    """Re-verify a witness independently by fresh float64 evaluations of ``Network.step``.

    The constant input must lie in ``input_range`` (default: the network's declared range; no range
    check when none is declared).

    >>> from certify.networks import ElmanLayer
    >>> net = Network(layers=(ElmanLayer(W=[[0.0]], U=[[0.5]], b=[0.0]),))
    >>> recheck(net, Counterexample("multiple_equilibria", "fake", {"u": [0.0], "x_a": [0.0], "x_b": [0.5]}))
    False
    """
    d = cex.data
    try:
        u = np.asarray(d["u"], dtype=np.float64)
        box = input_range if input_range is not None else net.info.input_range
        if u.shape != (net.n_inputs,) or (
            box is not None and not (np.all(u >= box.low - 1e-12) and np.all(u <= box.high + 1e-12))
        ):
            return False
        if cex.kind == "multiple_equilibria":
            xa, xb = np.asarray(d["x_a"], dtype=np.float64), np.asarray(d["x_b"], dtype=np.float64)
            ra = float(np.abs(_f(net, xa, u) - xa).max())
            rb = float(np.abs(_f(net, xb, u) - xb).max())
            dist = float(np.abs(xa - xb).max())
            corr = max(_newton_correction(net, xa, u), _newton_correction(net, xb, u)) if xa.size <= 200 else 0.0
            return max(ra, rb) <= EQ_RESIDUAL and dist >= max(MIN_DISTANCE, SEPARATION * (max(ra, rb) + corr))
        if cex.kind == "limit_cycle":
            x0, p = np.asarray(d["x0"], dtype=np.float64), int(d["period"])
            res = float(np.abs(_iterate(net, x0, u, p) - x0).max())
            step = float(np.abs(_f(net, x0, u) - x0).max())
            corr = _newton_correction(net, x0, u, p) if x0.size <= 100 else 0.0
            return p >= 2 and res <= EQ_RESIDUAL and step >= max(MIN_DISTANCE, SEPARATION * (res + corr))
        if cex.kind == "divergence":
            x = np.asarray(d["x0"], dtype=np.float64)
            n0 = max(1.0, float(np.abs(x).max()))
            steps = int(d["steps"])
            norms = []
            for _ in range(steps):
                x = _f(net, x, u)
                norms.append(float(np.abs(x).max()))
            if not all(math.isfinite(v) for v in norms):
                return False
            half = norms[steps // 2:]
            return norms[-1] >= GROWTH * n0 and all(b > a for a, b in zip(half, half[1:]))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"malformed counterexample data: {exc}") from None
    return False


def falsification_check(
    net: Network, cex: Counterexample, prop: Property, *, accept_numerical: bool = False
) -> CheckResult:
    """Model-level DISPROVED check from a witness (re-checked here; NOT_PROVED if the re-check fails).

    Witnesses marked ``data["rigorous"] = False`` (numerical divergence) give NOT_PROVED with the
    evidence in the message unless ``accept_numerical`` is set: they are re-simulated, not proofs.

    >>> from certify.networks import ElmanLayer
    >>> net = Network(layers=(ElmanLayer(W=[[0.0]], U=[[2.0]], b=[0.0]),))
    >>> falsification_check(net, falsify(net), Property.GAS).status.value
    'disproved'
    """
    disproves = list(cex.data.get("disproves", []))
    if prop.value not in disproves:
        raise InvalidInputError(f"a {cex.kind} witness does not disprove {prop.value} (it disproves {disproves}).")
    t0 = time.perf_counter()
    ok = recheck(net, cex)
    q: dict[str, Any] = {"kind": cex.kind, "residual": cex.residual, "rechecked": ok}
    if ok and not cex.data.get("rigorous", True) and not accept_numerical:
        return CheckResult(
            name=f"falsify.{prop.value}", property=prop, status=CheckStatus.NOT_PROVED, criterion="falsification",
            message=f"numerical evidence only (not a proof), {prop.value} is probably false: {cex.description}",
            quantities=q, seconds=time.perf_counter() - t0, scope="model",
        )
    if ok:
        return CheckResult(
            name=f"falsify.{prop.value}", property=prop, status=CheckStatus.DISPROVED, criterion="falsification",
            message=f"{prop.value} is false: {cex.description}", margin=None, quantities=q,
            seconds=time.perf_counter() - t0, counterexample=cex, scope="model",
        )
    return CheckResult(
        name=f"falsify.{prop.value}", property=prop, status=CheckStatus.NOT_PROVED, criterion="falsification",
        message=f"the {cex.kind} witness did not survive the independent re-check; nothing is concluded.",
        quantities=q, seconds=time.perf_counter() - t0, scope="model",
    )
