"""The built-in boiler loop with the bundled LP-GRNN soft sensor, sampled at several periods (poles move
towards 1 as Ts shrinks): certified with a validated certificate, and the criterion that proved it named."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from certify.loop.assemble import assemble
from certify.loop.builtin import boiler_plant
from certify.loop.spec import default_loop

ZOO = Path(__file__).resolve().parents[1] / "models_zoo"


def _loop(Ts):
    spec = default_loop("boiler")
    return dataclasses.replace(spec, plant=boiler_plant(Ts), controller=dataclasses.replace(spec.controller, Ts=Ts))


@pytest.fixture(scope="module")
def net():
    import certify

    return certify.load_model(ZOO / "boiler_lpgrnn_linear.onnx")


@pytest.mark.parametrize("Ts", [5.0, 10.0])
def test_boiler_loop_certified_at_sampling_time(net, Ts):
    from certify.criteria.lmi import check_lmi

    cl = assemble(net, _loop(Ts))
    rho = max(abs(np.linalg.eigvals(cl.form.A)))
    assert rho > 0.97   # slow plant pole next to 1
    res = check_lmi(cl.form, name="loop.gas")
    assert res.proved, res.message
    assert res.validation["ok"] and res.validation["max_eig_M"] <= -res.validation["margin_required_M"]
    assert res.criterion == res.quantities["criterion_proved"] in ("circle", "popov", "lure_postnikov")
    assert res.solver in ("clarabel", "scs")


def test_boiler_loop_at_1s_is_provably_infeasible_not_numerically_hard(net):
    """At Ts = 1 s every vertex gain is Schur, yet no certificate exists: a dual matrix Y = WW' ⪰ 0 of the
    Luré–Postnikov LMI (which contains popov and circle, docs/theory.md §7.4) gives Z(Y) ≻ 0 and
    non-negative multiplier coefficients beyond their rounding bounds (theorem of alternatives, §7.6), so
    ⟨M(P, t), Y⟩ > 0 for every P ≻ 0, t ≥ 0.  The bundled soft sensor is a discrete-time network trained at
    Ts = 10 s: run every second its dynamics are ten times faster relative to the plant, a different loop.
    At Ts = 5 s the same check fails (the LMI is feasible there), so the test can fail."""
    from certify.criteria.lmi import (
        balance_lure,
        check_lmi,
        infeasibility_certificate,
        lure_system,
        vertex_check,
    )
    from certify.snof.transform import equilibrium

    def reduced(Ts):
        form = assemble(net, _loop(Ts)).form
        sys0, _, _ = lure_system(form, equilibrium(form))
        return form, balance_lure(sys0)[0]

    form, sys = reduced(1.0)
    assert vertex_check(sys).ok                      # not the vertex obstruction
    W, res = infeasibility_certificate(sys, "lure_postnikov")
    assert W is not None and res.ok, res.reason
    assert res.min_eig_Z > 1e3 * res.margin_Z
    assert not check_lmi(form, name="loop.gas").proved
    _, sys5 = reduced(5.0)
    assert not infeasibility_certificate(sys5, "lure_postnikov")[1].ok


def test_boiler_with_scs_and_solver_options(net):
    """SCS reaches the same verdict; user options reach the backend; every attempt names its solver."""
    from certify.loop.check import check_closed_loop

    out = check_closed_loop(net, plant="boiler", solver="scs", simulate=False, solver_options={"max_iters": 20_000})
    res = out.checks[-1]
    assert res.proved and res.solver == "scs"
    assert all(t["solver"] == "scs" for t in res.quantities["criteria_tried"][:1])


def _small_sensor(info, hidden: int = 4):
    """A small-weight LP-GRNN soft sensor with the bundled model's signals and a linear bypass (the generator of
    benchmarks/lmi_scaling.py): its own dynamics are fast at any of the sampling periods below."""
    import sys

    sys.path.insert(0, str(ZOO.parent / "benchmarks"))
    from lmi_scaling import boiler_sensor

    return boiler_sensor(hidden, info)


@pytest.mark.parametrize("Ts", [0.5, 1.0, 5.0, 10.0])
def test_fast_sampled_boiler_loop_is_certified_and_simulates_stable(net, Ts):
    """Poles at 0.9975 (Ts = 1 s) and 0.99875 (0.5 s): the numerics that used to fail near the unit circle.
    A certified loop must converge to one point from far starts (real saturations, the SNOF's own step)."""
    from certify.criteria.lmi import check_lmi

    cl = assemble(_small_sensor(net.info), _loop(Ts))
    res = check_lmi(cl.form, name="loop.gas")
    assert res.proved, res.message
    assert res.validation["max_eig_M"] <= -res.validation["margin_required_M"]
    rng = np.random.default_rng(0)
    scale = np.maximum(np.abs(np.asarray(res.quantities["equilibrium"]["x"])), 1.0)
    x0 = rng.uniform(-5, 5, size=(8, cl.form.n)) * scale
    steps = int(np.ceil(22 * (1 / (1 - max(abs(np.linalg.eigvals(cl.form.A)))))))
    xs = cl.form.simulate(np.zeros((steps, 8, cl.form.n_w)), x0).x
    final = xs[-1]
    assert np.all(np.isfinite(final))
    assert float(np.max(np.ptp(final, axis=0))) < 1e-6 * float(np.max(np.abs(final), initial=1.0))
