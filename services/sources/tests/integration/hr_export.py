"""An HR export for the sources tests: people as CSV rows, and the source that reads them."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from accord.sources.config import Source

COLUMNS = ("id", "first", "last", "mail", "dept", "hired", "status")


def person(n: int, **changes: str) -> dict[str, str]:
    row = {
        "id": f"E{n:04d}",
        "first": f"First{n}",
        "last": f"Last{n}",
        "mail": f"p{n}@example.org",
        "dept": ("sales", "it", "ops")[n % 3],
        "hired": "2024-01-15",
        "status": "A",
    }
    return {**row, **changes}


def write(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def source(path: Path, **extra: Any) -> Source:
    return Source.model_validate(
        {
            "name": "hr",
            "kind": "csv",
            "csv": {"path": str(path)},
            "key": "id",
            "mappings": {
                "user_id": '"hr-" + row.id',
                "user_name": 'lower(row.first) + "." + lower(row.last)',
                "given_name": "first",
                "family_name": "last",
                "email": "mail",
                "employee_number": "id",
                "department": "dept",
                "hire_date": "hired",
            },
            "status": {"column": "status", "active_values": ["A"]},
            "correlation": [{"by": "employee_number"}],
            **extra,
        }
    )
