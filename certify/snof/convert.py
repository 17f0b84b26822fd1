"""Canonical networks → SNOF (docs/theory.md §5; LP-GRNN after Hilgert & Schwung 2025, eq. (13);
one block per layer, joined by
:func:`~certify.snof.connect.interconnect`).

The SNOF's state is the network state (layers bottom first), its input ``w`` the network input and
its output ``z`` the head output (or the top layer's output).  Sigmoid channels are kept as they are
(exact); :func:`~certify.snof.transform.sigmoid_to_tanh` rewrites them when wanted.
"""

from __future__ import annotations

import numpy as np

from certify.errors import NotApplicableError, UnsupportedModelError
from certify.networks import AffineCell, ElmanLayer, LPGRNNLayer, Network, StateSpaceLayer
from certify.networks.kinds import GATED_KINDS, kind_of, resolve
from certify.snof.channels import Channel
from certify.snof.connect import interconnect
from certify.snof.form import SNOF

_GATED_MSG = (
    "{kind} layers have no exact SNOF: their Hadamard (elementwise) gating multiplies two signals, which "
    "is not a static slope-restricted nonlinearity, so the Luré–Postnikov/circle LMIs do not apply "
    "(Hilgert & Schwung 2025, Prop. IV.2; docs/theory.md §5). Use the closed-form δISS/ISS tests for "
    "gated networks instead (criterion "
    "'diss'), or an LP-GRNN / Elman / state-space network for the LMI path."
)


def layer_to_snof(layer: object) -> SNOF:
    """One layer as a SNOF block with the layer input as ``w`` and the layer output as ``z``; the conversion
    is the one the layer-kind registry names (:data:`certify.networks.kinds.KINDS`).

    >>> from certify.networks import ElmanLayer
    >>> layer_to_snof(ElmanLayer(W=[[1.0]], U=[[0.5]], b=[0.0])).m
    1
    """
    try:
        kind = kind_of(layer)
    except KeyError:
        raise UnsupportedModelError(f"from_network: layer type {type(layer).__name__} has no SNOF conversion.") \
            from None
    if kind.snof is None:
        raise NotApplicableError(_GATED_MSG.format(kind=kind.name.upper()))
    return resolve(kind.snof)(layer)


def elman_snof(layer: ElmanLayer) -> SNOF:
    """An Elman layer: ``p = φ(U h + W u + b)``, ``h⁺ = p`` (docs/theory.md §5)."""
    H = layer.n_state
    return SNOF(A=np.zeros((H, H)), B_p=np.eye(H), B_w=np.zeros((H, layer.n_in)), C_q=layer.U,
                D_qw=layer.W, b_q=layer.b, C_z=np.zeros((H, H)), D_zp=np.eye(H),
                channels=(Channel(layer.activation),) * H)


def lpgrnn_snof(layer: LPGRNNLayer) -> SNOF:
    """An LP-GRNN layer (Hilgert & Schwung 2025, eq. 13, without the sigmoid→tanh rewrite):
    ``p = [σ(q_r); tanh(q_h)]``."""
    n, nr, nu = layer.n_state, layer.n_gate, layer.n_in
    Z = np.diag(layer.z)
    Bp = np.hstack([np.zeros((n, nr)), np.eye(n) - Z])
    Dqp = np.zeros((nr + n, nr + n))
    Dqp[nr:, :nr] = layer.V_h
    return SNOF(A=Z, B_p=Bp, B_w=np.zeros((n, nu)), C_q=np.vstack([layer.U_r, layer.U_h]), D_qp=Dqp,
                D_qw=np.vstack([layer.W_r, layer.W_h]), b_q=np.concatenate([layer.b_r, layer.b_h]),
                C_z=Z, D_zp=Bp, channels=(Channel("sigmoid"),) * nr + (Channel("tanh"),) * n)


def ssnn_snof(layer: StateSpaceLayer) -> SNOF:
    """An SS-NN / gR-SS-NN layer (Schoukens 2021, eqs. 4–5): channels ``[f-neurons; g-neurons]``."""
    nf, ng = layer.W_fx.shape[0], layer.W_gx.shape[0]
    nx, ny = layer.n_state, layer.n_out
    return SNOF(A=layer.A, B_p=np.hstack([layer.W_x, np.zeros((nx, ng))]), B_w=layer.B, b_x=layer.b_x,
                C_q=np.vstack([layer.W_fx, layer.W_gx]), D_qw=np.vstack([layer.W_fu, layer.W_gu]),
                b_q=np.concatenate([layer.b_f, layer.b_g]), C_z=layer.C,
                D_zp=np.hstack([np.zeros((ny, nf)), layer.W_y]), D_zw=layer.D, b_z=layer.b_y,
                channels=(Channel(layer.activation),) * (nf + ng))


def affine_cell_snof(layer: AffineCell) -> SNOF:
    """A one-step affine cell graph: its matrices are a SNOF already."""
    return SNOF(A=layer.A, B_p=layer.B_p, B_w=layer.B_u, b_x=layer.b_x, C_q=layer.C_q, D_qp=layer.D_qp,
                D_qw=layer.D_qu, b_q=layer.b_q, C_z=layer.C_y, D_zp=layer.D_yp, D_zw=layer.D_yu,
                b_z=layer.b_y, channels=tuple(Channel(a) for a in layer.activations))


def from_network(net: Network) -> SNOF:
    """The whole network (stack + head) as one SNOF; ``simulate`` agrees with ``Network.simulate``.

    Raises :class:`~certify.errors.NotApplicableError` for GRU/LSTM layers (Hadamard gating).

    >>> from certify.networks import ElmanLayer, LinearHead, Network
    >>> net = Network(layers=(ElmanLayer(W=[[1.0]], U=[[0.5]], b=[0.1]),), head=LinearHead(W=[[2.0]], b=[0.0]))
    >>> f = from_network(net)
    >>> u = np.ones((4, 1))
    >>> bool(np.allclose(f.simulate(u).y, net.simulate(u).y, atol=1e-12))
    True
    """
    for layer in net.layers:
        if layer.kind in GATED_KINDS:
            raise NotApplicableError(_GATED_MSG.format(kind=layer.kind.upper()))
    blocks = [layer_to_snof(layer) for layer in net.layers]
    n_ext = net.n_inputs
    if net.head is not None:
        D = net.head.D if net.head.D is not None else np.zeros((net.head.n_out, n_ext))
        blocks.append(SNOF(A=np.zeros((0, 0)), D_zw=np.hstack([net.head.W, D]), b_z=net.head.b))
    L, G, H = network_wiring([(b.n_w, b.n_z) for b in blocks], n_ext, head=net.head is not None)
    form = interconnect(blocks, L, G, H=H)
    return form


def network_wiring(sizes: list[tuple[int, int]], n_ext: int, *, head: bool) -> tuple[np.ndarray, ...]:
    """The routing ``(L, G, H)`` of :func:`from_network` for blocks with ``(n_w, n_z)`` = ``sizes``.

    Block ``i`` reads block ``i − 1``'s output; the first block (and the head, the last block when ``head``,
    through its direct term) reads the network input; the output is the last block's.  The torch twin of
    the conversion (``certify.train.loop_penalty``) uses the same routing.

    >>> L, G, H = network_wiring([(1, 2), (2, 1)], 1, head=False)
    >>> L.tolist(), G.tolist(), H.tolist()
    ([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [[1.0], [0.0], [0.0]], [[0.0, 0.0, 1.0]])
    """
    nu = sum(w for w, _ in sizes)
    ny = sum(z for _, z in sizes)
    L = np.zeros((nu, ny))
    G = np.zeros((nu, n_ext))
    G[:n_ext, :] = np.eye(n_ext)
    r_in, r_out = sizes[0][0], 0
    for i in range(1, len(sizes)):
        prev_z = sizes[i - 1][1]
        L[r_in:r_in + prev_z, r_out:r_out + prev_z] = np.eye(prev_z)   # previous output → this input
        if head and i == len(sizes) - 1:
            G[r_in + prev_z:r_in + sizes[i][0], :] = np.eye(n_ext)       # head's direct input term
        r_in += sizes[i][0]
        r_out += prev_z
    H = np.zeros((sizes[-1][1], ny))
    H[:, ny - sizes[-1][1]:] = np.eye(sizes[-1][1])
    return L, G, H
