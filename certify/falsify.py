"""Counterexample search: witnesses that δISS / GAS (or ISS) of a network is false, proved exactly.

Two kinds of witness decide ``unstable``, both for a *constant* input ``u`` in the input range, and
both only after an interval proof (:mod:`certify.witness`) that holds in exact real arithmetic:

``multiple_equilibria``
    two disjoint Krawczyk boxes, each proved to hold exactly one equilibrium.  Two constant
    trajectories that never approach: δISS and GAS are false.
``limit_cycle``
    a Krawczyk box proved to hold a fixed point of ``f^p`` that is not an equilibrium: a non-constant
    periodic orbit (δISS and GAS false).

A third kind is numerical evidence only and never decides:

``divergence``
    (only for layers whose states can grow: SS-NN, affine cells, relu Elman, LP-GRNN with |z| ≥ 1) a
    trajectory whose ∞-norm grows by ≥ 1e6 and keeps growing over the second half of the run.

The search is deterministic: its size is fixed by a :class:`SearchBudget` (numbers of inputs,
starts, iterations, Newton steps and proofs), never by the clock, so every machine, load and BLAS
thread count gets the same verdict.  A :class:`~certify.deadline.Deadline` is only a hard cap: when it
stops the search, the outcome says so (``truncated``).  Where it searches:

* from many starts in the region where the layers' states live (``[−1, 1]`` for GRU, tanh-Elman and
  LP-GRNN states, whose equilibria all lie there), iterating the network to its attractors;
* Newton's method on the reduced equilibrium equations (:func:`certify.witness.layers.residual`:
  for a GRU ``h = n(h, u)``, free of the update gate), from the attractors, from raw starts and from
  the equilibria found for the previous input (continuation in the constant input);
* periodic orbits among the trajectories that do not settle, refined by Newton on ``f^p(x) − x``.

The inputs are searched a batch at a time (a batch's size depends on the model alone): the plain
iterations, the continuations and the orbit runs of a batch share numpy calls, the Newton runs go input by
input (each starts from the roots found before), and the inputs are then decided in order, so the outcome
is that of a search taking one input at a time.

A float64 candidate that the interval test cannot prove is dropped (and reported as such): a sigmoid
that rounds to exactly 1.0 freezes a coordinate in float64 and fakes a fixed point far outside the
region where the exact network has any.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from certify.deadline import Deadline
from certify.errors import InvalidInputError
from certify.networks import GRULayer, InputRange, Network
from certify.networks.kinds import kind_of
from certify.results import CheckResult, CheckStatus, Counterexample, Property
from certify.witness.dual import Dual, FloatOps, _sigmoid_pair
from certify.witness.layers import network_map
from certify.witness.systems import NetworkSystem, as_system

GROWTH = 1e6  # divergence: ‖x_T‖∞ ≥ GROWTH · max(1, ‖x_0‖∞)
ROOT_TOL = 1e-11  # ‖G(x)‖∞ (relative to max(1, ‖x‖∞)) for a Newton root to be tried in a proof
DISTINCT = 1e-7  # roots closer than this (relative) are the same candidate
_BATCH_WORK = 1 << 17  # inputs × starts × states² per batched step call (see _Search.chunk)


@dataclass(frozen=True)
class SearchBudget:
    """The size of the counterexample search: counts only, never seconds.

    Parameters
    ----------
    n_inputs : int
        Constant inputs tried: the centre, the low and high corners of the input range, then
        seeded random points.
    n_starts : int
        Initial states per input, iterated ``horizon`` steps in one batch.
    horizon : int
        Steps of plain iteration from each start.
    newton_starts : int
        Newton runs on the equilibrium equations per input, besides the attractors and the roots
        carried over from the previous input.
    newton_iters : int
        Newton steps per run.
    max_proofs : int
        Equilibria (and periodic points) put to the interval test per input.
    max_period : int
        Longest period of a limit cycle looked for.
    continuation_steps : int
        Steps of equilibrium continuation along the segment from each input to the next (folds of
        the branch reveal inputs with several equilibria).

    >>> SearchBudget().n_starts, SearchBudget(n_starts=8).n_starts
    (32, 8)
    """

    n_inputs: int = 32
    n_starts: int = 32
    horizon: int = 200
    newton_starts: int = 24
    newton_iters: int = 30
    max_proofs: int = 6
    max_period: int = 24
    continuation_steps: int = 120


@dataclass(frozen=True)
class SearchOutcome:
    """What the search found and how far it went.

    ``counterexample`` is a proved witness (or numerical divergence evidence, ``rigorous=False``);
    ``unproved`` lists float64 candidates the interval test could not confirm; ``truncated`` is set
    when the deadline stopped the search before its budget was spent.
    """

    counterexample: Counterexample | None
    unproved: tuple[str, ...] = ()
    truncated: bool = False
    evaluations: int = 0
    inputs_searched: int = 0
    seconds: float = 0.0
    proof_seconds: float = 0.0
    budget: SearchBudget = field(default_factory=SearchBudget)
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        b = self.budget
        return {"seed": self.seed, "budget": {k: getattr(b, k) for k in b.__dataclass_fields__},
                "evaluations": self.evaluations, "inputs_searched": self.inputs_searched,
                "truncated": self.truncated, "found": None if self.counterexample is None else self.counterexample.kind,
                "unproved_candidates": list(self.unproved), "seconds": self.seconds,
                "proof_seconds": self.proof_seconds}


_OPS = FloatOps()


@dataclass(frozen=True)
class SearchSpace:
    """Where a system's search starts and where its equilibria can be.

    ``center ± halfwidth``: the box starts are drawn from; ``bound``: ``|x_i| ≤ bound_i`` holds at
    every equilibrium (``inf`` where nothing is known); ``can_grow``: look for divergence as well.
    """

    center: np.ndarray
    halfwidth: np.ndarray
    bound: np.ndarray
    can_grow: bool = False

    @classmethod
    def for_network(cls, net: Network) -> SearchSpace:
        return cls(np.zeros(net.n_states), _state_scale(net), _bounded_box(net), _can_grow(net))


def _f(net: Any, x: np.ndarray, u: np.ndarray) -> np.ndarray:
    """One float64 step of a network or system (batched over rows; overflow allowed)."""
    system = net if isinstance(net, NetworkSystem) or hasattr(net, "map") else NetworkSystem(net)
    with np.errstate(over="ignore", invalid="ignore"):  # diverging runs overflow on purpose
        return system.step(x, u)


class _RowStep:
    """The float64 step of a system with one constant input per leading index.

    ``X`` has shape ``(c, s, n)`` and ``U`` shape ``(c, 1, m)``: ``c`` inputs, ``s`` states each, in one
    call.  For a network it calls each layer's own ``step`` (the semantics of
    :meth:`~certify.networks.Network.step`, without its per-call checks and head); other systems get one
    call per input unless they take no input.  Overflow is the caller's business (``np.errstate``).
    """

    def __init__(self, system: Any):
        self.system = system
        net = system.net if isinstance(system, NetworkSystem) else None
        self.layers = None if net is None else list(zip(net.layers, net.state_slices()))

    def bind(self, U: np.ndarray) -> Any:
        """``X ↦ f(X, U)`` for repeated steps at the same inputs (a first GRU layer's input terms computed
        once, see :func:`_gru_float_step`)."""
        layers = self.layers or []
        first = layers[0][0] if layers else None
        if not isinstance(first, GRULayer):
            return lambda X: self(X, U)
        pre = _gru_input_terms(first, U)
        if len(layers) == 1:
            return lambda X: _gru_float_step(first, X, pre)
        return lambda X: self(X, U, pre)

    def __call__(self, X: np.ndarray, U: np.ndarray, pre: Any = None) -> np.ndarray:
        if self.layers is None:
            if X.shape[0] == 1:
                return np.asarray(self.system.step(X[0], U[0, 0]))[None]
            if self.system.n_inputs == 0:
                return np.asarray(self.system.step(X, U[0, 0]))
            return np.stack([self.system.step(X[j], U[j, 0]) for j in range(X.shape[0])])
        sig = np.broadcast_to(U, X.shape[:-1] + U.shape[-1:])
        if len(self.layers) == 1:
            return self.layers[0][0].step(X, sig)[0]
        parts = []
        for i, (layer, sl) in enumerate(self.layers):
            if isinstance(layer, GRULayer):
                xn = sig = _gru_float_step(layer, X[..., sl], pre if i == 0 and pre is not None
                                           else _gru_input_terms(layer, sig))
            else:
                xn, sig = layer.step(X[..., sl], sig)
            parts.append(xn)
        return np.concatenate(parts, axis=-1)


def _gru_input_terms(layer: GRULayer, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The input's products ``u W_z^T``, ``u W_r^T`` and ``u W_n^T`` (``+ b_in`` after the reset) of a GRU layer."""
    un = u @ layer.W_n.T
    return u @ layer.W_z.T, u @ layer.W_r.T, un + layer.b_in if layer.reset_after else un


def _gru_float_step(layer: GRULayer, x: np.ndarray, pre: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """:meth:`GRULayer.step <certify.networks.GRULayer.step>` with the input terms ``pre`` given: the same
    float64 operations in the same order (the logistic function as :func:`certify.witness.dual._sigmoid_pair`,
    equal to :func:`certify.networks.base.sigmoid` bit for bit), without re-multiplying a constant input."""
    uz, ur, un = pre
    z = _sigmoid_pair(uz + x @ layer.U_z.T + layer.b_z)[0]
    r = _sigmoid_pair(ur + x @ layer.U_r.T + layer.b_r)[0]
    if layer.reset_after:
        n = np.tanh(un + r * (x @ layer.U_n.T + layer.b_hn))
    else:
        n = np.tanh(un + (r * x) @ layer.U_n.T + layer.b_in + layer.b_hn)
    return z * x + (1.0 - z) * n


def _can_grow(net: Network) -> bool:
    """Whether some layer's states can grow without bound (the layer-kind registry's ``can_grow``)."""
    return any(kind_of(layer).can_grow(layer) for layer in net.layers)


def _bounded_box(net: Network) -> np.ndarray:
    """Per state: a bound every equilibrium satisfies (``inf`` where none is known; the registry's
    ``state_bound``)."""
    return np.concatenate([kind_of(layer).state_bound(layer) for layer in net.layers])


def _state_scale(net: Network) -> np.ndarray:
    """Where starts are drawn (per state): ``[−s, s]`` (the registry's ``start_scale``)."""
    return np.concatenate([kind_of(layer).start_scale(layer) for layer in net.layers])


def _inputs(box: InputRange, rng: np.random.Generator, k: int) -> list[np.ndarray]:
    """The centre, the low and high corners, then seeded points: alternately a random corner and a
    uniform point of the box."""
    lo, hi = box.low, box.high
    out = [box.center, lo.copy(), hi.copy()]
    for i in range(max(0, k - 3)):
        if i % 2:
            out.append(np.where(rng.random(lo.shape) < 0.5, lo, hi))
        else:
            out.append(lo + (hi - lo) * rng.random(lo.shape))
    return [np.clip(v, lo, hi) for v in out[: max(1, k)]]


def _scaled(count: int, n: int, floor: int) -> int:
    """``count`` for up to 32 states; beyond, shrunk in proportion (each step then costs about n² to n³
    more), but never below ``min(count, floor)``: the search's size stays a function of the model alone."""
    if n <= 32:
        return count
    return max(min(count, floor), (count * 32) // n)


def _newton_starts(budget: SearchBudget, n: int) -> int:
    """Raw Newton starts per input (see :func:`_scaled`)."""
    return _scaled(budget.newton_starts, n, 8)


def _with_jacobian(system: Any, X: np.ndarray, u: np.ndarray, mode: str, p: int = 1) -> Dual:
    n = X.shape[-1]
    D = Dual(X, np.broadcast_to(np.eye(n), X.shape + (n,)))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if mode == "residual":
            return system.map(_OPS, D, u, "residual")
        Y = D
        for _ in range(p):
            Y = system.map(_OPS, Y, u, "step")
        return Dual(Y.val - X, Y.tan - np.eye(n))


def _newton(net: Any, X: np.ndarray, u: np.ndarray, iters: int, mode: str = "residual",
            p: int = 1) -> tuple[np.ndarray, np.ndarray, int]:
    """Damped Newton on the equilibrium residual (or ``f^p − x``) from each row of ``X``.

    Returns the final points, their residual norms and the number of map evaluations (with Jacobian).
    """
    net = as_system(net)
    X = np.array(X, dtype=np.float64, copy=True)
    res = np.full(X.shape[0], np.inf)
    active = np.ones(X.shape[0], dtype=bool)
    evals = 0
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for it in range(iters):
            idx = np.flatnonzero(active)
            if idx.size == 0:
                break
            Xi = X[idx]
            G = _with_jacobian(net, Xi, u, mode, p)
            evals += idx.size * p
            scale = np.maximum(1.0, np.abs(Xi).max(axis=1))  # at most one state-scale per step
            r = np.abs(G.val).max(axis=1)
            res[idx] = r
            ok = np.isfinite(r) & np.all(np.isfinite(G.tan), axis=(1, 2))
            done = ~ok | (r <= 1e-15 * scale)
            if done.any():
                active[idx[done]] = False
                step_idx, J, F, lim = idx[~done], G.tan[~done], G.val[~done], scale[~done]
                if step_idx.size == 0:
                    break
                Xs = Xi[~done]
            else:
                step_idx, J, F, lim, Xs = idx, G.tan, G.val, scale, Xi
            dx = _solve_rows(J, -F)
            big = np.abs(dx).max(axis=1)
            dx *= np.minimum(1.0, lim / np.where(big > 0, big, 1.0))[:, None]
            Xs = Xs + dx
            X[step_idx] = Xs
            small = np.abs(dx).max(axis=1) <= 1e-15 * lim
            active[step_idx[small | ~np.all(np.isfinite(Xs), axis=1)]] = False
            if it in (9, 19):  # runs still far from a root after 10 / 20 steps are wandering: stop them
                far = res[idx] > (1e-2 if it == 9 else 1e-6) * scale
                active[idx[far & ~done]] = False
    with np.errstate(over="ignore", invalid="ignore"):
        if mode == "residual":
            final = net.map(_OPS, Dual(X), u, "residual").val
        else:
            Y = X
            for _ in range(p):
                Y = _f(net, Y, u)
            final = Y - X
    res = np.abs(final).max(axis=1)
    return X, np.where(np.isfinite(res), res, np.inf), evals + X.shape[0] * p


def _solve_rows(J: np.ndarray, F: np.ndarray) -> np.ndarray:
    """``J[i]⁻¹ F[i]`` per row; least squares for the rows whose matrix is singular (each row on its own,
    so a row's Newton step does not depend on the other rows of the batch)."""
    try:
        return np.linalg.solve(J, F[..., None])[..., 0]
    except np.linalg.LinAlgError:
        out = np.empty_like(F)
        for i in range(J.shape[0]):
            try:
                out[i] = np.linalg.solve(J[i], F[i])
            except np.linalg.LinAlgError:
                out[i] = np.linalg.lstsq(J[i], F[i], rcond=None)[0]
        return out


def _distinct(points: Sequence[np.ndarray], tol: float) -> list[np.ndarray]:
    """The points in order, each kept unless it lies within ``tol · max(1, ‖x‖∞)`` of a point kept before."""
    if len(points) < 2:
        return list(points)
    P = np.asarray(points)
    scale = np.maximum(1.0, np.abs(P).max(axis=1))
    far = np.abs(P[:, None, :] - P[None, :, :]).max(axis=2) > tol * scale[:, None]  # NaN: not far
    kept = np.zeros(len(points), dtype=bool)
    for i in range(len(points)):
        kept[i] = bool(far[i, kept].all())
    return [points[int(i)] for i in np.flatnonzero(kept)]


def _equilibrium_cex(net: Any, u: np.ndarray, proof: Any) -> Counterexample:
    a, b = proof.boxes
    xa, xb = np.array(a.center), np.array(b.center)
    d = float(np.abs(xa - xb).max())
    return Counterexample(
        kind="multiple_equilibria",
        description=(f"two distinct equilibria for the same constant input (distance {d:.3g}), each proved "
                     f"by an interval Krawczyk test (boxes of radius {a.radius:.1g} and {b.radius:.1g}): "
                     "trajectories from them never approach."),
        data={"u": u.tolist(), "x_a": xa.tolist(), "x_b": xb.tolist(), "distance": d,
              "disproves": ["delta_iss", "gas"], "rigorous": True, "proof": proof.to_dict()},
        residual=max(a.radius, b.radius),
    )


def _cycle_cex(net: Any, u: np.ndarray, proof: Any) -> Counterexample:
    (box,) = proof.boxes
    x0 = np.array(box.center)
    step = float(np.abs(_f(net, x0, u) - x0).max())
    orbit = [x0]
    for _ in range(min(200, 3 * proof.period)):
        orbit.append(_f(net, orbit[-1], u))
    return Counterexample(
        kind="limit_cycle",
        description=(f"a periodic orbit of period {proof.period} under a constant input (‖f(x)−x‖∞ = {step:.3g}), "
                     f"proved by an interval Krawczyk test on f^{proof.period}(x) − x (box radius "
                     f"{box.radius:.1g}): trajectories from x and f(x) never approach."),
        data={"u": u.tolist(), "x0": x0.tolist(), "period": proof.period, "step_distance": step,
              "disproves": ["delta_iss", "gas"], "rigorous": True, "proof": proof.to_dict(),
              "orbit": {"steps": len(orbit) - 1, "states": np.array(orbit)[:, :8].tolist()}},
        residual=box.radius,
    )


def _residual_and_jacobian(system: Any, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    G = _with_jacobian(system, x[None, :], u, "residual")
    return G.val[0], G.tan[0]


def _residual_xt(system: Any, X: np.ndarray, U_a: np.ndarray, dU: np.ndarray,
                 t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Per row ``i``: ``G(x_i, u_i(t_i))``, ``∂G/∂x`` and ``∂G/∂t`` at ``u_i(t) = U_a[i] + t dU[i]``, and the
    evaluations used per row.

    For a network, one forward-mode evaluation in the variables ``(x, t)`` gives the exact ``∂G/∂t``; other
    systems get a central difference in ``t`` (three evaluations).
    """
    P, n = X.shape
    U = U_a + t[:, None] * dU
    if isinstance(system, NetworkSystem):
        tan = np.zeros((P, n, n + 1))
        tan[:, :, :n] = np.eye(n)
        u_tan = np.zeros(dU.shape + (n + 1,))
        u_tan[:, :, n] = dU
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            G = network_map(system.net, _OPS, Dual(X, tan), Dual(U, u_tan), "residual")
        return G.val, G.tan[:, :, :n], G.tan[:, :, n], 1
    G = _with_jacobian(system, X, U, "residual")
    h = 1e-6
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        gp = system.map(_OPS, Dual(X), U_a + (t + h)[:, None] * dU, "residual").val
        gm = system.map(_OPS, Dual(X), U_a + (t - h)[:, None] * dU, "residual").val
    return G.val, G.tan, (gp - gm) / (2 * h), 3


def _tangents(J: np.ndarray, gt: np.ndarray, prev: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Unit null vectors of ``A = [J | gt]`` per row, oriented along ``prev`` (``t`` increasing without one),
    and which rows were finite.

    With ``prev``: the solution ``w`` of ``A w = 0``, ``prev · w = 1`` (one LU solve; the null space of a
    regular point's ``A`` is a line, so ``w / ‖w‖`` is the singular vector, already oriented); the SVD
    where that bordered matrix is singular, and without ``prev``.
    """
    A = np.concatenate([J, gt[..., None]], axis=-1)
    ok = np.all(np.isfinite(A), axis=(1, 2))
    P, n1 = A.shape[0], A.shape[2]
    V = np.zeros((P, n1))
    svd = ok.copy()
    if prev is not None and ok.any():
        rows = np.flatnonzero(ok)
        M = np.concatenate([A[rows], prev[rows][:, None, :]], axis=1)
        rhs = np.zeros((rows.size, n1, 1))
        rhs[:, -1] = 1.0
        try:
            W = np.linalg.solve(M, rhs)[..., 0]
        except np.linalg.LinAlgError:  # some row singular: each row on its own
            W = np.full((rows.size, n1), np.nan)
            for i in range(rows.size):
                try:
                    W[i] = np.linalg.solve(M[i], rhs[i])[:, 0]
                except np.linalg.LinAlgError:
                    pass
        norm = np.linalg.norm(W, axis=1)
        good = np.isfinite(norm) & (norm > 0.0)
        V[rows[good]] = W[good] / norm[good, None]
        svd[rows[good]] = False
    if svd.any():
        V[svd] = np.linalg.svd(A[svd])[2][:, -1]
    sign = V[:, -1] if prev is None else np.einsum("ij,ij->i", V, prev)
    return np.where((sign >= 0)[:, None], V, -V), ok


def track_equilibria_batch(system: Any, U_a: np.ndarray, U_b: np.ndarray, X0: np.ndarray, *, steps: int = 150,
                           bound: np.ndarray | None = None, stop: Any = None
                           ) -> list[tuple[list[tuple[float, np.ndarray]], list[int], int]]:
    """:func:`track_equilibria` for several branches at once (row ``i``: from ``X0[i]`` along ``U_a[i] → U_b[i]``).

    Each branch follows exactly the steps it would follow alone (its step size, corrector and stopping
    rules are its own); the branches only share the numpy calls.  ``stop()``: checked once per step (a
    deadline); the branches stop where they are when it says so.
    """
    P, n = X0.shape
    dU = U_b - U_a
    evals = np.zeros(P, dtype=np.int64)
    x, t = np.array(X0, dtype=np.float64), np.zeros(P)
    g, J, gt, ev = _residual_xt(system, x, U_a, dU, t)
    evals += ev
    v, alive = _tangents(J, gt, None)
    pts: list[list[tuple[float, np.ndarray]]] = [[(0.0, x[i].copy())] for i in range(P)]
    folds: list[list[int]] = [[] for _ in range(P)]
    ds = np.full(P, 0.05)
    k = np.zeros(P, dtype=np.int64)
    while True:
        alive &= (k < steps) & (t >= 0.0) & (t <= 1.0)
        idx = np.flatnonzero(alive)
        if idx.size == 0 or (stop is not None and stop()):
            break
        k[idx] += 1
        vi = v[idx]
        y_pred = np.concatenate([x[idx], t[idx, None]], axis=1) + ds[idx, None] * vi
        y = y_pred.copy()
        ok = np.zeros(idx.size, dtype=bool)
        live = np.ones(idx.size, dtype=bool)  # still correcting
        Jy = np.zeros((idx.size, n, n))
        gty = np.zeros((idx.size, n))
        for _ in range(8):
            c = np.flatnonzero(live)
            if c.size == 0:
                break
            g, Jc, gtc, ev = _residual_xt(system, y[c, :n], U_a[idx[c]], dU[idx[c]], y[c, n])
            evals[idx[c]] += ev
            Jy[c], gty[c] = Jc, gtc
            F = np.concatenate([g, np.einsum("ij,ij->i", vi[c], y[c] - y_pred[c])[:, None]], axis=1)
            finite = np.all(np.isfinite(F), axis=1)
            done = finite & (np.abs(np.where(np.isfinite(F), F, np.inf)).max(axis=1) <= 1e-12)
            ok[c[done]] = True
            live[c[~finite | done]] = False
            s = c[finite & ~done]
            if s.size == 0:
                continue
            M = np.concatenate([np.concatenate([Jy[s], gty[s][..., None]], axis=2), vi[s][:, None, :]], axis=1)
            Fs = F[finite & ~done]
            try:
                y[s] = y[s] - np.linalg.solve(M, Fs[..., None])[..., 0]
            except np.linalg.LinAlgError:
                for r, Mr, Fr in zip(s, M, Fs):
                    try:
                        y[r] = y[r] - np.linalg.solve(Mr, Fr)
                    except np.linalg.LinAlgError:
                        live[r] = False  # this branch's corrector fails at this step
        failed = idx[~ok]
        ds[failed] *= 0.5
        alive[failed[ds[failed] < 1e-6]] = False
        good = np.flatnonzero(ok)
        if bound is not None and good.size:
            out = np.any(np.abs(y[good, :n]) > bound + 1e-9, axis=1)
            alive[idx[good[out]]] = False
            good = good[~out]
        if good.size == 0:
            continue
        gi = idx[good]
        x[gi], t[gi] = y[good, :n], y[good, n]
        v_new, fin = _tangents(Jy[good], gty[good], v[gi])  # the corrector's last evaluation is at y
        alive[gi[~fin]] = False
        gi, v_new = gi[fin], v_new[fin]
        for r, vn in zip(gi, v_new):
            if vn[-1] * v[r, -1] < 0:
                folds[r].append(len(pts[r]))
            pts[r].append((float(t[r]), x[r].copy()))
        v[gi] = v_new
        ds[gi] = np.minimum(0.2, ds[gi] * 1.5)
    return [(pts[i], folds[i], int(evals[i])) for i in range(P)]


def track_equilibria(system: Any, u_a: np.ndarray, u_b: np.ndarray, x0: np.ndarray, *, steps: int = 150,
                     bound: np.ndarray | None = None) -> tuple[list[tuple[float, np.ndarray]], list[int], int]:
    """Pseudo-arclength continuation of an equilibrium branch along ``u(t) = u_a + t (u_b − u_a)``.

    Follows the curve ``G(x, u(t)) = 0`` from the root ``x0`` at ``t = 0`` through turning points (folds
    of the branch, where the number of equilibria changes) until ``t`` leaves ``[0, 1]`` or ``steps`` run
    out.  Returns the points ``(t, x)``, the indices just after each fold, and the evaluations used.
    Past a fold the branch runs back in ``t``: for those ``t`` the network has at least two equilibria.
    """
    return track_equilibria_batch(as_system(system), np.asarray(u_a, dtype=np.float64)[None, :],
                                  np.asarray(u_b, dtype=np.float64)[None, :], np.asarray(x0)[None, :], steps=steps,
                                  bound=bound)[0]


def _fold_pairs(pts: list[tuple[float, np.ndarray]], folds: list[int]) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """For each fold: a parameter value past it and one point on each side of the fold (Newton starts)."""
    out = []
    for f in folds:
        for m in (3, 1, 6):
            j = min(f + m, len(pts) - 1)
            if j < f:
                continue
            t_new, x_new = pts[j]
            before = [(abs(t - t_new), i) for i, (t, _) in enumerate(pts[:f])]
            if not before:
                continue
            _, i = min(before)
            out.append((t_new, x_new, pts[i][1]))
    return out


class _Search:
    def __init__(self, system: Any, inputs: Any, space: SearchSpace, seed: int, budget: SearchBudget,
                 deadline: Deadline):
        self.net, self.space, self.seed, self.budget, self.deadline = system, space, seed, budget, deadline
        self.rng = np.random.default_rng(seed)
        self.inputs = inputs(self.rng) if callable(inputs) else list(inputs)
        self.inputs = self.inputs[: _scaled(len(self.inputs), system.n_states, 4)]
        self.evals = 0
        self.proof_seconds = 0.0
        self.unproved: list[str] = []
        self.truncated = False
        self.inputs_done = 0
        self.bound = space.bound
        self.row_step = _RowStep(system)
        # inputs searched together in one batch (the batch only shares numpy calls: every input gets the
        # same float64 work as alone).  A small network pays numpy's per-call cost once for many inputs;
        # a large one (where a witness at the first input would make the others' work wasted) one at a time
        self.chunk = max(1, _BATCH_WORK // max(1, budget.n_starts * system.n_states ** 2))

    def stop(self) -> bool:
        if self.deadline.expired():
            self.truncated = True
        return self.truncated

    def draws(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per input: the starts of the plain iteration and the raw Newton starts, drawn from the seeded
        generator in the order of a search that takes one input at a time."""
        b, n = self.budget, self.net.n_states
        c0, scale = self.space.center, self.space.halfwidth
        corners = min(b.n_starts // 4, 16)
        out = []
        for _ in self.inputs:
            X0 = c0 + (2.0 * self.rng.random((b.n_starts, n)) - 1.0) * scale
            X0[0] = c0
            if corners > 1:
                X0[1:corners] = c0 + 0.95 * np.sign(2.0 * self.rng.random((corners - 1, n)) - 1.0) * scale
            raw = c0 + (2.0 * self.rng.random((_newton_starts(b, n), n)) - 1.0) * scale
            out.append((X0, raw))
        return out

    def iterate(self, X0: np.ndarray, U: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """``horizon`` steps from the starts ``X0`` (``(c, s, n)``, input ``U[j]`` for ``X0[j]``) and one step
        more; ``None`` when the deadline stopped it."""
        X = X0
        f = self.row_step.bind(U)
        with np.errstate(over="ignore", invalid="ignore"):  # diverging runs overflow on purpose
            for k in range(self.budget.horizon):
                X = f(X)
                if k % 25 == 24 and self.stop():
                    return None
            return X, f(X)

    def run(self) -> Counterexample | None:
        """The inputs in order, ``self.chunk`` at a time: the plain iterations, the Newton runs (in input
        order: each input's runs start from the roots of the inputs before) and the continuations of a
        chunk are computed in batches, then the inputs are decided one by one, exactly as one at a time."""
        previous: list[np.ndarray] = []
        u_prev: np.ndarray | None = None
        draws = self.draws()
        for lo in range(0, len(self.inputs), self.chunk):
            if self.stop():
                return None
            us = self.inputs[lo:lo + self.chunk]
            batch = self.iterate(np.stack([d[0] for d in draws[lo:lo + len(us)]]), np.stack(us)[:, None, :])
            if batch is None:
                return None
            found = []
            for j, u in enumerate(us):
                if self.stop():
                    return None
                found.append(self.candidates(u, draws[lo + j], batch[0][j], batch[1][j], previous, u_prev))
                previous = _distinct(found[-1]["roots"] + previous, DISTINCT)[: 4 * self.budget.max_proofs]
                u_prev = u
            tracks = self.continuations(found)
            if tracks is None:
                return None
            orbits = self.orbits(found)
            for u, cand, track, orbit in zip(us, found, tracks, orbits):
                cex = self.decide(u, cand, track, orbit)
                if cex is not None or self.truncated:
                    return cex
        return None

    def candidates(self, u: np.ndarray, draw: tuple[np.ndarray, np.ndarray], X: np.ndarray, FX: np.ndarray,
                   previous: list[np.ndarray], u_prev: np.ndarray | None) -> dict[str, Any]:
        """The float64 work at one input: attractors of the iterated starts ``X`` (``FX``: their next step),
        Newton roots from them, from ``previous`` and from the raw starts, and the branch to continue."""
        b = self.budget
        X0, raw = draw
        finite = np.all(np.isfinite(X), axis=1) & (np.abs(X).max(axis=1) < 1e12)
        Xf = X[finite]
        step = np.abs(FX[finite] - Xf).max(axis=1) if Xf.shape[0] else np.zeros(0)
        order = np.argsort(step, kind="stable")
        attractors = _distinct([Xf[i] for i in order if step[i] <= 1e-3], 1e-4)[: b.max_proofs]
        evals = self.evals
        roots = self.equilibria(u, attractors + previous + list(raw))
        newton_evals, self.evals = self.evals - evals, evals  # counted when the input is decided
        segment = None
        if u_prev is not None and previous and b.continuation_steps > 0 and not np.array_equal(u_prev, u):
            segment = (u_prev, previous[0])
        return {"u": u, "X0": X0, "X": X, "finite": finite, "roots": roots, "segment": segment,
                "evals": X0.shape[0] * b.horizon + newton_evals,
                "unsettled": Xf[order[::-1]][step[order[::-1]] > 1e-6][:3]}  # slowest first: orbit candidates

    def continuations(self, found: list[dict[str, Any]]) -> list[Any] | None:
        """The continuation of each input's segment (``None`` where it has none), all in one batch."""
        rows = [(i, c["segment"]) for i, c in enumerate(found) if c["segment"] is not None]
        out: list[Any] = [None] * len(found)
        if not rows:
            return out
        if self.stop():
            return None
        U_a = np.stack([seg[0] for _, seg in rows])
        U_b = np.stack([found[i]["u"] for i, _ in rows])
        X0 = np.stack([seg[1] for _, seg in rows])
        finite = np.where(np.isfinite(self.bound), self.bound, np.inf)
        tracks = track_equilibria_batch(self.net, U_a, U_b, X0, bound=finite, stop=self.stop,
                                        steps=_scaled(self.budget.continuation_steps, X0.shape[1], 12))
        if self.truncated:
            return None
        for (i, _), tr in zip(rows, tracks):
            out[i] = tr
        return out

    def decide(self, u: np.ndarray, cand: dict[str, Any], track: Any, orbits: np.ndarray) -> Counterexample | None:
        """Divergence, folds of the continuation, several equilibria, then periodic orbits at one input."""
        from certify.witness.proofs import prove_cycle, prove_equilibria

        net, b = self.net, self.budget
        self.evals += cand["evals"]
        if self.space.can_grow:
            cex = _divergence(getattr(net, "net", net), u, cand["X0"], cand["X"], cand["finite"], b.horizon)
            if cex is not None:
                return cex
        if track is not None:
            cex = self.fold_proofs(cand["segment"][0], u, track)
            if cex is not None or self.truncated:
                return cex
        roots = cand["roots"]
        if len(roots) >= 2:
            if self.stop():
                return None
            proof = prove_equilibria(net, u, roots[: b.max_proofs])
            self.proof_seconds += proof.seconds
            if proof.proved:
                self.inputs_done += 1
                return _equilibrium_cex(net, u, proof)
            self.unproved.append(f"u = {np.round(u, 6).tolist()}: {len(roots)} float64 equilibria, "
                                 f"not proved ({proof.reason})")
        cex = self.cycles(u, orbits, prove_cycle)
        self.inputs_done += 1
        return cex

    def fold_proofs(self, u_a: np.ndarray, u_b: np.ndarray, track: Any) -> Counterexample | None:
        """Past each fold of the branch tracked from ``u_a`` to ``u_b``: prove the two branches' equilibria."""
        from certify.witness.proofs import prove_equilibria

        pts, folds, ev = track
        self.evals += ev
        for t, x_new, x_old in _fold_pairs(pts, folds)[: self.budget.max_proofs]:
            if self.stop():
                return None
            u = u_a + t * (u_b - u_a)
            lo, hi = np.minimum(u_a, u_b), np.maximum(u_a, u_b)
            u = np.clip(u, lo, hi)  # stays in the input range (a box is convex)
            roots = self.equilibria(u, [x_new, x_old])
            if len(roots) < 2:
                continue
            proof = prove_equilibria(self.net, u, roots)
            self.proof_seconds += proof.seconds
            if proof.proved:
                return _equilibrium_cex(self.net, u, proof)
            self.unproved.append(f"u = {np.round(u, 6).tolist()}: two float64 equilibria past a fold, not proved "
                                 f"({proof.reason})")
        return None

    def equilibria(self, u: np.ndarray, starts: list[np.ndarray]) -> list[np.ndarray]:
        if not starts:
            return []
        X, res, ev = _newton(self.net, np.array(starts), u, self.budget.newton_iters)
        self.evals += ev
        scale = np.maximum(1.0, np.abs(X).max(axis=1))
        inside = np.all(np.abs(X) <= self.bound + 1e-9, axis=1)  # equilibria of bounded layers lie in the box
        good = (res <= ROOT_TOL * scale) & inside
        return _distinct([X[i] for i in np.flatnonzero(good)], DISTINCT)

    def orbits(self, found: list[dict[str, Any]]) -> list[np.ndarray]:
        """Per input: ``2 · max_period`` steps from each of its unsettled rows (``(2P + 1, rows, n)``), all
        inputs' rows in one batch."""
        P, n = self.budget.max_period, self.net.n_states
        rows = [c["unsettled"] for c in found]
        out = [np.zeros((2 * P + 1, 0, n)) for _ in found]
        if not any(len(r) for r in rows):
            return out
        X = np.concatenate([r for r in rows if len(r)])[:, None, :]
        U = np.concatenate([np.repeat(c["u"][None, None, :], len(r), axis=0) for c, r in zip(found, rows) if len(r)])
        f = self.row_step.bind(U)
        traj = [X]
        with np.errstate(over="ignore", invalid="ignore"):
            for _ in range(2 * P):
                traj.append(f(traj[-1]))
        T = np.stack(traj)[:, :, 0, :]
        at = 0
        for i, r in enumerate(rows):
            out[i] = T[:, at:at + len(r)]
            at += len(r)
        return out

    def cycles(self, u: np.ndarray, trajectories: np.ndarray, prove_cycle: Any) -> Counterexample | None:
        """Periodic orbits among the trajectories ``trajectories[:, i]`` (see :meth:`orbits`)."""
        P = self.budget.max_period
        for i in range(trajectories.shape[1]):
            if self.stop():
                return None
            self.evals += 2 * P
            T = trajectories[:, i]
            if not np.all(np.isfinite(T)):
                continue
            scale = max(1.0, float(np.abs(T).max()))
            if float(np.abs(T[-1] - T[-2]).max()) <= 1e-4 * scale:
                continue  # (nearly) at rest: an equilibrium candidate, not an orbit
            for p in range(2, P + 1):
                if float(np.abs(T[-1] - T[-1 - p]).max()) > 1e-4 * scale:
                    continue
                Xp, res, ev = _newton(self.net, T[-1][None, :], u, 12, mode="cycle", p=p)
                self.evals += ev
                if not res[0] <= ROOT_TOL * scale:
                    break
                if float(np.abs(_f(self.net, Xp[0], u) - Xp[0]).max()) <= 1e-6 * scale:
                    break  # Newton went to an equilibrium: no orbit here
                proof = prove_cycle(self.net, u, Xp[0], p)
                self.proof_seconds += proof.seconds
                if proof.proved:
                    return _cycle_cex(self.net, u, proof)
                self.unproved.append(f"u = {np.round(u, 6).tolist()}: a float64 orbit of period {p}, not proved "
                                     f"({proof.reason})")
                break
        return None


def search(
    net: Network,
    *,
    input_range: InputRange | None = None,
    seed: int = 0,
    budget: SearchBudget | None = None,
    deadline: Deadline | None = None,
) -> SearchOutcome:
    """Search for a proved witness that δISS / GAS is false (see the module docstring).

    >>> from certify.networks import ElmanLayer
    >>> out = search(Network(layers=(ElmanLayer(W=[[0.0]], U=[[2.0]], b=[0.0]),)))
    >>> out.counterexample.kind, out.truncated, out.unproved
    ('multiple_equilibria', False, ())
    """
    from certify.criteria.diss import resolve_input_range

    t0 = time.perf_counter()
    box, _ = resolve_input_range(net, input_range)
    budget = budget or SearchBudget()
    return search_system(NetworkSystem(net), lambda rng: _inputs(box, rng, budget.n_inputs),
                         SearchSpace.for_network(net), seed=seed, budget=budget, deadline=deadline, t0=t0)


def search_system(system: Any, inputs: Any, space: SearchSpace, *, seed: int = 0,
                  budget: SearchBudget | None = None, deadline: Deadline | None = None,
                  t0: float | None = None) -> SearchOutcome:
    """The search of :func:`search` on any system (:mod:`certify.witness.systems`), e.g. a closed loop.

    ``inputs``: the constant inputs to try (a list, or a function of the seeded generator).
    """
    t0 = time.perf_counter() if t0 is None else t0
    s = _Search(system, inputs, space, seed, budget or SearchBudget(), deadline or Deadline())
    cex = s.run()
    return SearchOutcome(cex, tuple(s.unproved), s.truncated, s.evals, s.inputs_done,
                         time.perf_counter() - t0, s.proof_seconds, s.budget, seed)


def falsify(
    net: Network,
    *,
    input_range: InputRange | None = None,
    seed: int = 0,
    budget_seconds: float | None = None,
    n_starts: int | None = None,
    n_inputs: int | None = None,
    horizon: int | None = None,
    max_period: int | None = None,
) -> Counterexample | None:
    """The witness found by :func:`search` (``None`` when none was proved).

    ``budget_seconds`` is a hard cap (a deadline), not a budget: the search's size comes from the
    other arguments (defaults: :class:`SearchBudget`).

    >>> from certify.networks import ElmanLayer
    >>> bistable = Network(layers=(ElmanLayer(W=[[0.0]], U=[[2.0]], b=[0.0]),))
    >>> cex = falsify(bistable)
    >>> cex.kind, recheck(bistable, cex)
    ('multiple_equilibria', True)
    """
    over = {k: v for k, v in {"n_starts": n_starts, "n_inputs": n_inputs, "horizon": horizon,
                              "max_period": max_period}.items() if v is not None}
    out = search(net, input_range=input_range, seed=seed, budget=SearchBudget(**over),
                 deadline=Deadline.after(budget_seconds))
    return out.counterexample


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
    """Re-verify a witness independently of the search.

    ``multiple_equilibria`` and ``limit_cycle`` witnesses are re-proved in ball arithmetic from the
    stored boxes (:func:`certify.witness.proofs.verify_witness`); a witness without proof data is
    proved afresh around its stored points.  ``divergence`` is re-simulated (numerical evidence).
    The constant input must lie in ``input_range`` (default: the network's declared range).

    >>> from certify.networks import ElmanLayer
    >>> net = Network(layers=(ElmanLayer(W=[[0.0]], U=[[0.5]], b=[0.0]),))
    >>> recheck(net, Counterexample("multiple_equilibria", "fake", {"u": [0.0], "x_a": [0.0], "x_b": [0.5]}))
    False
    """
    from certify.witness.proofs import prove_cycle, prove_equilibria, verify_witness

    d = cex.data
    try:
        u = np.asarray(d["u"], dtype=np.float64)
        box = input_range if input_range is not None else net.info.input_range
        if u.shape != (net.n_inputs,) or not np.all(np.isfinite(u)) or (
            box is not None and not (np.all(u >= box.low) and np.all(u <= box.high))
        ):
            return False
        if cex.kind in ("multiple_equilibria", "limit_cycle"):
            proof = d.get("proof")
            if proof is not None:
                if proof.get("kind") != cex.kind or list(proof.get("u", [])) != u.tolist():
                    return False
                # the points the report shows must lie in the proved boxes
                shown = [d["x_a"], d["x_b"]] if cex.kind == "multiple_equilibria" else [d["x0"]]
                boxes = list(proof["boxes"])
                if len(shown) != len(boxes) or any(
                    np.asarray(x, dtype=np.float64).shape != (net.n_states,)
                    or float(np.abs(np.asarray(x, dtype=np.float64) - np.asarray(bx["center"], dtype=np.float64)).max())
                    > float(bx["radius"])
                    for x, bx in zip(shown, boxes)
                ):
                    return False
                return verify_witness(net, proof, input_range=box).proved
            if cex.kind == "multiple_equilibria":
                pts = [np.asarray(d["x_a"], dtype=np.float64), np.asarray(d["x_b"], dtype=np.float64)]
                if any(p.shape != (net.n_states,) for p in pts):
                    return False
                return prove_equilibria(net, u, pts).proved
            x0 = np.asarray(d["x0"], dtype=np.float64)
            p = int(d["period"])
            return x0.shape == (net.n_states,) and p >= 2 and prove_cycle(net, u, x0, p).proved
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
    if "proof" in cex.data:
        q["proof"] = "krawczyk (ball arithmetic)"
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
