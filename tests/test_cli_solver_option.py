"""--solver-option KEY=VALUE reaches the conic solver through the request."""

from __future__ import annotations

import json

import pytest

from certify.cli import main, parse_solver_option


def test_parse_solver_option_converts_values():
    assert parse_solver_option("max_iters=5000") == ("max_iters", 5000)
    assert parse_solver_option("eps_abs=1e-7") == ("eps_abs", 1e-7)
    assert parse_solver_option("verbose=TRUE") == ("verbose", True)
    assert parse_solver_option("mode=direct") == ("mode", "direct")
    import argparse

    for bad in ("nonsense", "=3", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_solver_option(bad)


def test_solver_options_reach_the_lmi(tmp_path, monkeypatch):
    seen = {}
    import certify.criteria.lmi as lmi

    real = lmi.check_lmi

    def spy(*args, **kwargs):
        seen.update(kwargs.get("solver_options") or {})
        return real(*args, **kwargs)

    monkeypatch.setattr(lmi, "check_lmi", spy)
    out = tmp_path / "r.json"
    code = main(["check", "models_zoo/boiler_lpgrnn_linear.onnx", "--plant", "boiler", "--solver", "scs",
                 "--solver-option", "max_iters=20000", "--solver-option", "eps_abs=1e-7", "-o", str(out), "-q",
                 "--jobs", "1"])
    assert code == 0 and json.loads(out.read_text())["verdict"] == "certified"
    assert seen == {"max_iters": 20000, "eps_abs": 1e-7}
    assert main(["check", "models_zoo/boiler_lpgrnn_linear.onnx", "--solver-option", "oops", "-q"]) == 2
