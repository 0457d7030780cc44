"""What the SQL readers (PostgreSQL, MariaDB) share: the statement, values as text, the column
checks and error messages with the secrets scrubbed out.

Each driver has its own errors and types; what a row looks like to the rest of a run does not
depend on which database it came from, so that part lives here once.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from urllib.parse import urlsplit

from accord.sources.config import SqlOptions
from accord.sources.readers.base import SourceRejected, SourceUnavailable, scrub


def as_text(value: object) -> str:
    """A value as a CSV cell would hold it: NULL "", dates ISO 8601, bools true/false."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.date | datetime.time):  # a datetime is a date too
        return value.isoformat()
    return str(value)  # int, Decimal, float, UUID, addresses...


def query_text(options: SqlOptions, quote: str) -> str:
    """The configured query, or SELECT * of the view with each name part in `quote`s."""
    if options.query is not None:
        return options.query
    view = options.view or ""
    # The config checked it is one or two plain identifiers; quoting keeps their case.
    parts = (f"{quote}{part}{quote}" for part in view.split("."))
    return "SELECT * FROM " + ".".join(parts)  # noqa: S608


def dsn_secrets(dsn: str) -> tuple[str, ...]:
    """The DSN and its password: neither may appear in a message."""
    try:
        password = urlsplit(dsn).password
    except ValueError:
        password = None
    return (dsn, password) if password else (dsn,)


def failure(
    source: str, doing: str, detail: str, *, unavailable: bool, secrets: tuple[str, ...]
) -> SourceUnavailable | SourceRejected:
    """The error for a failed step, its message without the secrets."""
    message = scrub(f"source {source!r}: {doing}: {detail}", *secrets)
    return SourceUnavailable(message) if unavailable else SourceRejected(message)


def check_names(source: str, names: Sequence[str]) -> None:
    """Refuse a query without columns or with a column name twice (a row is a map)."""
    if not names:
        raise SourceRejected(f"source {source!r}: the query returns no columns")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise SourceRejected(f"source {source!r}: columns named twice: {', '.join(twice)}")
