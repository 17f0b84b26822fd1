"""`unstable` only with a proof: interval witnesses checked against independent 60-digit arithmetic.

The references here share no code with certify: the networks' steps are re-written with mpmath, and
every proved witness is refined by an mpmath Newton iteration on the plain fixed-point equation
``f(x) − x = 0`` (or ``f^p(x) − x``), whose root must lie in the proved box with a non-singular Jacobian.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import certify
from certify.falsify import SearchBudget, falsification_check, falsify, recheck, search
from certify.networks import AffineCell, ElmanLayer, GRULayer, LPGRNNLayer, LSTMLayer, Network
from certify.results import CheckStatus, Counterexample, Property, Verdict
from certify.witness.krawczyk import krawczyk
from certify.witness.proofs import prove_cycle, prove_equilibria, verify_witness

mp.mp.dps = 60


# ----------------------------------------------------------------------------- independent mpmath networks
def _mv(M, v):
    return [mp.fsum(mp.mpf(float(M[i, j])) * v[j] for j in range(M.shape[1])) for i in range(M.shape[0])]


def _vec(b):
    return [mp.mpf(float(x)) for x in b]


def _sig(a):
    return 1 / (1 + mp.exp(-a))


def _act(name, a):
    return {"tanh": mp.tanh, "sigmoid": _sig, "relu": lambda v: v if v > 0 else mp.mpf(0)}[name](a)


def mp_layer_step(layer, x, s):
    """(x⁺, out) of one layer, from the layer's defining equations (not from certify's code)."""
    add = lambda *vs: [mp.fsum(t) for t in zip(*vs)]  # noqa: E731
    if isinstance(layer, GRULayer):
        z = [_sig(a) for a in add(_mv(layer.W_z, s), _mv(layer.U_z, x), _vec(layer.b_z))]
        r = [_sig(a) for a in add(_mv(layer.W_r, s), _mv(layer.U_r, x), _vec(layer.b_r))]
        if layer.reset_after:
            hn = add(_mv(layer.U_n, x), _vec(layer.b_hn))
            n = [mp.tanh(a) for a in add(_mv(layer.W_n, s), _vec(layer.b_in), [ri * hi for ri, hi in zip(r, hn)])]
        else:
            rx = [ri * xi for ri, xi in zip(r, x)]
            n = [mp.tanh(a) for a in add(_mv(layer.W_n, s), _mv(layer.U_n, rx), _vec(layer.b_in), _vec(layer.b_hn))]
        h = [zi * xi + (1 - zi) * ni for zi, xi, ni in zip(z, x, n)]
        return h, h
    if isinstance(layer, LSTMLayer):
        H = layer.hidden
        h, c = x[:H], x[H:]
        pre = {g: add(_mv(getattr(layer, f"W_{g}"), s), _mv(getattr(layer, f"U_{g}"), h), _vec(getattr(layer, f"b_{g}")))
               for g in "ifgo"}
        i, f, o = ([_sig(a) for a in pre[g]] for g in "ifo")
        g = [mp.tanh(a) for a in pre["g"]]
        c2 = [fi * ci + ii * gi for fi, ci, ii, gi in zip(f, c, i, g)]
        h2 = [oi * mp.tanh(ci) for oi, ci in zip(o, c2)]
        return h2 + c2, h2
    if isinstance(layer, ElmanLayer):
        h = [_act(layer.activation, a) for a in add(_mv(layer.W, s), _mv(layer.U, x), _vec(layer.b))]
        return h, h
    if isinstance(layer, LPGRNNLayer):
        r = [_sig(a) for a in add(_mv(layer.W_r, s), _mv(layer.U_r, x), _vec(layer.b_r))]
        cand = [mp.tanh(a) for a in add(_mv(layer.W_h, s), _mv(layer.U_h, x), _mv(layer.V_h, r), _vec(layer.b_h))]
        z = _vec(layer.z)
        h = [zi * xi + (1 - zi) * ci for zi, xi, ci in zip(z, x, cand)]
        return h, h
    if isinstance(layer, AffineCell):
        base = add(_mv(layer.C_q, x), _mv(layer.D_qu, s), _vec(layer.b_q))
        p: list = []
        for i in range(len(base)):  # forward substitution (D_qp strictly lower triangular)
            q = base[i] + mp.fsum(mp.mpf(float(layer.D_qp[i, j])) * p[j] for j in range(i))
            p.append(_act(layer.activations[i], q))
        xn = add(_mv(layer.A, x), _mv(layer.B_p, p), _mv(layer.B_u, s), _vec(layer.b_x))
        y = add(_mv(layer.C_y, x), _mv(layer.D_yp, p), _mv(layer.D_yu, s), _vec(layer.b_y))
        return xn, y
    raise TypeError(layer)


def mp_step(net, x, u):
    out, sig, k = [], list(u), 0
    for layer in net.layers:
        xl = x[k:k + layer.n_state]
        k += layer.n_state
        xn, sig = mp_layer_step(layer, xl, sig)
        out += xn
    return out


def mp_newton(F, x0, iters=60):
    """Newton on F with a forward-difference Jacobian at 60 digits; returns (root, |F|, |det J|)."""
    x = [mp.mpf(float(v)) for v in x0]
    n = len(x)
    h = mp.mpf(10) ** -28
    for _ in range(iters):
        Fx = F(x)
        J = mp.matrix(n, n)
        for j in range(n):
            xh = list(x)
            xh[j] += h
            Fh = F(xh)
            for i in range(n):
                J[i, j] = (Fh[i] - Fx[i]) / h
        dx = mp.lu_solve(J, mp.matrix([-v for v in Fx]))
        x = [x[i] + dx[i] for i in range(n)]
        if max(abs(v) for v in dx) < mp.mpf(10) ** -45:
            break
    return x, max(abs(v) for v in F(x)), abs(mp.det(J))


def confirm_with_mpmath(net, cex):
    """The independent confirmation of a proved witness (asserts)."""
    u = [mp.mpf(v) for v in cex.data["u"]]
    proof = cex.data["proof"]
    boxes = proof["boxes"]
    if cex.kind == "multiple_equilibria":
        F = lambda x: [a - b for a, b in zip(mp_step(net, x, u), x)]  # noqa: E731
        roots = []
        for b in boxes:
            root, res, det = mp_newton(F, b["center"])
            assert res < mp.mpf(10) ** -40 and det > mp.mpf(10) ** -30
            assert max(abs(r - mp.mpf(c)) for r, c in zip(root, b["center"])) <= b["radius"]
            roots.append(root)
        assert max(abs(a - b) for a, b in zip(*roots)) > 0
    else:
        p = int(proof["period"])

        def F(x):
            y = x
            for _ in range(p):
                y = mp_step(net, y, u)
            return [a - b for a, b in zip(y, x)]

        (b,) = boxes
        root, res, det = mp_newton(F, b["center"])
        assert res < mp.mpf(10) ** -40 and det > mp.mpf(10) ** -30
        assert max(abs(r - mp.mpf(c)) for r, c in zip(root, b["center"])) <= b["radius"]
        step = [a - b for a, b in zip(mp_step(net, root, u), root)]
        assert max(abs(v) for v in step) > mp.mpf(10) ** -20  # not an equilibrium


# ----------------------------------------------------------------------------- networks
A1 = lambda v: np.array([[v]], dtype=float)  # noqa: E731
V1 = lambda v: np.array([v], dtype=float)  # noqa: E731
Z = np.zeros


def scalar_gru(U_z: float, b_in: float = 0.5) -> Network:
    """PyTorch GRU, hidden 1, input 1: only U_z and b_in non-zero.  h⁺ − h* = z(h)(h − h*), z ∈ (0, 1)."""
    return Network(layers=(GRULayer(Z((1, 1)), Z((1, 1)), Z((1, 1)), A1(U_z), Z((1, 1)), Z((1, 1)),
                                    Z(1), Z(1), V1(b_in), Z(1), reset_after=True),))


@pytest.mark.parametrize("U_z", [-10.0, 20.0, -40.0])
def test_globally_stable_scalar_grus_are_never_unstable(U_z):
    net = scalar_gru(U_z)
    # simulation agrees with the hand analysis: every start converges to tanh(0.5) (slowly where z ≈ 1)
    assert falsify(net) is None
    r = certify.check(net)
    assert r.verdict is not Verdict.UNSTABLE, r.reasons
    # the float64 artefact: far out the update gate rounds to exactly 1.0 and freezes the state
    far = 492.0 if U_z > 0 else -492.0
    assert float(net.step(np.array([far]), np.zeros(1))[0][0]) == far  # a "fixed point" in float64
    fake = Counterexample("multiple_equilibria", "fake", {"u": [0.0], "x_a": [math.tanh(0.5)], "x_b": [far],
                                                           "disproves": ["delta_iss", "gas"]})
    assert not recheck(net, fake)
    assert falsification_check(net, fake, Property.GAS).status is CheckStatus.NOT_PROVED


def test_a_witness_with_both_points_on_one_equilibrium_is_rejected():
    net = Network(layers=(ElmanLayer(W=A1(0.0), U=A1(2.0), b=V1(0.0)),))
    x = 0.9575040240772687
    w = prove_equilibria(net, np.zeros(1), [np.array([x]), np.array([x + 1e-15])])
    assert not w.proved
    cex = Counterexample("multiple_equilibria", "same point", {"u": [0.0], "x_a": [x], "x_b": [x + 1e-15]})
    assert not recheck(net, cex)


def test_krawczyk_proves_and_refuses_as_it_should():
    from certify.witness.dual import Dual

    def F(X):  # x³ − x: roots −1, 0, 1
        v = X.val
        tan = None if X.tan is None else (3 * v * v - 1)[:, None] * X.tan
        return Dual(v * v * v - v, tan)

    assert krawczyk(F, np.array([1.0 + 1e-9]), 1e-6).proved
    assert krawczyk(F, np.array([0.0]), 1e-3).proved
    assert not krawczyk(F, np.array([0.5]), 1e-3).proved  # no root there
    assert not krawczyk(F, np.array([0.0]), 2.0).proved  # three roots in the box: never "unique"


def test_stored_proofs_are_re_proved_and_tampering_is_caught():
    net = Network(layers=(ElmanLayer(W=A1(1.0), U=A1(-2.0), b=V1(0.0)),))  # period-2 orbits
    cex = falsify(net)
    assert cex is not None and cex.kind == "limit_cycle"
    proof = cex.data["proof"]
    assert verify_witness(net, proof).proved
    moved = dict(proof, boxes=[dict(proof["boxes"][0], center=[proof["boxes"][0]["center"][0] + 1e-3])])
    assert not verify_witness(net, moved).proved
    assert not verify_witness(net, dict(proof, u=[0.3])).proved  # another input, another map
    with pytest.raises(ValueError):
        verify_witness(net, dict(proof, kind="nonsense"))
    assert not recheck(net, Counterexample(cex.kind, cex.description, dict(cex.data, proof=moved)))
    confirm_with_mpmath(net, cex)


BISTABLE = {
    "elman": Network(layers=(ElmanLayer(W=A1(0.0), U=A1(2.0), b=V1(0.0)),)),
    "lstm": Network(layers=(LSTMLayer(A1(0.0), A1(0.0), A1(0.0), A1(0.0), A1(0.0), A1(0.0), A1(6.0), A1(0.0),
                                      V1(0.0), V1(2.0), V1(0.0), V1(4.0)),)),
    "gru_stack": Network(layers=(
        GRULayer(A1(0.3), A1(0.1), A1(0.5), A1(0.1), A1(0.1), A1(0.2), Z(1), Z(1), Z(1), Z(1)),
        GRULayer(Z((1, 1)), Z((1, 1)), Z((1, 1)), Z((1, 1)), A1(4.0), A1(0.2), Z(1), Z(1), V1(-1.5), V1(3.0)))),
}


@pytest.mark.parametrize("name", sorted(BISTABLE))
def test_bistable_networks_are_refuted_from_nearly_every_seed(name):
    net = BISTABLE[name]
    found = 0
    for seed in range(10):
        out = search(net, seed=seed)
        if out.counterexample is not None and out.counterexample.data.get("rigorous"):
            found += 1
            assert recheck(net, out.counterexample)
    assert found >= 9, found
    confirm_with_mpmath(net, search(net, seed=0).counterexample)


def test_the_search_size_is_counts_not_seconds():
    net = BISTABLE["elman"]
    a = search(net, seed=3)
    b = search(net, seed=3)
    assert a.counterexample == b.counterexample and a.evaluations == b.evaluations
    calm = Network(layers=(ElmanLayer(W=A1(1.0), U=A1(0.5), b=V1(0.1)),))  # no witness: the whole budget runs
    full, again = search(calm, seed=3), search(calm, seed=3)
    small = search(calm, seed=3, budget=SearchBudget(n_inputs=2, n_starts=4, horizon=10, newton_starts=2))
    assert full.counterexample is None and full.evaluations == again.evaluations > 0
    assert full.inputs_searched == SearchBudget().n_inputs and small.inputs_searched == 2
    assert small.evaluations < full.evaluations
    from certify.deadline import Deadline

    cut = search(net, seed=3, deadline=Deadline.after(0.0))
    assert cut.truncated and cut.counterexample is None


# ----------------------------------------------------------------------------- property: every unstable is real
def _rand(rng, *shape, scale):
    return rng.normal(size=shape) * scale


def _random_net(kind: str, seed: int, scale: float) -> Network:
    rng = np.random.default_rng(seed)
    H, m = (2, 1) if kind != "lstm" else (1, 1)
    if kind == "gru":
        return Network(layers=(GRULayer(*(_rand(rng, H, m, scale=scale) for _ in range(3)),
                                        *(_rand(rng, H, H, scale=scale) for _ in range(3)),
                                        *(_rand(rng, H, scale=1.0) for _ in range(4)),
                                        reset_after=bool(seed % 2)),))
    if kind == "lstm":
        return Network(layers=(LSTMLayer(*(_rand(rng, H, m, scale=scale) for _ in range(4)),
                                         *(_rand(rng, H, H, scale=scale) for _ in range(4)),
                                         *(_rand(rng, H, scale=1.0) for _ in range(4))),))
    if kind == "elman":
        return Network(layers=(ElmanLayer(W=_rand(rng, H, m, scale=scale), U=_rand(rng, H, H, scale=scale),
                                          b=_rand(rng, H, scale=0.5), activation=("tanh", "relu")[seed % 2]),))
    n, c = 2, 3
    D = np.tril(_rand(rng, c, c, scale=scale), -1)
    return Network(layers=(AffineCell(A=_rand(rng, n, n, scale=0.3), B_p=_rand(rng, n, c, scale=scale),
                                      B_u=_rand(rng, n, m, scale=1.0), b_x=_rand(rng, n, scale=0.3),
                                      C_q=_rand(rng, c, n, scale=scale), D_qp=D, D_qu=_rand(rng, c, m, scale=1.0),
                                      b_q=_rand(rng, c, scale=0.5), C_y=np.eye(1, n), D_yp=Z((1, c)),
                                      D_yu=Z((1, m)), b_y=Z(1), activations=("tanh", "sigmoid", "tanh")),))


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["gru", "lstm", "elman", "affine"]), seed=st.integers(0, 10_000),
       scale=st.sampled_from([1.5, 3.0, 6.0]))
def test_every_proved_witness_is_confirmed_in_60_digits(kind, seed, scale):
    net = _random_net(kind, seed, scale)
    out = search(net, seed=0, budget=SearchBudget(n_inputs=3, n_starts=16, horizon=100, newton_starts=8))
    cex = out.counterexample
    if cex is None or not cex.data.get("rigorous", True):
        return
    assert recheck(net, cex)
    confirm_with_mpmath(net, cex)


def test_mpmath_reference_agrees_with_the_networks():
    for kind in ("gru", "lstm", "elman", "affine"):
        net = _random_net(kind, 5, 1.0)
        x = np.linspace(-0.7, 0.8, net.n_states)
        u = np.array([0.3])
        ref = mp_step(net, [mp.mpf(v) for v in x], [mp.mpf(0.3)])
        assert np.allclose(net.step(x, u)[0], [float(v) for v in ref], atol=1e-13)


def test_prove_cycle_refuses_an_equilibrium():
    net = BISTABLE["elman"]
    assert not prove_cycle(net, np.zeros(1), np.array([0.9575040240772687]), 2).proved


def test_a_deadline_truncates_the_search_and_never_decides():
    r = certify.check(BISTABLE["elman"], timeout=1e-9)
    assert r.verdict is Verdict.NOT_CERTIFIED
    fals = r.assumptions.get("falsification")
    assert fals is None or fals["truncated"] is True
