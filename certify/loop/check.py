"""Certify a closed loop: assemble, diagnose structural obstructions, run the LMI, cross-check by simulation.

The structural diagnosis (docs/theory.md) looks at two members of the sector class that any global
certificate must also cover, and explains the obstruction in words instead of a bare "infeasible":

* every network channel at slope 0 ("dead network") with the saturation at slope 1: the estimate no
  longer depends on the measurements except through a linear term of the network; without one, the PI
  integrator runs open (eigenvalue 1);
* the saturation at slope 0 ("actuator stuck"): the plant runs open loop, and a positional PI keeps an
  open integrator (windup).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from certify.loop.assemble import ClosedLoop, assemble
from certify.loop.simulate import simulate_loop
from certify.loop.spec import LoopSpec, default_loop, load_loop_file
from certify.networks import Network
from certify.results import CheckResult, CheckStatus, Counterexample, Property

UNIT_CIRCLE_TOL = 1e-9
#: default seconds for the regional search when global stability is not proved (it keeps the best region
#: validated so far when time runs out, so a slower machine reports a smaller region, never a wrong one)
REGION_TIMEOUT = 60.0


@dataclass(frozen=True)
class LoopOutcome:
    """What :func:`check_closed_loop` hands to the report."""

    checks: list[CheckResult]
    description: dict[str, Any]
    counterexample: Counterexample | None = None
    simulation: dict[str, Any] | None = None
    #: the assembled ClosedLoop, or the GatedLoop map of a gated network (no SNOF)
    closed_loop: Any = field(default=None, compare=False)


def _vertex_matrix(cl: ClosedLoop, gains: np.ndarray) -> np.ndarray:
    f = cl.form
    Im = np.eye(f.m) - f.D_qp * gains[None, :]
    return f.A + (f.B_p * gains[None, :]) @ np.linalg.solve(Im, f.C_q)


def _rho(M: np.ndarray) -> tuple[float, float]:
    """Spectral radius and distance of the nearest eigenvalue to +1."""
    ev = np.linalg.eigvals(M)
    return float(np.max(np.abs(ev))), float(np.min(np.abs(ev - 1.0)))


def _dead_vertex(cl: ClosedLoop) -> np.ndarray:
    """Slopes of the vertex "every network neuron at its lowest slope, the saturation at slope 1"."""
    f = cl.form
    g = np.array([c.slope[0] for c in f.channels])
    g[f.m - 1] = f.channels[f.m - 1].slope[1]
    return g


def _scaled_gains(net: Network, spec: LoopSpec, s: float) -> ClosedLoop:
    from dataclasses import replace

    pi = spec.controller
    return assemble(net, replace(spec, controller=replace(pi, kp=pi.kp * s, ki=pi.ki * s)))


def loop_gain_sign(net: Network, spec: LoopSpec) -> float:
    """Steady-state gain from the actuator to the estimate through the plant and the network's linear path.

    Measured on the linear vertex "network neurons at slope 0, saturation at slope 1" with a tiny
    integral gain: the integrator's eigenvalue moves from 1 to ``1 − ki·Ts·g``, so ``g = (1 − λ)/(ki·Ts)``.
    ``g < 0`` means the PI's feedback is positive; ``g = 0`` that the integrator sees nothing.
    """
    from dataclasses import replace

    eps = 1e-6
    pi = spec.controller
    cl = assemble(net, replace(spec, controller=replace(pi, kp=0.0, ki=eps)))
    ev = np.linalg.eigvals(_vertex_matrix(cl, _dead_vertex(cl)))
    lam = ev[np.argmin(np.abs(ev - 1.0))]
    return float(np.real(1.0 - lam) / (eps * pi.Ts))


def diagnose(cl: ClosedLoop, spec: LoopSpec, net: Network | None = None) -> dict[str, Any] | None:
    """Return ``{"kind", "message", "spectral_radius", "vertex"}`` for a structural obstruction, else None.

    Both vertices are linear members of the nonlinearity class, so a spectral radius ≥ 1 at either of them
    rules out every global sector/slope certificate (the LMI's necessary condition).  The cause is then
    computed, not guessed: an integrator without a linear path (eigenvalue exactly 1), a plant that is
    unstable on its own (it runs open loop when the actuator saturates), the sign of the loop gain
    (:func:`loop_gain_sign`), PI gains that are too high (a smaller multiple of them passes the vertex),
    or a windup-prone positional PI.
    """
    f = cl.form
    lo = np.array([c.slope[0] for c in f.channels])
    sat = f.m - 1
    plant_rho = float(np.max(np.abs(np.linalg.eigvals(spec.plant.A)))) if spec.plant.n_states else 0.0
    plant_unstable = plant_rho >= 1.0 - UNIT_CIRCLE_TOL
    dead = _dead_vertex(cl)
    rho, d1 = _rho(_vertex_matrix(cl, dead))
    if rho >= 1.0 - UNIT_CIRCLE_TOL:
        vertex = "network slopes 0, saturation slope 1"
        g = loop_gain_sign(net, spec) if net is not None else None
        open_integrator = d1 < 1e-6 if g is None else abs(g) <= 1e-9 and d1 < 1e-6
        if open_integrator:
            msg = (
                "integral action closes around an estimate with no linear path from the measurements: in the "
                "member of the sector class where every network neuron has slope 0, the estimate is constant and "
                f"the PI integrator runs open (eigenvalue at 1, spectral radius {rho:.6f}). No global "
                "sector/slope certificate can exist for any PI gains. Fix: give the network an explicit linear term "
                "from its inputs to the estimate (a linear bypass, as in the gR-SS-NN of Schoukens 2021), let the PI "
                "act on a measured signal, or use a regional analysis."
            )
            return {"kind": "integrator_without_linear_path", "message": msg, "spectral_radius": rho, "vertex": vertex}
        if plant_unstable:
            msg = (f"the plant itself is not stable (spectral radius of A {plant_rho:.6f}): when the actuator "
                   "saturates (slope 0 is in the class) it runs open loop, so no saturated loop around it can be "
                   "certified globally, whatever the PI gains. Certify a stable subsystem or use a regional analysis.")
            return {"kind": "plant_not_stable_open_loop", "message": msg, "spectral_radius": rho, "vertex": vertex}
        if net is not None and g is not None:
            if g < 0:
                msg = (f"the loop's feedback has the wrong sign: the steady-state gain from the actuator to the "
                       f"estimate (through the plant and the network's linear term) is g = {g:.4g} < 0, so the PI "
                       f"integrates away from the set-point (spectral radius {rho:.6f} at the vertex where every "
                       "neuron has slope 0). Lowering the gains does not help; check the sign of the network's "
                       "linear term (its bypass) or of the PI gains.")
                return {"kind": "loop_gain_wrong_sign", "message": msg, "spectral_radius": rho, "vertex": vertex,
                        "loop_gain": g}
            for s in (0.5, 0.1, 0.01, 0.001):
                if _rho(_vertex_matrix(_scaled_gains(net, spec, s), dead))[0] < 1.0 - UNIT_CIRCLE_TOL:
                    pi = spec.controller
                    msg = (f"with every network neuron at slope 0 the remaining linear loop (the network's linear "
                           f"term, PI, plant) is unstable (spectral radius {rho:.6f}); with the PI gains scaled by "
                           f"{s:g} (kp = {pi.kp * s:.4g}, ki = {pi.ki * s:.4g}) it is stable: lower the PI gains.")
                    return {"kind": "pi_gains_too_high", "message": msg, "spectral_radius": rho, "vertex": vertex,
                            "stable_gain_scale": s}
        msg = (
            "with every network neuron at slope 0 the remaining linear loop (linear term of the network, PI, "
            f"plant) is unstable (spectral radius {rho:.6f}), and lowering the PI gains does not make it stable: "
            "change the network's linear term."
        )
        return {"kind": "linear_part_unstable", "message": msg, "spectral_radius": rho, "vertex": vertex}
    stuck = lo.copy()
    stuck[sat] = lo[sat]
    rho, d1 = _rho(_vertex_matrix(cl, stuck))
    if rho >= 1.0 - UNIT_CIRCLE_TOL:
        if spec.controller.form == "positional" and d1 < 1e-6:
            msg = (
                "positional PI with output saturation: when the actuator saturates (slope 0 is in the class) the "
                f"integrator keeps integrating (eigenvalue at 1, spectral radius {rho:.6f}); no global certificate "
                "can exist. Use the velocity (anti-windup) form: form = \"velocity\" in the loop file."
            )
            kind = "positional_pi_windup"
        else:
            msg = (
                "with the actuator saturated (slope 0 is in the class) the plant runs open loop and is not stable "
                f"(spectral radius {rho:.6f}); a saturated loop around it cannot be certified globally. Certify "
                "a stable subsystem or use a regional analysis."
            )
            kind = "plant_not_stable_open_loop"
        return {"kind": kind, "message": msg, "spectral_radius": rho, "vertex": "saturation slope 0"}
    return None


def _simulate(net: Network, spec: LoopSpec, cl: Any, x_star: np.ndarray | None, *, starts: int = 50,
              steps: int = 1000, seed: int = 0, final: Any = None) -> dict[str, Any]:
    """Closed-loop runs with the true nonlinearities from random initial states (evidence, not proof).

    All starts run at once through the closed-loop SNOF (whose simulation equals the block-by-block one,
    tested), or through ``final(x0, steps)`` for a loop without an SNOF; the first starts are also run
    block by block for the plotted time series.
    """
    rng = np.random.default_rng(seed)
    p, pi = spec.plant, spec.controller
    xp0 = p.x_op * (1.0 + 0.2 * rng.uniform(-1, 1, size=(starts, p.n_states))) \
        + 0.1 * rng.uniform(-1, 1, size=(starts, p.n_states))
    xn0 = rng.uniform(-1, 1, size=(starts, net.n_states))
    u0 = rng.uniform(pi.u_min, pi.u_max, size=starts)
    xc0 = np.column_stack([u0, np.zeros(starts)]) if pi.form == "velocity" else np.column_stack([np.zeros(starts), u0])
    x0 = np.hstack([xp0, xn0, xc0])
    if final is None:
        x_end = cl.form.simulate(np.zeros((steps, starts, cl.form.n_w)), x0).x[-1]
    else:  # a loop without an SNOF (gated network): its own batched step
        x_end = final(x0, steps)
    tr = simulate_loop(net, spec, steps, x_plant0=xp0[0], x_net0=xn0[0], x_ctrl0=xc0[0])
    every = max(1, steps // 300)
    out: dict[str, Any] = {
        "starts": starts,
        "steps": steps,
        "Ts": p.Ts,
        "t": (np.arange(0, steps, every) * p.Ts).tolist(),
        "actuator": tr.u[::every].tolist(),
        "estimate": tr.estimate[::every].tolist(),
    }
    if spec.estimates is not None:
        out["estimated_output"] = tr.y[::every, spec.estimates].tolist()
    runs_u, runs_e = [tr.u[::every].tolist()], [tr.estimate[::every].tolist()]
    for i in range(1, min(starts, 8)):  # a few more starts, block by block, for the plot
        tri = simulate_loop(net, spec, steps, x_plant0=xp0[i], x_net0=xn0[i], x_ctrl0=xc0[i])
        runs_u.append(tri.u[::every].tolist())
        runs_e.append(tri.estimate[::every].tolist())
    out["runs"] = {"actuator": runs_u, "estimate": runs_e, "reference": float(spec.reference),
                   "u_min": float(pi.u_min), "u_max": float(pi.u_max)}
    if x_star is not None:
        out["max_final_distance_to_equilibrium"] = float(np.max(np.abs(x_end - x_star)))
    return out


def resolve_loop(plant: str | None, loop: str | LoopSpec | None) -> LoopSpec:
    """The loop to check: a :class:`LoopSpec` as given, a loop file, or a built-in plant's default loop."""
    if isinstance(loop, LoopSpec):
        return loop
    if loop is not None:
        return load_loop_file(loop)
    if plant is None:
        from certify.errors import LoopSpecError

        raise LoopSpecError("give a built-in plant (--plant NAME) or a loop file (--loop FILE).")
    return default_loop(plant)


def check_closed_loop(
    net: Network,
    *,
    plant: str | None = None,
    loop: str | LoopSpec | None = None,
    method: str = "auto",
    solver: str | None = None,
    timeout: float | None = None,
    simulate: bool = True,
    solver_options: dict[str, Any] | None = None,
    region_timeout: float | None = REGION_TIMEOUT,
) -> LoopOutcome:
    """Certify global asymptotic stability of the loop around ``net`` (see the module docstring).

    ``method``: ``auto``/``lmi``/``all`` run the LMI (``auto`` cheapest criterion first); ``diss`` does not
    apply to loops (the closed-form tests are for networks alone) and yields a not-applicable check.
    ``solver_options`` go to the first backend's solve (:func:`certify.criteria.lmi.check_lmi`).
    When no check proves global stability, the largest certified invariant ellipsoid around the equilibrium
    is searched (``loop.region``, property ``region_of_attraction``; docs/theory.md §6.2) for at most
    ``region_timeout`` seconds (``None``: no limit but ``timeout``; ``0``: skip); it never certifies a loop.

    >>> from certify.networks import ElmanLayer, LinearHead, Network
    >>> net = Network((ElmanLayer(W=np.zeros((1, 4)), U=[[0.5]], b=[0.0]),),
    ...               head=LinearHead(W=[[0.1]], b=[-30.0], D=[[1.2, 0, 0, 0]]))
    >>> out = check_closed_loop(net, plant="boiler", simulate=False)
    >>> out.checks[-1].status.value
    'proved'
    """
    from certify.criteria.lmi import check_lmi

    t0 = time.perf_counter()
    spec = resolve_loop(plant, loop)
    if any(layer.kind in ("gru", "lstm") for layer in net.layers):
        return _check_gated_loop(net, spec, method=method, solver=solver, timeout=timeout, simulate=simulate,
                                 solver_options=solver_options, t0=t0)
    cl = assemble(net, spec)
    description = spec.describe()
    description["closed_loop"] = {"states": cl.form.n, "channels": cl.form.m,
                                  "well_posedness": cl.form.well_posedness().method}
    checks: list[CheckResult] = []
    obstruction = diagnose(cl, spec, net)
    if method == "diss":
        checks.append(CheckResult(
            name="loop.gas", property=Property.GAS, status=CheckStatus.NOT_APPLICABLE, criterion="diss",
            message="the closed-form δISS tests apply to networks alone; closed loops are certified with the LMI "
                    "(--method auto or lmi).", seconds=time.perf_counter() - t0))
        return LoopOutcome(checks, description, closed_loop=cl)
    if obstruction is not None:
        description["obstruction"] = obstruction
        checks.append(CheckResult(
            name="loop.gas", property=Property.GAS, status=CheckStatus.NOT_PROVED, criterion="structural_diagnosis",
            message=obstruction["message"], margin=obstruction["spectral_radius"] - 1.0,
            quantities=obstruction, seconds=time.perf_counter() - t0))
        x_star = None
    else:
        res = check_lmi(cl.form, criterion="auto", solver=solver, timeout=timeout, name="loop.gas",
                        solver_options=solver_options)
        checks.append(res)
        eq = res.quantities.get("equilibrium") or {}
        x_star = np.asarray(eq["x"]) if eq.get("found") else None
        if x_star is not None:
            description["equilibrium"] = _equilibrium_summary(cl, spec, x_star)
    if not checks[-1].proved and absorbing_applies(cl, spec) and (timeout is None or time.perf_counter() - t0 < timeout):
        from certify.loop.absorbing import check_absorbing

        left = None if timeout is None else max(timeout - (time.perf_counter() - t0), 0.0)
        ab = check_absorbing(cl.form, solver=solver, timeout=left, solver_options=solver_options)
        checks.append(ab)
        eq = ab.quantities.get("equilibrium") or {}
        if ab.proved and eq.get("found"):
            x_star = np.asarray(eq["x"])
            description["equilibrium"] = _equilibrium_summary(cl, spec, x_star)
    if not any(c.proved for c in checks) and region_timeout != 0:
        from certify.loop.regional import check_loop_region

        left = None if timeout is None else max(timeout - (time.perf_counter() - t0), 0.0)
        budget = region_timeout if left is None else (left if region_timeout is None else min(left, region_timeout))
        if budget is None or budget > 0:
            checks.append(check_loop_region(cl, spec, solver=solver, timeout=budget, solver_options=solver_options))
    sim = _simulate(net, spec, cl, x_star) if simulate else None
    return LoopOutcome(checks=checks, description=description, simulation=sim, closed_loop=cl)


def _check_gated_loop(net: Network, spec: LoopSpec, *, method: str, solver: str | None, timeout: float | None,
                      simulate: bool, solver_options: dict[str, Any] | None, t0: float) -> LoopOutcome:
    """A loop around a GRU/LSTM network: contraction on a proved absorbing box (docs/theory.md §6.3).

    The Luré–Postnikov LMI needs an SNOF, which Hadamard-gated cells do not have; on the absorbing box,
    however, every gate and derivative is bounded, and a contraction certificate proves the same global
    property (:func:`certify.loop.contraction.check_contraction`).
    """
    from certify.loop.contraction import check_contraction
    from certify.loop.gated import NotApplicable, gated_loop

    description = spec.describe()
    try:
        gl = gated_loop(net, spec)
    except NotApplicable as exc:
        gl = None
        why = str(exc)
    if gl is not None:
        description["closed_loop"] = {"states": gl.n, "model": "gated network (no SNOF): plant ⋆ network ⋆ PI map"}
    if method == "diss":
        res = CheckResult(
            name="loop.gas", property=Property.GAS, status=CheckStatus.NOT_APPLICABLE, criterion="diss",
            message="the closed-form δISS tests apply to networks alone; closed loops around gated networks are "
                    "certified by contraction (--method auto).", seconds=time.perf_counter() - t0)
        return LoopOutcome([res], description)
    if gl is None:
        res = CheckResult(name="loop.gas.contraction", property=Property.GAS, status=CheckStatus.NOT_APPLICABLE,
                          criterion="contraction_circle", message=f"the contraction analysis does not apply: {why}.",
                          seconds=time.perf_counter() - t0)
        return LoopOutcome([res], description)
    left = None if timeout is None else max(timeout - (time.perf_counter() - t0), 0.0)
    res = check_contraction(gl, spec, solver=solver, timeout=left, solver_options=solver_options)
    eq = res.quantities.get("equilibrium") or {}
    x_star = np.asarray(eq["x"]) if res.proved and eq.get("found") else None
    if x_star is not None:
        description["equilibrium"] = _equilibrium_summary(gl, spec, x_star)  # type: ignore[arg-type]
    sim = None
    if simulate:
        sim = _simulate(net, spec, gl, x_star, final=lambda x0, steps: _iterate(gl.step, x0, steps))
    return LoopOutcome(checks=[res], description=description, simulation=sim, closed_loop=gl)


def _iterate(step: Any, x0: np.ndarray, steps: int) -> np.ndarray:
    x = x0
    for _ in range(steps):
        x = step(x)
    return x


def absorbing_applies(cl: ClosedLoop, spec: LoopSpec) -> bool:
    """Whether absorbing-set slope tightening (docs/theory.md §6.1) is tried when the global class fails.

    It needs bounded neurons (tanh/sigmoid), a plant whose ``A`` is Schur and a velocity-form PI (the
    positional PI's integrator is unbounded).

    >>> from certify.networks import ElmanLayer, LinearHead, Network
    >>> from certify.loop.spec import default_loop
    >>> net = Network((ElmanLayer(W=np.zeros((1, 4)), U=[[0.5]], b=[0.0]),), head=LinearHead(W=[[0.1]], b=[-30.0]))
    >>> absorbing_applies(assemble(net, default_loop("boiler")), default_loop("boiler"))
    True
    """
    f = cl.form
    if any(c.kind not in ("tanh", "sigmoid") for c in f.channels[: cl.m_net]):
        return False
    if spec.controller.form != "velocity":
        return False
    A = spec.plant.A
    return not A.size or float(np.max(np.abs(np.linalg.eigvals(A)))) < 1.0 - UNIT_CIRCLE_TOL


def _equilibrium_summary(cl: ClosedLoop, spec: LoopSpec, x_star: np.ndarray) -> dict[str, Any]:
    p = spec.plant
    xp = x_star[cl.plant_states]
    y = p.C @ (xp - p.x_op) + p.y_op
    xc = x_star[cl.ctrl_states]
    return {
        "plant_state": dict(zip(p.state_names, xp.tolist())),
        "plant_outputs": dict(zip(p.output_names, y.tolist())),
        "actuator": float(xc[0]) if spec.controller.form == "velocity" else float(xc[1]),
        "reference": spec.reference,
    }
