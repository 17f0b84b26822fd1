"""Every layer's step and equilibrium residual, written once for float64 and for ball arithmetic.

For each layer kind two maps of ``(x, s)`` (own state, layer input) are given, in forms that do not
cancel in floating point:

``step``
    ``(x⁺, out)`` exactly as :meth:`certify.networks.Network.step` defines it, with every gate
    complement evaluated as ``1 − σ(a) = σ(−a)`` (a GRU update ``z x + (1 − z) n`` is evaluated as
    ``x + σ(−a_z)(n − x)``), so that a gate that rounds to 1.0 in float64 cannot freeze a
    coordinate in the proof.
``residual``
    ``(G, out*)`` with ``G(x) = 0`` exactly when ``x`` is an equilibrium of the layer for the input
    ``s``, and ``out*`` the layer's output there.  Positive gate factors are divided out: for a GRU
    ``x⁺ − x = σ(−a_z)(n − x)`` and ``σ(−a_z) > 0``, so ``G = n(x, s) − x`` (the update gate drops out
    and every equilibrium lies in ``(−1, 1)ⁿ``); for an LSTM ``G = (i g − σ(−a_f) c,  o tanh(c) − h)``.

>>> import numpy as np
>>> from certify.networks import GRULayer
>>> from certify.witness.dual import Dual, FloatOps
>>> H = 2
>>> layer = GRULayer(*(np.eye(H, 1) for _ in range(3)), *(np.eye(H) for _ in range(3)),
...                  *(np.zeros(H) for _ in range(4)))
>>> x, u = np.array([[0.3, -0.2]]), np.array([0.5])
>>> xn, _ = step(layer, FloatOps(), Dual(x), Dual(u))
>>> bool(np.allclose(xn.val, layer.step(x, u)[0]))
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from certify.networks import (
    AffineCell,
    ElmanLayer,
    GRULayer,
    LPGRNNLayer,
    LSTMLayer,
    StateSpaceLayer,
)
from certify.witness.dual import Dual


def act_mixed(ops: Any, names: tuple[str, ...], a: Dual) -> Dual:
    """Channel ``i`` of ``a`` through activation ``names[i]``."""
    kinds = sorted(set(names))
    if len(kinds) == 1:
        return ops.act(kinds[0], a)
    arr = np.asarray(names)
    val = a.val.copy()
    tan = None if a.tan is None else a.tan.copy()
    for name in kinds:
        idx = np.flatnonzero(arr == name)
        r = ops.act(name, Dual(a.val[..., idx], None if a.tan is None else a.tan[..., idx, :]))
        val[..., idx] = r.val
        if tan is not None:
            tan[..., idx, :] = r.tan
    return Dual(val, tan)


def _nilpotency_index(D: np.ndarray) -> int:
    """Smallest k with ``D^k = 0`` for a strictly lower-triangular ``D`` (by its sparsity)."""
    S = (D != 0).astype(np.int64)
    P = np.eye(D.shape[0], dtype=np.int64)
    for k in range(1, D.shape[0] + 2):
        P = np.minimum(P @ S, 1)
        if not P.any():
            return k
    return D.shape[0] + 1  # pragma: no cover - strictly lower triangular matrices are nilpotent


def _gru_gate(layer: GRULayer, ops: Any, x: Dual, s: Dual) -> Dual:
    """a_z of a GRU layer (the update gate's pre-activation; the residual does not need it)."""
    return ops.lin(layer.W_z, s) + ops.lin(layer.U_z, x) + ops.const(layer.b_z)


def _gru(layer: GRULayer, ops: Any, x: Dual, s: Dual) -> Dual:
    """n (the candidate state) of a GRU layer."""
    r = ops.act("sigmoid", ops.lin(layer.W_r, s) + ops.lin(layer.U_r, x) + ops.const(layer.b_r))
    if layer.reset_after:
        a_n = ops.lin(layer.W_n, s) + ops.const(layer.b_in) + r * (ops.lin(layer.U_n, x) + ops.const(layer.b_hn))
    else:
        a_n = ops.lin(layer.W_n, s) + ops.lin(layer.U_n, r * x) + ops.const(layer.b_in) + ops.const(layer.b_hn)
    return ops.act("tanh", a_n)


def _lstm(layer: LSTMLayer, ops: Any, x: Dual, s: Dual) -> tuple[Dual, ...]:
    H = layer.hidden
    h, c = x.part(slice(0, H)), x.part(slice(H, 2 * H))

    def pre(g: str) -> Dual:
        return ops.lin(getattr(layer, f"W_{g}"), s) + ops.lin(getattr(layer, f"U_{g}"), h) + ops.const(
            getattr(layer, f"b_{g}"))

    a_f = pre("f")
    i = ops.act("sigmoid", pre("i"))
    g = ops.act("tanh", pre("g"))
    o = ops.act("sigmoid", pre("o"))
    return h, c, i, a_f, g, o


def _elman(layer: ElmanLayer, ops: Any, x: Dual, s: Dual) -> Dual:
    return ops.act(layer.activation, ops.lin(layer.W, s) + ops.lin(layer.U, x) + ops.const(layer.b))


def _lpgrnn(layer: LPGRNNLayer, ops: Any, x: Dual, s: Dual) -> Dual:
    r = ops.act("sigmoid", ops.lin(layer.W_r, s) + ops.lin(layer.U_r, x) + ops.const(layer.b_r))
    return ops.act("tanh", ops.lin(layer.W_h, s) + ops.lin(layer.U_h, x) + ops.lin(layer.V_h, r)
                   + ops.const(layer.b_h))


def _ssnn(layer: StateSpaceLayer, ops: Any, x: Dual, s: Dual) -> tuple[Dual, Dual]:
    pf = ops.act(layer.activation, ops.lin(layer.W_fx, x) + ops.lin(layer.W_fu, s) + ops.const(layer.b_f))
    pg = ops.act(layer.activation, ops.lin(layer.W_gx, x) + ops.lin(layer.W_gu, s) + ops.const(layer.b_g))
    xn = ops.lin(layer.A, x) + ops.lin(layer.B, s) + ops.lin(layer.W_x, pf) + ops.const(layer.b_x)
    y = ops.lin(layer.C, x) + ops.lin(layer.D, s) + ops.lin(layer.W_y, pg) + ops.const(layer.b_y)
    return xn, y


def _affine(layer: AffineCell, ops: Any, x: Dual, s: Dual) -> tuple[Dual, Dual]:
    base = ops.lin(layer.C_q, x) + ops.lin(layer.D_qu, s) + ops.const(layer.b_q)
    p = act_mixed(ops, layer.activations, base)
    if np.any(layer.D_qp):  # forward substitution as a nilpotent iteration: exact after k rounds
        for _ in range(_nilpotency_index(layer.D_qp) - 1):
            p = act_mixed(ops, layer.activations, base + ops.lin(layer.D_qp, p))
    xn = ops.lin(layer.A, x) + ops.lin(layer.B_p, p) + ops.lin(layer.B_u, s) + ops.const(layer.b_x)
    y = ops.lin(layer.C_y, x) + ops.lin(layer.D_yp, p) + ops.lin(layer.D_yu, s) + ops.const(layer.b_y)
    return xn, y


def step(layer: Any, ops: Any, x: Dual, s: Dual) -> tuple[Dual, Dual]:
    """``(x⁺, out)`` of one layer (see the module docstring)."""
    if isinstance(layer, GRULayer):
        a_z, n = _gru_gate(layer, ops, x, s), _gru(layer, ops, x, s)
        xn = x + ops.act("sigmoid", -a_z) * (n - x)
        return xn, xn
    if isinstance(layer, LSTMLayer):
        h, c, i, a_f, g, o = _lstm(layer, ops, x, s)
        cn = c - ops.act("sigmoid", -a_f) * c + i * g
        hn = o * ops.act("tanh", cn)
        return Dual.concat([hn, cn]), hn
    if isinstance(layer, ElmanLayer):
        xn = _elman(layer, ops, x, s)
        return xn, xn
    if isinstance(layer, LPGRNNLayer):
        xn = x + (1.0 - ops.const(layer.z)) * (_lpgrnn(layer, ops, x, s) - x)
        return xn, xn
    if isinstance(layer, StateSpaceLayer):
        return _ssnn(layer, ops, x, s)
    if isinstance(layer, AffineCell):
        return _affine(layer, ops, x, s)
    raise TypeError(f"no interval model for layer kind {getattr(layer, 'kind', type(layer).__name__)!r}")


def residual(layer: Any, ops: Any, x: Dual, s: Dual) -> tuple[Dual, Dual]:
    """``(G, out*)``: ``G = 0`` exactly at the layer's equilibria (see the module docstring)."""
    if isinstance(layer, GRULayer):
        return _gru(layer, ops, x, s) - x, x
    if isinstance(layer, LSTMLayer):
        h, c, i, a_f, g, o = _lstm(layer, ops, x, s)
        G_h = o * ops.act("tanh", c) - h
        G_c = i * g - ops.act("sigmoid", -a_f) * c
        return Dual.concat([G_h, G_c]), h
    if isinstance(layer, ElmanLayer):
        return _elman(layer, ops, x, s) - x, x
    if isinstance(layer, LPGRNNLayer):
        live = (layer.z != 1.0).astype(np.float64)  # z_i = 1 freezes x_i: that row stays 0 (no isolated root)
        return (_lpgrnn(layer, ops, x, s) - x) * ops.const(live), x
    xn, y = step(layer, ops, x, s)
    return xn - x, y


def network_map(net: Any, ops: Any, X: Dual, u: Any, mode: str) -> Dual:
    """The whole stack: ``f(X, u)`` (``mode="step"``) or the equilibrium residual (``"residual"``).

    ``u``: the constant input (float64: one per row of ``X`` allowed), or a :class:`Dual` whose tangent
    gives derivatives with respect to the input as well.
    """
    fn = step if mode == "step" else residual
    s = u if isinstance(u, Dual) else Dual(ops.const(u), None)
    layers = net.layers
    if len(layers) == 1:
        return fn(layers[0], ops, X, s)[0]
    parts = []
    for layer, sl in zip(layers, net.state_slices()):
        xn, s = fn(layer, ops, X.part(sl), s)
        parts.append(xn)
    return Dual.concat(parts)
