"""Markdown rendering for pull-request comments: the verdict first, then one table of checks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from certify.report.text import describe_input_range, describe_model, fmt_num, proof_line, region_lines
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


def _short(name: str) -> str:
    """A model's file name without its (local, absolute) folder."""
    import os

    return os.path.basename(name) or name


def render_markdown_many(reports: list[Report]) -> str:
    """Markdown for several reports: a summary table (one row per model), then each report.

    >>> from certify.report.model import Report
    >>> rs = [Report.from_error(Verdict.INVALID_INPUT, "bad", model={"path": "/tmp/a.onnx"}, created="x",
    ...                         tool_version="0")] * 2
    >>> print(render_markdown_many(rs).splitlines()[0])
    ## certify: 2 models, worst verdict `invalid_input`
    """
    from certify.results import worst_verdict

    if len(reports) == 1:
        return render_markdown(reports[0])
    worst = worst_verdict([r.verdict for r in reports])
    counts: dict[str, int] = {}
    for r in reports:
        counts[r.verdict.value] = counts.get(r.verdict.value, 0) + 1
    out = [f"## certify: {len(reports)} models, worst verdict `{worst.value}`", "",
           ", ".join(f"{n} {v}" for v, n in counts.items()) + ".", "",
           "| model | verdict | architecture | why |", "| --- | --- | --- | --- |"]
    for r in reports:
        why = r.reasons[0] if r.reasons else ""
        out.append(f"| `{md_cell(_short(r.model_name))}` | {_ICON[r.verdict]} `{r.verdict.value}` | "
                   f"{md_cell(r.model.get('architecture') or '-')} | {md_cell(why[:160])} |")
    return "\n".join(out) + "\n\n" + "\n".join(render_markdown(r) for r in reports)


def render_markdown(report: Report) -> str:
    """Markdown for one report.

    >>> from certify.report.model import Report
    >>> r = Report.from_error(Verdict.INVALID_INPUT, "bad", model={"path": "m.onnx"}, created="x", tool_version="0")
    >>> render_markdown(r).splitlines()[0]
    '### ⛔ certify: `invalid_input` — `m.onnx`'
    """
    d = report.decision
    out = [
        f"### {_ICON[d.verdict]} certify: `{d.verdict.value}` — `{md_cell(_short(report.model_name))}`",
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
    region = region_lines(report)
    if region:
        out += ["", f"**{md_cell(region[0][0].upper() + region[0][1:].rstrip(':'))}**", ""]
        out += [f"- {md_cell(r)}" for r in region[1:]]
    if d.counterexample is not None:
        cex = d.counterexample
        out += ["", f"**Counterexample** (`{md_cell(cex.kind)}`): {md_cell(cex.description)} "
                    f"(residual {fmt_num(float(cex.residual))})."]
        proof = proof_line(cex)
        if proof:
            out += ["", f"Proof: {md_cell(proof)}."]
    from certify.report.advice import next_steps, search_line

    search = search_line(report.assumptions)
    if search and report.error is None:
        out += ["", f"{md_cell(search[0].upper() + search[1:])}."]
    ir_text = describe_input_range(report.assumptions)
    if report.error is None and ir_text is not None and report.subject == "model":
        out += ["", f"Input range: {md_cell(ir_text)}."]
    steps = next_steps(report)
    if steps:
        out += ["", "**What next**", ""] + [f"- {md_cell(s)}" for s in steps]
    sha = report.model.get("sha256")
    out += ["", f"<sub>certify {report.tool_version} · {report.created}" + (f" · sha256 `{sha}`" if sha else "")
            + "</sub>"]
    return "\n".join(out) + "\n"
