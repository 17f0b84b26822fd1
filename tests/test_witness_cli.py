"""`unstable` end to end: the same verdict on any machine, re-checkable reports, refuted loops."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from _loop_cases import RELAY_LOOP, bypass_net

import certify
from certify.cli import main
from certify.results import Verdict

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def big_gru(tmp_path_factory):
    """A torch GRU with weights scaled by 8: several proved equilibria for some constant inputs."""
    folder = tmp_path_factory.mktemp("witness")
    torch.manual_seed(0)

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.g, self.h = torch.nn.GRU(2, 8, batch_first=True), torch.nn.Linear(8, 1)
            with torch.no_grad():
                for p in self.g.parameters():
                    p.mul_(8.0)

        def forward(self, x):
            return self.h(self.g(x)[0])

    path = folder / "gru_big.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(M().eval(), torch.zeros(1, 5, 2), str(path), dynamo=False, input_names=["u"],
                          output_names=["y"])
    return path


def _run(args, env_extra=None, burner=False):
    env = dict(os.environ, **(env_extra or {}))
    procs = []
    if burner:  # a CPU burner on each core while certify runs
        procs = [subprocess.Popen([sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<120: pass"])
                 for _ in range(2)]
    try:
        return subprocess.run([sys.executable, "-m", "certify", *args], capture_output=True, text=True, env=env,
                              timeout=600)
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_verdict_is_the_same_for_any_thread_count_and_load(big_gru, tmp_path):
    outs = []
    for i, (threads, burner) in enumerate([("1", False), ("2", False), ("2", True)]):
        out = tmp_path / f"r{i}.json"
        proc = _run(["check", str(big_gru), "--format", "json", "-o", str(out), "--quiet"],
                    {"OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads}, burner)
        assert proc.returncode == 4, proc.stderr
        outs.append(json.loads(out.read_text()))
    first = outs[0]["counterexample"]
    for o in outs[1:]:
        cex = o["counterexample"]
        assert o["verdict"] == "unstable" and cex["kind"] == first["kind"] and cex["data"]["u"] == first["data"]["u"]
        for a, b in zip(cex["data"]["proof"]["boxes"], first["data"]["proof"]["boxes"]):
            assert np.allclose(a["center"], b["center"], atol=1e-9)
        assert o["assumptions"]["falsification"]["evaluations"] == outs[0]["assumptions"]["falsification"]["evaluations"]


def test_report_carries_the_proof_and_verify_repeats_it(big_gru, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["check", str(big_gru), "--format", "json", "-o", str(out), "--quiet"]) == 4
    rep = json.loads(out.read_text())
    proof = rep["counterexample"]["data"]["proof"]
    assert proof["method"] == "krawczyk" and proof["proved"] is True
    assert all(b["radius"] > 0 and b["contraction"] < 1 and b["inclusion"] < 1 for b in proof["boxes"])
    assert rep["assumptions"]["falsification"]["truncated"] is False
    report = certify.check(str(big_gru))
    assert report.verdict is Verdict.UNSTABLE and report.counterexample is not None  # on the Report itself
    capsys.readouterr()
    assert main(["verify", str(out), str(big_gru)]) == 0
    assert "the proof holds" in capsys.readouterr().out
    # tampered: one box moved by far more than its radius
    box = proof["boxes"][1]
    box["center"][0] += 1e-6
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(rep))
    assert main(["verify", str(bad), str(big_gru)]) == 1
    # another model: refused as invalid input, not silently re-checked
    other = tmp_path / "other.json"
    other.write_text("[]")
    assert main(["verify", str(other), str(big_gru)]) == 3
    assert main(["verify", str(tmp_path), str(big_gru)]) == 3


# ------------------------------------------------------------------ loops
LOOP = RELAY_LOOP


def _bypass_net():
    return bypass_net()


def test_a_saturated_high_gain_pi_loop_is_refuted_with_a_replayable_orbit(tmp_path):
    from certify.loop.check import resolve_loop
    from certify.loop.simulate import simulate_loop

    path = tmp_path / "osc.toml"
    path.write_text(LOOP.format(kp=50.0, ki=20.0))
    net = _bypass_net()
    r = certify.check(net, loop=str(path))
    assert r.verdict is Verdict.UNSTABLE, r.reasons
    cex = r.counterexample
    assert cex.kind in ("limit_cycle", "multiple_equilibria") and cex.data["proof"]["proved"]
    # replay with the block-by-block loop simulation (independent of the SNOF the proof used)
    spec = resolve_loop(None, str(path))
    lay = cex.data["state_layout"]
    x0 = np.array(cex.data["trajectory"]["x0"])
    p = int(cex.data.get("period", 1))
    tr = simulate_loop(net, spec, 4 * p + 2, x_plant0=x0[slice(*lay["plant"])], x_net0=x0[slice(*lay["network"])],
                       x_ctrl0=x0[slice(*lay["controller"])])
    if cex.kind == "limit_cycle":
        assert np.allclose(tr.x_plant[p], tr.x_plant[0], atol=1e-7)  # back where it started after one period
        assert np.ptp(tr.u[:p]) > 1e-3  # and the actuator really moves
    assert certify.verify.verify_counterexample(r.to_dict(), net, loop=str(path)).proved


def test_a_gentle_loop_is_never_refuted(tmp_path):
    path = tmp_path / "calm.toml"
    path.write_text(LOOP.format(kp=0.5, ki=0.1))
    r = certify.check(_bypass_net(), loop=str(path))
    assert r.verdict is not Verdict.UNSTABLE, r.reasons
    # simulation agrees: every start settles
    from certify.loop.assemble import assemble
    from certify.loop.check import resolve_loop

    cl = assemble(_bypass_net(), resolve_loop(None, str(path)))
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, size=(50, cl.form.n))
    for _ in range(3000):
        X = cl.form.step(X, np.zeros((50, 0)))[0]
    assert np.ptp(X, axis=0).max() < 1e-6


def test_float64_fixed_points_outside_the_invariant_box_are_never_witnesses(big_gru):
    """Started far outside [−1, 1]ⁿ, the float64 GRU freezes where gates round to exactly 1.0: such
    'fixed points' (what an earlier float64 re-check accepted) must be refused."""
    from certify.api import load_model
    from certify.falsify import recheck
    from certify.results import Counterexample

    net = load_model(big_gru)
    rng = np.random.default_rng(0)
    u = np.array([-1.0, -1.0])
    X = rng.uniform(-500, 500, size=(64, net.n_states))
    for _ in range(500):
        X = net.step(X, np.broadcast_to(u, (64, 2)))[0]
    res = np.abs(net.step(X, np.broadcast_to(u, (64, 2)))[0] - X).max(axis=1)
    frozen = X[(res <= 1e-9) & (np.abs(X).max(axis=1) > 1.5)]
    assert len(frozen) >= 2  # the artefact exists in float64 ...
    fake = Counterexample("multiple_equilibria", "float64 artefact",
                          {"u": u.tolist(), "x_a": frozen[0].tolist(), "x_b": frozen[1].tolist(),
                           "disproves": ["delta_iss", "gas"]})
    assert not recheck(net, fake)  # ... and is refused: every GRU equilibrium lies in (−1, 1)ⁿ
