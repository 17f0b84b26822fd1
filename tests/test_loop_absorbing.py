"""Absorbing-set slope tightening (docs/theory.md §6.1): the box, its invariance proof, the tightened κ, and
the loops it certifies (checked by simulation from far starts) or must not certify."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from certify.errors import InvalidInputError
from certify.loop.absorbing import (
    absorbing_set,
    check_absorbing,
    prove_invariant,
    slope_bounds,
    tighten_channels,
)
from certify.loop.assemble import assemble
from certify.loop.check import check_closed_loop, diagnose
from certify.loop.spec import loop_from_mapping
from certify.networks import ElmanLayer, LinearHead, LPGRNNLayer, Network
from certify.snof import SNOF, Channel

ZOO = Path(__file__).resolve().parents[1] / "models_zoo"

T5_PLANT = {"A": [[0.8, 0.1], [0.0, 0.7]], "B": [[0.0], [0.5]], "C": [[1.0, 0.0]], "Ts": 1.0,
            "u_min": [0.0], "u_max": [2.0], "input_names": ["u"], "output_names": ["s"]}


def t5_loop(kp: float, ki: float, form: str = "velocity", reference: float = 0.5):
    return loop_from_mapping({
        "plant": dict(T5_PLANT),
        "network": {"inputs": ["y:s"], "output": 0, "estimates": "s"},
        "controller": {"kp": kp, "ki": ki, "actuator": "u", "reference": reference, "form": form},
    })


def plain_lpgrnn(seed: int = 1, n_in: int = 1, n: int = 3, nr: int = 2, scale: float = 0.4, readout: float = 3.0):
    """An LP-GRNN soft sensor without a linear path (its estimate is a read-out of the state only)."""
    rng = np.random.default_rng(seed)
    layer = LPGRNNLayer(scale * rng.normal(size=(nr, n_in)), scale * rng.normal(size=(nr, n)), scale * rng.normal(size=nr),
                        scale * rng.normal(size=(n, n_in)), scale * rng.normal(size=(n, n)),
                        scale * rng.normal(size=(n, nr)), scale * rng.normal(size=n), rng.uniform(0.2, 0.8, size=n))
    return Network((layer,), head=LinearHead(W=readout * scale * rng.normal(size=(1, n)), b=[0.0]))


def far_starts(cl, spec, x_star: np.ndarray, count: int = 100, seed: int = 0) -> np.ndarray:
    """Plant states ±50 % around the operating point (or the equilibrium, ±1 where it is 0), network states in
    [−3, 3], the actuator anywhere in its range, the PI's stored error ±5."""
    rng = np.random.default_rng(seed)
    p, pi = spec.plant, spec.controller
    centre = np.where(np.abs(p.x_op) > 0, p.x_op, x_star[cl.plant_states])
    spread = np.maximum(0.5 * np.abs(centre), 1.0)
    xp = centre + spread * rng.uniform(-1, 1, size=(count, p.n_states))
    xn = rng.uniform(-3, 3, size=(count, cl.n_net))
    xc = np.column_stack([rng.uniform(pi.u_min, pi.u_max, size=count), rng.uniform(-5, 5, size=count)])
    return np.hstack([xp, xn, xc])


def derivative(ch: Channel, q: np.ndarray) -> np.ndarray:
    v = ch.in_gain * q + ch.q_offset
    return 1.0 / np.cosh(v) ** 2 if ch.kind == "tanh" else 1.0 / (2.0 + np.exp(v) + np.exp(-v))


def preactivations(form: SNOF, x: np.ndarray) -> np.ndarray:
    q = x @ form.C_q.T + form.b_q
    p = np.zeros(q.shape)
    for _ in range(form.m):  # forward substitution (D_qp nilpotent)
        q = x @ form.C_q.T + p @ form.D_qp.T + form.b_q
        p = np.stack([c.evaluate(q[:, i]) for i, c in enumerate(form.channels)], axis=1)
    return q


def interval_recheck(form: SNOF, lo: np.ndarray, hi: np.ndarray, slack: float = 1e-9) -> bool:
    """An independent (float, generously padded) interval evaluation of f over [lo, hi]: f(B) ⊂ B + slack."""
    def mv(M, a, b):
        Mp, Mn = np.maximum(M, 0), np.minimum(M, 0)
        return Mp @ a + Mn @ b, Mp @ b + Mn @ a

    def chans(ql, qh):
        out = []
        for c, a, b in zip(form.channels, ql, qh):
            ends = sorted(c.evaluate(np.array([a, b])).tolist())  # channels are monotone here (no lin term)
            out.append(ends)
        r = np.array(out)
        return r[:, 0], r[:, 1]

    ql, qh = mv(form.C_q, lo, hi)
    ql, qh = ql + form.b_q, qh + form.b_q
    pl, ph = chans(ql, qh)
    for _ in range(form.m):
        dl, dh = mv(form.D_qp, pl, ph)
        pl, ph = chans(ql + dl, qh + dh)
    al, ah = mv(form.A, lo, hi)
    bl, bh = mv(form.B_p, pl, ph)
    xl, xh = al + bl + form.b_x, ah + bh + form.b_x
    tol = slack * np.maximum(1.0, np.abs(lo) + np.abs(hi))
    return bool(np.all(xl >= lo - tol) and np.all(xh <= hi + tol))


# --- the channel declaration -------------------------------------------------------------------------

def test_declared_slopes_survive_shift_and_normalisation_and_are_checked():
    ch = Channel("tanh").with_slopes(0.3, 1.0, (-1.0, 1.0))
    assert ch.slope == (0.3, 1.0) and not ch.odd and ch.region == (-1.0, 1.0)
    sh = ch.shifted(0.2)
    assert sh.slope == (0.3, 1.0) and sh.region == (-1.0, 1.0)
    assert replace(sh, lin=0.3).slope == pytest.approx((0.0, 0.7))
    assert Channel("sigmoid", in_gain=-2.0).with_slopes(0.1, 0.2, (0.0, 1.0)).slope == pytest.approx((-0.4, -0.2))
    with pytest.raises(InvalidInputError):
        Channel("tanh").with_slopes(0.5, 1.5, (-1.0, 1.0))  # above the function's own bound
    with pytest.raises(InvalidInputError):
        Channel("sigmoid", base_slopes=(0.1, 0.2))  # no region


@pytest.mark.parametrize("kind", ["tanh", "sigmoid"])
def test_kappa_bounds_enclose_the_derivative(kind):
    rng = np.random.default_rng(5)
    ch = Channel(kind, in_gain=rng.choice([-1.3, 0.7]), q_offset=0.4)
    for _ in range(20):
        a, b = np.sort(rng.normal(scale=3.0, size=2))
        lo, hi, reg = slope_bounds(ch, a, b)
        d = derivative(ch, np.linspace(a, b, 2001))
        tol = 1e-12  # the float evaluation of d here rounds; the bounds are exact
        assert 0.0 <= lo <= d.min() * (1 + tol) and d.max() <= hi * (1 + tol)
        assert lo >= 0.999999 * d.min()  # tight: the minimum is at an end point


# --- a plain LP-GRNN soft sensor around a PI: refused globally, certified on the absorbing box -----------

def test_plain_lpgrnn_loop_is_certified_on_the_absorbing_set_and_converges():
    net, spec = plain_lpgrnn(), t5_loop(0.1, 0.1)
    cl = assemble(net, spec)
    assert diagnose(cl, spec, net)["kind"] == "integrator_without_linear_path"
    out = check_closed_loop(net, loop=spec, simulate=False)
    assert [c.name for c in out.checks if c.property.value == "gas"] == ["loop.gas", "loop.gas.absorbing"]
    assert out.description["obstruction"]["kind"] == "integrator_without_linear_path"
    res = [c for c in out.checks if c.property.value == "gas"][-1]
    assert res.status.value == "proved", res.message
    assert res.criterion.endswith("_absorbing") and res.validation["ok"]
    q = res.quantities
    box = q["absorbing_set"]
    lo, hi = np.array(box["box_lower"]), np.array(box["box_upper"])
    assert box["stage0_ratio"] < 1 and box["inclusion_excess"] <= 0
    # the invariance proof, re-checked: the same enclosure, and an independent float one with slack
    ok, excess, _, _ = prove_invariant(cl.form, lo, hi)
    assert ok and excess <= 0
    assert interval_recheck(cl.form, lo, hi)
    kappas = [r for r in q["channels"] if "kappa_min" in r]
    assert len(kappas) == cl.m_net and min(r["kappa_min"] for r in kappas) > 0.1
    # 100 far starts converge to the equilibrium, enter the box, and never see a slope outside [κ_min, κ_max]
    x_star = np.asarray(q["equilibrium"]["x"])
    x0 = far_starts(cl, spec, x_star)
    sim = cl.form.simulate(np.zeros((3000, 100, 0)), x0)
    assert np.max(np.abs(sim.x[-1] - x_star)) < 1e-6
    late = sim.x[400:].reshape(-1, cl.form.n)
    assert np.all(late >= lo - 1e-12) and np.all(late <= hi + 1e-12)
    qs = preactivations(cl.form, late)
    for r in kappas:
        d = derivative(cl.form.channels[r["index"]], qs[:, r["index"]])
        assert r["kappa_min"] <= d.min() * (1 + 1e-12) and d.max() <= r["kappa_max"] * (1 + 1e-12)


@pytest.mark.parametrize("gain", [2.0, 20.0])
def test_a_destabilising_vertex_under_tightened_slopes_is_never_certified(gain):
    net = plain_lpgrnn()
    out = check_closed_loop(net, loop=t5_loop(gain, gain), simulate=False)
    # no global certificate (a regional one may exist: the equilibrium is locally stable, ρ(J*) = 0.8)
    assert not any(c.proved for c in out.checks if c.property.value == "gas")
    ab = [c for c in out.checks if c.property.value == "gas"][-1]
    assert ab.name == "loop.gas.absorbing" and ab.status.value == "not_proved"
    assert ab.quantities["lmi"]["vertex_check"]["ok"] is False


def test_tightening_is_not_tried_where_it_cannot_apply():
    net = plain_lpgrnn()
    out = check_closed_loop(net, loop=t5_loop(0.1, 0.1, form="positional"), simulate=False)
    assert [c.name for c in out.checks if c.property.value == "gas"] == ["loop.gas"]  # the windup integrator is unbounded
    relu = SNOF(A=[[0.5]], B_p=[[0.4]], C_q=[[1.0]], channels=(Channel("relu"),))
    assert check_absorbing(relu).status.value == "not_applicable"
    integ = SNOF(A=[[1.0]], B_p=[[-0.5]], C_q=[[1.0]], channels=(Channel("tanh"),))
    assert "spectral radius of |A|" in check_absorbing(integ).message


def test_the_bounded_elman_state_box():
    net = Network((ElmanLayer(W=[[0.6], [0.3]], U=[[0.1, 0.0], [0.05, 0.1]], b=[0.1, -0.1]),),
                  head=LinearHead(W=[[1.0, 0.8]], b=[0.0]))
    cl = assemble(net, t5_loop(0.1, 0.1))
    s = absorbing_set(cl.form)
    h_lo, h_hi = s.lower[cl.net_states], s.upper[cl.net_states]
    assert np.all(h_lo >= -1.0) and np.all(h_hi <= 1.0)  # tanh states, tighter than [−1, 1]
    assert s.lower[cl.ctrl_states][0] >= 0.0 and s.upper[cl.ctrl_states][0] <= 2.0  # u(k−1) in the actuator range
    form, rows = tighten_channels(cl.form, s)
    assert all(form.channels[r["index"]].slope[0] == r["kappa_min"] > 0 for r in rows if "kappa_min" in r)


# --- the bundled plain boiler soft sensor: the box is too wide (reported, not certified) ------------------

def test_plain_boiler_loop_reports_the_tightened_figures_and_stays_not_certified():
    from certify.importers import load_model

    net = load_model(ZOO / "boiler_lpgrnn_plain.onnx")
    out = check_closed_loop(net, plant="boiler", simulate=False)
    assert out.description["obstruction"]["kind"] == "integrator_without_linear_path"
    assert out.checks[0].message.startswith("integral action closes around an estimate with no linear path")
    ab = [c for c in out.checks if c.property.value == "gas"][-1]
    assert ab.name == "loop.gas.absorbing" and ab.status.value == "not_proved"
    q = ab.quantities
    assert q["lmi"]["vertex_check"]["ok"] is False  # a mixed-slope vertex destabilises (about 1.028)
    assert 0 < q["kappa_min"] < 1e-5
    assert 0.05 < q["interval_scale_for_vertex_condition"] < 0.3  # the box would have to be far narrower
    cl = out.closed_loop
    lo, hi = np.array(q["absorbing_set"]["box_lower"]), np.array(q["absorbing_set"]["box_upper"])
    assert prove_invariant(cl.form, lo, hi)[0] and interval_recheck(cl.form, lo, hi)
    # the real loop: far starts enter the box and the slopes there stay inside the tightened classes
    spec = default_boiler_spec()
    x0 = far_starts(cl, spec, np.asarray(q["equilibrium"]["x"]))
    sim = cl.form.simulate(np.zeros((2500, 100, 0)), x0)
    late = sim.x[1500:].reshape(-1, cl.form.n)
    assert np.all(late >= lo - 1e-9) and np.all(late <= hi + 1e-9)
    qs = preactivations(cl.form, late)
    for r in (r for r in q["channels"] if "kappa_min" in r):
        d = derivative(cl.form.channels[r["index"]], qs[:, r["index"]])
        assert r["kappa_min"] <= d.min() * (1 + 1e-12) and d.max() <= r["kappa_max"] * (1 + 1e-12)


def default_boiler_spec():
    from certify.loop.spec import default_loop

    return default_loop("boiler")


@pytest.mark.parametrize(("kappa", "b"), [(0.2, -0.5), (0.0, -0.5), (0.2, -2.5), (0.2, -1.2)])
def test_the_lmi_honours_a_declared_lower_slope(kappa, b):
    """x⁺ = x + b φ(x), φ' ∈ [κ, 1]: absolutely stable iff |1 + bκ| < 1 and |1 + b| < 1 (the scalar test of
    docs/theory.md §7.5 after the loop transformation of §4.2)."""
    from certify.criteria.lmi import check_lmi, lure_system
    from certify.snof.transform import equilibrium

    ch = Channel("tanh") if kappa == 0 else Channel("tanh").with_slopes(kappa, 1.0, (-5.0, 5.0))
    f = SNOF(A=[[1.0]], B_p=[[b]], C_q=[[1.0]], channels=(ch,))
    sys_, _, info = lure_system(f, equilibrium(f))
    assert sys_.K.tolist() == pytest.approx([1.0 - kappa]) and sys_.A[0, 0] == pytest.approx(1.0 + b * kappa)
    res = check_lmi(f)
    exact = abs(1 + b * kappa) < 1 and abs(1 + b) < 1
    assert (res.status.value == "proved") == exact, res.message
