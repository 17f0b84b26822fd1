"""The torch residuals equal the numpy checker's margins (per layer) and are differentiable."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from certify.criteria.diss import check_diss
from certify.networks import InputRange
from certify.results import Property
from certify.train.modules import GRUNet, LSTMNet, to_canonical
from certify.train.penalties import Penalty, generalized_piecewise, piecewise
from certify.train.residuals import gated_residuals


def _checker_margins(module, rng: InputRange) -> dict[Property, list[float]]:
    checks = [c for c in check_diss(to_canonical(module), input_range=rng) if c.scope != "model"]
    return {p: [c.margin for c in checks if c.property is p] for p in (Property.ISS, Property.DELTA_ISS)}


@settings(max_examples=15, deadline=None)
@given(kind=st.sampled_from(["gru", "gru_cho", "lstm"]), layers=st.integers(1, 3), hidden=st.integers(1, 5),
       n_in=st.integers(1, 3), scale=st.floats(0.1, 2.0), seed=st.integers(0, 10_000))
def test_residuals_equal_checker(kind, layers, hidden, n_in, scale, seed):
    torch.manual_seed(seed)
    if kind == "lstm":
        m = LSTMNet(n_in, hidden, layers, n_out=1)
    else:
        m = GRUNet(n_in, hidden, layers, n_out=1, reset_after=(kind == "gru"))
    m = m.double()
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(scale)
    hi = np.random.default_rng(seed).uniform(0.2, 3.0, n_in)
    rng = InputRange(low=-hi / 2, high=hi)  # asymmetric box: ū = max(|low|, |high|)
    ref = _checker_margins(m, rng)
    r = gated_residuals(m, torch.as_tensor(rng.abs_bound))
    np.testing.assert_allclose([float(v.detach()) for v in r.iss], ref[Property.ISS], rtol=0, atol=1e-6)
    np.testing.assert_allclose([float(v.detach()) for v in r.diss], ref[Property.DELTA_ISS], rtol=0, atol=1e-6)


def test_bias_free_and_assumed_range():
    torch.manual_seed(1)
    m = GRUNet(2, 3, 2, n_out=1, bias=False).double()
    ref = _checker_margins(m, InputRange.symmetric(2, 1.0))
    r = gated_residuals(m)  # None = assumed [-1, 1]
    np.testing.assert_allclose([float(v.detach()) for v in r.diss], ref[Property.DELTA_ISS], atol=1e-6)
    assert r.worst("diss") == pytest.approx(max(ref[Property.DELTA_ISS]), abs=1e-6)


def test_gradient_matches_finite_difference():
    torch.manual_seed(3)
    m = GRUNet(2, 3, 1, n_out=1).double()
    r = gated_residuals(m).diss[0]
    r.backward()
    W = m.rnn.weight_hh_l0
    g = W.grad.clone()
    i, j = 7, 1  # a U_n entry
    with torch.no_grad():
        W[i, j] += 1e-6
        up = float(gated_residuals(m).diss[0])
        W[i, j] -= 2e-6
        dn = float(gated_residuals(m).diss[0])
    assert g[i, j].item() == pytest.approx((up - dn) / 2e-6, rel=1e-4, abs=1e-7)


def test_penalties_hand_values():
    nu = torch.tensor([-1.05, -0.05, 0.0, 0.95])
    assert piecewise(nu, omega_minus=0.1).tolist() == pytest.approx([0.1, 0.0, 0.05, 1.0])
    smooth = generalized_piecewise(nu, k=50.0, omega_minus=0.0)  # → max(0, ν+ε) as k grows
    assert smooth.tolist() == pytest.approx([-np.log(2) / 50, 0.0, 0.05, 1.0], abs=0.02)
    assert float(generalized_piecewise(torch.tensor(-0.05))) == pytest.approx(0.0, abs=1e-7)
    assert float(Penalty(weight=3.0)([torch.tensor(0.95)])) == pytest.approx(3.0)
