"""The reduction spine (certify.criteria.reductions): every step is the same dynamical system in other
coordinates, and a certificate found after the steps, mapped back through them, validates on the original."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certify.criteria.lmi import solve_lmi
from certify.criteria.reductions import Balancing, Preconditioner, ReductionChain
from certify.criteria.validate import LureSystem, validate_certificate


def _system(seed: int, scale: float) -> LureSystem:
    rng = np.random.default_rng(seed)
    n, m = 3, 2
    A = rng.normal(size=(n, n))
    A *= 0.9 / max(np.abs(np.linalg.eigvals(A)).max(), 1e-9) * rng.uniform(0.3, 1.0)
    units = 10.0 ** rng.uniform(-scale, scale, n)      # states in very different units
    A = A * units[:, None] / units[None, :]
    B = 0.3 * rng.normal(size=(n, m)) * units[:, None]
    C = rng.normal(size=(m, n)) / units[None, :]
    return LureSystem(A=A, B=B, C=C, D=np.zeros((m, m)), K=np.ones(m))


def _vertex_radii(s: LureSystem) -> list[float]:
    out = []
    for k in range(2**s.m):
        d = np.array([(k >> i) & 1 for i in range(s.m)], float) * s.K
        out.append(float(np.abs(np.linalg.eigvals(s.A + (s.B * d) @ s.C)).max()))
    return out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), scale=st.floats(0.0, 3.0))  # units up to 1e±3 apart
def test_each_step_is_the_same_system_and_certificates_map_back(seed, scale):
    s = _system(seed, scale)
    bal = Balancing.of(s)
    sb = bal.apply(s)
    chain = ReductionChain((bal, Preconditioner.lyapunov(sb)))
    r = chain.apply(s)
    # the same dynamical system: every vertex closed loop has the same spectrum radius (to rounding)
    np.testing.assert_allclose(_vertex_radii(r), _vertex_radii(s), rtol=1e-7, atol=1e-9)
    att = solve_lmi(r, "circle", solver="clarabel")
    if att.proved and att.validation is not None and att.validation.relative_margin > 1e-6:
        assert att.certificate is not None
        back = chain.invert(att.certificate)
        # the balanced coordinates (a congruence by R: the same eigenvalue signs, margins of the same order)
        mid = chain.steps[1].invert(att.certificate) if chain.steps[1] is not None else att.certificate
        assert validate_certificate(sb, mid).ok
        # the original coordinates: exactly the same certificate up to powers of two; float64 validation there
        # is only guaranteed while the units are moderate (the rounding bound grows with ‖P‖; that is why
        # check_lmi validates in the balanced coordinates and exports the original only when it validates)
        if scale <= 1.0:
            assert validate_certificate(s, back).ok


def test_balancing_is_exact_and_inverts_exactly():
    s = LureSystem(A=[[0.5, 1e4, 0.0], [1e-4, 0.5, 3e3], [0.0, 1e-3, 0.2]], B=[[1.0], [0.0], [1e2]],
                   C=[[1e-2, 0.0, 1.0]], D=[[0.0]], K=[1.0])
    bal = Balancing.of(s)
    assert np.all(np.log2(bal.T) == np.round(np.log2(bal.T))) and np.all(np.log2(bal.S) == np.round(np.log2(bal.S)))
    b = bal.apply(s)
    # powers of two: applying the inverse scaling recovers A bit for bit
    assert np.array_equal(b.A * bal.T[:, None] / bal.T[None, :], s.A)
    assert float(np.abs(b.A).max()) < 1e-2 * float(np.abs(s.A).max())
    np.testing.assert_allclose(_vertex_radii(b), _vertex_radii(s), rtol=1e-12)
