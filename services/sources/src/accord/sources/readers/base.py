"""What every reader promises, so a run treats a CSV export, a view and a directory alike.

A reader is opened (the connection made, the columns known), then streams its rows once as
`SourceRow`s: a position (the CSV line, the query's row number, the search's entry number)
and the row's fields as text, an empty text meaning "not set". A bad row becomes a
`RowProblem` in `problems` and reading goes on; only what stops the whole read raises.

Two error types, because the next step decides differently: `SourceUnavailable` (no answer,
a timeout, a dropped connection: retry the run later) and `SourceRejected` (a refused
password, a bad query, a missing base DN: an operator must fix the configuration). Both are
`ExportError`s, the CSV reader's "the export as a whole cannot be read".

Secrets (a DSN, a bind password) come from the environment variable the configuration
names and never appear in an error message: `scrub` removes them from whatever a driver says.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Protocol

from accord.sources.csv_reader import ExportError, SourceRow
from accord.sources.problems import RowProblem


class SourceUnavailable(ExportError):
    """The source did not answer (connection, timeout): the run may be repeated later."""


class SourceRejected(ExportError):
    """The source refused the read (credentials, query, base DN): the configuration is wrong."""


class SourceReader(Protocol):
    """An open source: the fields its rows have, then its rows (once)."""

    @property
    def columns(self) -> tuple[str, ...]:
        """Every row's fields, known before the first row (the mappings are checked on it)."""
        ...

    @property
    def problems(self) -> list[RowProblem]:
        """The rows that could not be read, so far."""
        ...

    def rows(self) -> AsyncIterator[SourceRow]:
        """The good rows in the source's order; raises only when the whole read fails."""
        ...


def secret(environ: Mapping[str, str], name: str, source: str, what: str) -> str:
    """The secret in environment variable `name`; a missing or empty one is refused (an empty
    bind password would make an LDAP bind anonymous)."""
    value = environ.get(name, "")
    if not value:
        raise SourceRejected(f"source {source!r}: environment variable {name} ({what}) is not set")
    return value


def scrub(text: str, *secrets: str | None) -> str:
    """`text` without any of the secrets, for a message that an operator or a log will read."""
    for value in secrets:
        if value:
            text = text.replace(value, "***")
    return text
