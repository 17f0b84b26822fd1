"""Trainer, metrics and linear initialisation against hand-derived / independent references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from certify.train.linear_init import fit_arx_ss, init_gr_ssnn
from certify.train.metrics import bfr, fit, metrics, rmse
from certify.train.modules import SSNN, GRUNet, to_canonical
from certify.train.penalties import Penalty
from certify.train.residuals import gated_residuals
from certify.train.trainer import TrainConfig, pick_device, simulate, train


def _data(T=300, seed=0):
    rng = np.random.default_rng(seed)
    u = np.repeat(rng.uniform(-1, 1, (T // 10, 1)), 10, axis=0)
    y = np.zeros((T, 1))
    for k in range(T - 1):
        y[k + 1] = 0.7 * y[k] + 0.3 * np.tanh(2 * u[k])
    return u, y


def test_metrics_hand_values():
    y = np.array([[1.0], [3.0]])
    assert fit(y, y).tolist() == [100.0]
    assert fit(y, np.full_like(y, 2.0)).tolist() == pytest.approx([0.0])  # the mean predicts FIT 0
    assert fit(y, np.array([[5.0], [-1.0]])).tolist() == pytest.approx([-300.0])
    assert bfr(y, np.array([[5.0], [-1.0]])).tolist() == [0.0]
    assert rmse(y, np.array([[2.0], [2.0]])).tolist() == [1.0]
    assert set(metrics(y, y)) == {"fit", "rmse", "bfr"}


def test_simulate_matches_canonical_network():
    torch.manual_seed(0)
    m = GRUNet(1, 3, 2, n_out=1)
    u, _ = _data(50)
    ref = to_canonical(m).simulate(u).y  # numpy semantic reference
    np.testing.assert_allclose(simulate(m, u), ref, atol=1e-5)


def test_training_reduces_error_and_is_deterministic():
    u, y = _data()
    cfg = TrainConfig(epochs=15, seq_len=50, washout=5, device="cpu", require_certified=False, progress=False)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        m = GRUNet(1, 3, n_out=1)
        before = float(np.mean((simulate(m, u[200:]) - y[200:]) ** 2))
        r = train(m, u[:200], y[:200], u[200:], y[200:], cfg)
        runs.append(r)
    assert runs[0].best_val_mse < 0.5 * before
    assert [h.loss for h in runs[0].history] == [h.loss for h in runs[1].history]


def test_penalised_training_selects_only_certified_epochs():
    u, y = _data()
    torch.manual_seed(0)
    m = GRUNet(1, 4, n_out=1)
    assert gated_residuals(m).worst() > 5  # the default init is far from δISS
    cfg = TrainConfig(epochs=40, seq_len=50, washout=5, lr=2e-2, device="cpu", progress=False)
    r = train(m, u[:200], y[:200], u[200:], y[200:], cfg, residuals=lambda mm: gated_residuals(mm).diss,
              penalty=Penalty(weight=1.0))
    assert r.best_epoch is not None and r.certified
    assert r.history[r.best_epoch].worst_residual < 0
    assert gated_residuals(m).worst() == pytest.approx(r.worst_residual, abs=1e-6)  # best weights restored
    best = min(h.val_mse for h in r.history if h.worst_residual < 0)
    assert r.best_val_mse == pytest.approx(best)


def test_pick_device():
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError):
        pick_device("tpu")


def test_arx_recovers_second_order_system():
    rng = np.random.default_rng(1)
    u = rng.uniform(-1, 1, (400, 1))
    y = np.zeros((400, 1))
    for k in range(1, 399):
        y[k + 1] = 1.2 * y[k] - 0.5 * y[k - 1] + 0.4 * u[k] + 0.1
    ss = fit_arx_ss(u, y, 2)
    np.testing.assert_allclose(ss.A, [[1.2, -0.5], [1.0, 0.0]], atol=1e-4)
    x, out = np.zeros(2), []  # the realisation reproduces the data from the true initial state
    x[:] = [y[1, 0], y[0, 0]]
    for k in range(1, 399):
        out.append((ss.C @ x)[0])
        x = ss.A @ x + ss.B @ u[k] + ss.c
    np.testing.assert_allclose(out, y[1:399, 0], atol=1e-3)
    m = SSNN(1, 2, 1, 4, 4)
    init_gr_ssnn(m, u, y)
    np.testing.assert_allclose(m.A.detach().numpy(), ss.A, atol=1e-6)
