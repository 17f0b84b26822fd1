"""torch contraction residuals, Lur'e matrices, the anchored LMI penalty and AffineCellNet against the numpy checker."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from certify.criteria.diss_affine import contraction_rates
from certify.criteria.validate import LureSystem, assemble_M, lmi_structure, validate_certificate
from certify.importers import load_model
from certify.snof import from_network
from certify.train.cells import AffineCellNet
from certify.train.contraction import _rates, affine_residuals, layer_lure, network_lure
from certify.train.lmi_penalty import Anchor, LMITarget, lmi_matrix, solve_anchor
from certify.train.modules import SSNN, ElmanNet, LPGRNNNet, export_step_onnx, from_canonical, to_canonical
from certify.train.trainer import TrainConfig, train

ZOO = os.path.join(os.path.dirname(__file__), os.pardir, "models_zoo")


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def _module(kind: str, seed: int, scale: float) -> torch.nn.Module:
    torch.manual_seed(seed)
    if kind == "elman":
        m = ElmanNet(2, 4, num_layers=2, nonlinearity="relu" if seed % 2 else "tanh")
    elif kind == "lpgrnn":
        m = LPGRNNNet(2, 3, gate=2, num_layers=2)
    else:
        m = SSNN(2, 3, 1, 4, 3, linear=bool(seed % 2))
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(scale)
    return m.double()


@settings(max_examples=15, deadline=None)
@given(kind=st.sampled_from(["elman", "lpgrnn", "ssnn"]), seed=st.integers(0, 1000), scale=st.floats(0.2, 3.0))
def test_torch_rates_equal_the_checker(kind, seed, scale):
    for lm in layer_lure(_module(kind, seed, scale)):
        ref = contraction_rates(*(_np(x) for x in (lm.A, lm.B, lm.C, lm.D, lm.L)))
        got = _rates(lm)
        assert abs(float(got["inf"].detach()) - ref["rate_inf"]) <= 1e-9 * (1 + ref["rate_inf"])
        assert abs(float(got["inf_weighted"].detach()) - ref["rate_inf_weighted"]) <= 1e-9 * (1 + ref["rate_inf"])
        if "_two" in ref:
            assert abs(float(got["2"].detach()) - ref["_two"]()) <= 1e-9 * (1 + ref["rate_inf"])


@pytest.mark.parametrize("kind", ["elman", "lpgrnn", "ssnn"])
def test_residuals_are_never_below_the_checkers(kind):
    from certify.criteria.diss import check_diss

    for seed in range(4):
        m = _module(kind, seed, 1.0)
        nus = [float(v.detach()) for v in affine_residuals(m).diss]
        checks = [c for c in check_diss(to_canonical(m)) if c.scope.startswith("layer") and "delta" in c.name]
        assert len(checks) == len(nus)
        for nu, c in zip(nus, checks):
            assert nu >= c.margin - 1e-9  # same rates, minus the checker's extra scaled 2-norm


@pytest.mark.parametrize("kind", ["elman", "lpgrnn"])
def test_network_lure_is_the_checkers_snof(kind):
    m = _module(kind, 3, 1.0)
    form, lm = from_network(to_canonical(m)), network_lure(m)
    for a, b in (("A", "A"), ("B_p", "B"), ("C_q", "C"), ("D_qp", "D")):
        np.testing.assert_array_equal(getattr(form, a), _np(getattr(lm, b)))


@pytest.mark.parametrize("rate", ["inf", "2"])
def test_rate_gradients_match_finite_differences(rate):
    """gradcheck of the ∞-norm and 2-norm rates (the weighted rate uses detached Perron weights on purpose)."""
    from certify.train.contraction import LureMatrices

    rng = np.random.default_rng(0)
    A, B, C = (torch.tensor(rng.normal(size=s), dtype=torch.float64, requires_grad=True) for s in
               ((3, 3), (3, 4), (4, 3)))
    L = torch.tensor([0.25, 1.0, 1.0, 1.0], dtype=torch.float64)

    def f(A, B, C):
        return _rates(LureMatrices(A, B, C, torch.zeros(4, 4, dtype=torch.float64), L))[rate]

    assert torch.autograd.gradcheck(f, (A, B, C), eps=1e-7, atol=1e-5)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 1000), crit=st.sampled_from(["circle", "popov", "lure_postnikov"]))
def test_lmi_matrix_equals_assemble_M(seed, crit):
    rng = np.random.default_rng(seed)
    m = _module("lpgrnn", seed, 1.0)
    lm = network_lure(m)
    n, k = lm.A.shape[0], lm.L.shape[0]
    X = rng.normal(size=(n, n))
    P = X @ X.T + np.eye(n)
    names = lmi_structure(LureSystem(np.eye(1), np.eye(1), np.eye(1), np.zeros((1, 1)), [1.0]), crit).multiplier_names
    mult = {nm: rng.uniform(0, 2, k) for nm in names}
    with torch.no_grad():  # unbalance the system so that balance_lure has real work to do
        m.layers[0].U_h.mul_(float(2.0 ** rng.integers(-3, 4)))
    lm = network_lure(m)
    from certify.criteria.lmi import balance_lure

    sys, T, S = balance_lure(LureSystem(*(_np(x) for x in (lm.A, lm.B, lm.C, lm.D, lm.L))))
    ref = assemble_M(lmi_structure(sys, crit), P, mult)
    got = _np(lmi_matrix(lm, Anchor(crit, P, mult, T, S, 0.0)))
    np.testing.assert_allclose(got, ref, atol=1e-10 * np.abs(ref).max())


def test_anchor_is_a_validated_certificate_and_residual_matches():
    m = _module("elman", 0, 0.5)
    lm = network_lure(m)
    a = solve_anchor(lm)
    assert a is not None
    sys = LureSystem(*(_np(x) for x in (lm.A, lm.B, lm.C, lm.D, lm.L)))
    from certify.criteria.lmi import balance_lure

    bal, _, _ = balance_lure(sys)
    from certify.criteria.validate import LMICertificate

    assert validate_certificate(bal, LMICertificate(a.criterion, a.P, a.multipliers)).ok
    tgt = LMITarget()
    nu = tgt.select(m)
    assert nu < 0 and tgt.anchor is not None
    assert abs(float(tgt.residuals(m)[0].detach()) - nu) < 1e-8


def test_no_anchor_for_a_destabilising_vertex():
    """A Lur'e system whose vertex gain is unstable has no certificate: the target never qualifies it."""
    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    from certify.train.contraction import LureMatrices

    assert solve_anchor(LureMatrices(t([[0.5]]), t([[-2.0]]), t([[1.0]]), t([[0.0]]), t([1.0]))) is None


def _zoo_cell() -> AffineCellNet:
    return AffineCellNet(load_model(os.path.join(ZOO, "boiler_lpgrnn_linear.onnx")).layers[0])


def test_affine_cell_net_simulates_like_the_cell_and_round_trips(tmp_path):
    net = load_model(os.path.join(ZOO, "boiler_lpgrnn_linear.onnx"))
    mod = from_canonical(net).double()
    u = np.random.default_rng(0).uniform(-1, 1, (60, net.n_inputs))
    with torch.no_grad():
        y = mod(torch.as_tensor(u)[None])[0].numpy()
    np.testing.assert_allclose(y, net.simulate(u).y, atol=1e-5)  # float32 weights
    back = load_model(export_step_onnx(mod.float(), str(tmp_path / "c.onnx")))
    for k in ("A", "B_p", "B_u", "C_q", "D_qp", "D_qu", "C_y", "D_yp", "D_yu", "b_x", "b_q", "b_y"):
        np.testing.assert_allclose(getattr(back.layers[0], k), getattr(net.layers[0], k), atol=1e-6)
    assert back.layers[0].activations == net.layers[0].activations


def test_affine_cell_net_keeps_its_sparsity_when_trained():
    mod = _zoo_cell()
    zeros = {k: (getattr(mod, k).detach() == 0) for k in ("A", "B_p", "C_q", "D_qp")}
    rng = np.random.default_rng(0)
    u = rng.uniform(-1, 1, (200, mod.n_in))
    y = rng.normal(size=(200, mod.n_out))
    train(mod, u, y, u, y, TrainConfig(epochs=2, seq_len=40, device="cpu", require_certified=False, progress=False))
    for k, z in zeros.items():
        assert bool(torch.all(getattr(mod, k).detach()[z] == 0)), k
    assert bool(torch.any(mod.A.detach() != _zoo_cell().A.detach()))  # the diagonal did move
    cell = mod.to_canonical()
    assert np.all(np.triu(cell.D_qp) == 0)
