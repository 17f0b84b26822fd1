"""Solver-independent validation: compact form = explicit blocks (notes §2.3), ΔV ≤ ξ'Mξ along true
trajectories, and tampered or boundary certificates are rejected."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from certify.criteria.lmi import solve_lmi
from certify.criteria.validate import (
    LMICertificate,
    LureSystem,
    assemble_M,
    lmi_structure,
    validate_certificate,
)


def _rand(seed, n=3, m=2, odd=True):
    rng = np.random.default_rng(seed)
    D = np.tril(rng.normal(size=(m, m)), -1) * 0.5
    sys = LureSystem(0.5 * rng.normal(size=(n, n)), rng.normal(size=(n, m)), rng.normal(size=(m, n)), D,
                     rng.uniform(0.3, 2.0, m), odd=odd)
    X = rng.normal(size=(n, n))
    P = X @ X.T + np.eye(n)
    mult = {k: rng.uniform(0, 1, m) for k in ("Lambda", "T1", "T2", "T3", "T4")}
    return rng, sys, P, mult


def _explicit_blocks(sys, P, mu):
    """Notes §2.3 block formulas, typed out independently of the selection-matrix form."""
    A, B, C, D = sys.A, sys.B, sys.C, sys.D
    K, Ki = np.diag(sys.K), np.diag(1 / sys.K)
    L, T1, T2, T3, T4 = (np.diag(mu[k]) for k in ("Lambda", "T1", "T2", "T3", "T4"))
    He = lambda X: X + X.T  # noqa: E731
    E, G, F = C @ A - C, C @ B, C @ B - D
    M11 = A.T @ P @ A - P
    M21 = B.T @ P @ A + T1 @ K @ C - T3 @ K @ E + T4 @ K @ (C + C @ A)
    M22 = (B.T @ P @ B - L @ Ki + He(T1 @ K @ D) - 2 * T1 - He(T3 @ K @ F) - 2 * T3
           + He(T4 @ K @ (D + G)) - 2 * T4)
    M31 = L @ E + T2 @ K @ C @ A + T3 @ K @ E + T4 @ K @ (C + C @ A)
    M32 = L @ F + L @ Ki + T2 @ K @ G + T3 @ K @ F - D.T @ K @ T3 + 2 * T3 + T4 @ K @ (D + G) + D.T @ K @ T4 - 2 * T4
    M33 = He(L @ D) - L @ Ki + He(T2 @ K @ D) - 2 * T2 + He(T3 @ K @ D) - 2 * T3 + He(T4 @ K @ D) - 2 * T4
    return np.block([[M11, M21.T, M31.T], [M21, M22, M32.T], [M31, M32, M33]])


@given(seed=st.integers(0, 10_000))
def test_compact_form_equals_explicit_blocks(seed):
    _, sys, P, mult = _rand(seed)
    M = assemble_M(lmi_structure(sys, "lure_postnikov"), P, mult)
    np.testing.assert_allclose(M, _explicit_blocks(sys, P, mult), atol=1e-10)


@given(seed=st.integers(0, 10_000))
def test_lyapunov_increment_bounded_by_quadratic_form_along_trajectories(seed):
    """ΔV − ξ'Mξ ≤ 0 with V = x'Px + 2Σλ∫φ for φ_i(q) = tanh(K_i q) (odd, slope [0, K_i])."""
    rng, sys, P, mult = _rand(seed)
    st_ = lmi_structure(sys, "lure_postnikov")
    M = assemble_M(st_, P, mult)
    K = sys.K

    def channels(x):
        q = np.zeros(sys.m)
        p = np.zeros(sys.m)
        for i in range(sys.m):
            q[i] = sys.C[i] @ x + sys.D[i] @ p
            p[i] = np.tanh(K[i] * q[i])
        return q, p

    def V(x):
        q, _ = channels(x)
        return x @ P @ x + 2 * np.sum(mult["Lambda"] * np.log(np.cosh(K * q)) / K)

    for _ in range(10):
        x = rng.normal(size=sys.n) * rng.uniform(0.1, 3)
        _, p = channels(x)
        xn = sys.A @ x + sys.B @ p
        _, pn = channels(xn)
        xi = np.concatenate([x, p, pn])
        assert V(xn) - V(x) - xi @ M @ xi <= 1e-9 * max(1.0, abs(xi @ M @ xi))


def _t1_sys():
    return LureSystem([[0.5]], [[-1.0]], [[1.0]], [[0.0]], [1.0], odd=True)


def test_hand_certificate_is_accepted_and_tampered_ones_rejected():
    sys = _t1_sys()
    good = LMICertificate("circle", [[1.0]], {"T": [1.0]})
    assert validate_certificate(sys, good).ok
    assert not validate_certificate(sys, LMICertificate("circle", [[1.0]], {"T": [5.0]})).ok
    assert not validate_certificate(sys, LMICertificate("circle", [[-1.0]], {"T": [1.0]})).ok
    neg = validate_certificate(sys, LMICertificate("circle", [[1.0]], {"T": [-1.0]}))
    assert not neg.ok and neg.projected == 1.0   # projected to T = 0, which is not a certificate
    bad_shape = validate_certificate(sys, LMICertificate("circle", np.eye(2), {"T": [1.0]}))
    assert not bad_shape.ok and "shape" in bad_shape.reason


def test_solver_certificate_perturbed_is_rejected():
    sys = LureSystem([[0.9, -0.9], [0.1, 0.8]], [[0.0], [0.7]], [[0.4, -0.4]], [[0.0]], [1.0], odd=True)
    att = solve_lmi(sys, "lure_postnikov")
    assert att.proved
    c = att.certificate
    tampered = LMICertificate(c.criterion, c.P, {**c.multipliers, "Lambda": c.multipliers["Lambda"] * 0.0,
                                                 "T3": c.multipliers["T3"] * 0.0})
    assert not validate_certificate(sys, tampered).ok


def test_boundary_certificate_with_zero_margin_is_rejected():
    sys = _t1_sys()
    lo, hi = 0.0, 1.0   # convex combination: M is affine, find where max eig(M) crosses 0
    for _ in range(200):
        mid = (lo + hi) / 2
        c = LMICertificate("circle", [[1.0]], {"T": [(1 - mid) * 1.0 + mid * 5.0]})
        if validate_certificate(sys, c, rel_floor=0.0, c_round=0.0, abs_floor=0.0).max_eig_M < 0:
            lo = mid
        else:
            hi = mid
    edge = LMICertificate("circle", [[1.0]], {"T": [(1 - lo) * 1.0 + lo * 5.0]})
    v = validate_certificate(sys, edge)
    assert abs(v.max_eig_M) < 1e-12 and not v.ok and v.margin_M > abs(v.max_eig_M)


def test_odd_term_rejected_for_non_odd_channels():
    sys = LureSystem([[0.5]], [[-1.0]], [[1.0]], [[0.0]], [1.0], odd=False)
    mult = {k: np.ones(1) for k in ("Lambda", "T1", "T2", "T3", "T4")}
    v = validate_certificate(sys, LMICertificate("lure_postnikov", [[1.0]], mult))
    assert not v.ok and "odd" in v.reason
