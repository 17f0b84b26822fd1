"""The torch twins of the checker's formulas, pinned term by term for EVERY kind of the layer-kind registry.

For each kind: the training residuals equal the checker's reported quantities to 1e-10 (float64 weights):

* gated kinds (GRU in both conventions, LSTM): the ISS and δISS residuals ``ν`` of every layer
  (Bonassi, Farina & Scattolini 2021, eqs. 14, 24; Bonassi et al. 2023) = the checker's margins;
* affine kinds (Elman tanh/relu, LP-GRNN, SS-NN / gR-SS-NN, affine cells): every contraction rate (∞-norm,
  weighted ∞-norm, 2-norm) = the checker's ``rate_*`` quantities, the residual = min(rates) − 1 (never below
  the checker's margin, which may also use a scaled 2-norm), the per-layer Lur'e matrices = the layer's
  SNOF block, and the network's torch SNOF = :func:`certify.snof.from_network`.

A kind added to the registry without a case here fails :func:`test_every_registered_kind_has_a_pinned_twin`.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from certify.criteria.diss import check_diss  # noqa: E402
from certify.networks import InputRange  # noqa: E402
from certify.networks.kinds import KINDS, kind_named  # noqa: E402
from certify.results import Property  # noqa: E402
from certify.snof import from_network  # noqa: E402
from certify.snof.convert import layer_to_snof  # noqa: E402

TOL = 1e-10


def _scaled(m, scale):
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(scale)
    return m.double()


def _gru(seed, scale, reset_after=True):
    from certify.train.modules import GRUNet

    torch.manual_seed(seed)
    return _scaled(GRUNet(2, 3, 2, n_out=1, reset_after=reset_after), scale)


def _lstm(seed, scale):
    from certify.train.modules import LSTMNet

    torch.manual_seed(seed)
    return _scaled(LSTMNet(2, 3, 2, n_out=1), scale)


def _elman(seed, scale, act="tanh"):
    from certify.train.modules import ElmanNet

    torch.manual_seed(seed)
    return _scaled(ElmanNet(2, 4, 2, n_out=1, nonlinearity=act).add_bypass(np.ones((1, 2))), scale)


def _lpgrnn(seed, scale):
    from certify.train.modules import LPGRNNNet

    torch.manual_seed(seed)
    return _scaled(LPGRNNNet(2, 3, gate=2, num_layers=2, n_out=1), scale)


def _ssnn(seed, scale, linear=True):
    from certify.train.modules import SSNN

    torch.manual_seed(seed)
    return _scaled(SSNN(2, 3, 1, 4, 3, linear=linear), scale)


def _cell(seed, scale):
    from certify.train.cells import AffineCellNet
    from certify.train.students import lpgrnn_bypass_cell

    rng = np.random.default_rng(seed)
    u = rng.uniform(-1, 1, (200, 2))
    y = np.cumsum(u[:, :1], 0) * 0.01
    return _scaled(AffineCellNet(lpgrnn_bypass_cell(u, y, 3, seed=seed)), scale)


#: kind → module builders (seed, scale) covering its variants
CASES = {
    "gru": [_gru, lambda s, k: _gru(s, k, reset_after=False)],
    "lstm": [_lstm],
    "elman": [_elman, lambda s, k: _elman(s, k, "relu")],
    "lpgrnn": [_lpgrnn],
    "ssnn": [_ssnn, lambda s, k: _ssnn(s, k, linear=False)],
    "affine_cell": [_cell],
}


def test_every_registered_kind_has_a_pinned_twin():
    assert set(CASES) == set(KINDS)
    for name, row in KINDS.items():
        assert row.torch_module is not None, name


def _layer_checks(net, rng):
    checks = [c for c in check_diss(net, input_range=rng) if c.scope != "model"]
    return {p: [c for c in checks if c.property is p] for p in (Property.ISS, Property.DELTA_ISS)}


@pytest.mark.parametrize("name,variant", [(k, i) for k, fs in CASES.items() for i in range(len(fs))])
@pytest.mark.parametrize("seed,scale", [(0, 0.3), (1, 1.0), (2, 2.5)])
def test_torch_twin_equals_the_checker(name, variant, seed, scale):
    from certify.train.modules import to_canonical

    m = CASES[name][variant](seed, scale)
    net = to_canonical(m)
    assert {layer.kind for layer in net.layers} == {name}
    row = kind_named(name)
    hi = np.random.default_rng(seed).uniform(0.2, 3.0, net.n_inputs)
    rng = InputRange(low=-hi / 2, high=hi)
    ref = _layer_checks(net, rng)
    if row.gated:
        from certify.train.residuals import gated_residuals

        r = gated_residuals(m, torch.as_tensor(rng.abs_bound))
        for prop, got in ((Property.ISS, r.iss), (Property.DELTA_ISS, r.diss)):
            want = [c.margin for c in ref[prop]]
            np.testing.assert_allclose([float(v.detach()) for v in got], want, rtol=0, atol=TOL)
        return
    from certify.train.contraction import _rates, affine_residuals, layer_lure
    from certify.train.loop_penalty import network_snof

    nus = affine_residuals(m).diss
    for i, (lm, layer) in enumerate(zip(layer_lure(m), net.layers)):
        block = layer_to_snof(layer)  # the checker's Lur'e matrices of this layer
        k = lm.L.shape[0]  # the channels that feed the state (SS-NN: the output neurons do not)
        assert not np.any(block.B_p[:, k:]) and not np.any(block.D_qp[:k, k:])
        sub = {"A": block.A, "B": block.B_p[:, :k], "C": block.C_q[:k], "D": block.D_qp[:k, :k]}
        for t_name, want in sub.items():
            np.testing.assert_allclose(getattr(lm, t_name).detach().numpy(), want, rtol=0, atol=TOL)
        np.testing.assert_allclose(lm.L.numpy(), [c.slope[1] for c in block.channels[:k]], rtol=0, atol=0)
        q = ref[Property.DELTA_ISS][i].quantities
        rates = {k: float(v.detach()) for k, v in _rates(lm).items()}
        assert rates["inf"] == pytest.approx(q["rate_inf"], abs=TOL * (1 + q["rate_inf"]))
        assert rates["inf_weighted"] == pytest.approx(q["rate_inf_weighted"], abs=TOL * (1 + q["rate_inf"]))
        assert ("2" in rates) == ("rate_2" in q)
        if "2" in rates:
            assert rates["2"] == pytest.approx(q["rate_2"], abs=TOL * (1 + q["rate_inf"]))
        plain = min(v for k, v in q.items() if k in ("rate_inf", "rate_inf_weighted", "rate_2")) - 1.0
        assert float(nus[i].detach()) == pytest.approx(plain, abs=TOL * (1 + q["rate_inf"]))
        assert float(nus[i].detach()) >= ref[Property.DELTA_ISS][i].margin - TOL
    f, g = network_snof(m).numpy(), from_network(net)
    for k, v in f.items():
        np.testing.assert_allclose(v, getattr(g, k), rtol=0, atol=TOL, err_msg=k)
