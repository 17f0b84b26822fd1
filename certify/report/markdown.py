"""Markdown rendering for pull-request comments: the verdict first, then one table of checks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from certify.report.text import describe_input_range, describe_model, fmt_num, proof_line
from certify.results import Verdict

if TYPE_CHECKING:
    from certify.report.model import Report

_ICON = {
    Verdict.CERTIFIED: "✅",
    Verdict.NOT_CERTIFIED: "⚠️",
    Verdict.UNSTABLE: "❌",
    Verdict.INVALID_INPUT: "⛔",
    Verdict.INTERNAL_ERROR: "💥",
}


def md_cell(text: object) -> str:
    """Escape a value for a Markdown table cell (pipes, newlines).

    >>> md_cell("a|b\\nc")
    'a\\\\|b c'
    """
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Report) -> str:
    """Markdown for one report.

    >>> from certify.report.model import Report
    >>> r = Report.from_error(Verdict.INVALID_INPUT, "bad", model={"path": "m.onnx"}, created="x", tool_version="0")
    >>> render_markdown(r).splitlines()[0]
    '### ⛔ certify: `invalid_input` — `m.onnx`'
    """
    d = report.decision
    out = [
        f"### {_ICON[d.verdict]} certify: `{d.verdict.value}` — `{md_cell(report.model_name)}`",
        "",
        f"**Verdict: `{d.verdict.value}`** (exit code {int(d.verdict.exit_code)}). "
        f"Model: {md_cell(describe_model(report.model))}.",
    ]
    if report.loop:
        out.append(f"Closed loop: {md_cell(report.loop.get('name') or report.loop.get('plant') or 'loop')}.")
    if report.requested and report.error is None:
        solver = f", solver `{report.solver}`" if report.solver else ""
        out.append(
            f"Requested: {', '.join('`' + p.value + '`' for p in report.requested)} "
            f"(method `{report.method}`{solver})."
        )
    out.append("")
    out.extend(f"- {md_cell(r)}" for r in d.reasons)
    if report.checks:
        out += [
            "",
            "| check | scope | property | status | margin | criterion | solver | seconds | message |",
            "| --- | --- | --- | --- | ---: | --- | --- | ---: | --- |",
        ]
        for c in report.checks:
            solver = c.solver or ""
            if c.solver_status:
                solver += f" ({c.solver_status})"
            out.append(
                f"| `{md_cell(c.name)}` | {md_cell(c.scope)} | {c.property.value} | **{c.status.value}** | "
                f"{fmt_num(c.margin)} | {md_cell(c.criterion)} | {md_cell(solver)} | {c.seconds:.2f} | "
                f"{md_cell(c.message)} |"
            )
    if d.counterexample is not None:
        cex = d.counterexample
        out += ["", f"**Counterexample** (`{md_cell(cex.kind)}`): {md_cell(cex.description)} "
                    f"(residual {fmt_num(float(cex.residual))})."]
        proof = proof_line(cex)
        if proof:
            out += ["", f"Proof: {md_cell(proof)}."]
    ir_text = describe_input_range(report.assumptions)
    if report.error is None and ir_text is not None:
        out += ["", f"Input range: {md_cell(ir_text)}."]
    sha = report.model.get("sha256")
    out += ["", f"<sub>certify {report.tool_version} · {report.created}" + (f" · sha256 `{sha}`" if sha else "")
            + "</sub>"]
    return "\n".join(out) + "\n"
