"""How the LMI engine *decides*: validated dual (infeasibility) certificates, re-checked here in exact rational
arithmetic; a certificate and a dual certificate never both validate; a fallback chain that stops once the
question is answered; interior-point backends get the smaller (congruence) PSD form."""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certify.criteria.lmi import check_lmi, choose_lmi_solver, infeasibility_certificate, psd_form, psd_orders
from certify.criteria.validate import LureSystem, lmi_structure
from certify.sdp import solvers as _solvers

sys.path.insert(0, str(Path(__file__).parent))
from test_lmi_sampled import CASES, _discrete, _form, _vertex_limit  # noqa: E402


def _exact_pd(Z: list[list[Fraction]]) -> bool:
    """Whether an exact rational symmetric matrix is positive definite (LDL' pivots, no rounding)."""
    A = [row[:] for row in Z]
    n = len(A)
    for k in range(n):
        if A[k][k] <= 0:
            return False
        for i in range(k + 1, n):
            f = A[i][k] / A[k][k]
            if f:
                for j in range(k, n):
                    A[i][j] -= f * A[k][j]
    return True


def _exact_dual_check(sys: LureSystem, criterion: str, W: np.ndarray) -> bool:
    """Theorem of alternatives, in exact arithmetic: with ``Y = WW'``, ``Z = HYH' + E_xYH' + HYE_x' ≻ 0`` and every
    multiplier coefficient ``Σ 2 (L_j W)_i·(R_j W)_i ≥ 0`` prove that no ``P ≻ 0``, ``t ≥ 0`` has ``M(P, t) ≺ 0``.
    Every float is converted exactly (``Fraction(float)``), so no rounding enters."""
    s = lmi_structure(sys, criterion)
    F = lambda M: [[Fraction(float(v)) for v in row] for row in np.atleast_2d(M)]  # noqa: E731
    mul = lambda X, Y: [[sum((a * b for a, b in zip(r, c)), Fraction(0)) for c in zip(*Y)] for r in X]  # noqa: E731
    Wq = F(W)
    HW, XW = mul(F(s.H), Wq), mul(F(s.Ex), Wq)
    T = lambda X: [list(c) for c in zip(*X)]  # noqa: E731
    A1, A2, A3 = mul(HW, T(HW)), mul(XW, T(HW)), mul(HW, T(XW))
    n = len(A1)
    Z = [[A1[i][j] + A2[i][j] + A3[i][j] for j in range(n)] for i in range(n)]
    if not _exact_pd(Z):
        return False
    coef: dict[str, list[Fraction]] = {}
    for name, L, R in s.terms:
        LW, RW = mul(F(L), Wq), mul(F(R), Wq)
        c = [2 * sum((a * b for a, b in zip(LW[i], RW[i])), Fraction(0)) for i in range(len(LW))]
        coef[name] = [x + y for x, y in zip(coef.get(name, [Fraction(0)] * len(c)), c)]
    return all(v >= 0 for c in coef.values() for v in c)


def _lure(A, B, C, alpha) -> LureSystem:
    return LureSystem(A=A, B=-alpha * B, C=C, D=np.zeros((B.shape[1], B.shape[1])), K=np.ones(B.shape[1]))


@pytest.mark.parametrize("criterion", ["circle", "popov", "lure_postnikov"])
def test_dual_certificate_of_a_near_feasible_lmi_holds_in_exact_arithmetic(criterion):
    # 9th-order mass–spring chain with an actuator lag, two channels, Ts = 0.1 s, at 90 % of the vertex limit:
    # every vertex gain is stable, and each LMI misses feasibility by a relative margin of 1e-6 or less
    A, B, C = _discrete(CASES["chain4_lag_2ch_Ts1e-1"][0], 1e-1)
    alpha = 0.9 * _vertex_limit(A, B, C)
    sys_ = _lure(A, B, C, alpha)
    W, res = infeasibility_certificate(sys_, criterion)
    assert W is not None and res.ok, res.reason
    assert _exact_dual_check(sys_, criterion, W)
    # the engine reaches the same decision through its own chain, with the dual reported
    r = check_lmi(_form(A, B, C, alpha), criterion=criterion)
    assert not r.proved
    tried = r.quantities["criteria_tried"]
    assert tried[-1]["decision"] == "infeasible"
    assert r.quantities["vertex_check"]["ok"]   # not the vertex obstruction: a genuine LMI decision


def test_a_perturbed_dual_is_rejected_in_exact_arithmetic_too():
    # the exact check can fail: a dual certificate for the wrong system (a stable scalar loop) is refused by both
    bad = LureSystem(A=[[0.5]], B=[[-2.0]], C=[[1.0]], D=[[0.0]], K=[1.0])    # vertex gain 1 gives x⁺ = −1.5x
    good = LureSystem(A=[[0.5]], B=[[-1.0]], C=[[1.0]], D=[[0.0]], K=[1.0])
    W, res = infeasibility_certificate(bad, "circle")
    assert res.ok and _exact_dual_check(bad, "circle", W)
    assert not _exact_dual_check(good, "circle", W)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a11=st.floats(-0.95, 0.95), a12=st.floats(-1.0, 1.0), a22=st.floats(-0.95, 0.95),
       b=st.floats(-3.0, 3.0), c=st.floats(0.2, 2.0), crit=st.sampled_from(["circle", "popov", "lure_postnikov"]))
def test_a_certificate_and_a_dual_certificate_never_both_validate(a11, a12, a22, b, c, crit):
    s = LureSystem(A=[[a11, a12], [0.0, a22]], B=[[0.0], [b]], C=[[c, 0.0]], D=[[0.0]], K=[1.0])
    from certify.criteria.lmi import solve_lmi

    att = solve_lmi(s, crit, solver="clarabel")
    _, dual = infeasibility_certificate(s, crit)
    assert not (att.proved and dual.ok)
    if att.decision == "infeasible" and att.dual is not None and att.dual.ok:
        assert not att.proved


def test_a_marginal_lmi_ends_its_chain_after_two_accurate_answers():
    # lightly damped modes at Ts = 1 ms, exactly at the vertex limit: the LMIs sit on the boundary of feasibility
    # (τ* ≈ ±1e-10); other scalings and the first-order backend cannot create margin that is not there
    A, B, C = _discrete(CASES["modes_Ts1e-3"][0], 1e-3)
    r = check_lmi(_form(A, B, C, _vertex_limit(A, B, C)), criterion="auto")
    assert not r.proved
    tried = r.quantities["criteria_tried"]
    assert all(a["solver"] == "clarabel" for a in tried), tried
    per_criterion = {c: sum(a["criterion"] == c for a in tried) for c in ("circle", "popov", "lure_postnikov")}
    assert max(per_criterion.values()) <= 3, per_criterion


def test_interior_point_backends_get_the_congruence_form():
    rng = np.random.default_rng(3)
    A = 0.3 * rng.normal(size=(10, 10)) / np.sqrt(10)
    s = LureSystem(A=A, B=rng.normal(size=(10, 2)), C=rng.normal(size=(2, 10)), D=np.zeros((2, 2)), K=np.ones(2))
    clarabel, scs = _solvers.get_solver("clarabel"), _solvers.get_solver("scs")
    assert psd_form(s, "popov") == "schur"                      # dense H: the first-order backend's choice
    assert psd_form(s, "popov", clarabel) == "congruence"       # order n + 2m instead of 2n + 2m
    assert psd_orders(s, "popov", clarabel) == (10 + 4,) and psd_orders(s, "popov", scs) == (10 + 4 + 10,)
    assert choose_lmi_solver(s, "popov").name == "clarabel"
    r = check_lmi(_form(np.asarray(s.A), -np.asarray(s.B), np.asarray(s.C), 1e-3), criterion="popov",
                  solver="clarabel")
    assert r.quantities["criteria_tried"][0]["order"] == 14


def test_scs_indirect_first_try_on_large_data_still_validates(monkeypatch):
    import certify.criteria.lmi as lmi

    if not lmi._scs_indirect_available():
        pytest.skip("this SCS build has no indirect linear solver")
    monkeypatch.setattr(lmi, "_INDIRECT_NNZ", 0)    # treat every problem as large
    A, B, C = _discrete(CASES["chain2_Ts1e-2"][0], 1e-2)
    s = _lure(A, B, C, 0.3 * _vertex_limit(A, B, C))
    att = lmi.solve_lmi(s, "popov", solver="scs")
    assert att.outcome is not None and att.outcome.options.get("linear_solver") == "cpu_indirect"
    if att.proved:   # a proposal like any other: only the float64 validation decides
        assert att.validation is not None and att.validation.ok
    ref = lmi.solve_lmi(s, "popov", solver="clarabel")
    assert ref.proved   # the LMI is feasible here (an independent backend)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 100_000), frac=st.floats(0.05, 1.0))
def test_a_criterion_never_certifies_less_than_one_it_contains(seed, frac):
    # circle ⊂ popov ⊂ Luré–Postnikov (theory §7.4): on the same system, proved by a weaker one ⇒ proved by a
    # stronger one (through its own SDP or by falling back to the contained criterion)
    rng = np.random.default_rng(seed)
    n, m = 3, 2
    A = rng.normal(size=(n, n))
    A *= rng.uniform(0.2, 0.95) / np.abs(np.linalg.eigvals(A)).max()
    B, C = rng.normal(size=(n, m)), rng.normal(size=(m, n))
    alpha = frac * _vertex_limit(A, B, C, hi=1e3)
    got = {c: check_lmi(_form(A, B, C, alpha), criterion=c).proved for c in ("circle", "popov", "lure_postnikov")}
    assert got["popov"] >= got["circle"] and got["lure_postnikov"] >= got["popov"], got


def test_first_order_max_margin_dual_is_checked_like_any_other():
    # SCS's retry maximises τ; its dual matrix, when τ* < 0, goes through the same float64 check
    from certify.criteria.lmi import solve_lmi

    A, B, C = _discrete(CASES["chain2_Ts1e-2"][0], 1e-2)
    s = _lure(A, B, C, 3.0 * _vertex_limit(A, B, C))     # a destabilising vertex gain: no certificate exists
    att = solve_lmi(s, "circle", solver="scs", retry=True, form="congruence")
    assert not att.proved
    assert att.dual is not None and att.dual.ok and att.decision == "infeasible"
    good = LureSystem(A=[[0.5]], B=[[-1.0]], C=[[1.0]], D=[[0.0]], K=[1.0])   # circle-feasible (τ* > 0)
    att = solve_lmi(good, "circle", solver="scs", retry=True, form="congruence")
    assert att.decision == "proved" and (att.dual is None or not att.dual.ok)
