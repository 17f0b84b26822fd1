"""Data types shared by the reductions (:mod:`certify.snof.transform`) and the criteria
(:mod:`certify.criteria.lmi`, :mod:`certify.criteria.validate`): the shifted, normalised Luré system and
an LMI certificate (docs/theory.md §7.3).  NumPy only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np


@dataclass(frozen=True, eq=False)
class LureSystem:
    """Shifted, normalised Luré system ``x⁺ = A x + B p, q = C x + D p, p = ψ(q)``, ψ_i slope [0, K_i].

    ``odd`` is True when every ψ_i is odd (then the T4 term of theory §7.3 is allowed).

    >>> s = LureSystem(A=[[0.5]], B=[[-1.0]], C=[[1.0]], D=[[0.0]], K=[1.0])
    >>> s.n, s.m
    (1, 1)
    """

    A: np.ndarray
    B: np.ndarray
    C: np.ndarray
    D: np.ndarray
    K: np.ndarray
    odd: bool = False

    def __post_init__(self) -> None:
        A = np.atleast_2d(np.asarray(self.A, dtype=np.float64))
        n = A.shape[0]
        K = np.asarray(self.K, dtype=np.float64).reshape(-1)
        m = K.shape[0]
        object.__setattr__(self, "A", A.reshape(n, n))
        object.__setattr__(self, "B", np.asarray(self.B, dtype=np.float64).reshape(n, m))
        object.__setattr__(self, "C", np.asarray(self.C, dtype=np.float64).reshape(m, n))
        object.__setattr__(self, "D", np.asarray(self.D, dtype=np.float64).reshape(m, m))
        if np.any(K <= 0) or not np.all(np.isfinite(K)):
            raise ValueError("LureSystem: every slope bound K_i must be finite and > 0.")
        object.__setattr__(self, "K", K)

    @property
    def n(self) -> int:
        return self.A.shape[0]

    @property
    def m(self) -> int:
        return self.K.shape[0]


@dataclass(frozen=True, eq=False)
class LMICertificate:
    """Lyapunov matrix ``P`` and diagonal multipliers (vectors) for one criterion.

    >>> c = LMICertificate("circle", np.eye(1), {"T": np.ones(1)})
    >>> sorted(c.multipliers)
    ['T']
    """

    criterion: str
    P: np.ndarray
    multipliers: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "P", np.atleast_2d(np.asarray(self.P, dtype=np.float64)))
        object.__setattr__(self, "multipliers", MappingProxyType(
            {k: np.asarray(v, dtype=np.float64) for k, v in self.multipliers.items()}))
