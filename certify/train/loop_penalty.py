"""``--target loop``: the closed loop's SNOF in torch, and an LMI penalty on it.

The closed loop plant ⋆ network ⋆ saturated PI (:func:`certify.loop.assemble.assemble`; Hilgert & Schwung
2025, eq. 20) is the static interconnection ``u_all = L y_all + o`` of three SNOF blocks, of which only the
network's depends on the weights.  This module rebuilds it in torch, term by term as the numpy code does:

* :func:`network_snof` — the network module's SNOF (:func:`certify.snof.convert.layer_to_snof` per layer,
  the head's direct term, the routing of :func:`certify.snof.convert.network_wiring`);
* :func:`interconnect` — :func:`certify.snof.connect.interconnect` (``N = (I − D_yu L)⁻¹``);
* :class:`LoopTarget` — the fixed plant and PI blocks and ``L``, ``o`` of
  :func:`certify.loop.assemble.loop_wiring`, and the anchored LMI penalty of
  :mod:`certify.train.lmi_penalty` on the closed loop's Lur'e matrices ``(A, B_p, C_q, D_qp)`` with the
  channels' slope bounds (network neurons, then the saturation, slope in ``[0, 1]``).

Until the loop's LMI has a validated certificate, the penalty acts on the network's own contraction residuals
and on the loop's vertex condition (:meth:`LoopTarget.residuals`); from then on it keeps the weights inside
the set the latest certificate (the *anchor*) certifies, re-centred at every epoch.  Only a float64-validated
certificate makes an epoch qualify, and the written model is judged by ``certify check MODEL --plant/--loop``
— never by the trainer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from certify.train.contraction import LureMatrices
from certify.train.lmi_penalty import Anchor, lmi_matrix

__all__ = ["LoopTarget", "TorchSNOF", "interconnect", "loop_snof", "network_snof"]

#: Structural obstructions of :func:`certify.loop.check.diagnose` that no network weights remove (the plant
#: runs open loop or the PI winds up while the actuator saturates, whatever the network does).
_NOT_THE_NETWORKS = ("plant_not_stable_open_loop", "positional_pi_windup")

_FIELDS = ("A", "B_p", "B_w", "b_x", "C_q", "D_qp", "D_qw", "b_q", "C_z", "D_zp", "D_zw", "b_z")


@dataclass(frozen=True)
class TorchSNOF:
    """The matrices of :class:`certify.snof.SNOF` as tensors (differentiable) plus the channel kinds."""

    A: torch.Tensor
    B_p: torch.Tensor
    B_w: torch.Tensor
    b_x: torch.Tensor
    C_q: torch.Tensor
    D_qp: torch.Tensor
    D_qw: torch.Tensor
    b_q: torch.Tensor
    C_z: torch.Tensor
    D_zp: torch.Tensor
    D_zw: torch.Tensor
    b_z: torch.Tensor
    kinds: tuple[str, ...]

    @property
    def n(self) -> int:
        return int(self.A.shape[0])

    @property
    def m(self) -> int:
        return int(self.C_q.shape[0])

    @property
    def n_w(self) -> int:
        return int(self.B_w.shape[1])

    @property
    def n_z(self) -> int:
        return int(self.C_z.shape[0])

    def numpy(self) -> dict[str, np.ndarray]:
        """The float64 matrices (for comparisons with :class:`certify.snof.SNOF`)."""
        return {k: getattr(self, k).detach().cpu().double().numpy() for k in _FIELDS}


def _block(ref: torch.Tensor, *, n: int, m: int, nw: int, nz: int, kinds: tuple[str, ...] = (),
           **given: torch.Tensor) -> TorchSNOF:
    """A SNOF block with the given matrices, zeros elsewhere (the defaults of :class:`certify.snof.SNOF`)."""
    shapes = {"A": (n, n), "B_p": (n, m), "B_w": (n, nw), "b_x": (n,), "C_q": (m, n), "D_qp": (m, m),
              "D_qw": (m, nw), "b_q": (m,), "C_z": (nz, n), "D_zp": (nz, m), "D_zw": (nz, nw), "b_z": (nz,)}
    vals = {k: given[k] if k in given else ref.new_zeros(shapes[k]) for k in _FIELDS}
    return TorchSNOF(**vals, kinds=kinds)


def _const(form: Any, ref: torch.Tensor) -> TorchSNOF:
    """A fixed numpy :class:`certify.snof.SNOF` block as tensors of ``ref``'s dtype and device."""
    t = lambda v: torch.as_tensor(np.array(v, dtype=np.float64), dtype=ref.dtype, device=ref.device)  # noqa: E731
    return TorchSNOF(**{k: t(getattr(form, k)) for k in _FIELDS},
                     kinds=tuple(c.kind for c in form.channels))


def _layer_blocks(module: nn.Module) -> list[TorchSNOF]:
    """One block per layer, as :func:`certify.snof.convert.layer_to_snof` builds them."""
    from certify.train.cells import AffineCellNet
    from certify.train.modules import SSNN, ElmanNet, LPGRNNCell, LPGRNNNet, _Stacked

    if isinstance(module, ElmanNet):
        out = []
        for k in range(module.num_layers):
            U, W = getattr(module.rnn, f"weight_hh_l{k}"), getattr(module.rnn, f"weight_ih_l{k}")
            b = (getattr(module.rnn, f"bias_ih_l{k}") + getattr(module.rnn, f"bias_hh_l{k}")) if module.bias \
                else U.new_zeros(U.shape[0])
            H = U.shape[0]
            eye = torch.eye(H, dtype=U.dtype, device=U.device)
            out.append(_block(U, n=H, m=H, nw=W.shape[1], nz=H, kinds=(module.nonlinearity,) * H,
                              B_p=eye, C_q=U, D_qw=W, b_q=b, D_zp=eye))
        return out
    if isinstance(module, LPGRNNNet):
        out = []
        for c in cast("Iterable[LPGRNNCell]", module.layers):
            n, nr, nu = c.U_h.shape[0], c.U_r.shape[0], c.W_r.shape[1]
            z = torch.sigmoid(c.theta_z)
            Z = torch.diag(z)
            Bp = torch.cat([z.new_zeros(n, nr), torch.eye(n, dtype=z.dtype, device=z.device) - Z], dim=1)
            Dqp = torch.cat([z.new_zeros(nr, nr + n), torch.cat([c.V_h, z.new_zeros(n, n)], dim=1)], dim=0)
            out.append(_block(z, n=n, m=nr + n, nw=nu, nz=n, kinds=("sigmoid",) * nr + ("tanh",) * n,
                              A=Z, B_p=Bp, C_q=torch.cat([c.U_r, c.U_h]), D_qp=Dqp, D_qw=torch.cat([c.W_r, c.W_h]),
                              b_q=torch.cat([c.b_r, c.b_h]), C_z=Z, D_zp=Bp))
        return out
    if isinstance(module, SSNN):
        s = module
        nf, ng = s.W_fx.shape[0], s.W_gx.shape[0]
        return [_block(s.W_fx, n=s.n_state, m=nf + ng, nw=s.n_in, nz=s.n_out, kinds=(s.activation,) * (nf + ng),
                       A=s.A, B_p=torch.cat([s.W_x, s.W_x.new_zeros(s.n_state, ng)], dim=1), B_w=s.B, b_x=s.b_x,
                       C_q=torch.cat([s.W_fx, s.W_gx]), D_qw=torch.cat([s.W_fu, s.W_gu]),
                       b_q=torch.cat([s.b_f, s.b_g]), C_z=s.C,
                       D_zp=torch.cat([s.W_y.new_zeros(s.n_out, nf), s.W_y], dim=1), D_zw=s.D, b_z=s.b_y)]
    if isinstance(module, AffineCellNet):
        a = module
        return [TorchSNOF(A=a.A, B_p=a.B_p, B_w=a.B_u, b_x=a.b_x, C_q=a.C_q, D_qp=a.D_qp, D_qw=a.D_qu, b_q=a.b_q,
                          C_z=a.C_y, D_zp=a.D_yp, D_zw=a.D_yu, b_z=a.b_y, kinds=tuple(a.activations))]
    if isinstance(module, _Stacked):
        from certify.errors import NotApplicableError

        raise NotApplicableError(f"{module.kind.upper()} layers have no exact SNOF (Hilgert & Schwung 2025, "
                                 "Prop. IV.2).")
    raise TypeError(f"network_snof: {type(module).__name__} is not a certify.train module.")


def network_snof(module: nn.Module) -> TorchSNOF:
    """The module's SNOF in torch: :func:`certify.snof.convert.from_network` of its canonical network.

    >>> from certify.snof import from_network
    >>> from certify.train.modules import ElmanNet, to_canonical
    >>> net = ElmanNet(2, 3, num_layers=2, n_out=1).add_bypass(np.ones((1, 2))).double()
    >>> f, ref = network_snof(net).numpy(), from_network(to_canonical(net))
    >>> max(float(np.abs(f[k] - getattr(ref, k)).max()) for k in f) < 1e-12
    True
    """
    from certify.snof.convert import network_wiring

    blocks = _layer_blocks(module)
    n_ext = blocks[0].n_w
    head = getattr(module, "head", None)
    if head is not None:
        bypass = getattr(module, "bypass", None)
        D = bypass.weight if bypass is not None else head.weight.new_zeros(head.out_features, n_ext)
        blocks.append(_block(head.weight, n=0, m=0, nw=head.in_features + n_ext, nz=head.out_features,
                             D_zw=torch.cat([head.weight, D], dim=1), b_z=head.bias))
    if len(blocks) == 1:
        return blocks[0]
    L, G, H = network_wiring([(b.n_w, b.n_z) for b in blocks], n_ext, head=head is not None)
    return interconnect(blocks, L, G=G, H=H)


def interconnect(blocks: list[TorchSNOF], L: np.ndarray, *, G: np.ndarray | None = None,
                 o: np.ndarray | None = None, H: np.ndarray | None = None) -> TorchSNOF:
    """:func:`certify.snof.connect.interconnect` in torch (``u_all = L y_all + G w + o``, ``z = H y_all``).

    >>> t = lambda v: torch.tensor(v, dtype=torch.float64)
    >>> plant = _block(t([0.0]), n=1, m=0, nw=1, nz=1, A=t([[0.9]]), B_w=t([[1.0]]), C_z=t([[1.0]]))
    >>> gain = _block(t([0.0]), n=0, m=0, nw=1, nz=1, D_zw=t([[-0.5]]))
    >>> float(interconnect([plant, gain], np.array([[0.0, 1.0], [1.0, 0.0]]), H=np.array([[1.0, 0.0]])).A[0, 0])
    0.4
    """
    ref = next(b.A for b in blocks if b.A.numel()) if any(b.A.numel() for b in blocks) else blocks[0].D_zw
    t = lambda v: torch.as_tensor(np.array(v, dtype=np.float64), dtype=ref.dtype, device=ref.device)  # noqa: E731
    nu, ny = sum(b.n_w for b in blocks), sum(b.n_z for b in blocks)
    n, m = sum(b.n for b in blocks), sum(b.m for b in blocks)
    Lt = t(L)
    Gt = t(np.zeros((nu, 0)) if G is None else G)
    ot = t(np.zeros(nu) if o is None else o)
    Ht = t(np.eye(ny) if H is None else H)

    def bd(name: str, rows: int, cols: int) -> torch.Tensor:
        out = ref.new_zeros(rows, cols)
        r = c = 0
        for b in blocks:
            M = getattr(b, name)
            out[r:r + M.shape[0], c:c + M.shape[1]] = M
            r, c = r + M.shape[0], c + M.shape[1]
        return out

    A, B_p, B_u = bd("A", n, n), bd("B_p", n, m), bd("B_w", n, nu)
    C_q, D_qp, D_qu = bd("C_q", m, n), bd("D_qp", m, m), bd("D_qw", m, nu)
    C_y, D_yp, D_yu = bd("C_z", ny, n), bd("D_zp", ny, m), bd("D_zw", ny, nu)
    cat = lambda name: torch.cat([getattr(b, name) for b in blocks])  # noqa: E731
    b_x, b_q, b_y = cat("b_x"), cat("b_q"), cat("b_z")
    Nmat = torch.eye(ny, dtype=ref.dtype, device=ref.device) - D_yu @ Lt
    rhs = torch.cat([C_y, D_yp, D_yu @ Gt, (D_yu @ ot + b_y)[:, None]], dim=1)
    sol = torch.linalg.solve(Nmat, rhs) if ny else rhs
    Yx, Yp, Yw, y0 = sol[:, :n], sol[:, n:n + m], sol[:, n + m:n + m + Gt.shape[1]], sol[:, -1]
    Ux, Up, Uw, u0 = Lt @ Yx, Lt @ Yp, Lt @ Yw + Gt, Lt @ y0 + ot
    return TorchSNOF(A=A + B_u @ Ux, B_p=B_p + B_u @ Up, B_w=B_u @ Uw, b_x=b_x + B_u @ u0,
                     C_q=C_q + D_qu @ Ux, D_qp=D_qp + D_qu @ Up, D_qw=D_qu @ Uw, b_q=b_q + D_qu @ u0,
                     C_z=Ht @ Yx, D_zp=Ht @ Yp, D_zw=Ht @ Yw, b_z=Ht @ y0,
                     kinds=tuple(k for b in blocks for k in b.kinds))


def loop_snof(module: nn.Module, wiring: tuple[Any, Any, np.ndarray, np.ndarray]) -> TorchSNOF:
    """The closed loop's SNOF in torch, from ``wiring`` = :func:`certify.loop.assemble.loop_wiring` (fixed
    plant and PI blocks, ``L``, ``o``); equals :func:`certify.loop.assemble.assemble`'s form."""
    P, C, L, o = wiring
    N = network_snof(module)
    return interconnect([_const(P, N.C_q), N, _const(C, N.C_q)], L, o=o)


class LoopTarget:
    """Residuals and epoch selection for ``--target loop`` (see the module docstring).

    Parameters
    ----------
    net : certify.networks.Network
        The imported model (its sizes and scalings fix the loop's routing).
    spec : certify.loop.spec.LoopSpec
        The loop (``--plant`` or ``--loop``).
    solver : str, optional
        Conic solver of the per-epoch LMI.
    floor : float
        Smallest denominator of the normalised residual (:meth:`residuals`).
    """

    def __init__(self, net: Any, spec: Any, *, solver: str | None = None, floor: float = 1e-6) -> None:
        from certify.loop.assemble import assemble, loop_wiring

        self.spec = spec
        self.solver = solver
        self.floor = float(floor)
        from certify.loop.check import diagnose

        self.wiring = loop_wiring(net, spec)
        cl = assemble(net, spec)
        obstruction = diagnose(cl, spec, net)
        if obstruction is not None and obstruction["kind"] in _NOT_THE_NETWORKS:
            from certify.errors import NotApplicableError

            raise NotApplicableError(f"--target loop: no weights of the network can make this loop certifiable: "
                                     f"{obstruction['message']}")
        channels = cl.form.channels
        if any(c.slope[0] != 0.0 for c in channels):
            from certify.errors import UnsupportedModelError

            raise UnsupportedModelError("--target loop: a channel's slope interval does not start at 0.")
        self.slopes = np.array([c.slope[1] for c in channels], dtype=float)
        self.anchor: Anchor | None = None
        self.validated = False
        self.solves = 0

    def lure(self, module: nn.Module) -> LureMatrices:
        """The closed loop's Lur'e matrices ``(A, B_p, C_q, D_qp, slopes)`` (differentiable)."""
        f = loop_snof(module, self.wiring)
        return LureMatrices(f.A, f.B_p, f.C_q, f.D_qp, torch.as_tensor(self.slopes, dtype=f.A.dtype,
                                                                        device=f.A.device))

    def residuals(self, module: nn.Module) -> list[torch.Tensor]:
        """The training residuals (negative: the guide is satisfied).

        With a validated anchor ``(P*, t*)`` found at weights ``θ*``: ``[λ_max(M(θ; P*, t*)) /
        |λ_max(M(θ*; P*, t*))|]`` — the anchor's LMI at the current weights in units of its value at ``θ*``
        (−1 there; the denominator is at least ``floor``), so a clearance ε keeps a fraction ε of the anchor's
        margin.  Before the first validated certificate: the network's own contraction residuals
        (:func:`certify.train.contraction.affine_residuals`, a network that contracts leaves the loop its
        linear part) and the loop's largest spectral radius − 1 over the vertices of the slope box (the
        necessary condition the checker tests first)."""
        from certify.train.contraction import affine_residuals

        lm = self.lure(module)
        if self.anchor is None:
            return [*affine_residuals(module).diss, _vertex_radius(lm) - 1.0]
        M = lmi_matrix(lm, self.anchor)
        return [torch.linalg.eigvalsh(M).max() / max(abs(self.anchor.max_eig_M), self.floor)]

    def select(self, module: nn.Module) -> float:
        """Solve the loop's LMI for the current weights (circle, then Luré–Postnikov).  A validated
        certificate becomes the anchor and the epoch qualifies (returns ``max eig M / ‖P‖ < 0``); otherwise
        the anchor stays and a positive value is returned (the residual of :meth:`residuals`, at least 0)."""
        self.solves += 1
        with torch.no_grad():
            lm = self.lure(module)
            anchor = _solve(lm, self.solver)
            if anchor is not None:
                self.anchor, self.validated = anchor, True
                return anchor.max_eig_M / float(np.linalg.norm(anchor.P, 2))
            self.validated = False
            return max(0.0, max(float(v) for v in self.residuals(module)))

    @property
    def certified(self) -> bool:
        """Whether the last :meth:`select` found a validated certificate (a guide; the checker judges)."""
        return self.validated


def _vertex_radius(lm: LureMatrices, max_exhaustive: int = 10) -> torch.Tensor:
    """Largest spectral radius of ``A + B K_v (I − D K_v)⁻¹ C`` over the vertices ``K_v`` of the slope box
    (all ``2^m`` for ``m ≤ max_exhaustive``, else every channel at 0 or at its bound together)."""
    m = lm.L.shape[0]
    eye = torch.eye(m, dtype=lm.A.dtype, device=lm.A.device)
    if m <= max_exhaustive:
        bits = torch.tensor([[(v >> i) & 1 for i in range(m)] for v in range(2 ** m)], dtype=lm.A.dtype,
                            device=lm.A.device)
    else:
        bits = torch.stack([torch.zeros(m, dtype=lm.A.dtype), torch.ones(m, dtype=lm.A.dtype)]).to(lm.A.device)
    radii = []
    for b in bits:
        K = b * lm.L
        Acl = lm.A + lm.B @ torch.linalg.solve(eye - lm.D * K[None, :], K[:, None] * lm.C)
        radii.append(_radius(Acl))
    return torch.stack(radii).max()


def _radius(A: torch.Tensor, squarings: int = 7) -> torch.Tensor:
    """Gelfand's bound ``‖A^k‖_F^{1/k} ≥ ρ(A)`` with ``k = 2^squarings`` (tight to a factor ``n^{1/2k}``),
    by repeated squaring with rescaling: smooth where eigenvalues repeat (the gradient of an eigenvalue
    decomposition is not), and free of overflow.

    >>> A = torch.tensor([[0.5, 100.0], [0.0, 0.5]], dtype=torch.float64)  # ρ(A) = 0.5, ‖A‖ ≈ 100
    >>> round(float(_radius(A)), 2), round(float(_radius(0.5 * torch.eye(3, dtype=torch.float64))), 4)  # 0.5·3^(1/256)
    (0.54, 0.5022)
    """
    X, log_c = A, A.new_zeros(())
    for _ in range(squarings):
        nrm = torch.linalg.matrix_norm(X).clamp_min(1e-300 if A.dtype == torch.float64 else 1e-30)
        X, log_c = X / nrm, log_c + torch.log(nrm)
        X, log_c = X @ X, 2.0 * log_c
    nrm = torch.linalg.matrix_norm(X).clamp_min(1e-300 if A.dtype == torch.float64 else 1e-30)
    return torch.exp((log_c + torch.log(nrm)) / 2 ** squarings)


def _solve(lm: LureMatrices, solver: str | None) -> Anchor | None:
    """The first validated certificate of the loop (circle, then Luré–Postnikov), or None."""
    from certify.criteria.lmi import balance_lure, solve_lmi
    from certify.criteria.validate import LureSystem
    from certify.errors import SolverError

    f = lambda x: x.detach().cpu().double().numpy()  # noqa: E731
    sys = LureSystem(f(lm.A), f(lm.B), f(lm.C), f(lm.D), f(lm.L), odd=False)
    bal, T, S = balance_lure(sys)
    for crit in ("circle", "lure_postnikov"):
        try:
            att = solve_lmi(bal, crit, solver=solver)
        except SolverError:
            continue
        c = att.certificate
        if c is not None and att.validation is not None and att.validation.ok:
            mult = {k: np.maximum(np.asarray(v, dtype=float).reshape(-1), 0.0) for k, v in c.multipliers.items()}
            return Anchor(crit, 0.5 * (np.asarray(c.P) + np.asarray(c.P).T), mult, T, S, att.validation.max_eig_M)
    return None
