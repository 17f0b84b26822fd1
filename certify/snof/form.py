"""The discrete-time standard nonlinear operator form (SNOF), Hilgert & Schwung 2025, eq. (2);
docs/theory.md §1::

    x(k+1) = A   x + B_p  p + B_w  w + b_x
    q(k)   = C_q x + D_qp p + D_qw w + b_q
    z(k)   = C_z x + D_zp p + D_zw w + b_z          p = φ(q) channel by channel

with well-posedness of the implicit loop ``q = C_q x + D_qp φ(q) + …`` (theory §2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from certify.errors import WeightError, WellPosednessError
from certify.networks.base import Simulation
from certify.snof.channels import Channel, evaluate_channels

_MATS = ("A", "B_p", "B_w", "C_q", "D_qp", "D_qw", "C_z", "D_zp", "D_zw")
_VECS = ("b_x", "b_q", "b_z")


def _mat(name: str, value: Any, rows: int, cols: int, rdim: str, cdim: str) -> np.ndarray:
    if value is None:
        arr = np.zeros((rows, cols))
    else:
        try:
            arr = np.array(value, dtype=np.float64, copy=True)
        except (TypeError, ValueError) as exc:
            raise WeightError(f"SNOF: {name} is not a numeric array ({exc}).") from None
        if arr.shape != (rows, cols):
            raise WeightError(
                f"SNOF: {name} has shape {arr.shape}, expected ({rows}, {cols}) = ({rdim}, {cdim})."
            )
    if not np.all(np.isfinite(arr)):
        raise WeightError(f"SNOF: {name} contains non-finite values.")
    arr.setflags(write=False)
    return arr


def channel_levels(D: np.ndarray) -> list[np.ndarray] | None:
    """Evaluation levels of the channel graph (``q_i`` depends on ``p_j`` when ``D[i, j] ≠ 0``).

    Returns the channel indices level by level (forward substitution order), or ``None`` when the
    dependency graph has a cycle (``D`` not structurally nilpotent).

    >>> [lv.tolist() for lv in channel_levels(np.array([[0.0, 0.0], [1.0, 0.0]]))]
    [[0], [1]]
    >>> channel_levels(np.array([[0.5]])) is None
    True
    """
    m = D.shape[0]
    dep = D != 0.0
    level = np.full(m, -1)
    done = np.zeros(m, dtype=bool)
    k = 0
    while not done.all():
        ready = ~done & ~(dep & ~done[None, :]).any(axis=1)
        if not ready.any():
            return None
        level[ready] = k
        done |= ready
        k += 1
    return [np.flatnonzero(level == j) for j in range(k)]


@dataclass(frozen=True)
class WellPosedness:
    """Outcome of the well-posedness analysis of ``q = C x + D φ(q) + c``.

    ``method``: ``"nilpotent"`` (structurally acyclic, solved by forward substitution),
    ``"diagonal_lmi"`` (Richardson & Turner Lemma 2, 2V − V D̃ − D̃'V ≻ 0 with validated V), or
    ``"unproved"``.  Returned by :meth:`SNOF.well_posedness`.

    >>> from certify.snof.channels import Channel
    >>> f = SNOF(A=[[0.5]], B_p=[[-1.0]], C_q=[[1.0]], channels=(Channel("tanh"),))
    >>> wp = f.well_posedness()
    >>> wp.ok, wp.method
    (True, 'nilpotent')
    """

    ok: bool
    method: str
    detail: str
    min_eig: float | None = None


@dataclass(frozen=True, eq=False)
class SNOF:
    """A SNOF; omitted matrices are zero (``n_w``/``n_z`` are inferred from the given ones).

    >>> from certify.snof.channels import Channel
    >>> f = SNOF(A=[[0.5]], B_p=[[-1.0]], C_q=[[1.0]], channels=(Channel("tanh"),))
    >>> f.n, f.m, f.n_w, f.n_z
    (1, 1, 0, 0)
    >>> bool(f.step(np.array([1.0]), np.zeros(0))[0][0] == 0.5 - np.tanh(1.0))
    True
    """

    # the omitted (None) matrices are zeros after __post_init__ (mypy cannot express that)
    A: np.ndarray
    B_p: np.ndarray = None  # type: ignore[assignment]
    B_w: np.ndarray = None  # type: ignore[assignment]
    C_q: np.ndarray = None  # type: ignore[assignment]
    D_qp: np.ndarray = None  # type: ignore[assignment]
    D_qw: np.ndarray = None  # type: ignore[assignment]
    C_z: np.ndarray = None  # type: ignore[assignment]
    D_zp: np.ndarray = None  # type: ignore[assignment]
    D_zw: np.ndarray = None  # type: ignore[assignment]
    b_x: np.ndarray = None  # type: ignore[assignment]
    b_q: np.ndarray = None  # type: ignore[assignment]
    b_z: np.ndarray = None  # type: ignore[assignment]
    channels: tuple[Channel, ...] = ()
    names: tuple[str, ...] = field(default=(), compare=False)
    _levels: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        A = np.asarray(self.A, dtype=np.float64) if self.A is not None else None
        if A is None or A.ndim != 2 or A.shape[0] != A.shape[1]:
            raise WeightError(f"SNOF: A must be square, got shape {None if A is None else A.shape}.")
        chans = tuple(self.channels)
        for c in chans:
            if not isinstance(c, Channel):
                raise WeightError(f"SNOF: channels must be Channel objects, got {type(c).__name__}.")
        n, m = A.shape[0], len(chans)

        def width(*names_cols: tuple[str, int]) -> int:
            for nm, ax in names_cols:
                v = getattr(self, nm)
                if v is not None:
                    a = np.asarray(v)
                    return int(a.shape[ax]) if a.ndim == 2 else -1
            return 0

        nw = max(width(("B_w", 1), ("D_qw", 1), ("D_zw", 1)), 0)
        nz = max(width(("C_z", 0), ("D_zp", 0), ("D_zw", 0)), 0)
        if self.b_z is not None and nz == 0:
            nz = int(np.asarray(self.b_z).shape[0])
        dims = {
            "A": (n, n, "n", "n"), "B_p": (n, m, "n", "m"), "B_w": (n, nw, "n", "n_w"),
            "C_q": (m, n, "m", "n"), "D_qp": (m, m, "m", "m"), "D_qw": (m, nw, "m", "n_w"),
            "C_z": (nz, n, "n_z", "n"), "D_zp": (nz, m, "n_z", "m"), "D_zw": (nz, nw, "n_z", "n_w"),
        }
        for nm in _MATS:
            r, c, rd, cd = dims[nm]
            object.__setattr__(self, nm, _mat(nm, getattr(self, nm), r, c, rd, cd))
        for nm, r, rd in (("b_x", n, "n"), ("b_q", m, "m"), ("b_z", nz, "n_z")):
            v = getattr(self, nm)
            if v is not None and np.ndim(v) != 1:
                raise WeightError(f"SNOF: {nm} must be a vector of length {rd} = {r}, got shape {np.shape(v)}.")
            v = None if v is None else np.asarray(v, dtype=np.float64).reshape(-1, 1)
            if v is not None and v.shape[0] != r:
                raise WeightError(f"SNOF: {nm} has length {v.shape[0]}, expected {rd} = {r}.")
            object.__setattr__(self, nm, _mat(nm, v, r, 1, rd, "1").reshape(r))
        object.__setattr__(self, "channels", chans)
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "_levels", channel_levels(self.D_qp))

    # --- sizes ---------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return self.A.shape[0]

    @property
    def m(self) -> int:
        return len(self.channels)

    @property
    def n_w(self) -> int:
        return self.B_w.shape[1]

    @property
    def n_z(self) -> int:
        return self.C_z.shape[0]

    @property
    def K(self) -> np.ndarray:
        """Per-channel slope width (``slope hi − slope lo``)."""
        return np.array([c.K for c in self.channels])

    def matrix(self) -> np.ndarray:
        """The constant LFT 𝐌 = [[A, B_p, B_w], [C_q, D_qp, D_qw], [C_z, D_zp, D_zw]] (theory §1)."""
        return np.block([[self.A, self.B_p, self.B_w], [self.C_q, self.D_qp, self.D_qw],
                         [self.C_z, self.D_zp, self.D_zw]])

    def summary(self) -> dict[str, Any]:
        kinds: dict[str, int] = {}
        for c in self.channels:
            kinds[c.kind] = kinds.get(c.kind, 0) + 1
        return {"n": self.n, "m": self.m, "n_w": self.n_w, "n_z": self.n_z, "channels": kinds,
                "D_qp_nilpotent": channel_levels(self.D_qp) is not None}

    # --- well-posedness ------------------------------------------------------------------------
    def well_posedness(self, *, solver: str | None = None, timeout: float | None = None,
                       options: Any = None) -> WellPosedness:
        """Decide whether ``q = C x + D_qp φ(q) + c`` has a unique solution for every x, w (theory §2).

        A structurally nilpotent ``D_qp`` needs no SDP; otherwise the diagonal LMI of Richardson & Turner
        (2024, Lemma 2) is solved through :func:`certify.sdp.solvers.run` with ``solver`` (default by
        size), ``timeout`` and ``options``, and its answer is re-checked in float64.

        >>> from certify.snof.channels import Channel
        >>> SNOF(A=[[0.0]], channels=(Channel("tanh"),)).well_posedness().method
        'nilpotent'
        """
        if self._levels is not None:
            return WellPosedness(True, "nilpotent", "D_qp is structurally nilpotent (forward substitution).")
        return _diagonal_lmi_well_posedness(self, solver=solver, timeout=timeout, options=options)

    # --- semantics -----------------------------------------------------------------------------
    def solve_channels(self, x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pre-activations q and activations p at state x and input w (batches broadcast)."""
        x = np.asarray(x, dtype=np.float64)
        w = np.asarray(w, dtype=np.float64)
        base = x @ self.C_q.T + w @ self.D_qw.T + self.b_q
        levels = self._levels
        if levels is not None:
            q = np.array(base, copy=True)
            p = np.zeros_like(q)
            for lv in levels:
                q[..., lv] = base[..., lv] + p @ self.D_qp[lv].T
                p[..., lv] = evaluate_channels(self.channels, q[..., lv], lv)
            return q, p
        return _solve_implicit(self, base)

    def step(self, x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(x(k+1), z(k))`` from ``x(k)`` and ``w(k)``."""
        x = np.asarray(x, dtype=np.float64)
        w = np.asarray(w, dtype=np.float64)
        _, p = self.solve_channels(x, w)
        x_next = x @ self.A.T + p @ self.B_p.T + w @ self.B_w.T + self.b_x
        z = x @ self.C_z.T + p @ self.D_zp.T + w @ self.D_zw.T + self.b_z
        return x_next, z

    def simulate(self, w_seq: np.ndarray, x0: np.ndarray | None = None) -> Simulation:
        """Run on ``w_seq`` of shape (T, n_w) or (T, batch..., n_w); same layout as ``Network.simulate``.

        >>> from certify.snof.channels import Channel
        >>> f = SNOF(A=[[0.5]], B_p=[[-1.0]], C_q=[[1.0]], C_z=[[1.0]], channels=(Channel("tanh"),))
        >>> f.simulate(np.zeros((3, 0)), x0=[1.0]).x.shape
        (4, 1)
        """
        w_seq = np.asarray(w_seq, dtype=np.float64)
        if w_seq.ndim < 2 or w_seq.shape[-1] != self.n_w:
            raise WeightError(f"SNOF.simulate: w_seq must have shape (T, ..., {self.n_w}), got {w_seq.shape}.")
        batch = w_seq.shape[1:-1]
        x = np.zeros(batch + (self.n,)) if x0 is None else np.broadcast_to(
            np.asarray(x0, dtype=np.float64), batch + (self.n,)).copy()
        xs = np.empty((w_seq.shape[0] + 1,) + batch + (self.n,))
        zs = np.empty((w_seq.shape[0],) + batch + (self.n_z,))
        xs[0] = x
        for k in range(w_seq.shape[0]):
            x, zs[k] = self.step(x, w_seq[k])
            xs[k + 1] = x
        return Simulation(x=xs, y=zs)


def _solve_implicit(form: SNOF, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solve q = base + D φ(q) sample by sample (only for non-nilpotent D_qp)."""
    from scipy.optimize import root

    flat = base.reshape(-1, form.m)
    q = np.empty_like(flat)
    for i, c in enumerate(flat):
        sol = root(lambda v, c=c: v - c - form.D_qp @ evaluate_channels(form.channels, v), c, tol=1e-14)
        res = np.max(np.abs(sol.x - c - form.D_qp @ evaluate_channels(form.channels, sol.x)), initial=0.0)
        if not sol.success and res > 1e-9 * max(1.0, float(np.max(np.abs(c), initial=0.0))):
            raise WellPosednessError(f"SNOF: the implicit channel loop q = C x + D_qp φ(q) did not solve "
                                     f"(residual {res:.2e}); is the form well-posed?")
        q[i] = sol.x
    q = q.reshape(base.shape)
    return q, evaluate_channels(form.channels, q)


def normalised_D(form: SNOF) -> np.ndarray | None:
    """``D̃ = (I − D diag(α))⁻¹ D diag(K)``: D_qp seen by slope-[0,1] channels (theory §2, §4.2), or None."""
    alpha = np.array([c.slope[0] for c in form.channels])
    Mi = np.eye(form.m) - form.D_qp * alpha[None, :]
    if np.linalg.cond(Mi) > 1e12:
        return None
    return np.linalg.solve(Mi, form.D_qp) * form.K[None, :]


def _diagonal_lmi_well_posedness(form: SNOF, margin: float = 1e-6, *, solver: str | None = None,
                                 timeout: float | None = None, options: Any = None) -> WellPosedness:
    """Richardson & Turner 2024, Lemma 2 (theory §2): diagonal V ≻ 0 with 2V − V D̃ − D̃'V ≻ 0, re-checked.

    The SDP runs through the backend registry (:mod:`certify.sdp.solvers`): the user's backend, options
    and time budget, and its honest status map (a backend that cannot decide gives ``unproved``).
    """
    Dt = normalised_D(form)
    if Dt is None:
        return WellPosedness(False, "unproved", "I − D_qp diag(slope lo) is singular: the loop is not well-posed.")
    import cvxpy as cp

    from certify.sdp import solvers as _solvers

    v = cp.Variable(form.m)
    V = cp.diag(v)
    S = 2 * V - V @ Dt - Dt.T @ V
    prob = cp.Problem(cp.Minimize(0), [v >= 1.0, (S + S.T) / 2 >> margin * np.eye(form.m)])
    spec = _solvers.get_solver(solver) if solver else _solvers.choose_solver(form.m)
    out = _solvers.run(prob, spec, timeout=timeout, options=options, psd_orders=(form.m,))
    if not out.has_point or v.value is None:
        why = out.message or f"{spec.name} status {out.raw_status}"
        return WellPosedness(False, "unproved", f"no diagonal V found ({why}).")
    Vv = np.diag(np.maximum(v.value, 0.0))
    Sv = 2 * Vv - Vv @ Dt - Dt.T @ Vv
    lam = float(np.linalg.eigvalsh((Sv + Sv.T) / 2).min())
    tol = 100 * form.m * np.finfo(float).eps * max(1.0, float(np.abs(Sv).max()))
    if lam > tol and float(np.diag(Vv).min()) > 0:
        return WellPosedness(True, "diagonal_lmi", "2V − V D̃ − D̃'V ≻ 0 with validated diagonal V.", lam)
    return WellPosedness(False, "unproved", f"validated min eig(2V − VD̃ − D̃'V) = {lam:.3e} ≤ {tol:.1e}.", lam)
