"""Direct assembly of the stability LMI's conic data for SCS (docs/theory.md §7.6), without CVXPY.

The LMI ``M(P, t) = H'PH + He(E_x'PH) + Σ_j He(L_j' diag(t_j) R_j)`` is linear in the upper-triangle
entries of ``P`` and the multipliers ``t``; this module writes the coefficient of every variable in every
lower-triangle entry of the PSD block as sparse triples, straight from the non-zeros of ``H``, ``L_j`` and
``R_j``, in SCS's standard form ``min c'x  s.t.  b − Ax = s ∈ K`` (zero cone, non-negative cone, one PSD
cone in SCS's lower-triangular, column-major, √2-scaled vectorisation).  CVXPY's canonicalisation of the
same problem forms the products symbolically and dominated the time of large LMIs.

Two PSD forms (see :func:`certify.criteria.lmi.psd_form`): ``"congruence"`` (``M + τI ⪯ 0``, order ``N``)
and ``"schur"`` (``[[Q + He(E_x'PH) + τI, H'P], [PH, −P]] ⪯ 0``, order ``N + n``).  Two objectives:
``"feasibility"`` (``M ⪯ −I`` at free scale, no objective) and ``"max_margin"`` (maximise ``τ`` subject to
``s(P, t) = 1`` and ``τ ≤ cap``).  The data carries no solver status semantics: a point it returns is only
a proposal, which :func:`certify.criteria.validate.validate_certificate` decides on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["LMIConicData", "build_lmi_conic", "run_scs", "svec_lower", "unsvec_lower"]

_SQRT2 = float(np.sqrt(2.0))


@dataclass(frozen=True, eq=False)
class LMIConicData:
    """SCS problem data of one stability LMI and the map back to ``(P, t, τ)``.

    ``A``/``b``/``c``/``cone`` are SCS's; ``n_p`` upper-triangle entries of ``P`` come first in ``x``, then
    ``m`` entries per multiplier name (``names``), then ``τ`` in the ``max_margin`` objective.
    """

    A: Any
    b: np.ndarray
    c: np.ndarray
    cone: Mapping[str, Any]
    n: int
    m: int
    names: tuple[str, ...]
    form: str
    objective: str
    order: int

    @property
    def n_variables(self) -> int:
        return int(self.A.shape[1])

    def unpack(self, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray], float]:
        """``(P, {name: t}, τ)`` from an SCS primal vector (``τ`` is 1 in the feasibility objective)."""
        n, m = self.n, self.m
        n_p = n * (n + 1) // 2
        P = np.zeros((n, n))
        iu = np.triu_indices(n)
        P[iu] = x[:n_p]
        P = P + np.triu(P, 1).T
        mult = {name: np.array(x[n_p + k * m:n_p + (k + 1) * m]) for k, name in enumerate(self.names)}
        tau = float(x[-1]) if self.objective == "max_margin" else 1.0
        return P, mult, tau

    def psd_dual(self, y: np.ndarray) -> np.ndarray:
        """The PSD cone's block of an SCS dual vector ``y`` as a symmetric matrix (``⪰ 0`` up to SCS's accuracy);
        in the congruence form it is the dual matrix of ``M(P, t) + τI ⪯ 0``."""
        k = self.order * (self.order + 1) // 2
        return unsvec_lower(np.asarray(y, dtype=np.float64)[-k:], self.order)


def _pos(r: np.ndarray, c: np.ndarray, N: int) -> np.ndarray:
    """Position of lower-triangle entry ``(r, c)``, ``r ≥ c``, in column-major order."""
    return c * N - c * (c - 1) // 2 + (r - c)


def svec_lower(S: np.ndarray) -> np.ndarray:
    """SCS's vectorisation of a symmetric matrix: lower triangle, column-major, off-diagonals × √2.

    >>> svec_lower(np.array([[1.0, 2.0], [2.0, 3.0]])).round(4).tolist()
    [1.0, 2.8284, 3.0]
    """
    N = S.shape[0]
    c, r = np.triu_indices(N)          # column-major lower triangle: (r ≥ c), c outer
    v = S[r, c] * np.where(r == c, 1.0, _SQRT2)
    order = np.argsort(_pos(r, c, N), kind="stable")
    return v[order]


def unsvec_lower(v: np.ndarray, N: int) -> np.ndarray:
    """Inverse of :func:`svec_lower`.

    >>> unsvec_lower(svec_lower(np.array([[1.0, 2.0], [2.0, 3.0]])), 2).tolist()
    [[1.0, 2.0], [2.0, 3.0]]
    """
    c, r = np.triu_indices(N)
    S = np.zeros((N, N))
    p = _pos(r, c, N)
    S[r, c] = v[p] / np.where(r == c, 1.0, _SQRT2)
    S[c, r] = S[r, c]
    return S


def _row_pairs(L: Any, R: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All pairs of non-zeros ``(i, a, L_ia)``, ``(i, b, R_ib)`` on the same row ``i``: ``(i, a, b, L_ia R_ib)``."""
    Lc, Rc = L.tocoo(), R.tocsr()
    cnt = np.diff(Rc.indptr)[Lc.row]
    rep = np.repeat(np.arange(Lc.nnz), cnt)
    starts = Rc.indptr[Lc.row]
    offs = np.arange(rep.size) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    k = np.repeat(starts, cnt) + offs
    return Lc.row[rep], Lc.col[rep], Rc.indices[k], Lc.data[rep] * Rc.data[k]


def build_lmi_conic(H: np.ndarray, Ex: np.ndarray, terms: Sequence[tuple[str, np.ndarray, np.ndarray]],
                    names: Sequence[str], *, form: str = "congruence", objective: str = "feasibility",
                    weights: tuple[float, Mapping[str, float]] | None = None, cap: float | None = None
                    ) -> LMIConicData:
    """SCS data of ``M(P, t) ⪯ −I`` (``objective="feasibility"``) or of ``max τ s.t. M ⪯ −τI,
    s(P, t) = 1, τ ≤ cap`` (``"max_margin"``; ``weights = (a, b)`` of ``s``), with ``t ≥ 0``.

    ``H`` is ``n × N``, ``Ex = [I 0]``; ``terms`` are ``(name, L, R)`` with ``L, R`` of shape ``m × N``.

    >>> d = build_lmi_conic(np.array([[-0.5, -1.0]]), np.array([[1.0, 0.0]]),
    ...                     [("T", np.array([[0.0, 1.0]]), np.array([[1.0, -1.0]]))], ["T"])
    >>> d.order, d.n_variables, dict(d.cone)
    (2, 2, {'z': 0, 'l': 1, 's': [2]})
    """
    import scipy.sparse as sp

    if form not in ("congruence", "schur") or objective not in ("feasibility", "min_scale", "max_margin"):
        raise ValueError(f"unknown form {form!r} or objective {objective!r}")
    n, N = Ex.shape
    names = tuple(names)
    m = terms[0][1].shape[0] if terms else 0
    n_p = n * (n + 1) // 2
    pidx = np.zeros((n, n), dtype=np.int64)
    pidx[np.triu_indices(n)] = np.arange(n_p)
    pidx = np.triu(pidx) + np.triu(pidx, 1).T
    off = {name: n_p + k * m for k, name in enumerate(names)}
    n_x = n_p + m * len(names) + (1 if objective == "max_margin" else 0)
    order = N if form == "congruence" else N + n
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []

    def add(r: np.ndarray, c: np.ndarray, var: np.ndarray, v: np.ndarray) -> None:
        keep = (r >= c) & (v != 0)
        r, c = r[keep], c[keep]
        rows.append(_pos(r, c, order))
        cols.append(var[keep])
        vals.append(v[keep] * np.where(r == c, 1.0, _SQRT2))

    Hc = sp.coo_matrix(H)
    ha, hc, hv = Hc.row.astype(np.int64), Hc.col.astype(np.int64), Hc.data
    # He(E_x'PH): entry (r, c) = Σ_b P_rb H_bc for r < n, and its transpose
    rr = np.repeat(np.arange(n), ha.size)
    bb, cc, vv = np.tile(ha, n), np.tile(hc, n), np.tile(hv, n)
    var = pidx[rr, bb]
    add(rr, cc, var, vv)
    add(cc, rr, var, vv)
    if form == "congruence":
        # H'PH: entry (r, c) = Σ_{a,b} H_ar P_ab H_bc
        i1 = np.repeat(np.arange(ha.size), ha.size)
        i2 = np.tile(np.arange(ha.size), ha.size)
        add(hc[i1], hc[i2], pidx[ha[i1], ha[i2]], hv[i1] * hv[i2])
    else:
        # lower blocks: (N + a, c) = (PH)_ac = Σ_b P_ab H_bc;  (N + a, N + b) = −P_ab
        add(N + rr, cc, var, vv)
        ia, ib = np.tril_indices(n)
        add(N + ia, N + ib, pidx[ia, ib], -np.ones(ia.size))
    for name, L, R in terms:
        i, a, b, v = _row_pairs(sp.csr_matrix(L), sp.csr_matrix(R))
        var = off[name] + i
        add(a, b, var, v)
        add(b, a, var, v)
    dN = np.arange(N)
    b_psd = np.zeros(order * (order + 1) // 2)
    if objective == "max_margin":
        add(dN, dN, np.full(N, n_x - 1), np.ones(N))
    else:
        b_psd[_pos(dN, dN, order)] = -1.0          # s = −(M + I)
    A_psd = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(b_psd.size, n_x))
    n_t = m * len(names)
    lin_rows = [sp.hstack([sp.csr_matrix((n_t, n_p)), -sp.eye(n_t),
                           sp.csr_matrix((n_t, n_x - n_p - n_t))])] if n_t else []
    b_lin = [np.zeros(n_t)]
    zero_rows: list[Any] = []
    b_zero: list[np.ndarray] = []
    c = np.zeros(n_x)
    z = np.zeros(n_x)
    if objective != "feasibility":
        if weights is None:
            raise ValueError(f"the {objective} objective needs the scale weights (a, b)")
        a_w, b_w = weights
        z[pidx[np.arange(n), np.arange(n)]] = a_w
        for name in names:
            z[off[name]:off[name] + m] = b_w[name]
    if objective == "min_scale":
        c = z
    elif objective == "max_margin":
        zero_rows.append(sp.csr_matrix(z[None, :]))
        b_zero.append(np.ones(1))
        if cap is not None:
            e = np.zeros(n_x)
            e[-1] = 1.0
            lin_rows.append(sp.csr_matrix(e[None, :]))
            b_lin.append(np.array([float(cap)]))
        c[-1] = -1.0
    n_zero = len(zero_rows)
    n_lin = sum(r.shape[0] for r in lin_rows)
    A = sp.vstack([*zero_rows, *lin_rows, A_psd], format="csc")
    b = np.concatenate([*b_zero, *b_lin, b_psd]) if n_zero or n_lin else b_psd
    cone = {"z": n_zero, "l": n_lin, "s": [order]}
    return LMIConicData(A, b, c, cone, n, m, names, form, objective, order)


#: SCS exit code → (raw status in CVXPY's words, certify status); see :mod:`certify.sdp.solvers`
_SCS_STATUS = {1: ("optimal", "solved"), 2: ("optimal_inaccurate", "inaccurate"), -2: ("infeasible", "infeasible"),
               -7: ("infeasible_inaccurate", "undecided"), -1: ("unbounded", "undecided"),
               -6: ("unbounded_inaccurate", "undecided"), -3: ("solver_error", "undecided"),
               -4: ("solver_error", "undecided"), -5: ("interrupted", "undecided")}


def run_scs(data: LMIConicData, options: Mapping[str, Any], *, timeout: float | None = None
            ) -> tuple[Any, np.ndarray | None, np.ndarray | None]:
    """Solve ``data`` with SCS's own Python interface; never raises for a backend failure.

    Returns the :class:`certify.sdp.solvers.SolveOutcome` (``compile_seconds`` is SCS's setup: data
    normalisation and the factorisation), the primal vector and the dual vector (each ``None`` without a
    finite solved point).

    >>> d = build_lmi_conic(np.array([[-0.5, -1.0]]), np.array([[1.0, 0.0]]),
    ...                     [("T", np.array([[0.0, 1.0]]), np.array([[1.0, -1.0]]))], ["T"])
    >>> out, x, _ = run_scs(d, {"eps_abs": 1e-6, "eps_rel": 1e-6})
    >>> S = -unsvec_lower(d.b[1:] - d.A[1:] @ x, 2)          # M(P, t) + I, asked to be ⪯ 0
    >>> out.status, bool(np.linalg.eigvalsh(S).max() < 1e-5), d.unpack(x)[2]
    ('solved', True, 1.0)
    """
    import time

    from certify.sdp.solvers import SolveOutcome

    opts = {"verbose": False, **options}
    if timeout is not None:
        if timeout <= 0:
            return SolveOutcome("scs", "undecided", "time_limit", 0.0, 0.0, None,
                                "scs: the time budget is exhausted before the solve started.", opts), None, None
        opts["time_limit_secs"] = float(timeout)
    t0 = time.perf_counter()
    try:
        import scs

        solver = scs.SCS({"A": data.A, "b": data.b, "c": data.c}, dict(data.cone), **opts)
        t1 = time.perf_counter()
        sol = solver.solve()
    except Exception as exc:  # noqa: BLE001 - a crashing backend must not crash the check
        return SolveOutcome("scs", "undecided", "exception", time.perf_counter() - t0, 0.0, None,
                            f"scs raised {type(exc).__name__}: {exc}", opts), None, None
    t2 = time.perf_counter()
    info = sol.get("info", {})
    raw, status = _SCS_STATUS.get(int(info.get("status_val", -3)), ("solver_error", "undecided"))
    x: np.ndarray | None  # None: no usable point
    x = np.asarray(sol.get("x"), dtype=np.float64)
    if status in ("solved", "inaccurate") and not np.all(np.isfinite(x)):
        status, x = "undecided", None
    msg = "" if status != "undecided" else f"scs returned status {info.get('status')!r}: the solver could not decide"
    iters = info.get("iter")
    y = np.asarray(sol.get("y"), dtype=np.float64)
    ok = status in ("solved", "inaccurate")
    return (SolveOutcome("scs", status, raw, t1 - t0, t2 - t1, None if iters is None else int(iters), msg, opts),
            x if ok else None, y if ok and np.all(np.isfinite(y)) else None)
