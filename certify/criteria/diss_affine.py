"""Incremental (δISS) contraction bounds for affine + elementwise-activation cells.

Elman RNN, LP-GRNN, SS-NN / gR-SS-NN and the generic :class:`~certify.networks.AffineCell` are all
(named) SNOFs::

    q = C_q x + D_qp p + (input terms),   p = φ(q),   x⁺ = A x + B_p p + (input terms)

with ``D_qp`` strictly lower triangular and channel slopes in ``[0, L_i]`` (tanh, relu: 1; sigmoid:
¼).  Derivation (docs/theory.md §8.4; comparison matrix, midpoint form).  For two states under the same input the
mean-value theorem per channel gives ``Δp = Λ (C_q Δx + D_qp Δp)`` with ``Λ = diag(λ_i)``,
``λ_i ∈ [0, L_i]``.  Write ``Λ = Λ_c + δ``, ``Λ_c = L/2``, ``|δ| ≤ L/2``:

1. ``|Δp| ≤ P |Δx|`` with ``P = (I − L|D_qp|)⁻¹ L |C_q| ≥ 0`` (finite Neumann series, ``D_qp`` nilpotent);
2. ``Δp = Λ_c C_q Δx + ρ`` with ``|ρ| ≤ (L/2 |C_q| + L |D_qp| P) |Δx| =: R |Δx|``;
3. ``Δx⁺ = (A + B_p Λ_c C_q) Δx + B_p ρ``, hence ``|Δx⁺| ≤ G |Δx|`` componentwise with
   ``G = |A + B_p Λ_c C_q| + |B_p| R``  (always ≤ the crude ``|A| + |B_p| P``).

So ``‖Δx⁺‖_v ≤ λ ‖Δx‖_v`` in every weighted ∞-norm ``‖x‖_v = max|x_i|/v_i`` with
``λ = max_i (G v)_i / v_i`` (``v = 1``: plain ∞-norm; ``v`` ≈ Perron vector: ≈ ρ(G)).  When
``D_qp = 0`` also ``‖Δx⁺‖₂ ≤ (‖A + B_p Λ_c C_q‖₂ + ‖B_p S‖₂ ‖S C_q‖₂) ‖Δx‖₂`` with
``S = diag(√(L/2))``.  The bounds hold for all states and all inputs (no invariant set, no input range),
so ``λ < 1`` gives global δISS, and ISS follows (``‖f(x,u)‖ ≤ λ‖x‖ + ‖f(0,u)‖``, inputs and biases as
bounded inputs).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from certify.criteria.diss_common import (
    LayerContext,
    LayerOutcome,
    norm_2,
    norm_inf,
    perron_rate,
    result,
    rowsum,
    scaled_cols,
    slope_bound,
)
from certify.networks import AffineCell, ElmanLayer, LPGRNNLayer, StateSpaceLayer
from certify.results import CheckStatus, Property


def contraction_rates(
    A: np.ndarray, B_p: np.ndarray, C_q: np.ndarray, D_qp: np.ndarray | None, L: np.ndarray
) -> dict[str, Any]:
    """Contraction rates of ``x⁺ = A x + B_p φ(C_q x + D_qp p + …)`` (see the module docstring).

    Returns a dict with ``rate_inf``, ``rate_inf_weighted`` (+ ``weights``), the comparison matrix
    ``G`` and, when ``D_qp = 0``, ``_two``: a callable for the (costly) 2-norm rate.

    >>> r = contraction_rates(np.zeros((1, 1)), np.eye(1), np.array([[-0.5]]), None, np.ones(1))
    >>> r["rate_inf"], round(r["_two"](), 12)
    (0.5, 0.5)
    """
    Lc = 0.5 * L
    absC = np.abs(C_q)
    R = Lc[:, None] * absC
    has_dqp = D_qp is not None and bool(np.any(D_qp))
    if has_dqp:
        assert D_qp is not None
        from scipy.linalg import solve_triangular

        absD = np.abs(D_qp)
        P = solve_triangular(np.eye(len(L)) - L[:, None] * absD, L[:, None] * absC, lower=True, unit_diagonal=True)
        R = R + (L[:, None] * absD) @ np.maximum(P, 0.0)
    J_c = A + B_p @ (Lc[:, None] * C_q)
    G = np.abs(J_c) + np.abs(B_p) @ R
    out: dict[str, Any] = {"G": G, "rate_inf": norm_inf(G)}
    lam_w, v = perron_rate(G)
    out["rate_inf_weighted"], out["weights"] = lam_w, v
    if not has_dqp:
        S = np.sqrt(Lc)
        out["_two"] = lambda: norm_2(J_c) + norm_2(B_p * S[None, :]) * norm_2(S[:, None] * C_q)
    return out


def _add_rate_2(rates: dict[str, Any], ctx: LayerContext, n: int) -> dict[str, Any]:
    two = rates.pop("_two", None)
    if two is not None and _want_2(ctx, n, rates):
        rates["rate_2"] = two()
    return rates


def _outcome(
    ctx: LayerContext, family: str, rates: dict[str, Any], extra: dict[str, Any], out_bound: np.ndarray | None,
    out_source: str, dt: float,
) -> LayerOutcome:
    cands = {k[5:]: rates[k] for k in ("rate_inf", "rate_inf_weighted", "rate_2", "rate_2_scaled") if k in rates}
    norm = min(cands, key=lambda k: cands[k])
    lam = float(cands[norm])
    q: dict[str, Any] = dict(extra)
    q.update({f"rate_{k}": float(v) for k, v in cands.items()})
    q.update(norm=norm, contraction_rate=lam, lipschitz_bound=lam)
    n = rates["G"].shape[0]
    if norm in ("inf_weighted", "2_scaled"):  # ‖x‖ = max|x_i|/v_i  or  ‖x / v‖₂
        weights = rates["weights"] if norm == "inf_weighted" else rates["weights_2_scaled"]
        if n <= 64:
            q["rate_weights"] = [float(w) for w in weights]
        else:
            q["rate_weights_note"] = "weights of the norm not listed (n > 64)"
    nu = lam - 1.0
    delta = result(
        ctx, Property.DELTA_ISS, f"{family}_delta_iss", nu,
        f"δISS: the state map is a contraction, ‖Δx⁺‖ ≤ {lam:.6g}‖Δx‖ in the {norm} norm, for all states "
        "and inputs.", q, dt,
    )
    iss = result(
        ctx, Property.ISS, f"{family}_iss", nu,
        f"ISS: implied by the global contraction (rate {lam:.6g}, {norm} norm) with inputs and biases as "
        "bounded inputs.", q, dt,
    )
    return LayerOutcome((iss, delta), out_bound, out_source)


def _want_2(ctx: LayerContext, n: int, rates: dict[str, Any]) -> bool:
    """Spectral norms: always / never per ``ctx.full_2norm``; by default when small or still needed."""
    if ctx.full_2norm is not None:
        return ctx.full_2norm
    return n <= 256 or rates["rate_inf_weighted"] >= 1.0 - ctx.tol


def elman_checks(layer: ElmanLayer, ctx: LayerContext) -> LayerOutcome:
    """δISS / ISS of ``h⁺ = φ(W u + U h + b)`` (theory §8.3): ``‖U‖_p < 1/L`` for p = ∞, 2, or the
    diagonally scaled ``‖D U D⁻¹‖∞`` (D from the Perron vector of ``|U|``, ≈ ρ(|U|)) and
    ``‖D U D⁻¹‖₂`` (D = diag(√(w/v)) from the left/right Perron vectors; ≤ ρ(|U|)).  Norm names in
    ``quantities["norm"]``: ``inf``, ``inf_weighted`` (max|x_i|/v_i), ``2``, ``2_scaled`` (‖x/v‖₂).

    Output bound for the layer above: 1 for tanh; for relu the ball ``‖h‖∞ ≤ β``,
    ``β = ‖[W diag(ū) b]‖∞ / (1 − ‖U‖∞)``, is forward invariant when ``‖U‖∞ < 1`` (theory §8.5).

    >>> out = elman_checks(ElmanLayer(W=[[1.0]], U=[[-0.8]], b=[0.0]), LayerContext(0, np.ones(1), "", 1e-9, None))
    >>> round(out.checks[1].margin, 12)
    -0.2
    """
    t0 = time.perf_counter()
    L = slope_bound(layer.activation)
    assert L is not None
    n = layer.n_state
    rates = contraction_rates(np.zeros((n, n)), np.eye(n), layer.U, None, np.full(n, L))
    rates.pop("_two")
    if _want_2(ctx, n, rates):
        rates["rate_2"] = L * norm_2(layer.U)  # = the engine's 2-norm bound, with one SVD instead of three
        # diagonally scaled 2-norm ‖D U D⁻¹‖₂, D = diag(√(w/v)) from the Perron vectors of |U| (§8.3):
        # D Δh⁺ = Φ (D U D⁻¹) D Δh with Φ diagonal in [0, L], so any D > 0 is sound
        v, w = rates["weights"], perron_rate(np.abs(layer.U).T)[1]
        d = np.sqrt(w / v)
        rates["rate_2_scaled"] = L * norm_2(d[:, None] * layer.U / d[None, :])
        rates["weights_2_scaled"] = 1.0 / d  # the norm is ‖x / weights‖₂
    extra = {"activation": layer.activation, "slope_bound": L, "norm_U_inf": norm_inf(layer.U)}
    if layer.activation == "tanh":
        bound, src = np.ones(n), "tanh Elman outputs in [-1, 1]"
    else:
        nU = norm_inf(layer.U)
        if ctx.u_bar is not None and nU < 1.0:
            beta = float(np.max(rowsum(scaled_cols(layer.W, ctx.u_bar), layer.b))) / (1.0 - nU)
            bound, src = np.full(n, beta), f"relu Elman invariant ball ‖h‖∞ ≤ {beta:.4g}"
        else:
            bound, src = None, "relu Elman output has no a-priori bound (‖U‖∞ ≥ 1 or unbounded input)"
    return _outcome(ctx, "elman_norm", rates, extra, bound, src, time.perf_counter() - t0)


def lpgrnn_checks(layer: LPGRNNLayer, ctx: LayerContext) -> LayerOutcome:
    """δISS / ISS of the LP-GRNN (docs/theory.md) via its SNOF (channels ``[r (σ); ĥ (tanh)]``).

    The module docstring's comparison matrix becomes ``G = |Z + ½(I−Z)U_h| + |I−Z| (½|U_h| + ¼|V_h||U_r|)``
    (``Z = diag(z)``, any sign of z), never larger than the crude ``|Z| + |I−Z| (|U_h| + ¼|V_h||U_r|)``
    and equal to the exact Lipschitz constant ``max(|z|, |z + (1−z)U_h|)`` in the scalar case with V_h = 0.  Output bound for the layer above (theory §8.5): with
    ``|z_j| < 1`` the box ``|h_j| ≤ β_j = |1 − z_j| / (1 − |z_j|)`` is forward invariant
    (``|h⁺_j| ≤ |z_j|β_j + |1 − z_j|``); β = 1 for z ∈ [0, 1).

    >>> n = 1
    >>> l = LPGRNNLayer(W_r=[[0.0]], U_r=[[0.0]], b_r=[0.0], W_h=[[1.0]], U_h=[[0.5]], V_h=[[0.0]],
    ...                 b_h=[0.0], z=[0.5])
    >>> round(lpgrnn_checks(l, LayerContext(0, np.ones(1), "", 1e-9, None)).checks[1].margin, 12)
    -0.25
    """
    t0 = time.perf_counter()
    n, nr = layer.n_state, layer.n_gate
    A = np.diag(layer.z)
    B_p = np.hstack([np.zeros((n, nr)), np.diag(1.0 - layer.z)])
    C_q = np.vstack([layer.U_r, layer.U_h])
    D_qp = np.zeros((nr + n, nr + n))
    D_qp[nr:, :nr] = layer.V_h
    L = np.concatenate([np.full(nr, 0.25), np.ones(n)])
    rates = _add_rate_2(contraction_rates(A, B_p, C_q, D_qp, L), ctx, n)
    az = np.abs(layer.z)
    if np.all(az < 1.0):
        bound = np.abs(1.0 - layer.z) / (1.0 - az)
        src = "LP-GRNN invariant box |h_j| ≤ |1−z_j|/(1−|z_j|)"
    else:
        bound, src = None, "LP-GRNN with |z_j| ≥ 1: no invariant box, output unbounded a priori"
    extra = {"z_min": float(layer.z.min()), "z_max": float(layer.z.max())}
    return _outcome(ctx, "lpgrnn_contraction", rates, extra, bound, src, time.perf_counter() - t0)


def _na(ctx: LayerContext, family: str, reason: str) -> LayerOutcome:
    checks = tuple(
        result(ctx, prop, f"{family}_{prop.value}", None, "", {}, 0.0, reason=reason,
               status=CheckStatus.NOT_APPLICABLE)
        for prop in (Property.ISS, Property.DELTA_ISS)
    )
    return LayerOutcome(checks, None, reason)


def ssnn_checks(layer: StateSpaceLayer, ctx: LayerContext) -> LayerOutcome:
    """δISS / ISS of an SS-NN / gR-SS-NN (Schoukens (2021) eqs. (4)–(5)): ``x⁺ = A x + W_x φ(W_fx x + …) + …``.

    Comparison matrix ``G = |A + (L/2) W_x W_fx| + (L/2)|W_x||W_fx|`` and the 2-norm bound
    ``‖A + (L/2) W_x W_fx‖₂ + (L/2)‖W_x‖₂‖W_fx‖₂`` (module docstring, ``D_qp = 0``).  The output
    ``y = C x + …`` depends on the (unbounded) state: no bound is propagated to a layer above.

    >>> z = np.zeros
    >>> l = StateSpaceLayer(A=[[0.5]], B=z((1, 1)), C=[[1.0]], D=z((1, 1)), W_fx=[[1.0]], W_fu=z((1, 1)),
    ...     b_f=z(1), W_x=[[-0.4]], b_x=z(1), W_gx=z((1, 1)), W_gu=z((1, 1)), b_g=z(1), W_y=z((1, 1)), b_y=z(1))
    >>> round(ssnn_checks(l, LayerContext(0, np.ones(1), "", 1e-9, None)).checks[1].margin, 12)
    -0.5
    """
    t0 = time.perf_counter()
    L = slope_bound(layer.activation)
    if L is None:
        return _na(ctx, "ssnn_contraction", f"activation {layer.activation!r} has no known slope bound.")
    nf = layer.W_fx.shape[0]
    rates = _add_rate_2(contraction_rates(layer.A, layer.W_x, layer.W_fx, None, np.full(nf, L)), ctx, layer.n_state)
    extra = {"activation": layer.activation, "slope_bound": L, "variant": "gR-SS-NN" if layer.linear else "SS-NN"}
    src = "SS-NN output depends on the state, which has no a-priori bound"
    return _outcome(ctx, "ssnn_contraction", rates, extra, None, src, time.perf_counter() - t0)


def affine_cell_checks(layer: AffineCell, ctx: LayerContext) -> LayerOutcome:
    """δISS / ISS of a generic :class:`AffineCell` with the comparison matrix of the module docstring.

    >>> cell = AffineCell(A=[[0.5]], B_p=[[0.2]], B_u=[[0.0]], b_x=[0.0], C_q=[[1.0]], D_qp=[[0.0]],
    ...                   D_qu=[[0.0]], b_q=[0.0], C_y=[[1.0]], D_yp=[[0.0]], D_yu=[[0.0]], b_y=[0.0],
    ...                   activations=("tanh",))
    >>> round(affine_cell_checks(cell, LayerContext(0, np.ones(1), "", 1e-9, None)).checks[1].margin, 12)
    -0.3
    """
    t0 = time.perf_counter()
    Ls = [slope_bound(a) for a in layer.activations]
    if any(v is None for v in Ls):
        bad = sorted({a for a, v in zip(layer.activations, Ls) if v is None})
        return _na(ctx, "affine_cell_contraction", f"activations {bad} have no known slope bound.")
    L = np.array(Ls, dtype=float)
    rates = _add_rate_2(contraction_rates(layer.A, layer.B_p, layer.C_q, layer.D_qp, L), ctx, layer.n_state)
    extra = {"channels": layer.n_channels}
    src = "affine cell output depends on the state, which has no a-priori bound"
    return _outcome(ctx, "affine_cell_contraction", rates, extra, None, src, time.perf_counter() - t0)
