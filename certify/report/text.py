"""Plain-text rendering of a :class:`~certify.report.model.Report` (the human summary on stderr).

Colour (ANSI) only when asked for: the command line asks when stderr is a terminal and ``NO_COLOR``
is not set (https://no-color.org convention).
"""

from __future__ import annotations

import os
from typing import IO, TYPE_CHECKING, Any

from certify.results import CheckStatus, Verdict

if TYPE_CHECKING:
    from certify.report.model import Report

_VERDICT_COLOR = {
    Verdict.CERTIFIED: "32",  # green
    Verdict.NOT_CERTIFIED: "33",  # yellow
    Verdict.UNSTABLE: "31",  # red
    Verdict.INVALID_INPUT: "35",  # magenta
    Verdict.INTERNAL_ERROR: "31",
}
_STATUS_COLOR = {
    CheckStatus.PROVED: "32",
    CheckStatus.NOT_PROVED: "33",
    CheckStatus.DISPROVED: "31",
    CheckStatus.NOT_APPLICABLE: "2",
    CheckStatus.ERROR: "31",
}


def use_color(stream: IO[str]) -> bool:
    """Colour iff ``stream`` is a terminal and the ``NO_COLOR`` environment variable is unset/empty.

    >>> import io
    >>> use_color(io.StringIO())
    False
    """
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def fmt_num(x: Any) -> str:
    """Compact number: ``None`` → ``-``, floats with 4 significant digits.

    >>> fmt_num(-0.123456), fmt_num(None), fmt_num(3)
    ('-0.1235', '-', '3')
    """
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def describe_model(model: Any) -> str:
    """One line about the model: architecture, sizes, short SHA-256.

    >>> describe_model({"architecture": "gru", "layers": [{}], "n_params": 12, "sha256": "ab" * 32})
    'gru, 1 layer(s), 12 parameters, sha256 abababababab'
    """
    parts = []
    if model.get("architecture"):
        parts.append(str(model["architecture"]))
    if model.get("layers") is not None:
        parts.append(f"{len(model['layers'])} layer(s)")
    if model.get("n_params") is not None:
        parts.append(f"{model['n_params']} parameters")
    if model.get("sha256"):
        parts.append(f"sha256 {str(model['sha256'])[:12]}")
    return ", ".join(parts) if parts else "not loaded"


def describe_input_range(assumptions: Any) -> str | None:
    """One phrase for the input range in ``assumptions`` (``None`` when it says nothing about it).

    >>> describe_input_range({"input_range": {"low": [-1.0, -1.0], "high": [1.0, 1.0]},
    ...                       "input_range_source": "model metadata"})
    '[-1, 1] for every input (model metadata)'
    >>> describe_input_range({"input_range": None})
    'unknown'
    """
    if "input_range" not in assumptions:
        return None
    ir = assumptions.get("input_range")
    if ir is None:
        note = assumptions.get("input_range_note")
        return f"unknown: {note}" if note else "unknown"
    low, high = list(ir["low"]), list(ir["high"])
    if len(set(low)) == 1 and len(set(high)) == 1:
        text = f"[{low[0]:g}, {high[0]:g}] for every input"
    else:
        text = ", ".join(f"[{lo:g}, {hi:g}]" for lo, hi in zip(low, high))
    src = assumptions.get("input_range_source")
    return f"{text} ({src})" if src else text


def render_text(report: Report, color: bool = False) -> str:
    """The human summary of one report.

    >>> from certify.report.model import Report
    >>> print(render_text(Report.from_error(Verdict.INVALID_INPUT, "bad file", model={"path": "m.onnx"},
    ...                                     created="2026-01-01", tool_version="0.1.0")))
    certify 0.1.0: m.onnx (not loaded)
    verdict: INVALID_INPUT (exit code 3)
      - bad file
    """

    def paint(text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if color else text

    d = report.decision
    lines = [f"certify {report.tool_version}: {report.model_name} ({describe_model(report.model)})"]
    lines += [f"  note: {n}" for n in (report.model or {}).get("notes") or ()]  # what the importer ignored/assumed
    if report.loop:
        lines.append(f"closed loop: {report.loop.get('name') or report.loop.get('plant') or 'loop'}")
    lines.append(
        "verdict: " + paint(d.verdict.value.upper(), "1;" + _VERDICT_COLOR[d.verdict])
        + f" (exit code {int(d.verdict.exit_code)})"
    )
    if report.requested and report.error is None:
        solver = f", solver {report.solver}" if report.solver else ""
        lines.append(f"requested: {', '.join(p.value for p in report.requested)} (method {report.method}{solver})")
    if report.checks:
        lines.append("checks:")
        width = max(len(c.name) for c in report.checks)
        for c in report.checks:
            status = paint(f"{c.status.value:<14}", _STATUS_COLOR[c.status])
            scope = "" if c.scope == "model" else f" [{c.scope}]"
            lines.append(
                f"  {status} {c.name:<{width}}  {c.property.value:<9} margin {fmt_num(c.margin):>9}"
                f"  {c.seconds:.2f}s{scope}"
            )
            if c.message:
                lines.append(f"  {'':14} {c.message}")
    if report.error is None:
        lines.append("reasons:")
    lines.extend(f"  - {r}" for r in d.reasons)
    region = region_lines(report)
    if region:
        lines.append(region[0])
        lines.extend(f"  {r}" for r in region[1:])
    if d.counterexample is not None:
        cex = d.counterexample
        lines.append(f"counterexample: {cex.kind}: {cex.description} (residual {fmt_num(float(cex.residual))})")
        proof = proof_line(cex)
        if proof:
            lines.append(f"  proof: {proof}")
    from certify.report.advice import next_steps, search_line

    search = search_line(report.assumptions)
    if search and report.error is None:
        lines.append(search)
    ir_text = describe_input_range(report.assumptions)
    if report.error is None and ir_text is not None and report.subject == "model":
        lines.append(f"input range: {ir_text}")
    steps = next_steps(report)
    if steps and report.verdict in (Verdict.NOT_CERTIFIED, Verdict.UNSTABLE):
        lines.append("next:")
        lines.extend(f"  - {s}" for s in steps)
    return "\n".join(lines)


def proof_line(cex: Any) -> str | None:
    """One sentence on how a counterexample was proved (``None`` when it carries no interval proof).

    >>> from certify.results import Counterexample
    >>> cex = Counterexample("multiple_equilibria", "", {"proof": {"method": "krawczyk", "precision_bits": 106,
    ...       "u": [0.0], "period": 1, "boxes": [{"radius": 1e-13, "contraction": 2e-14},
    ...       {"radius": 1e-13, "contraction": 3e-14}], "proved": True}})
    >>> print(proof_line(cex))
    interval Krawczyk test in 106-bit ball arithmetic, constant input u = [0], 2 boxes of radius ≤ 1e-13 (contraction ≤ 3e-14); re-check it with `certify verify REPORT.json MODEL`
    """
    proof: Any = (getattr(cex, "data", None) or {}).get("proof")
    if not isinstance(proof, dict) and not hasattr(proof, "get"):
        return None
    boxes = list(proof.get("boxes") or [])
    if not boxes:
        return None
    radius = max(float(b.get("radius", 0.0)) for b in boxes)
    contraction = max(float(b.get("contraction", 0.0)) for b in boxes)
    u = ", ".join(fmt_num(float(v)) for v in proof.get("u", []))
    period = int(proof.get("period", 1))
    what = f"{len(boxes)} boxes" if len(boxes) > 1 else f"a box (period {period})"
    where = f"constant input u = [{u}]" if u else "the loop's constant reference"
    return (f"interval Krawczyk test in {proof.get('precision_bits', '?')}-bit ball arithmetic, {where}, "
            f"{what} of radius ≤ {fmt_num(radius)} (contraction ≤ {fmt_num(contraction)}); "
            "re-check it with `certify verify REPORT.json MODEL`")


def region_lines(report: Any) -> list[str]:
    """A short section on a proved region of attraction (``region_of_attraction`` check), else ``[]``.

    The first line is the heading; it says that the result is regional and does not change the verdict.

    >>> from certify.report.model import Report
    >>> from certify.results import CheckResult, Property
    >>> c = CheckResult("loop.region", Property.REGION, CheckStatus.PROVED, "circle_local_slopes", quantities={
    ...     "ellipsoid": {"c": 0.5}, "contraction_rate": 0.99,
    ...     "states": [{"name": "p", "unit": "bar", "half_width": 3.2, "centre": 108.0, "plant": True}],
    ...     "channels": [{"kind": "saturation", "slope": [1.0, 1.0]}]})
    >>> for line in region_lines(Report(model={}, checks=(c,), requested=(Property.GAS,), created="x",
    ...                                 tool_version="0")):
    ...     print(line)
    region of attraction (loop.region; regional only, global stability not proved, verdict unchanged):
    invariant ellipsoid (x − x̂)ᵀP(x − x̂) ≤ 0.5 around the equilibrium, contraction factor 0.99 per step
    p = 108 ± 3.2 bar
    local slopes used: saturation [1, 1]
    """
    out: list[str] = []
    for c in report.checks:
        if c.property.value != "region_of_attraction" or c.status is not CheckStatus.PROVED:
            continue
        q = c.quantities
        ell = q.get("ellipsoid") or {}
        rate = q.get("contraction_rate")
        out.append(f"region of attraction ({c.name}; regional only, global stability not proved, verdict unchanged):")
        out.append(f"invariant ellipsoid (x − x̂)ᵀP(x − x̂) ≤ {fmt_num(ell.get('c'))} around the equilibrium"
                   + (f", contraction factor {float(rate):.6g} per step" if rate is not None else ""))
        states = list(q.get("states") or [])
        shown = [s for s in states if s.get("plant")] or states
        for s in shown[:8]:
            unit = f" {s['unit']}" if s.get("unit") else ""
            out.append(f"{s.get('name')} = {fmt_num(s.get('centre'))} ± {fmt_num(s.get('half_width'))}{unit}")
        if len(shown) > 8:
            out.append(f"… {len(shown) - 8} more states (see the JSON report)")
        chans = list(q.get("channels") or [])
        if chans:
            parts = [f"{ch.get('kind')} [{fmt_num(ch['slope'][0])}, {fmt_num(ch['slope'][1])}]" for ch in chans[:8]]
            more = f", … ({len(chans)} channels)" if len(chans) > 8 else ""
            out.append("local slopes used: " + ", ".join(parts) + more)
        break
    return out
