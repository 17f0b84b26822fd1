"""A closed loop around a gated network (GRU, LSTM stacks): its step, its interval enclosure, its absorbing box.

Gated networks have no SNOF (the Hadamard products of gates and states are not static nonlinearities of
an affine map), so the loop plant ⋆ network ⋆ saturated velocity PI is written here directly, with the
state ``x = [plant x (absolute units); network state; u(k−1); e(k−1)]`` and the step order of
:func:`certify.loop.simulate.simulate_loop` (its reference).  The plant inputs other than the actuator
are held at their operating values; the network reads plant outputs, ``u(k−1)``, held inputs and constants.

:func:`absorbing_box` proves a box that every trajectory enters in finite time and never leaves
(docs/theory.md §6.3): stage 0 from the actuator limits (``u(k−1)`` ∈ [u_min, u_max]), the plant's
interval ultimate bound (``|A| R + s < R``, as in :mod:`certify.loop.absorbing`), the gate bounds of
each layer (a GRU state is a convex combination of itself and ``tanh``, so ``|h| ≤ 1 + ε`` is absorbing;
an LSTM cell obeys ``|c⁺| ≤ f̄ |c| + ī ḡ`` with ``f̄ < 1`` on bounded inputs), then the shrinking
``X_{j+1} = X_j ∩ F♯(X_j)`` with ``F♯`` the interval enclosure of the step (:mod:`certify.loop.intervals`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from certify.loop import intervals as iv
from certify.loop.assemble import LoopLayout
from certify.loop.spec import LoopSpec
from certify.networks import GRULayer, LSTMLayer, Network

Interval = iv.Interval
#: margin ε of the stage-0 boxes of GRU states (|h| ≤ 1 + ε) and LSTM cells (relative)
STAGE0_EPS = 1e-3


class NotApplicable(Exception):
    """The gated-loop analysis does not apply (the message says why)."""


@dataclass(frozen=True)
class GatedLoop(LoopLayout):
    """Plant ⋆ gated network ⋆ saturated velocity PI as one discrete-time map (see the module docstring).

    The network input is ``s = S_x x_p + S_u u(k−1) + s_0`` (network units) and the estimate
    ``ŷ = e_0 + g·out_k`` (plant units) with ``out`` the network output.
    """

    net: Network
    spec: LoopSpec
    S_x: np.ndarray
    S_u: np.ndarray
    s_0: np.ndarray
    est_0: float
    est_gain: float
    A: np.ndarray
    b_act: np.ndarray
    b_0: np.ndarray
    n_plant: int
    n_net: int
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    n_ctrl = 2  # velocity PI: [u(k−1), e(k−1)]

    @property
    def n(self) -> int:
        return self.n_plant + self.n_net + self.n_ctrl

    # --- float step (batched) -----------------------------------------------------------------------
    def step(self, X: np.ndarray) -> np.ndarray:
        """One closed-loop step for every row of ``X`` (float64; the semantic reference is simulate_loop)."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        pi = self.spec.controller
        xp, h = X[:, self.plant_states], X[:, self.net_states]
        u_prev, e_prev = X[:, -2], X[:, -1]
        s = xp @ self.S_x.T + u_prev[:, None] * self.S_u[None, :] + self.s_0
        with np.errstate(over="ignore"):
            hn, out = self.net.step(h, s)
        e = self.spec.reference - (self.est_0 + self.est_gain * out[:, self.spec.output])
        u = np.clip(u_prev + pi.kp * (e - e_prev) + pi.ki * pi.Ts * e, pi.u_min, pi.u_max)
        xpn = xp @ self.A.T + u[:, None] * self.b_act[None, :] + self.b_0
        return np.hstack([xpn, hn, u[:, None], e[:, None]])

    # --- interval step ------------------------------------------------------------------------------
    def interval_step(self, box: Interval, record: bool = False) -> tuple[Interval, list[dict[str, Interval]]]:
        """Enclosure of ``F(box)``; with ``record`` also every layer's gate and derivative intervals."""
        pi = self.spec.controller
        lo, hi = box
        xp = (lo[self.plant_states], hi[self.plant_states])
        h = (lo[self.net_states], hi[self.net_states])
        up, ep = (lo[-2:-1], hi[-2:-1]), (lo[-1:], hi[-1:])
        s = iv.affine([(self.S_x, xp), (self.S_u[:, None], up)], self.s_0)
        parts, recs, sig = [], [], s
        for layer, sl in zip(self.net.layers, self.net.state_slices()):
            xl = (h[0][sl], h[1][sl])
            nxt, sig, rec = layer_interval_step(layer, xl, sig, record)
            parts.append(nxt)
            recs.append(rec)
        head = self.net.head
        out = sig if head is None else iv.affine(
            [(head.W, sig)] + ([(head.D, s)] if head.D is not None else []), head.b)
        k = self.spec.output
        est = iv.add(iv.point(self.est_0), iv.scale(self.est_gain, (out[0][k:k + 1], out[1][k:k + 1])))
        e = iv.sub(iv.point(self.spec.reference), est)
        q = iv.add(iv.add(up, iv.scale(-pi.kp, ep)), iv.scale(pi.kp + pi.ki * pi.Ts, e))
        u = (np.clip(q[0], pi.u_min, pi.u_max), np.clip(q[1], pi.u_min, pi.u_max))
        xpn = iv.affine([(self.A, xp), (self.b_act[:, None], u)], self.b_0)
        nlo = np.concatenate([xpn[0]] + [p[0] for p in parts] + [u[0], e[0]])
        nhi = np.concatenate([xpn[1]] + [p[1] for p in parts] + [u[1], e[1]])
        if record:
            recs.append({"q_sat": q, "s": s})
        return (nlo, nhi), recs


def layer_interval_step(layer: Any, x: Interval, s: Interval, record: bool) -> tuple[Interval, Interval, dict[str, Interval]]:
    """``(x⁺, output, record)`` of one gated layer over boxes of its state and input."""
    if isinstance(layer, GRULayer):
        a_z = iv.affine([(layer.W_z, s), (layer.U_z, x)], layer.b_z)
        a_r = iv.affine([(layer.W_r, s), (layer.U_r, x)], layer.b_r)
        r = iv.act("sigmoid", a_r)
        if layer.reset_after:
            g = iv.affine([(layer.U_n, x)], layer.b_hn)
            a_n = iv.add(iv.affine([(layer.W_n, s)], layer.b_in), iv.mul(r, g))
        else:
            g = x
            a_n = iv.affine([(layer.W_n, s), (layer.U_n, iv.mul(r, x))], layer.b_in + layer.b_hn)
        z, n = iv.act("sigmoid", a_z), iv.act("tanh", a_n)
        xn = iv.convex_mix(z, x, n)
        rec: dict[str, Interval] = {}
        if record:
            omz = iv.act("sigmoid", iv.neg(a_z))  # 1 − z = σ(−a_z)
            rec = {"z": z, "one_minus_z": omz, "kz": iv.dact("sigmoid", a_z), "h_minus_n": iv.sub(x, n),
                   "r": r, "kr": iv.dact("sigmoid", a_r), "g": g, "kn": iv.dact("tanh", a_n)}
        return xn, xn, rec
    if isinstance(layer, LSTMLayer):
        H = layer.hidden
        h, c = (x[0][:H], x[1][:H]), (x[0][H:], x[1][H:])
        pre = {k: iv.affine([(getattr(layer, f"W_{k}"), s), (getattr(layer, f"U_{k}"), h)], getattr(layer, f"b_{k}"))
               for k in "ifgo"}
        i, f, o = (iv.act("sigmoid", pre[k]) for k in "ifo")
        g = iv.act("tanh", pre["g"])
        cn = iv.add(iv.mul(f, c), iv.mul(i, g))
        tc = iv.act("tanh", cn)
        hn = iv.mul(o, tc)
        rec = {}
        if record:
            rec = {"f": f, "c": c, "kf": iv.dact("sigmoid", pre["f"]), "i": i, "ki": iv.dact("sigmoid", pre["i"]),
                   "g": g, "kg": iv.dact("tanh", pre["g"]), "o": o, "ko": iv.dact("sigmoid", pre["o"]),
                   "tc": tc, "kt": iv.dact("tanh", cn)}
        return (np.concatenate([hn[0], cn[0]]), np.concatenate([hn[1], cn[1]])), hn, rec
    raise NotApplicable(f"layer kind {getattr(layer, 'kind', type(layer).__name__)!r} is not a gated layer")


def gated_loop(net: Network, spec: LoopSpec) -> GatedLoop:
    """Build the loop map for a stack of GRU/LSTM layers with a linear head and a velocity PI."""
    from certify.loop.simulate import check_dimensions, loop_scalings

    if not net.layers or not all(isinstance(layer, (GRULayer, LSTMLayer)) for layer in net.layers):
        kinds = ", ".join(getattr(layer, "kind", type(layer).__name__) for layer in net.layers)
        raise NotApplicable(f"the contraction analysis is for stacks of GRU and LSTM layers (this model: {kinds})")
    pi = spec.controller
    if pi.form != "velocity":
        raise NotApplicable("a positional PI's integrator state is unbounded (no absorbing box); use the velocity "
                            "form (controller.form = \"velocity\")")
    check_dimensions(net, spec)
    s_in, s_out = loop_scalings(net, spec)
    p = spec.plant
    nin = net.n_inputs
    gain = np.ones(nin) if s_in is None else np.asarray(s_in.gain, dtype=np.float64)
    offset = np.zeros(nin) if s_in is None else s_in.net_low - s_in.raw_low * s_in.gain
    S_x, S_u, s_0 = np.zeros((nin, p.n_states)), np.zeros(nin), np.array(offset, dtype=np.float64)
    C, y_op, u_op = np.asarray(p.C), np.asarray(p.y_op), np.asarray(p.u_op)
    for i, ref in enumerate(spec.inputs):
        if ref.kind == "y":  # y = y° + C (x − x°) (the actuator column of D is zero for network inputs)
            S_x[i] = gain[i] * C[ref.index]
            s_0[i] += gain[i] * (y_op[ref.index] - C[ref.index] @ p.x_op)
        elif ref.kind == "u_prev":
            S_u[i] = gain[i]
        elif ref.kind == "u":
            s_0[i] += gain[i] * u_op[ref.index]
        else:
            s_0[i] += gain[i] * ref.value
    k = spec.output
    g_out = 1.0 if s_out is None else float(s_out.gain[k])
    raw0 = 0.0 if s_out is None else float(s_out.raw_low[k] - s_out.net_low / s_out.gain[k])
    a = spec.actuator
    b_act = p.B[:, a].astype(np.float64)
    b_0 = p.x_op - p.A @ p.x_op - b_act * u_op[a]
    return GatedLoop(net=net, spec=spec, S_x=S_x, S_u=S_u, s_0=s_0, est_0=raw0, est_gain=1.0 / g_out,
                     A=np.asarray(p.A, dtype=np.float64), b_act=b_act, b_0=b_0, n_plant=p.n_states,
                     n_net=net.n_states)


# --- the absorbing box ------------------------------------------------------------------------------------
def _plant_box(gl: GatedLoop) -> tuple[Interval, float]:
    """Stage-0 plant box for actuator values in [u_min, u_max] (:func:`certify.loop.absorbing._stage0`)."""
    from certify.loop.absorbing import NotApplicable as AbsNA
    from certify.loop.absorbing import _stage0
    from certify.snof import SNOF, Channel

    pi = gl.spec.controller
    if gl.n_plant == 0:
        return (np.zeros(0), np.zeros(0)), 0.0
    form = SNOF(A=gl.A, B_p=gl.b_act[:, None], C_q=np.zeros((1, gl.n_plant)), b_x=gl.b_0,
                channels=(Channel("saturation", limits=(pi.u_min, pi.u_max)),))
    try:
        lo, hi, ratio = _stage0(form)
    except AbsNA as exc:
        raise NotApplicable(f"plant: {exc}") from exc
    return (lo, hi), ratio


def _layer_stage0(layer: Any, s: Interval) -> Interval:
    """A box for one layer's state that is invariant and absorbing while its input stays in ``s``."""
    e = STAGE0_EPS
    if isinstance(layer, GRULayer):
        H = layer.hidden if hasattr(layer, "hidden") else layer.U_z.shape[0]
        return np.full(H, -1.0 - e), np.full(H, 1.0 + e)
    H = layer.hidden
    hbox = (np.full(H, -1.0 - e), np.full(H, 1.0 + e))  # |h| = |o tanh c| < 1 after one step
    f = iv.act("sigmoid", iv.affine([(layer.W_f, s), (layer.U_f, hbox)], layer.b_f))
    i = iv.act("sigmoid", iv.affine([(layer.W_i, s), (layer.U_i, hbox)], layer.b_i))
    g = iv.act("tanh", iv.affine([(layer.W_g, s), (layer.U_g, hbox)], layer.b_g))
    ig = iv.mul(i, g)
    top = np.maximum(np.abs(ig[0]), np.abs(ig[1]))
    fbar = f[1]
    if np.any(fbar >= 1.0):
        raise NotApplicable("an LSTM forget gate reaches 1 on the input range: the cell state has no bound")
    # |c⁺| ≤ f̄ |c| + |i g|: the box |c| ≤ R with R = |i g|/(1 − f̄), widened, is invariant, and |c| − R
    # shrinks by the factor f̄ < 1 each step outside it (absorbing)
    R = np.nextafter(top / np.nextafter(1.0 - fbar, 0.0), np.inf) * (1 + e) + e
    return np.concatenate([hbox[0], -R]), np.concatenate([hbox[1], R])


@dataclass(frozen=True)
class GatedAbsorbingBox:
    """The proved box ``B`` (``F(B) ⊂ B``, entered in finite time), the stage-0 box and the figures."""

    lower: np.ndarray
    upper: np.ndarray
    stage0_lower: np.ndarray
    stage0_upper: np.ndarray
    plant_ratio: float
    iterations: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"box_lower": self.lower.tolist(), "box_upper": self.upper.tolist(),
                "stage0_lower": self.stage0_lower.tolist(), "stage0_upper": self.stage0_upper.tolist(),
                "plant_stage0_ratio": self.plant_ratio, "iterations": self.iterations, "seconds": self.seconds}


def stage0_box(gl: GatedLoop) -> tuple[Interval, float]:
    """The stage-0 box (docs/theory.md §6.3): plant, each layer in order, then ``u(k−1)`` and ``e(k−1)``."""
    pi = gl.spec.controller
    pbox, ratio = _plant_box(gl)
    ubox = (np.array([pi.u_min]), np.array([pi.u_max]))
    s = iv.affine([(gl.S_x, pbox), (gl.S_u[:, None], ubox)], gl.s_0)
    sig, lows, highs = s, [], []
    for layer in gl.net.layers:
        b = _layer_stage0(layer, sig)
        lows.append(b[0])
        highs.append(b[1])
        _, sig, _ = layer_interval_step(layer, b, sig, False)  # the layer's outputs while its state is in b
    head = gl.net.head
    out = sig if head is None else iv.affine([(head.W, sig)] + ([(head.D, s)] if head.D is not None else []),
                                            head.b)
    k = gl.spec.output
    est = iv.add(iv.point(gl.est_0), iv.scale(gl.est_gain, (out[0][k:k + 1], out[1][k:k + 1])))
    e = iv.sub(iv.point(gl.spec.reference), est)
    lo = np.concatenate([pbox[0], *lows, ubox[0], e[0]])
    hi = np.concatenate([pbox[1], *highs, ubox[1], e[1]])
    return (lo, hi), ratio


def absorbing_box(gl: GatedLoop, *, max_iter: int = 500, rtol: float = 1e-6,
                  time_budget: float | None = None) -> GatedAbsorbingBox:
    """Stage 0, then ``X_{j+1} = X_j ∩ F♯(X_j)`` until no coordinate shrinks by more than ``rtol``.

    Each ``X_j`` is invariant and absorbing (docs/theory.md §6.3): ``F(X_{j+1}) ⊂ F(X_j) ⊂ X_j ∩ F♯(X_j)``.
    Stage 0 itself is checked: ``F♯(X₀) ⊂ X₀``.
    """
    from flint import ctx

    from certify.loop.absorbing import PREC_BITS, shrink_box

    t0 = time.perf_counter()
    with ctx.workprec(PREC_BITS):
        (lo0, hi0), ratio = stage0_box(gl)
        (xl, xh), _ = gl.interval_step((lo0, hi0))
        if not (np.all(xl >= lo0) and np.all(xh <= hi0)):
            bad = int(np.argmax(np.maximum(lo0 - xl, xh - hi0)))
            raise NotApplicable(f"the stage-0 box is not invariant in interval arithmetic (state {bad})")
        lo, hi, it = shrink_box(lambda lo_, hi_: gl.interval_step((lo_, hi_))[0], lo0, hi0, max_iter=max_iter,
                                rtol=rtol, time_budget=time_budget, t0=t0)
    return GatedAbsorbingBox(lower=lo, upper=hi, stage0_lower=lo0, stage0_upper=hi0, plant_ratio=ratio,
                             iterations=it, seconds=time.perf_counter() - t0)


class GatedLoopSystem:
    """A :class:`GatedLoop` as a system of :mod:`certify.witness` (the counterexample search and its proofs).

    ``map`` evaluates the loop step on :class:`~certify.witness.dual.Dual` values, for float64 and for ball
    arithmetic alike, with each layer's step from :func:`certify.witness.layers.step` (gate complements as
    ``σ(−a)``) and the saturation as ``ops.clip``; ``mode="residual"`` gives ``F(x) − x``.
    """

    def __init__(self, gl: GatedLoop):
        self.gl = gl
        self.n_states = gl.n
        self.n_inputs = 0
        pi = gl.spec.controller
        self._lo, self._hi = np.array([pi.u_min]), np.array([pi.u_max])

    def step(self, X: np.ndarray, u: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            return self.gl.step(X.reshape(-1, self.n_states)).reshape(X.shape)

    def map(self, ops: Any, X: Any, u: np.ndarray, mode: str) -> Any:
        from certify.witness.dual import Dual
        from certify.witness.layers import step as layer_step

        gl, pi = self.gl, self.gl.spec.controller
        n = gl.n
        xp, up, ep = X.part(gl.plant_states), X.part(slice(n - 2, n - 1)), X.part(slice(n - 1, n))
        s = ops.lin(gl.S_x, xp) + ops.lin(gl.S_u[:, None], up) + ops.const(gl.s_0)
        parts, sig = [], s
        for layer, sl in zip(gl.net.layers, gl.net.state_slices()):
            off = gl.n_plant
            xn, sig = layer_step(layer, ops, X.part(slice(off + sl.start, off + sl.stop)), sig)
            parts.append(xn)
        head = gl.net.head
        if head is not None:
            out = ops.lin(head.W, sig) + ops.const(head.b)
            if head.D is not None:
                out = out + ops.lin(head.D, s)
        else:
            out = sig
        k = gl.spec.output
        est = ops.lin(np.array([[gl.est_gain]]), out.part(slice(k, k + 1))) + ops.const(np.array([gl.est_0]))
        e = ops.const(np.array([gl.spec.reference])) - est
        q = up + ops.lin(np.array([[-pi.kp]]), ep) + ops.lin(np.array([[pi.kp + pi.ki * pi.Ts]]), e)
        u_new = ops.clip(q, self._lo, self._hi)
        xpn = ops.lin(gl.A, xp) + ops.lin(gl.b_act[:, None], u_new) + ops.const(gl.b_0)
        new = Dual.concat([xpn, *parts, u_new, e])
        return new - X if mode == "residual" else new
