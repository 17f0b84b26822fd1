"""The direct conic assembly (certify/sdp/conic.py) and the Riccati polish (certify/sdp/riccati.py) against the
CVXPY path and hand-derived answers: same matrices, same optimal margins, same decisions, and a destabilising
vertex never certifies."""

from __future__ import annotations

import numpy as np
import pytest

from certify.criteria.lmi import solve_lmi, vertex_check
from certify.criteria.validate import (
    LMICertificate,
    LureSystem,
    assemble_M,
    lmi_structure,
    scale_weights,
    validate_certificate,
)
from certify.sdp.conic import build_lmi_conic, unsvec_lower
from certify.sdp.riccati import riccati_P

CRITS = ("circle", "popov", "lure_postnikov")


def _small(seed: int = 1) -> LureSystem:
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(3, 3))
    A *= 0.7 / max(abs(np.linalg.eigvals(A)))
    return LureSystem(A=A, B=0.3 * rng.normal(size=(3, 2)), C=0.5 * rng.normal(size=(2, 3)),
                      D=[[0.0, 0.0], [0.2, 0.0]], K=[1.0, 2.0])


@pytest.mark.parametrize("crit", CRITS)
@pytest.mark.parametrize("form", ["congruence", "schur"])
def test_conic_data_is_the_lmi(crit, form):
    """For random (P, t, τ) the PSD block of the assembled data is exactly M(P, t) + τI (congruence form) or
    its Schur form [[M − H'PH + τI, H'P], [PH, −P]], rebuilt independently by assemble_M."""
    sys = _small()
    st = lmi_structure(sys, crit)
    d = build_lmi_conic(st.H, st.Ex, st.terms, st.multiplier_names, form=form, objective="max_margin",
                        weights=scale_weights(st), cap=1.0)
    x = np.random.default_rng(7).normal(size=d.n_variables)
    P, mult, tau = d.unpack(x)
    k = d.cone["z"] + d.cone["l"]
    S = unsvec_lower((d.A @ x - d.b)[k:], d.order)   # b − Ax = s = svec(−S)
    M = assemble_M(st, P, mult) + tau * np.eye(st.N)
    ref = M if form == "congruence" else np.block([[M - st.H.T @ P @ st.H, st.H.T @ P], [P @ st.H, -P]])
    assert np.abs(S - ref).max() < 1e-12
    # the normalisation row is s(P, t) = a tr P + Σ b_j Σ t_j
    a, b = scale_weights(st)
    assert d.A[0] @ x == pytest.approx(a * np.trace(P) + sum(b[j] * mult[j].sum() for j in mult))


@pytest.mark.parametrize("crit", CRITS)
def test_direct_max_margin_matches_interior_point(crit):
    """The optimal relative margin τ* of the directly assembled problem (SCS, tight tolerance) equals CVXPY +
    Clarabel's on the same normalised SDP."""
    sys = _small()
    ref = solve_lmi(sys, crit, solver="clarabel", assembly="cvxpy")
    att = solve_lmi(sys, crit, solver="scs", retry=True, margin=1.0,
                    solver_options={"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 100_000})
    assert ref.proved and att.proved
    assert att.tau == pytest.approx(ref.tau, rel=1e-5)


@pytest.mark.parametrize("b", [-1.4, -1.6, 0.4, 0.6, -2.2])
def test_scalar_exact_answer_direct_and_cvxpy(b):
    """x⁺ = 0.5x + b·tanh(x): absolutely stable for slope [0, 1] iff |0.5 + b| < 1 (both vertex gains Schur;
    docs/theory.md §7.5).  Both assemblies reach that verdict; a destabilising vertex never certifies."""
    sys = LureSystem(A=[[0.5]], B=[[b]], C=[[1.0]], D=[[0.0]], K=[1.0])
    exact = abs(0.5 + b) < 1.0
    assert vertex_check(sys).ok == exact
    for crit in CRITS:
        direct = solve_lmi(sys, crit, solver="scs", assembly="direct")
        plain = solve_lmi(sys, crit, solver="scs", assembly="cvxpy")
        assert direct.proved == plain.proved == exact, (crit, direct.message, plain.message)


def test_destabilising_vertex_never_certifies_even_after_polish():
    """A 2-state system whose all-K vertex has spectral radius > 1: neither the direct SCS path, its retry, nor
    the Riccati polish of any multipliers can produce a validated certificate."""
    A = np.array([[0.9, 0.2], [0.0, 0.8]])
    sys = LureSystem(A=A, B=[[0.0], [0.5]], C=[[1.0, 0.0]], D=[[0.0]], K=[1.0])
    vc = vertex_check(sys)
    assert not vc.ok and vc.worst_rho > 1.0
    for crit in CRITS:
        for retry in (False, True):
            assert not solve_lmi(sys, crit, solver="scs", retry=retry).proved
        st = lmi_structure(sys, crit)
        for scale in (0.1, 1.0, 10.0):
            mult = {k: np.full(sys.m, scale) for k in st.multiplier_names}
            P = riccati_P(st.G[:, :2], st.G[:, 2:], assemble_M(st, np.zeros((2, 2)), mult), 1e-3)
            assert P is None or not validate_certificate(sys, LMICertificate(crit, P, mult)).ok


@pytest.mark.parametrize("crit", CRITS)
def test_riccati_polish_recovers_P_from_multipliers(crit):
    """Keep only an interior-point solution's multipliers: the Riccati P at margin τ validates, and max eig M
    equals −τ (the KYP Riccati equation makes the Schur complement vanish)."""
    sys = _small()
    ref = solve_lmi(sys, crit, solver="clarabel", assembly="cvxpy")
    assert ref.proved
    st = lmi_structure(sys, crit)
    mult = dict(ref.certificate.multipliers)
    tau = 0.5 * ref.tau
    P = riccati_P(st.G[:, :3], st.G[:, 3:], assemble_M(st, np.zeros((3, 3)), mult), tau)
    val = validate_certificate(sys, LMICertificate(crit, P, mult))
    assert val.ok
    assert val.max_eig_M == pytest.approx(-tau, rel=1e-6)
