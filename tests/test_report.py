"""Report value, verdict rule and renderers (text, JSON + schema, Markdown, HTML)."""

from __future__ import annotations

import doctest
import importlib
import json
import re

import jsonschema
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from certify.report import Report, decide, jsonable, reports_to_json, schema
from certify.report.model import ReportError
from certify.results import CheckResult, CheckStatus, Counterexample, ExitCode, Property, Verdict

CREATED = "2026-01-01T00:00:00+00:00"
CEX = Counterexample("multiple_equilibria", "two equilibria for u = 0", {"x1": [0.9], "x2": [-0.9]}, 1e-13)


def chk(name: str, prop: Property, status: CheckStatus, scope: str = "model", **kw) -> CheckResult:
    if status is CheckStatus.DISPROVED:
        kw.setdefault("counterexample", CEX)
    return CheckResult(name, prop, status, "crit_" + name, message=f"{name} {status.value}", scope=scope, **kw)


def sample_reports() -> dict[str, Report]:
    """One report per verdict, with per-layer checks, numpy quantities and a simulation."""
    layer = chk("gru.delta_iss.layer0", Property.DELTA_ISS, CheckStatus.PROVED, scope="layer0", margin=-0.3,
                quantities={"sigma_bar": np.float64(0.5), "U_norms": np.array([0.1, 0.2])})
    model = {"path": "m.onnx", "sha256": "a" * 64, "architecture": "gru", "n_params": 42, "layers": [{"kind": "gru"}]}
    common = dict(model=model, created=CREATED, tool_version="0.1.0", requested=(Property.DELTA_ISS,),
                  assumptions={"input_range": None, "input_range_source": "unknown"}, timings={"total": 0.5})
    sim = {"t": [0, 1, 2, 3], "y": [[0.0, 1.0], [0.5, 0.8], [0.7, 0.7], [0.75, 0.7]], "u": [1.0, 0.9, 0.8, 0.8]}
    return {
        "certified": Report(checks=(layer, chk("gru.delta_iss", Property.DELTA_ISS, CheckStatus.PROVED, margin=-0.3)),
                            simulation=sim, **common),
        "not_certified": Report(checks=(chk("gru.delta_iss|pipe", Property.DELTA_ISS, CheckStatus.NOT_PROVED,
                                            margin=0.2),), **common),
        "unstable": Report(checks=(chk("gru.delta_iss", Property.DELTA_ISS, CheckStatus.NOT_PROVED, margin=float("inf")),
                                   chk("falsify.multiple_equilibria", Property.DELTA_ISS, CheckStatus.DISPROVED)),
                           **common),
        "invalid_input": Report.from_error(Verdict.INVALID_INPUT, "model file not found: m.onnx <b>",
                                           model={"path": "m.onnx", "sha256": None}, created=CREATED),
        "internal_error": Report.from_error(Verdict.INTERNAL_ERROR, "internal error (RuntimeError: boom)",
                                            model={"path": "m.onnx"}, created=CREATED),
    }


REPORTS = sample_reports()


# --- verdict rule ---------------------------------------------------------------------------------------


def test_verdicts_and_exit_codes_of_samples():
    for name, r in REPORTS.items():
        assert r.verdict.value == name
        assert r.exit_code == Verdict(name).exit_code
    assert REPORTS["unstable"].decision.counterexample == CEX


def test_delta_iss_proves_gas_for_a_network_but_not_for_a_loop():
    proved = [chk("diss", Property.DELTA_ISS, CheckStatus.PROVED)]
    assert decide(proved, [Property.GAS]).verdict is Verdict.CERTIFIED
    assert decide(proved, [Property.GAS], subject="loop").verdict is Verdict.NOT_CERTIFIED
    # GAS does not prove δISS
    assert decide([chk("lmi", Property.GAS, CheckStatus.PROVED)], [Property.DELTA_ISS]).verdict is Verdict.NOT_CERTIFIED


def test_disproved_delta_iss_does_not_make_gas_unstable():
    checks = [chk("lmi", Property.GAS, CheckStatus.NOT_PROVED), chk("f", Property.DELTA_ISS, CheckStatus.DISPROVED)]
    d = decide(checks, [Property.GAS])
    assert d.verdict is Verdict.NOT_CERTIFIED and any("f (delta_iss): disproved" in r for r in d.reasons)
    # ... but a disproved GAS refutes δISS
    d = decide([chk("f", Property.GAS, CheckStatus.DISPROVED)], [Property.DELTA_ISS])
    assert d.verdict is Verdict.UNSTABLE and d.counterexample == CEX


def test_layer_checks_never_decide():
    layer_only = [chk("l0", Property.DELTA_ISS, CheckStatus.PROVED, scope="layer0")]
    assert decide(layer_only, [Property.DELTA_ISS]).verdict is Verdict.NOT_CERTIFIED
    bad_layer = [chk("l0", Property.DELTA_ISS, CheckStatus.DISPROVED, scope="layer0")]
    assert decide(bad_layer, [Property.DELTA_ISS]).verdict is Verdict.NOT_CERTIFIED


def test_nothing_applicable_and_nothing_requested():
    na = [chk("lmi", Property.GAS, CheckStatus.NOT_APPLICABLE)]
    d = decide(na, [Property.GAS])
    assert d.verdict is Verdict.NOT_CERTIFIED and d.reasons[0].startswith("no applicable criterion ran")
    assert decide([chk("x", Property.GAS, CheckStatus.PROVED)], []).verdict is Verdict.NOT_CERTIFIED


def test_every_requested_property_must_be_proved():
    checks = [chk("a", Property.DELTA_ISS, CheckStatus.PROVED), chk("b", Property.WELL_POSED, CheckStatus.ERROR)]
    assert decide(checks, [Property.DELTA_ISS, Property.WELL_POSED]).verdict is Verdict.NOT_CERTIFIED
    assert decide(checks, [Property.DELTA_ISS]).verdict is Verdict.CERTIFIED


check_st = st.builds(
    lambda p, s, scope: chk(f"c_{p.value}_{s.value}_{scope}", p, s, scope=scope),
    st.sampled_from(list(Property)), st.sampled_from(list(CheckStatus)), st.sampled_from(["model", "layer0"]),
)


@given(st.lists(check_st, max_size=6), st.sets(st.sampled_from(list(Property)), min_size=1, max_size=2),
       st.sampled_from(["model", "loop"]))
def test_verdict_rule_is_sound(checks, requested, subject):
    d = decide(checks, sorted(requested), subject)
    model = [c for c in checks if c.scope == "model"]
    if d.verdict is Verdict.CERTIFIED:
        for r in requested:  # every requested property has a model-scope proof (directly or δISS ⇒ GAS)
            assert any(c.proved and (c.property is r or (subject == "model" and c.property is Property.DELTA_ISS
                                                          and r is Property.GAS)) for c in model)
        assert not any(c.status is CheckStatus.DISPROVED and c.property in requested for c in model)
    if d.verdict is Verdict.UNSTABLE:
        assert d.counterexample is not None
        assert any(c.status is CheckStatus.DISPROVED for c in model)
    assert d.verdict in (Verdict.CERTIFIED, Verdict.NOT_CERTIFIED, Verdict.UNSTABLE)
    # per-part checks never change the verdict
    assert decide([c for c in checks if c.scope == "model"], sorted(requested), subject).verdict is d.verdict


def test_report_error_must_be_an_error_verdict():
    with pytest.raises(ValueError):
        Report(model={}, error=ReportError(Verdict.CERTIFIED, "no"))
    with pytest.raises(ValueError):
        Report(model={}, subject="plant")


# --- JSON ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(REPORTS))
def test_json_validates_and_round_trips(name):
    r = REPORTS[name]
    data = json.loads(r.to_json())
    jsonschema.validate(data, schema())
    assert data["verdict"] == name and data["exit_code"] == int(r.exit_code)
    assert data["schema_version"] == "1.0" and data["tool"] == {"name": "certify", "version": "0.1.0"}
    assert [c["name"] for c in data["checks"]] == [c.name for c in r.checks]
    assert r.to_json() == r.to_json()  # deterministic
    assert list(data) == list(r.to_dict())


def test_json_contents_of_a_certified_report():
    data = REPORTS["certified"].to_dict()
    layer = data["checks"][0]
    assert layer["scope"] == "layer0" and layer["quantities"] == {"U_norms": [0.1, 0.2], "sigma_bar": 0.5}
    assert data["model"]["sha256"] == "a" * 64 and data["requested_properties"] == ["delta_iss"]
    unstable = REPORTS["unstable"].to_dict()
    assert unstable["checks"][0]["margin"] is None  # inf is not JSON
    assert unstable["counterexample"]["kind"] == "multiple_equilibria"
    assert REPORTS["invalid_input"].to_dict()["error"]["kind"] == "invalid_input"


def test_several_reports_are_a_json_array_that_validates():
    text = reports_to_json(list(REPORTS.values()))
    data = json.loads(text)
    assert isinstance(data, list) and len(data) == len(REPORTS)
    jsonschema.validate(data, schema())


def test_schema_rejects_inconsistent_reports():
    good = REPORTS["certified"].to_dict()
    for key, value in [("verdict", "maybe"), ("exit_code", 1), ("schema_version", "0"), ("checks", [{"name": 1}])]:
        bad = dict(good, **{key: value})
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema())
    unstable = dict(REPORTS["unstable"].to_dict(), counterexample=None)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(unstable, schema())


def test_jsonable_handles_numpy_and_nonfinite():
    out = jsonable({"z": np.array([[1.0, np.nan]]), "a": np.int64(3), "s": {2, 1}, "p": Property.GAS})
    assert out == {"a": 3, "p": "gas", "s": [1, 2], "z": [[1.0, None]]}
    assert list(out) == ["a", "p", "s", "z"]


# --- text, Markdown, HTML ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(REPORTS))
def test_every_format_renders_verdict_and_check_names(name):
    r = REPORTS[name]
    text, md, page = r.to_text(), r.to_markdown(), r.to_html()
    assert name.upper() in text and "\x1b[" not in text
    assert f"`{name}`" in md.splitlines()[0]
    assert f'class="verdict v-{name}"' in page
    for c in r.checks:
        assert c.name in text
        assert c.name.replace("|", "\\|") in md
        assert c.name in page
    for reason in r.reasons:
        assert reason.replace("<", "&lt;").replace(">", "&gt;") in page


def test_markdown_puts_verdict_first_then_a_table():
    md = REPORTS["not_certified"].to_markdown().splitlines()
    assert md[0].startswith("### ") and "not_certified" in md[0]
    header = next(i for i, line in enumerate(md) if line.startswith("| check |"))
    assert md[header + 1].startswith("| --- |")
    assert md[header + 2].count(" | ") == 8  # the escaped pipe in the name does not add a column


def test_text_colour_only_when_asked(monkeypatch):
    import io

    from certify.report.text import use_color

    assert "\x1b[" in REPORTS["certified"].to_text(color=True)

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_color(Tty())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color(Tty())


def test_html_is_self_contained_with_plots():
    page = REPORTS["certified"].to_html()
    assert page.count("<svg") == 2  # margins + simulation
    for forbidden in ("http://", "https://", "<script", "<link", "src=", "@import"):
        assert forbidden not in page
    assert not re.search(r"url\((?!#)", page)  # only in-page references such as clip-path="url(#id)"
    assert "<style>" in page and "&lt;b&gt;" in REPORTS["invalid_input"].to_html()


def test_html_without_matplotlib_says_so(monkeypatch):
    import certify.report.plots as plots

    monkeypatch.setattr(plots, "matplotlib_available", lambda: False)
    page = REPORTS["certified"].to_html()
    assert "<svg" not in page and "plots are omitted" in page


def test_simulation_chart_handles_odd_series():
    from certify.report.plots import simulation_chart

    assert simulation_chart(None) is None
    assert simulation_chart({"t": [0, 1], "label": "x", "empty": []}) is None
    assert simulation_chart({"y": np.array([[0.0, 1.0], [1.0, 2.0]])}).startswith("<svg")


@pytest.mark.parametrize("module", ["certify.report.model", "certify.report.verdict", "certify.report.text",
                                    "certify.report.markdown", "certify.report.html", "certify.report.plots",
                                    "certify.report", "certify.progress", "certify"])
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_exit_code_type():
    assert isinstance(REPORTS["certified"].exit_code, ExitCode)


def test_reports_round_trip_through_json():
    import certify
    from certify.networks import ElmanLayer, Network

    reports = dict(REPORTS)
    reports["real_unstable"] = certify.check(Network(layers=(ElmanLayer(W=[[0.0]], U=[[2.0]], b=[0.0]),)))
    reports["real_loop"] = certify.check("models_zoo/boiler_lpgrnn_linear.onnx", plant="boiler")
    for name, r in reports.items():
        back = Report.from_json(r.to_json())
        assert back.to_dict() == r.to_dict(), name
        finite = all(c.margin is None or abs(c.margin) != float("inf") for c in r.checks)
        if finite:  # JSON stores an infinite margin as null (documented), so only those renderings differ
            assert back.to_markdown() == r.to_markdown() and back.to_text() == r.to_text(), name
        assert back.verdict is r.verdict and (back.counterexample is None) == (r.counterexample is None)


def test_from_json_refuses_what_is_not_a_report():
    from certify.errors import InvalidInputError

    for text in ("[]", "{}", "not json", '{"created": "x", "checks": [{"name": 1}]}', "[" * 100000):
        with pytest.raises(InvalidInputError):
            Report.from_json(text)
