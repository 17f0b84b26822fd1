"""``python -m certify`` as a separate process: every exit code, stdout/stderr split, fast start-up imports.

The verdicts that need the numerical pieces are driven by the stubs of ``test_cli_stubs`` through a
``sitecustomize.py`` on ``PYTHONPATH`` (the command line itself is the real one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import test_cli_stubs as stubs

from certify.results import ExitCode

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("site")
    stubs.write_sitecustomize(folder)
    model = folder / "gru_tiny.onnx"
    model.write_bytes(b"stub")
    return folder


def run(site: Path, *args: str, scenario: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CERTIFY_TEST_SCENARIO", "NO_COLOR")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO)] + ([env["PYTHONPATH"]] if "PYTHONPATH" in env else []))
    if scenario:
        env["CERTIFY_TEST_SCENARIO"] = scenario
    return subprocess.run([sys.executable, "-m", "certify", *args], capture_output=True, text=True, env=env,
                          cwd=site, timeout=120)


@pytest.mark.parametrize(
    ("scenario", "code"),
    [("certified", ExitCode.CERTIFIED), ("not_certified", ExitCode.NOT_CERTIFIED), ("unstable", ExitCode.UNSTABLE),
     ("crash", ExitCode.INTERNAL_ERROR)],
)
def test_exit_codes_of_verdicts(site, scenario, code):
    p = run(site, "check", "gru_tiny.onnx", "--format", "json", scenario=scenario)
    assert p.returncode == code, p.stderr
    data = json.loads(p.stdout)
    assert data["exit_code"] == int(code) and data["model"]["path"] == "gru_tiny.onnx"
    assert "verdict:" in p.stderr and "Traceback" not in p.stderr
    assert "\x1b[" not in p.stderr  # stderr is a pipe: no colour


def test_usage_error_and_invalid_input(site):
    p = run(site, "check", "--method", "nope", "m.onnx")
    assert p.returncode == ExitCode.USAGE_ERROR and "usage:" in p.stderr and p.stdout == ""
    p = run(site, "check", "missing.onnx", "--quiet", "--format", "json")
    assert p.returncode == ExitCode.INVALID_INPUT and p.stderr == ""
    assert json.loads(p.stdout)["verdict"] == "invalid_input"


def test_help_and_version_import_no_numerics(site):
    for args in (["--help"], ["--version"], ["check", "--help"]):
        env_args = ("-X", "importtime", "-m", "certify", *args)
        env = dict(os.environ, PYTHONPATH=str(REPO))
        p = subprocess.run([sys.executable, *env_args], capture_output=True, text=True, env=env, cwd=site, timeout=60)
        assert p.returncode == 0
        imported = {line.split("|")[-1].strip() for line in p.stderr.splitlines() if "|" in line}
        for heavy in ("numpy", "scipy", "cvxpy", "onnx", "torch", "matplotlib", "tqdm"):
            assert heavy not in imported, (args, heavy)
    assert "exit codes:" in run(site, "--help").stdout
