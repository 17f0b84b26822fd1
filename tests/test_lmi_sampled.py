"""The LMI on systems that look like practice: continuous-time plants (mass–spring chains, lightly damped
modes, an integrator with feedback) ZOH-discretised at 1e-4 … 1e-1 s, in Lur'e loops ``u = −φ(y)`` with a
slope-restricted channel in [0, α].  The maximum certified α is bisected and compared with plain-CVXPY
reference implementations of the discrete circle criterion and the discrete Popov (Haddad–Bernstein)
criterion written here, and with the vertex (linear-gain) limit, which no certificate may exceed."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import cont2discrete

from certify.criteria.lmi import check_lmi
from certify.snof import SNOF, Channel


def _chain(masses: int, k: float = 1.0, c: float = 0.02, lag: float | None = None):
    """Mass–spring–damper chain (unit masses, mass 1 tied to the wall), force on mass 1, position of mass 1
    measured; optionally a first-order actuator lag (one more state)."""
    n = 2 * masses
    K = np.zeros((masses, masses))   # stiffness matrix of the chain
    K[0, 0] = k                      # wall spring
    for i in range(masses - 1):      # spring between masses i and i + 1
        K[i, i] += k
        K[i + 1, i + 1] += k
        K[i, i + 1] -= k
        K[i + 1, i] -= k
    A = np.zeros((n, n))
    A[0::2, 1::2] = np.eye(masses)
    A[1::2, 0::2] = -K
    A[1::2, 1::2] = -(c / k) * K
    B = np.zeros((n, 1))
    B[1, 0] = 1.0
    C = np.zeros((1, n))
    C[0, 0] = 1.0
    if lag is not None:   # u → first-order actuator lag → force
        A = np.block([[A, B], [np.zeros((1, n)), -np.eye(1) / lag]])
        B = np.vstack([np.zeros((n, 1)), np.eye(1) / lag])
        C = np.hstack([C, np.zeros((1, 1))])
    return A, B, C


def _modes(omegas=(1.0, 3.0, 7.0), zeta=0.01):
    """Lightly damped modes in parallel (6th order), one input, one output."""
    blocks = [np.array([[0.0, 1.0], [-w * w, -2 * zeta * w]]) for w in omegas]
    A = np.zeros((2 * len(omegas),) * 2)
    for i, b in enumerate(blocks):
        A[2 * i:2 * i + 2, 2 * i:2 * i + 2] = b
    B = np.tile([[0.0], [1.0]], (len(omegas), 1))
    C = np.array([[w * w * (1 + i) for i, w in enumerate(omegas) for _ in (0,)] for _ in (0,)])
    C = np.hstack([[[c, 0.0]] for c in C[0]]).reshape(1, -1)
    return A, B, C


def _integrator_with_feedback():
    """1/(s(s + 1)) with an inner proportional feedback 0.5 and a first-order sensor lag (3rd order)."""
    A = np.array([[0.0, 1.0, 0.0], [-0.5, -1.0, 0.0], [2.0, 0.0, -2.0]])
    B = np.array([[0.0], [1.0], [0.0]])
    C = np.array([[0.0, 0.0, 1.0]])
    return A, B, C


def _two_channel_chain():
    """Four-mass chain with an actuator lag (9th order), second channel: velocity feedback on mass 4."""
    A, B, C = _chain(4, lag=0.2)
    n = A.shape[0]
    B2 = np.zeros((n, 1))
    B2[7, 0] = 1.0
    C2 = np.zeros((1, n))
    C2[0, 7] = 1.0
    return A, np.hstack([B, B2]), np.vstack([C, C2])


def _discrete(sysc, Ts):
    A, B, C = sysc
    Ad, Bd, *_ = cont2discrete((A, B, C, np.zeros((C.shape[0], B.shape[1]))), Ts, method="zoh")
    return Ad, Bd, C


# --- references: plain CVXPY, straight from the textbook forms (Richardson & Turner 2024, DT_Circle/DT_Popov)

def _ref_feasible(A, B, C, criterion):
    """Discrete circle / Popov (Haddad & Bernstein 1994) LMI for x⁺ = Ax + Bp, q = Cx, p ∈ slope/sector [0, 1],
    written out directly: maximise the margin with trace(P) = 1 and accept when it is positive and the
    matrices re-check negative definite."""
    import cvxpy as cp

    n, m = B.shape
    P = cp.Variable((n, n), symmetric=True)
    T = cp.Variable(m, nonneg=True)
    t = cp.Variable()
    Td = cp.diag(T)
    if criterion == "circle":
        N11, N12, N22 = A.T @ P @ A - P, A.T @ P @ B + C.T @ Td, B.T @ P @ B - 2 * Td
    else:
        lam = cp.Variable(m, nonneg=True)
        L = cp.diag(lam)
        E = C @ A - C
        CB = C @ B
        N11 = A.T @ P @ A - P + E.T @ L @ E
        N12 = A.T @ P @ B + E.T @ L + E.T @ L @ CB + C.T @ Td
        N22 = B.T @ P @ B + L @ CB + CB.T @ L + CB.T @ L @ CB - 2 * Td
    N = cp.bmat([[N11, N12], [N12.T, N22]])
    prob = cp.Problem(cp.Maximize(t), [(N + N.T) / 2 << -t * np.eye(n + m), P >> t * np.eye(n), cp.trace(P) == 1,
                                       t <= 1])
    prob.solve(solver="CLARABEL")
    if prob.status not in ("optimal", "optimal_inaccurate") or t.value is None or P.value is None:
        return False
    Nv = np.asarray(N.value)   # re-check in float64 (no margin: the reference is not meant to be sound)
    return bool(np.linalg.eigvalsh((Nv + Nv.T) / 2).max() < 0 and np.linalg.eigvalsh(P.value).min() > 0)


def _form(A, B, C, alpha):
    return SNOF(A=A, B_p=-alpha * B, C_q=C, channels=tuple(Channel("relu") for _ in range(B.shape[1])))


def _ours(A, B, C, alpha, criterion):
    res = check_lmi(_form(A, B, C, alpha), criterion=criterion)
    if res.proved:   # every certificate validated, with the margin figures in the result
        assert res.validation["ok"] and res.validation["max_eig_M"] <= -res.validation["margin_required_M"] < 0
    return res.proved


def _vertex_limit(A, B, C, hi=1e6):
    """Smallest α at which some A − αB diag(δ) C, δ ∈ {0, 1}^m, is not Schur (bisection, 40 steps)."""
    m = B.shape[1]
    verts = [np.array([(k >> i) & 1 for i in range(m)], float) for k in range(1, 2**m)]
    rho = lambda a: max(np.abs(np.linalg.eigvals(A - a * (B * d) @ C)).max() for d in verts)  # noqa: E731
    lo = 0.0
    while rho(hi) < 1 and hi < 1e12:
        hi *= 10
    for _ in range(60):
        mid = np.sqrt(lo * hi) if lo > 0 else hi / 1e3
        lo, hi = (mid, hi) if rho(mid) < 1 else (lo, mid)
    return lo


def _bisect(ok, hi, iters=12, span=1e4):
    """Bracket ``[lo, hi]`` of the largest α in [hi/span, hi] with ok(α), bisecting in log α (ratio hi/lo
    ≤ span^(2^-iters), 0.22 % with the defaults); ok is assumed monotone and true at hi/span."""
    lo = hi / span
    assert ok(lo)
    if ok(hi):
        return hi, hi
    for _ in range(iters):
        mid = np.sqrt(lo * hi)
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo, hi


CASES = {
    "chain2_Ts1e-2": (_chain(2), 1e-2),
    "integrator_fb_Ts1e-4": (_integrator_with_feedback(), 1e-4),
    "modes_Ts1e-3": (_modes(), 1e-3),
    "chain4_lag_2ch_Ts1e-1": (_two_channel_chain(), 1e-1),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_max_certified_gain_matches_references_and_never_exceeds_the_vertex_limit(case):
    sysc, Ts = CASES[case]
    A, B, C = _discrete(sysc, Ts)
    assert np.abs(np.linalg.eigvals(A)).max() < 1.0
    av = _vertex_limit(A, B, C)
    # our criteria, cheapest first; the bracket of each is [lo, hi]
    got = {}
    for crit in ("circle", "popov"):
        got[crit] = _bisect(lambda a, c=crit: _ours(A, B, C, a, c), av)
        ref = _bisect(lambda a, c=crit: _ref_feasible(A, -a * B, C, c), av)
        lo, hi = got[crit]
        assert hi <= av and not _ours(A, B, C, av * 1.001, crit)   # never above the vertex limit
        # ours at least as good as the reference (within 0.5 %); the circle LMIs are the same LMI
        assert lo >= ref[0] * (1 - 0.005) - 1e-12, (crit, lo, ref)
        if crit == "circle":
            assert lo <= ref[1] * (1 + 0.005), (crit, lo, ref)
    assert got["circle"][0] <= got["popov"][1]   # nested: popov contains circle
    lp = got["popov"][0]   # the Luré–Postnikov LMI contains popov: it certifies there too
    assert _ours(A, B, C, lp, "lure_postnikov")
    print(case, "vertex", av, got)
