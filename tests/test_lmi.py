"""Kim-type LMI check: exact scalar cases (T1), circle vs Luré–Postnikov (T2), vertex pre-check, report
quantities, and a soundness property test against simulation with random slope-restricted nonlinearities."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import certify.criteria.lmi as lmi
from certify.criteria.lmi import check_lmi, solve_lmi, vertex_check
from certify.criteria.validate import LureSystem
from certify.errors import InvalidInputError
from certify.results import CheckStatus
from certify.snof import SNOF, Channel, check_snof


def _scalar(a, b, c):
    return SNOF(A=[[a]], B_p=[[b]], C_q=[[c]], channels=(Channel("tanh"),))


# T1: x⁺ = a x + b tanh(c x): feasible ⇔ |a| < 1 and |a + bc| < 1 (notes §7)
T1 = [(0.5, -1.0, 1.0, True), (0.5, -2.0, 1.0, False), (0.9, -1.8, 1.0, True), (0.9, 0.2, 1.0, False),
      (1.05, -0.5, 1.0, False)]


@pytest.mark.parametrize("a,b,c,expected", T1)
@pytest.mark.parametrize("criterion", ["circle", "popov", "lure_postnikov"])
def test_t1_scalar_exact_cases(a, b, c, expected, criterion):
    res = check_lmi(_scalar(a, b, c), criterion=criterion)
    assert res.proved is expected
    if expected:
        assert res.validation["ok"] and res.margin < 0 and res.solver == "clarabel"
    else:   # all three infeasible cases are caught by the vertex pre-check (linear gains 0 or 1)
        assert "necessary condition" in res.message


A2 = np.array([[0.9, -0.9], [0.1, 0.8]])
B2 = np.array([[0.0], [1.0]])
C2 = np.array([[0.4, -0.4]])


def _t2(alpha):
    return LureSystem(A2, alpha * B2, C2, [[0.0]], [1.0], odd=True)


def _bisect(criterion, lo=0.0, hi=1.5, iters=11):
    for _ in range(iters):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if solve_lmi(_t2(mid), criterion).proved else (lo, mid)
    return lo, hi


def test_t2_max_series_gains_match_published_numbers():
    lo, hi = _bisect("circle")
    assert lo <= 0.4180 + 1e-3 and hi >= 0.4180 - 1e-3
    lo, hi = _bisect("lure_postnikov")
    assert lo <= 0.9500 + 1e-3 and hi >= 0.9500 - 1e-3


@pytest.mark.parametrize("alpha,circle,lp", [(0.7, False, True), (1.2, False, False)])
def test_t2_circle_vs_lure_postnikov(alpha, circle, lp):
    f = SNOF(A=A2, B_p=alpha * B2, C_q=C2, channels=(Channel("tanh"),))
    assert check_lmi(f, criterion="circle").proved is circle
    assert check_lmi(f, criterion="lure_postnikov").proved is lp
    auto = check_snof(f)
    assert auto.proved is lp
    tried = [t["criterion"] for t in auto.quantities["criteria_tried"]]
    assert tried[0] == "circle" and set(tried) <= {"circle", "popov", "lure_postnikov"}   # cheapest first
    assert tried == sorted(tried, key=["circle", "popov", "lure_postnikov"].index)
    if lp:
        assert auto.criterion == tried[-1] == auto.quantities["criterion_proved"]
    if alpha == 1.2:   # vertex condition holds (Aizerman limit ≈ 8.78): infeasible means not proved only
        assert auto.status is CheckStatus.NOT_PROVED and auto.quantities["vertex_check"]["ok"]


def test_vertex_obstruction_does_not_call_the_solver(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("solver must not be called")

    monkeypatch.setattr(lmi, "solve_lmi", boom)
    res = check_lmi(_scalar(0.5, -2.0, 1.0))
    assert res.status is CheckStatus.NOT_PROVED
    vc = res.quantities["vertex_check"]
    assert vc["checked"] == 2 and vc["exhaustive"] and vc["max_spectral_radius"] == pytest.approx(1.5)
    assert "does not prove" in res.message


def test_vertex_sampling_for_many_channels():
    m = 14
    s = LureSystem(np.eye(2) * 0.5, np.full((2, m), 0.01), np.ones((m, 2)), np.zeros((m, m)), np.ones(m))
    vc = vertex_check(s, max_exhaustive=10, n_random=20)
    assert vc.ok and not vc.exhaustive and vc.checked == 2 + m + 20
    assert "sampled" in vc.detail


def test_result_carries_quantities_and_equilibrium():
    f = SNOF(A=[[0.5, 0.1], [0.0, 0.3]], B_p=[[-0.4], [0.2]], C_q=[[1.0, 0.5]], b_q=[0.3], b_x=[0.1, 0.0],
             channels=(Channel("sigmoid"),))
    res = check_lmi(f, criterion="lure_postnikov", name="lmi.test")
    assert res.proved and res.name == "lmi.test" and res.scope == "model" and res.criterion == "lure_postnikov"
    q = res.quantities
    # one PSD block: order N = n + 2m (congruence form) or N + n (Schur form; P ⪰ 0 is implied);
    # variables: P, 4 multipliers, τ
    assert q["lmi_order"] in (2 + 2 * 1, (2 + 2 * 1) + 2) and q["variables"] == 3 + 4 + 1 and not q["odd"]
    assert q["equilibrium"]["found"] and q["equilibrium"]["residual"] < 1e-10
    for key in ("seconds_equilibrium", "seconds_vertex_check"):
        assert q[key] >= 0
    tried = q["criteria_tried"][0]
    assert tried["solver_status"] == "optimal" and tried["seconds_solve"] >= 0
    assert res.validation["max_eig_M"] <= -res.validation["margin_required_M"]


def test_bad_requests_and_failures_never_prove():
    f = _scalar(0.5, -1.0, 1.0)
    with pytest.raises(InvalidInputError, match="criterion"):
        check_lmi(f, criterion="kyp")
    with pytest.raises(InvalidInputError, match="installed"):
        check_lmi(f, solver="nope")
    res = check_lmi(f, timeout=1e-12)   # budget gone before the solver starts: not proved, solver named
    assert res.status is CheckStatus.NOT_PROVED and not res.proved
    assert res.solver == "clarabel" and "time budget" in res.message
    gru_like = SNOF(A=[[0.5]], B_p=[[1.0]], C_q=[[1.0]], D_qp=[[2.0]], channels=(Channel("tanh"),))
    res = check_lmi(gru_like)
    assert not res.proved and "well-posedness" in res.message


# --- soundness property --------------------------------------------------------------------------

def _random_phi(rng, odd):
    """A random slope-[0,1] nonlinearity with φ(0) = 0 (odd when asked)."""
    kind = rng.integers(3)
    if kind == 0:
        k = rng.uniform(0.05, 1.0)
        return lambda q: np.tanh(k * q)
    if kind == 1:
        lo, hi = rng.uniform(0.1, 2.0, 2)
        lo = hi if odd else lo
        return lambda q: np.clip(q, -lo, hi)
    s1, s2 = rng.uniform(0.0, 1.0, 2)
    s1 = s2 if odd else s1
    return lambda q: np.where(q < 0, s1 * q, s2 * q)


@settings(max_examples=20)
@given(seed=st.integers(0, 100_000))
@example(seed=1)   # proved cases, so the simulation part always runs
@example(seed=6)
def test_property_proved_implies_vertex_condition_and_convergence(seed):
    rng = np.random.default_rng(seed)
    n, m = 2, 2
    kinds = [("tanh", "relu")[k] for k in rng.integers(2, size=m)]
    A = rng.normal(size=(n, n))
    A *= rng.uniform(0.3, 1.0) / max(np.abs(np.linalg.eigvals(A)).max(), 1e-9)
    f = SNOF(A=A, B_p=rng.normal(size=(n, m)) * 0.4, C_q=rng.normal(size=(m, n)),
             D_qp=np.tril(rng.normal(size=(m, m)), -1) * 0.5, channels=tuple(Channel(k) for k in kinds))
    res = check_lmi(f, criterion="lure_postnikov")
    if not res.proved:
        return
    odd = all(k == "tanh" for k in kinds)
    assert res.quantities["odd"] is odd
    # necessary condition at random interior gains too
    for _ in range(20):
        d = rng.uniform(0, 1, m)
        Acl = A + (f.B_p * d) @ np.linalg.solve(np.eye(m) - f.D_qp * d, f.C_q)
        assert np.abs(np.linalg.eigvals(Acl)).max() < 1.0
    # simulation with random slope-restricted nonlinearities from random initial states
    phis = [_random_phi(rng, odd) for _ in range(m)]
    x = rng.normal(size=(16, n)) * 5.0
    x0 = np.abs(x).max()
    for _ in range(3000):
        q = np.zeros((16, m))
        p = np.zeros((16, m))
        for i in range(m):   # D strictly lower triangular: forward substitution
            q[:, i] = x @ f.C_q[i] + p @ f.D_qp[i]
            p[:, i] = phis[i](q[:, i])
        x = x @ A.T + p @ f.B_p.T
    assert np.abs(x).max() < 1e-3 * x0


@settings(max_examples=8)
@given(seed=st.integers(0, 100_000), gain=st.floats(0.2, 1.5))
def test_property_criteria_are_nested_circle_popov_lure_postnikov(seed, gain):
    """Notes §2.4(c): the derived LMI is never more conservative than circle (nor the Popov variant)."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(2, 2))
    A *= 0.8 / np.abs(np.linalg.eigvals(A)).max()
    sys = LureSystem(A, gain * rng.normal(size=(2, 1)), rng.normal(size=(1, 2)), [[0.0]], [1.0])
    c, p, k = (solve_lmi(sys, crit).proved for crit in ("circle", "popov", "lure_postnikov"))
    assert (not c or p) and (not p or k)


def test_message_scope_depends_on_the_odd_term():
    """T4 (odd channels) is valid only at the checked equilibrium: the message must not claim every input."""
    f = SNOF(A=A2, B_p=0.7 * B2, C_q=C2, channels=(Channel("tanh"),))   # circle fails, LP with T4 proves
    res = check_lmi(f, criterion="lure_postnikov")
    assert res.proved and res.quantities["odd"]
    assert "constant input checked only" in res.message and "every constant input" not in res.message
    circle = check_lmi(_scalar(0.5, -1.0, 1.0), criterion="circle")
    assert "every constant input" in circle.message


# --- fallback chain, honest statuses, containment ------------------------------------------------

def test_memory_refusal_falls_back_to_a_first_order_backend(monkeypatch):
    """An interior-point solve that would exhaust memory is refused (never a native abort) and SCS decides."""
    import certify.sdp.solvers as sv

    monkeypatch.setattr(sv, "available_memory", lambda: 1)   # every Clarabel solve is refused
    res = check_lmi(_scalar(0.5, -1.0, 1.0), solver="clarabel", criterion="circle")
    tried = res.quantities["criteria_tried"]
    assert tried[0]["solver"] == "clarabel" and tried[0]["solver_status"] == "refused" and not tried[0]["proved"]
    assert res.proved and res.solver == "scs" and tried[-1]["solver"] == "scs"


def test_undecided_named_criterion_falls_back_to_the_criteria_it_contains(monkeypatch):
    real = lmi.solve_lmi

    def flaky(sys, criterion, **kw):   # the LP SDP "cannot be decided" by any backend or scaling
        att = real(sys, criterion, **kw)
        if criterion != "lure_postnikov":
            return att
        return lmi.LMIAttempt(criterion, None, None, None, att.order, att.n_variables, 0.0,
                              "lure_postnikov LMI: clarabel could not decide (numerical failure).")

    monkeypatch.setattr(lmi, "solve_lmi", flaky)
    res = check_lmi(_scalar(0.5, -1.0, 1.0), criterion="lure_postnikov")
    assert res.proved and res.criterion == "circle" and res.quantities["criterion_proved"] == "circle"
    assert "contains" in res.message and res.quantities["criterion_requested"] == "lure_postnikov"


def test_scs_first_certifies_below_and_not_above_the_limit():
    """T2 with SCS first: proved well inside, not proved (never "error") above the LP limit 0.95."""
    f = SNOF(A=A2, B_p=0.7 * B2, C_q=C2, channels=(Channel("tanh"),))
    res = check_lmi(f, solver="scs", criterion="lure_postnikov")
    assert res.proved and res.validation["ok"] and res.solver in ("scs", "clarabel")
    above = check_lmi(SNOF(A=A2, B_p=1.2 * B2, C_q=C2, channels=(Channel("tanh"),)), solver="scs",
                      criterion="lure_postnikov")
    assert above.status is CheckStatus.NOT_PROVED and above.solver in ("scs", "clarabel")
    assert all(t["solver"] for t in above.quantities["criteria_tried"])


def test_validation_margin_is_the_stated_rounding_bound_not_a_fixed_floor():
    """A certificate with relative margin 1e-10 (far above the ~1e-13 rounding bound) is accepted, and the
    SDP's margin and the validation speak about the same scale."""
    from certify.criteria.validate import LMICertificate, lmi_structure, rounding_margin, validate_certificate

    s = LureSystem([[0.5]], [[-1.0]], [[1.0]], [[0.0]], [1.0])
    att = solve_lmi(s, "circle")
    v = att.validation
    assert v.ok and v.relative_margin == pytest.approx(att.tau, rel=1e-6, abs=1e-9)
    assert v.margin_M == pytest.approx(rounding_margin(lmi_structure(s, "circle"), v.scale))
    assert v.margin_M / v.scale < 1e-13
    # shrink the margin: move T towards the boundary where max eig(M) crosses 0
    c = att.certificate
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        cert = LMICertificate("circle", c.P, {"T": c.multipliers["T"] * (1 + 10 * mid)})
        r = validate_certificate(s, cert)
        lo, hi = (mid, hi) if r.relative_margin > 1e-10 else (lo, mid)
    r = validate_certificate(s, LMICertificate("circle", c.P, {"T": c.multipliers["T"] * (1 + 10 * lo)}))
    assert 1e-10 <= r.relative_margin < 1e-9 and r.ok


@pytest.mark.parametrize("criterion", ["circle", "lure_postnikov"])
@pytest.mark.parametrize("solver", ["clarabel", "scs"])
def test_congruence_and_schur_forms_agree(criterion, solver):
    """The smaller congruence PSD block (chosen for sparse [A − I, B], e.g. LP-GRNNs) and the Schur form
    certify the same LP-GRNN-like system, and the default picks the congruence form for it."""
    rng = np.random.default_rng(3)
    z = rng.uniform(0.2, 0.8, 4)
    sys = LureSystem(np.diag(z), np.hstack([np.zeros((4, 4)), np.diag(1 - z)]), 0.3 * rng.normal(size=(8, 4)),
                     np.vstack([np.zeros((4, 8)), np.hstack([0.3 * rng.normal(size=(4, 4)), np.zeros((4, 4))])]),
                     np.ones(8))
    assert lmi.psd_form(sys, criterion) == "congruence"
    a, b = (solve_lmi(sys, criterion, solver=solver, form=f) for f in ("congruence", "schur"))
    assert a.proved and b.proved and a.order == sys.n + (8 if criterion == "circle" else 16) == b.order - sys.n
