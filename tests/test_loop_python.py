"""Loops built in Python: python-control plants, PI gains as arguments, the PI sweep."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import certify
from certify.errors import LoopSpecError
from certify.loop.assemble import assemble
from certify.loop.build import make_loop, sweep_pi
from certify.loop.check import resolve_loop
from certify.loop.spec import default_loop
from certify.networks import ElmanLayer, LinearHead, Network
from certify.results import Verdict

control = pytest.importorskip("control")

A_C = np.array([[0.0, 1.0], [-4.0, -0.4]])  # a lightly damped mode
B_C = np.array([[0.0], [4.0]])
C = np.array([[1.0, 0.0]])
D = np.zeros((1, 1))


def _net():
    """Estimate = the measurement plus a small stable recurrent part (a linear bypass)."""
    return Network((ElmanLayer(W=[[0.1]], U=[[0.2]], b=[0.0]),), head=LinearHead(W=[[0.05]], b=[0.0], D=[[1.0]]))


LOOP_FILE = """
name = "mode"
[plant]
A = {A}
B = {B}
C = [[1.0, 0.0]]
D = [[0.0]]
Ts = 0.1
continuous = true
u_min = [-1.0]
u_max = [1.0]
input_names = ["u"]
output_names = ["y"]
[network]
inputs = ["y:y"]
[controller]
kp = 0.3
ki = 0.5
actuator = "u"
reference = 0.2
"""


def _forms_equal(a, b):
    for name in ("A", "B_p", "C_q", "D_qp", "b_x", "b_q"):
        assert np.allclose(getattr(a, name), getattr(b, name), atol=1e-12, rtol=1e-12), name
    assert [c.kind for c in a.channels] == [c.kind for c in b.channels]


def test_a_loop_from_a_python_control_plant_equals_the_same_loop_from_a_file(tmp_path):
    path = tmp_path / "mode.toml"
    path.write_text(LOOP_FILE.format(A=A_C.tolist(), B=B_C.tolist()))
    from_file = resolve_loop(None, str(path))
    sys_c = control.ss(A_C, B_C, C, D, inputs=["u"], outputs=["y"])
    from_ct = make_loop(sys_c, Ts=0.1, inputs=["y:y"], kp=0.3, ki=0.5, reference=0.2, u_min=-1.0, u_max=1.0)
    _forms_equal(assemble(_net(), from_file).form, assemble(_net(), from_ct).form)
    # the same plant discretised by python-control (zero-order hold) gives the same loop
    sys_d = control.c2d(sys_c, 0.1, method="zoh")
    from_dt = make_loop(sys_d, inputs=["y:y"], kp=0.3, ki=0.5, reference=0.2, u_min=-1.0, u_max=1.0)
    _forms_equal(assemble(_net(), from_file).form, assemble(_net(), from_dt).form)
    # and certify.check gives the same verdict for the object and the file
    a = certify.check(_net(), loop=from_ct)
    b = certify.check(_net(), loop=str(path))
    assert a.verdict is b.verdict


def test_make_loop_refuses_what_a_loop_file_would():
    sys_c = control.ss(A_C, B_C, C, D)
    with pytest.raises(LoopSpecError, match="sampling time"):
        make_loop(sys_c, inputs=["y:y0"], kp=0.3, ki=0.5, reference=0.2)
    with pytest.raises(LoopSpecError):
        make_loop(sys_c, Ts=0.1, inputs=["y:nope"], kp=0.3, ki=0.5, reference=0.2)
    with pytest.raises(LoopSpecError):
        make_loop(object(), inputs=["y:y"], kp=0.3, ki=0.5, reference=0.2)
    with pytest.raises(LoopSpecError):
        make_loop(sys_c, Ts=0.1, inputs=["y:y[0]"], kp=0.3, ki=0.5, reference=0.2, actuator=3)


def test_builtin_plant_by_name_matches_the_default_loop():
    ref = default_loop("boiler")
    spec = make_loop("boiler", inputs=["y:E", "u_prev:u1_fuel", "u:u2_steam_valve", "u:u3_feedwater"],
                     kp=ref.controller.kp, ki=ref.controller.ki, reference=ref.reference, actuator="u1_fuel",
                     estimates="p")
    net = Network((ElmanLayer(W=np.zeros((1, 4)), U=[[0.5]], b=[0.0]),),
                  head=LinearHead(W=[[0.1]], b=[-30.0], D=[[1.2, 0, 0, 0]]))
    _forms_equal(assemble(net, ref).form, assemble(net, spec).form)


def test_pi_sweep_maps_certified_gains_and_never_certifies_a_destabilising_pair():
    sys_c = control.ss(A_C, B_C, C, D, inputs=["u"], outputs=["y"])
    spec = make_loop(sys_c, Ts=0.1, inputs=["y:y"], kp=0.3, ki=0.5, reference=0.2, u_min=-1.0, u_max=1.0)
    kp, ki = [0.05, 0.3, 40.0], [0.05, 30.0]
    sweep = sweep_pi(_net(), spec, kp=kp, ki=ki)
    assert sweep.certified.shape == (2, 3) and sweep.certified.any()
    for i, k_i in enumerate(ki):
        for j, k_p in enumerate(kp):
            if not sweep.certified[i, j]:
                continue
            # a certified pair: the linear loop with every slope at 1 must be Schur (a necessary condition),
            # and simulation from far starts with the real saturation must settle
            s = replace(spec, controller=replace(spec.controller, kp=k_p, ki=k_i))
            cl = assemble(_net(), s)
            rng = np.random.default_rng(0)
            X = rng.uniform(-3, 3, size=(100, cl.form.n))
            for _ in range(4000):
                X = cl.form.step(X, np.zeros((100, 0)))[0]
            assert np.ptp(X, axis=0).max() < 1e-6, (k_p, k_i)
    assert not sweep.certified[1, 2]  # kp = 40, ki = 30: the linear loop is unstable
    html = sweep.to_html()
    assert "<svg" in html and "Certified PI gains" in html
    r = certify.check(_net(), loop=spec)
    assert r.verdict in (Verdict.CERTIFIED, Verdict.NOT_CERTIFIED)


def test_sweep_pi_refuses_gains_that_are_not_numbers():
    spec = make_loop(control.ss(A_C, B_C, C, D, inputs=["u"], outputs=["y"]), Ts=0.1, inputs=["y:y"], kp=0.3,
                     ki=0.5, reference=0.2, u_min=-1.0, u_max=1.0)
    for kp, ki in ((["a"], [0.1]), ([], [0.1]), ([float("nan")], [0.1]), (3, [0.1])):
        with pytest.raises(LoopSpecError):
            sweep_pi(_net(), spec, kp=kp, ki=ki)
