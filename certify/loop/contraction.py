"""Closed loops around gated networks: a contraction certificate on a proved absorbing box.

On the absorbing box ``B`` (:func:`certify.loop.gated.absorbing_box`) every gate value, every activation
derivative and every state entering a Hadamard product lies in a computed interval.  The chain rule then
writes the closed loop's Jacobian at any point of ``B`` as the linear system

    v⁺ = A v + B p,   q = C v + D p,   p_i = δ_i q_i,   δ_i ∈ [l_i, u_i]

with ``D`` strictly lower triangular (a linear-fractional representation; each ``δ_i`` is a product such
as ``(h − n)·σ'(a_z)`` or ``(1 − z)·tanh'(a_n)``, enclosed in interval arithmetic).  After the loop
transformation ``p = l q + p̃`` it is a Luré system with time-varying sector ``[0, u − l]``, and the circle
criterion's LMI (Boyd, El Ghaoui, Feron & Balakrishnan 1994, §5.1) gives ``P ≻ 0`` with
``‖J v‖_P ≤ ρ ‖v‖_P`` for every such Jacobian, ``ρ < 1``.  By the mean-value inequality along segments
(``B`` is convex) the loop map is a contraction of ``B`` in the ``P``-norm, so it has one equilibrium and
every trajectory converges to it: docs/theory.md §6.3 (theorem and proof).  The certificate is validated
in float64 (:func:`certify.criteria.validate.validate_certificate`), never taken from the solver.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from certify.loop.gated import GatedAbsorbingBox, GatedLoop, NotApplicable, absorbing_box, gated_loop
from certify.loop.intervals import Interval, inflate
from certify.networks import GRULayer
from certify.results import CheckResult, CheckStatus, Property

#: relative and absolute widening of the absorbing box on which the Jacobian bounds are taken (its interior
#: then contains the box, which the stability part of the proof needs; docs/theory.md §6.3)
INFLATE_REL, INFLATE_ABS = 1e-6, 1e-9
#: a channel whose gain interval is narrower than this (relative) gets this width (a wider class: sound)
MIN_WIDTH = 1e-12


@dataclass(frozen=True)
class TangentLFT:
    """``v⁺ = A v + B p, q = C v + D p, p_i = δ_i q_i`` with ``δ_i ∈ [lower_i, upper_i]``; ``labels`` name
    each channel group (for reports)."""

    A: np.ndarray
    B: np.ndarray
    C: np.ndarray
    D: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    labels: tuple[tuple[str, int], ...]

    def jacobian(self, delta: np.ndarray) -> np.ndarray:
        """The Jacobian for gains ``delta`` (``J = A + B Δ (I − D Δ)⁻¹ C``)."""
        m = self.D.shape[0]
        Dl = np.diag(delta)
        return self.A + self.B @ Dl @ np.linalg.solve(np.eye(m) - self.D @ Dl, self.C)


class _Builder:
    """Rows of linear forms in ``[v; p]``; channels are appended in evaluation order (``D`` stays strictly
    lower triangular)."""

    def __init__(self, n: int, m: int):
        self.n, self.m, self.N = n, m, n + m
        self.Q = np.zeros((m, n + m))
        self.lo, self.hi = np.zeros(m), np.zeros(m)
        self.k = 0
        self.labels: list[tuple[str, int]] = []

    def state(self, sl: slice) -> np.ndarray:
        return np.eye(self.N)[sl]

    def channel(self, label: str, q: np.ndarray, gain: Interval) -> np.ndarray:
        h = q.shape[0]
        k = self.k
        if k + h > self.m:
            raise AssertionError("channel count")
        self.Q[k:k + h] = q
        self.lo[k:k + h], self.hi[k:k + h] = gain
        self.k += h
        self.labels.append((label, h))
        return np.eye(self.N)[self.n + k:self.n + k + h]


def _n_channels(gl: GatedLoop) -> int:
    return 1 + sum(5 * layer.U_z.shape[0] if isinstance(layer, GRULayer) else 6 * layer.hidden
                   for layer in gl.net.layers)


def tangent_lft(gl: GatedLoop, box: Interval) -> TangentLFT:
    """The Jacobian set of the loop map over ``box`` as a :class:`TangentLFT` (gains from interval enclosures)."""
    _, recs = gl.interval_step(box, record=True)
    n, m = gl.n, _n_channels(gl)
    b = _Builder(n, m)
    pi = gl.spec.controller
    V = b.state
    xp, up, ep = V(gl.plant_states), V(slice(n - 2, n - 1)), V(slice(n - 1, n))
    ds = gl.S_x @ xp + gl.S_u[:, None] @ up
    sig = ds
    nxt = []
    for layer, sl, rec in zip(gl.net.layers, gl.net.state_slices(), recs):
        off = gl.n_plant
        x = V(slice(off + sl.start, off + sl.stop))
        if isinstance(layer, GRULayer):
            from certify.loop import intervals as iv

            p1 = b.channel("gru (h−n)·σ'(a_z)", layer.W_z @ sig + layer.U_z @ x, iv.mul(rec["h_minus_n"], rec["kz"]))
            if layer.reset_after:
                p3 = b.channel("gru r", layer.U_n @ x, rec["r"])
                p4 = b.channel("gru (U_n h + b)·σ'(a_r)", layer.W_r @ sig + layer.U_r @ x, iv.mul(rec["g"], rec["kr"]))
                da_n = layer.W_n @ sig + p3 + p4
            else:
                p3 = b.channel("gru r", x, rec["r"])
                p4 = b.channel("gru h·σ'(a_r)", layer.W_r @ sig + layer.U_r @ x, iv.mul(rec["g"], rec["kr"]))
                da_n = layer.W_n @ sig + layer.U_n @ (p3 + p4)
            # z dh + (1 − z) dn = dh + (1 − z)(dn − dh): one gain 1 − z keeps the convex combination
            pn = b.channel("gru tanh'(a_n)", da_n, rec["kn"])
            pm = b.channel("gru 1−z", pn - x, rec["one_minus_z"])
            xn = x + pm + p1
            nxt.append(xn)
            sig = xn
        else:
            from certify.loop import intervals as iv

            H = layer.hidden
            dh, dc = x[:H], x[H:]
            da = {k: getattr(layer, f"W_{k}") @ sig + getattr(layer, f"U_{k}") @ dh for k in "ifgo"}
            pf = b.channel("lstm f", dc, rec["f"])
            pfc = b.channel("lstm c·σ'(a_f)", da["f"], iv.mul(rec["c"], rec["kf"]))
            pi_ = b.channel("lstm g·σ'(a_i)", da["i"], iv.mul(rec["g"], rec["ki"]))
            pg = b.channel("lstm i·tanh'(a_g)", da["g"], iv.mul(rec["i"], rec["kg"]))
            dcn = pf + pfc + pi_ + pg
            pt = b.channel("lstm o·tanh'(c⁺)", dcn, iv.mul(rec["o"], rec["kt"]))
            po = b.channel("lstm tanh(c⁺)·σ'(a_o)", da["o"], iv.mul(rec["tc"], rec["ko"]))
            dhn = pt + po
            nxt.append(np.vstack([dhn, dcn]))
            sig = dhn
    head = gl.net.head
    out = sig if head is None else head.W @ sig + (head.D @ ds if head.D is not None else 0.0)
    k = gl.spec.output
    de = -gl.est_gain * out[k:k + 1]
    q_sat = up - pi.kp * ep + (pi.kp + pi.ki * pi.Ts) * de
    qs = recs[-1]["q_sat"]
    # the saturation's slope: 1 where q stays inside the limits, 0 where it stays outside, else [0, 1]
    inside = pi.u_min < qs[0][0] and qs[1][0] < pi.u_max
    outside = qs[0][0] > pi.u_max or qs[1][0] < pi.u_min
    gain = (np.ones(1), np.ones(1)) if inside else (np.zeros(1), np.zeros(1)) if outside else (np.zeros(1), np.ones(1))
    psat = b.channel("saturation", q_sat, gain)
    rows = np.vstack([gl.A @ xp + gl.b_act[:, None] @ psat, *nxt, psat, de])
    assert b.k == m
    return TangentLFT(A=rows[:, :n], B=rows[:, n:], C=b.Q[:, :n], D=b.Q[:, n:], lower=b.lo, upper=b.hi,
                      labels=tuple(b.labels))


def lure_from_lft(t: TangentLFT) -> Any:
    """Loop transformation ``p = l q + p̃``: a Luré system with sector ``[0, u − l]`` per channel."""
    from certify.sdp.types import LureSystem

    m = t.D.shape[0]
    L = np.diag(t.lower)
    Ninv = np.linalg.solve(np.eye(m) - t.D @ L, np.eye(m))  # I − D L is unit lower triangular
    A = t.A + t.B @ L @ Ninv @ t.C
    B = t.B + t.B @ L @ Ninv @ t.D
    C, D = Ninv @ t.C, Ninv @ t.D
    width = t.upper - t.lower
    K = np.maximum(width, MIN_WIDTH * np.maximum(1.0, np.abs(t.upper)))
    return LureSystem(A=A, B=B, C=C, D=D, K=K)


def _necessary(gl: GatedLoop, box: Interval, t: TangentLFT, samples: int = 64, vertices: int = 62,
               seed: int = 0) -> dict[str, Any]:
    """Spectral radius of the real Jacobian at points of the box (a contraction needs ρ(J(x)) < 1 everywhere)
    and of LFT members at the gains' vertices; the largest found is reported."""
    rng = np.random.default_rng(seed)
    lo, hi = box
    pts = lo + (hi - lo) * rng.uniform(size=(samples, lo.shape[0]))
    worst, where = 0.0, None
    eps = 1e-7
    for x in pts:
        cols = []
        for j in range(x.shape[0]):
            hstep = eps * max(1.0, abs(x[j]))
            xp_, xm = x.copy(), x.copy()
            xp_[j] += hstep
            xm[j] -= hstep
            cols.append((gl.step(xp_)[0] - gl.step(xm)[0]) / (2 * hstep))
        J = np.column_stack(cols)
        r = float(np.max(np.abs(np.linalg.eigvals(J))))
        if r > worst:
            worst, where = r, x
    vert = 0.0
    tries = [t.lower, t.upper] + [np.where(rng.uniform(size=t.lower.shape) < 0.5, t.lower, t.upper)
                                  for _ in range(vertices)]
    for d in tries:
        vert = max(vert, float(np.max(np.abs(np.linalg.eigvals(t.jacobian(d))))))
    return {"max_spectral_radius_sampled": worst, "at": None if where is None else where.tolist(),
            "max_spectral_radius_lft_vertices": vert}


def _solve(sys: Any, *, solver: str | None, timeout: float | None, solver_options: dict[str, Any] | None
           ) -> tuple[Any, Any, list[dict[str, Any]]]:
    """Circle LMI on the balanced system, certificate mapped back and validated on ``sys``."""
    from certify.criteria.lmi import balance_lure, solve_lmi
    from certify.criteria.validate import validate_certificate
    from certify.sdp import solvers as _solvers
    from certify.sdp.types import LMICertificate

    t0 = time.perf_counter()
    bal, T, S = balance_lure(sys)
    first = _solvers.get_solver(solver) if solver else _solvers.choose_solver(2 * sys.n + sys.m)
    names = [first.name] + [s.name for s in _solvers.fallback_solvers(first)]
    attempts: list[dict[str, Any]] = []
    for name in names:
        left = None if timeout is None else timeout - (time.perf_counter() - t0)
        if left is not None and left <= 0:
            break
        att = solve_lmi(bal, "circle", solver=name, timeout=left,
                        solver_options=solver_options if name == names[0] else None)
        rec: dict[str, Any] = {"solver": att.outcome.solver if att.outcome is not None else name,
                               "message": att.message}
        attempts.append(rec)
        if att.certificate is None:
            continue
        P = att.certificate.P / T[:, None] / T[None, :]
        mult = {k: np.asarray(v) / S**2 for k, v in att.certificate.multipliers.items()}
        cert = LMICertificate("circle", P, mult)
        val = validate_certificate(sys, cert)
        rec["validated"] = bool(val.ok)
        if val.ok:
            return cert, val, attempts
        if att.decision == "infeasible":
            break
    return None, None, attempts


def check_contraction(net: Any, spec: Any, *, solver: str | None = None, timeout: float | None = None,
                      solver_options: dict[str, Any] | None = None, name: str = "loop.gas.contraction"
                      ) -> CheckResult:
    """Certify GAS of a loop around a gated network by contraction on a proved absorbing box.

    ``proved`` needs the absorbing box (interval arithmetic), a validated circle-criterion certificate
    for the Jacobian set over the slightly widened box, and therefore ``ρ < 1`` (docs/theory.md §6.3).
    ``quantities`` hold the box, the gain intervals per channel group, ``P``'s contraction factor and the
    necessary-condition figures.
    """
    from flint import ctx

    from certify.loop.absorbing import PREC_BITS

    t0 = time.perf_counter()
    crit = "contraction_circle"
    q: dict[str, Any] = {"method": "contraction_on_absorbing_box"}
    try:
        gl = net if isinstance(net, GatedLoop) else gated_loop(net, spec)
        aset: GatedAbsorbingBox = absorbing_box(gl, time_budget=None if timeout is None else 0.3 * timeout)
    except NotApplicable as exc:
        return CheckResult(name=name, property=Property.GAS, status=CheckStatus.NOT_APPLICABLE, criterion=crit,
                           message=f"the contraction analysis does not apply: {exc}.", quantities=q,
                           seconds=time.perf_counter() - t0)
    q["absorbing_set"] = aset.to_dict()
    with ctx.workprec(PREC_BITS):
        big = inflate((aset.lower, aset.upper), INFLATE_REL, INFLATE_ABS)
        lft = tangent_lft(gl, big)
    groups, k = [], 0
    for label, h in lft.labels:
        groups.append({"channels": label, "count": h, "gain_min": float(lft.lower[k:k + h].min()),
                       "gain_max": float(lft.upper[k:k + h].max())})
        k += h
    q["gain_intervals"] = groups
    nec = _necessary(gl, big, lft)
    q["necessary_condition"] = nec
    if nec["max_spectral_radius_sampled"] >= 1.0:
        msg = (f"not a contraction on its absorbing box: at a point of the box the loop's Jacobian has spectral "
               f"radius {nec['max_spectral_radius_sampled']:.4f} ≥ 1, so no norm makes the loop contract there "
               "(global stability may still hold, but this method cannot show it).")
        return CheckResult(name=name, property=Property.GAS, status=CheckStatus.NOT_PROVED, criterion=crit,
                           message=msg, margin=nec["max_spectral_radius_sampled"] - 1.0, quantities=q,
                           seconds=time.perf_counter() - t0)
    if nec["max_spectral_radius_lft_vertices"] >= 1.0:
        msg = ("not proved by contraction: the Jacobian set over the absorbing box (every gain anywhere in its "
               "interval, independently) contains a member with spectral radius "
               f"{nec['max_spectral_radius_lft_vertices']:.4f} ≥ 1, so no contraction certificate exists for that "
               "set, although the real Jacobians sampled in the box have spectral radius ≤ "
               f"{nec['max_spectral_radius_sampled']:.4f}. The box is too wide for this method: gates or the "
               "saturation range over intervals that let the PI's integrator run open (an estimate with a linear "
               "path from the measurements, or smaller recurrent weights, narrows them).")
        return CheckResult(name=name, property=Property.GAS, status=CheckStatus.NOT_PROVED, criterion=crit,
                           message=msg, margin=nec["max_spectral_radius_lft_vertices"] - 1.0, quantities=q,
                           seconds=time.perf_counter() - t0)
    sys = lure_from_lft(lft)
    left = None if timeout is None else max(timeout - (time.perf_counter() - t0), 1.0)
    cert, val, attempts = _solve(sys, solver=solver, timeout=left, solver_options=solver_options)
    q["attempts"] = attempts
    q["lmi_order"] = sys.n + sys.m
    if cert is None:
        msg = ("not proved by contraction: the circle-criterion LMI for the Jacobian set over the absorbing box "
               f"has no validated certificate ({attempts[-1]['message'] if attempts else 'no solver attempt'}). "
               f"Necessary condition: sampled Jacobians have spectral radius ≤ {nec['max_spectral_radius_sampled']:.4f}.")
        return CheckResult(name=name, property=Property.GAS, status=CheckStatus.NOT_PROVED, criterion=crit,
                           message=msg, quantities=q, seconds=time.perf_counter() - t0)
    P = np.asarray(cert.P)
    lam_max = float(np.linalg.eigvalsh((P + P.T) / 2).max())
    mu = -val.max_eig_M - val.margin_M   # M ⪯ −μ I with the rounding margin taken off
    rho = float(np.sqrt(max(0.0, 1.0 - mu / lam_max)))
    q["contraction_factor_bound"] = rho
    q["certificate"] = {"P": P.tolist(), "multipliers": {k: np.asarray(v).tolist() for k, v in cert.multipliers.items()}}
    xs = _equilibrium(gl, aset)
    if xs is not None:
        q["equilibrium"] = {"found": True, "x": xs.tolist()}
    msg = (f"the loop has one equilibrium and every trajectory converges to it: every trajectory enters a box "
           f"proved invariant in interval arithmetic ({aset.iterations} shrinking steps), and on it the loop map "
           f"contracts in a P-norm with factor ≤ {rho:.6f} (circle-criterion LMI for the Jacobian set of "
           f"{sys.m} gain channels, validated: max eig M = {val.max_eig_M:.3e}; docs/theory.md §6.3).")
    return CheckResult(name=name, property=Property.GAS, status=CheckStatus.PROVED, criterion=crit, message=msg,
                       margin=val.max_eig_M, quantities=q, validation=val.to_dict(),
                       solver=attempts[-1]["solver"], seconds=time.perf_counter() - t0)


def _equilibrium(gl: GatedLoop, aset: GatedAbsorbingBox, steps: int = 20000) -> np.ndarray | None:
    """The (unique, once proved) equilibrium, by iterating the contraction from the box centre; ``None``
    when the iteration has not settled within ``steps`` (a slow contraction), so no point is reported."""
    x = ((aset.lower + aset.upper) / 2)[None, :]
    for _ in range(steps):
        xn = gl.step(x)
        if np.max(np.abs(xn - x)) <= 1e-12 * max(1.0, float(np.max(np.abs(x)))):
            return xn[0]
        x = xn
    return None
