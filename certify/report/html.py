"""Self-contained HTML report: inline CSS, inline SVG plots, no scripts and no external URLs."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from certify.report.text import describe_input_range, describe_model, fmt_num, proof_line, region_lines
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
.card{border:1px solid #ddd;border-left:.5em solid #999;border-radius:.3em;padding:.6em 1em;margin:.6em 0}
.c-certified{border-left-color:#2e7d32}.c-not_certified{border-left-color:#ef6c00}.c-unstable{border-left-color:#c62828}
.c-invalid_input{border-left-color:#6a1b9a}.c-internal_error{border-left-color:#37474f}
.card .why{margin:.4em 0 0 0;font-size:1.05em}.exit{color:#555;margin-left:.6em}
.verdict.small{font-size:.85em;padding:.1em .5em}
table.kv th{width:14em;white-space:nowrap}
"""


def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def _kv_table(rows: Sequence[tuple[str, object]], cls: str = "kv") -> str:
    """A two-column table of labels and values (nested values as compact text, never raw JSON blocks)."""
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(_plain(v))}</td></tr>" for k, v in rows if v not in (None, "", [], {}))
    return f'<table class="{cls}"><tbody>{body}</tbody></table>' if body else ""


def _plain(v: object) -> str:
    """Readable text for a value: numbers compact, lists joined, mappings as ``key: value`` pairs."""
    if isinstance(v, float):
        return fmt_num(v)
    if isinstance(v, (list, tuple)):
        if len(v) > 12:
            return ", ".join(_plain(x) for x in v[:12]) + f", … ({len(v)} values)"
        return ", ".join(_plain(x) for x in v)
    if isinstance(v, dict) or hasattr(v, "items"):
        return "; ".join(f"{k}: {_plain(x)}" for k, x in v.items())  # type: ignore[union-attr]
    return str(v)


def _model_rows(model: Mapping[str, Any]) -> list[tuple[str, object]]:
    keys = (("file", "path"), ("architecture", "architecture"), ("source format", "source_format"),
            ("inputs", "n_inputs"), ("outputs", "n_outputs"), ("states", "n_states"), ("parameters", "n_params"),
            ("input names", "input_names"), ("output names", "output_names"), ("input range", "input_range"),
            ("input scaling", "input_scaling"), ("output scaling", "output_scaling"), ("head", "head"),
            ("SHA-256", "sha256"))
    rows = [(label, model.get(key)) for label, key in keys]
    for i, layer in enumerate(model.get("layers") or []):
        rows.append((f"layer {i}", layer))
    return rows


def _loop_rows(loop: Mapping[str, Any]) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = []
    for key, value in loop.items():
        if key == "obstruction" and hasattr(value, "get"):
            rows.append(("diagnosis", value.get("message")))
            continue
        if hasattr(value, "items"):
            for k2, v2 in value.items():
                rows.append((f"{key}: {k2}", v2))
        else:
            rows.append((key, value))
    return rows


def _assumption_rows(assumptions: Mapping[str, Any]) -> list[tuple[str, object]]:
    from certify.report.advice import search_line

    rows: list[tuple[str, object]] = []
    ir = describe_input_range(assumptions)
    if ir is not None:
        rows.append(("input range", ir))
    for key, value in assumptions.items():
        if key in ("input_range", "input_range_source", "input_range_note", "falsification"):
            continue
        rows.append((key.replace("_", " "), value))
    line = search_line(assumptions)
    if line:
        rows.append(("counterexample search", line))
    return rows


def _absorbing_table(report: Report) -> str:
    """The proved absorbing box of a loop check (state intervals), when one was computed."""
    for c in report.checks:
        aset = c.quantities.get("absorbing_set") if hasattr(c.quantities, "get") else None
        if not aset or "box_lower" not in aset:
            continue
        names = list((report.loop or {}).get("closed_loop", {}).get("state_names", []) or [])
        lo, hi = list(aset["box_lower"]), list(aset["box_upper"])
        rows = "".join(f"<tr><td>{_e(names[i] if i < len(names) else f'x[{i}]')}</td>"
                       f'<td class="num">{_e(fmt_num(float(a)))}</td><td class="num">{_e(fmt_num(float(b)))}</td></tr>'
                       for i, (a, b) in enumerate(zip(lo, hi)))
        kappa = c.quantities.get("kappa_min")
        note = (f"Every trajectory enters this box in finite time and stays in it (proved in interval arithmetic; "
                f"check {c.name}, {c.status.value}); the network slopes on it are at least "
                f"{fmt_num(float(kappa)) if kappa is not None else '-'}.")
        return (f"<h3>Absorbing set</h3><p>{_e(note)}</p><table class=\"checks\"><thead><tr><th>state</th>"
                f"<th>lower</th><th>upper</th></tr></thead><tbody>{rows}</tbody></table>")
    return ""


def _summary(report: Report) -> str:
    d = report.decision
    v = d.verdict.value
    sentence = d.reasons[0] if d.reasons else ""
    return (f'<div class="card c-{v}"><span class="verdict v-{v}" id="verdict">{_e(v)}</span> '
            f"<span class=\"exit\">exit code {int(d.verdict.exit_code)}</span>"
            f'<p class="why">{_e(sentence)}</p></div>')


def _section(report: Report, plots: bool) -> str:
    import os

    from certify.report.advice import next_steps
    from certify.report.model import check_dict, jsonable

    d = report.decision
    title = os.path.basename(report.model_name) or report.model_name
    parts = [f"<section><h2>{_e(title)}</h2>", _summary(report),
             f"<p>Model: {_e(describe_model(report.model))}</p>"]
    if report.loop:
        parts.append(f"<p>Closed loop: {_e(report.loop.get('name') or report.loop.get('plant') or 'loop')}</p>")
    if report.requested and report.error is None:
        solver = f", solver {_e(report.solver)}" if report.solver else ""
        parts.append(
            f"<p>Requested: {_e(', '.join(p.value for p in report.requested))} (method {_e(report.method)}{solver})</p>"
        )
    parts.append("<h3>Reasons</h3><ul>" + "".join(f"<li>{_e(r)}</li>" for r in d.reasons) + "</ul>")
    steps = next_steps(report)
    if steps:
        parts.append('<h3>What next</h3><ul class="next">' + "".join(f"<li>{_e(s)}</li>" for s in steps) + "</ul>")
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
        parts.append(f'<h3>Checks</h3><table class="checks"><thead><tr>{head}</tr></thead>'
                     f"<tbody>{''.join(rows)}</tbody></table>")
        details = {c.name + ("" if c.scope == "model" else f" [{c.scope}]"): {
            k: check_dict(c)[k] for k in ("quantities", "validation")} for c in report.checks}
        parts.append("<details><summary>Quantities and validation figures (JSON)</summary><pre>"
                     + _e(json.dumps(details, indent=2, allow_nan=False)) + "</pre></details>")
    if d.counterexample is not None:
        cex = d.counterexample
        parts.append(
            f"<h3>Counterexample</h3><p><b>{_e(cex.kind)}</b>: {_e(cex.description)} "
            f"(residual {_e(fmt_num(float(cex.residual)))})</p>"
            + (f"<p>Proof: {_e(proof_line(cex) or '')}.</p>" if proof_line(cex) else "")
            + f"<details><summary>data (JSON)</summary><pre>{_e(json.dumps(jsonable(cex.data), indent=1))}</pre>"
            "</details>"
        )
    if plots:
        from certify.report.plots import (
            counterexample_chart,
            loop_simulation_chart,
            margin_chart,
            simulation_chart,
        )

        cex_plot = None if d.counterexample is None else counterexample_chart(d.counterexample)
        sim = report.simulation
        sim_plot = loop_simulation_chart(sim) if sim and sim.get("runs") else simulation_chart(sim)
        for title, svg in (("Margins", margin_chart(report.checks)), ("Simulation", sim_plot),
                           ("Counterexample trajectory", cex_plot)):
            if svg is not None:
                parts.append(f'<h3>{title}</h3><div class="plot">{svg}</div>')
    box = _absorbing_table(report)
    if box:
        parts.append(box)
    region = region_lines(report)
    if region:
        parts.append(f"<h3>Region of attraction</h3><p>{_e(region[0])}</p><ul class=\"region\">"
                     + "".join(f"<li>{_e(r)}</li>" for r in region[1:]) + "</ul>")
    if report.assumptions:
        parts.append("<h3>Assumptions</h3>" + _kv_table(_assumption_rows(jsonable(report.assumptions))))
    if report.loop:
        parts.append("<h3>Loop</h3>" + _kv_table(_loop_rows(jsonable(report.loop))))
    parts.append("<h3>Model</h3>" + _kv_table(_model_rows(jsonable(report.model))))
    if report.timings:
        parts.append("<p class=\"note\">Timings: " + _e(", ".join(
            f"{k} {fmt_num(float(s))} s" for k, s in sorted(report.timings.items()))) + "</p>")
    parts.append("</section>")
    return "\n".join(parts)


def _overview(reports: Sequence[Report]) -> str:
    """A table of every model's verdict when the page holds several reports."""
    import os

    if len(reports) < 2:
        return ""
    rows = "".join(
        f"<tr><td>{_e(os.path.basename(r.model_name) or r.model_name)}</td>"
        f'<td><span class="verdict v-{r.verdict.value} small">{_e(r.verdict.value)}</span></td>'
        f"<td>{_e(r.model.get('architecture') or '-')}</td><td>{_e((r.reasons or ('',))[0][:200])}</td></tr>"
        for r in reports)
    return ('<h2>Summary</h2><table class="overview"><thead><tr><th>model</th><th>verdict</th><th>architecture</th>'
            f"<th>why</th></tr></thead><tbody>{rows}</tbody></table>")


def notebook_html(report: Report) -> str:
    """The report's section with its styles, without the page around it (for notebooks)."""
    from certify.report.plots import matplotlib_available

    return f"<div class=\"certify-report\"><style>{_CSS}</style>{_section(report, matplotlib_available())}</div>"


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
    body = _overview(reports) + "\n".join(_section(r, plots) for r in reports)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>certify report: {_e(worst.value)}</title><style>{_CSS}</style></head><body>\n"
        f"<h1>certify stability report</h1><p class=\"note\">certify {_e(version)} · {_e(created)}</p>{note}\n"
        f"{body}\n</body></html>\n"
    )
