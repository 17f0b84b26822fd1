"""Loop transformations: dynamics preserved exactly; LMI feasibility invariant (notes T4); certificates
mapped back to the original coordinates re-validate there."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from certify.criteria.lmi import check_lmi, lure_system, solve_lmi
from certify.criteria.validate import validate_certificate
from certify.networks import LinearHead, LPGRNNLayer, Network
from certify.snof import SNOF, Channel, from_network
from certify.snof.transform import equilibrium, normalize_slopes, shift_to_equilibrium, sigmoid_to_tanh


def _lpgrnn_form(seed=7, n=4, nr=3, nu=2, s=0.3):
    rng = np.random.default_rng(seed)
    g = lambda *sh: s * rng.normal(size=sh)  # noqa: E731
    layer = LPGRNNLayer(g(nr, nu), g(nr, n), g(nr), g(n, nu), g(n, n), g(n, nr), g(n), rng.uniform(0.1, 0.9, n))
    return from_network(Network((layer,), LinearHead(g(1, n), g(1))))


def _same_dynamics(f, g, seed=0, T=25):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(T, 4, f.n_w))
    x0 = rng.normal(size=(4, f.n))
    a, b = f.simulate(w, x0), g.simulate(w, x0)
    np.testing.assert_allclose(a.x, b.x, atol=1e-12)
    np.testing.assert_allclose(a.y, b.y, atol=1e-12)


@given(seed=st.integers(0, 1000))
def test_sigmoid_to_tanh_preserves_dynamics(seed):
    f = _lpgrnn_form(seed, s=0.8)
    g, _ = sigmoid_to_tanh(f)
    assert all(c.kind == "tanh" for c in g.channels)
    assert np.all(g.K == 1.0)
    _same_dynamics(f, g, seed)


def _series(form, gain):
    return replace(form, B_p=gain * form.B_p, D_qp=gain * form.D_qp)


def _max_gain(form, iters=9):
    lo, hi = 0.0, 4.0
    for _ in range(iters):
        mid = (lo + hi) / 2
        ok = check_lmi(_series(form, mid), criterion="lure_postnikov", solver="clarabel").proved
        lo, hi = (mid, hi) if ok else (lo, mid)
    return lo, hi


def test_t4_loop_transformation_invariance_of_max_series_gain():
    f = _lpgrnn_form()
    g, _ = sigmoid_to_tanh(f)
    a, b = _max_gain(f), _max_gain(g)
    # same bisection bracket up to one step (solver tolerance at the boundary)
    assert abs(a[0] - b[0]) <= (a[1] - a[0]) + 1e-12
    assert a[0] > 0.5


def test_certificate_from_tanh_form_maps_back_and_validates_in_sigmoid_form():
    f = _lpgrnn_form()
    g, inv = sigmoid_to_tanh(f)
    sys_f, _, _ = lure_system(f, equilibrium(f))
    sys_g, _, _ = lure_system(g, equilibrium(g))
    assert np.allclose(sys_f.K[:3], 0.25) and np.allclose(sys_g.K, 1.0)
    att = solve_lmi(sys_g, "lure_postnikov")
    assert att.proved
    back = inv.invert(att.certificate)
    val = validate_certificate(sys_f, back)
    assert val.ok
    # the mapping is an exact congruence: Λ unchanged, T scaled by b² = 4 on the gate channels
    np.testing.assert_allclose(back.multipliers["T1"][:3], 4 * att.certificate.multipliers["T1"][:3])
    np.testing.assert_allclose(back.multipliers["Lambda"], att.certificate.multipliers["Lambda"])


@given(seed=st.integers(0, 1000), a=st.floats(-0.8, 0.0))
def test_normalize_slopes_preserves_dynamics_and_moves_lower_slope(seed, a):
    rng = np.random.default_rng(seed)
    D = np.tril(rng.normal(size=(3, 3)), -1)
    f = SNOF(A=0.5 * rng.normal(size=(2, 2)), B_p=rng.normal(size=(2, 3)), B_w=rng.normal(size=(2, 1)),
             C_q=rng.normal(size=(3, 2)), D_qp=D, D_qw=rng.normal(size=(3, 1)), b_q=rng.normal(size=3),
             C_z=rng.normal(size=(1, 2)), D_zp=rng.normal(size=(1, 3)),
             channels=(Channel("tanh", lin=a), Channel("relu", lin=a / 2), Channel("sigmoid")))
    g, inv = normalize_slopes(f)
    assert all(c.slope[0] == 0.0 for c in g.channels)
    np.testing.assert_allclose(g.K, f.K)
    _same_dynamics(f, g, seed)
    assert (inv.invert(object()) is None) == bool(a != 0.0)


def test_equilibrium_shift_preserves_dynamics_and_marks_channels_non_odd():
    f = _lpgrnn_form(3)
    w = np.array([0.3, -0.2])
    eq = equilibrium(f, w)
    assert eq.found and eq.residual < 1e-10
    g, _ = shift_to_equilibrium(f, eq)
    assert not any(c.odd for c in g.channels if c.kind == "tanh")
    np.testing.assert_array_equal(g.A, f.A)
    rng = np.random.default_rng(0)
    dx0 = rng.normal(size=f.n)
    a = f.simulate(np.tile(w, (20, 1)), eq.x + dx0)
    b = g.simulate(np.zeros((20, f.n_w)), dx0)
    np.testing.assert_allclose(a.x - eq.x, b.x, atol=1e-12)
    np.testing.assert_allclose(a.y - eq.z, b.y, atol=1e-12)
    # zero biases and zero input: q* = 0 and tanh channels stay odd
    h = SNOF(A=[[0.5]], B_p=[[-1.0]], C_q=[[1.0]], channels=(Channel("tanh"),))
    assert shift_to_equilibrium(h, equilibrium(h))[0].channels[0].odd
