"""The :class:`Report` value: everything one run found out about one model (or one closed loop).

Every output format (text, JSON, Markdown, HTML) renders from this one immutable value; the verdict
is *derived* from the checks by :func:`certify.report.verdict.decide`, so a report can never claim
``certified`` while its checks say otherwise.  Only invalid input and internal errors set the
verdict directly (through :attr:`Report.error`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from certify.frozen import FrozenDict
from certify.report.verdict import Decision, decide
from certify.results import CheckResult, CheckStatus, Counterexample, ExitCode, Property, Verdict

SCHEMA_VERSION = "1.0"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _tool_version() -> str:
    from certify import __version__

    return __version__


def jsonable(value: Any) -> Any:
    """Convert ``value`` to plain JSON types, with sorted mapping keys (deterministic output).

    numpy arrays and scalars become lists and floats, enums their values, objects with ``to_dict``
    their dict; non-finite floats become ``None`` (JSON has no inf/NaN).

    >>> jsonable({"b": (1, float("inf")), "a": Property.GAS})
    {'a': 'gas', 'b': [1, None]}
    """
    if isinstance(value, Enum):
        return jsonable(value.value)
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(value[k]) for k in sorted(value, key=str)}
    if hasattr(value, "tolist"):  # numpy arrays and scalars, without importing numpy
        return jsonable(value.tolist())
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [jsonable(v) for v in items]
    return str(value)


def counterexample_dict(cex: Counterexample | None) -> dict[str, Any] | None:
    """JSON form of a counterexample (``None`` stays ``None``)."""
    if cex is None:
        return None
    return {
        "kind": cex.kind,
        "description": cex.description,
        "residual": jsonable(cex.residual),
        "data": jsonable(cex.data),
    }


def check_dict(c: CheckResult) -> dict[str, Any]:
    """JSON form of one :class:`~certify.results.CheckResult` (fixed key order)."""
    return {
        "name": c.name,
        "scope": c.scope,
        "property": c.property.value,
        "status": c.status.value,
        "criterion": c.criterion,
        "message": c.message,
        "margin": jsonable(c.margin),
        "quantities": jsonable(c.quantities),
        "solver": c.solver,
        "solver_status": c.solver_status,
        "validation": jsonable(c.validation),
        "seconds": jsonable(float(c.seconds)),
        "counterexample": counterexample_dict(c.counterexample),
    }


def _cex_from_dict(d: Mapping[str, Any] | None) -> Counterexample | None:
    if not d:
        return None
    return Counterexample(str(d["kind"]), str(d.get("description", "")), d.get("data") or {},
                          float(d.get("residual") or 0.0))


def _check_from_dict(d: Mapping[str, Any]) -> CheckResult:
    return CheckResult(
        name=str(d["name"]), property=Property(d["property"]), status=CheckStatus(d["status"]),
        criterion=str(d.get("criterion", "")), message=str(d.get("message") or ""),
        margin=None if d.get("margin") is None else float(d["margin"]), quantities=d.get("quantities") or {},
        solver=d.get("solver"), solver_status=d.get("solver_status"), validation=d.get("validation") or {},
        seconds=float(d.get("seconds") or 0.0), counterexample=_cex_from_dict(d.get("counterexample")),
        scope=str(d.get("scope", "model")),
    )


@dataclass(frozen=True)
class ReportError:
    """Why a run produced no verdict from checks: ``verdict`` is ``INVALID_INPUT`` or ``INTERNAL_ERROR``.

    The ``error`` of a report made by :meth:`Report.from_error`; in JSON it is
    ``{"kind": verdict, "type": error_type, "message": message}``.

    >>> r = Report.from_error(Verdict.INVALID_INPUT, "model file not found: m.onnx", error_type="ModelFileError")
    >>> r.error
    ReportError(verdict=<Verdict.INVALID_INPUT: 'invalid_input'>, message='model file not found: m.onnx', error_type='ModelFileError')
    """

    verdict: Verdict
    message: str
    error_type: str = ""


def _freeze(m: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return FrozenDict(m or {})


@dataclass(frozen=True)
class Report:
    """One run's findings for one model or closed loop.

    Parameters
    ----------
    model : Mapping
        Model summary: :meth:`Network.summary` (path, SHA-256, architecture, layers, input range...).
    checks : tuple of CheckResult
        Every check that ran, model-scope and per-part.
    requested : tuple of Property
        Properties the run had to prove (from the method; see :mod:`certify.report.verdict`).
    subject : str
        ``"model"`` (a network on its own) or ``"loop"`` (a closed loop).
    loop : Mapping or None
        Plant / loop description for closed loops.
    method, solver : str, str or None
        What was asked for on the command line / in :func:`certify.check`.
    assumptions : Mapping
        Input ranges and where they came from, norms, tolerances and margins used.
    timings : Mapping
        Seconds per stage (``load``, ``checks``, ``falsify``, ``total``).
    simulation : Mapping or None
        Time series for plots: ``{"t": [...], "<signal>": [...] or [[...], ...]}``.
    counterexample : Counterexample or None
        The witness of an ``unstable`` verdict (taken from the disproving check when not given), or
        one found outside a check (e.g. by a loop analysis).
    error : ReportError or None
        Set for ``invalid_input`` / ``internal_error``; then the verdict is the error's.
    notes : tuple of str
        Extra remarks shown with the reasons.
    created : str
        ISO-8601 UTC timestamp (inject one for reproducible output).
    tool_version : str
        certify version that produced the report.

    Examples
    --------
    >>> from certify.results import CheckStatus
    >>> c = CheckResult("gru.delta_iss", Property.DELTA_ISS, CheckStatus.PROVED, "bonassi_gru_delta_iss",
    ...                 margin=-0.2)
    >>> r = Report(model={"path": "m.onnx"}, checks=(c,), requested=(Property.DELTA_ISS,), created="2026-01-01")
    >>> r.verdict.value, int(r.exit_code)
    ('certified', 0)
    >>> r.to_dict()["checks"][0]["margin"]
    -0.2
    """

    model: Mapping[str, Any]
    checks: tuple[CheckResult, ...] = ()
    requested: tuple[Property, ...] = ()
    subject: str = "model"
    loop: Mapping[str, Any] | None = None
    method: str = "auto"
    solver: str | None = None
    assumptions: Mapping[str, Any] = field(default_factory=dict)
    timings: Mapping[str, float] = field(default_factory=dict)
    simulation: Mapping[str, Any] | None = None
    counterexample: Counterexample | None = None
    error: ReportError | None = None
    notes: tuple[str, ...] = ()
    created: str = field(default_factory=_now)
    tool_version: str = field(default_factory=_tool_version)

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", _freeze(self.model))
        object.__setattr__(self, "checks", tuple(self.checks))
        object.__setattr__(self, "requested", tuple(Property(p) for p in self.requested))
        object.__setattr__(self, "notes", tuple(self.notes))
        object.__setattr__(self, "assumptions", _freeze(self.assumptions))
        object.__setattr__(self, "timings", _freeze(self.timings))
        if self.loop is not None:
            object.__setattr__(self, "loop", _freeze(self.loop))
        if self.simulation is not None:
            object.__setattr__(self, "simulation", _freeze(self.simulation))
        if self.subject not in ("model", "loop"):
            raise ValueError(f"Report.subject must be 'model' or 'loop', not {self.subject!r}")
        if self.error is not None and self.error.verdict not in (Verdict.INVALID_INPUT, Verdict.INTERNAL_ERROR):
            raise ValueError("Report.error must carry verdict invalid_input or internal_error")
        if self.counterexample is None and self.error is None:  # the verdict's witness, when it is unstable
            witness = decide(self.checks, self.requested, self.subject).counterexample
            if witness is not None:
                object.__setattr__(self, "counterexample", witness)

    # --- constructors for runs that could not check anything ---------------------------------------
    @classmethod
    def from_error(
        cls, verdict: Verdict, message: str, *, model: Mapping[str, Any] | None = None, error_type: str = "", **kw: Any
    ) -> Report:
        """A report for invalid input or an internal error (so machine output is still produced).

        >>> r = Report.from_error(Verdict.INVALID_INPUT, "no such file: m.onnx", model={"path": "m.onnx"})
        >>> r.verdict.value, int(r.exit_code), r.reasons
        ('invalid_input', 3, ('no such file: m.onnx',))
        """
        return cls(model=model or {}, error=ReportError(verdict, message, error_type), **kw)

    # --- derived -----------------------------------------------------------------------------------
    @property
    def decision(self) -> Decision:
        """The verdict, its reasons and its counterexample (see :func:`certify.report.verdict.decide`)."""
        if self.error is not None:
            return Decision(self.error.verdict, (self.error.message,), None)
        d = decide(self.checks, self.requested, self.subject)
        if d.counterexample is None and self.counterexample is not None:
            d = Decision(d.verdict, d.reasons, self.counterexample)
        return Decision(d.verdict, d.reasons + self.notes, d.counterexample)

    @property
    def certificate(self) -> dict[str, Any] | None:
        """The validated LMI certificate behind a ``certified`` verdict, ready to save as JSON.

        The Luré system it is about (``A, B, C, D``, slope bounds ``K``), the Lyapunov matrix ``P``, the
        multipliers and the float64 validation figures, plus the model's SHA-256 and the check's name.
        ``certify verify FILE`` (:func:`certify.verify.verify_certificate`) re-checks it without any solver.
        ``None`` when no LMI proved the verdict (closed-form δISS certificates are their residuals, in
        the checks).
        """
        for c in self.checks:
            if c.scope == "model" and c.proved and c.certificate is not None:
                out = jsonable(c.certificate)
                if self.loop and self.loop.get("builtin_plant"):
                    out["builtin_plant"] = self.loop.get("builtin_plant")
                out.update({"check": c.name, "property": c.property.value, "subject": self.subject,
                            "model_sha256": self.model.get("sha256"), "model_path": self.model.get("path"),
                            "tool_version": self.tool_version, "created": self.created})
                return out
        return None

    @property
    def verdict(self) -> Verdict:
        return self.decision.verdict

    @property
    def exit_code(self) -> ExitCode:
        return self.verdict.exit_code

    @property
    def reasons(self) -> tuple[str, ...]:
        return self.decision.reasons

    @property
    def model_name(self) -> str:
        """Short label of the model (its path, or its architecture when built in Python)."""
        return str(self.model.get("path") or self.model.get("architecture") or "model")

    # --- renderers ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form that matches ``certify/report/report.schema.json`` (fixed key order)."""
        d = self.decision
        return {
            "schema_version": SCHEMA_VERSION,
            "tool": {"name": "certify", "version": self.tool_version},
            "created": self.created,
            "verdict": d.verdict.value,
            "exit_code": int(d.verdict.exit_code),
            "reasons": list(d.reasons),
            "subject": self.subject,
            "requested_properties": [p.value for p in self.requested],
            "method": self.method,
            "solver": self.solver,
            "model": jsonable(self.model),
            "loop": jsonable(self.loop),
            "checks": [check_dict(c) for c in self.checks],
            "counterexample": counterexample_dict(d.counterexample),
            "assumptions": jsonable(self.assumptions),
            "timings": jsonable(self.timings),
            "simulation": jsonable(self.simulation),
            "error": None
            if self.error is None
            else {"kind": self.error.verdict.value, "type": self.error.error_type, "message": self.error.message},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        """Rebuild a report from :meth:`to_dict` output (e.g. a saved JSON report).

        Non-finite margins, which JSON stores as ``null``, come back as ``None``; everything else,
        and therefore every renderer's output, round-trips.

        >>> r = Report.from_error(Verdict.INVALID_INPUT, "bad", model={"path": "m.onnx"}, created="x")
        >>> Report.from_dict(r.to_dict()).to_dict() == r.to_dict()
        True
        """
        try:
            err = data.get("error")
            kw: dict[str, Any] = {"created": str(data["created"]), "tool_version": str((data.get("tool") or {}).get("version", ""))}
            if err:
                return cls.from_error(Verdict(err["kind"]), str(err["message"]), model=data.get("model") or {},
                                      error_type=str(err.get("type") or ""), method=data.get("method", "auto"),
                                      solver=data.get("solver"), timings=data.get("timings") or {}, **kw)
            checks = tuple(_check_from_dict(c) for c in data.get("checks") or ())
            requested = tuple(Property(p) for p in data.get("requested_properties") or ())
            subject = str(data.get("subject", "model"))
            cex = _cex_from_dict(data.get("counterexample"))
            derived = decide(checks, requested, subject)
            reasons = list(data.get("reasons") or [])
            notes = tuple(reasons[len(derived.reasons):]) if reasons[: len(derived.reasons)] == list(
                derived.reasons) else ()
            return cls(model=data.get("model") or {}, checks=checks, requested=requested, subject=subject,
                       loop=data.get("loop"), method=str(data.get("method", "auto")), solver=data.get("solver"),
                       assumptions=data.get("assumptions") or {}, timings=data.get("timings") or {},
                       simulation=data.get("simulation"), counterexample=cex, notes=notes, **kw)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            from certify.errors import InvalidInputError

            raise InvalidInputError(f"not a certify report: {type(exc).__name__}: {exc}") from None

    @classmethod
    def from_json(cls, text: str) -> Report:
        """Rebuild a report from :meth:`to_json` text (one report; see :meth:`from_dict`)."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            from certify.errors import InvalidInputError

            raise InvalidInputError(f"not a JSON report: {type(exc).__name__}") from None
        if not isinstance(data, Mapping):
            from certify.errors import InvalidInputError

            raise InvalidInputError("a JSON report is an object (a list holds several: use from_dict on each).")
        return cls.from_dict(data)

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text of :meth:`to_dict` (deterministic, UTF-8 safe)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False)

    def to_text(self, color: bool = False) -> str:
        """Human summary (what the command line prints to stderr)."""
        from certify.report.text import render_text

        return render_text(self, color=color)

    def to_markdown(self) -> str:
        """Markdown for pull-request comments: verdict first, then a table of checks."""
        from certify.report.markdown import render_markdown

        return render_markdown(self)

    def to_html(self) -> str:
        """One self-contained HTML page (inline CSS and SVG plots, no external URLs)."""
        from certify.report.html import render_html

        return render_html([self])

    def __repr__(self) -> str:
        """A one-line summary (the full data: :meth:`to_dict`).

        >>> Report.from_error(Verdict.INVALID_INPUT, "bad", model={"path": "/tmp/m.onnx"}, created="x")
        Report(verdict='invalid_input', model='m.onnx', subject='model', checks=0)
        """
        import os

        d = self.decision
        parts = [f"verdict={d.verdict.value!r}", f"model={os.path.basename(self.model_name) or self.model_name!r}",
                 f"subject={self.subject!r}", f"checks={len(self.checks)}"]
        if d.counterexample is not None:
            parts.append(f"counterexample={d.counterexample.kind!r}")
        return f"Report({', '.join(parts)})"

    def _repr_html_(self) -> str:
        """The HTML report's section for this model, for notebooks (Jupyter calls it)."""
        from certify.report.html import notebook_html

        return notebook_html(self)


def reports_to_json(reports: Sequence[Report], indent: int | None = 2) -> str:
    """One report → one JSON object; several → a JSON array of report objects (CLI convention).

    >>> r = Report.from_error(Verdict.INVALID_INPUT, "bad", created="2026-01-01", tool_version="0")
    >>> reports_to_json([r, r], indent=None).startswith("[{")
    True
    """
    if len(reports) == 1:
        return reports[0].to_json(indent)
    return json.dumps([r.to_dict() for r in reports], indent=indent, ensure_ascii=False, allow_nan=False)
