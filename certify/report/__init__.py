"""Reports: the :class:`Report` value and its renderers (text, JSON, Markdown, HTML).

The JSON Schema of :meth:`Report.to_dict` ships as ``report.schema.json`` (see :func:`schema`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from certify.report.model import SCHEMA_VERSION, Report, ReportError, jsonable, reports_to_json
from certify.report.verdict import Decision, decide

SCHEMA_PATH = Path(__file__).with_name("report.schema.json")


def schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a report, or of a list of reports.

    >>> schema()["$schema"]
    'https://json-schema.org/draft/2020-12/schema'
    """
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


__all__ = [
    "SCHEMA_PATH",
    "SCHEMA_VERSION",
    "Decision",
    "Report",
    "ReportError",
    "decide",
    "jsonable",
    "reports_to_json",
    "schema",
]
