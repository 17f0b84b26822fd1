"""Refuting a closed loop: proved equilibria or limit cycles of plant + network + saturated PI.

The assembled closed-loop SNOF is an exact model of the loop (its simulation equals the
block-by-block one, with the real activations and the actuator saturation), so the counterexample
search of :mod:`certify.falsify` runs on it unchanged: starts around the plant's operating point,
network states in ``[−1, 1]`` and actuator values between the limits; Newton on the equilibrium
equations; periodic orbits among the runs that do not settle (a saturated high-gain PI that
oscillates).  A witness decides ``unstable`` only after the interval (Krawczyk) proof of
:mod:`certify.witness.proofs`; the report carries a replayable trajectory from the witness.

>>> import numpy as np
>>> from certify.loop.assemble import assemble
>>> from certify.loop.check import resolve_loop
>>> from certify.networks import ElmanLayer, LinearHead, Network
>>> net = Network((ElmanLayer(W=np.zeros((1, 4)), U=[[0.5]], b=[0.0]),),
...               head=LinearHead(W=[[0.1]], b=[-30.0], D=[[1.2, 0, 0, 0]]))
>>> spec = resolve_loop("boiler", None)
>>> out = refute_loop(assemble(net, spec), spec)
>>> out.counterexample is None, out.truncated
(True, False)
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from certify.deadline import Deadline
from certify.falsify import SearchBudget, SearchOutcome, SearchSpace, search_system
from certify.results import CheckResult, CheckStatus, Counterexample, Property

#: the loop search: one constant reference, more starts (the states live on very different scales)
LOOP_BUDGET = SearchBudget(n_inputs=1, n_starts=48, horizon=600, newton_starts=32, newton_iters=40,
                           max_proofs=6, max_period=40)


def loop_space(cl: Any, spec: Any) -> SearchSpace:
    """Start box: plant states at ±(20 % + 0.1) of the operating point, network states in [−1, 1],
    controller states spanning the actuator range."""
    p, pi = spec.plant, spec.controller
    mid, half = 0.5 * (pi.u_min + pi.u_max), 0.5 * (pi.u_max - pi.u_min)
    ctrl_c = np.array([mid, 0.0]) if pi.form == "velocity" else np.array([0.0, mid])
    ctrl_h = np.array([half, max(half, 1.0)]) if pi.form == "velocity" else np.array([max(half, 1.0), half])
    center = np.concatenate([p.x_op, np.zeros(cl.n_net), ctrl_c])
    halfwidth = np.concatenate([0.2 * np.abs(p.x_op) + 0.1, np.ones(cl.n_net), ctrl_h])
    n = loop_system(cl).n_states
    return SearchSpace(center[:n], halfwidth[:n], np.full(n, np.inf), False)


def loop_system(cl: Any) -> Any:
    """The witness system of a closed loop: its SNOF, or the loop map of a gated network (no SNOF)."""
    from certify.loop.gated import GatedLoop, GatedLoopSystem
    from certify.witness.systems import SNOFSystem

    return GatedLoopSystem(cl) if isinstance(cl, GatedLoop) else SNOFSystem(cl.form)


def refute_loop(cl: Any, spec: Any, *, seed: int = 0, budget: SearchBudget | None = None,
                deadline: Deadline | None = None) -> SearchOutcome:
    """Search the closed loop ``cl`` (:func:`certify.loop.assemble.assemble`, or a gated loop of
    :func:`certify.loop.gated.gated_loop`) for a proved witness."""
    t0 = time.perf_counter()
    try:
        system = loop_system(cl)
    except ValueError as exc:
        return SearchOutcome(None, (f"not searched: {exc}",), False, 0, 0, time.perf_counter() - t0)
    out = search_system(system, [np.zeros(system.n_inputs)], loop_space(cl, spec), seed=seed,
                        budget=budget or LOOP_BUDGET, deadline=deadline, t0=t0)
    if out.counterexample is None:
        return out
    cex = _with_trajectory(cl, spec, out.counterexample)
    return SearchOutcome(cex, out.unproved, out.truncated, out.evaluations, out.inputs_searched, out.seconds,
                         out.proof_seconds, out.budget, out.seed)


def _with_trajectory(cl: Any, spec: Any, cex: Counterexample) -> Counterexample:
    """Add a replayable trajectory (states and the actuator) from the witness point."""
    d = dict(cex.data)
    x0 = np.asarray(d.get("x0", d.get("x_a")), dtype=np.float64)
    period = int(d.get("period", 1))
    steps = int(min(400, max(50, 3 * period)))
    system = loop_system(cl)
    xs = [x0]
    for _ in range(steps):
        xs.append(system.step(xs[-1][None, :], np.zeros(0))[0])
    X = np.array(xs)
    ctrl = X[:, cl.ctrl_states]
    actuator = ctrl[:, 0] if spec.controller.form == "velocity" else np.clip(
        ctrl[:, 1], spec.controller.u_min, spec.controller.u_max)
    d["trajectory"] = {"Ts": spec.plant.Ts, "steps": steps, "x0": x0.tolist(), "actuator": actuator.tolist(),
                       "plant_states": X[:, cl.plant_states].tolist()}
    d["state_layout"] = {"plant": [cl.plant_states.start, cl.plant_states.stop],
                         "network": [cl.net_states.start, cl.net_states.stop],
                         "controller": [cl.ctrl_states.start, cl.ctrl_states.stop]}
    what = "two equilibria" if cex.kind == "multiple_equilibria" else f"a periodic orbit (period {period})"
    return Counterexample(cex.kind, f"the closed loop has {what}: " + cex.description, d, cex.residual)


def loop_falsification_check(cl: Any, cex: Counterexample) -> CheckResult:
    """GAS of the loop disproved by ``cex``, after re-proving it from its stored boxes (else not proved)."""
    from certify.witness.proofs import verify_witness

    t0 = time.perf_counter()
    proof = cex.data.get("proof")
    ok = proof is not None and verify_witness(loop_system(cl), proof).proved
    q = {"kind": cex.kind, "rechecked": ok, "proof": "krawczyk (ball arithmetic)"}
    if ok:
        return CheckResult("loop.falsify.gas", Property.GAS, CheckStatus.DISPROVED, "falsification",
                           message=f"gas is false: {cex.description}", quantities=q, counterexample=cex,
                           seconds=time.perf_counter() - t0, scope="model")
    return CheckResult("loop.falsify.gas", Property.GAS, CheckStatus.NOT_PROVED, "falsification",
                       message=f"the {cex.kind} witness did not survive the independent re-check.", quantities=q,
                       seconds=time.perf_counter() - t0, scope="model")
