"""Self-contained HTML report: inline CSS, inline SVG plots, no scripts and no external URLs."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from certify.report.text import describe_model, fmt_num, proof_line
from certify.results import Verdict

if TYPE_CHECKING:
    from certify.report.model import Report

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1100px;color:#222;
 padding:0 1em;background:#fff}
h1{font-size:1.5em}h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.verdict{display:inline-block;padding:.3em .8em;border-radius:.3em;color:#fff;font-weight:bold;font-size:1.2em}
.v-certified{background:#2e7d32}.v-not_certified{background:#ef6c00}.v-unstable{background:#c62828}
.v-invalid_input{background:#6a1b9a}.v-internal_error{background:#37474f}
table{border-collapse:collapse;width:100%;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-family:monospace}
.s-proved{color:#2e7d32;font-weight:bold}.s-not_proved{color:#ef6c00;font-weight:bold}
.s-disproved{color:#c62828;font-weight:bold}.s-not_applicable{color:#777}.s-error{color:#6a1b9a;font-weight:bold}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:.85em;white-space:pre-wrap;word-break:break-all}
.note{color:#555;font-style:italic}svg{max-width:100%;height:auto}
"""


def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def _section(report: Report, plots: bool) -> str:
    from certify.report.model import check_dict, jsonable

    d = report.decision
    v = d.verdict.value
    parts = [
        f"<section><h2>{_e(report.model_name)}</h2>",
        f'<p><span class="verdict v-{v}" id="verdict">{_e(v)}</span> exit code {int(d.verdict.exit_code)}</p>',
        f"<p>Model: {_e(describe_model(report.model))}</p>",
    ]
    if report.loop:
        parts.append(f"<p>Closed loop: {_e(report.loop.get('name') or report.loop.get('plant') or 'loop')}</p>")
    if report.requested and report.error is None:
        solver = f", solver {_e(report.solver)}" if report.solver else ""
        parts.append(
            f"<p>Requested: {_e(', '.join(p.value for p in report.requested))} (method {_e(report.method)}{solver})</p>"
        )
    parts.append("<h3>Reasons</h3><ul>" + "".join(f"<li>{_e(r)}</li>" for r in d.reasons) + "</ul>")
    if report.checks:
        head = "".join(f"<th>{h}</th>" for h in
                       ("check", "scope", "property", "status", "margin", "criterion", "solver", "seconds", "message"))
        rows = []
        for c in report.checks:
            solver = (c.solver or "") + (f" ({c.solver_status})" if c.solver_status else "")
            rows.append(
                f"<tr><td><code>{_e(c.name)}</code></td><td>{_e(c.scope)}</td><td>{_e(c.property.value)}</td>"
                f'<td class="s-{c.status.value}">{_e(c.status.value)}</td><td class="num">{_e(fmt_num(c.margin))}</td>'
                f"<td>{_e(c.criterion)}</td><td>{_e(solver)}</td><td class=\"num\">{c.seconds:.2f}</td>"
                f"<td>{_e(c.message)}</td></tr>"
            )
        parts.append(f"<h3>Checks</h3><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")
        details = {c.name + ("" if c.scope == "model" else f" [{c.scope}]"): {
            k: check_dict(c)[k] for k in ("quantities", "validation")} for c in report.checks}
        parts.append("<details><summary>Quantities and validation figures</summary><pre>"
                     + _e(json.dumps(details, indent=2, allow_nan=False)) + "</pre></details>")
    if d.counterexample is not None:
        cex = d.counterexample
        parts.append(
            f"<h3>Counterexample</h3><p><b>{_e(cex.kind)}</b>: {_e(cex.description)} "
            f"(residual {_e(fmt_num(float(cex.residual)))})</p>"
            + (f"<p>Proof: {_e(proof_line(cex) or '')}.</p>" if proof_line(cex) else "")
            + f"<details><summary>data</summary><pre>{_e(json.dumps(jsonable(cex.data), indent=1))}</pre></details>"
        )
    if plots:
        from certify.report.plots import counterexample_chart, margin_chart, simulation_chart

        cex_plot = None if d.counterexample is None else counterexample_chart(d.counterexample)
        for title, svg in (("Margins", margin_chart(report.checks)), ("Simulation", simulation_chart(report.simulation)),
                           ("Counterexample trajectory", cex_plot)):
            if svg is not None:
                parts.append(f'<h3>{title}</h3><div class="plot">{svg}</div>')
    if report.assumptions:
        parts.append("<h3>Assumptions</h3><pre>" + _e(json.dumps(jsonable(report.assumptions), indent=2)) + "</pre>")
    if report.loop:
        parts.append("<h3>Loop</h3><pre>" + _e(json.dumps(jsonable(report.loop), indent=2)) + "</pre>")
    model = {k: v for k, v in jsonable(report.model).items() if k != "layers"}
    parts.append("<h3>Model</h3><pre>" + _e(json.dumps(model, indent=2)) + "</pre>")
    if report.model.get("layers"):
        parts.append("<pre>" + _e(json.dumps(jsonable(report.model["layers"]), indent=2)) + "</pre>")
    if report.timings:
        parts.append("<p class=\"note\">Timings: " + _e(", ".join(
            f"{k} {fmt_num(float(s))} s" for k, s in sorted(report.timings.items()))) + "</p>")
    parts.append("</section>")
    return "\n".join(parts)


def render_html(reports: Sequence[Report]) -> str:
    """One self-contained HTML page for one or more reports.

    >>> from certify.report.model import Report
    >>> page = render_html([Report.from_error(Verdict.INVALID_INPUT, "bad", created="x", tool_version="0")])
    >>> page.startswith("<!DOCTYPE html>") and "invalid_input" in page and "http" not in page
    True
    """
    from certify.report.plots import matplotlib_available
    from certify.results import worst_verdict

    plots = matplotlib_available()
    worst = worst_verdict([r.verdict for r in reports]) if reports else Verdict.NOT_CERTIFIED
    version = reports[0].tool_version if reports else ""
    created = reports[0].created if reports else ""
    note = "" if plots else '<p class="note">matplotlib is not installed: plots are omitted.</p>'
    body = "\n".join(_section(r, plots) for r in reports)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>certify report: {_e(worst.value)}</title><style>{_CSS}</style></head><body>\n"
        f"<h1>certify stability report</h1><p class=\"note\">certify {_e(version)} · {_e(created)}</p>{note}\n"
        f"{body}\n</body></html>\n"
    )
