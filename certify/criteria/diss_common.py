"""Shared pieces of the closed-form δISS / ISS checks: layer context, norms, result builders.

Conventions (docs/theory.md §8): a residual ``ν`` certifies its property when ``ν < 0``;
the checks demand ``ν < −tol`` with an explicit ``tol`` that dominates the floating-point error of
the norms (row sums are exact to ~n·eps relative, singular values to ~n·eps·‖A‖).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from certify.results import CheckResult, CheckStatus, Property

PROPS = (Property.ISS, Property.DELTA_ISS)
_SLOPE_BOUND = {"tanh": 1.0, "relu": 1.0, "sigmoid": 0.25}  # sup of φ' (slope interval [0, L])


@dataclass(frozen=True)
class LayerContext:
    """What a layer check needs to know besides its weights.

    Parameters
    ----------
    index : int
        Position of the layer in the stack (0 = bottom).
    u_bar : numpy.ndarray or None
        Per-input bound ``|u_j| ≤ ū_j`` on this layer's input; ``None`` when no sound bound is known.
    u_source : str
        Where ``u_bar`` comes from (declared range, assumed range, output bound of the layer below).
    tol : float
        A residual proves its property only when ``ν < −tol``.
    full_2norm : bool or None
        Compute spectral norms always (True), never (False) or only when the ∞-norm test fails or the
        layer is small (None).

    >>> LayerContext(0, np.ones(2), "assumed", 1e-9, None).scope
    'layer0'
    """

    index: int
    u_bar: np.ndarray | None
    u_source: str
    tol: float
    full_2norm: bool | None

    @property
    def scope(self) -> str:
        return f"layer{self.index}"

    def input_quantities(self) -> dict[str, Any]:
        """The input bound used, for the report (the full vector only when it is short)."""
        if self.u_bar is None:
            return {"input_bound": None, "input_bound_source": self.u_source}
        q: dict[str, Any] = {
            "input_bound_max": float(np.max(self.u_bar)) if self.u_bar.size else 0.0,
            "input_bound_source": self.u_source,
        }
        if self.u_bar.size <= 32:
            q["input_bound"] = [float(v) for v in self.u_bar]
        return q


@dataclass(frozen=True)
class LayerOutcome:
    """Per-layer checks (one per property) and the bound on the layer's output for the next layer."""

    checks: tuple[CheckResult, ...]
    out_bound: np.ndarray | None
    out_source: str


def slope_bound(activation: str) -> float | None:
    """Upper end ``L`` of the slope interval ``[0, L]`` of an activation, ``None`` if unknown.

    >>> slope_bound("sigmoid"), slope_bound("gelu")
    (0.25, None)
    """
    return _SLOPE_BOUND.get(activation)


def sig(v: float) -> float:
    """Logistic function of a scalar (overflow-safe).

    >>> sig(0.0)
    0.5
    """
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


def rowsum(*mats: np.ndarray) -> np.ndarray:
    """Row sums of absolute values of the horizontally concatenated arrays (vectors = one column).

    ``max(rowsum(W, U, b)) == ‖[W U b]‖∞`` (docs/theory.md §8).

    >>> rowsum(np.array([[1.0, -2.0]]), np.array([-3.0])).tolist()
    [6.0]
    """
    out = None
    for m in mats:
        a = np.abs(m)
        s = a if a.ndim == 1 else a.sum(axis=1)
        out = s if out is None else out + s
    assert out is not None
    return out


def norm_inf(A: np.ndarray) -> float:
    """Induced ∞-norm (max absolute row sum); 0 for empty matrices.

    >>> norm_inf(np.array([[1.0, -2.0], [0.5, 0.0]]))
    3.0
    """
    return float(np.abs(A).sum(axis=1).max()) if A.size else 0.0


def norm_2(A: np.ndarray) -> float:
    """Spectral norm; for large square-ish matrices via ``λ_max(AᵀA)`` (about twice as fast as an SVD).

    >>> round(norm_2(np.array([[3.0, 0.0], [0.0, -4.0]])), 12)
    4.0
    """
    if A.size == 0:
        return 0.0
    if min(A.shape) <= 256:
        return float(np.linalg.svd(A, compute_uv=False)[0])
    G = A.T @ A if A.shape[0] >= A.shape[1] else A @ A.T
    return float(math.sqrt(max(float(np.linalg.eigvalsh(G)[-1]), 0.0)))


def norm_2_lower(A: np.ndarray, iters: int = 12) -> float:
    """A cheap lower bound on ``‖A‖₂`` (power iteration; ``‖A v‖₂/‖v‖₂ ≤ ‖A‖₂`` for every v).

    Used only to *skip* a spectral-norm test that cannot pass (residuals grow with the norms).

    >>> norm_2_lower(np.array([[3.0, 0.0], [0.0, -4.0]])) <= 4.0
    True
    """
    if A.size == 0:
        return 0.0
    v = np.ones(A.shape[1]) + np.linspace(0.0, 1e-3, A.shape[1])
    best = 0.0
    for _ in range(iters):
        w = A @ v
        nv = float(np.linalg.norm(v))
        if nv == 0.0:
            break
        best = max(best, float(np.linalg.norm(w)) / nv)
        v = A.T @ w
    return best * (1.0 - 1e-12)


def scaled_cols(W: np.ndarray, u_bar: np.ndarray) -> np.ndarray:
    """``W · diag(ū)`` (docs/theory.md §8: rescale input weights by the per-input abs bound, never ``W ū``).

    >>> scaled_cols(np.array([[1.0, 1.0], [2.0, -1.0]]), np.array([0.5, 3.0])).tolist()
    [[0.5, 3.0], [1.0, -3.0]]
    """
    return W * u_bar[None, :]


def _finite_or_none(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, (list, tuple)):
        return [_finite_or_none(w) for w in v]
    if isinstance(v, dict):
        return {k: _finite_or_none(w) for k, w in v.items()}
    return v


def result(
    ctx: LayerContext,
    prop: Property,
    criterion: str,
    nu: float | None,
    message_ok: str,
    quantities: dict[str, Any],
    seconds: float,
    *,
    reason: str | None = None,
    status: CheckStatus | None = None,
) -> CheckResult:
    """Build a layer-scope CheckResult: PROVED iff ``ν < −tol`` and no ``reason`` blocks it.

    >>> ctx = LayerContext(0, np.ones(1), "assumed", 1e-9, None)
    >>> result(ctx, Property.ISS, "demo", -0.5, "ok", {}, 0.0).status.value
    'proved'
    """
    if status is None:
        if reason is not None or nu is None or not math.isfinite(nu):
            status = CheckStatus.NOT_PROVED
        else:
            status = CheckStatus.PROVED if nu < -ctx.tol else CheckStatus.NOT_PROVED
    if status is CheckStatus.PROVED:
        msg = message_ok
    elif reason is not None:
        msg = reason
    elif nu is None or not math.isfinite(nu):
        msg = f"the residual is not finite (a gate bound saturates to 1 in float64); {prop.value} is not proved."
    else:
        msg = f"residual ν = {nu:.6g} is not below −{ctx.tol:g}; the criterion does not prove {prop.value}."
    # JSON-friendly: non-finite numbers become None (the message says why)
    q = {k: _finite_or_none(v) for k, v in quantities.items()}
    q.setdefault("nu", None if nu is None or not math.isfinite(nu) else float(nu))
    q.update(ctx.input_quantities())
    margin = None if nu is None or not math.isfinite(nu) else float(nu)
    return CheckResult(
        name=f"diss.{prop.value}.{ctx.scope}",
        property=prop,
        status=status,
        criterion=criterion,
        message=msg,
        margin=margin,
        quantities=q,
        seconds=seconds,
        scope=ctx.scope,
    )


def perron_rate(G: np.ndarray, iters: int = 60) -> tuple[float, np.ndarray]:
    """Best weighted-∞ contraction rate of a nonnegative comparison matrix found by power iteration.

    Returns ``(λ, v)`` with ``v > 0`` and ``λ = max_i (G v)_i / v_i``, so that ``|Δx⁺| ≤ G |Δx|``
    componentwise implies ``‖Δx⁺‖_v ≤ λ ‖Δx‖_v`` with ``‖x‖_v = max_i |x_i| / v_i`` (theory §8.4)
    (any positive ``v`` is valid; the Perron vector makes ``λ`` approach ``ρ(G)``).  ``v = 1``
    (plain ‖G‖∞) is always among the candidates.

    >>> lam, v = perron_rate(np.array([[0.0, 2.0], [0.125, 0.0]]))
    >>> round(lam, 6), norm_inf(np.array([[0.0, 2.0], [0.125, 0.0]]))
    (0.5, 2.0)
    """
    n = G.shape[0]
    v = np.ones(n)
    best_v = v
    best = float(np.max(G @ v)) if n else 0.0
    if n == 0 or not np.all(np.isfinite(G)):
        return best, best_v
    floor = 1e-9
    for _ in range(iters):
        w = G @ v
        top = float(w.max())
        if top <= 0.0:
            break
        w = w + 0.5 * top * v  # shift: same Perron vector, no oscillation for periodic G
        v = w / float(w.max()) + floor  # keep v strictly positive (reducible G)
        v = v / v.max()
        lam = float(np.max((G @ v) / v))
        if lam < best:
            best, best_v = lam, v
    return best, best_v
