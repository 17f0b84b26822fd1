"""The ``certify`` command line, in process: exit codes, formats, stdout/stderr split, sub-commands."""

from __future__ import annotations

import json

import jsonschema
import pytest
import test_cli_stubs as stubs
from hypothesis import given
from hypothesis import strategies as st

from certify.cli import main, parse_input_range
from certify.report import schema
from certify.results import ExitCode


@pytest.fixture
def model(tmp_path):
    def make(name: str = "gru_tiny.onnx") -> str:
        path = tmp_path / name
        path.write_bytes(b"stub model " + name.encode())
        return str(path)

    return make


@pytest.fixture
def use(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    return lambda scenario: stubs.install(scenario, monkeypatch.setitem)


@pytest.mark.parametrize(
    ("scenario", "code"),
    [("certified", ExitCode.CERTIFIED), ("not_certified", ExitCode.NOT_CERTIFIED), ("unstable", ExitCode.UNSTABLE),
     ("crash", ExitCode.INTERNAL_ERROR)],
)
def test_exit_codes_from_verdicts(use, model, capsys, scenario, code):
    use(scenario)
    assert main(["check", model(), "--format", "json"]) == code
    out, err = capsys.readouterr()
    data = json.loads(out)
    jsonschema.validate(data, schema())
    assert data["exit_code"] == int(code)
    assert data["verdict"].upper() in err  # human summary on stderr
    assert "Traceback" not in err


def test_usage_errors_exit_2(capsys):
    assert main([]) == ExitCode.USAGE_ERROR
    assert main(["check"]) == ExitCode.USAGE_ERROR
    assert main(["check", "m.onnx", "--method", "magic"]) == ExitCode.USAGE_ERROR
    assert main(["check", "m.onnx", "--plant", "boiler", "--loop", "l.toml"]) == ExitCode.USAGE_ERROR
    assert main(["check", "m.onnx", "--input-range", "1:0"]) == ExitCode.USAGE_ERROR
    assert main(["check", "m.onnx", "--timeout", "-3"]) == ExitCode.USAGE_ERROR
    assert main(["frobnicate"]) == ExitCode.USAGE_ERROR
    assert "usage:" in capsys.readouterr().err


def test_missing_model_exits_3_with_a_json_report(tmp_path, capsys):
    missing = str(tmp_path / "nope.onnx")
    assert main(["check", missing, "--format", "json", "--quiet"]) == ExitCode.INVALID_INPUT
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert data["verdict"] == "invalid_input" and missing in data["error"]["message"] and err == ""


def test_internal_error_is_short_unless_debug(use, model, capsys):
    use("crash")
    assert main(["check", model()]) == ExitCode.INTERNAL_ERROR
    out, err = capsys.readouterr()
    assert "boom in check_diss" in out and "report it as a bug" in out and "<repo>" not in out and "Traceback" not in out + err
    assert main(["check", model(), "--debug", "--quiet"]) == ExitCode.INTERNAL_ERROR
    assert "Traceback" in capsys.readouterr().err


def test_several_models_worst_verdict_and_json_array(use, model, tmp_path, capsys):
    use("certified")
    out_file = tmp_path / "r.json"
    code = main(["check", model("gru_a.onnx"), str(tmp_path / "missing.onnx"), model("gru_b.onnx"),
                 "--format", "json", "-o", str(out_file)])
    assert code == ExitCode.INVALID_INPUT
    data = json.loads(out_file.read_text())
    jsonschema.validate(data, schema())
    assert [d["verdict"] for d in data] == ["certified", "invalid_input", "certified"]
    out, err = capsys.readouterr()
    assert out == "" and err.count("verdict:") == 3


@pytest.mark.parametrize("fmt", ["text", "json", "markdown", "html"])
@pytest.mark.parametrize("scenario", ["certified", "not_certified", "unstable"])
def test_every_format_to_file(use, model, tmp_path, capsys, fmt, scenario):
    use(scenario)
    target = tmp_path / f"out.{fmt}"
    main(["check", model(), "--format", fmt, "-o", str(target), "--quiet"])
    text = target.read_text(encoding="utf-8")
    assert capsys.readouterr() == ("", "")
    assert (scenario.upper() if fmt == "text" else scenario) in text
    for name in ("diss.delta_iss", "diss.delta_iss.layer0"):
        assert name in text
    if scenario == "unstable":
        assert "multiple_equilibria" in text
    if fmt == "html":
        assert text.startswith("<!DOCTYPE html>") and "<svg" in text


def test_text_format_goes_to_stdout_without_a_duplicate_on_stderr(use, model, capsys):
    use("certified")
    assert main(["check", model()]) == 0
    out, err = capsys.readouterr()
    assert "CERTIFIED" in out and err == "" and "\x1b[" not in out


def test_unwritable_output_is_invalid_input(use, model, tmp_path, capsys):
    use("certified")
    assert main(["check", model(), "-o", str(tmp_path / "no" / "dir" / "r.json")]) == ExitCode.INVALID_INPUT
    assert "cannot write" in capsys.readouterr().err


def test_method_solver_timeout_and_input_range_reach_the_report(use, model, capsys):
    use("lmi")
    code = main(["check", model("elman.onnx"), "--method", "all", "--solver", "SCS", "--timeout", "5",
                 "--input-range=-2:2", "--format", "json", "--quiet"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["method"] == "all" and data["solver"] == "SCS"
    assert data["assumptions"]["input_range"] == {"low": [-2.0, -2.0], "high": [2.0, 2.0]}
    assert data["assumptions"]["input_range_source"] == "command line"
    assert data["assumptions"]["timeout_seconds"] == 5.0
    assert next(c for c in data["checks"] if c["name"] == "lmi")["solver"] == "SCS"


def test_lmi_on_gru_is_invalid_input(use, model, capsys):
    use("certified")
    assert main(["check", model("gru.onnx"), "--method", "lmi", "--format", "markdown"]) == ExitCode.INVALID_INPUT
    assert "--method diss" in capsys.readouterr().out


@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=4), st.floats(0, 10))
def test_input_range_parser_round_trips(low, width):
    high = [v + width for v in low]
    text = ",".join(repr(v) for v in low) + ":" + ",".join(repr(v) for v in high)
    assert parse_input_range(text) == (low, high)


@pytest.mark.parametrize("bad", ["", "1", "a:b", "0:1:2", "0,1:1", "2:1"])
def test_input_range_parser_rejects(bad):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        parse_input_range(bad)


def test_help_and_version(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for code in range(6):
        assert f"\n  {code}  " in out
    assert main(["check", "--help"]) == 0 and "invalid_input" in capsys.readouterr().out
    from certify import __version__

    assert main(["--version"]) == 0 and capsys.readouterr().out.strip() == f"certify {__version__}"


def test_inspect(use, model, capsys):
    use("certified")
    path = model("gru_tiny.onnx")
    assert main(["inspect", path]) == 0
    out = capsys.readouterr().out
    assert "architecture: gru" in out and "reset_after=True" in out and "unknown" in out
    assert main(["inspect", path, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["architecture"] == "gru" and data["n_params"] == 3 * 2 + 3 * 4 + 4 * 2 + 3 and len(data["sha256"]) == 64


def test_inspect_missing_and_crash(use, tmp_path, model, capsys, monkeypatch):
    assert main(["inspect", str(tmp_path / "none.onnx")]) == ExitCode.INVALID_INPUT
    assert "not found" in capsys.readouterr().err
    use("certified")
    import sys

    monkeypatch.setattr(sys.modules["certify.importers"], "load_model", lambda *a, **k: 1 / 0)
    assert main(["inspect", model()]) == ExitCode.INTERNAL_ERROR
    err = capsys.readouterr().err
    assert "ZeroDivisionError" in err and "Traceback" not in err


def test_plants(capsys, monkeypatch):
    import sys
    import types

    fake = types.ModuleType("certify.loop.plants")
    fake.list_plants = lambda: [{"name": "boiler", "summary": "Bell & Åström boiler", "n_states": 3, "A": [[1]]}]
    monkeypatch.setitem(sys.modules, "certify.loop.plants", fake)
    assert main(["plants"]) == 0
    out = capsys.readouterr().out
    assert "boiler" in out and "n_states=3" in out
    assert main(["plants", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["name"] == "boiler"
    monkeypatch.setitem(sys.modules, "certify.loop.plants", None)
    assert main(["plants"]) == ExitCode.INVALID_INPUT
    assert "not available" in capsys.readouterr().err


def test_progress_is_silent_off_a_tty(use, model, capsys):
    use("certified")
    main(["check", model(), "--format", "json"])
    assert "\r" not in capsys.readouterr().err
