"""Closed loops: SNOF assembly vs block-by-block simulation, research-note test vectors T5/T6,
structural diagnoses, and convergence of every certified loop from many random starts."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from certify.errors import LoopSpecError
from certify.loop.assemble import assemble
from certify.loop.check import check_closed_loop, diagnose
from certify.loop.simulate import simulate_loop
from certify.loop.spec import DEFAULT_LOOPS, loop_from_mapping
from certify.networks import ElmanLayer, LinearHead, LPGRNNLayer, Network

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "models_zoo"

# lure notes §7 T5: A_p = [[0.8, 0.1], [0, 0.7]], B = [0; 0.5], s = [1, 0] x, Ts = 1, u in [0, 2].
T5_PLANT = {"A": [[0.8, 0.1], [0.0, 0.7]], "B": [[0.0], [0.5]], "C": [[1.0, 0.0]], "Ts": 1.0,
            "u_min": [0.0], "u_max": [2.0], "input_names": ["u"], "output_names": ["s"]}


def t5_loop(kp: float, ki: float, form: str = "velocity", reference: float = 0.5):
    return loop_from_mapping({
        "plant": dict(T5_PLANT),
        "network": {"inputs": ["y:s"], "output": 0, "estimates": "s"},
        "controller": {"kp": kp, "ki": ki, "actuator": "u", "reference": reference, "form": form},
    })


def measured_net(gain: float = 1.0) -> Network:
    """A "network" whose estimate is its input (a linear bypass) next to a dormant tanh neuron."""
    return Network((ElmanLayer(W=[[0.0]], U=[[0.0]], b=[0.0]),), head=LinearHead(W=[[0.0]], b=[0.0], D=[[gain]]))


def lpgrnn(rng, n_in, n=3, nr=2, scale=0.3, bypass=None, readout=1.0):
    layer = LPGRNNLayer(scale * rng.normal(size=(nr, n_in)), scale * rng.normal(size=(nr, n)), scale * rng.normal(size=nr),
                        scale * rng.normal(size=(n, n_in)), scale * rng.normal(size=(n, n)),
                        scale * rng.normal(size=(n, nr)), scale * rng.normal(size=n), rng.uniform(0.2, 0.8, size=n))
    D = None if bypass is None else np.atleast_2d(bypass)
    return Network((layer,), head=LinearHead(W=readout * scale * rng.normal(size=(1, n)), b=[0.0], D=D))


@pytest.mark.parametrize("reference", [0.5, 1.9])  # 1.9: the actuator saturates on the way
def test_closed_loop_snof_equals_block_simulation(reference):
    rng = np.random.default_rng(0)
    net = lpgrnn(rng, 1, bypass=[[0.5]])
    spec = t5_loop(2.0, 2.0, reference=reference)
    cl = assemble(net, spec)
    xp0, xn0, xc0 = np.array([3.0, -2.0]), rng.uniform(-1, 1, 3), np.array([1.0, 0.2])
    tr = simulate_loop(net, spec, 200, x_plant0=xp0, x_net0=xn0, x_ctrl0=xc0)
    sim = cl.form.simulate(np.zeros((200, 0)), np.concatenate([xp0, xn0, xc0]))
    assert np.max(np.abs(sim.x[:, :2] - tr.x_plant)) < 1e-10
    assert np.max(np.abs(sim.x[:, 2:5] - tr.x_net)) < 1e-10
    assert np.max(np.abs(sim.x[:, 5:] - tr.x_ctrl)) < 1e-10
    saturated = np.mean((tr.u <= 0.0) | (tr.u >= 2.0))
    assert saturated > 0.0  # the check covers the saturation being active


def test_positional_form_snof_equals_block_simulation():
    net = measured_net()
    spec = t5_loop(0.2, 0.1, form="positional")
    cl = assemble(net, spec)
    xc0 = np.array([0.3, 0.1])
    tr = simulate_loop(net, spec, 50, x_plant0=[1.0, 0.5], x_ctrl0=xc0)
    sim = cl.form.simulate(np.zeros((50, 0)), np.concatenate([[1.0, 0.5], [0.0], xc0]))
    assert np.max(np.abs(sim.x[:, :2] - tr.x_plant)) < 1e-10


def _converges(outcome, starts: int = 100, steps: int = 3000) -> float:
    """Max distance to the certified equilibrium after ``steps`` from ``starts`` random initial states."""
    cl = outcome.closed_loop
    x_star = np.asarray(outcome.checks[-1].quantities["equilibrium"]["x"])
    rng = np.random.default_rng(1)
    x0 = x_star + rng.uniform(-5, 5, size=(starts, cl.form.n))
    sim = cl.form.simulate(np.zeros((steps, starts, 0)), x0)
    return float(np.max(np.abs(sim.x[-1] - x_star)))


@pytest.mark.parametrize("kp, ki", [(0.2, 0.1), (0.5, 0.5)])
def test_t5_feasible_gains_certify_and_converge(kp, ki):
    spec = t5_loop(kp, ki)
    from certify.criteria.lmi import check_lmi

    cl = assemble(measured_net(), spec)
    res = check_lmi(cl.form)
    assert res.status.value == "proved", res.message
    out = type("O", (), {"closed_loop": cl, "checks": [res]})
    assert _converges(out) < 1e-8


def test_t5_high_gain_is_refused_by_the_vertex_condition():
    from certify.criteria.lmi import check_lmi

    cl = assemble(measured_net(), t5_loop(1.0, 1.0))
    res = check_lmi(cl.form)
    assert res.status.value == "not_proved"
    assert res.quantities["vertex_check"]["max_spectral_radius"] == pytest.approx(1.015, abs=2e-3)


def test_positional_pi_windup_is_diagnosed():
    spec = t5_loop(0.2, 0.1, form="positional")
    d = diagnose(assemble(measured_net(), spec), spec)
    assert d is not None and d["kind"] == "positional_pi_windup"
    assert "velocity" in d["message"]


def test_t6_integrator_without_linear_path_is_diagnosed():
    rng = np.random.default_rng(7)
    net = lpgrnn(rng, 1)  # no bypass: the estimate has no linear path from s
    for kp, ki in [(0.2, 0.1), (0.05, 0.01)]:
        spec = t5_loop(kp, ki)
        d = diagnose(assemble(net, spec), spec)
        assert d is not None and d["kind"] == "integrator_without_linear_path"
        assert d["spectral_radius"] == pytest.approx(1.0, abs=1e-9)


def test_bypass_removes_the_obstruction_and_certified_loops_converge():
    rng = np.random.default_rng(7)
    net = lpgrnn(rng, 1, bypass=[[0.5]], readout=0.2)
    spec = t5_loop(0.5, 0.5)
    assert diagnose(assemble(net, spec), spec) is None
    from certify.criteria.lmi import check_lmi

    cl = assemble(net, spec)
    res = check_lmi(cl.form)
    assert res.status.value == "proved", res.message
    out = type("O", (), {"closed_loop": cl, "checks": [res]})
    assert _converges(out) < 1e-8


def test_bundled_boiler_models_behave_as_documented():
    from certify.importers import load_model

    lin = check_closed_loop(load_model(ZOO / "boiler_lpgrnn_linear.onnx"), plant="boiler", simulate=False)
    assert [c for c in lin.checks if c.property.value == "gas"][-1].status.value == "proved"
    assert _converges(lin, steps=1500) < 1e-6
    plain = check_closed_loop(load_model(ZOO / "boiler_lpgrnn_plain.onnx"), plant="boiler", simulate=False)
    assert [c for c in plain.checks if c.property.value == "gas"][-1].status.value == "not_proved"
    assert plain.description["obstruction"]["kind"] == "integrator_without_linear_path"


def test_model_and_loop_dimension_mismatch_names_both_sides():
    rng = np.random.default_rng(3)
    net = lpgrnn(rng, 3, bypass=np.zeros((1, 3)))
    with pytest.raises(LoopSpecError, match=r"feeds 4 signal\(s\) to the network .* the model has 3 input\(s\)"):
        check_closed_loop(net, plant="boiler")


def test_high_gain_boiler_loop_is_not_certified():
    from certify.importers import load_model

    d = copy.deepcopy(DEFAULT_LOOPS["boiler"])
    d["controller"].update(kp=0.5, ki=0.05)
    net = load_model(ZOO / "boiler_lpgrnn_linear.onnx")
    spec = loop_from_mapping(d)
    from certify.criteria.lmi import check_lmi

    res = check_lmi(assemble(net, spec).form)
    assert res.status.value == "not_proved"
    assert res.quantities["vertex_check"]["ok"] is False


def test_readme_main_job_command_end_to_end():
    readme = (ROOT / "README.md").read_text()
    line = next(ln for ln in readme.splitlines() if "certify check models_zoo/" in ln and "--plant boiler" in ln)
    cmd = line.split("&&", 1)[1].strip().split()
    assert cmd[0] == "certify"
    r = subprocess.run([sys.executable, "-m", "certify", *cmd[1:], "--format", "json"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    import json

    rep = json.loads(r.stdout)
    assert rep["verdict"] == "certified"
    assert rep["simulation"]["max_final_distance_to_equilibrium"] < 1e-6


def test_state_space_soft_sensor_loop_certifies_and_converges():
    """An SS-NN (Schoukens 2021 form: linear part plus tanh corrections) with a direct term D as the linear
    path, in the T5 loop: certified end to end, and 100 far starts converge to the equilibrium."""
    from certify.networks import StateSpaceLayer

    rng = np.random.default_rng(5)
    g = lambda *s: 0.2 * rng.normal(size=s)  # noqa: E731
    layer = StateSpaceLayer(A=[[0.6, 0.1], [0.0, 0.5]], B=[[0.3], [0.2]], C=[[0.2, 0.1]], D=[[0.6]],
                            W_fx=g(3, 2), W_fu=g(3, 1), b_f=g(3), W_x=g(2, 3), b_x=np.zeros(2),
                            W_gx=g(2, 2), W_gu=g(2, 1), b_g=g(2), W_y=g(1, 2), b_y=np.zeros(1))
    net = Network((layer,), head=None)
    out = check_closed_loop(net, loop=t5_loop(0.4, 0.3), simulate=False)
    gas = [c for c in out.checks if c.property.value == "gas"]
    assert gas[-1].status.value == "proved", gas[-1].message
    assert gas[-1].validation["ok"] is True
    probe = type("O", (), {"closed_loop": out.closed_loop, "checks": gas})
    assert _converges(probe) < 1e-8
