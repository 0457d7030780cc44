"""Request parameter types that refuse what the database would choke on."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import HTTPException, Path, Query

#: A short printable text: no control characters (PostgreSQL refuses NUL), bounded length.
Text = Annotated[str, Query(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")]
#: An id in a path: the same alphabet as event identifiers.
Id = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@+-]*$")]
#: A non-negative cursor that fits PostgreSQL's bigint.
Cursor = Annotated[int, Query(ge=0, le=2**63 - 1)]
#: An RFC 3339 date-time with an offset, kept as text: pydantic would take numbers as times.
Rfc3339 = Annotated[
    str,
    Query(
        max_length=40,
        json_schema_extra={"format": "date-time"},
        description="RFC 3339 date-time with offset, e.g. 2026-11-25T10:00:00Z",
    ),
]


def parse_rfc3339(value: str | None, name: str) -> datetime | None:
    """The datetime of an Rfc3339 parameter; 400 if it is not a real date."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise HTTPException(400, f"{name} is not a valid date-time") from None
    if parsed.tzinfo is None or "T" not in value.upper():
        raise HTTPException(400, f"{name} needs a date, a time and an offset (RFC 3339)")
    return parsed
