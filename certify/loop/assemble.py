"""Plant ⋆ scaling ⋆ network ⋆ saturated PI → one closed-loop SNOF (Hilgert & Schwung (2025) eq. 20; docs/theory.md).

Blocks, in this order, joined by :func:`certify.snof.interconnect` (``u_all = L y_all + o``):

* plant, absolute units: ``x⁺ = A x + B u + (x° − A x° − B u°)``, ``y = C x + D u + (y° − C x° − D u°)``;
* network: :func:`certify.snof.from_network` (input and output in network units);
* PI, velocity form: state ``[u(k−1), e(k−1)]``, ``q = u(k−1) − K_p e(k−1) + (K_p + K_i T_s) e``,
  ``p = sat(q)``, outputs ``[u(k), u(k−1)]`` (docs/theory.md); positional form: state ``[ξ, u(k−1)]``,
  ``q = u_bias + K_p e + K_i ξ``, ``ξ⁺ = ξ + T_s e`` (the second state only delays u for the network).

Scaling enters as gains in ``L`` and offsets in ``o`` (docs/theory.md §6; Hilgert & Schwung 2025,
eq. (22)): offsets only move the equilibrium.
The closed-loop state is ``[plant x; network x; PI x]``; its channels are the network's, then the
saturation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from certify.loop.controllers import PIController
from certify.loop.simulate import check_dimensions, loop_scalings
from certify.loop.spec import LoopSpec
from certify.networks import Network
from certify.snof import SNOF, Channel, from_network, interconnect


class LoopLayout:
    """Where plant, network and controller states sit in a loop's state ``[plant; network; controller]``
    (for classes with ``n_plant``, ``n_net`` and ``n_ctrl``)."""

    n_plant: int
    n_net: int
    n_ctrl: int

    @property
    def plant_states(self) -> slice:
        return slice(0, self.n_plant)

    @property
    def net_states(self) -> slice:
        return slice(self.n_plant, self.n_plant + self.n_net)

    @property
    def ctrl_states(self) -> slice:
        return slice(self.n_plant + self.n_net, self.n_plant + self.n_net + self.n_ctrl)


@dataclass(frozen=True)
class ClosedLoop(LoopLayout):
    """The assembled loop and where each block's states and channels sit in it."""

    form: SNOF
    n_plant: int
    n_net: int
    n_ctrl: int
    m_net: int  # network channels come first, then the saturation (one channel)


def plant_block(spec: LoopSpec) -> SNOF:
    p = spec.plant
    return SNOF(
        A=p.A, B_w=p.B, C_z=p.C, D_zw=p.D,
        b_x=p.x_op - p.A @ p.x_op - p.B @ p.u_op,
        b_z=p.y_op - p.C @ p.x_op - p.D @ p.u_op,
    )


def pi_block(pi: PIController) -> SNOF:
    if not (np.isfinite(pi.u_min) and np.isfinite(pi.u_max)):
        from certify.errors import LoopSpecError

        raise LoopSpecError(
            "the PI controller needs finite actuator limits u_min and u_max (a saturated PI); set them in the "
            "loop file's [controller] table or in the plant's u_min/u_max."
        )
    sat = (Channel("saturation", limits=(pi.u_min, pi.u_max)),)
    if pi.form == "velocity":
        return SNOF(
            A=np.zeros((2, 2)), B_p=np.array([[1.0], [0.0]]), B_w=np.array([[0.0], [1.0]]),
            C_q=np.array([[1.0, -pi.kp]]), D_qw=np.array([[pi.kp + pi.ki * pi.Ts]]),
            C_z=np.array([[0.0, 0.0], [1.0, 0.0]]), D_zp=np.array([[1.0], [0.0]]), channels=sat,
        )
    return SNOF(
        A=np.array([[1.0, 0.0], [0.0, 0.0]]), B_p=np.array([[0.0], [1.0]]), B_w=np.array([[pi.Ts], [0.0]]),
        C_q=np.array([[pi.ki, 0.0]]), D_qw=np.array([[pi.kp]]), b_q=np.array([pi.u_bias]),
        C_z=np.array([[0.0, 0.0], [0.0, 1.0]]), D_zp=np.array([[1.0], [0.0]]), channels=sat,
    )


def assemble(net: Network, spec: LoopSpec) -> ClosedLoop:
    """Build the closed-loop SNOF; its simulation equals :func:`certify.loop.simulate.simulate_loop`."""
    N = from_network(net)
    P, C, L, o = loop_wiring(net, spec)
    form = interconnect([P, N, C], L=L, o=o)
    return ClosedLoop(form=form, n_plant=spec.plant.n_states, n_net=net.n_states, n_ctrl=2, m_net=N.m)


def loop_wiring(net: Network, spec: LoopSpec) -> tuple[SNOF, SNOF, np.ndarray, np.ndarray]:
    """The fixed blocks and routing of :func:`assemble`: plant block, PI block, ``L`` and ``o`` with
    ``u_all = L y_all + o`` over the blocks ``[plant, network, PI]`` (only the network's sizes and
    scalings are read; the torch twin in ``certify.train.loop_penalty`` closes the same loop)."""
    check_dimensions(net, spec)
    s_in, s_out = loop_scalings(net, spec)
    p = spec.plant
    P, C = plant_block(spec), pi_block(spec.controller)
    mp, nin, nout = p.n_inputs, net.n_inputs, net.n_outputs
    n_u = mp + nin + 1  # plant inputs, network inputs, PI error
    n_y = p.n_outputs + nout + 2  # plant outputs, network outputs, PI outputs [u(k), u(k-1)]
    L = np.zeros((n_u, n_y))
    o = np.zeros(n_u)
    i_u_now, i_u_prev = p.n_outputs + nout, p.n_outputs + nout + 1
    # plant inputs: the actuator from the PI, the others held at the operating point
    for j in range(mp):
        if j == spec.actuator:
            L[j, i_u_now] = 1.0
        else:
            o[j] = p.u_op[j]
    # network inputs (net = gain·raw + offset)
    gain = np.ones(nin) if s_in is None else s_in.gain
    offset = np.zeros(nin) if s_in is None else s_in.net_low - s_in.raw_low * s_in.gain
    for i, ref in enumerate(spec.inputs):
        row = mp + i
        o[row] += offset[i]
        if ref.kind == "y":
            L[row, ref.index] = gain[i]
        elif ref.kind == "u_prev":
            L[row, i_u_prev] = gain[i]
        elif ref.kind == "u":
            o[row] += gain[i] * p.u_op[ref.index]
        else:
            o[row] += gain[i] * ref.value
    # PI error e = r − raw estimate, raw = raw_low + (z − net_low)/gain_out
    k = spec.output
    g_out = 1.0 if s_out is None else float(s_out.gain[k])
    raw0 = 0.0 if s_out is None else float(s_out.raw_low[k] - s_out.net_low / s_out.gain[k])
    L[mp + nin, p.n_outputs + k] = -1.0 / g_out
    o[mp + nin] = spec.reference - raw0
    return P, C, L, o
