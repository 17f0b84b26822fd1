"""Command-line conventions (issue: a CLI that fits habits), each pinned by a test."""

from __future__ import annotations

import io
import json
import random

import _fuzz_cases as F
import pytest

from certify.cli import find_config, main, normalize_argv, use_color
from certify.results import ExitCode

pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("conv")
    path = d / "ok.onnx"
    from onnx import numpy_helper

    m = F.fused_model("GRU", n_in=2, hidden=3, rng=random.Random(0))
    for init in m.graph.initializer:  # small weights: certified
        if init.name in ("W", "R"):
            init.CopyFrom(numpy_helper.from_array((numpy_helper.to_array(init) * 0.2).astype("float32"), init.name))
    path.write_bytes(m.SerializeToString())
    return str(path)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for var in ("NO_COLOR", "FORCE_COLOR", "TERM", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # no pyproject.toml above a pytest tmp folder


def test_format_from_the_output_extension(model, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["check", model, "-o", str(out)]) == ExitCode.CERTIFIED
    assert json.loads(out.read_text())["verdict"] == "certified"
    assert main(["check", model, "-o", str(tmp_path / "r.md")]) == 0
    assert (tmp_path / "r.md").read_text().startswith("###")
    # an explicit --format wins for a single -o; an unknown extension gets text
    assert main(["check", model, "--format", "json", "-o", str(tmp_path / "r.txt")]) == 0
    assert json.loads((tmp_path / "r.txt").read_text())["verdict"] == "certified"
    assert main(["check", model, "-o", str(tmp_path / "r.out")]) == 0
    assert (tmp_path / "r.out").read_text().startswith("certify ")


def test_quiet_silences_the_text_report_and_verbose_shows_stages(model, capsys):
    assert main(["check", model, "-q"]) == 0
    assert capsys.readouterr() == ("", "")
    assert main(["check", model, "--quiet", "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["verdict"] == "certified" and err == ""
    assert main(["check", model, "-v"]) == 0
    out, err = capsys.readouterr()
    assert "verdict: CERTIFIED" in out and "certify: loading" in err.replace("\r", "")


def test_quiet_still_says_why_a_model_cannot_be_checked(tmp_path, capsys):
    assert main(["check", str(tmp_path / "missing.onnx"), "-q"]) == ExitCode.INVALID_INPUT
    out, err = capsys.readouterr()
    assert out == "" and "model file not found" in err and err.count("\n") == 1


@pytest.mark.parametrize("env, mode, tty, expected", [
    ({}, "auto", True, True), ({}, "auto", False, False), ({"NO_COLOR": "1"}, "auto", True, False),
    ({"TERM": "dumb"}, "auto", True, False), ({"FORCE_COLOR": "1"}, "auto", False, True),
    ({"FORCE_COLOR": "0"}, "auto", False, False), ({"NO_COLOR": "1"}, "always", False, True),
    ({"FORCE_COLOR": "1"}, "never", True, False), ({"NO_COLOR": "1", "FORCE_COLOR": "1"}, "auto", True, False),
])
def test_colour_rules(env, mode, tty, expected):
    stream = io.StringIO()
    stream.isatty = lambda: tty  # type: ignore[method-assign]
    assert use_color(stream, mode, env) is expected


def test_color_flags_reach_the_report(model, capsys, monkeypatch):
    assert main(["check", model, "--color", "always"]) == 0
    assert "\x1b[" in capsys.readouterr().out
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert main(["check", model, "--color", "never"]) == 0
    assert "\x1b[" not in capsys.readouterr().out
    assert main(["check", model]) == 0
    assert "\x1b[" in capsys.readouterr().out
    monkeypatch.setenv("NO_COLOR", "1")
    assert main(["check", model]) == 0
    assert "\x1b[" not in capsys.readouterr().out


def test_negative_numbers_in_ranges(model, capsys):
    assert normalize_argv(["check", "m", "--input-range", "-.5:1"]) == ["check", "m", "--input-range=-.5:1"]
    assert main(["check", model, "--input-range", "-1:1", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["assumptions"]["input_range"]["low"] == [-1.0, -1.0]
    assert main(["check", model, "--input-range", "-0.5,-2:0.5,2", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["assumptions"]["input_range"]["low"] == [-0.5, -2.0]
    assert main(["check", model, "--input-range", "-1:-2"]) == ExitCode.USAGE_ERROR
    assert "LOW <= HIGH" in capsys.readouterr().err


@pytest.mark.parametrize("argv, code, hint", [
    (["check", "{m}", "--plant", "boilr"], ExitCode.INVALID_INPUT, "did you mean 'boiler'?"),
    (["check", "{m}", "--solver", "clarbel"], ExitCode.INVALID_INPUT, "did you mean 'clarabel'?"),
    (["check", "{m}", "--method", "dis"], ExitCode.USAGE_ERROR, "did you mean 'diss'?"),
    (["chek", "{m}"], ExitCode.USAGE_ERROR, "did you mean 'check'?"),
    (["check", "{m}", "--format", "sarf"], ExitCode.USAGE_ERROR, "did you mean 'sarif'?"),
])
def test_did_you_mean(model, capsys, argv, code, hint):
    assert main([a.replace("{m}", model) for a in argv]) == code
    assert hint in capsys.readouterr().err


def test_method_diss_with_an_uninstalled_solver_is_invalid_input_as_documented(model, capsys):
    from certify.sdp.solvers import REGISTRY, available_solvers

    missing = [s.name for s in REGISTRY if s.sdp and s.name not in available_solvers()]
    if not missing:
        pytest.skip("every known solver is installed")
    assert main(["check", model, "--method", "diss", "--solver", missing[0]]) == ExitCode.INVALID_INPUT
    err = capsys.readouterr().err
    assert "known but not installed" in err and "leave out --solver" in err


def test_plants_shows_signals_and_wiring(capsys):
    assert main(["plants"]) == 0
    out = capsys.readouterr().out
    assert "u:u1_fuel" in out and "y:p" in out and "wiring for --plant boiler" in out
    assert '[network] inputs = ["y:E", "u_prev:u1_fuel"' in out and "u_prev:NAME" in out
    assert main(["plants", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["wiring"]["network"]["inputs"][0] == "y:E"


def test_pyproject_defaults_and_precedence(model, tmp_path, monkeypatch, capsys):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.certify]\nmethod = "lmi"\n'
                                             'format = "json"\ninput-range = "-2:2"\n')
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    assert find_config()[1]["method"] == "lmi"
    # pyproject: --method lmi on a GRU is invalid input (the LMI does not apply to gated cells)
    assert main(["check", model]) == ExitCode.INVALID_INPUT
    report = json.loads(capsys.readouterr().out)
    assert report["method"] == "lmi" and report["assumptions"].get("input_range", {}) is not None
    # command line > pyproject
    assert main(["check", model, "--method", "diss"]) == ExitCode.CERTIFIED
    report = json.loads(capsys.readouterr().out)
    assert report["method"] == "diss" and report["assumptions"]["input_range"]["high"] == [2.0, 2.0]
    # --isolated: built-in defaults (auto, text)
    assert main(["check", model, "--isolated"]) == ExitCode.CERTIFIED
    assert capsys.readouterr().out.startswith("certify ")


def test_pyproject_errors_name_the_key(model, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for body, hint in (('methd = "diss"', "unknown key 'methd' (did you mean 'method'?)"),
                       ("jobs = \"2\"", "key 'jobs' must be a positive integer"),
                       ('method = "dis"', "did you mean 'diss'?")):
        (tmp_path / "pyproject.toml").write_text("[tool.certify]\n" + body + "\n")
        assert main(["check", model]) == ExitCode.USAGE_ERROR
        err = capsys.readouterr().err
        assert "pyproject.toml [tool.certify]" in err and hint in err
