"""A query or a view on PostgreSQL as a source, streamed through a server-side cursor.

The statement is prepared when the reader opens, so a typo in the query or a missing view
fails before any row is read, and the columns are known for checking the mappings. The rows
come from a cursor in one read-only REPEATABLE READ transaction, begun before the query is
prepared: at most `prefetch` rows are
in memory at once, every batch sees the same snapshot (an HR job committing halfway through a
run does not give it half the old and half the new data), and the source can write nothing.

Each value becomes text, as a CSV cell would be: NULL is "" (not set, like an empty cell;
CEL's `row` is a map of strings, so it cannot hold a null), a date or timestamp its ISO 8601
form (`2025-03-01`, `2025-03-01T08:00:00+00:00`), a bool `true` or `false`, a number as
PostgreSQL would print it. Columns whose values are no single text (bytea, arrays, composite
and range types) are refused when the reader opens: cast them in the query.

The DSN is read from the environment variable the configuration names and never appears in
an error message (drivers like to repeat what they were given).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import AsyncIterator, Mapping
from urllib.parse import urlsplit

import asyncpg

from accord.sources.config import SqlOptions
from accord.sources.csv_reader import SourceRow
from accord.sources.problems import RowProblem
from accord.sources.readers.base import SourceRejected, SourceUnavailable, scrub, secret

_NOT_TEXT_KINDS = frozenset({"array", "composite", "range", "multirange"})
_NOT_TEXT_TYPES = frozenset({"bytea"})
#: Errors that say the server or the network failed, not the query: the run may be repeated.
_UNAVAILABLE = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError, TimeoutError)


class SqlReader:
    """An open query: its columns, then its rows through a cursor."""

    def __init__(
        self,
        source: str,
        options: SqlOptions,
        statement: asyncpg.prepared_stmt.PreparedStatement,
        secrets: tuple[str, ...],
    ) -> None:
        self._source = source
        self._options = options
        self._statement = statement
        self._secrets = secrets
        self.columns = tuple(attribute.name for attribute in statement.get_attributes())
        self.problems: list[RowProblem] = []

    async def rows(self) -> AsyncIterator[SourceRow]:
        """The rows in the query's order, numbered from 1, `prefetch` per round trip."""
        options = self._options
        position = 0
        try:
            cursor = self._statement.cursor(prefetch=options.prefetch, timeout=options.timeout_s)
            async for record in cursor:
                position += 1
                values = zip(self.columns, record.values(), strict=True)
                yield SourceRow(position, {column: _text(value) for column, value in values})
        except (asyncpg.PostgresError, *_UNAVAILABLE) as error:
            doing = f"reading row {position + 1}"
            raise _failure(self._source, doing, error, self._secrets) from None


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.date | datetime.time):  # a datetime is a date too
        return value.isoformat()
    return str(value)  # int, Decimal, float, UUID, addresses...


def _query(options: SqlOptions) -> str:
    if options.query is not None:
        return options.query
    view = options.view or ""
    # The config checked it is one or two plain identifiers; quoting keeps their case.
    return "SELECT * FROM " + ".".join(f'"{part}"' for part in view.split("."))  # noqa: S608


def _failure(source: str, doing: str, error: BaseException, secrets: tuple[str, ...]) -> Exception:
    """A clear message from the driver's error, with the secrets scrubbed out of it."""
    if isinstance(error, asyncpg.PostgresError):
        detail = f"{error.sqlstate}: {error}"
    elif isinstance(error, TimeoutError):
        detail = "no answer in time"
    else:
        detail = f"{type(error).__name__}: {error}"
    message = scrub(f"source {source!r}: {doing}: {detail}", *secrets)
    if isinstance(error, _UNAVAILABLE):
        return SourceUnavailable(message)
    return SourceRejected(message)


def _secrets(dsn: str) -> tuple[str, ...]:
    try:
        password = urlsplit(dsn).password
    except ValueError:
        password = None
    return (dsn, password) if password else (dsn,)


async def _connect(source: str, options: SqlOptions, dsn: str) -> asyncpg.Connection:
    secrets = _secrets(dsn)
    try:
        return await asyncpg.connect(
            dsn,
            timeout=options.timeout_s,
            server_settings={"application_name": f"accord-source-{source}"},
        )
    except (asyncpg.PostgresError, *_UNAVAILABLE) as error:
        raise _failure(source, f"connecting (${options.dsn_env})", error, secrets) from None
    except Exception as error:  # a malformed DSN: the parser's message may quote it
        message = f"source {source!r}: ${options.dsn_env} is no usable PostgreSQL URL"
        raise SourceRejected(scrub(f"{message} ({type(error).__name__})", *secrets)) from None


@contextlib.asynccontextmanager
async def open_sql(
    source: str, options: SqlOptions, environ: Mapping[str, str]
) -> AsyncIterator[SqlReader]:
    """Connect with the DSN from the environment and prepare the query; closed at the end."""
    dsn = secret(environ, options.dsn_env, source, "the database URL")
    secrets = _secrets(dsn)
    connection = await _connect(source, options, dsn)
    try:
        try:
            # The transaction first: asyncpg's prepare leaves the connection in an implicit
            # transaction, where an isolation level can no longer be chosen.
            await connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            statement = await connection.prepare(_query(options), timeout=options.timeout_s)
        except (asyncpg.PostgresError, *_UNAVAILABLE) as error:
            raise _failure(source, "preparing the query", error, secrets) from None
        _check_columns(source, statement)
        yield SqlReader(source, options, statement, secrets)
    finally:
        # Closing ends the transaction (a rollback: it wrote nothing).
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.close(), options.timeout_s)
        if not connection.is_closed():
            connection.terminate()


def _check_columns(source: str, statement: asyncpg.prepared_stmt.PreparedStatement) -> None:
    attributes = statement.get_attributes()
    if not attributes:
        raise SourceRejected(f"source {source!r}: the query returns no columns")
    names = [attribute.name for attribute in attributes]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise SourceRejected(f"source {source!r}: columns named twice: {', '.join(twice)}")
    for attribute in attributes:
        kind, name = attribute.type.kind, attribute.type.name
        if kind in _NOT_TEXT_KINDS or name in _NOT_TEXT_TYPES:
            raise SourceRejected(
                f"source {source!r}: column {attribute.name} is {name} ({kind}), not text: "
                "cast it in the query (or leave it out)"
            )
