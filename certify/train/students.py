"""Students for ``certify retrain --into``: loop-certifiable architectures to distil a GRU/LSTM into.

* ``lpgrnn`` — an LP-GRNN layer (Hilgert & Schwung 2025, eqs. 12–13) with a parallel **linear bypass**
  ``x_l⁺ = A_l x_l + B_l u + c``, ``y = C_h h⁺ + b + C_l x_l + D u``, written as one
  :class:`~certify.networks.AffineCell` (state ``[h; x_l]``, channels ``[r; h̃]`` with sigmoid then tanh) and
  trained as an :class:`~certify.train.cells.AffineCellNet`, whose exact zeros stay zero (the diagonal
  ``A = diag(z)``, the block structure, the explicit ``D_qp``).  The bypass gives the closed loop the linear
  path from measurement to estimate that a global sector/slope LMI needs.
* ``grssnn`` — a gR-SS-NN (Schoukens 2021, eqs. 4–5: :class:`~certify.train.modules.SSNN` with
  ``linear=True``).

Both linear parts start from the least-squares ARX fit of the data realised in state-space form
(:func:`certify.train.linear_init.fit_arx_ss`), the nonlinear output weights small, so the student starts
near the best linear model and the distillation adds the nonlinear part.
"""

from __future__ import annotations

import numpy as np

from certify.networks import AffineCell
from certify.train.linear_init import fit_arx_ss

__all__ = ["STUDENTS", "build_student", "lpgrnn_bypass_cell"]

#: The architectures ``--into`` accepts.
STUDENTS = ("lpgrnn", "grssnn")


def lpgrnn_bypass_cell(u: np.ndarray, y: np.ndarray, hidden: int, *, gate: int | None = None,
                       linear_order: int = 2, seed: int = 0) -> AffineCell:
    """An LP-GRNN layer with ``hidden`` states and ``gate`` reset channels plus an ARX-initialised bypass.

    Parameters
    ----------
    u, y : ndarray
        Training data (T, m), (T, p) in network units (for the least-squares bypass).
    hidden : int
        LP-GRNN states.
    gate : int, optional
        Reset-gate channels (default ``hidden``).
    linear_order : int
        ARX order of the bypass (``linear_order · p`` states).
    seed : int
        Seed of the random LP-GRNN weights.

    Examples
    --------
    >>> rng = np.random.default_rng(0); u = rng.uniform(-1, 1, (200, 2)); y = np.cumsum(u, 0)[:, :1] * 0.01
    >>> cell = lpgrnn_bypass_cell(u, y, 3)
    >>> cell.n_state, cell.n_in, cell.n_out, cell.activations
    (5, 2, 1, ('sigmoid', 'sigmoid', 'sigmoid', 'tanh', 'tanh', 'tanh'))
    """
    u, y = np.asarray(u, float), np.asarray(y, float)
    m, p = u.shape[1], y.shape[1]
    n, g = int(hidden), int(gate if gate is not None else hidden)
    if n < 1 or g < 1:
        raise ValueError(f"hidden and gate must be at least 1, got {n}, {g}.")
    lin = _modal(fit_arx_ss(u, y, max(1, linear_order) * p))
    nl = lin.A.shape[0]
    rng = np.random.default_rng(seed)
    k = 1.0 / np.sqrt(n)
    r = lambda *s: rng.uniform(-k, k, s)  # noqa: E731
    W_r, U_r, b_r = r(g, m), r(g, n), r(g)
    W_h, U_h, V_h, b_h = r(n, m), r(n, n), r(n, g), r(n)
    z = np.full(n, 0.5)
    head = 0.1 * r(p, n)
    nx, nq = n + nl, g + n
    A = np.zeros((nx, nx))
    A[:n, :n] = np.diag(z)
    A[n:, n:] = lin.A
    B_p = np.zeros((nx, nq))
    B_p[:n, g:] = np.diag(1.0 - z)
    B_u = np.zeros((nx, m))
    B_u[n:] = lin.B
    b_x = np.concatenate([np.zeros(n), lin.c])
    C_q = np.zeros((nq, nx))
    C_q[:g, :n] = U_r
    C_q[g:, :n] = U_h
    D_qp = np.zeros((nq, nq))
    D_qp[g:, :g] = V_h
    D_qu = np.vstack([W_r, W_h])
    b_q = np.concatenate([b_r, b_h])
    C_y = np.zeros((p, nx))
    C_y[:, :n] = head * z[None, :]  # the head reads h⁺ = z h + (1 − z) h̃
    C_y[:, n:] = lin.C
    D_yp = np.zeros((p, nq))
    D_yp[:, g:] = head * (1.0 - z)[None, :]
    D_yu = np.full((p, m), 1e-6)  # non-zero: trainable (a direct path), starts negligible
    return AffineCell(A=A, B_p=B_p, B_u=B_u, b_x=b_x, C_q=C_q, D_qp=D_qp, D_qu=D_qu, b_q=b_q, C_y=C_y, D_yp=D_yp,
                      D_yu=D_yu, b_y=np.zeros(p), activations=("sigmoid",) * g + ("tanh",) * n)


def _modal(lin):
    """The same linear model in real modal form (block-diagonal ``A``: its contraction rate is close to its
    spectral radius, where the companion form's ∞-norm exceeds 1); unchanged if ``A`` is nearly defective.

    >>> from certify.train.linear_init import LinearSS
    >>> ss = _modal(LinearSS(A=np.array([[1.5, -0.56], [1.0, 0.0]]), B=np.eye(2)[:, :1], C=np.eye(2)[:1],
    ...                      D=np.zeros((1, 1)), c=np.zeros(2)))
    >>> np.round(np.sort(np.diag(ss.A)), 6).tolist(), bool(np.abs(ss.A).sum(1).max() < 1)
    ([0.7, 0.8], True)
    """
    from scipy.linalg import cdf2rdf

    from certify.train.linear_init import LinearSS

    w, v = np.linalg.eig(lin.A)
    if np.linalg.cond(v) > 1e8:
        return lin
    wr, vr = cdf2rdf(w, v)
    Vi = np.linalg.inv(vr)
    return LinearSS(A=wr, B=Vi @ lin.B, C=lin.C @ vr, D=lin.D, c=Vi @ lin.c)


def _to_modal_ssnn(net) -> None:
    """Change the state coordinates of a gR-SS-NN to the modal ones of its ``A`` (``x = V x̃``), in place."""
    import torch
    from scipy.linalg import cdf2rdf

    A = net.A.detach().double().numpy()
    w, v = np.linalg.eig(A)
    if np.linalg.cond(v) > 1e8:
        return
    _, V = cdf2rdf(w, v)
    Vi = np.linalg.inv(V)
    new = {"A": Vi @ A @ V, "B": Vi @ net.B.detach().double().numpy(), "C": net.C.detach().double().numpy() @ V,
           "W_fx": net.W_fx.detach().double().numpy() @ V, "W_gx": net.W_gx.detach().double().numpy() @ V,
           "W_x": Vi @ net.W_x.detach().double().numpy(), "b_x": Vi @ net.b_x.detach().double().numpy()}
    with torch.no_grad():
        for name, value in new.items():
            getattr(net, name).copy_(torch.as_tensor(value, dtype=net.A.dtype))


def build_student(kind: str, u: np.ndarray, y: np.ndarray, hidden: int, *, seed: int = 0):
    """The torch student of ``kind`` (``lpgrnn`` or ``grssnn``), initialised from the data.

    >>> rng = np.random.default_rng(0); u = rng.uniform(-1, 1, (200, 2)); y = np.cumsum(u, 0)[:, :1] * 0.01
    >>> type(build_student("grssnn", u, y, 4)).__name__, type(build_student("lpgrnn", u, y, 4)).__name__
    ('SSNN', 'AffineCellNet')
    """
    import torch

    if kind == "lpgrnn":
        from certify.train.cells import AffineCellNet

        return AffineCellNet(lpgrnn_bypass_cell(u, y, hidden, seed=seed))
    if kind == "grssnn":
        from certify.train.linear_init import init_gr_ssnn
        from certify.train.modules import SSNN

        torch.manual_seed(seed)
        p = np.asarray(y).shape[1]
        net = SSNN(np.asarray(u).shape[1], 2 * p, p, hidden, hidden)
        init_gr_ssnn(net, u, y)
        _to_modal_ssnn(net)
        from certify.train.contraction import affine_residuals

        for _ in range(20):  # shrink the nonlinear state feedback until the linear part's contraction shows
            with torch.no_grad():
                nu = float(affine_residuals(net).diss[0])
            if nu < -0.1:
                break
            with torch.no_grad():
                net.W_x.mul_(0.5)
        return net
    raise ValueError(f"--into must be one of {', '.join(STUDENTS)}, got {kind!r}.")
