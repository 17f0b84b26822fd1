"""The training penalty's torch matrix is the checker's LMI: every term of
:func:`certify.criteria.validate.lmi_structure` (circle, popov, Luré–Postnikov with and without the odd
term) is pinned against :func:`certify.train.lmi_penalty.lmi_matrix` on random data."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from certify.criteria.validate import LureSystem, assemble_M, lmi_structure  # noqa: E402
from certify.train.contraction import LureMatrices  # noqa: E402
from certify.train.lmi_penalty import Anchor, lmi_matrix  # noqa: E402


@pytest.mark.parametrize("criterion,odd", [("circle", False), ("popov", False), ("lure_postnikov", False),
                                           ("lure_postnikov", True)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_torch_penalty_matrix_equals_the_validated_lmi(criterion, odd, seed):
    rng = np.random.default_rng(seed)
    n, m = 3, 2
    A = 0.9 * rng.normal(size=(n, n)) / np.sqrt(n)
    B, C = rng.normal(size=(n, m)), rng.normal(size=(m, n))
    D = np.tril(rng.normal(size=(m, m)), -1)
    K = rng.uniform(0.25, 1.5, m)
    sys = LureSystem(A, B, C, D, K, odd=odd)
    st = lmi_structure(sys, criterion)
    X = rng.normal(size=(n, n))
    P = X @ X.T + np.eye(n)
    mult = {k: rng.uniform(0.1, 1.0, m) for k in st.multiplier_names}
    T, S = 2.0 ** rng.integers(-3, 4, n), 2.0 ** rng.integers(-3, 4, m)   # balancing scales of the anchor
    # the anchor lives in balanced coordinates: compare with the numpy LMI of the balanced system
    bal = LureSystem(A * T[None, :] / T[:, None], B * S[None, :] / T[:, None], C * T[None, :] / S[:, None],
                     D * S[None, :] / S[:, None], K, odd=odd)
    M_np = assemble_M(lmi_structure(bal, criterion), P, mult)
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    lm = LureMatrices(t(A), t(B), t(C), t(D), t(K))
    M_t = lmi_matrix(lm, Anchor(criterion, P, mult, T, S, -1.0)).numpy()
    np.testing.assert_allclose(M_t, M_np, rtol=1e-10, atol=1e-10 * np.abs(M_np).max())
