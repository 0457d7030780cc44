"""Audit records as CSV rows and NDJSON lines."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

COLUMNS = (
    "record_id",
    "occurred_at",
    "recorded_at",
    "event_type",
    "outcome",
    "actor",
    "subject",
    "target",
    "correlation_id",
    "trace_id",
    "source_topic",
    "source_event_id",
    "hash",
    "payload",
)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    text = str(value)
    # A cell a spreadsheet would run as a formula (CSV injection) is quoted as text.
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv(values: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue()


CSV_HEADER = _csv(list(COLUMNS))


def csv_line(record: Mapping[str, Any]) -> str:
    """One record as a CSV row (COLUMNS order)."""
    return _csv([_cell(record.get(column)) for column in COLUMNS])


def ndjson_line(record: Mapping[str, Any]) -> str:
    """One record as a JSON line."""
    return json.dumps({c: record.get(c) for c in COLUMNS}, default=_json_default) + "\n"


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)
