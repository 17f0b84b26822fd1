"""CI-native outputs: JUnit XML, SARIF 2.1.0, GitHub annotations + step summary, GitLab code quality,
several outputs from one run (repeated -o, --output-dir)."""

from __future__ import annotations

import json
import random
import xml.etree.ElementTree as ET

import _fuzz_cases as F
import jsonschema
import numpy as np
import pytest

from certify.cli import main
from certify.outputs import format_for_path, render_github, render_gitlab, render_junit, render_sarif
from certify.results import ExitCode

pytest.importorskip("onnx")

# The parts of SARIF 2.1.0 (OASIS, sarif-schema-2.1.0.json) that certify writes, with the same
# required properties, types and enumerations as the official schema.
SARIF_SCHEMA = {
    "type": "object", "required": ["version", "runs"],
    "properties": {
        "$schema": {"type": "string", "format": "uri"},
        "version": {"enum": ["2.1.0"]},
        "runs": {"type": "array", "items": {
            "type": "object", "required": ["tool"],
            "properties": {
                "tool": {"type": "object", "required": ["driver"], "properties": {"driver": {
                    "type": "object", "required": ["name"],
                    "properties": {
                        "name": {"type": "string"}, "version": {"type": "string"},
                        "informationUri": {"type": "string", "format": "uri"},
                        "rules": {"type": "array", "items": {
                            "type": "object", "required": ["id"],
                            "properties": {
                                "id": {"type": "string"}, "name": {"type": "string"},
                                "shortDescription": {"$ref": "#/$defs/message"},
                                "defaultConfiguration": {"type": "object", "properties": {
                                    "level": {"enum": ["none", "note", "warning", "error"]}}},
                            }}},
                    }}}},
                "results": {"type": "array", "items": {
                    "type": "object", "required": ["message"],
                    "properties": {
                        "ruleId": {"type": "string"}, "ruleIndex": {"type": "integer", "minimum": -1},
                        "level": {"enum": ["none", "note", "warning", "error"]},
                        "kind": {"enum": ["notApplicable", "pass", "fail", "review", "open", "informational"]},
                        "message": {"$ref": "#/$defs/message"},
                        "locations": {"type": "array", "items": {"type": "object", "properties": {
                            "physicalLocation": {"type": "object", "properties": {
                                "artifactLocation": {"type": "object", "properties": {
                                    "uri": {"type": "string"}}}}}}}},
                        "properties": {"type": "object"},
                    }}},
            }}},
    },
    "$defs": {"message": {"type": "object", "anyOf": [{"required": ["text"]}, {"required": ["id"]}],
                          "properties": {"text": {"type": "string"}}}},
}


def _check_junit(xml: str) -> ET.Element:
    """Structural check against the JUnit XML schema (testsuites > testsuite > testcase > failure|error)."""
    root = ET.fromstring(xml)
    assert root.tag == "testsuites"
    suites = list(root)
    assert suites and all(s.tag == "testsuite" for s in suites)
    total = failures = errors = 0
    for suite in suites:
        assert suite.get("name")
        cases = list(suite)
        assert all(c.tag == "testcase" for c in cases)
        for case in cases:
            assert case.get("name") and case.get("classname") is not None and float(case.get("time")) >= 0
            assert set(case.attrib) <= {"name", "classname", "time", "file", "line"}
            children = list(case)
            assert len(children) <= 1
            for child in children:
                assert child.tag in ("failure", "error", "skipped") and child.get("type") and child.get("message")
                failures += child.tag == "failure"
                errors += child.tag == "error"
        assert int(suite.get("tests")) == len(cases)
        assert int(suite.get("failures")) + int(suite.get("errors")) == sum(len(list(c)) for c in cases)
        total += len(cases)
    assert (int(root.get("tests")), int(root.get("failures")), int(root.get("errors"))) == (total, failures, errors)
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from onnx import numpy_helper

    d = tmp_path_factory.mktemp("out")
    for name, scale in (("ok", 0.2), ("big", 8.0)):
        model = F.fused_model("GRU", n_in=2, hidden=3, rng=random.Random(0))
        for init in model.graph.initializer:
            if init.name in ("W", "R"):
                init.CopyFrom(numpy_helper.from_array((numpy_helper.to_array(init) * scale).astype(np.float32),
                                                      init.name))
        (d / f"{name}.onnx").write_bytes(model.SerializeToString())
    (d / "junk.onnx").write_bytes(b"junk")
    return d


@pytest.fixture(scope="module")
def reports(folder):
    from certify.batch import run_batch
    from certify.request import CheckRequest

    paths = [str(folder / n) for n in ("ok.onnx", "big.onnx", "junk.onnx")]
    return [o.report for o in run_batch([CheckRequest(p) for p in paths], jobs=1)]


def test_junit_one_testcase_per_model_and_property(reports):
    root = _check_junit(render_junit(reports))
    cases = root.findall("./testsuite/testcase")
    outcome = {(c.get("classname").rsplit("/", 1)[-1], c.get("name")): (list(c)[0].tag if list(c) else "pass")
               for c in cases}
    assert outcome == {("ok.onnx", "delta_iss"): "pass", ("big.onnx", "delta_iss"): "failure",
                       ("junk.onnx", "check"): "error"}


def test_sarif_validates_and_locates_each_model(reports):
    doc = json.loads(render_sarif(reports))
    jsonschema.validate(doc, SARIF_SCHEMA)
    results = doc["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == ["certify/certified", "certify/unstable", "certify/invalid-input"]
    assert [r["kind"] for r in results] == ["pass", "fail", "fail"]
    rules = doc["runs"][0]["tool"]["driver"]["rules"]
    assert all(rules[r["ruleIndex"]]["id"] == r["ruleId"] for r in results)
    assert results[1]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].endswith("big.onnx")


def test_github_annotations_and_step_summary(folder, tmp_path, monkeypatch, capsys):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    rc = main(["check", str(folder), "--format", "github", "--isolated", "-q"])
    out = capsys.readouterr().out.splitlines()
    assert rc == ExitCode.INVALID_INPUT
    assert sorted(line.split(" ", 1)[0] for line in out) == ["::error", "::error", "::notice"]
    assert any(line.startswith("::error file=") and "big.onnx,title=certify%3A unstable::" in line for line in out)
    assert all("\n" not in line for line in out)
    text = summary.read_text()
    assert "3 models" in text and "unstable" in text


def test_github_escapes_newlines_and_percent(reports):
    from dataclasses import replace

    from certify.report.model import ReportError
    from certify.results import Verdict

    r = replace(reports[2], error=ReportError(Verdict.INVALID_INPUT, "line1\nline2 100%"))
    assert render_github([r]).endswith("::line1%0Aline2 100%25")


def test_gitlab_code_quality(reports):
    issues = json.loads(render_gitlab(reports))
    assert [i["severity"] for i in issues] == ["critical", "major"]
    for issue in issues:
        assert set(issue) >= {"description", "check_name", "fingerprint", "severity", "location"}
        assert issue["location"]["lines"]["begin"] == 1 and len(issue["fingerprint"]) == 64
    assert len({i["fingerprint"] for i in issues}) == 2


def test_several_outputs_from_one_run(folder, tmp_path, capsys):
    files = {n: tmp_path / n for n in ("r.json", "r.md", "r.html", "r.xml", "r.sarif", "r.txt",
                                       "gl-code-quality-report.json")}
    argv = ["check", str(folder), "--isolated", "--jobs", "1"]
    for path in files.values():
        argv += ["-o", str(path)]
    assert main(argv) == ExitCode.INVALID_INPUT
    out, err = capsys.readouterr()
    assert out == "" and "3 models" in err
    assert len(json.loads(files["r.json"].read_text())) == 3
    assert files["r.md"].read_text().startswith("## certify: 3 models")
    assert files["r.html"].read_text().lstrip().lower().startswith("<!doctype html")
    _check_junit(files["r.xml"].read_text())
    jsonschema.validate(json.loads(files["r.sarif"].read_text()), SARIF_SCHEMA)
    assert "verdict: UNSTABLE" in files["r.txt"].read_text()
    assert isinstance(json.loads(files["gl-code-quality-report.json"].read_text()), list)


def test_output_dir_writes_every_file_format(folder, tmp_path, capsys):
    out_dir = tmp_path / "reports"
    assert main(["check", str(folder / "ok.onnx"), "--output-dir", str(out_dir), "--isolated", "-q"]) == 0
    assert capsys.readouterr() == ("", "")
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "certify-junit.xml", "certify.html", "certify.json", "certify.md", "certify.sarif",
        "gl-code-quality-report.json"]
    _check_junit((out_dir / "certify-junit.xml").read_text())


def test_format_for_path():
    assert [format_for_path(p) for p in ("a.json", "a.md", "a.htm", "a.xml", "a.sarif.json", "a.txt", "a")] == [
        "json", "markdown", "html", "junit", "sarif", "text", None]
