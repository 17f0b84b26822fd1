"""Loop transformations with apply/invert pairs (CVXPY-reduction style), docs/theory.md §4.

Each ``apply`` function returns ``(new_form, inverse)``; ``inverse.invert(cert)`` maps an LMI
certificate found for ``new_form`` back to the original coordinates (or returns ``None`` when the
two LMIs live in different coordinates), where it can be re-validated.

* :func:`sigmoid_to_tanh` — σ(v) = ½ + ½ tanh(v/2) (theory §4.1);
* :func:`normalize_slopes` — slope [α, β] → [0, β − α] (theory §4.2);
* :func:`equilibrium` / :func:`shift_to_equilibrium` — constant inputs and biases (theory §4.3).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from certify.sdp.types import LMICertificate
from certify.snof.channels import Channel, evaluate_channels
from certify.snof.form import SNOF


@dataclass(frozen=True, eq=False)
class ChannelScaling:
    """Inverse data of a diagonal channel rescaling ``q_t = a q``, ``δp_t = b δp`` (a, b > 0).

    Certificates map as ``Λ_o = a b Λ_t`` and ``T_o = b² T_t`` (every sector/slope/odd term), with
    ``P`` unchanged; then ``M_o = S' M_t S`` with ``S = blkdiag(I, diag b, diag b)``, so definiteness
    is preserved exactly.
    """

    a: np.ndarray
    b: np.ndarray

    def invert(self, cert: LMICertificate) -> LMICertificate:
        """Certificate in the original channel coordinates.

        >>> inv = ChannelScaling(np.array([0.5]), np.array([2.0]))
        >>> c = inv.invert(LMICertificate("popov", np.eye(1), {"Lambda": [1.0], "T1": [1.0], "T2": [0.0]}))
        >>> c.multipliers["Lambda"].tolist(), c.multipliers["T1"].tolist()
        ([1.0], [4.0])
        """
        mult = {}
        for k, v in cert.multipliers.items():
            mult[k] = (self.a * self.b if k == "Lambda" else self.b**2) * np.asarray(v, dtype=np.float64)
        return LMICertificate(cert.criterion, cert.P, mult)


def _is_raw_sigmoid(c: Channel) -> bool:
    return c.kind == "sigmoid" and (c.in_gain, c.q_offset, c.p_offset, c.out_gain, c.lin) == (1, 0, 0, 1, 0)


def sigmoid_to_tanh(form: SNOF) -> tuple[SNOF, ChannelScaling]:
    """Rewrite raw sigmoid channels as tanh channels (theory §4.1): ``q_t = q/2``, ``p = ½ + ½ p_t``.

    With ``R = diag(½ on sigmoid rows)``, ``S = diag(½ on sigmoid columns)``, ``c = ½ on sigmoid``:
    ``C̃_q = R C_q, D̃_qp = R D_qp S, D̃_qw = R D_qw, b̃_q = R(b_q + D_qp c)``,
    ``B̃_p = B_p S, b̃_x = b_x + B_p c, D̃_zp = D_zp S, b̃_z = b_z + D_zp c``.

    >>> f = SNOF(A=[[0.5]], B_p=[[1.0]], C_q=[[1.0]], channels=(Channel("sigmoid"),))
    >>> g, inv = sigmoid_to_tanh(f)
    >>> g.channels[0].kind, float(g.b_x[0]), float(g.C_q[0, 0])
    ('tanh', 0.5, 0.5)
    """
    sig = np.array([_is_raw_sigmoid(c) for c in form.channels], dtype=bool)
    r = np.where(sig, 0.5, 1.0)
    c = np.where(sig, 0.5, 0.0)
    new = replace(
        form,
        C_q=r[:, None] * form.C_q, D_qp=r[:, None] * form.D_qp * r[None, :], D_qw=r[:, None] * form.D_qw,
        b_q=r * (form.b_q + form.D_qp @ c), B_p=form.B_p * r[None, :], b_x=form.b_x + form.B_p @ c,
        D_zp=form.D_zp * r[None, :], b_z=form.b_z + form.D_zp @ c,
        channels=tuple(Channel("tanh") if s else ch for s, ch in zip(sig, form.channels)),
    )
    return new, ChannelScaling(a=r, b=1.0 / r)


@dataclass(frozen=True, eq=False)
class SlopeNormalization:
    """Inverse data of :func:`normalize_slopes`; ``alpha`` are the removed lower slopes."""

    alpha: np.ndarray

    def invert(self, cert: LMICertificate) -> LMICertificate | None:
        """Identity when nothing was removed; otherwise ``None`` (the transformed LMI is in other
        coordinates; it is validated there, on exactly equivalent dynamics)."""
        return cert if not np.any(self.alpha) else None


def normalize_slopes(form: SNOF) -> tuple[SNOF, SlopeNormalization]:
    """Move every channel's lower slope α into the linear part: ``p̃ = φ(q) − α q`` (theory §4.2).

    With ``M = (I − D diag α)⁻¹``: ``Ã = A + B α M C``, ``B̃ = B (I + α M D)``, ``C̃ = M C``,
    ``D̃ = M D`` and likewise for the input/output/bias terms.  Raises ``WellPosednessError`` when
    ``I − D diag α`` is singular.

    >>> f = SNOF(A=[[0.5]], B_p=[[1.0]], C_q=[[1.0]], channels=(Channel("tanh", lin=-0.2),))
    >>> g, inv = normalize_slopes(f)
    >>> round(float(g.A[0, 0]), 12), g.channels[0].slope
    (0.7, (0.0, 1.0))
    """
    from certify.errors import WellPosednessError
    from certify.snof.connect import _loop_solve

    alpha = np.array([ch.slope[0] for ch in form.channels])
    if not np.any(alpha):
        return form, SlopeNormalization(alpha)
    I = np.eye(form.m)
    Mi = I - form.D_qp * alpha[None, :]
    if np.linalg.cond(Mi) > 1e12:
        raise WellPosednessError("normalize_slopes: I − D_qp diag(α) is singular; the loop is ill-posed.")
    M = _loop_solve(form.D_qp * alpha[None, :], [I])[0]   # exact zeros kept when D_qp is nilpotent
    aM = alpha[:, None] * M
    Bp, Dzp = form.B_p, form.D_zp
    new = replace(
        form,
        A=form.A + Bp @ aM @ form.C_q, B_p=Bp @ (I + aM @ form.D_qp), B_w=form.B_w + Bp @ aM @ form.D_qw,
        b_x=form.b_x + Bp @ aM @ form.b_q,
        C_q=M @ form.C_q, D_qp=M @ form.D_qp, D_qw=M @ form.D_qw, b_q=M @ form.b_q,
        C_z=form.C_z + Dzp @ aM @ form.C_q, D_zp=Dzp @ (I + aM @ form.D_qp),
        D_zw=form.D_zw + Dzp @ aM @ form.D_qw, b_z=form.b_z + Dzp @ aM @ form.b_q,
        channels=tuple(replace(ch, lin=ch.lin + a) for ch, a in zip(form.channels, alpha)),
    )
    return new, SlopeNormalization(alpha)


@dataclass(frozen=True, eq=False)
class Equilibrium:
    """Equilibrium ``x* = A x* + B p* + B_w w + b_x`` with its channel values and output."""

    x: np.ndarray
    q: np.ndarray
    p: np.ndarray
    w: np.ndarray
    z: np.ndarray
    residual: float
    found: bool

    def invert(self, cert: LMICertificate) -> LMICertificate:
        """The shift does not change the matrices (theory §4.3): the certificate is the same."""
        return cert

    def to_dict(self) -> dict[str, object]:
        return {"x": self.x.tolist(), "q": self.q.tolist(), "w": self.w.tolist(), "z": self.z.tolist(),
                "residual": self.residual, "found": self.found}


def equilibrium(form: SNOF, w: np.ndarray | None = None, *, tol: float = 1e-10,
                max_fixed_point: int = 500) -> Equilibrium:
    """Solve for an equilibrium under the constant input ``w`` (default 0): fixed-point iteration
    (i.e. simulation), then ``scipy.optimize.root`` from the last iterate; ``found`` when the
    residual ``‖x* − f(x*)‖∞ ≤ tol·max(1, ‖x*‖∞)``.

    >>> f = SNOF(A=[[0.5]], B_p=[[-1.0]], C_q=[[1.0]], b_q=[0.3], channels=(Channel("tanh"),))
    >>> eq = equilibrium(f)
    >>> eq.found, abs(float(eq.x[0] - 0.5 * eq.x[0] + np.tanh(eq.x[0] + 0.3))) < 1e-12
    (True, True)
    """
    from scipy.optimize import root

    w = np.zeros(form.n_w) if w is None else np.asarray(w, dtype=np.float64).reshape(form.n_w)
    F = lambda x: form.step(x, w)[0] - x  # noqa: E731
    x = np.zeros(form.n)
    res = lambda x: float(np.max(np.abs(F(x)), initial=0.0))  # noqa: E731
    ok = lambda x, t=tol: res(x) <= t * max(1.0, float(np.max(np.abs(x), initial=0.0)))  # noqa: E731
    for _ in range(max_fixed_point):
        if ok(x, 1e-15):
            break
        x_new = x + F(x)
        if not np.all(np.isfinite(x_new)) or np.max(np.abs(x_new), initial=0.0) > 1e12:
            break
        x = x_new
    if not ok(x, 1e-15) and form.n:
        try:
            sol = root(F, x if np.all(np.isfinite(x)) else np.zeros(form.n), tol=1e-14)
            if np.all(np.isfinite(sol.x)) and res(sol.x) < res(x):
                x = sol.x
        except (ValueError, FloatingPointError):
            pass
    q, p = form.solve_channels(x, w)
    z = x @ form.C_z.T + p @ form.D_zp.T + w @ form.D_zw.T + form.b_z
    return Equilibrium(x=x, q=q, p=p, w=w, z=z, residual=res(x), found=bool(ok(x)))


def shift_to_equilibrium(form: SNOF, eq: Equilibrium) -> tuple[SNOF, Equilibrium]:
    """The SNOF in ``δx = x − x*, δw = w − w*``: same matrices, zero biases, channels
    ``ψ(δq) = φ(q* + δq) − φ(q*)`` (non-odd when q* ≠ 0); outputs are ``δz = z − z*``.

    >>> f = SNOF(A=[[0.5]], B_p=[[-1.0]], C_q=[[1.0]], b_q=[0.3], channels=(Channel("tanh"),))
    >>> g, eq = shift_to_equilibrium(f, equilibrium(f))
    >>> g.channels[0].odd, float(g.b_q[0])
    (False, 0.0)
    """
    chans = tuple(ch.shifted(float(qs)) if qs != 0.0 else ch for ch, qs in zip(form.channels, eq.q))
    new = replace(form, b_x=np.zeros(form.n), b_q=np.zeros(form.m), b_z=np.zeros(form.n_z), channels=chans)
    return new, eq


def channel_values(form: SNOF, q: np.ndarray) -> np.ndarray:
    """φ(q) for all channels of ``form`` (last axis)."""
    return evaluate_channels(form.channels, q)
