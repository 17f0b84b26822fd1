"""Circle-criterion multipliers from the frequency domain, ``P`` from the Riccati equation (theory §7.10).

For fixed diagonal multipliers ``T ⪰ 0`` the circle LMI ``M(P, T) ≺ 0`` of :mod:`certify.criteria.validate`
is a Kalman–Yakubovich–Popov inequality in ``P`` (Boyd, El Ghaoui, Feron & Balakrishnan 1994), and it has a
solution exactly when the frequency-domain condition

    Φ(ω, T) = He(T · H(e^{jω})) ≻ 0  for every ω ∈ [0, π],   H(z) = I − diag(K) (C (zI − A)⁻¹ B + D)

holds (A Schur stable).  ``Φ`` is linear in ``T``, so ``λ_min Φ`` is concave in ``T``.  The search here keeps
``T`` constant on *channel groups* (the evaluation levels of ``D`` crossed with the slope bounds ``K``: in a
loop around an LP-GRNN the gates, the hidden units and the actuator saturation), maximises the smallest
eigenvalue over the worst frequencies of a grid in a few variables (Kelley's cutting planes; groups are split
in two by their supergradient when that is not enough), then recomputes ``P`` for that ``T``
from the stabilising solution of the Riccati equation (:func:`certify.sdp.riccati.riccati_P`).

Nothing here is trusted: the grid can miss a frequency and the group structure can be too coarse.  The pair
``(P, T)`` is a proposal that :func:`certify.criteria.validate.validate_certificate` accepts or refuses in
float64 with its rounding bound, exactly like a solver's point; a refused proposal leaves the decision to the
SDP.  On large closed loops (hundreds of channels) it replaces hundreds of first-order SDP iterations by a
few eigenvalue problems of order ``m`` and one Riccati equation of order ``n``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from certify.sdp.types import LMICertificate, LureSystem

__all__ = ["FrequencySearch", "channel_groups", "frequency_multipliers"]


@dataclass(frozen=True)
class FrequencySearch:
    """Outcome of :func:`frequency_multipliers`: the proposal (``certificate``, None when none was found),
    the number of channel groups, the frequencies kept active, the grid minimum of ``λ_min Φ`` for the group
    values ``t`` normalised to ``Σ t = 1``, the eigenvalue evaluations and the seconds spent, and why it
    stopped."""

    certificate: LMICertificate | None
    groups: int
    active_frequencies: tuple[float, ...]
    grid_margin: float
    evaluations: int
    riccati_solves: int
    seconds: float
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"groups": self.groups, "active_frequencies": list(self.active_frequencies),
                "grid_margin": self.grid_margin, "evaluations": self.evaluations,
                "riccati_solves": self.riccati_solves, "seconds": self.seconds, "reason": self.reason}


def channel_groups(sys: LureSystem) -> np.ndarray:
    """Group index of each channel: channels at the same evaluation level of ``D`` with the same slope bound.

    >>> s = LureSystem(A=[[0.5]], B=[[1.0, 0.0, 0.0]], C=[[1.0], [0.0], [0.0]],
    ...                D=[[0, 0, 0], [1.0, 0, 0], [0, 1.0, 0]], K=[1.0, 0.25, 0.25])
    >>> channel_groups(s).tolist()
    [0, 1, 2]
    """
    from certify.snof.form import channel_levels

    m = sys.m
    level = np.zeros(m, dtype=int)
    levels = channel_levels(sys.D)
    for j, idx in enumerate(levels or ()):
        level[idx] = j
    keys: dict[tuple[int, float], int] = {}
    return np.array([keys.setdefault((int(level[i]), float(sys.K[i])), len(keys)) for i in range(m)], dtype=int)


def _grid(lam: np.ndarray, count: int) -> np.ndarray:
    """0, π, ``count`` log-spaced frequencies in between and the angles of the eigenvalues ``lam`` of A
    (resonances)."""
    w = [0.0, np.pi, *np.logspace(-3, 0, count, endpoint=False) * np.pi]
    if lam.size:
        lam = lam[(np.abs(lam) > 0.5) & (np.angle(lam) > 1e-3)]
        w += list(np.sort(np.angle(lam[np.argsort(-np.abs(lam))][:16])))
    return np.unique(np.round(np.asarray(w), 12))


def _response(sys: LureSystem, w: float) -> tuple[np.ndarray, float]:
    """``H(e^{jω})`` and ``‖(e^{jω}I − A)⁻¹B‖_F²`` (an upper bound of the spectral norm squared)."""
    from scipy.linalg import solve

    z = np.exp(1j * w)
    if abs(z.imag) < 1e-15:
        z = z.real
    X = solve(z * np.eye(sys.n) - sys.A, sys.B)
    H = np.eye(sys.m) - sys.K[:, None] * (sys.C @ X + sys.D)
    return H, float(np.sum(np.abs(X) ** 2))


def _phi(H: np.ndarray, T: np.ndarray) -> np.ndarray:
    """``Φ = He(T H) = T H + H^* T`` for the diagonal ``T`` given as a vector."""
    X = T[:, None] * H
    return X + X.conj().T


def _lam_min(H: np.ndarray, T: np.ndarray, groups: np.ndarray | None = None) -> tuple[float, np.ndarray | None]:
    """``λ_min He(T H)`` and, with ``groups``, its supergradient in the group values ``t`` (``T = t[groups]``):
    ``∂λ/∂t_l = v^* He(E_l H) v = 2 Re Σ_{i ∈ l} conj(v_i) (H v)_i`` for the unit eigenvector ``v``
    (``groups = arange(m)``: the share of each channel)."""
    from scipy.linalg import eigh

    X = _phi(H, T)
    if groups is None:
        return float(eigh(X, eigvals_only=True, subset_by_index=[0, 0], check_finite=False)[0]), None
    lam, V = eigh(X, subset_by_index=[0, 0], check_finite=False)
    v = V[:, 0]
    g = 2.0 * np.real(np.conj(v) * (H @ v))
    return float(lam[0]), np.bincount(groups, weights=g, minlength=int(groups.max()) + 1)


def _kelley(values: Callable[[int, np.ndarray], tuple[float, np.ndarray]], L: int, active: list[int],
            t: np.ndarray, *, iters: int, rel_gap: float, late: Callable[[], bool]) -> np.ndarray:
    """Maximise the concave ``min_{i ∈ active} λ_min Φ(ω_i, t)`` over the simplex ``t ≥ 0, Σ t = 1`` by
    Kelley's cutting planes (one linear programme in ``L + 1`` variables per step); returns the best ``t``."""
    from scipy.optimize import linprog

    cuts_A: list[np.ndarray] = []
    cuts_b: list[float] = []
    best_t, best = t, -np.inf
    for _ in range(iters):
        vals = [values(i, t) for i in active]
        f = min(v for v, _ in vals)
        if f > best:
            best_t, best = t, f
        for v, g in vals:   # z ≤ v + g·(t' − t) = g·t'  (Φ is linear in t: the cut passes through 0)
            cuts_A.append(np.concatenate([-g, [1.0]]))
            cuts_b.append(v - float(g @ t))
        res = linprog(np.concatenate([np.zeros(L), [-1.0]]), A_ub=np.array(cuts_A), b_ub=np.array(cuts_b),
                      A_eq=np.concatenate([np.ones(L), [0.0]])[None, :], b_eq=[1.0],
                      bounds=[(0.0, 1.0)] * L + [(None, None)], method="highs")
        if res.status != 0:
            break
        upper = -float(res.fun)
        t = np.maximum(np.asarray(res.x[:L], dtype=np.float64), 0.0)
        if upper - best <= rel_gap * max(abs(best), 1e-12) or late():
            break
    return best_t


def frequency_multipliers(sys: LureSystem, *, grid_size: int = 24, max_rounds: int = 5, max_splits: int = 2,
                          max_evaluations: int = 400, timeout: float | None = None) -> FrequencySearch:
    """Propose a circle-criterion certificate: ``T`` constant on :func:`channel_groups` maximising the smallest
    eigenvalue of ``Φ(ω, T)`` over a frequency grid, ``P`` from the Riccati equation (module docstring).

    The proposal is not validated here (:func:`certify.criteria.validate.validate_certificate` decides).
    The search stops after ``max_evaluations`` smallest-eigenvalue problems of order ``m`` (or ``timeout``
    seconds) and then proposes nothing unless the grid condition already holds.

    >>> s = LureSystem(A=[[0.5]], B=[[-1.0]], C=[[1.0]], D=[[0.0]], K=[1.0])
    >>> r = frequency_multipliers(s)
    >>> r.certificate is not None, r.grid_margin > 0
    (True, True)
    """
    from certify.criteria.validate import assemble_M, lmi_structure
    from certify.sdp.riccati import riccati_P

    if max_rounds < 1 or max_splits < 0 or max_evaluations < 1 or grid_size < 0:
        raise ValueError("frequency_multipliers: max_rounds and max_evaluations must be ≥ 1, max_splits and "
                         "grid_size ≥ 0.")
    t0 = time.perf_counter()
    g = channel_groups(sys)
    count = {"eig": 0, "cholesky": 0}
    if sys.n == 0 or sys.m == 0:   # a static map or no nonlinearity: nothing for a frequency search to do
        return FrequencySearch(None, int(g.max()) + 1 if g.size else 0, (), float("nan"), 0, 0,
                               time.perf_counter() - t0, "no states or no channels")
    lam = np.linalg.eigvals(sys.A)
    if not np.all(np.isfinite(lam)) or (lam.size and float(np.max(np.abs(lam))) >= 1.0 - 1e-9):
        # the frequency condition is equivalent to the LMI only for a Schur-stable A (and H has a pole on the
        # unit circle when A has an eigenvalue there): nothing to propose, the SDP decides
        return FrequencySearch(None, int(g.max()) + 1 if g.size else 0, (), float("nan"), 0, 0,
                               time.perf_counter() - t0, "A is not Schur stable")
    grid = _grid(lam, grid_size)
    resp = [_response(sys, float(w)) for w in grid]

    def T_of(t: np.ndarray) -> np.ndarray:
        return np.asarray(t, dtype=np.float64)[g]

    def values(i: int, t: np.ndarray) -> tuple[float, np.ndarray]:
        count["eig"] += 1
        lam, grad = _lam_min(resp[i][0], T_of(t), g)
        assert grad is not None
        return lam, grad

    def out(cert: LMICertificate | None, reason: str, active: list[int], phi: float,
            solves: int) -> FrequencySearch:
        return FrequencySearch(cert, int(g.max()) + 1 if g.size else 0, tuple(float(grid[i]) for i in active), phi,
                               count["eig"], solves, time.perf_counter() - t0, reason)

    def late() -> bool:   # the search is a shortcut: it stops at its evaluation budget or the deadline
        return count["eig"] > max_evaluations or (timeout is not None and time.perf_counter() - t0 > timeout)

    def screen_below(t: np.ndarray, level: float, skip: list[int]) -> dict[int, float]:
        """``λ_min`` at the grid frequencies (not in ``skip``) where it is below ``level``: a Cholesky
        factorisation of ``Φ − level·I`` screens each frequency (several times cheaper than an eigenvalue)."""
        from scipy.linalg import cholesky

        T = T_of(t)
        found = {}
        for i, (H, _) in enumerate(resp):
            if i in skip:
                continue
            X = _phi(H, T)
            X[np.diag_indices_from(X)] -= level
            try:
                cholesky(X, lower=True, check_finite=False)
                count["cholesky"] += 1
            except np.linalg.LinAlgError:
                count["eig"] += 1
                found[i] = _lam_min(H, T)[0]
        return found

    L = int(g.max()) + 1 if g.size else 0
    t = np.full(L, 1.0 / L)
    phi = _lam_min(resp[0][0], T_of(t))[0]
    count["eig"] += 1
    below = screen_below(t, phi, [0])
    active = [0] if not below else sorted({0, min(below, key=below.__getitem__)})
    phi = min([phi, *below.values()])
    for split in range(max_splits + 1):
        for _ in range(max_rounds):
            if L > 1:
                t = _kelley(values, L, active, t, iters=min(12 * L, 48), rel_gap=0.15, late=late)
            act = {i: values(i, t)[0] for i in active}
            phi = min(act.values())
            below = screen_below(t, phi, active)
            if not below:
                break
            worst = min(below, key=below.__getitem__)
            phi = below[worst]
            if L <= 1 or late():
                break
            active = sorted({*active, worst})
        if phi > 0 or split == max_splits or late():
            break
        # too coarse: split every group in two by the sign of each channel's share of the supergradient at the
        # worst frequencies (the channels whose weight should grow, and the others), same value to start with
        share = np.zeros(sys.m)
        for i in active:
            if act.get(i, phi) <= phi + 0.1 * abs(phi):
                _, per_channel = _lam_min(resp[i][0], T_of(t), np.arange(sys.m))
                assert per_channel is not None
                share += per_channel
                count["eig"] += 1
        up = share > np.array([np.median(share[g == k]) for k in range(L)])[g]
        _, g_new = np.unique(2 * g + up, return_inverse=True)
        if g_new.max() + 1 == L:
            break
        t = np.array([t[g[np.flatnonzero(g_new == k)[0]]] for k in range(int(g_new.max()) + 1)])
        g = g_new.astype(int)
        L = int(g.max()) + 1
        t = t / t.sum()
    if not phi > 0:
        return out(None, "no group multipliers make the frequency condition hold on the grid", active, phi, 0)
    T = T_of(t)
    st = lmi_structure(sys, "circle")
    n = sys.n
    Q = assemble_M(st, np.zeros((n, n)), {"T": T})
    # M(P) + Q ⪯ −τI is feasible when τ(1 + ‖(zI − A)⁻¹B‖²) < λ_min Φ(ω, T) at every ω (KYP); half of that at
    # the grid's worst point, then a thousandth of it, leave room for the frequencies between grid points
    tau = 0.5 * phi / (1.0 + max(x for _, x in resp))
    solves = 0
    for scale in (1.0, 1e-3):
        if late() and solves:
            break
        solves += 1
        P = riccati_P(st.G[:, :n], st.G[:, n:], Q, tau * scale)
        if P is not None:
            return out(LMICertificate("circle", P, {"T": T}), "proposed", active, phi, solves)
    return out(None, "the Riccati equation has no stabilising solution for these multipliers", active, phi, solves)
