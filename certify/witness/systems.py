"""Discrete-time systems the witness search and proofs work on: a network, or a closed loop's SNOF.

Both offer the same small interface:

``n_states``, ``n_inputs``
    sizes (a closed loop has no external input: ``n_inputs = 0``);
``step(X, u)``
    the float64 step, batched over the rows of ``X`` (the semantic reference);
``map(ops, X, u, mode)``
    the step (``mode="step"``) or an equilibrium residual whose zeros are exactly the fixed points
    (``mode="residual"``), on :class:`~certify.witness.dual.Dual` values, for float64 and for ball
    arithmetic alike.

A closed loop's SNOF ``x⁺ = A x + B_p p + B_w w + b_x``, ``q = C_q x + D_qp p + D_qw w + b_q``,
``p = φ(q)`` is evaluated by forward substitution over its channel graph (acyclic ``D_qp``), each
channel as :meth:`certify.snof.Channel.evaluate` defines it (``tanh``, ``sigmoid``, ``relu``,
``saturation``, with their gains and offsets).

>>> import numpy as np
>>> from certify.snof import SNOF, Channel
>>> form = SNOF(A=[[0.5]], B_p=[[-1.0]], C_q=[[1.0]], channels=(Channel("saturation", limits=(-0.2, 0.2)),))
>>> sys = SNOFSystem(form)
>>> x = np.array([[1.0], [0.1]])
>>> bool(np.allclose(sys.step(x, np.zeros(0)), form.step(x, np.zeros((2, 0)))[0]))
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from certify.witness.dual import Dual
from certify.witness.layers import network_map


class NetworkSystem:
    """A :class:`~certify.networks.Network` under a constant input."""

    def __init__(self, net: Any):
        self.net = net
        self.n_states = net.n_states
        self.n_inputs = net.n_inputs

    def step(self, X: np.ndarray, u: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            return self.net.step(X, np.broadcast_to(u, X.shape[:-1] + u.shape))[0]

    def map(self, ops: Any, X: Dual, u: np.ndarray, mode: str) -> Dual:
        return network_map(self.net, ops, X, u, mode)


def _channel_params(channels: tuple[Any, ...]) -> dict[str, np.ndarray]:
    get = lambda name: np.array([float(getattr(c, name)) for c in channels])  # noqa: E731
    lo = np.array([c.limits[0] if c.limits is not None else -np.inf for c in channels], dtype=np.float64)
    hi = np.array([c.limits[1] if c.limits is not None else np.inf for c in channels], dtype=np.float64)
    return {"in_gain": get("in_gain"), "q_offset": get("q_offset"), "p_offset": get("p_offset"),
            "out_gain": get("out_gain"), "lin": get("lin"), "low": lo, "high": hi}


class SNOFSystem:
    """A SNOF (e.g. an assembled closed loop) under a constant exogenous input ``w``.

    Raises ``ValueError`` when the channel graph has a cycle (no explicit evaluation order).
    """

    def __init__(self, form: Any):
        from certify.snof.form import channel_levels

        self.form = form
        self.n_states = form.n
        self.n_inputs = form.n_w
        D = np.asarray(form.D_qp)
        if channel_levels(D) is None:
            raise ValueError("the SNOF's channel graph has a cycle: no explicit evaluation order.")
        self._rounds = len(channel_levels(D) or [])
        self._kinds = tuple(c.kind for c in form.channels)
        self._par = _channel_params(form.channels)

    def step(self, X: np.ndarray, u: np.ndarray) -> np.ndarray:
        w = np.broadcast_to(u, X.shape[:-1] + (self.n_inputs,))
        with np.errstate(over="ignore", invalid="ignore"):
            return self.form.step(X, w)[0]

    def _channels(self, ops: Any, q: Dual) -> Dual:
        from certify.witness.layers import act_mixed

        P = self._par
        v = q * ops.const(P["in_gain"]) + ops.const(P["q_offset"])
        kinds = self._kinds
        if "saturation" in kinds:
            sat = np.array([k == "saturation" for k in kinds])
            base = act_mixed(ops, tuple("relu" if s else k for k, s in zip(kinds, sat)), v) if not sat.all() else None
            clipped = ops.clip(v, P["low"], P["high"])
            base = clipped if base is None else _select(sat, clipped, base)
        else:
            base = act_mixed(ops, kinds, v)
        return (base - ops.const(P["p_offset"])) * ops.const(P["out_gain"]) - q * ops.const(P["lin"])

    def map(self, ops: Any, X: Dual, u: np.ndarray, mode: str) -> Dual:
        f = self.form
        base = ops.lin(np.asarray(f.C_q), X) + ops.const(np.asarray(f.b_q))
        if self.n_inputs:
            base = base + ops.lin(np.asarray(f.D_qw), Dual(ops.const(u), None))
        p = self._channels(ops, base)
        D = np.asarray(f.D_qp)
        if np.any(D):
            for _ in range(self._rounds - 1):  # forward substitution, level by level
                p = self._channels(ops, base + ops.lin(D, p))
        xn = ops.lin(np.asarray(f.A), X) + ops.lin(np.asarray(f.B_p), p) + ops.const(np.asarray(f.b_x))
        if self.n_inputs:
            xn = xn + ops.lin(np.asarray(f.B_w), Dual(ops.const(u), None))
        return xn - X if mode == "residual" else xn


def _select(mask: np.ndarray, a: Dual, b: Dual) -> Dual:
    """Entries of ``a`` where ``mask``, else of ``b``."""
    idx = np.flatnonzero(mask)
    val = b.val.copy()
    val[..., idx] = a.val[..., idx]
    tan = None
    if a.tan is not None or b.tan is not None:
        tan = (b.tan if b.tan is not None else a.tan * 0).copy()
        if a.tan is not None:
            tan[..., idx, :] = a.tan[..., idx, :]
        else:
            tan[..., idx, :] = 0 * tan[..., idx, :]
    return Dual(val, tan)


def as_system(obj: Any) -> Any:
    """A network or SNOF as a system (systems pass through)."""
    if hasattr(obj, "map") and hasattr(obj, "step") and hasattr(obj, "n_states"):
        return obj
    if hasattr(obj, "layers"):
        return NetworkSystem(obj)
    return SNOFSystem(obj)
