"""What a report tells people to do next, and one line on the counterexample search.

Every renderer (text, Markdown, HTML) uses these, so the advice is the same everywhere, and every
step names a command that works as written (``MODEL`` and ``DATA.npz`` stand for the user's files).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from certify.results import CheckStatus, Verdict

if TYPE_CHECKING:
    from certify.report.model import Report

_GATED = ("gru", "lstm")


def _arch(report: Report) -> str:
    return str(report.model.get("architecture") or "")


def next_steps(report: Report) -> list[str]:
    """Actionable next steps for ``report`` (empty when there is nothing to do).

    >>> from certify.report.model import Report
    >>> r = Report.from_error(Verdict.INVALID_INPUT, "bad", model={"path": "m.onnx"}, created="x", tool_version="0")
    >>> next_steps(r)[0].startswith("Fix the input")
    True
    """
    v = report.verdict
    model = str(report.model.get("path") or "MODEL")
    out: list[str] = []
    if v is Verdict.INVALID_INPUT:
        return ["Fix the input named in the reason above; `certify inspect MODEL` shows how certify reads a model."]
    if v is Verdict.INTERNAL_ERROR:
        return ["Rerun with `--debug` and report the traceback as a bug in certify."]
    if v is Verdict.CERTIFIED:
        if report.subject == "model" and (report.assumptions or {}).get("input_range") is None:
            out.append("The certificate assumes inputs in [-1, 1] (network units): declare the real range "
                       "(`--input-range LOW:HIGH` or the model's metadata) and check again.")
        out.append("Keep it certified: run `certify check` on every new checkpoint in CI (docs/ci-gate.md).")
        return out
    if v is Verdict.UNSTABLE:
        kind = report.counterexample.kind if report.counterexample is not None else "counterexample"
        out.append(f"The {kind.replace('_', ' ')} is proved: the model (or loop) is not stable as it stands. "
                   f"Re-check the proof yourself: `certify check {model} --format json -o report.json` then "
                   f"`certify verify report.json {model}`.")
    if report.subject == "loop":
        obstruction = (report.loop or {}).get("obstruction") if report.loop else None
        if obstruction is not None and hasattr(obstruction, "get") and obstruction.get("message"):
            out.append("Apply the fix the structural diagnosis names (in the reasons above); docs/loops.md shows "
                       "loop designs that certify (a linear bypass in the network, a velocity-form PI).")
        elif v is Verdict.NOT_CERTIFIED:
            out.append("Try another criterion or solver (`--method all`, `--solver scs`), or give the network a "
                       "linear bypass (an explicit linear path from its inputs to the estimate), which global "
                       "slope-class certificates need around integral action.")
        return out
    if _arch(report) in _GATED:
        residuals = [c for c in report.checks if c.status is CheckStatus.NOT_PROVED and c.margin is not None]
        if residuals or v is Verdict.UNSTABLE:
            out.append(f"Retrain with the δISS penalty (Bonassi, Farina & Scattolini 2021): `certify retrain "
                       f"{model} --data DATA.npz -o retrained/` (docs/retrain.md), then check `retrained/model.onnx`.")
    elif v is not Verdict.CERTIFIED:
        out.append(f"Retrain with a contraction or LMI penalty: `certify retrain {model} --data DATA.npz -o "
                   "retrained/ --target lmi` (docs/retrain.md), or try `--method all` to run every criterion.")
    if report.subject == "model" and (report.assumptions or {}).get("input_range") is None:
        out.append("No input range was declared: the δISS tests assumed [-1, 1]; declare the real range with "
                   "`--input-range LOW:HIGH`.")
    return out


def search_line(assumptions: Any) -> str | None:
    """One sentence on the counterexample search recorded in ``assumptions`` (``None`` when none ran).

    >>> search_line({"falsification": {"seed": 0, "inputs_searched": 32, "evaluations": 220477, "found": None,
    ...              "truncated": False, "unproved_candidates": []}})
    'counterexample search (seed 0): 32 constant inputs, 220477 evaluations, no proved witness'
    """
    f: Any = (assumptions or {}).get("falsification")
    if not isinstance(f, dict) and not hasattr(f, "get"):
        return None
    if f.get("error"):
        return f"counterexample search failed: {f['error']}"
    found = f.get("found")
    n_in = f.get("inputs_searched", "?")
    text = (f"counterexample search (seed {f.get('seed', 0)}): {n_in} constant input{'' if n_in == 1 else 's'}, "
            f"{f.get('evaluations', '?')} evaluations, " + (f"proved a {found} witness" if found else "no proved witness"))
    unproved = list(f.get("unproved_candidates") or [])
    if unproved:
        text += f"; {len(unproved)} float64 candidate(s) could not be proved and were dropped"
    if f.get("truncated"):
        text += "; stopped by the time limit before its budget was spent"
    return text
