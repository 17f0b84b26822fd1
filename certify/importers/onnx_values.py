"""Abstract values the ONNX graph interpreter propagates (see :mod:`certify.importers.onnx_graph`).

Every tensor of the graph is one of:

* :class:`Const` — a known numpy array (initializers, ``Constant`` nodes, and everything computed
  from them only: the exporters' weight plumbing is constant-folded this way);
* :class:`ShapeDep` — a value that depends on the *shape* of the input only (``Shape`` → ``Gather`` …);
* :class:`Zero` — an all-zero tensor of input-dependent shape (the legacy exporter's initial states,
  ``Expand(0, Shape(x) …)``);
* :class:`Sym` — a signal: along its feature axis it is an affine function of named sources,
  ``value = Σ_k terms[k] @ source_k + c``.  Sources are ``("in",)`` (the network input),
  ``("layer", i)`` (the output of recovered layer i), ``("x",)`` / ``("u",)`` (cell graphs) and
  ``("act", j)`` (the j-th activation channel group evaluated so far).  Axis labels say which axis is
  the feature axis ``"F"``, a singleton ``"1"``, or an axis of the input (``"a0"``, ``"a1"`` …; the
  one a recurrent node reads as time becomes the time axis).  ``time`` is ``None`` for whole sequences
  (or cell graphs) and an int ``t`` / ``"last"`` for one time step of a sequence.
* :class:`Poison` — the output of an unsupported node (kept so that every unsupported node is listed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from certify.errors import UnsupportedModelError, WeightError
from certify.importers.limits import DEFAULT_MAX_ELEMENTS, ResourceLimitError

Key = tuple[Any, ...]


@dataclass(frozen=True)
class Const:
    """A constant tensor."""

    value: np.ndarray


@dataclass(frozen=True)
class ShapeDep:
    """A value computed from the input's shape only."""


@dataclass(frozen=True)
class Zero:
    """An all-zero tensor whose shape depends on the input."""


@dataclass(frozen=True)
class InitState(Zero):
    """A graph input that feeds recurrent initial states (h0/c0), or a value computed from it only.

    certify ignores initial states (stability concerns the recurrence from every state; the canonical
    state starts at zero), so it propagates like an all-zero tensor and is reported in
    ``ModelInfo.extra["notes"]``.
    """


@dataclass(frozen=True)
class ShapeVec(ShapeDep):
    """A shape (or part of one) computed from the input's shape: entries are ints, the label of an input
    axis of unknown size (``"a0"`` …), or ``None`` (unknown).  ``scalar``: a 0-d value.

    >>> ShapeVec((1, "a0", 3)).known() is None, ShapeVec((1, 2)).known().tolist()
    (True, [1, 2])
    """

    dims: tuple[int | str | None, ...] = ()
    scalar: bool = False

    def known(self) -> np.ndarray | None:
        """The value as an int64 array when every entry is a known int, else ``None``."""
        if all(isinstance(d, int) for d in self.dims):
            arr = np.asarray(self.dims, dtype=np.int64)
            return arr.reshape(()) if self.scalar else arr
        return None


@dataclass(frozen=True)
class Poison:
    """Output of a node that could not be interpreted (``reason`` says why, when it is not listed)."""

    reason: str = ""


@dataclass(frozen=True)
class Sym:
    """Affine signal: ``terms[k]`` has shape (F, n_k); ``c`` has shape (F,); see the module docstring.

    >>> s = Sym.source(("in",), 2, ("a0", "a1", "F"), (None, None, 2))
    >>> s.n_feat, s.faxis
    (2, 2)
    """

    labels: tuple[str, ...]
    sizes: tuple[int | None, ...]
    terms: dict[Key, np.ndarray] = field(default_factory=dict)
    c: np.ndarray = field(default_factory=lambda: np.zeros(0))
    time: int | str | None = None

    @staticmethod
    def source(key: Key, n: int, labels: tuple[str, ...], sizes: tuple[int | None, ...],
               time: int | str | None = None) -> Sym:
        """The identity signal of source ``key`` (n features)."""
        return Sym(labels, sizes, {key: np.eye(n)}, np.zeros(n), time)

    @property
    def faxis(self) -> int:
        return self.labels.index("F")

    @property
    def n_feat(self) -> int:
        return int(self.c.shape[0])

    def with_(self, **kw: Any) -> Sym:
        d: dict[str, Any] = {"labels": self.labels, "sizes": self.sizes, "terms": self.terms, "c": self.c,
                             "time": self.time}
        d.update(kw)
        return Sym(**d)

    def linear(self, M: np.ndarray, shift: np.ndarray | None = None) -> Sym:
        """Apply ``v ↦ M v + shift`` along the feature axis."""
        terms = {k: M @ v for k, v in self.terms.items()}
        c = M @ self.c + (0.0 if shift is None else shift)
        sizes = list(self.sizes)
        sizes[self.faxis] = M.shape[0]
        return self.with_(terms=terms, c=c, sizes=tuple(sizes))

    def rows(self, idx: np.ndarray) -> Sym:
        """Select feature entries ``idx``."""
        idx = np.asarray(idx)
        if idx.size * max(self.n_feat, 1) > DEFAULT_MAX_ELEMENTS:
            raise ResourceLimitError(
                f"selecting {idx.size:,} entries of a signal with {self.n_feat:,} features exceeds the element budget."
            )
        return self.linear(np.eye(self.n_feat)[idx])


@dataclass(frozen=True)
class Stack:
    """Signals concatenated along a new singleton axis ``ax`` (e.g. ``h_n`` = final states of all layers).

    Only selecting one item back (``Gather``/``Slice`` on ``ax``) is supported.
    """

    items: tuple[Sym, ...]
    ax: int


def merge_terms(a: dict[Key, np.ndarray], b: dict[Key, np.ndarray], sign: float = 1.0) -> dict[Key, np.ndarray]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out[k] + sign * v if k in out else sign * v
    return out


def feature_vector(sym: Sym, const: np.ndarray, what: str) -> np.ndarray:
    """Return ``const`` (broadcast against ``sym``) as a per-feature vector, or raise.

    A constant that varies along a batch or time axis is not a fixed weight of the network.
    """
    const = np.asarray(const, dtype=np.float64)
    r = len(sym.labels)
    if const.ndim > r:
        raise UnsupportedModelError(f"{what}: a constant of rank {const.ndim} broadcast onto a rank-{r} signal.")
    shaped = const.reshape((1,) * (r - const.ndim) + const.shape)
    fa = sym.faxis
    for ax in range(r):
        n_ax: int = shaped.shape[ax]
        if ax != fa and n_ax != 1 and sym.labels[ax] != "1" and sym.sizes[ax] in (None, n_ax) \
                and np.all(shaped == np.take(shaped, [0], axis=ax)):
            # the same value for every batch element / time step (e.g. a zero initial state of batch 2):
            # still a per-feature constant
            shaped = np.take(shaped, [0], axis=ax)
        if ax != fa and shaped.shape[ax] != 1:
            raise UnsupportedModelError(
                f"{what}: the constant varies along a non-feature axis (shape {const.shape}); certify only reads "
                "time-invariant per-feature weights."
            )
    vec = np.moveaxis(shaped, fa, -1).reshape(-1)
    n = sym.n_feat
    if vec.shape[0] == 1:
        return np.full(n, vec[0])
    if vec.shape[0] != n:
        if n == 1:
            raise UnsupportedModelError(
                f"{what}: a constant of shape {const.shape} broadcasts a single-feature signal to "
                f"{vec.shape[0]} features; use a MatMul/Gemm for that."
            )
        raise WeightError(f"{what}: a constant of shape {const.shape} does not fit a signal with {n} features.")
    return vec


def broadcast_labels(a: Sym, b: Sym, what: str) -> tuple[tuple[str, ...], tuple[int | None, ...]]:
    """Labels of ``a + b`` (axes right-aligned; "1" broadcasts against anything)."""
    la, lb = list(a.labels), list(b.labels)
    sa, sb = list(a.sizes), list(b.sizes)
    while len(la) < len(lb):
        la.insert(0, "1")
        sa.insert(0, 1)
    while len(lb) < len(la):
        lb.insert(0, "1")
        sb.insert(0, 1)
    labels, sizes = [], []
    for x, y, sx, sy in zip(la, lb, sa, sb):
        if x == y or y == "1":
            labels.append(x)
            sizes.append(sx)
        elif x == "1":
            labels.append(y)
            sizes.append(sy)
        else:
            raise UnsupportedModelError(f"{what}: signals with incompatible axes {a.labels} and {b.labels}.")
    if labels.count("F") != 1:
        raise UnsupportedModelError(f"{what}: signals with incompatible feature axes {a.labels} and {b.labels}.")
    return tuple(labels), tuple(sizes)


def combine_time(a: int | str | None, b: int | str | None, what: str) -> int | str | None:
    """Time marker of a value computed from values at steps ``a`` and ``b``.

    Fixed-step sources are keyed with their step (``("in", t)``), so mixing steps is exact; the marker
    only tracks the latest step involved.  Mixing a whole sequence with one step is not supported.
    """
    if a == b:
        return a
    if isinstance(a, int) and isinstance(b, int):
        return max(a, b)
    raise UnsupportedModelError(f"{what}: combines signals of different time steps ({a} and {b}).")


def add_syms(a: Sym, b: Sym, sign: float, what: str) -> Sym:
    """``a + sign * b``."""
    time = combine_time(a.time, b.time, what)
    labels, sizes = broadcast_labels(a, b, what)
    na, nb = a.n_feat, b.n_feat
    if na != nb:
        if na == 1:
            a = a.linear(np.ones((nb, 1)))
        elif nb == 1:
            b = b.linear(np.ones((na, 1)))
        else:
            raise WeightError(f"{what}: adds signals with {na} and {nb} features.")
    return Sym(labels, sizes, merge_terms(a.terms, b.terms, sign), a.c + sign * b.c, time)
