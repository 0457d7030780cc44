"""A query or a view on PostgreSQL as a source, streamed through a server-side cursor.

A MariaDB DSN (`mysql://`, `mariadb://`) is handed to `readers.mariadb`, with the same promises.

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
from collections.abc import AsyncIterator, Mapping

import asyncpg

from accord.sources.config import SqlOptions
from accord.sources.csv_reader import SourceRow
from accord.sources.problems import RowProblem
from accord.sources.readers.base import SourceRejected, scrub, secret
from accord.sources.readers.mariadb import SCHEMES as MARIADB_SCHEMES
from accord.sources.readers.mariadb import MariaDbReader, open_mariadb
from accord.sources.readers.sql_rows import as_text, check_names, dsn_secrets, failure, query_text

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
                yield SourceRow(position, {column: as_text(value) for column, value in values})
        except (asyncpg.PostgresError, *_UNAVAILABLE) as error:
            doing = f"reading row {position + 1}"
            raise _failure(self._source, doing, error, self._secrets) from None


def _failure(source: str, doing: str, error: BaseException, secrets: tuple[str, ...]) -> Exception:
    """A clear message from the driver's error, with the secrets scrubbed out of it."""
    if isinstance(error, asyncpg.PostgresError):
        detail = f"{error.sqlstate}: {error}"
    elif isinstance(error, TimeoutError):
        detail = "no answer in time"
    else:
        detail = f"{type(error).__name__}: {error}"
    unavailable = isinstance(error, _UNAVAILABLE)
    return failure(source, doing, detail, unavailable=unavailable, secrets=secrets)


async def _connect(source: str, options: SqlOptions, dsn: str) -> asyncpg.Connection:
    secrets = dsn_secrets(dsn)
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
) -> AsyncIterator[SqlReader | MariaDbReader]:
    """Connect with the DSN from the environment and prepare the query; closed at the end.

    A `mysql://` or `mariadb://` DSN is read by the MariaDB reader, any other by this one."""
    dsn = secret(environ, options.dsn_env, source, "the database URL")
    if dsn.partition("://")[0].lower() in MARIADB_SCHEMES:
        async with open_mariadb(source, options, dsn) as reader:
            yield reader
    else:
        async with _open_postgres(source, options, dsn) as postgres_reader:
            yield postgres_reader


@contextlib.asynccontextmanager
async def _open_postgres(source: str, options: SqlOptions, dsn: str) -> AsyncIterator[SqlReader]:
    secrets = dsn_secrets(dsn)
    connection = await _connect(source, options, dsn)
    try:
        try:
            # The transaction first: asyncpg's prepare leaves the connection in an implicit
            # transaction, where an isolation level can no longer be chosen.
            await connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            statement = await connection.prepare(
                query_text(options, '"'), timeout=options.timeout_s
            )
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
    check_names(source, [attribute.name for attribute in attributes])
    for attribute in attributes:
        kind, name = attribute.type.kind, attribute.type.name
        if kind in _NOT_TEXT_KINDS or name in _NOT_TEXT_TYPES:
            raise SourceRejected(
                f"source {source!r}: column {attribute.name} is {name} ({kind}), not text: "
                "cast it in the query (or leave it out)"
            )
