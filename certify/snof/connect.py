"""Static interconnection of SNOF blocks and the Redheffer star product (docs/theory.md §3).

A block is any :class:`~certify.snof.form.SNOF`; an LTI system is a SNOF without channels (for a static
gain, also without states).  ``interconnect`` stacks blocks block-diagonally (inputs ``u_all``, outputs
``y_all``) and closes ``u_all = L y_all + G w + o``; the result has inputs ``w`` and outputs
``z = H y_all + J w``.  With ``N = (I − D_yu L)⁻¹``::

    y = N (C_y x + D_yp p + D_yu (G w + o) + b_y),    u = L y + G w + o

substituted into each block's state and channel equations (theory §3, formula for A_cl … b_z).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import block_diag

from certify.errors import LoopSpecError, WellPosednessError
from certify.snof.form import SNOF, channel_levels


def _shape_check(name: str, M: np.ndarray, rows: int, cols: int) -> np.ndarray:
    M = np.asarray(M, dtype=np.float64)
    if M.ndim == 1 and rows == M.shape[0] and cols == 0:
        M = M.reshape(rows, 0)
    if M.shape != (rows, cols):
        raise LoopSpecError(f"interconnect: {name} has shape {M.shape}, expected ({rows}, {cols}).")
    if not np.all(np.isfinite(M)):
        raise LoopSpecError(f"interconnect: {name} contains non-finite values.")
    return M


def interconnect(
    blocks: list[SNOF] | tuple[SNOF, ...],
    L: np.ndarray,
    G: np.ndarray | None = None,
    o: np.ndarray | None = None,
    H: np.ndarray | None = None,
    J: np.ndarray | None = None,
    *,
    require_well_posed: bool = True,
    cond_limit: float = 1e12,
) -> SNOF:
    """Close a static interconnection of SNOF blocks.

    Parameters
    ----------
    blocks : sequence of SNOF
        States, channels, inputs and outputs are stacked in this order.
    L : (Σ n_w, Σ n_z) array
        Output-to-input routing, ``u_all = L y_all + G w + o``.
    G : (Σ n_w, n_ext) array, optional
        External inputs (default: none).
    o : (Σ n_w,) array, optional
        Constant offsets on the inputs (set-points, scaling offsets).
    H, J : arrays, optional
        Outputs ``z = H y_all + J w`` (default: ``H = I``, all block outputs; ``J = 0``).
    require_well_posed : bool
        Raise :class:`WellPosednessError` when the closed channel loop cannot be proved well-posed.

    Examples
    --------
    A gain-0.5 feedback around an integrator-free first-order system:

    >>> plant = SNOF(A=[[0.9]], B_w=[[1.0]], C_z=[[1.0]])
    >>> gain = SNOF(A=np.zeros((0, 0)), D_zw=[[-0.5]])
    >>> cl = interconnect([plant, gain], L=[[0.0, 1.0], [1.0, 0.0]], H=[[1.0, 0.0]])
    >>> float(cl.A[0, 0])
    0.4
    """
    blocks = tuple(blocks)
    if not blocks:
        raise LoopSpecError("interconnect: at least one block is required.")
    nu = sum(b.n_w for b in blocks)
    ny = sum(b.n_z for b in blocks)
    L = _shape_check("L", L, nu, ny)
    G = np.zeros((nu, 0)) if G is None else np.asarray(G, dtype=np.float64)
    n_ext = G.shape[1] if G.ndim == 2 else 0
    G = _shape_check("G", G, nu, n_ext)
    o = np.zeros(nu) if o is None else _shape_check("o", np.reshape(o, (nu, 1)), nu, 1).reshape(nu)
    H = np.eye(ny) if H is None else np.asarray(H, dtype=np.float64)
    nz = H.shape[0] if H.ndim == 2 else 0
    H = _shape_check("H", H, nz, ny)
    J = np.zeros((nz, n_ext)) if J is None else _shape_check("J", J, nz, n_ext)

    bd = lambda name: block_diag(*[getattr(b, name) for b in blocks])  # noqa: E731
    A, B_p, B_u = bd("A"), bd("B_p"), bd("B_w")
    C_q, D_qp, D_qu = bd("C_q"), bd("D_qp"), bd("D_qw")
    C_y, D_yp, D_yu = bd("C_z"), bd("D_zp"), bd("D_zw")
    n, m = A.shape[0], D_qp.shape[0]
    # block_diag drops empty blocks' column counts; rebuild shapes explicitly
    A, B_p, B_u = A.reshape(n, n), B_p.reshape(n, m), B_u.reshape(n, nu)
    C_q, D_qp, D_qu = C_q.reshape(m, n), D_qp.reshape(m, m), D_qu.reshape(m, nu)
    C_y, D_yp, D_yu = C_y.reshape(ny, n), D_yp.reshape(ny, m), D_yu.reshape(ny, nu)
    b_x = np.concatenate([b.b_x for b in blocks])
    b_q = np.concatenate([b.b_q for b in blocks])
    b_y = np.concatenate([b.b_z for b in blocks])

    Nmat = np.eye(ny) - D_yu @ L
    if ny and np.linalg.cond(Nmat) > cond_limit:
        raise WellPosednessError(
            "interconnect: the linear algebraic loop through the direct feed-through terms is singular "
            f"(cond(I − D_yu L) = {np.linalg.cond(Nmat):.2e}); the interconnection is not well-posed."
        )
    Yx, Yp, Yw, y0 = _loop_solve(D_yu @ L, [C_y, D_yp, D_yu @ G, (D_yu @ o + b_y)[:, None]])
    y0 = y0[:, 0]
    Ux, Up, Uw, u0 = L @ Yx, L @ Yp, L @ Yw + G, L @ y0 + o

    channels = tuple(c for b in blocks for c in b.channels)
    form = SNOF(
        A=A + B_u @ Ux, B_p=B_p + B_u @ Up, B_w=B_u @ Uw,
        C_q=C_q + D_qu @ Ux, D_qp=D_qp + D_qu @ Up, D_qw=D_qu @ Uw,
        C_z=H @ Yx, D_zp=H @ Yp, D_zw=H @ Yw + J,
        b_x=b_x + B_u @ u0, b_q=b_q + D_qu @ u0, b_z=H @ y0, channels=channels,
    )
    if require_well_posed and form.m:
        wp = form.well_posedness()
        if not wp.ok:
            raise WellPosednessError(f"interconnect: the closed channel loop is not provably well-posed: {wp.detail}")
    return form


def _loop_solve(X: np.ndarray, rhs: list[np.ndarray]) -> list[np.ndarray]:
    """``(I − X)⁻¹ R`` for each R; exact Neumann series when X is structurally nilpotent, so that
    structural zeros (and hence the nilpotency of the closed D_qp) survive without round-off fill-in."""
    if channel_levels(X) is not None:
        out = []
        for R in rhs:
            acc, term = R.copy(), R
            for _ in range(X.shape[0]):
                term = X @ term
                if not np.any(term):
                    break
                acc = acc + term
            out.append(acc)
        return out
    return [np.linalg.solve(np.eye(X.shape[0]) - X, R) for R in rhs]


def star_product(P: SNOF, Q: SNOF, n_u: int, n_y: int, *, require_well_posed: bool = True) -> SNOF:
    """Redheffer star product ``P ⋆ Q`` (MATLAB ``lft(P, Q, nu, ny)`` convention, theory §3).

    The last ``n_u`` inputs of ``P`` are driven by the first ``n_u`` outputs of ``Q``; the first
    ``n_y`` inputs of ``Q`` are driven by the last ``n_y`` outputs of ``P``.  The result has inputs
    ``[w_P (first); w_Q (remaining)]`` and outputs ``[z_P (first); z_Q (remaining)]``, states and
    channels ``[P; Q]``.

    >>> P = SNOF(A=np.zeros((0, 0)), D_zw=[[1.0, 2.0], [3.0, 4.0]])
    >>> Q = SNOF(A=np.zeros((0, 0)), D_zw=[[0.5]])
    >>> float(star_product(P, Q, 1, 1).D_zw[0, 0])   # 1 + 2·0.5·(1 − 4·0.5)⁻¹·3
    -2.0
    """
    if not (0 <= n_u <= min(P.n_w, Q.n_z) and 0 <= n_y <= min(P.n_z, Q.n_w)):
        raise LoopSpecError(
            f"star_product: n_u={n_u}, n_y={n_y} do not fit P ({P.n_w} inputs, {P.n_z} outputs) and "
            f"Q ({Q.n_w} inputs, {Q.n_z} outputs)."
        )
    w1, z1 = P.n_w - n_u, P.n_z - n_y
    w2, z2 = Q.n_w - n_y, Q.n_z - n_u
    nu, ny = P.n_w + Q.n_w, P.n_z + Q.n_z
    L = np.zeros((nu, ny))
    L[w1:P.n_w, P.n_z:P.n_z + n_u] = np.eye(n_u)          # P's last inputs ← Q's first outputs
    L[P.n_w:P.n_w + n_y, z1:P.n_z] = np.eye(n_y)          # Q's first inputs ← P's last outputs
    G = np.zeros((nu, w1 + w2))
    G[:w1, :w1] = np.eye(w1)
    G[P.n_w + n_y:, w1:] = np.eye(w2)
    H = np.zeros((z1 + z2, ny))
    H[:z1, :z1] = np.eye(z1)
    H[z1:, P.n_z + n_u:] = np.eye(z2)
    return interconnect([P, Q], L, G, H=H, require_well_posed=require_well_posed)


def redheffer(Pm: np.ndarray, Qm: np.ndarray, n_u: int, n_y: int) -> np.ndarray:
    """Star product of two constant matrices with the formulas of theory §3 (S11 … S22).

    ``Pm`` maps ``[w1; u] → [z1; y]`` (``u`` has ``n_u`` rows, ``y`` has ``n_y``); ``Qm`` maps
    ``[y; w2] → [u; z2]``.

    >>> float(redheffer(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[0.5]]), 1, 1)[0, 0])
    -2.0
    """
    Pm, Qm = np.asarray(Pm, float), np.asarray(Qm, float)
    z1, w1 = Pm.shape[0] - n_y, Pm.shape[1] - n_u
    P11, P12, P21, P22 = Pm[:z1, :w1], Pm[:z1, w1:], Pm[z1:, :w1], Pm[z1:, w1:]
    Q11, Q12, Q21, Q22 = Qm[:n_u, :n_y], Qm[:n_u, n_y:], Qm[n_u:, :n_y], Qm[n_u:, n_y:]
    I1, I2 = np.eye(n_y), np.eye(n_u)
    X = np.linalg.solve(I1 - P22 @ Q11, P21)        # (I − P22 Q11)⁻¹ P21
    Y = np.linalg.solve(I2 - Q11 @ P22, Q12)        # (I − Q11 P22)⁻¹ Q12
    return np.block([[P11 + P12 @ Q11 @ X, P12 @ Y], [Q21 @ X, Q22 + Q21 @ P22 @ Y]])
