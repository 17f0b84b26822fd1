"""Loops around GRU/LSTM soft sensors: contraction on a proved absorbing box (docs/theory.md §6.3).

References used here, all independent of the certificate:
* the block-by-block simulation :func:`certify.loop.simulate.simulate_loop` for the loop map;
* central finite differences of the float step for the Jacobian representation (LFT);
* point evaluations for the interval enclosures;
* simulation from 100 far starts, with the real saturation, for every certified loop;
* a bistable network (two different limits in simulation) that must never be certified, and whose two
  equilibria the loop search proves (``unstable``), re-proved on a freshly built loop map.
"""

from __future__ import annotations

import numpy as np
import pytest

import certify
from certify.loop.build import make_loop
from certify.loop.contraction import check_contraction, lure_from_lft, tangent_lft
from certify.loop.gated import GatedLoopSystem, absorbing_box, gated_loop
from certify.loop.simulate import simulate_loop
from certify.networks import GRULayer, LinearHead, LSTMLayer, Network
from certify.witness.proofs import verify_witness

PLANT = {"A": [[0.8]], "B": [[0.2]], "C": [[1.0]], "D": [[0.0]], "u_min": [-1.0], "u_max": [1.0], "Ts": 1.0}
PLANT2 = {"A": [[0.9, 0.1], [-0.1, 0.7]], "B": [[0.1], [0.2]], "C": [[1.0, 0.5]], "D": [[0.0]],
          "u_min": [-2.0], "u_max": [1.5], "Ts": 0.5}


def _spec(plant=PLANT, kp=0.3, ki=0.5, reference=0.2):
    return make_loop(plant, inputs=["y:y0", "u_prev:u0"], kp=kp, ki=ki, reference=reference)


def _gru(H, m, rng, scale, reset_after=True):
    g = lambda *s: scale * rng.normal(size=s)  # noqa: E731
    return GRULayer(W_z=g(H, m), W_r=g(H, m), W_n=g(H, m), U_z=g(H, H), U_r=g(H, H), U_n=g(H, H), b_z=g(H),
                    b_r=g(H), b_in=g(H), b_hn=g(H), reset_after=reset_after)


def _lstm(H, m, rng, scale):
    g = lambda *s: scale * rng.normal(size=s)  # noqa: E731
    return LSTMLayer(W_i=g(H, m), W_f=g(H, m), W_g=g(H, m), W_o=g(H, m), U_i=g(H, H), U_f=g(H, H), U_g=g(H, H),
                     U_o=g(H, H), b_i=g(H), b_f=g(H), b_g=g(H), b_o=g(H))


def _net(layers, rng, H):
    return Network(tuple(layers), head=LinearHead(W=0.15 * rng.normal(size=(1, H)), b=[0.05], D=[[0.8, 0.0]]))


def _cases():
    rng = np.random.default_rng(3)
    return {
        "gru_reset_after": _net([_gru(4, 2, rng, 0.15, True)], rng, 4),
        "gru_reset_before": _net([_gru(4, 2, rng, 0.15, False)], rng, 4),
        "lstm": _net([_lstm(3, 2, rng, 0.15)], rng, 3),
        "gru_lstm_stack": _net([_gru(3, 2, rng, 0.1), _lstm(2, 3, rng, 0.1)], rng, 2),
    }


CASES = _cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_loop_map_equals_block_by_block_simulation(name):
    net, spec = CASES[name], _spec(PLANT2)
    gl = gated_loop(net, spec)
    rng = np.random.default_rng(0)
    xn0 = rng.uniform(-1, 1, net.n_states)
    tr = simulate_loop(net, spec, 30, x_plant0=np.array([0.3, -0.2]), x_net0=xn0, x_ctrl0=np.array([0.4, 0.1]))
    x = np.concatenate([tr.x_plant[0], tr.x_net[0], tr.x_ctrl[0]])[None, :]
    for k in range(30):
        x = gl.step(x)
        ref = np.concatenate([tr.x_plant[k + 1], tr.x_net[k + 1], tr.x_ctrl[k + 1]])
        np.testing.assert_allclose(x[0], ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_interval_step_and_lft_enclose_the_real_map(name):
    """F(x) ∈ F♯(B) for points of B, and the LFT at the point gains equals the finite-difference Jacobian."""
    net, spec = CASES[name], _spec(PLANT2)
    gl = gated_loop(net, spec)
    rng = np.random.default_rng(1)
    c = rng.uniform(-0.5, 0.5, gl.n)
    lo, hi = c - 0.3, c + 0.3
    (flo, fhi), _ = gl.interval_step((lo, hi))
    pts = lo + (hi - lo) * rng.uniform(size=(200, gl.n))
    F = gl.step(pts)
    assert np.all(F >= flo) and np.all(F <= fhi)
    lft = tangent_lft(gl, (lo, hi))
    for x in pts[:6]:
        pt = tangent_lft(gl, (x, x))  # gains at the point: a (rounded-outward) degenerate box
        assert np.all(pt.lower >= lft.lower - 1e-12) and np.all(pt.upper <= lft.upper + 1e-12)
        J = pt.jacobian((pt.lower + pt.upper) / 2)
        h = 1e-6
        Jfd = np.column_stack([(gl.step(x + h * e)[0] - gl.step(x - h * e)[0]) / (2 * h) for e in np.eye(gl.n)])
        np.testing.assert_allclose(J, Jfd, atol=1e-6)


def test_absorbing_box_is_entered_from_far_starts_and_invariant():
    net, spec = CASES["gru_reset_after"], _spec()
    gl = gated_loop(net, spec)
    box = absorbing_box(gl)
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, size=(100, gl.n)) * np.r_[50.0, [5.0] * net.n_states, 3.0, 40.0]
    for _ in range(200):
        x = gl.step(x)
    assert np.all(x >= box.lower - 1e-9) and np.all(x <= box.upper + 1e-9)
    inside = box.lower + (box.upper - box.lower) * rng.uniform(size=(500, gl.n))
    y = gl.step(inside)
    assert np.all(y >= box.lower) and np.all(y <= box.upper)


@pytest.mark.parametrize("name", sorted(CASES))
def test_certified_gated_loops_converge_from_far_starts(name):
    net, spec = CASES[name], _spec()
    res = check_contraction(net, spec)
    assert res.status.value == "proved", res.message
    assert res.validation["ok"] is True
    rho = res.quantities["contraction_factor_bound"]
    assert 0.0 < rho < 1.0
    gl = gated_loop(net, spec)
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, size=(100, gl.n)) * np.r_[20.0, [3.0] * net.n_states, 5.0, 10.0]
    for _ in range(3000):
        x = gl.step(x)
    x_star = np.asarray(res.quantities["equilibrium"]["x"])
    assert np.max(np.abs(x - x_star)) < 1e-6


def test_hand_derived_equilibrium_of_a_constant_gru():
    """Zero weights: h* = tanh(b_in), and e = 0 at the equilibrium gives y* = (r − W h* − b)/0.8."""
    H, m = 2, 2
    Z = lambda *s: np.zeros(s)  # noqa: E731
    b_in = np.array([0.1, -0.3])
    layer = GRULayer(W_z=Z(H, m), W_r=Z(H, m), W_n=Z(H, m), U_z=Z(H, H), U_r=Z(H, H), U_n=Z(H, H), b_z=Z(H) + 0.5,
                     b_r=Z(H), b_in=b_in, b_hn=Z(H))
    W = np.array([[0.2, -0.4]])
    net = Network((layer,), head=LinearHead(W=W, b=[0.05], D=[[0.8, 0.0]]))
    spec = _spec()
    res = check_contraction(net, spec)
    assert res.proved
    x = np.asarray(res.quantities["equilibrium"]["x"])
    h = np.tanh(b_in)
    y = (0.2 - W @ h - 0.05) / 0.8
    np.testing.assert_allclose(x[1:3], h, atol=1e-9)
    np.testing.assert_allclose(x[0], y[0], atol=1e-9)
    np.testing.assert_allclose(x[3], y[0] * (1 - 0.8) / 0.2, atol=1e-9)  # u* from the plant's steady state
    assert abs(x[4]) < 1e-9  # e* = 0 (integral action)


def test_bistable_gru_is_never_certified():
    """U_n = 3 I makes each unit bistable (h = tanh(3h) has three roots): two limits in simulation."""
    H, m = 2, 2
    Z = lambda *s: np.zeros(s)  # noqa: E731
    layer = GRULayer(W_z=Z(H, m), W_r=Z(H, m), W_n=Z(H, m), U_z=Z(H, H), U_r=Z(H, H), U_n=3.0 * np.eye(H),
                     b_z=Z(H), b_r=Z(H) + 5.0, b_in=Z(H), b_hn=Z(H))
    net = Network((layer,), head=LinearHead(W=[[0.3, 0.3]], b=[0.0], D=[[0.8, 0.0]]))
    spec = _spec()
    gl = gated_loop(net, spec)
    x0 = np.zeros((2, gl.n))
    x0[0, 1:3], x0[1, 1:3] = 0.9, -0.9
    for _ in range(2000):
        x0 = gl.step(x0)
    assert np.max(np.abs(x0[0] - x0[1])) > 0.5  # two different equilibria: no global stability
    res = check_contraction(net, spec)
    assert not res.proved
    r = certify.check(net, loop=spec)
    assert r.verdict.value == "unstable"  # the loop search proves the two equilibria (Krawczyk, Arb)
    cex = r.counterexample
    assert cex.kind == "multiple_equilibria"
    proof = cex.data["proof"]
    # re-proved from the stored numbers on a freshly built loop map, and the two points really are fixed points
    assert verify_witness(GatedLoopSystem(gated_loop(net, spec)), proof).proved
    for key in ("x_a", "x_b"):
        x = np.asarray(cex.data[key])
        assert np.max(np.abs(gl.step(x[None, :])[0] - x)) < 1e-9


def test_lft_loop_transformation_preserves_the_jacobians():
    net, spec = CASES["lstm"], _spec()
    gl = gated_loop(net, spec)
    box = absorbing_box(gl)
    lft = tangent_lft(gl, (box.lower, box.upper))
    sys = lure_from_lft(lft)
    rng = np.random.default_rng(4)
    for _ in range(5):
        theta = rng.uniform(size=lft.lower.shape)
        delta = lft.lower + theta * (lft.upper - lft.lower)
        k = delta - lft.lower  # p̃ = (δ − l) q
        J = sys.A + sys.B @ np.diag(k) @ np.linalg.solve(np.eye(sys.m) - sys.D @ np.diag(k), sys.C)
        np.testing.assert_allclose(J, lft.jacobian(delta), atol=1e-10)


def test_not_applicable_cases_say_why():
    net = CASES["gru_reset_after"]
    spec = make_loop(PLANT, inputs=["y:y0", "u_prev:u0"], kp=0.3, ki=0.5, reference=0.2, form="positional")
    res = check_contraction(net, spec)
    assert res.status.value == "not_applicable" and "positional" in res.message


def test_gated_loop_through_the_api_reports_the_method():
    r = certify.check(CASES["gru_reset_after"], loop=_spec())
    assert r.verdict.value == "certified" and r.exit_code == 0
    (chk,) = [c for c in r.checks if c.name == "loop.gas.contraction"]
    assert chk.criterion == "contraction_circle"
    assert r.to_dict()["loop"]["equilibrium"]["reference"] == 0.2


LOOP_TOML = """
[plant]
A = [[0.8]]
B = [[0.2]]
C = [[1.0]]
D = [[0.0]]
Ts = 1.0
u_min = [-1.0]
u_max = [1.0]

[network]
inputs = ["y:y1", "u_prev:u1"]
output = 0

[controller]
type = "pi"
form = "velocity"
kp = 0.3
ki = 0.5
actuator = "u1"
reference = 0.2
"""


def test_cli_gated_onnx_in_a_loop_file_gets_an_answer_not_a_refusal(tmp_path):
    """The bundled 4-unit GRU (no linear path to the estimate) in a loop file: checked, not refused (exit 1,
    with the reason from the Jacobian set), and the JSON names the method."""
    import json
    from pathlib import Path

    from certify.cli import main

    loop = tmp_path / "loop.toml"
    loop.write_text(LOOP_TOML)
    model = Path(__file__).resolve().parents[1] / "models_zoo" / "gru_small.onnx"
    out = tmp_path / "r.json"
    code = main(["check", str(model), "--loop", str(loop), "-o", str(out), "-q"])
    data = json.loads(out.read_text())
    assert code == 1 and data["verdict"] == "not_certified"
    (chk,) = [c for c in data["checks"] if c["name"] == "loop.gas.contraction"]
    assert chk["status"] == "not_proved"
    nec = chk["quantities"]["necessary_condition"]
    assert nec["max_spectral_radius_lft_vertices"] >= 1.0 > nec["max_spectral_radius_sampled"]
