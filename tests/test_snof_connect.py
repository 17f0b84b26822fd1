"""Star product and interconnect: against python-control, the §4 matrix formulas and direct simulation;
a plant + saturated velocity PI loop (lure notes T5) expressed with interconnect."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from certify.criteria.lmi import check_lmi
from certify.errors import LoopSpecError, WellPosednessError
from certify.results import CheckStatus
from certify.snof import SNOF, Channel, interconnect, redheffer, star_product


def _tf(form: SNOF, z: complex) -> np.ndarray:
    return form.C_z @ np.linalg.solve(z * np.eye(form.n) - form.A, form.B_w) + form.D_zw


def _rand_lti(rng, n, nw, nz, scale=0.4):
    return SNOF(A=scale * rng.normal(size=(n, n)), B_w=rng.normal(size=(n, nw)), C_z=rng.normal(size=(nz, n)),
                D_zw=0.3 * rng.normal(size=(nz, nw)))


@given(seed=st.integers(0, 10_000))
def test_star_product_matches_python_control_lft(seed):
    control = pytest.importorskip("control")
    rng = np.random.default_rng(seed)
    P, Q = _rand_lti(rng, 3, 3, 3), _rand_lti(rng, 2, 2, 2)   # P: [w1(2); u(1)] → [z1(2); y(1)]
    S = star_product(P, Q, n_u=1, n_y=1)
    cP = control.ss(P.A, P.B_w, P.C_z, P.D_zw, dt=1)
    cQ = control.ss(Q.A, Q.B_w, Q.C_z, Q.D_zw, dt=1)
    if np.linalg.cond(np.eye(1) - P.D_zw[2:, 2:] @ Q.D_zw[:1, :1]) > 1e6:
        return
    ref = cP.lft(cQ, ny=1, nu=1)
    for z in (1.7 + 0.3j, -2.1 + 1j, 3.0):
        np.testing.assert_allclose(_tf(S, z), ref(z), rtol=1e-8, atol=1e-9)   # incl. Q's extra channels


@given(seed=st.integers(0, 10_000))
def test_star_product_static_equals_redheffer_formula(seed):
    rng = np.random.default_rng(seed)
    Pm, Qm = 0.5 * rng.normal(size=(4, 4)), 0.5 * rng.normal(size=(3, 3))   # n_u = 2, n_y = 1
    P = SNOF(A=np.zeros((0, 0)), D_zw=Pm)
    Q = SNOF(A=np.zeros((0, 0)), D_zw=Qm)
    S = star_product(P, Q, n_u=2, n_y=1)
    # direct linear solve of the loop equations as an independent reference
    w1, w2 = rng.normal(size=2), rng.normal(size=2)
    # unknowns u (2), y (1): y = P21 w1 + P22 u ; u = Q11 y + Q12 w2
    A = np.block([[np.eye(2), -Qm[:2, :1]], [-Pm[3:, 2:], np.eye(1)]])
    sol = np.linalg.solve(A, np.concatenate([Qm[:2, 1:] @ w2, Pm[3:, :2] @ w1]))
    u, y = sol[:2], sol[2:]
    z = np.concatenate([Pm[:3, :2] @ w1 + Pm[:3, 2:] @ u, Qm[2:, :1] @ y + Qm[2:, 1:] @ w2])
    np.testing.assert_allclose(S.D_zw @ np.concatenate([w1, w2]), z, atol=1e-10)
    np.testing.assert_allclose(S.D_zw, redheffer(Pm, Qm, 2, 1), atol=1e-12)


def _plant():
    return SNOF(A=[[0.8, 0.1], [0.0, 0.7]], B_w=[[0.0], [0.5]], C_z=[[1.0, 0.0]])


def _velocity_pi(Kp, Ki, Ts=1.0, u_lim=(0.0, 2.0)):
    """x_c = [u(k−1); e(k−1)], q = u(k−1) + Kp (e − e(k−1)) + Ki Ts e, u = sat(q)  (lure notes §6.2)."""
    return SNOF(A=np.zeros((2, 2)), B_p=[[1.0], [0.0]], B_w=[[0.0], [1.0]], C_q=[[1.0, -Kp]],
                D_qw=[[Kp + Ki * Ts]], D_zp=[[1.0]], channels=(Channel("saturation", limits=u_lim),))


def _loop(pi):
    # u_all = [u_plant; e_pi], y_all = [s; u_pi];  u_plant = u_pi, e_pi = r − s
    return interconnect([_plant(), pi], L=[[0.0, 1.0], [-1.0, 0.0]], G=[[0.0], [1.0]], H=[[1.0, 0.0]])


def test_interconnect_simulation_matches_hand_written_loop():
    Kp, Ki, r = 0.5, 0.5, 0.6
    cl = _loop(_velocity_pi(Kp, Ki))
    sim = cl.simulate(np.full((60, 1), r), x0=[0.3, -0.2, 1.5, 0.1])
    x, uprev, eprev = np.array([0.3, -0.2]), 1.5, 0.1
    Ap, B = np.array([[0.8, 0.1], [0.0, 0.7]]), np.array([0.0, 0.5])
    for k in range(60):
        s = x[0]
        e = r - s
        u = np.clip(uprev + Kp * (e - eprev) + Ki * e, 0.0, 2.0)
        assert abs(sim.y[k, 0] - s) < 1e-12
        x, uprev, eprev = Ap @ x + B * u, u, e
        np.testing.assert_allclose(sim.x[k + 1], np.concatenate([x, [uprev, eprev]]), atol=1e-12)


@pytest.mark.parametrize("gains,proved", [((0.2, 0.1), True), ((0.5, 0.5), True), ((1.0, 1.0), False)])
def test_t5_velocity_pi_loop(gains, proved):
    res = check_lmi(_loop(_velocity_pi(*gains)), w=np.array([0.5]))
    assert res.proved is proved
    if not proved:   # notes T5: a sampled linear-slope loop has ρ ≈ 1.015 > 1
        assert res.quantities["vertex_check"]["max_spectral_radius"] > 1.0
        assert "necessary condition" in res.message


def test_t5_positional_pi_with_output_saturation_is_never_certified():
    Kp, Ki = 0.2, 0.1
    # ξ⁺ = ξ + e ; u = sat(Kp e + Ki ξ): the p = 0 member keeps an open integrator (ρ = 1)
    pi = SNOF(A=[[1.0]], B_w=[[1.0]], C_q=[[Ki]], D_qw=[[Kp]], D_zp=[[1.0]],
              channels=(Channel("saturation", limits=(0.0, 2.0)),))
    res = check_lmi(_loop(pi), w=np.array([0.5]))
    assert res.status is CheckStatus.NOT_PROVED
    assert res.quantities["vertex_check"]["max_spectral_radius"] >= 1.0 - 1e-12
    assert res.quantities["spectral_radius_all_slopes_zero"] == pytest.approx(1.0)
    assert "integrator" in res.message


def test_t6_pi_around_purely_neural_estimate_is_structurally_uncertifiable():
    """Notes §6.4/T6: network slopes 0 + saturation slope 1 leaves the PI integrator open (ρ = 1)."""
    from certify.networks import LinearHead, LPGRNNLayer, Network
    from certify.snof import from_network

    rng = np.random.default_rng(0)
    n, nr = 3, 2
    g = lambda *s: 0.3 * rng.normal(size=s)  # noqa: E731
    net = Network((LPGRNNLayer(g(nr, 1), g(nr, n), g(nr), g(n, 1), g(n, n), g(n, nr), g(n),
                               rng.uniform(0.2, 0.8, n)),), LinearHead(g(1, n), g(1)))
    soft = from_network(net)
    # u_all = [u_plant; s_net; e_pi], y_all = [s; ŷ; u_pi]
    L = np.zeros((3, 3))
    L[0, 2], L[1, 0], L[2, 1] = 1.0, 1.0, -1.0
    cl = interconnect([_plant(), soft, _velocity_pi(0.2, 0.1)], L=L, G=[[0.0], [0.0], [1.0]], H=[[0, 1, 0]])
    res = check_lmi(cl, w=np.array([0.2]))
    assert res.status is CheckStatus.NOT_PROVED
    vc = res.quantities["vertex_check"]
    assert vc["max_spectral_radius"] >= 1.0
    assert vc["unit_circle_vertex_channels"] == [cl.m - 1]   # only the saturation at slope 1
    assert "integrator" in res.message


def test_interconnect_errors():
    with pytest.raises(LoopSpecError, match=r"L has shape"):
        interconnect([_plant()], L=np.zeros((2, 2)))
    # direct feed-through loop with gain 1: I − D_yu L singular
    g = SNOF(A=np.zeros((0, 0)), D_zw=[[1.0]])
    with pytest.raises(WellPosednessError, match="singular"):
        interconnect([g], L=[[1.0]])
    # nonlinear algebraic loop q = 3 tanh(q) + …: not provably well-posed
    nl = SNOF(A=np.zeros((0, 0)), D_qw=[[1.0]], D_zp=[[3.0]], channels=(Channel("tanh"),))
    with pytest.raises(WellPosednessError, match="well-posed"):
        interconnect([nl], L=[[1.0]])
