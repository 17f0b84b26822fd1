"""Each structural diagnosis of a loop names the real cause, computed from the vertex analysis."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import certify
from certify.loop.assemble import assemble
from certify.loop.build import make_loop
from certify.loop.check import _dead_vertex, _vertex_matrix, diagnose, loop_gain_sign
from certify.networks import ElmanLayer, LinearHead, LPGRNNLayer, Network
from certify.results import Verdict


def bypass(gain: float = 1.0) -> Network:
    """Estimate = gain · measurement + a small stable recurrent part."""
    return Network((ElmanLayer(W=[[0.1]], U=[[0.2]], b=[0.0]),), head=LinearHead(W=[[0.05]], b=[0.0], D=[[gain]]))


def plain() -> Network:
    """Estimate through tanh neurons only: no linear path."""
    return Network((ElmanLayer(W=[[1.0]], U=[[0.2]], b=[0.0]),), head=LinearHead(W=[[1.0]], b=[0.0]))


def first_order(a: float = 0.9, b: float = 0.1, kp: float = 0.3, ki: float = 0.5, form: str = "velocity"):
    return make_loop({"A": [[a]], "B": [[b]], "C": [[1.0]], "Ts": 1.0, "u_min": [-1.0], "u_max": [1.0]},
                     inputs=["y:y0"], kp=kp, ki=ki, reference=0.2, form=form)


CASES = {
    "integrator_without_linear_path": (plain, dict()),
    "plant_not_stable_open_loop": (bypass, dict(a=1.05)),
    "loop_gain_wrong_sign": (lambda: bypass(-1.0), dict()),
    "pi_gains_too_high": (bypass, dict(kp=30.0, ki=40.0)),
    "positional_pi_windup": (bypass, dict(form="positional")),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_each_obstruction_is_named_for_its_cause(kind):
    make_net, kw = CASES[kind]
    net, spec = make_net(), first_order(**kw)
    d = diagnose(assemble(net, spec), spec, net)
    assert d is not None and d["kind"] == kind, d
    assert d["spectral_radius"] >= 1.0 - 1e-9  # the vertex really is not stable: no certificate can exist
    r = certify.check(net, loop=spec)
    if kind == "integrator_without_linear_path":
        # no global certificate exists; on the absorbing box the bounded tanh neurons' slopes are bounded
        # below and close the integrator (docs/theory.md §6.1): only that check may certify this loop
        assert not any(c.proved for c in r.checks if c.name == "loop.gas")
        assert all(c.name == "loop.gas.absorbing" for c in r.checks if c.proved)
    else:
        assert r.verdict is not Verdict.CERTIFIED
    if kind == "loop_gain_wrong_sign":
        assert "lower the pi gains" not in d["message"].lower()
        # and lowering the gains indeed never helps: the vertex stays unstable
        for s in (0.1, 0.01, 0.001):
            cl = assemble(net, replace(spec, controller=replace(spec.controller, kp=0.3 * s, ki=0.5 * s)))
            assert max(abs(np.linalg.eigvals(_vertex_matrix(cl, _dead_vertex(cl))))) > 1.0
    if kind == "pi_gains_too_high":
        s = d["stable_gain_scale"]
        cl = assemble(net, replace(spec, controller=replace(spec.controller, kp=30.0 * s, ki=40.0 * s)))
        assert max(abs(np.linalg.eigvals(_vertex_matrix(cl, _dead_vertex(cl))))) < 1.0


def test_a_linear_part_that_no_gain_fixes():
    lp = LPGRNNLayer(W_r=[[0.0]], U_r=[[0.0]], b_r=[0.0], W_h=[[0.1]], U_h=[[0.1]], V_h=[[0.0]], b_h=[0.0], z=[1.2])
    net = Network((lp,), head=LinearHead(W=[[0.05]], b=[0.0], D=[[1.0]]))
    spec = first_order()
    d = diagnose(assemble(net, spec), spec, net)
    assert d is not None and d["kind"] == "linear_part_unstable", d


def test_loop_gain_sign_matches_the_hand_computed_dc_gain():
    # plant DC gain b/(1−a) = 1, bypass gain ±1 (the recurrent part is off at the vertex)
    for gain in (1.0, -1.0, 2.5):
        net, spec = bypass(gain), first_order()
        assert loop_gain_sign(net, spec) == pytest.approx(gain, rel=1e-3)


def test_a_healthy_loop_has_no_obstruction():
    net, spec = bypass(), first_order()
    assert diagnose(assemble(net, spec), spec, net) is None
