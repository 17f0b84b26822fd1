"""Machine outputs of ``certify check`` for CI systems, and the choice of format from a file name.

Formats: ``text``, ``json``, ``markdown``, ``html`` (:mod:`certify.report`), and for CI ``junit``
(JUnit XML: one test case per model and property), ``sarif`` (SARIF 2.1.0, for code-scanning
dashboards), ``github`` (GitHub Actions workflow commands, plus a Markdown step summary appended to
``$GITHUB_STEP_SUMMARY`` when that variable is set) and ``gitlab`` (GitLab code-quality JSON).

>>> format_for_path("out/report.sarif"), format_for_path("junit.xml"), format_for_path("r.bin")
('sarif', 'junit', None)
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

FORMATS = ("text", "json", "markdown", "html", "junit", "sarif", "github", "gitlab")

#: File-name endings → format (the longest matching ending wins).
EXTENSIONS = {
    ".json": "json", ".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html",
    ".xml": "junit", ".sarif": "sarif", ".sarif.json": "sarif", ".txt": "text",
    "codequality.json": "gitlab", "code-quality.json": "gitlab", "code-quality-report.json": "gitlab",
}

#: The file each format gets in ``--output-dir``.
OUTPUT_DIR_FILES = {
    "json": "certify.json", "markdown": "certify.md", "html": "certify.html", "junit": "certify-junit.xml",
    "sarif": "certify.sarif", "gitlab": "gl-code-quality-report.json",
}

_SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_HOME = "https://pypi.org/project/certify/"


def format_for_path(path: str) -> str | None:
    """The format a file name asks for (see :data:`EXTENSIONS`), or ``None`` if it names none.

    >>> format_for_path("report.JSON"), format_for_path("gl-code-quality-report.json")
    ('json', 'gitlab')
    """
    name = os.path.basename(path).lower()
    best = max((e for e in EXTENSIONS if name.endswith(e)), key=len, default=None)
    return EXTENSIONS[best] if best else None


def _rel(path: str | None) -> str:
    if not path:
        return "(model)"
    try:
        rel = os.path.relpath(path)
    except ValueError:
        rel = path
    if rel.startswith(".." + os.sep) or rel == "..":
        rel = os.path.abspath(path)
    return rel.replace(os.sep, "/")


def _properties(report: Any) -> list[tuple[str, str, str]]:
    """``(property, outcome, message)`` per requested property; outcome is passed/failure/error."""
    from certify.results import CheckStatus, Verdict

    verdict = report.verdict
    reasons = "; ".join(report.reasons)
    if verdict in (Verdict.INVALID_INPUT, Verdict.INTERNAL_ERROR) or not report.requested:
        return [("check", "error" if verdict is not Verdict.CERTIFIED else "passed", reasons)]
    rows = []
    for prop in report.requested:
        model_checks = [c for c in report.checks if getattr(c, "scope", "model") == "model"]
        proved = any(c.status is CheckStatus.PROVED and c.property is prop for c in model_checks)
        if verdict is Verdict.CERTIFIED or proved:
            rows.append((prop.value, "passed", ""))
        else:
            rows.append((prop.value, "failure", reasons))
    return rows


def render_junit(reports: Sequence[Any]) -> str:
    """JUnit XML: one ``<testcase>`` per model and requested property (``classname`` = the model file).

    ``unstable`` and ``not_certified`` are failures, ``invalid_input`` and ``internal_error`` errors.

    >>> from certify.report import Report
    >>> from certify.results import Verdict
    >>> xml = render_junit([Report.from_error(Verdict.INVALID_INPUT, "bad", model={"path": "m.onnx"}, created="x")])
    >>> '<testcase classname="m.onnx" name="check"' in xml and "<error" in xml
    True
    """
    from xml.sax.saxutils import quoteattr

    cases, failures, errors, total_time = [], 0, 0, 0.0
    for r in reports:
        total = r.timings.get("total") if r.timings else None
        seconds = float(total) if isinstance(total, (int, float)) else 0.0
        total_time += seconds
        rows = _properties(r)
        for prop, outcome, message in rows:
            attrs = (f"classname={quoteattr(_rel(r.model.get('path')))} name={quoteattr(prop)} "
                     f"time=\"{seconds / len(rows):.3f}\"")
            if outcome == "passed":
                cases.append(f"    <testcase {attrs}/>")
                continue
            tag = "failure" if outcome == "failure" else "error"
            failures += tag == "failure"
            errors += tag == "error"
            body = _escape_text(r.to_text())
            cases.append(f"    <testcase {attrs}>\n      <{tag} message={quoteattr(message or r.verdict.value)} "
                         f"type={quoteattr(r.verdict.value)}>{body}</{tag}>\n    </testcase>")
    n = len(cases)
    head = f'tests="{n}" failures="{failures}" errors="{errors}" skipped="0" time="{total_time:.3f}"'
    return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            f"<testsuites name=\"certify\" {head}>\n  <testsuite name=\"certify\" {head}>\n"
            + "\n".join(cases) + ("\n" if cases else "") + "  </testsuite>\n</testsuites>\n")


def _escape_text(text: str) -> str:
    from xml.sax.saxutils import escape

    # XML 1.0 forbids most control characters; ANSI colour never reaches here (to_text without colour)
    return escape("".join(ch for ch in text if ch in "\t\n\r" or ord(ch) >= 0x20))


_RULES = {
    "unstable": ("certify/unstable", "error", "A counterexample to stability was found and proved."),
    "not_certified": ("certify/not-certified", "warning", "No criterion proved stability (inconclusive)."),
    "invalid_input": ("certify/invalid-input", "error", "The model, plant or loop file cannot be checked."),
    "internal_error": ("certify/internal-error", "error", "certify failed (a bug in certify)."),
    "certified": ("certify/certified", "none", "Every requested property is proved."),
}


def render_sarif(reports: Sequence[Any]) -> str:
    """SARIF 2.1.0: one result per model (``kind: pass`` for a certified one), located at the model file.

    >>> from certify.report import Report
    >>> from certify.results import Verdict
    >>> doc = json.loads(render_sarif([Report.from_error(Verdict.INVALID_INPUT, "bad", created="x")]))
    >>> doc["version"], doc["runs"][0]["results"][0]["ruleId"]
    ('2.1.0', 'certify/invalid-input')
    """
    from certify import __version__

    rules = [{"id": rid, "name": rid.split("/")[1].replace("-", "_"), "shortDescription": {"text": text},
              "defaultConfiguration": {"level": level}} for rid, level, text in _RULES.values()]
    order = [v[0] for v in _RULES.values()]
    results = []
    for r in reports:
        rid, level, _ = _RULES[r.verdict.value]
        result: dict[str, Any] = {
            "ruleId": rid, "ruleIndex": order.index(rid), "level": level,
            "kind": "pass" if r.verdict.value == "certified" else "fail",
            "message": {"text": f"certify: {r.verdict.value}" + (f" — {'; '.join(r.reasons)}" if r.reasons else "")},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": _rel(r.model.get("path"))}}}],
            "properties": {"verdict": r.verdict.value, "exitCode": int(r.exit_code),
                           "sha256": r.model.get("sha256")},
        }
        results.append(result)
    doc = {"$schema": _SARIF_SCHEMA, "version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "certify", "version": __version__, "informationUri": _HOME, "rules": rules}},
        "results": results,
    }]}
    return json.dumps(doc, indent=2, ensure_ascii=False)


def _gh_escape(text: str, prop: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def render_github(reports: Sequence[Any]) -> str:
    """GitHub Actions workflow commands: ``::error`` for unstable / invalid / internal error,
    ``::warning`` for not certified, ``::notice`` for certified; one line per model.

    >>> from certify.report import Report
    >>> from certify.results import Verdict
    >>> render_github([Report.from_error(Verdict.INVALID_INPUT, "bad", model={"path": "m.onnx"}, created="x")])
    '::error file=m.onnx,title=certify%3A invalid_input::bad'
    """
    lines = []
    for r in reports:
        level = {"certified": "notice", "not_certified": "warning"}.get(r.verdict.value, "error")
        path = _rel(r.model.get("path"))
        message = "; ".join(r.reasons) or r.verdict.value
        lines.append(f"::{level} file={_gh_escape(path, True)},title={_gh_escape('certify: ' + r.verdict.value, True)}"
                     f"::{_gh_escape(message)}")
    return "\n".join(lines)


def write_github_step_summary(reports: Sequence[Any], environ: Any = None) -> bool:
    """Append the Markdown summary to ``$GITHUB_STEP_SUMMARY`` when it is set; returns whether it wrote."""
    from certify.report.markdown import render_markdown_many

    env = os.environ if environ is None else environ
    target = env.get("GITHUB_STEP_SUMMARY")
    if not target:
        return False
    with open(target, "a", encoding="utf-8") as fh:
        fh.write(render_markdown_many(list(reports)).rstrip("\n") + "\n\n")
    return True


def render_gitlab(reports: Sequence[Any]) -> str:
    """GitLab code-quality report: one issue per model that is not certified.

    >>> from certify.report import Report
    >>> from certify.results import Verdict
    >>> issues = json.loads(render_gitlab([Report.from_error(Verdict.INVALID_INPUT, "bad", model={"path": "m.onnx"})]))
    >>> issues[0]["severity"], issues[0]["location"]["path"]
    ('major', 'm.onnx')
    """
    import hashlib

    severity = {"unstable": "critical", "not_certified": "minor", "invalid_input": "major",
                "internal_error": "blocker"}
    issues = []
    for r in reports:
        v = r.verdict.value
        if v == "certified":
            continue
        path = _rel(r.model.get("path"))
        issues.append({
            "type": "issue", "check_name": _RULES[v][0], "description": f"certify: {v} — {'; '.join(r.reasons)}",
            "categories": ["Bug Risk"], "severity": severity[v],
            "fingerprint": hashlib.sha256(f"{path}\0{v}\0{r.model.get('sha256')}".encode()).hexdigest(),
            "location": {"path": path, "lines": {"begin": 1}},
        })
    return json.dumps(issues, indent=2, ensure_ascii=False)


def render(reports: Sequence[Any], fmt: str, color: bool = False) -> str:
    """``reports`` in format ``fmt`` (one of :data:`FORMATS`).

    >>> from certify.report import Report
    >>> from certify.results import Verdict
    >>> render([Report.from_error(Verdict.INVALID_INPUT, "bad", created="x")], "gitlab").startswith("[")
    True
    """
    reports = list(reports)
    if fmt == "json":
        from certify.report import reports_to_json

        return reports_to_json(reports)
    if fmt == "markdown":
        from certify.report.markdown import render_markdown_many

        return render_markdown_many(reports)
    if fmt == "html":
        from certify.report.html import render_html

        return render_html(reports)
    if fmt == "junit":
        return render_junit(reports)
    if fmt == "sarif":
        return render_sarif(reports)
    if fmt == "github":
        return render_github(reports)
    if fmt == "gitlab":
        return render_gitlab(reports)
    return "\n\n".join(r.to_text(color=color) for r in reports)
