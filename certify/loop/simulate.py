"""Direct, block-by-block simulation of plant + network + saturated PI (the reference for the SNOF).

At step k (plant ``D`` must not feed the actuator into signals the network reads):
  1. plant outputs ``y(k) = y° + C δx(k) + D δu(k)`` — with the actuator's column of D zero,
     ``y(k)`` does not depend on ``u(k)``;
  2. network input from ``y(k)``, the held inputs, ``u(k−1)`` and constants, scaled to network units;
  3. network step → estimate ``ŷ(k)`` (scaled back to plant units);
  4. PI on ``e(k) = r − ŷ(k)`` → ``u(k)`` (saturated);
  5. plant step with ``u(k)`` on the actuator and the other inputs at their operating values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from certify.errors import LoopSpecError
from certify.loop.spec import LoopSpec
from certify.networks import MinMaxScaling, Network


@dataclass(frozen=True)
class LoopTrajectory:
    """Absolute plant states, network states, controller states, actuator values and estimates."""

    x_plant: np.ndarray  # (T+1, n_p) absolute
    x_net: np.ndarray  # (T+1, n_n)
    x_ctrl: np.ndarray  # (T+1, n_c)
    u: np.ndarray  # (T,) actuator value applied at step k
    estimate: np.ndarray  # (T,) network estimate in plant units
    y: np.ndarray  # (T, p) plant outputs (absolute)


def loop_scalings(net: Network, spec: LoopSpec) -> tuple[MinMaxScaling | None, MinMaxScaling | None]:
    """Input and output scalings: the loop file's, else the model's metadata, else none (identity)."""
    s_in = spec.input_scaling if spec.input_scaling is not None else net.info.input_scaling
    s_out = spec.output_scaling if spec.output_scaling is not None else net.info.output_scaling
    if s_in is not None and s_in.raw_low.shape[0] != net.n_inputs:
        raise LoopSpecError(
            f"input scaling has {s_in.raw_low.shape[0]} signals but the network has {net.n_inputs} inputs."
        )
    if s_out is not None and s_out.raw_low.shape[0] != net.n_outputs:
        raise LoopSpecError(
            f"output scaling has {s_out.raw_low.shape[0]} signals but the network has {net.n_outputs} outputs."
        )
    return s_in, s_out


def check_dimensions(net: Network, spec: LoopSpec) -> None:
    """Model and loop must agree; messages name both sides."""
    if len(spec.inputs) != net.n_inputs:
        raise LoopSpecError(
            f"the loop feeds {len(spec.inputs)} signal(s) to the network ({', '.join(r.label for r in spec.inputs)}) "
            f"but the model has {net.n_inputs} input(s)."
        )
    if spec.output >= net.n_outputs:
        raise LoopSpecError(
            f"the loop reads network output {spec.output} but the model has {net.n_outputs} output(s)."
        )
    p = spec.plant
    for r in spec.inputs:
        if r.kind == "y" and p.D[r.index, spec.actuator] != 0.0:
            raise LoopSpecError(
                f"plant output {p.output_names[r.index]} has a direct feed-through from the actuator "
                f"{p.input_names[spec.actuator]} (D ≠ 0): the network input would depend on u(k) (algebraic loop)."
            )


def network_input(spec: LoopSpec, y: np.ndarray, u_prev: float, s_in: MinMaxScaling | None) -> np.ndarray:
    raw = np.empty(len(spec.inputs))
    for i, r in enumerate(spec.inputs):
        if r.kind == "y":
            raw[i] = y[r.index]
        elif r.kind == "u":
            raw[i] = spec.plant.u_op[r.index]
        elif r.kind == "u_prev":
            raw[i] = u_prev
        else:
            raw[i] = r.value
    return raw if s_in is None else s_in.to_net(raw)


def simulate_loop(
    net: Network,
    spec: LoopSpec,
    steps: int,
    *,
    x_plant0: np.ndarray | None = None,
    x_net0: np.ndarray | None = None,
    x_ctrl0: np.ndarray | None = None,
) -> LoopTrajectory:
    """Simulate the closed loop with the true nonlinearities (absolute plant units).

    >>> from certify.loop.spec import default_loop
    >>> from certify.networks import ElmanLayer, LinearHead, Network
    >>> net = Network((ElmanLayer(W=np.zeros((1, 4)), U=[[0.0]], b=[0.0]),),
    ...               head=LinearHead(W=[[0.0]], b=[108.0], D=[[0.5, 0, 0, 0]]))
    >>> tr = simulate_loop(net, default_loop("boiler"), 3)
    >>> tr.x_plant.shape
    (4, 2)
    """
    check_dimensions(net, spec)
    s_in, s_out = loop_scalings(net, spec)
    p, pi = spec.plant, spec.controller
    dx = np.zeros(p.n_states) if x_plant0 is None else np.asarray(x_plant0, float) - p.x_op
    xn = np.zeros(net.n_states) if x_net0 is None else np.asarray(x_net0, float).copy()
    xc = pi.initial_state(u=float(p.u_op[spec.actuator])) if x_ctrl0 is None else np.asarray(x_ctrl0, float).copy()
    X_p, X_n, X_c = [p.x_op + dx], [xn], [xc]
    U, EST, Y = [], [], []
    for _ in range(steps):
        u_prev = pi.u_prev(xc)
        du = np.zeros(p.n_inputs)
        y = p.y_op + p.C @ dx + p.D @ du  # actuator column of D is zero for network inputs (checked)
        w = network_input(spec, y, u_prev, s_in)
        xn, out = net.step(xn, w)
        est_net = out if s_out is None else s_out.to_raw(out)
        est = float(est_net[spec.output])
        xc, u = pi.step(xc, spec.reference - est)
        du[spec.actuator] = u - p.u_op[spec.actuator]
        y = p.y_op + p.C @ dx + p.D @ du
        dx = p.A @ dx + p.B @ du
        X_p.append(p.x_op + dx)
        X_n.append(xn)
        X_c.append(xc)
        U.append(u)
        EST.append(est)
        Y.append(y)
    return LoopTrajectory(
        x_plant=np.array(X_p), x_net=np.array(X_n), x_ctrl=np.array(X_c), u=np.array(U),
        estimate=np.array(EST), y=np.array(Y).reshape(steps, p.n_outputs),
    )


def describe_trajectory(tr: LoopTrajectory, every: int = 1) -> dict[str, Any]:
    """JSON-friendly time series for reports (optionally decimated)."""
    sl = slice(None, None, max(1, every))
    return {
        "u": tr.u[sl].tolist(),
        "estimate": tr.estimate[sl].tolist(),
        "y": tr.y[sl].tolist(),
    }
