"""Regional results (docs/theory.md §6.2): the certified invariant ellipsoid, checked against hand-derived
radii, simulation, proved witnesses, tampering, the verdict rule and the renderers."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import tomllib
from _loop_cases import RELAY_LOOP, bypass_net
from scipy.optimize import brentq

from certify.loop.assemble import assemble
from certify.loop.regional import (
    RegionCertificate,
    check_loop_region,
    check_regional,
    local_channels,
    validate_region,
)
from certify.loop.spec import loop_from_mapping
from certify.report import Report, decide
from certify.results import CheckResult, CheckStatus, ExitCode, Property, Verdict
from certify.snof import SNOF, Channel

#: x⁺ = a x + b tanh(x) with b = −a/2.4: |f'(x)| = |a + b sech²x| < 1 exactly where sech²x > 0.4 for a = ±1.2,
#: i.e. |x| < arccosh(√2.5) (derived by hand); the circle LMI is exact for one state and one channel
R_STAR = float(np.arccosh(np.sqrt(2.5)))
#: tanh x = 0.4 x: the second equilibria of a = 1.2 and the period-2 orbit {±x₀} of a = −1.2
X_OTHER = brentq(lambda x: np.tanh(x) - 0.4 * x, 1.5, 4.0)


def scalar(a: float) -> SNOF:
    return SNOF(A=[[a]], B_p=[[-a / 2.4]], C_q=[[1.0]], channels=(Channel("tanh"),))


@pytest.fixture(scope="module")
def scalar_results():
    return {a: check_regional(scalar(a)) for a in (1.2, -1.2)}


def cert_of(res: CheckResult) -> RegionCertificate:
    return RegionCertificate.from_dict(res.quantities["ellipsoid"])


@pytest.mark.parametrize("a", [1.2, -1.2])
def test_scalar_radius_matches_the_hand_derived_one(scalar_results, a):
    res = scalar_results[a]
    assert res.status is CheckStatus.PROVED and res.property is Property.REGION and res.name == "loop.region"
    hw = res.quantities["states"][0]["half_width"]
    assert 0.97 * R_STAR < hw <= R_STAR, (hw, R_STAR)   # never beyond the exact contraction radius
    assert res.quantities["contraction_rate"] < 1.0
    kmin = res.quantities["channels"][0]["slope"]     # tanh' ≥ sech²(hw) > 0.4 on the region
    assert 0.4 < kmin[0] < 1.0 and kmin[1] == 1.0
    assert "not global stability" in res.message and "Global stability is not proved" in res.message


def test_second_equilibria_and_periodic_orbit_lie_outside(scalar_results):
    f2, fm = scalar(1.2), scalar(-1.2)
    for x in (X_OTHER, -X_OTHER):   # independent checks of the witnesses themselves
        assert abs(f2.step(np.array([x]), np.zeros(0))[0][0] - x) < 1e-12
        assert abs(fm.step(np.array([x]), np.zeros(0))[0][0] + x) < 1e-12
    for a in (1.2, -1.2):
        cert = cert_of(scalar_results[a])
        assert not cert.contains(np.array([[X_OTHER], [-X_OTHER]])).any()


@pytest.mark.parametrize("a", [1.2, -1.2])
def test_trajectories_from_the_region_converge_and_stay(scalar_results, a):
    cert = cert_of(scalar_results[a])
    hw = cert.half_widths()[0]
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-hw, hw, 200), [hw, -hw]])[:, None]
    f = scalar(a)
    for _ in range(400):
        x = f.step(x, np.zeros((x.shape[0], 0)))[0]
        assert cert.contains(x).all()
    assert np.max(np.abs(x)) < 1e-6
    # the loop is not globally stable: beyond the other equilibrium / the orbit trajectories diverge
    y = np.array([[1.05 * X_OTHER]])
    for _ in range(200):
        y = f.step(y, np.zeros((1, 0)))[0]
    assert abs(y[0, 0]) > 10.0


def test_validation_rejects_a_tampered_certificate(scalar_results):
    f = scalar(1.2)
    cert = cert_of(scalar_results[1.2])
    assert validate_region(f, cert).ok
    bad = {
        "P shrunk (a larger ellipsoid)": replace(cert, P=cert.P * 0.8),
        "c enlarged": replace(cert, c=cert.c * 1.25),
        "centre moved": replace(cert, centre=cert.centre + 0.3),
        "multipliers zeroed": replace(cert, multipliers=np.zeros_like(cert.multipliers)),
        "intervals beyond the contraction radius": replace(cert, q_lower=cert.q_lower - 1.0, q_upper=cert.q_upper + 1.0),
        "P indefinite": replace(cert, P=-cert.P),
        "P non-finite": replace(cert, P=np.full_like(cert.P, np.nan)),
    }
    for what, c in bad.items():
        v = validate_region(f, c)
        assert not v.ok, what


def test_local_slope_classes_of_the_saturation_and_relu():
    f = SNOF(A=np.zeros((1, 1)), B_p=np.zeros((1, 3)), C_q=np.ones((3, 1)),
             channels=(Channel("saturation", limits=(-1.0, 2.0)), Channel("saturation", limits=(-1.0, 2.0)),
                       Channel("relu")))
    cases = {(-0.5, 1.5): [(1.0, 1.0), (1.0, 1.0), (0.0, 1.0)], (2.5, 3.0): [(0.0, 0.0), (0.0, 0.0), (1.0, 1.0)],
             (1.0, 3.0): [(0.0, 1.0), (0.0, 1.0), (1.0, 1.0)], (-3.0, -0.5): [(0.0, 1.0), (0.0, 1.0), (0.0, 0.0)]}
    for (lo, hi), want in cases.items():
        g, _ = local_channels(f, np.full(3, lo), np.full(3, hi))
        assert [c.slope for c in g.channels] == want, (lo, hi)
        q = np.linspace(lo, hi, 201)   # the declared class holds for every difference quotient on the interval
        for ch, (s_lo, s_hi) in zip(g.channels, want):
            p = ch.evaluate(q)
            dq = (p[1:] - p[:-1]) / (q[1:] - q[:-1])
            assert np.all(dq >= s_lo - 1e-12) and np.all(dq <= s_hi + 1e-12)


def relay(kp: float, ki: float):
    spec = loop_from_mapping(tomllib.loads(RELAY_LOOP.format(kp=kp, ki=ki)))
    return assemble(bypass_net(), spec), spec


def test_loop_region_contains_only_converging_trajectories():
    cl, spec = relay(8.0, 3.0)
    res = check_loop_region(cl, spec)
    assert res.status is CheckStatus.PROVED
    cert = cert_of(res)
    states = res.quantities["states"]
    assert [s["name"] for s in states] == ["x1", "x2", "net.x[0]", "pi.u_prev", "pi.e_prev"]
    assert [s["plant"] for s in states] == [True, True, False, False, False]
    # random points of the ellipsoid (directions × radii in the P-metric), simulated with the real saturation
    rng = np.random.default_rng(0)
    L = np.linalg.cholesky(np.linalg.inv(cert.P))
    d = rng.normal(size=(300, cl.form.n))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    x0 = cert.centre + np.sqrt(cert.c) * (rng.uniform(0, 1, (300, 1)) ** 0.2 * d) @ L.T * (1 - 1e-9)
    assert cert.contains(x0).all()
    rho, res_norm = res.quantities["contraction_rate"], res.quantities["residual_P_norm"]
    pnorm = lambda z: np.sqrt(np.einsum("ki,ij,kj->k", z - cert.centre, cert.P, z - cert.centre))  # noqa: E731
    x = x0
    for _ in range(600):   # the claimed contraction towards the equilibrium, step by step
        x_next = cl.form.step(x, np.zeros((x.shape[0], 0)))[0]
        assert np.all(pnorm(x_next) <= rho * pnorm(x) + res_norm + 1e-12 * np.sqrt(cert.c))
        x = x_next
    assert np.max(pnorm(x)) < 1e-2 * np.max(pnorm(x0))
    # the actuator never saturates on this region: its local class is exactly linear
    assert res.quantities["channels"][-1]["slope"] == [1.0, 1.0]


def test_oscillating_loop_region_never_contains_the_proved_witness():
    from certify.loop.refute import refute_loop

    cl, spec = relay(50.0, 20.0)
    out = refute_loop(cl, spec)
    cex = out.counterexample
    assert cex is not None and cex.kind == "limit_cycle" and cex.data["proof"]["proved"]
    res = check_loop_region(cl, spec)
    if res.status is CheckStatus.PROVED:   # every point of the orbit must then lie outside the ellipsoid
        x = np.asarray(cex.data["x0"], dtype=np.float64)[None, :]
        for _ in range(int(cex.data.get("period", 1))):
            assert not cert_of(res).contains(x).any()
            x = cl.form.step(x, np.zeros((1, 0)))[0]
    else:   # here the equilibrium itself is unstable (its linearisation), so no region exists
        assert res.status is CheckStatus.NOT_PROVED and "spectral radius" in res.message


def test_region_never_certifies_and_never_changes_the_exit_code():
    region = CheckResult("loop.region", Property.REGION, CheckStatus.PROVED, "circle_local_slopes", margin=-1e-3)
    gas_no = CheckResult("loop.gas", Property.GAS, CheckStatus.NOT_PROVED, "structural_diagnosis", message="open")
    gas_ok = CheckResult("loop.gas", Property.GAS, CheckStatus.PROVED, "circle")
    assert decide([gas_no, region], [Property.GAS], "loop").verdict is Verdict.NOT_CERTIFIED
    assert decide([region], [Property.GAS], "loop").verdict is Verdict.NOT_CERTIFIED
    assert decide([region], [Property.GAS], "model").verdict is Verdict.NOT_CERTIFIED
    assert decide([gas_ok, region], [Property.GAS], "loop").verdict is Verdict.CERTIFIED
    for checks in ([gas_no], [gas_ok]):   # adding the region changes neither the verdict nor the exit code
        d0, d1 = decide(checks, [Property.GAS], "loop"), decide(checks + [region], [Property.GAS], "loop")
        assert (d0.verdict, d0.verdict.exit_code) == (d1.verdict, d1.verdict.exit_code)
    assert Verdict.NOT_CERTIFIED.exit_code is ExitCode.NOT_CERTIFIED


def test_gas_loop_is_certified_and_its_region_is_reported():
    from certify.loop.check import check_closed_loop
    from certify.loop.spec import default_loop
    from certify.networks import ElmanLayer, LinearHead, Network

    net = Network((ElmanLayer(W=np.zeros((1, 4)), U=[[0.5]], b=[0.0]),),
                  head=LinearHead(W=[[0.1]], b=[-30.0], D=[[1.2, 0, 0, 0]]))
    out = check_closed_loop(net, plant="boiler", simulate=False)
    spec = default_loop("boiler")
    res = check_loop_region(assemble(net, spec), spec)
    assert res.status is CheckStatus.PROVED and res.quantities.get("global_classes")
    checks = [c for c in out.checks if c.name != "loop.region"] + [res]
    assert decide(checks, [Property.GAS], "loop").verdict is Verdict.CERTIFIED


def test_reports_render_the_region_and_validate_against_the_schema(scalar_results):
    import jsonschema

    from certify.report import schema
    from certify.report.html import render_html
    from certify.report.markdown import render_markdown
    from certify.report.text import render_text

    res = scalar_results[1.2]
    gas = CheckResult("loop.gas", Property.GAS, CheckStatus.NOT_PROVED, "circle", message="vertex fails")
    rep = Report(model={"path": "m.onnx"}, checks=(gas, res), requested=(Property.GAS,), subject="loop",
                 loop={"name": "toy"}, created="2026-01-01", tool_version="0")
    assert rep.verdict is Verdict.NOT_CERTIFIED and rep.exit_code is ExitCode.NOT_CERTIFIED
    text = render_text(rep)
    assert "region of attraction (loop.region; regional only" in text and "x[0] = 0 ± 1.0" in text
    assert "exit code 1" in text
    assert "Region of attraction" in render_markdown(rep) and "Region of attraction</h3>" in render_html([rep])
    data = rep.to_dict()
    jsonschema.validate(data, schema())
    assert Report.from_dict(data).checks[1].property is Property.REGION


def test_unstable_equilibrium_and_unsupported_inputs_are_never_proved():
    unstable = check_regional(SNOF(A=[[0.5]], B_p=[[1.0]], C_q=[[1.0]], channels=(Channel("tanh"),)))  # f'(0) = 1.5
    assert unstable.status is CheckStatus.NOT_PROVED and "spectral radius" in unstable.message
    assert check_regional(None).status is CheckStatus.NOT_APPLICABLE   # not a SNOF (e.g. a gated loop map)
    cyclic = SNOF(A=[[0.5]], B_p=[[1.0, 0.0]], C_q=[[1.0], [0.0]], D_qp=[[0.0, 0.1], [0.1, 0.0]],
                  channels=(Channel("tanh"), Channel("tanh")))
    assert check_regional(cyclic).status is CheckStatus.NOT_APPLICABLE
