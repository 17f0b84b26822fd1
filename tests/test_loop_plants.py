"""Plants, PI controllers and loop files: published numbers, hand-computed steps, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from certify.errors import LoopSpecError
from certify.loop.boiler_model import U_OP4, X_OP4, boiler_f, boiler_jacobian, boiler_y
from certify.loop.builtin import quadruple_tank_equilibrium, quadruple_tank_plant
from certify.loop.controllers import PIController
from certify.loop.plants import get_plant, list_plants, load_plant_file, zoh
from certify.loop.spec import default_loop, load_loop_file

# plants.md §1.4: ZOH of the op-#4 linearisation at Ts = 1 s.
A_D_NOTES = np.array([[0.99749442, 0, 0], [0.06598155, 0.90483742, 0], [-0.0066857278, 0, 1]])
B_D_NOTES = np.array(
    [[0.89887202, -0.34860177, -0.149812], [0.030199521, 13.459008, -0.0050332534],
     [-0.0030098355, -1.3964798, 1.6593252]]
)


def test_boiler_linearisation_matches_research_notes():
    A, B = boiler_jacobian(X_OP4, U_OP4)
    assert A[0, 0] == pytest.approx(-0.0025087194, rel=1e-7)
    assert A[1, 0] == pytest.approx(0.069424063, rel=1e-7)
    Ad, Bd = zoh(A, B, 1.0)
    assert np.allclose(Ad, A_D_NOTES, atol=2e-8)
    assert np.allclose(Bd, B_D_NOTES, atol=2e-7)


def test_boiler_jacobian_matches_finite_differences():
    A, B = boiler_jacobian(X_OP4, U_OP4)
    h = 1e-6
    for j in range(3):
        e = np.zeros(3)
        e[j] = h
        assert np.allclose((boiler_f(X_OP4 + e, U_OP4) - boiler_f(X_OP4 - e, U_OP4)) / (2 * h), A[:, j], atol=1e-7)
        assert np.allclose((boiler_f(X_OP4, U_OP4 + e) - boiler_f(X_OP4, U_OP4 - e)) / (2 * h), B[:, j], atol=1e-6)


def test_boiler_level_at_operating_point_is_zero():
    # plants.md §1.3: y3 = 0 at point #4 (with the tabulated, slightly rounded u3).
    assert abs(boiler_y(X_OP4, U_OP4)[2]) < 0.01


def test_quadruple_tank_matches_research_notes():
    h = quadruple_tank_equilibrium()
    assert np.allclose(h, [0.653752, 0.649820, 0.659021, 0.658158], atol=2e-6)
    p = quadruple_tank_plant()
    A_d15 = np.array([[0.91419936, 0, 0.058572495, 0], [0, 0.90148255, 0, 0.055463174],
                      [0, 0, 0.93873211, 0], [0, 0, 0, 0.94158056]])
    B_d15 = np.array([[71.734377, 4.5070141], [4.9881668, 94.988995], [0, 145.35649], [169.83702, 0]])
    assert np.allclose(p.A, A_d15, atol=1e-7)
    assert np.allclose(p.B, B_d15, rtol=1e-6, atol=1e-6)


def test_builtin_registry_and_unknown_name():
    names = [row["name"] for row in list_plants()]
    assert names == ["boiler", "quadruple_tank"]
    assert get_plant("boiler").is_schur
    with pytest.raises(LoopSpecError, match="unknown plant 'boilr'.*boiler, quadruple_tank"):
        get_plant("boilr")


def test_pi_velocity_and_positional_hand_computed():
    pi = PIController(kp=0.5, ki=0.1, Ts=2.0, u_min=-1.0, u_max=1.0)
    s = pi.initial_state(u=0.0, e=0.0)
    s, u = pi.step(s, 0.5)
    assert u == pytest.approx(0.5 * 0.5 + 0.1 * 2.0 * 0.5)
    s, u = pi.step(s, 10.0)  # saturates, and the state keeps the saturated value (anti-windup)
    assert u == 1.0 and s[0] == 1.0
    pos = PIController(kp=0.5, ki=0.1, Ts=2.0, form="positional", u_bias=0.2)
    s = pos.initial_state(u=0.2, e=0.0)
    s, u = pos.step(s, 1.0)
    assert u == pytest.approx(0.2 + 0.5) and s[0] == pytest.approx(2.0) and s[1] == u


def test_plant_file_round_trip_and_errors(tmp_path):
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"A": [[0.5, 0], [0, 0.2]], "B": [[1], [0]], "C": [[1, 0]], "Ts": 0.1,
                             "input_names": ["q"], "output_names": ["h"]}))
    p = load_plant_file(f)
    assert p.n_states == 2 and p.output_names == ("h",)
    f.write_text(json.dumps({"A": [[0.5, 0], [0, 0.2]], "B": [[1], [0], [3]], "C": [[1, 0]], "Ts": 0.1}))
    with pytest.raises(LoopSpecError, match=r"B has shape \(3, 1\), expected \(2, \?\)"):
        load_plant_file(f)
    f.write_text("{not json")
    with pytest.raises(LoopSpecError, match="cannot be read"):
        load_plant_file(f)
    np.savez(tmp_path / "p.npz", A=np.eye(1) * 0.9, B=np.ones((1, 1)), C=np.ones((1, 1)), Ts=1.0)
    assert load_plant_file(tmp_path / "p.npz").Ts == 1.0


def test_continuous_plant_file_is_discretised(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[plant]\nA = [[-1.0]]\nB = [[1.0]]\nC = [[1.0]]\nTs = 1.0\ncontinuous = true\n')
    p = load_plant_file(f)
    assert p.A[0, 0] == pytest.approx(np.exp(-1.0))


@pytest.mark.parametrize(
    "body, message",
    [
        ('[plant]\nbuiltin = "boiler"\n[network]\ninputs = ["y:E"]\n[controller]\nkp=1\nki=1\nactuator="u1_fuel"\n'
         'reference=1\n[extra]\n', "unknown section"),
        ('[plant]\nbuiltin = "boiler"\n[network]\ninputs = ["y:Q"]\n[controller]\nkp=1\nki=1\nactuator="u1_fuel"\n'
         'reference=1\n', "has no output 'Q'; its outputs are: p, E"),
        ('[plant]\nbuiltin = "boiler"\n[network]\ninputs = ["u:u1_fuel"]\n[controller]\nkp=1\nki=1\n'
         'actuator="u1_fuel"\nreference=1\n', "algebraic loop"),
        ('[plant]\nbuiltin = "boiler"\n[network]\ninputs = ["y:E"]\n[controller]\nkp=1\nki=1\nactuator="u1_fuel"\n'
         'reference=1\nform="pid"\n', "form 'pid' is unknown"),
        ('[plant]\nbuiltin = "boiler"\n[network]\ninputs = ["y:E"]\n[controller]\nkp=1\nactuator="u1_fuel"\n'
         'reference=1\n', "needs 'ki'"),
        ("this is = not [toml", "not valid TOML"),
        ('[plant]\nA=[[0.5]]\nB=[[1,"a"]]\nC=[[1]]\nTs=1\n[network]\ninputs=["y:y1"]\n[controller]\nkp=1\nki=1\n'
         'actuator="u1"\nreference=0\n', "B is not a numeric array"),
        ('[plant]\nA=[[0.5]]\nB=[[1]]\nC=[[1]]\nTs=1\nu_min=["x"]\n[network]\ninputs=["y:y1"]\n[controller]\n'
         'kp=1\nki=1\nactuator="u1"\nreference=0\n', "u_min is not a list of numbers"),
        ('[plant]\nA=[[0.5]]\nB=[[1]]\nC=[[1]]\nTs=1\ncontinuous=true\nD=[[1, 2]]\n[network]\ninputs=["y:y1"]\n'
         '[controller]\nkp=1\nki=1\nactuator="u1"\nreference=0\n', r"D has shape \(1, 2\), expected \(1, 1\)"),
    ],
)
def test_bad_loop_files(tmp_path, body, message):
    f = tmp_path / "loop.toml"
    f.write_text(body)
    with pytest.raises(LoopSpecError, match=message):
        load_loop_file(f)


def test_loop_without_actuator_limits_is_refused_with_a_reason():
    from certify.loop.assemble import assemble
    from certify.loop.spec import loop_from_mapping
    from certify.networks import ElmanLayer, LinearHead, Network

    spec_body = {"plant": {"A": [[0.5]], "B": [[1.0]], "C": [[1.0]], "Ts": 1.0}, "network": {"inputs": ["y:y1"]},
                 "controller": {"kp": 0.1, "ki": 0.1, "actuator": "u1", "reference": 0.0}}
    spec = loop_from_mapping(spec_body)
    net = Network((ElmanLayer(W=[[0.0]], U=[[0.0]], b=[0.0]),), head=LinearHead(W=[[0.0]], b=[0.0], D=[[1.0]]))
    with pytest.raises(LoopSpecError, match="needs finite actuator limits"):
        assemble(net, spec)


def test_default_loops_parse():
    loop = default_loop("boiler")
    assert loop.plant.input_names[loop.actuator] == "u1_fuel"
    assert loop.controller.form == "velocity"
    with pytest.raises(LoopSpecError, match="unknown plant"):
        default_loop("nope")
