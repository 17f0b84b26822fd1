"""Regression tests for hostile input outside the model importers (issue #12): outputs, loop/plant files, retrain.

Each test runs the real command line (``certify.cli.main``) or the loader it uses and checks the exit code,
the message (it names the field or the file) and that no input file changed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from certify.cli import main
from certify.errors import LoopSpecError
from certify.loop.plants import load_plant_file
from certify.loop.spec import load_loop_file, loop_from_mapping
from certify.results import ExitCode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _fuzz_cases as F  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture
def rnn(tmp_path) -> Path:
    p = tmp_path / "m.onnx"
    p.write_bytes(F.fused_model("RNN", n_in=1, hidden=2).SerializeToString())
    return p


def _loop(tmp_path: Path, body: dict, name: str = "l.toml") -> Path:
    p = tmp_path / name
    p.write_text(F.to_toml(body) if name.endswith(".toml") else json.dumps(body))
    return p


# ------------------------------------------------------------------------------------------------
# outputs never destroy inputs; outputs are atomic


@pytest.mark.parametrize("loop_format", ["toml", "json"])
@pytest.mark.parametrize("target", ["model", "sidecar", "loop", "plant", "hardlink"])
def test_output_that_is_an_input_is_refused_and_the_input_survives(tmp_path, rnn, target, loop_format, capsys):
    plant = tmp_path / "p.json"
    plant.write_text(json.dumps(F.BASE_PLANT))
    loop = _loop(tmp_path, {**F.BASE_LOOP, "plant": {"file": "p.json"}}, "l." + loop_format)
    sidecar = tmp_path / "m.onnx.certify.json"
    sidecar.write_text("{}")
    os.link(rnn, tmp_path / "hard.onnx")
    out = {"model": rnn, "sidecar": sidecar, "loop": loop, "plant": plant, "hardlink": tmp_path / "hard.onnx"}[target]
    before = {p: _sha(p) for p in (rnn, plant, loop, sidecar)}
    rc = main(["check", str(rnn), "--loop", str(loop), "--format", "json", "-o", str(out), "--quiet"])
    assert rc == ExitCode.INVALID_INPUT
    err = capsys.readouterr().err
    assert "refusing to write the output" in err and "Traceback" not in err
    assert {p: _sha(p) for p in before} == before


def test_output_is_written_atomically_and_keeps_its_mode(tmp_path, rnn):
    out = tmp_path / "report.json"
    out.write_text("old")
    os.chmod(out, 0o640)
    assert main(["check", str(rnn), "--format", "json", "-o", str(out), "--quiet"]) in (0, 1)
    assert json.loads(out.read_text())["model"]["path"] == str(rnn)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "report.json"]  # no temporary file left behind


def test_output_that_is_the_models_external_data_is_refused(tmp_path, capsys):
    import onnx

    model = F.fused_model("RNN", n_in=1, hidden=2)
    path = tmp_path / "m.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    weights = tmp_path / "weights.bin"
    before = _sha(weights)
    assert main(["check", str(path), "--format", "json", "-o", str(weights), "--quiet"]) == ExitCode.INVALID_INPUT
    assert "refusing to write the output" in capsys.readouterr().err and _sha(weights) == before


def test_output_through_a_symlink_keeps_the_link(tmp_path, rnn):
    real = tmp_path / "reports" / "r.json"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "latest.json"
    link.symlink_to(real)
    assert main(["check", str(rnn), "--format", "json", "-o", str(link), "--quiet"]) in (0, 1)
    assert link.is_symlink() and json.loads(real.read_text())["model"]["path"] == str(rnn)


def test_output_into_a_directory_or_missing_folder_is_exit_3(tmp_path, rnn, capsys):
    assert main(["check", str(rnn), "--format", "json", "-o", str(tmp_path), "--quiet"]) == ExitCode.INVALID_INPUT
    assert main(["check", str(rnn), "-o", str(tmp_path / "no" / "r.txt"), "--quiet"]) == ExitCode.INVALID_INPUT
    assert "cannot write the output file" in capsys.readouterr().err


def test_output_to_dev_null_still_works(rnn):
    assert main(["check", str(rnn), "--format", "json", "-o", os.devnull, "--quiet"]) in (0, 1)


# ------------------------------------------------------------------------------------------------
# loop and plant files: exact types, the field named


def _body(**changes) -> dict:
    body = json.loads(json.dumps(F.BASE_LOOP))
    for dotted, value in changes.items():
        *path, key = dotted.split(".")
        cur = body
        for p in path:
            cur = cur[p]
        cur[key] = value
    return body


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"plant.input_names": [1]}, r"\[plant\] input_names\[0\] must be a string, got the integer 1"),
        ({"scaling.input": "wide"}, r"\[scaling\] input must be a table, got the string 'wide'"),
        ({"scaling.input.net_low": "-1"}, r"\[scaling\] input.net_low must be a number, got the string '-1'"),
        ({"controller.kp": "0.01"}, r"\[controller\] kp must be a number, got the string '0.01'"),
        ({"controller.ki": True}, r"\[controller\] ki must be a number, got the boolean true"),
        ({"controller.reference": float("nan")}, r"\[controller\] reference must not be NaN"),
        ({"controller.kp": float("inf")}, r"\[controller\] kp must be finite"),
        ({"controller.kpp": 0.1}, r"unknown key 'kpp' \(did you mean 'kp'\?\) in \[controller\]"),
        ({"netwrok": {}}, r"unknown section 'netwrok' \(did you mean 'network'\?\)"),
        ({"network.output": -1}, r"\[network\] output must be ≥ 0"),
        ({"network.output": 0.0}, r"\[network\] output must be an integer, got the number 0.0"),
        ({"network.inputs": []}, r"\[network\] inputs must not be empty"),
        ({"controller.actuator": 1.5}, r"\[controller\] actuator must be a signal name \(string\) or a 0-based index"),
        ({"plant.A": [[0.5, float("nan")], [0.0, 0.3]]}, r"\[plant\] A contains NaN or Inf: entry \[0\]\[1\] is NaN"),
        ({"plant.A": [[0.5, 0.1], [0.0]]}, r"\[plant\] A is not a rectangular matrix"),
        ({"plant.Ts": 0}, r"\[plant\] Ts must be > 0"),
        ({"plant.continuous": "yes"}, r"\[plant\] continuous must be true or false"),
        ({"plant.B": [[1.0], [0.5], [2.0]]},
         r"B has shape \(3, 1\), expected \(2, \?\) \(incompatible dimensions of the B matrix: 3 rows but the number "
         r"of states \(rows of A\) is 2\)"),
        ({"plant.C": [[1.0, 0.0, 0.0]]}, r"C has shape \(1, 3\), expected \(\?, 2\).*3 columns but the number of states"),
        ({"name": 7}, r"name must be a string, got the integer 7"),
    ],
)
@pytest.mark.parametrize("fmt", ["toml", "json"])
def test_loop_file_fields_have_exact_types(tmp_path, changes, message, fmt):
    path = _loop(tmp_path, _body(**changes), "l." + fmt)
    with pytest.raises(LoopSpecError, match=message) as info:
        load_loop_file(path)
    assert str(path) in str(info.value)


def test_plant_file_given_as_an_integer_is_named(tmp_path):
    path = _loop(tmp_path, _body(plant={"file": 3}))
    with pytest.raises(LoopSpecError, match=r"\[plant\] file must be a string \(a path\), got the integer 3"):
        load_loop_file(path)


def test_cli_reports_bad_loop_field_as_exit_3(tmp_path, rnn, capsys):
    path = _loop(tmp_path, _body(**{"scaling.input.net_low": "-1"}))
    rc = main(["check", str(rnn), "--loop", str(path), "--format", "json"])
    out, err = capsys.readouterr()
    assert rc == ExitCode.INVALID_INPUT and "Traceback" not in out + err
    assert "net_low must be a number" in json.loads(out)["error"]["message"]


@pytest.mark.parametrize("fmt", ["json", "toml", "npz"])
def test_plant_files_are_checked_like_inline_plants(tmp_path, fmt):
    plant = dict(F.BASE_PLANT, input_names=[1])
    content, _ = F.plant_file_bytes(__import__("random").Random(1), plant, fmt) if fmt != "npz" else (None, None)
    p = tmp_path / ("p." + fmt)
    if fmt == "npz":
        np.savez(p, **{k: np.asarray(v) for k, v in dict(F.BASE_PLANT, Ts="fast").items()})
        msg = r"Ts must be a number, got the string 'fast'"
    else:
        p.write_bytes(content)
        msg = r"input_names\[0\] must be a string, got the integer 1"
    with pytest.raises(LoopSpecError, match=msg):
        load_plant_file(p)


def test_npz_plant_with_3000_declared_states_is_refused_before_loading(tmp_path, rnn, capsys):
    import random

    data, how = "", ""
    rng = random.Random(0)
    while how != "npz_declared_3000":  # the generator's hostile npz: header says 3000 x 3000, no data
        data, how = F.plant_file_bytes(rng, F.BASE_PLANT, "npz")
    (tmp_path / "p.npz").write_bytes(data)
    loop = _loop(tmp_path, _body(plant={"file": "p.npz"}))
    t0 = time.monotonic()
    rc = main(["check", str(rnn), "--loop", str(loop), "--quiet", "--timeout", "5"])
    err = capsys.readouterr().err  # -q: the one-line error on stderr
    assert rc == ExitCode.INVALID_INPUT and time.monotonic() - t0 < 10
    assert "3000 x 3000" in err and "--max-plant-states" in err
    # with a larger budget the file is read (and refused for what it is: a header without data)
    rc = main(["check", str(rnn), "--loop", str(loop), "--quiet", "--max-plant-states", "5000"])
    out = capsys.readouterr().err
    assert rc == ExitCode.INVALID_INPUT and "--max-plant-states" not in out and "cannot be read" in out


def test_state_budget_applies_to_text_plants_and_can_be_raised(tmp_path):
    body = _body()
    n = 6
    body["plant"]["A"] = (0.5 * np.eye(n)).tolist()
    body["plant"]["B"] = [[1.0]] * n
    body["plant"]["C"] = [[1.0] + [0.0] * (n - 1)]
    with pytest.raises(LoopSpecError, match=r"A is 6 x 6, i.e. 6 states; certify refuses plants larger than 5"):
        loop_from_mapping(body, max_states=5)
    assert loop_from_mapping(body, max_states=6).plant.n_states == n


def test_npz_object_arrays_are_never_unpickled(tmp_path):
    p = tmp_path / "p.npz"
    np.savez(p, A=np.array([{"x": 1}, 2], dtype=object), B=np.eye(1), C=np.eye(1), Ts=1.0)
    with pytest.raises(LoopSpecError, match="holds Python objects"):
        load_plant_file(p)


@pytest.mark.parametrize("kind", ["fifo", "devzero", "directory", "symlink_loop", "empty"])
@pytest.mark.parametrize("role", ["loop", "plant"])
def test_special_loop_and_plant_files_are_refused_without_blocking(tmp_path, kind, role):
    target = tmp_path / ("l.toml" if role == "loop" else "p.json")
    F._special(target, kind)
    if role == "plant":
        path = _loop(tmp_path, _body(plant={"file": "p.json"}))
    else:
        path = target
    t0 = time.monotonic()
    with pytest.raises(LoopSpecError) as info:
        load_loop_file(path)
    assert time.monotonic() - t0 < 5
    expected = {"fifo": "FIFO", "devzero": "character device", "directory": "directory",
                "symlink_loop": "symbolic links", "empty": "is empty"}[kind]
    assert expected in str(info.value)


@pytest.mark.parametrize("text, message", [
    (b"[plant]\nbuiltin = \"boiler\xff\"\n", "is not UTF-8 text"),
    (("a = " + "[" * 100000 + "]" * 100000).encode(), "nested too deeply|not valid TOML"),
])
def test_undecodable_or_deeply_nested_loop_files(tmp_path, text, message):
    p = tmp_path / "l.toml"
    p.write_bytes(text)
    with pytest.raises(LoopSpecError, match=message):
        load_loop_file(p)


def test_deeply_nested_json_loop_file_is_exit_3_not_5(tmp_path, rnn, capsys):
    p = tmp_path / "l.json"
    p.write_text("[" * 200000 + "]" * 200000)
    assert main(["check", str(rnn), "--loop", str(p), "--quiet"]) == ExitCode.INVALID_INPUT
    assert "nested too deeply" in capsys.readouterr().err


def test_loop_loader_honours_the_deadline(tmp_path):
    from certify.deadline import Deadline, DeadlineExceeded

    path = _loop(tmp_path, _body())
    with pytest.raises(DeadlineExceeded, match="reading the loop file"):
        load_loop_file(path, deadline=Deadline.after(0.0))


# ------------------------------------------------------------------------------------------------
# errors that bad input causes are exit 3, never "internal error"


@pytest.mark.parametrize("exc, message", [
    (MemoryError(), "more memory than is available"),
    (RecursionError("maximum recursion depth exceeded"), "nested too deeply"),
])
def test_memory_and_recursion_errors_are_invalid_input(monkeypatch, rnn, capsys, exc, message):
    import certify.api

    def boom(*a, **k):
        raise exc

    monkeypatch.setattr(certify.api, "check", boom)
    assert main(["check", str(rnn), "--format", "json", "--quiet"]) == ExitCode.INVALID_INPUT
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] == "invalid_input" and message in report["error"]["message"]


def test_internal_error_message_has_no_placeholder(monkeypatch, rnn, capsys):
    import certify.api

    monkeypatch.setattr(certify.api, "check", lambda *a, **k: 1 / 0)
    assert main(["check", str(rnn), "--quiet"]) == ExitCode.INTERNAL_ERROR
    out = capsys.readouterr().err
    assert "<repo>" not in out and "report it as a bug in certify" in out


_NO_TORCH = "import sys; sys.modules['torch'] = None; from certify.cli import main; raise SystemExit(main(sys.argv[1:]))"


@pytest.mark.parametrize("command", ["retrain", "check"])
def test_missing_torch_is_an_install_problem_exit_3(tmp_path, command):
    model = tmp_path / "m.pt"
    model.write_bytes(b"PK\x03\x04 not really a torch file")
    data = tmp_path / "d.npz"
    np.savez(data, u=np.zeros((100, 1)), y=np.zeros((100, 1)))
    argv = ["check", str(model), "--quiet"] if command == "check" else \
        ["retrain", str(ROOT / "models_zoo" / "gru_small.onnx"), "--data", str(data), "-o", str(tmp_path / "out")]
    proc = subprocess.run([sys.executable, "-c", _NO_TORCH, *argv], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=str(tmp_path))
    text = proc.stdout + proc.stderr
    assert proc.returncode == ExitCode.INVALID_INPUT, text
    assert "pip install 'certify[torch]'" in text and "Traceback" not in text and "<repo>" not in text


def test_special_files_through_the_real_command_in_a_subprocess(tmp_path):
    """`python -m certify` with a FIFO model, a FIFO loop file and /dev/zero data: exit 3 each, no hang."""
    os.mkfifo(tmp_path / "fifo.onnx")
    os.mkfifo(tmp_path / "loop.toml")
    model = tmp_path / "m.onnx"
    model.write_bytes(F.fused_model("RNN", n_in=1, hidden=2).SerializeToString())
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1")
    for argv in (["check", str(tmp_path / "fifo.onnx"), "--quiet"],
                 ["check", str(model), "--loop", str(tmp_path / "loop.toml"), "--quiet"],
                 ["retrain", str(model), "--data", "/dev/zero", "-o", str(tmp_path / "out")]):
        proc = subprocess.run([sys.executable, "-m", "certify", *argv], capture_output=True, text=True, timeout=60,
                              env=env, stdin=subprocess.DEVNULL)
        text = proc.stdout + proc.stderr
        assert proc.returncode == ExitCode.INVALID_INPUT and "Traceback" not in text, text
        assert "FIFO" in text or "character device" in text, text


# ------------------------------------------------------------------------------------------------
# retrain input validation


@pytest.mark.parametrize("extra, message", [
    (["--seq-len", "0"], "--seq-len must be at least 1, got 0"),
    (["--batch-size", "-2"], "--batch-size must be at least 1"),
    (["--lr", "inf"], "--lr must be a finite positive number"),
    (["--washout", "-1"], "--washout must be at least 0"),
])
def test_retrain_option_values(tmp_path, rnn, capsys, extra, message):
    data = tmp_path / "d.npz"
    np.savez(data, u=np.zeros((100, 1)), y=np.zeros((100, 1)))
    rc = main(["retrain", str(rnn), "--data", str(data), "-o", str(tmp_path / "out"), *extra])
    assert rc == ExitCode.INVALID_INPUT and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_retrain_output_that_is_a_file_or_holds_the_model(tmp_path, capsys):
    model = tmp_path / "model.onnx"
    model.write_bytes(F.fused_model("RNN", n_in=1, hidden=2).SerializeToString())
    data = tmp_path / "d.npz"
    np.savez(data, u=np.zeros((100, 1)), y=np.zeros((100, 1)))
    before = _sha(model)
    assert main(["retrain", str(model), "--data", str(data), "-o", str(data)]) == ExitCode.INVALID_INPUT
    assert "exists and is not a directory" in capsys.readouterr().err
    assert main(["retrain", str(model), "--data", str(data), "-o", str(tmp_path)]) == ExitCode.INVALID_INPUT
    assert "refusing to write" in capsys.readouterr().err
    assert _sha(model) == before


@pytest.mark.parametrize("arrays, message", [
    ({"u": np.full((100, 1), np.nan), "y": np.zeros((100, 1))}, "finite"),
    ({"u": np.zeros((100, 1, 2)), "y": np.zeros((100, 1))}, "matrix"),
    ({"u": np.array(["a"] * 100), "y": np.zeros((100, 1))}, "real numbers"),
    ({"u": np.zeros((100, 1)) + 1j, "y": np.zeros((100, 1))}, "real numbers"),
])
def test_retrain_bad_data_arrays(tmp_path, arrays, message):
    torch = pytest.importorskip("torch")  # noqa: F841
    from certify.errors import InvalidInputError
    from certify.train.retrain import load_data

    p = tmp_path / "d.npz"
    np.savez(p, **arrays)
    with pytest.raises(InvalidInputError, match=message):
        load_data(str(p), 1, 1)


@pytest.mark.parametrize("kind", ["fifo", "devzero", "directory"])
def test_retrain_data_special_files(tmp_path, kind):
    from certify.errors import InvalidInputError
    from certify.train.retrain import load_data

    p = tmp_path / "d.npz"
    F._special(p, kind)
    with pytest.raises(InvalidInputError, match="not a regular file"):
        load_data(str(p), 1, 1)


def test_fuzz_helpers_make_valid_npz():
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in F.BASE_PLANT.items()})
    assert buf.getvalue()[:2] == b"PK"
