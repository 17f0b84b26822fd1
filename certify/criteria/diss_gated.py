"""Closed-form ISS / δISS residuals of gated layers: GRU (both reset conventions) and LSTM.

Formulas: docs/theory.md §8.1 (GRU, Bonassi, Farina & Scattolini 2021, Thm. 1 (14) and Thm. 2 (24);
adapted PyTorch / ONNX ``linear_before_reset=1`` bound derived there) and §8.2 (LSTM, Terzi et al. 2021 /
Bonassi et al. 2023, Prop. 1 (5a–5d), Thm. 1 (8)).  Inputs enter through ``W·diag(ū)`` (theory §8) with the
layer's actual input bound ``ū``; the state bound is 1 (GRU invariant set ``[−1, 1]ⁿ``; LSTM hidden
``|h| < 1``).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from certify.criteria.diss_common import (
    LayerContext,
    LayerOutcome,
    norm_2,
    norm_2_lower,
    norm_inf,
    result,
    rowsum,
    scaled_cols,
    sig,
)
from certify.networks import GRULayer, LSTMLayer
from certify.results import Property


def _no_input_bound(ctx: LayerContext, layer_kind: str, names: tuple[str, str]) -> LayerOutcome:
    reason = (
        f"no sound bound on the input of this {layer_kind} layer ({ctx.u_source}); the gate bounds σ̄ "
        "of the theorem need one, so ISS/δISS is not proved."
    )
    checks = tuple(
        result(ctx, prop, crit, None, "", {}, 0.0, reason=reason)
        for prop, crit in zip((Property.ISS, Property.DELTA_ISS), names)
    )
    return LayerOutcome(checks, None, "no bound")


def gru_checks(layer: GRULayer, ctx: LayerContext) -> LayerOutcome:
    """ISS and δISS residuals of one GRU layer (∞-norm), with the contraction rate and the ISS bound.

    Bonassi convention (``reset_after=False``; Bonassi, Farina & Scattolini 2021)::

        ν_ISS  = ‖U_r‖∞ σ̄_f − 1
        ν_δISS = ‖U_r‖∞ (¼‖U_f‖∞ + σ̄_f) − 1 + ¼ (1 + φ̄)/(1 − σ̄_z) ‖U_z‖∞

    PyTorch / ONNX lbr=1 (``reset_after=True``; derived, theory §8.1) replaces ``‖U_r‖·¼‖U_f‖`` by
    ``¼‖W_hr‖∞ ‖[W_hn b_hn]‖∞`` — ``b_hn`` is never folded into ``b_in`` (theory §8.1).
    In this module's names (PyTorch's): Bonassi ``U_r → U_n``, ``U_f → U_r``, ``f → r``.

    φ̄ bounds the candidate: ``φ̄ = tanh(max_j Σ|W_n,jk|ū_k + |b_in,j| (+|b_hn,j| for Bonassi)
    + σ̄_r (Σ|U_n,jk| (+|b_hn,j| for PyTorch)))`` (derived), valid since ``|r∘h| ≤ σ̄_r``; this is the
    tighter bound of theory §8.1, used for both conventions so that they agree when ``b_hn = 0``.
    The paper's cruder ``φ̄ = tanh(‖[W_n U_n b]‖∞)`` and its residual are reported as
    ``phi_bar_paper`` / ``nu_paper``.

    Rates (theory §8.1): ``λ_δ = 1 + (1 − σ̄_z) ν_δISS`` gives ``‖Δx⁺‖∞ ≤ λ_δ ‖Δx‖∞`` for states in
    ``[−1, 1]ⁿ`` and the same input; ISS: ``a = σ̄_r‖U_n‖∞``, ``c = max_j(Σ|W_n,jk|ū_k + |b|_j)``,
    ``x̄ = c/(1 − a)``, ``λ_ISS = σ̄_z + (1 − σ̄_z) a`` and ``‖x(k)‖∞ ≤ x̄ + λ_ISSᵏ max(0, ‖x(0)‖∞ − x̄)``.

    >>> z = np.zeros
    >>> g = GRULayer(z((1, 1)), z((1, 1)), z((1, 1)), z((1, 1)), z((1, 1)), [[0.5]], z(1), z(1), z(1), z(1))
    >>> out = gru_checks(g, LayerContext(0, np.ones(1), "assumed", 1e-9, None))
    >>> [round(c.margin, 12) for c in out.checks]
    [-0.75, -0.75]
    """
    pytorch = layer.reset_after
    conv = "bonassi_gru_pytorch" if pytorch else "bonassi_gru"
    if ctx.u_bar is None:
        return _no_input_bound(ctx, "GRU", (f"{conv}_iss", f"{conv}_delta_iss"))
    t0 = time.perf_counter()
    ub = ctx.u_bar
    Wz, Wr, Wn = (scaled_cols(W, ub) for W in (layer.W_z, layer.W_r, layer.W_n))
    arg_z = float(np.max(rowsum(Wz, layer.U_z, layer.b_z)))
    s_z = sig(arg_z)  # (18)
    s_r = sig(float(np.max(rowsum(Wr, layer.U_r, layer.b_r))))  # (15), Bonassi's σ̄_f
    nUn, nUr, nUz = norm_inf(layer.U_n), norm_inf(layer.U_r), norm_inf(layer.U_z)
    rs_Wn, rs_Un = rowsum(Wn), rowsum(layer.U_n)
    abs_in, abs_hn = np.abs(layer.b_in), np.abs(layer.b_hn)
    q: dict[str, Any] = {"convention": "pytorch (linear_before_reset=1)" if pytorch else "bonassi/cho (lbr=0)"}
    if pytorch:
        nUn_b = float(np.max(rs_Un + abs_hn))  # ‖[W_hn b_hn]‖∞
        phi = math.tanh(float(np.max(rs_Wn + abs_in + s_r * (rs_Un + abs_hn))))
        phi_paper = math.tanh(float(np.max(rs_Wn + rs_Un + abs_in + abs_hn)))
        kappa = s_r * nUn + 0.25 * nUr * nUn_b  # theory §8.1
        c = float(np.max(rs_Wn + abs_in + s_r * abs_hn))
        q["norm_Un_bhn_inf"] = nUn_b
    else:
        abs_b = np.abs(layer.b_in + layer.b_hn)
        phi = math.tanh(float(np.max(rs_Wn + abs_b + s_r * rs_Un)))
        phi_paper = math.tanh(float(np.max(rs_Wn + rs_Un + abs_b)))
        kappa = nUn * (0.25 * nUr + s_r)  # (24) left-hand side
        c = float(np.max(rs_Wn + abs_b))
    a = s_r * nUn
    one_minus = sig(-arg_z)  # 1 − σ̄_z without cancellation
    q.update(
        sigma_bar_z=s_z, sigma_bar_r=s_r, phi_bar=phi, phi_bar_paper=phi_paper,
        norm_Un_inf=nUn, norm_Ur_inf=nUr, norm_Uz_inf=nUz, kappa=kappa, norm="inf",
        invariant_set="[-1, 1]^n (GRU states; Lemma 1)",
    )
    # ISS (Thm. 1 (14)) with the ultimate bound (derived, theory §8.1)
    nu_iss = a - 1.0
    q_iss = dict(q)
    if a < 1.0:
        lam_iss = s_z + one_minus * a
        x_bar = c / (1.0 - a)
        q_iss.update(contraction_rate=lam_iss, x_bar_iss=x_bar, iss_bound_constant=c)
    dt = time.perf_counter() - t0
    iss = result(
        ctx, Property.ISS, f"{conv}_iss", nu_iss,
        f"ISS: ν = {nu_iss:.6g} < 0; states approach ‖x‖∞ ≤ {c / max(1e-300, 1 - a):.4g}.", q_iss, dt,
    )
    # δISS (Thm. 2 (24) / theory §8.1)
    if one_minus <= 0.0:
        nu_d = math.inf
        lam_d = math.inf
    else:
        nu_d = kappa - 1.0 + 0.25 * (1.0 + phi) / one_minus * nUz
        nu_paper = kappa - 1.0 + 0.25 * (1.0 + phi_paper) / one_minus * nUz
        lam_d = max(s_z + one_minus * kappa, kappa) + 0.25 * (1.0 + phi) * nUz
        q["nu_paper"] = nu_paper
    q["contraction_rate"] = lam_d
    delta = result(
        ctx, Property.DELTA_ISS, f"{conv}_delta_iss", nu_d,
        f"δISS: ν = {nu_d:.6g} < 0; ‖Δx(k)‖∞ ≤ {lam_d:.6g}^k ‖Δx(0)‖∞ on [-1, 1]^n.", q, dt,
    )
    return LayerOutcome((iss, delta), np.ones(layer.n_out), "GRU states in [-1, 1]")


def _rho2(A: np.ndarray) -> tuple[float, np.ndarray]:
    """Spectral radius and left Perron vector (normalised, ≥ 0) of a nonnegative 2×2 matrix."""
    if not np.all(np.isfinite(A)):
        return math.inf, np.ones(2)
    tr, det = A[0, 0] + A[1, 1], A[0, 0] * A[1, 1] - A[0, 1] * A[1, 0]
    rho = float(0.5 * (tr + math.sqrt(max(tr * tr - 4.0 * det, 0.0))))
    # left eigenvector wᵀA = ρ wᵀ:  w0 (A00 − ρ) + w1 A10 = 0
    if A[1, 0] > 0:
        w = np.array([A[1, 0], rho - A[0, 0]])
    else:
        w = np.array([1.0, 0.0]) if A[0, 0] >= A[1, 1] else np.array([0.0, 1.0])
    w = np.abs(w) / max(float(np.abs(w).max()), 1e-300)
    return rho, w


def _lstm_variant(p: str, norms: dict[str, float], g: dict[str, float]) -> dict[str, Any]:
    s_f, s_i, s_o, phi_c, x_bar, phi_x = (g[k] for k in ("s_f", "s_i", "s_o", "phi_c", "x_bar", "phi_x"))
    nUc, nUf, nUi, nUo = (norms[k] for k in ("U_c", "U_f", "U_i", "U_o"))
    nu_iss = s_f + s_o * s_i * nUc - 1.0  # theory §8.2: ρ(A) − 1 (A has rank one)
    alpha = 0.25 * nUf * x_bar + s_i * nUc + 0.25 * nUi * phi_c  # theory §8.2
    A_d = np.array([[s_f, alpha], [s_o * s_f, s_o * alpha + 0.25 * phi_x * nUo]])
    nu_d = s_f + s_o * alpha + 0.25 * phi_x * nUo * (1.0 - s_f) - 1.0  # scalar form of ρ(A_δ) < 1
    rho_d, w = _rho2(A_d)
    return {
        "norm": p, "nu_iss": nu_iss, "rho_A": nu_iss + 1.0, "nu_delta": nu_d, "alpha": alpha,
        "A_delta": A_d.tolist(), "rho_A_delta": rho_d, "rate_weights_cell_hidden": w.tolist(),
        **{f"norm_{k}_{p}": v for k, v in norms.items()},
    }


def lstm_checks(layer: LSTMLayer, ctx: LayerContext) -> LayerOutcome:
    """ISS and δISS of one LSTM layer in the ∞- and 2-norm (proved if either passes; theory §8.2).

    With ``σ̄_g = σ(‖[W_g diag(ū) U_g b_g]‖∞)``, ``φ̄_c = tanh(‖[W_g diag(ū) U_g b_g]‖∞)`` (cell input
    g), ``x̄ = σ̄_i φ̄_c / (1 − σ̄_f)``, ``φ̄_x = tanh(x̄)`` and ``α = ¼‖U_f‖x̄ + σ̄_i‖U_g‖ + ¼‖U_i‖φ̄_c``::

        ν_ISS  = σ̄_f + σ̄_o σ̄_i ‖U_g‖ − 1
        ν_δISS = σ̄_f + σ̄_o α + ¼ φ̄_x ‖U_o‖ (1 − σ̄_f) − 1     ⇔ ρ(A_δ) < 1

    The invariant set is ``‖c‖∞ ≤ x̄, ‖h‖∞ ≤ σ̄_o φ̄_x``.  ``[‖Δc⁺‖, ‖Δh⁺‖] ≤ A_δ [‖Δc‖, ‖Δh‖]``
    componentwise, so with the left Perron vector ``w`` of ``A_δ`` the weighted norm
    ``w_c‖Δc‖_p + w_h‖Δh‖_p`` contracts at rate ``ρ(A_δ)`` (derived, theory §8.2).

    >>> z = np.zeros
    >>> l = LSTMLayer(*(z((1, 1)),) * 4, *(z((1, 1)),) * 4, *(z(1),) * 4)
    >>> out = lstm_checks(l, LayerContext(0, np.ones(1), "assumed", 1e-9, None))
    >>> [round(c.margin, 12) for c in out.checks]
    [-0.5, -0.5]
    """
    if ctx.u_bar is None:
        return _no_input_bound(ctx, "LSTM", ("terzi_lstm_iss", "terzi_lstm_delta_iss"))
    t0 = time.perf_counter()
    ub = ctx.u_bar
    gate = {}
    for k, (W, U, b) in {
        "i": (layer.W_i, layer.U_i, layer.b_i), "f": (layer.W_f, layer.U_f, layer.b_f),
        "g": (layer.W_g, layer.U_g, layer.b_g), "o": (layer.W_o, layer.U_o, layer.b_o),
    }.items():
        gate[k] = float(np.max(rowsum(scaled_cols(W, ub), U, b)))
    s_f, s_i, s_o = sig(gate["f"]), sig(gate["i"]), sig(gate["o"])
    phi_c = math.tanh(gate["g"])
    one_minus_f = sig(-gate["f"])  # 1 − σ̄_f without cancellation
    x_bar = s_i * phi_c / one_minus_f if one_minus_f > 0.0 else math.inf
    phi_x = math.tanh(x_bar)
    g = {"s_f": s_f, "s_i": s_i, "s_o": s_o, "phi_c": phi_c, "x_bar": x_bar, "phi_x": phi_x}
    mats = {"U_c": layer.U_g, "U_f": layer.U_f, "U_i": layer.U_i, "U_o": layer.U_o}
    variants = [_lstm_variant("inf", {k: norm_inf(M) for k, M in mats.items()}, g)]
    need_2 = ctx.full_2norm is True or (
        ctx.full_2norm is None
        and (layer.hidden <= 256 or variants[0]["nu_iss"] >= -ctx.tol or variants[0]["nu_delta"] >= -ctx.tol)
    )
    skipped_2 = None
    if need_2 and ctx.full_2norm is not True and layer.hidden > 256:
        low = _lstm_variant("2", {k: norm_2_lower(M) for k, M in mats.items()}, g)
        if low["nu_iss"] >= -ctx.tol and low["nu_delta"] >= -ctx.tol:  # residuals increase with the norms
            need_2 = False
            skipped_2 = (f"spectral norms not computed: with lower bounds of ‖·‖₂ the residuals are already "
                         f"ν_ISS ≥ {low['nu_iss']:.4g}, ν_δISS ≥ {low['nu_delta']:.4g}, so the 2-norm tests cannot pass")
    if need_2:
        variants.append(_lstm_variant("2", {k: norm_2(M) for k, M in mats.items()}, g))
    dt = time.perf_counter() - t0
    base: dict[str, Any] = {
        "sigma_bar_f": s_f, "sigma_bar_i": s_i, "sigma_bar_o": s_o, "phi_bar_c": phi_c, "x_bar": x_bar,
        "phi_bar_x": phi_x, "hidden_bound": s_o * phi_x,
        "invariant_set": "‖c‖∞ ≤ x_bar, ‖h‖∞ ≤ hidden_bound (deep LSTM Prop. 1)",
        "norms_computed": [v["norm"] for v in variants],
    }
    if not need_2:
        base["norm_2_note"] = skipped_2 or (
            "spectral norms not computed (full_2norm=False)" if ctx.full_2norm is False
            else "spectral norms not computed: the ∞-norm tests passed (pass full_2norm=True)")
    checks = []
    for prop, key, crit, what in (
        (Property.ISS, "nu_iss", "terzi_lstm_iss", "ISS"),
        (Property.DELTA_ISS, "nu_delta", "terzi_lstm_delta_iss", "δISS"),
    ):
        best = min(variants, key=lambda v: v[key])
        q = dict(base)
        for v in variants:
            q[f"nu_{v['norm']}"] = v[key]
            q.update({k: val for k, val in v.items() if k.startswith("norm_")})
            if prop is Property.DELTA_ISS:
                q[f"rho_A_delta_{v['norm']}"] = v["rho_A_delta"]
        q["norm"] = best["norm"]
        if prop is Property.DELTA_ISS:
            q.update(contraction_rate=best["rho_A_delta"], rate_weights_cell_hidden=best["rate_weights_cell_hidden"],
                     A_delta=best["A_delta"], alpha=best["alpha"])
        else:
            q["contraction_rate"] = best["rho_A"]
        nu = best[key]
        others = [v["norm"] for v in variants if v[key] < -ctx.tol]
        msg = f"{what}: ν = {nu:.6g} < 0 in the {best['norm']}-norm (passes in: {', '.join(others)})."
        checks.append(result(ctx, prop, crit, nu, msg, q, dt))
    return LayerOutcome(tuple(checks), np.ones(layer.n_out), "LSTM hidden outputs |h| < 1")
