"""The Python API: what ``certify.check`` runs per method and architecture, and the verdicts it returns."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import test_cli_stubs as stubs

import certify
from certify.results import CheckStatus, Property, Verdict

REPO = Path(__file__).resolve().parents[1]
CREATED = "2026-01-01T00:00:00+00:00"


@pytest.fixture
def use(monkeypatch):
    def install(scenario: str) -> list[str]:
        stubs.install(scenario, monkeypatch.setitem)
        return stubs.CALLS

    return install


def test_public_surface_is_lazy_and_complete():
    code = ("import sys, certify; assert 'numpy' not in sys.modules, 'numpy imported'; "
            "from certify import check, load_model, Report, Verdict, ExitCode, __version__; "
            "assert 'cvxpy' not in sys.modules and 'onnx' not in sys.modules and 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, env={"PYTHONPATH": str(REPO)})
    assert certify.Verdict is Verdict and certify.Report.__name__ == "Report"
    with pytest.raises(AttributeError):
        certify.no_such_thing  # noqa: B018


def test_gated_certified_skips_lmi_and_falsify(use):
    calls = use("certified")
    r = certify.check(stubs.gru_net(), created=CREATED)
    assert r.verdict is Verdict.CERTIFIED and r.requested == (Property.DELTA_ISS,)
    assert calls == ["check_diss"]
    assert r.created == CREATED and r.model["architecture"] == "gru"
    assert r.assumptions["input_range"] is None and "[-1, 1]" in r.assumptions["input_range_note"]
    assert r.assumptions["norms"] == ["inf"]
    r = certify.check(stubs.elman_net(), method="lmi")
    assert r.assumptions["margins_required"] == {"lmi": {"margin_required": 1e-6}}


def test_gated_not_proved_runs_falsify(use):
    calls = use("not_certified")
    r = certify.check(stubs.gru_net(), method="all")
    assert r.verdict is Verdict.NOT_CERTIFIED
    assert calls == ["check_diss", "from_network", "falsify"]
    lmi = next(c for c in r.checks if c.name == "lmi")
    assert lmi.status is CheckStatus.NOT_APPLICABLE and "SNOF" in lmi.message


def test_gated_unstable(use):
    calls = use("unstable")
    r = certify.check(stubs.gru_net())
    assert r.verdict is Verdict.UNSTABLE and r.decision.counterexample.kind == "multiple_equilibria"
    assert calls[-1] == "falsification_check:delta_iss"  # multiple equilibria refute δISS too


def test_lmi_on_gated_network_is_invalid_input(use):
    use("certified")
    r = certify.check(stubs.gru_net(), method="lmi")
    assert r.verdict is Verdict.INVALID_INPUT and "--method diss" in r.reasons[0]


@pytest.mark.parametrize(
    ("scenario", "method", "calls", "verdict"),
    [
        ("certified", "auto", ["check_diss"], Verdict.CERTIFIED),  # δISS proves GAS: no LMI needed
        ("lmi", "auto", ["check_diss", "from_network", "check_lmi"], Verdict.CERTIFIED),
        ("lmi", "diss", ["check_diss", "falsify"], Verdict.NOT_CERTIFIED),
        ("lmi", "lmi", ["from_network", "check_lmi"], Verdict.CERTIFIED),
        ("certified", "all", ["check_diss", "from_network", "check_lmi"], Verdict.CERTIFIED),
        ("not_applicable", "auto", ["check_diss", "from_network", "check_lmi", "falsify"], Verdict.NOT_CERTIFIED),
        ("not_applicable", "diss", ["check_diss"], Verdict.INVALID_INPUT),
        ("solver_error", "lmi", ["from_network", "check_lmi", "falsify"], Verdict.NOT_CERTIFIED),
        ("unstable", "auto", ["check_diss", "from_network", "check_lmi", "falsify", "falsification_check:gas"],
         Verdict.UNSTABLE),
        # a non-contracting pair refutes δISS but not GAS: inconclusive, never "unstable"
        ("non_contracting", "auto", ["check_diss", "from_network", "check_lmi", "falsify",
                                     "falsification_check:delta_iss"], Verdict.NOT_CERTIFIED),
    ],
)
def test_affine_network_pipeline(use, scenario, method, calls, verdict):
    got = use(scenario)
    r = certify.check(stubs.elman_net(), method=method, solver="SCS")
    assert got == calls
    assert r.verdict is verdict, r.reasons
    if scenario == "solver_error":
        assert any(c.status is CheckStatus.ERROR and "crashed" in c.message for c in r.checks)
    if verdict is not Verdict.INVALID_INPUT:
        assert r.requested == ((Property.DELTA_ISS,) if method == "diss" else (Property.GAS,))


def test_input_range_broadcast_and_mismatch(use):
    use("certified")
    r = certify.check(stubs.elman_net(), input_range=(-2.0, 2.0))
    assert r.assumptions["input_range"] == {"low": [-2.0, -2.0], "high": [2.0, 2.0]}
    assert r.assumptions["input_range_source"] == "argument"
    assert r.model["input_range"] == {"low": [-2.0, -2.0], "high": [2.0, 2.0]}
    bad = certify.check(stubs.elman_net(), input_range=([0.0] * 3, [1.0] * 3))
    assert bad.verdict is Verdict.INVALID_INPUT and "2 inputs" in bad.reasons[0]


def test_invalid_arguments_give_invalid_input_reports(use, tmp_path):
    use("certified")
    assert certify.check(stubs.elman_net(), method="magic").verdict is Verdict.INVALID_INPUT
    assert certify.check(stubs.elman_net(), plant="boiler", loop="x.toml").verdict is Verdict.INVALID_INPUT
    assert certify.check(42).verdict is Verdict.INVALID_INPUT
    missing = certify.check(tmp_path / "none.onnx")
    assert missing.verdict is Verdict.INVALID_INPUT and missing.model["sha256"] is None
    assert "not found" in missing.reasons[0] and missing.to_dict()["error"]["type"] == "ModelFileError"


def test_model_file_path_and_sha(use, tmp_path):
    use("certified")
    f = tmp_path / "gru_tiny.onnx"
    f.write_bytes(b"not really onnx")
    r = certify.check(str(f))
    import hashlib

    assert r.model["sha256"] == hashlib.sha256(b"not really onnx").hexdigest()
    assert r.model["path"] == str(f) and r.verdict is Verdict.CERTIFIED


def test_bugs_propagate_from_the_api(use):
    use("crash")
    with pytest.raises(RuntimeError, match="boom"):
        certify.check(stubs.gru_net())


def _fake_loop(monkeypatch, checks, cex=None):
    mod = types.ModuleType("certify.loop")
    seen = {}

    def check_closed_loop(net, *, plant=None, loop=None, method="auto", solver=None, timeout=None):
        seen.update(plant=plant, loop=loop, method=method)
        return types.SimpleNamespace(checks=checks, description={"name": "boiler + PI"}, counterexample=cex,
                                     simulation={"u": [0.0, 0.5, 0.6]})

    mod.check_closed_loop = check_closed_loop
    monkeypatch.setitem(sys.modules, "certify.loop", mod)
    return seen


def test_closed_loop_requests_gas_of_the_loop(use, monkeypatch):
    use("certified")
    net_only = [stubs._check("diss.delta_iss", Property.DELTA_ISS, CheckStatus.PROVED)]
    seen = _fake_loop(monkeypatch, net_only)
    r = certify.check(stubs.elman_net(), plant="boiler", method="lmi")
    assert seen == {"plant": "boiler", "loop": None, "method": "lmi"}
    # the network's δISS says nothing about the loop's GAS
    assert r.subject == "loop" and r.verdict is Verdict.NOT_CERTIFIED and r.loop["plant"] == "boiler"
    _fake_loop(monkeypatch, net_only + [stubs._check("loop.lmi", Property.GAS, CheckStatus.PROVED)])
    r = certify.check(stubs.elman_net(), plant="boiler")
    assert r.verdict is Verdict.CERTIFIED and r.simulation["u"] == [0.0, 0.5, 0.6]


def test_closed_loop_unavailable_is_a_clear_invalid_input(use, monkeypatch):
    use("certified")
    monkeypatch.setitem(sys.modules, "certify.loop", None)  # makes `import certify.loop` fail
    r = certify.check(stubs.elman_net(), plant="boiler")
    assert r.verdict is Verdict.INVALID_INPUT and "not available" in r.reasons[0]


def test_api_docstrings_run(use):
    import doctest

    import certify.api

    assert doctest.testmod(certify.api).failed == 0


# --- the real pieces, when they are present -----------------------------------------------------------


def _have(*modules: str) -> bool:
    try:
        return all(importlib.util.find_spec(m) is not None for m in modules)
    except ModuleNotFoundError:
        return False


real = pytest.mark.skipif(not _have("certify.criteria.diss", "certify.falsify"), reason="criteria not merged yet")


@real
def test_real_contractive_elman_is_certified():
    net = stubs.elman_net(U=0.2)
    r = certify.check(net, method="diss", input_range=(-1.0, 1.0))
    assert r.verdict is Verdict.CERTIFIED, r.reasons


@real
def test_real_bistable_elman_is_never_certified():
    from certify.networks import ElmanLayer, Network

    # h = tanh(2h) has three fixed points for u = 0: not GAS, not δISS
    net = Network(layers=(ElmanLayer(W=[[0.1]], U=[[2.0]], b=[0.0]),))
    np.testing.assert_allclose(np.tanh(2 * 0.957504), 0.957504, atol=1e-5)
    for method in ("auto", "diss", "all"):
        r = certify.check(net, method=method, input_range=(-1.0, 1.0))
        assert r.verdict in (Verdict.UNSTABLE, Verdict.NOT_CERTIFIED), (method, r.reasons)
    assert certify.check(net).verdict is Verdict.UNSTABLE


def test_a_failing_counterexample_search_concludes_nothing(use, monkeypatch):
    use("unstable")

    def broken(net, cex, prop):
        from certify.errors import InvalidInputError

        raise InvalidInputError("witness does not fit")

    monkeypatch.setattr(sys.modules["certify.falsify"], "falsification_check", broken)
    r = certify.check(stubs.gru_net())
    assert r.verdict is Verdict.NOT_CERTIFIED
    assert any(c.name == "falsify" and c.status is CheckStatus.ERROR and "does not fit" in c.message for c in r.checks)


def test_progress_stages_are_reported(use):
    import io

    from certify.progress import Progress

    use("not_certified")
    seen: list[str] = []
    certify.check(stubs.elman_net(), progress=seen.append)
    assert seen == ["loading model", "closed-form δISS tests", "SNOF + LMI", "searching for a counterexample"]

    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    with Progress(total=2, stream=stream) as bar:
        assert bar.enabled
        bar.stage("m.onnx: SNOF + LMI")
        bar.advance()
    assert "m.onnx: SNOF + LMI" in stream.getvalue()
    with Progress(total=1, enabled=False, stream=Tty()) as quiet:
        quiet.stage("x")
    assert not quiet.enabled


def test_errors_after_loading_keep_the_model_summary(use):
    use("certified")
    r = certify.check(stubs.gru_net(), method="lmi")
    assert r.verdict is Verdict.INVALID_INPUT and r.model["architecture"] == "gru" and r.model["n_states"] == 2


def test_unknown_solver_is_invalid_input_even_without_an_lmi():
    import os

    zoo = os.path.join(os.path.dirname(__file__), os.pardir, "models_zoo", "boiler_lpgrnn_linear.onnx")
    report = certify.check(zoo, solver="nope")
    assert report.exit_code == 3 and "nope" in report.to_text()


def test_reports_and_networks_pickle_so_process_pools_can_run_check(tmp_path):
    import pickle
    from concurrent.futures import ProcessPoolExecutor

    from certify.networks import ElmanLayer, Network

    net = Network(layers=(ElmanLayer(W=[[0.0]], U=[[2.0]], b=[0.0]),))
    r = certify.check(net)
    back = pickle.loads(pickle.dumps(r))
    assert back.to_dict() == r.to_dict() and back.counterexample == r.counterexample
    with pytest.raises(TypeError):
        r.assumptions["x"] = 1  # still read-only
    with ProcessPoolExecutor(max_workers=2) as pool:
        verdicts = [rep.verdict for rep in pool.map(certify.check, [net, net])]
    assert verdicts == [Verdict.UNSTABLE, Verdict.UNSTABLE]
