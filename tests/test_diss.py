"""Closed-form δISS / ISS residuals: hand-computed scalar cases, conventions, layouts, stacks, ranges."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from certify.criteria.diss import check_diss
from certify.errors import InvalidInputError
from certify.falsify import falsification_check, falsify, recheck
from certify.networks import (
    ElmanLayer,
    GRULayer,
    InputRange,
    LPGRNNLayer,
    LSTMLayer,
    ModelInfo,
    Network,
    StateSpaceLayer,
)
from certify.results import CheckStatus, Property

S = lambda v: 1.0 / (1.0 + math.exp(-v))  # noqa: E731
A1 = lambda v: np.array([[v]], dtype=float)  # noqa: E731
V1 = lambda v: np.array([v], dtype=float)  # noqa: E731


def by_name(checks):
    return {c.name: c for c in checks}


def scalar_gru(reset_after, b_hn=0.0):
    # W_z U_z b_z = 0.5 0.2 -0.3 ; W_r U_r b_r = 0.1 0.4 0.5 ; W_n U_n b_in = 0.3 0.6 0.1
    return GRULayer(A1(0.5), A1(0.1), A1(0.3), A1(0.2), A1(0.4), A1(0.6), V1(-0.3), V1(0.5), V1(0.1), V1(b_hn),
                    reset_after)


def test_gru_bonassi_scalar_closed_form():
    checks = by_name(check_diss(Network(layers=(scalar_gru(False),))))
    s_z, s_f = S(1.0), S(1.0)
    phi = math.tanh(0.3 + 0.1 + s_f * 0.6)  # tighter φ̄ (|f∘x| ≤ σ̄_f)
    phi_paper = math.tanh(0.3 + 0.6 + 0.1)  # Bonassi (24): tanh(‖[W_r U_r b_r]‖∞)
    nu_d = 0.6 * (0.25 * 0.4 + s_f) - 1 + 0.25 * (1 + phi) / (1 - s_z) * 0.2
    nu_paper = 0.6 * (0.25 * 0.4 + s_f) - 1 + 0.25 * (1 + phi_paper) / (1 - s_z) * 0.2
    d, i = checks["diss.delta_iss.layer0"], checks["diss.iss.layer0"]
    assert d.margin == pytest.approx(nu_d, abs=1e-12)
    assert d.quantities["nu_paper"] == pytest.approx(nu_paper, abs=1e-12)
    assert i.margin == pytest.approx(0.6 * s_f - 1, abs=1e-12)
    assert d.quantities["contraction_rate"] == pytest.approx(1 + (1 - s_z) * nu_d, abs=1e-12)
    assert d.criterion == "bonassi_gru_delta_iss" and d.status is CheckStatus.PROVED


def test_gru_pytorch_scalar_closed_form_keeps_b_hn():
    checks = by_name(check_diss(Network(layers=(scalar_gru(True, b_hn=-0.7),))))
    s_z, s_r = S(1.0), S(1.0)
    phi = math.tanh(0.3 + 0.1 + s_r * (0.6 + 0.7))
    kappa = s_r * 0.6 + 0.25 * 0.4 * (0.6 + 0.7)  # ¼‖W_hr‖ ‖[W_hn b_hn]‖∞
    nu_d = kappa - 1 + 0.25 * (1 + phi) / (1 - s_z) * 0.2
    d = checks["diss.delta_iss.layer0"]
    assert d.margin == pytest.approx(nu_d, abs=1e-12)
    assert d.criterion == "bonassi_gru_pytorch_delta_iss"
    assert checks["diss.iss.layer0"].quantities["x_bar_iss"] == pytest.approx((0.3 + 0.1 + s_r * 0.7) / (1 - s_r * 0.6))


def test_lstm_scalar_closed_form():
    # gates (W, U, b): i (0.1, 0.2, 0.3), f (0.2, -0.1, -0.4), g (0.5, 0.3, 0.1), o (0.0, 0.4, 0.2)
    lay = LSTMLayer(A1(0.1), A1(0.2), A1(0.5), A1(0.0), A1(0.2), A1(-0.1), A1(0.3), A1(0.4),
                    V1(0.3), V1(-0.4), V1(0.1), V1(0.2))
    checks = by_name(check_diss(Network(layers=(lay,))))
    s_i, s_f, s_o, phi_c = S(0.6), S(0.7), S(0.6), math.tanh(0.9)
    xb = s_i * phi_c / (1 - s_f)
    alpha = 0.25 * 0.1 * xb + s_i * 0.3 + 0.25 * 0.2 * phi_c
    nu_d = s_f + s_o * alpha + 0.25 * math.tanh(xb) * 0.4 * (1 - s_f) - 1
    d, i = checks["diss.delta_iss.layer0"], checks["diss.iss.layer0"]
    assert d.margin == pytest.approx(nu_d, abs=1e-12)
    assert i.margin == pytest.approx(s_f + s_o * s_i * 0.3 - 1, abs=1e-12)
    A_d = np.array(d.quantities["A_delta"])
    assert max(abs(np.linalg.eigvals(A_d))) == pytest.approx(d.quantities["contraction_rate"], abs=1e-12)
    assert (max(abs(np.linalg.eigvals(A_d))) < 1) == (nu_d < 0)  # scalar form ⇔ ρ(A_δ) < 1
    assert d.quantities["nu_inf"] == pytest.approx(d.quantities["nu_2"], abs=1e-12)  # scalar: norms agree


@pytest.mark.parametrize("u", [0.3, -0.99, 1.2])
@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_elman_scalar_residual(u, act):
    checks = by_name(check_diss(Network(layers=(ElmanLayer(W=A1(1.0), U=A1(u), b=V1(0.2), activation=act),))))
    for name in ("diss.iss.layer0", "diss.delta_iss.layer0"):
        assert checks[name].margin == pytest.approx(abs(u) - 1, abs=1e-12)
    assert checks["diss.delta_iss"].proved == (abs(u) < 1)


def test_elman_diagonal_scaling_beats_plain_norms():
    U = np.array([[0.0, 4.0], [0.2, 0.0]])  # ‖U‖∞ = 4, ‖U‖₂ = 4, ρ(|U|) = √0.8 ≈ 0.894
    d = by_name(check_diss(Network(layers=(ElmanLayer(W=np.eye(2), U=U, b=np.zeros(2)),))))["diss.delta_iss.layer0"]
    q = d.quantities
    assert d.proved and q["rate_inf"] == 4.0 and q["rate_2"] == pytest.approx(4.0)
    assert q["rate_inf_weighted"] == pytest.approx(math.sqrt(0.8), abs=1e-6)
    assert q["rate_2_scaled"] == pytest.approx(math.sqrt(0.8), abs=1e-6)


def test_elman_scaled_two_norm_uses_sign_cancellation():
    # |U| has ρ = 1.4 (∞-type bounds fail), ‖U‖₂ ≈ 7, but D U D⁻¹ = 0.7·[[1, 1], [−1, 1]] has norm 0.99
    U = np.array([[0.7, 7.0], [-0.07, 0.7]])
    d = by_name(check_diss(Network(layers=(ElmanLayer(W=np.eye(2), U=U, b=np.zeros(2)),))))["diss.delta_iss.layer0"]
    assert d.proved and d.quantities["norm"] == "2_scaled"
    assert d.quantities["contraction_rate"] == pytest.approx(0.7 * math.sqrt(2), abs=1e-7)
    v = np.array(d.quantities["rate_weights"])  # ‖x‖ = ‖x / v‖₂: check ‖V⁻¹ U V‖₂ directly
    assert np.linalg.norm(U * v[None, :] / v[:, None], 2) == pytest.approx(d.quantities["contraction_rate"], abs=1e-12)
    assert d.quantities["rate_inf_weighted"] >= 1.4 - 1e-6


@pytest.mark.parametrize("z,U_h", [(0.5, 0.8), (0.2, -1.5), (-0.4, 0.3), (0.9, -3.0)])
def test_lpgrnn_scalar_equals_exact_lipschitz_constant(z, U_h):
    # V_h = 0: J(d) = z + (1−z) d U_h, d ∈ [0, 1]; the bound must equal max(|z|, |z + (1−z) U_h|).
    lay = LPGRNNLayer(W_r=A1(0.3), U_r=A1(2.0), b_r=V1(0.0), W_h=A1(1.0), U_h=A1(U_h), V_h=A1(0.0), b_h=V1(0.1),
                      z=V1(z))
    d = by_name(check_diss(Network(layers=(lay,))))["diss.delta_iss.layer0"]
    assert d.margin == pytest.approx(max(abs(z), abs(z + (1 - z) * U_h)) - 1, abs=1e-12)


def test_lpgrnn_gate_term_and_crude_bound():
    z, U_h, V_h, U_r = 0.3, 0.4, 0.8, -1.2
    lay = LPGRNNLayer(W_r=A1(0.3), U_r=A1(U_r), b_r=V1(0.0), W_h=A1(1.0), U_h=A1(U_h), V_h=A1(V_h), b_h=V1(0.1),
                      z=V1(z))
    d = by_name(check_diss(Network(layers=(lay,))))["diss.delta_iss.layer0"]
    hand = abs(z + 0.5 * (1 - z) * U_h) + (1 - z) * (0.5 * abs(U_h) + 0.25 * abs(V_h) * abs(U_r))
    crude = abs(z) + (1 - z) * (abs(U_h) + 0.25 * abs(V_h) * abs(U_r))
    assert d.quantities["contraction_rate"] == pytest.approx(hand, abs=1e-12)
    assert hand <= crude


@pytest.mark.parametrize("act,L", [("tanh", 1.0), ("sigmoid", 0.25), ("relu", 1.0)])
def test_ssnn_scalar_equals_exact_lipschitz_constant(act, L):
    z = np.zeros
    lay = StateSpaceLayer(A=A1(0.6), B=A1(1.0), C=A1(1.0), D=z((1, 1)), W_fx=A1(2.0), W_fu=A1(1.0), b_f=V1(0.1),
                          W_x=A1(-0.7), b_x=V1(0.0), W_gx=z((1, 1)), W_gu=z((1, 1)), b_g=z(1), W_y=z((1, 1)),
                          b_y=z(1), activation=act)
    d = by_name(check_diss(Network(layers=(lay,))))["diss.delta_iss.layer0"]
    assert d.margin == pytest.approx(max(0.6, abs(0.6 - 0.7 * 2.0 * L)) - 1, abs=1e-12)
    assert d.criterion == "ssnn_contraction_delta_iss"


# --- conventions and layouts -------------------------------------------------------------------


def test_bonassi_and_pytorch_forms_agree_when_b_hn_is_zero():
    rng = np.random.default_rng(3)
    H, m = 4, 2
    g = lambda *s: 0.3 * rng.normal(size=s)  # noqa: E731
    # Bonassi's names: z (update), f (reset, before U_r), r (candidate)
    bon = {k: g(H, m) for k in ("W_z", "W_f", "W_r")} | {k: g(H, H) for k in ("U_z", "U_f", "U_r")}
    bon |= {k: g(H) for k in ("b_z", "b_f", "b_r")}
    bonassi = GRULayer(W_z=bon["W_z"], W_r=bon["W_f"], W_n=bon["W_r"], U_z=bon["U_z"], U_r=bon["U_f"],
                       U_n=bon["U_r"], b_z=bon["b_z"], b_r=bon["b_f"], b_in=bon["b_r"], b_hn=np.zeros(H),
                       reset_after=False)
    # PyTorch layout: weight_ih = [W_ir | W_iz | W_in], biases split in input + recurrent halves
    w_ih = np.vstack([bon["W_f"], bon["W_z"], bon["W_r"]])
    w_hh = np.vstack([bon["U_f"], bon["U_z"], bon["U_r"]])
    b_ih = np.concatenate([bon["b_f"] - 0.1, bon["b_z"] + 0.2, bon["b_r"]])
    b_hh = np.concatenate([np.full(H, 0.1), np.full(H, -0.2), np.zeros(H)])
    sl = [slice(0, H), slice(H, 2 * H), slice(2 * H, 3 * H)]
    torch_form = GRULayer(W_z=w_ih[sl[1]], W_r=w_ih[sl[0]], W_n=w_ih[sl[2]], U_z=w_hh[sl[1]], U_r=w_hh[sl[0]],
                          U_n=w_hh[sl[2]], b_z=b_ih[sl[1]] + b_hh[sl[1]], b_r=b_ih[sl[0]] + b_hh[sl[0]],
                          b_in=b_ih[sl[2]], b_hn=b_hh[sl[2]], reset_after=True)
    a = check_diss(Network(layers=(bonassi,)))
    b = check_diss(Network(layers=(torch_form,)))
    for ca, cb in zip(a, b):
        assert ca.margin == pytest.approx(cb.margin, abs=1e-14)
    # the paper's own residual (φ̄ from ‖[W_r U_r b_r]‖∞), computed here from Bonassi's formula (24)
    ninf = lambda M: np.abs(M).sum(axis=1).max()  # noqa: E731
    s_z = S(np.max(np.abs(np.hstack([bon["W_z"], bon["U_z"], bon["b_z"][:, None]])).sum(1)))
    s_f = S(np.max(np.abs(np.hstack([bon["W_f"], bon["U_f"], bon["b_f"][:, None]])).sum(1)))
    phi = math.tanh(np.max(np.abs(np.hstack([bon["W_r"], bon["U_r"], bon["b_r"][:, None]])).sum(1)))
    nu = ninf(bon["U_r"]) * (0.25 * ninf(bon["U_f"]) + s_f) - 1 + 0.25 * (1 + phi) / (1 - s_z) * ninf(bon["U_z"])
    assert by_name(a)["diss.delta_iss.layer0"].quantities["nu_paper"] == pytest.approx(nu, abs=1e-12)
    assert by_name(a)["diss.iss.layer0"].margin == pytest.approx(ninf(bon["U_r"]) * s_f - 1, abs=1e-12)


def _lstm_from_blocks(w_ih, w_hh, b, order):
    H = w_hh.shape[1]
    blk = {name: slice(k * H, (k + 1) * H) for k, name in enumerate(order)}
    get = lambda M, n: M[blk[n]]  # noqa: E731
    return LSTMLayer(get(w_ih, "i"), get(w_ih, "f"), get(w_ih, "g"), get(w_ih, "o"),
                     get(w_hh, "i"), get(w_hh, "f"), get(w_hh, "g"), get(w_hh, "o"),
                     get(b, "i"), get(b, "f"), get(b, "g"), get(b, "o"))


def test_lstm_torch_and_onnx_layouts_give_identical_residuals():
    torch = pytest.importorskip("torch")
    H, m = 3, 2
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(m, H, batch_first=True).double()
    sd = {k: v.detach().numpy() for k, v in lstm.state_dict().items()}
    b = sd["bias_ih_l0"] + sd["bias_hh_l0"]
    t_layer = _lstm_from_blocks(sd["weight_ih_l0"], sd["weight_hh_l0"], b, "ifgo")  # torch [i|f|g|o]
    # ONNX stores [i|o|f|c]: permute the torch blocks, then read them back with the ONNX order
    perm = lambda M: np.concatenate([M[k * H:(k + 1) * H] for k in (0, 3, 1, 2)])  # noqa: E731
    o_layer = _lstm_from_blocks(perm(sd["weight_ih_l0"]), perm(sd["weight_hh_l0"]), perm(b), "iofg")
    # the mapping is right: one step of torch equals LSTMLayer.step
    u = np.random.default_rng(0).uniform(-1, 1, size=(1, 1, m))
    _, (h, c) = lstm(torch.from_numpy(u))
    x, _ = t_layer.step(np.zeros(2 * H), u[0, 0])
    assert np.allclose(x, np.concatenate([h.detach().numpy()[0, 0], c.detach().numpy()[0, 0]]), atol=1e-12)
    a = check_diss(Network(layers=(t_layer,)), full_2norm=True)
    o = check_diss(Network(layers=(o_layer,)), full_2norm=True)
    for ca, co in zip(a, o):
        assert ca.margin == co.margin and ca.quantities.get("nu_2") == co.quantities.get("nu_2")


# --- the network that separates the correct PyTorch bound from the naive one -----------------


def test_naive_b_hn_folding_is_unsound_and_falsified():
    # h⁺ = ½h + ½ tanh(−1.5 + σ(4h)(0.2h + 3)): three equilibria (0 and ±0.9), two of them stable
    z = np.zeros
    g = GRULayer(z((1, 1)), z((1, 1)), z((1, 1)), z((1, 1)), A1(4.0), A1(0.2), z(1), z(1), V1(-1.5), V1(3.0), True)
    net = Network(layers=(g,))
    naive = Network(layers=(replace(g, b_in=g.b_in + g.b_hn, b_hn=z(1)),))  # b_hn folded into b_in
    assert by_name(check_diss(naive))["diss.delta_iss"].margin < 0  # the naive formula "certifies" it
    correct = by_name(check_diss(net))["diss.delta_iss"]
    assert correct.margin >= 0 and correct.status is CheckStatus.NOT_PROVED
    cex = falsify(net)
    assert cex is not None and cex.kind == "multiple_equilibria" and recheck(net, cex)
    xa, xb, u = (np.array(cex.data[k]) for k in ("x_a", "x_b", "u"))
    for x in (xa, xb):  # independent re-evaluation of the GRU equation by hand
        r = S(4.0 * x[0])
        assert abs(0.5 * x[0] + 0.5 * math.tanh(-1.5 + r * (0.2 * x[0] + 3.0)) - x[0]) <= 1e-9
    assert abs(xa[0] - xb[0]) > 0.1
    chk = falsification_check(net, cex, Property.DELTA_ISS)
    assert chk.status is CheckStatus.DISPROVED and chk.scope == "model" and chk.criterion == "falsification"


# --- input ranges, stacks, unsupported layers ---------------------------------------------------


def test_input_range_rescales_columns_not_signed_product():
    rng = np.random.default_rng(5)
    g = lambda *s: 0.4 * rng.normal(size=s)  # noqa: E731
    lay = GRULayer(g(3, 2), g(3, 2), g(3, 2), g(3, 3), g(3, 3), g(3, 3), g(3), g(3), g(3), g(3))
    ub = np.array([2.0, 0.5])
    rng_box = InputRange(low=[-2.0, -0.1], high=[0.3, 0.5])  # abs bound (2, 0.5), asymmetric
    a = check_diss(Network(layers=(lay,)), input_range=rng_box)
    scaled = replace(lay, W_z=lay.W_z * ub, W_r=lay.W_r * ub, W_n=lay.W_n * ub)
    b = check_diss(Network(layers=(scaled,)), input_range=InputRange.symmetric(2))
    for ca, cb in zip(a, b):
        assert ca.margin == pytest.approx(cb.margin, abs=1e-14)
    assert by_name(a)["diss.iss.layer0"].quantities["input_bound"] == [2.0, 0.5]
    assert "assumptions" not in by_name(a)["diss.iss"].quantities


def test_assumed_range_is_recorded_and_declared_range_is_used():
    lay = ElmanLayer(W=A1(1.0), U=A1(0.5), b=V1(0.0))
    checks = by_name(check_diss(Network(layers=(lay,))))
    assert checks["diss.delta_iss"].quantities["assumptions"] == {"input_range": "assumed [-1, 1] (not declared)"}
    assert "assumed [-1, 1]" in checks["diss.delta_iss"].message
    declared = Network(layers=(lay,), info=ModelInfo(input_range=InputRange(low=[-3.0], high=[1.0])))
    q = by_name(check_diss(declared))["diss.iss.layer0"].quantities
    assert q["input_bound"] == [3.0] and "assumptions" not in q
    with pytest.raises(InvalidInputError, match="2 entries but the network has 1"):
        check_diss(Network(layers=(lay,)), input_range=InputRange.symmetric(2))


def test_deep_stack_uses_each_layers_input_bound_and_names_worst_layer():
    rng = np.random.default_rng(1)
    from test_diss_nets import random_layer

    l0 = random_layer("lstm", rng, 3, 2, 0.2)
    l1 = random_layer("gru_pytorch", rng, 4, 3, 0.2)
    l2 = ElmanLayer(W=0.1 * np.ones((2, 4)), U=np.array([[0.0, 0.95], [0.0, 0.0]]), b=np.zeros(2))
    checks = by_name(check_diss(Network(layers=(l0, l1, l2)), input_range=InputRange.symmetric(2, 5.0)))
    assert checks["diss.iss.layer0"].quantities["input_bound"] == [5.0, 5.0]
    assert checks["diss.iss.layer1"].quantities["input_bound"] == [1.0, 1.0, 1.0]
    assert "layer 0" in checks["diss.iss.layer1"].quantities["input_bound_source"]
    model = checks["diss.delta_iss"]
    worst = max((checks[f"diss.delta_iss.layer{i}"] for i in range(3)), key=lambda c: c.margin)
    assert model.margin == worst.margin and worst.scope in model.message
    assert model.proved == all(checks[f"diss.delta_iss.layer{i}"].proved for i in range(3))


def test_gru_above_ssnn_is_not_proved_for_lack_of_input_bound():
    rng = np.random.default_rng(2)
    from test_diss_nets import random_layer

    net = Network(layers=(random_layer("ssnn", rng, 2, 1, 0.1), random_layer("gru_bonassi", rng, 2, 2, 0.1)))
    checks = by_name(check_diss(net))
    assert checks["diss.delta_iss.layer0"].proved
    g = checks["diss.delta_iss.layer1"]
    assert g.status is CheckStatus.NOT_PROVED and "no sound bound" in g.message
    assert checks["diss.delta_iss"].status is CheckStatus.NOT_PROVED and "layer1" in checks["diss.delta_iss"].message


def test_lpgrnn_with_negative_z_propagates_invariant_box():
    lay = LPGRNNLayer(W_r=A1(0.0), U_r=A1(0.0), b_r=V1(0.0), W_h=A1(1.0), U_h=A1(0.1), V_h=A1(0.0), b_h=V1(0.0),
                      z=V1(-0.5))
    top = ElmanLayer(W=A1(1.0), U=A1(0.1), b=V1(0.0), activation="relu")
    top2 = GRULayer(*(A1(0.1),) * 6, *(V1(0.0),) * 4)
    checks = by_name(check_diss(Network(layers=(lay, top, top2))))
    assert checks["diss.iss.layer1"].quantities["input_bound"] == [pytest.approx(3.0)]  # 1.5 / 0.5
    # relu Elman ball: β = ‖[W·3, b]‖∞ / (1 − 0.1) = 3 / 0.9
    assert checks["diss.iss.layer2"].quantities["input_bound"] == [pytest.approx(3.0 / 0.9)]


class _OddLayer:
    kind = "odd"
    n_in = n_state = n_out = 1

    def step(self, x, u):
        return np.sin(x), np.sin(x)


def test_unknown_layer_is_not_applicable():
    checks = by_name(check_diss(Network(layers=(_OddLayer(),))))
    assert checks["diss.delta_iss.layer0"].status is CheckStatus.NOT_APPLICABLE
    assert checks["diss.delta_iss"].status is CheckStatus.NOT_APPLICABLE
    assert "odd" in checks["diss.delta_iss"].message


def test_result_shape_and_scopes():
    rng = np.random.default_rng(0)
    from test_diss_nets import random_layer

    checks = check_diss(Network(layers=(random_layer("gru_bonassi", rng, 2, 2, 0.1),) * 2))
    assert [c.scope for c in checks] == ["layer0", "layer0", "layer1", "layer1", "model", "model"]
    assert [c.property for c in checks[-2:]] == [Property.ISS, Property.DELTA_ISS]
    assert all(c.name.startswith("diss.") for c in checks)


def test_linear_algebra_failure_is_an_error_not_a_verdict():
    from unittest import mock

    from certify.criteria import diss_affine

    net = Network(layers=(ElmanLayer(W=A1(1.0), U=A1(2.0), b=V1(0.0)),))
    with mock.patch.object(diss_affine, "norm_2", side_effect=np.linalg.LinAlgError("SVD did not converge")):
        checks = by_name(check_diss(net))
    assert checks["diss.delta_iss"].status is CheckStatus.ERROR and "SVD" in checks["diss.delta_iss"].message


def test_saturated_gates_give_json_clean_not_proved_checks():
    import json

    gru = GRULayer(A1(0.0), A1(0.0), A1(0.0), A1(800.0), A1(0.0), A1(0.1), V1(0.0), V1(0.0), V1(0.0), V1(0.0))
    lstm = LSTMLayer(*(A1(0.0),) * 5, A1(900.0), A1(0.0), A1(0.0), *(V1(0.0),) * 4)
    for lay in (gru, lstm):
        checks = check_diss(Network(layers=(lay,)))
        d = by_name(checks)["diss.delta_iss"]
        assert d.status is CheckStatus.NOT_PROVED and d.margin is None
        for c in checks:
            json.dumps(dict(c.quantities), allow_nan=False)


@pytest.mark.parametrize("seed", range(3))
def test_quantities_are_json_serialisable_for_every_kind(seed):
    import json

    from test_diss_nets import KINDS, random_net

    for kind in KINDS:
        for c in check_diss(random_net(kind, seed, scale=1.0)):
            json.dumps({"q": dict(c.quantities), "margin": c.margin}, allow_nan=False)
