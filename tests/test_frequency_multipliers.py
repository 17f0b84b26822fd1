"""Circle-criterion multipliers from the frequency domain with P from the Riccati equation
(certify.criteria.frequency): hand-derived scalar margins, no certificate where the vertex gain destabilises,
consistency with the SDP and its dual certificates, and the closed loop it certifies converging in simulation."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certify.criteria.frequency import channel_groups, frequency_multipliers
from certify.criteria.lmi import infeasibility_certificate, solve_lmi, vertex_check
from certify.criteria.validate import validate_certificate
from certify.sdp.types import LureSystem

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def test_scalar_margin_is_the_hand_derived_one():
    """x⁺ = 0.5x − p, q = x: H(z) = 1 + 1/(z − 0.5), smallest real part 1/3 at z = −1, so λ_min Φ = 2/3 (T = 1)."""
    s = LureSystem(A=[[0.5]], B=[[-1.0]], C=[[1.0]], D=[[0.0]], K=[1.0])
    r = frequency_multipliers(s)
    assert r.grid_margin == pytest.approx(2.0 / 3.0, rel=1e-12)
    assert r.certificate is not None and validate_certificate(s, r.certificate).ok


def test_destabilising_vertex_gives_no_certificate():
    """Gain 3: the vertex x⁺ = −2.5x is unstable; H(−1) = 1 − 3/1.5 = −1 < 0, so nothing is proposed."""
    s = LureSystem(A=[[0.5]], B=[[-3.0]], C=[[1.0]], D=[[0.0]], K=[1.0])
    assert not vertex_check(s).ok
    r = frequency_multipliers(s)
    assert r.certificate is None and r.grid_margin == pytest.approx(-2.0, rel=1e-12)


def test_channel_groups_follow_levels_and_slopes():
    D = np.zeros((4, 4))
    D[2, 0] = D[2, 1] = D[3, 2] = 1.0
    s = LureSystem(A=[[0.5]], B=np.ones((1, 4)), C=np.ones((4, 1)), D=D, K=[0.25, 1.0, 1.0, 1.0])
    assert channel_groups(s).tolist() == [0, 1, 2, 3]
    s2 = LureSystem(A=[[0.5]], B=np.ones((1, 4)), C=np.ones((4, 1)), D=np.zeros((4, 4)), K=[1, 1, 0.25, 1])
    assert channel_groups(s2).tolist() == [0, 0, 1, 0]


@st.composite
def _systems(draw):
    n = draw(st.integers(1, 3))
    m = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    gain = draw(st.floats(0.2, 3.0))
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, n))
    A *= draw(st.floats(0.1, 0.95)) / max(abs(np.linalg.eigvals(A)))
    D = np.tril(rng.normal(size=(m, m)), -1) * draw(st.floats(0.0, 1.0))
    return LureSystem(A=A, B=gain * rng.normal(size=(n, m)), C=rng.normal(size=(m, n)), D=D,
                      K=rng.choice([0.25, 1.0], size=m))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_systems())
def test_a_validated_proposal_is_consistent_with_the_sdp_and_the_vertex_condition(s):
    """Whenever the proposal validates, the vertex necessary condition holds, the interior-point circle SDP
    finds a certificate too, and no dual certificate of infeasibility validates."""
    r = frequency_multipliers(s)
    if r.certificate is None or not validate_certificate(s, r.certificate).ok:
        return
    assert vertex_check(s).ok
    assert solve_lmi(s, "circle", solver="clarabel").decision != "infeasible"
    W, res = infeasibility_certificate(s, "circle")
    assert W is None or not res.ok


def _seeded_system(seed: int) -> LureSystem:
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    A = rng.normal(size=(n, n))
    A *= rng.uniform(0.1, 0.95) / max(abs(np.linalg.eigvals(A)))
    return LureSystem(A=A, B=rng.uniform(0.2, 3) * rng.normal(size=(n, m)), C=rng.normal(size=(m, n)),
                      D=np.tril(rng.normal(size=(m, m)), -1) * rng.uniform(), K=rng.choice([0.25, 1.0], size=m))


def test_on_small_systems_it_certifies_what_the_interior_point_sdp_certifies():
    """Against Clarabel's circle SDP on 30 random small systems (groups are mostly single channels there, so the
    search is the full circle criterion up to the grid): never more, and at most a tenth fewer."""
    freq, sdp = set(), set()
    for seed in range(30):
        s = _seeded_system(seed)
        r = frequency_multipliers(s)
        if r.certificate is not None and validate_certificate(s, r.certificate).ok:
            freq.add(seed)
        if solve_lmi(s, "circle", solver="clarabel").proved:
            sdp.add(seed)
    assert len(sdp) >= 5                       # the comparison is not vacuous
    assert freq <= sdp
    assert len(freq) >= 0.9 * len(sdp), (sorted(sdp - freq), len(sdp))


def test_degenerate_systems_and_bad_settings():
    static = LureSystem(A=np.zeros((0, 0)), B=np.zeros((0, 1)), C=np.zeros((1, 0)), D=[[0.0]], K=[1.0])
    assert frequency_multipliers(static).reason == "no states or no channels"
    s = LureSystem(A=[[0.5]], B=[[-1.0]], C=[[1.0]], D=[[0.0]], K=[1.0])
    with pytest.raises(ValueError, match="max_rounds"):
        frequency_multipliers(s, max_rounds=0)


@pytest.fixture(scope="module")
def loop64():
    from lmi_scaling import random_loop

    return random_loop(64)


def test_loop_is_certified_by_group_multipliers_and_converges(loop64):
    """Boiler loop around an LP-GRNN of 64 units (order 165, SCS by default): certified by the frequency-domain
    multipliers first; the certificate validates on its own and the loop converges from far starts."""
    from certify.criteria.lmi import check_lmi

    res = check_lmi(loop64, name="loop.gas")
    assert res.proved, res.message
    tried = res.quantities["criteria_tried"]
    assert tried[0]["solver"] == "frequency+riccati" and tried[0]["proved"] and len(tried) == 1
    assert res.solver == "frequency+riccati"
    assert res.validation["max_eig_M"] <= -res.validation["margin_required_M"]
    from certify.verify import verify_certificate

    assert verify_certificate(res.certificate).ok         # the exported certificate re-checks without a solver
    f = loop64
    rng = np.random.default_rng(1)
    scale = np.maximum(np.abs(np.asarray(res.quantities["equilibrium"]["x"])), 1.0)
    x0 = rng.uniform(-5, 5, size=(6, f.n)) * scale
    steps = int(np.ceil(25 / (1 - max(abs(np.linalg.eigvals(f.A))))))
    final = f.simulate(np.zeros((steps, 6, f.n_w)), x0).x[-1]
    assert np.all(np.isfinite(final))
    assert float(np.max(np.ptp(final, axis=0))) < 1e-6 * float(np.max(np.abs(final), initial=1.0))


def test_an_explicit_solver_is_not_bypassed(loop64):
    from certify.criteria.lmi import check_lmi

    res = check_lmi(loop64, name="loop.gas", solver="scs")
    assert res.quantities["criteria_tried"][0]["solver"] == "scs"


def test_groups_are_split_when_the_level_groups_are_too_coarse():
    """The boiler loop around 128 units: gates / hidden units / saturation as three groups leave the frequency
    condition violated on the grid; splitting the groups by their supergradient certifies it."""
    from lmi_scaling import random_loop

    from certify.criteria.lmi import lure_system
    from certify.criteria.reductions import Balancing
    from certify.snof.transform import equilibrium

    form = random_loop(128)
    s0, _, _ = lure_system(form, equilibrium(form))
    s = Balancing.of(s0).apply(s0)
    assert int(channel_groups(s).max()) + 1 == 3
    assert frequency_multipliers(s, max_splits=0).certificate is None
    r = frequency_multipliers(s)
    assert r.groups > 3 and r.certificate is not None
    assert validate_certificate(s, r.certificate).ok


@pytest.mark.parametrize("a", [1.0, 1.2, -1.0])
def test_no_proposal_when_the_linear_part_is_not_schur(a):
    """A pole on or outside the unit circle: H is singular or the frequency condition is not sufficient; the
    search proposes nothing (no exception) and the SDP decides."""
    s = LureSystem(A=[[a]], B=[[-0.1]], C=[[1.0]], D=[[0.0]], K=[1.0])
    r = frequency_multipliers(s)
    assert r.certificate is None and r.reason == "A is not Schur stable"
