"""The CI recipes in examples/ci/ parse, install certify itself (not the user's project), and their
certify commands work on a temporary repository with a certified and an unstable model."""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import subprocess
import sys
from pathlib import Path

import _fuzz_cases as F
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CI = ROOT / "examples" / "ci"

pytest.importorskip("onnx")


def _load(path: Path):
    """The recipe as data (PyYAML when installed), else the commands found by a line scan."""
    text = path.read_text()
    try:
        import yaml
    except ImportError:
        return None, text
    return yaml.safe_load(text), text


def _commands(data, text: str) -> list[str]:
    """Every shell command of a recipe: GitHub `run:`, GitLab `script:` items, pre-commit `entry:`."""
    if data is None:
        found = re.findall(r"^\s*(?:-\s+|run:\s+|entry:\s+)(.*(?:certify|pip install).*)$", text, re.M)
        return [c.strip() for c in found]
    out: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("run", "entry") and isinstance(value, str):
                    out.append(value.strip())
                elif key == "script" and isinstance(value, list):
                    out.extend(str(v).strip() for v in value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(data)
    return out


def _model(scale: float) -> bytes:
    from onnx import numpy_helper

    model = F.fused_model("GRU", n_in=2, hidden=3, rng=random.Random(0))
    for init in model.graph.initializer:
        if init.name in ("W", "R"):
            init.CopyFrom(numpy_helper.from_array((numpy_helper.to_array(init) * scale).astype(np.float32), init.name))
    return model.SerializeToString()


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    d = tmp_path_factory.mktemp("repo")
    (d / "models" / "sub").mkdir(parents=True)
    (d / "models" / "ok.onnx").write_bytes(_model(0.2))
    (d / "models" / "sub" / "big.onnx").write_bytes(_model(8.0))
    return d


def _run(command: str, cwd: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PATH=str(Path(sys.executable).parent) + os.pathsep
               + os.environ.get("PATH", ""), PYTHONPATH=str(ROOT), **(extra_env or {}))
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=240)


@pytest.mark.parametrize("name", ["github-actions.yml", "gitlab-ci.yml", "pre-commit-config.yaml"])
def test_recipes_install_certify_itself(name):
    data, text = _load(CI / name)
    commands = _commands(data, text)
    assert any(c.startswith("certify check") for c in commands), commands
    installs = [c for c in commands if "pip install" in c]
    assert all("-e ." not in c and "pip install ." not in c.replace("./.", "") for c in installs), installs
    if name != "pre-commit-config.yaml":
        assert installs and all(re.search(r"pip install (\./\.certify-src|vendor/certify-\*\.whl)", c)
                                for c in installs), installs
    else:
        hook = data["repos"][0]["hooks"][0] if data else None
        if hook:
            assert hook["language"] == "system" and hook["pass_filenames"] is True
            assert re.search(hook["files"], "models/a.onnx") and not re.search(hook["files"], "README.md")


def test_github_recipe_runs(repo, tmp_path):
    data, text = _load(CI / "github-actions.yml")
    (command,) = [c for c in _commands(data, text) if c.startswith("certify check")]
    summary = tmp_path / "summary.md"
    p = _run(command, repo, {"GITHUB_STEP_SUMMARY": str(summary)})
    assert p.returncode == 4, p.stderr  # the unstable model fails the gate
    assert "::error file=models/sub/big.onnx" in p.stdout and "::notice file=models/ok.onnx" in p.stdout
    assert json.loads((repo / "certify.sarif").read_text())["version"] == "2.1.0"
    assert "<testsuites" in (repo / "certify-junit.xml").read_text()
    assert len(json.loads((repo / "certify.json").read_text())) == 2
    assert "2 models" in summary.read_text()
    again = _run(command, repo, {"GITHUB_STEP_SUMMARY": str(summary)})  # the cache answers the second run
    assert again.returncode == 4 and "2 from the cache" in again.stderr


def test_gitlab_recipe_runs(repo):
    data, text = _load(CI / "gitlab-ci.yml")
    (command,) = [c for c in _commands(data, text) if c.startswith("certify check")]
    p = _run(command, repo)
    assert p.returncode == 4, p.stderr
    issues = json.loads((repo / "gl-code-quality-report.json").read_text())
    assert [i["location"]["path"] for i in issues] == ["models/sub/big.onnx"]
    if data:
        reports = data["certify"]["artifacts"]["reports"]
        assert (repo / reports["junit"]).is_file() and (repo / reports["codequality"]).is_file()


def test_pre_commit_hook_runs_on_staged_files(repo):
    data, text = _load(CI / "pre-commit-config.yaml")
    (entry,) = [c for c in _commands(data, text) if c.startswith("certify check")]
    ok = _run(entry + " " + shlex.quote("models/ok.onnx"), repo)
    assert ok.returncode == 0 and ok.stdout == "" and ok.stderr == ""
    bad = _run(entry + " models/ok.onnx models/sub/big.onnx", repo)
    assert bad.returncode == 4
