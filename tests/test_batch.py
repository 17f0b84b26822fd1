"""Batch checks: folders, globs and manifests of mixed models, worker isolation, fail-fast, the result cache."""

from __future__ import annotations

import json
import os
import random
import signal
import time

import _fuzz_cases as F
import numpy as np
import pytest

from certify.batch import ResultCache, cache_key, expand, read_manifest, run_batch
from certify.cli import main
from certify.errors import InvalidInputError
from certify.request import CheckRequest
from certify.results import ExitCode

pytest.importorskip("onnx")

EXPECTED = {"ok.onnx": "certified", "mid.onnx": "not_certified", "big.onnx": "unstable", "junk.onnx": "invalid_input"}


def _gru(scale: float, seed: int = 0):
    """A small fused ONNX GRU (input range [-1, 1]) with its weights scaled: 0.2 certifies, 1.5 is
    inconclusive, 8 has several equilibria (unstable)."""
    from onnx import numpy_helper

    model = F.fused_model("GRU", n_in=2, hidden=3, rng=random.Random(seed))
    for init in model.graph.initializer:
        if init.name in ("W", "R"):
            scaled = (numpy_helper.to_array(init) * scale).astype(np.float32)
            init.CopyFrom(numpy_helper.from_array(scaled, init.name))
    return model


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mixed")
    (folder / "sub").mkdir()
    (folder / "ok.onnx").write_bytes(_gru(0.2).SerializeToString())
    (folder / "sub" / "mid.onnx").write_bytes(_gru(1.5).SerializeToString())
    (folder / "sub" / "big.onnx").write_bytes(_gru(8.0).SerializeToString())
    (folder / "junk.onnx").write_bytes(b"not a model")
    (folder / "notes.txt").write_text("not a model either")
    (folder / "models.toml").write_text(
        '[[model]]\npath = "ok.onnx"\nmethod = "diss"\ninput_range = "-1:1"\n\n'
        '[[model]]\nmodel = "sub/mid.onnx"\n\n[[model]]\nmodel = "sub/big.onnx"\ntimeout = 60\n\n'
        '[[model]]\nmodel = "junk.onnx"\n')
    (folder / "models.csv").write_text("model,method,input_range\nok.onnx,diss,-1:1\nsub/mid.onnx,,\n"
                                       "sub/big.onnx,auto,\njunk.onnx,,\n")
    return folder


def _verdicts(out: str) -> dict[str, str]:
    data = json.loads(out)
    return {os.path.basename(r["model"]["path"]): r["verdict"] for r in data}


@pytest.mark.parametrize("jobs", ["1", "2"])
@pytest.mark.parametrize("kind", ["folder", "glob", "toml", "csv"])
def test_mixed_models_give_per_model_verdicts_and_the_worst_exit_code(mixed, capsys, kind, jobs):
    spec = {"folder": str(mixed), "glob": str(mixed / "**" / "*.onnx"), "toml": str(mixed / "models.toml"),
            "csv": str(mixed / "models.csv")}[kind]
    rc = main(["check", spec, "--jobs", jobs, "--format", "json", "--isolated"])
    out, err = capsys.readouterr()
    assert _verdicts(out) == EXPECTED
    assert rc == ExitCode.INVALID_INPUT  # worst of certified, not_certified, unstable, invalid_input
    assert "4 models: 1 certified, 1 invalid_input, 1 not_certified, 1 unstable" in err


def test_manifest_errors_name_the_row_and_the_field(tmp_path):
    m = tmp_path / "m.toml"
    for body, expected in (
        ('[[model]]\nmodel = "a.onnx"\nmethod = "dis"\n', "m.toml row 1, field 'method'.*did you mean 'diss'"),
        ('[[model]]\nmodel = "a.onnx"\n[[model]]\nmodel = 3\n', "m.toml row 2, field 'model'"),
        ('[[model]]\nmodel = "a.onnx"\ntimeout = "10"\n', "field 'timeout': expected a positive number"),
        ('[[model]]\nmodel = "a.onnx"\ninput_range = [1, -1]\n', "field 'input_range'"),
        ('[[model]]\nmodel = "a.onnx"\nplant = "boilr"\n', "field 'plant'.*did you mean 'boiler'"),
        ('[[model]]\nmodel = "a.onnx"\nplant = "boiler"\nloop = "l.toml"\n', "field 'loop'.*not both"),
        ('[[modle]]\nmodel = "a.onnx"\n', "unknown top-level key 'modle'"),
    ):
        m.write_text(body)
        with pytest.raises(InvalidInputError, match=expected):
            read_manifest(str(m))
    c = tmp_path / "m.csv"
    c.write_text("model,timeout\na.onnx,soon\n")
    with pytest.raises(InvalidInputError, match="m.csv row 1, field 'timeout'"):
        read_manifest(str(c))
    assert main(["check", str(c), "--isolated"]) == ExitCode.INVALID_INPUT


def test_an_empty_folder_or_glob_is_invalid_input(tmp_path):
    with pytest.raises(InvalidInputError, match="holds no model"):
        expand([str(tmp_path)])
    with pytest.raises(InvalidInputError, match="no model matches"):
        expand([str(tmp_path / "*.onnx")])


def _huge_graph():
    """A GRU whose graph also asks for a 2^40-element constant (the importer's element budget refuses it)."""
    from onnx import TensorProto, helper, numpy_helper

    model = _gru(0.2)
    g = model.graph
    g.initializer.append(numpy_helper.from_array(np.array([1 << 20, 1 << 20], dtype=np.int64), "huge_shape"))
    g.node.append(helper.make_node("ConstantOfShape", ["huge_shape"], ["huge"],
                                   value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])))
    g.node.append(helper.make_node("ReduceSum", ["huge"], ["hs"], keepdims=0))
    g.output.append(helper.make_tensor_value_info("hs", TensorProto.FLOAT, []))
    return model


def test_a_crashing_a_hanging_and_a_fifo_model_are_isolated(tmp_path, monkeypatch, capsys):
    import certify.api
    import certify.batch.runner as runner

    real = certify.api.check

    def fake(model, *a, **k):
        name = os.path.basename(str(model))
        if name.startswith("crash"):
            os.kill(os.getpid(), signal.SIGSEGV)
        if name.startswith("hang"):
            time.sleep(120)
        return real(model, *a, **k)

    monkeypatch.setattr(certify.api, "check", fake)  # forked workers inherit it
    monkeypatch.setattr(runner, "KILL_GRACE_S", 0.5)
    ok = _gru(0.2).SerializeToString()
    for name in ("crash.onnx", "hang.onnx", "ok.onnx"):
        (tmp_path / name).write_bytes(ok)
    os.mkfifo(tmp_path / "fifo.onnx")
    (tmp_path / "huge.onnx").write_bytes(_huge_graph().SerializeToString())
    rc = main(["check", str(tmp_path), "--jobs", "2", "--timeout", "1", "--format", "json", "--isolated"])
    out, err = capsys.readouterr()
    assert out, (rc, err)
    verdicts = _verdicts(out)
    assert verdicts == {"crash.onnx": "internal_error", "hang.onnx": "not_certified", "ok.onnx": "certified",
                        "fifo.onnx": "invalid_input", "huge.onnx": "invalid_input"}
    reports = {os.path.basename(r["model"]["path"]): r for r in json.loads(out)}
    assert "signal 11" in reports["crash.onnx"]["error"]["message"]
    assert "worker process was killed" in json.dumps(reports["hang.onnx"]["checks"])
    assert "FIFO" in reports["fifo.onnx"]["error"]["message"]
    assert "budget" in reports["huge.onnx"]["error"]["message"]
    assert rc == ExitCode.INTERNAL_ERROR


def test_fail_fast_stops_after_the_first_model_that_is_not_certified(mixed, capsys):
    rc = main(["check", str(mixed / "junk.onnx"), str(mixed / "ok.onnx"), str(mixed / "sub"), "--jobs", "1",
               "--fail-fast", "--format", "json", "--isolated"])
    out, err = capsys.readouterr()
    assert rc == ExitCode.INVALID_INPUT and json.loads(out)["verdict"] == "invalid_input"
    assert "3 not checked (--fail-fast)" in err


def _external(folder, scale: float) -> str:
    import onnx

    path = str(folder / "ext.onnx")
    onnx.save_model(_gru(scale), path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="ext.onnx.data", size_threshold=0)
    return path


def test_cache_skips_unchanged_models_and_rechecks_changed_external_data(tmp_path):
    model = _external(tmp_path, 0.2)
    other = tmp_path / "ok.onnx"
    other.write_bytes(_gru(0.2, seed=1).SerializeToString())
    cache = str(tmp_path / "cache")
    requests = [CheckRequest(model), CheckRequest(str(other))]
    first = run_batch(requests, jobs=1, cache_dir=cache)
    assert [o.how for o in first] == ["checked", "checked"]
    assert [o.report.verdict.value for o in first] == ["certified", "certified"]
    second = run_batch(requests, jobs=1, cache_dir=cache)
    assert [o.how for o in second] == ["cached", "cached"]
    assert second[0].report.to_dict() == first[0].report.to_dict()
    # other settings, another key
    assert cache_key(CheckRequest(model, method="diss")) != cache_key(requests[0])
    # the weights in ext.onnx.data change: that model is checked again, the other one is not
    key = cache_key(requests[0])
    _external(tmp_path, 8.0)
    assert cache_key(requests[0]) != key
    third = run_batch(requests, jobs=1, cache_dir=cache)
    assert [o.how for o in third] == ["checked", "cached"]
    assert third[0].report.verdict.value == "unstable"


def test_cache_through_the_command_line_and_damaged_entries(tmp_path, capsys):
    model = tmp_path / "ok.onnx"
    model.write_bytes(_gru(0.2).SerializeToString())
    cache = tmp_path / "c"
    args = ["check", str(model), str(tmp_path / "missing.onnx"), "--cache", str(cache), "--isolated", "-o",
            str(tmp_path / "r.json")]
    assert main(args) == ExitCode.INVALID_INPUT
    capsys.readouterr()
    for entry in cache.rglob("*.json"):
        entry.write_text("{damaged")
    assert main(args) == ExitCode.INVALID_INPUT
    assert "from the cache" not in capsys.readouterr().err
    assert main(args) == ExitCode.INVALID_INPUT
    assert "1 from the cache" in capsys.readouterr().err  # a missing file has no key: never cached
    assert ResultCache(str(cache)).get("0" * 64) is None


def _same_json_as_local(mixed, capsys, engine: str) -> None:
    args = ["check", str(mixed / "ok.onnx"), str(mixed / "junk.onnx"), "--format", "json", "--isolated"]
    assert main(args + ["--jobs", "1"]) == ExitCode.INVALID_INPUT
    local = json.loads(capsys.readouterr().out)
    assert main(args + ["--engine", engine, "--jobs", "2"]) == ExitCode.INVALID_INPUT
    remote = json.loads(capsys.readouterr().out)
    strip = ("created", "timings", "seconds")

    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items() if k not in strip}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    assert clean(remote) == clean(local)


def test_dask_local_cluster_gives_the_same_json_as_the_local_run(mixed, capsys):
    pytest.importorskip("dask.distributed")
    _same_json_as_local(mixed, capsys, "dask")


def test_ray_local_cluster_gives_the_same_json_as_the_local_run(mixed, capsys):
    pytest.importorskip("ray")
    _same_json_as_local(mixed, capsys, "ray")


def test_a_missing_engine_is_exit_3_with_the_install_command(mixed, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    for engine in ("ray", "dask"):
        assert main(["check", str(mixed / "ok.onnx"), "--engine", engine, "--isolated"]) == ExitCode.INVALID_INPUT
        err = capsys.readouterr().err
        assert f"pip install '{'dask[distributed]' if engine == 'dask' else 'ray'}'" in err and "certify[" in err


def test_worker_reports_keep_their_certificate(tmp_path, capsys):
    """Reports come back from worker processes whole: `--certificate` works with --jobs 2."""
    from pathlib import Path

    zoo = Path(__file__).resolve().parents[1] / "models_zoo"
    cert = tmp_path / "cert.json"
    rc = main(["check", str(zoo / "boiler_lpgrnn_linear.onnx"), str(zoo / "quadtank_lstm_diss.onnx"), "--jobs", "2",
               "--method", "lmi", "--certificate", str(cert), "-q", "--isolated"])
    assert rc == ExitCode.INVALID_INPUT  # the LMI does not apply to the LSTM
    data = json.loads(cert.read_text())
    assert any(isinstance(c, dict) and c for c in (data if isinstance(data, list) else [data]))
