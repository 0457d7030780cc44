"""A query or a view on MariaDB (or MySQL) as a source, streamed through an unbuffered cursor.

asyncmy's `SSCursor` reads the result from the socket as the rows are asked for, `prefetch`
at a time, instead of loading the whole result first: the server produces rows only as fast
as we read them (once the socket's buffers are full), and at most `prefetch` rows are in our
memory at once. The query runs in one transaction begun with
`START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY` at REPEATABLE READ: InnoDB takes the
snapshot at that statement, so every row comes from the same moment and the source can
write nothing. A typo in the query or a missing view fails when the reader opens, since the
query's columns come back before its first row.

Values become text as in the PostgreSQL reader (`sql_rows.as_text`); a TIME is `08:30:00`
like a PostgreSQL time. Binary values (BLOB, BINARY, BIT) and GEOMETRY are no text: cast them
in the query. GEOMETRY is refused when the reader opens; the protocol does not tell binary
strings from text ones in the columns' description, so a binary value fails the read when met.

The DSN (`mysql://reader:...@host:3306/hr`, or `mariadb://...`) comes from the environment
variable the configuration names and never appears in an error message.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import AsyncIterator
from urllib.parse import unquote, urlsplit

import asyncmy
from asyncmy.cursors import Cursor, SSCursor
from asyncmy.errors import MySQLError

from accord.sources.config import SqlOptions
from accord.sources.csv_reader import SourceRow
from accord.sources.problems import RowProblem
from accord.sources.readers.base import SourceRejected, scrub
from accord.sources.readers.sql_rows import as_text, check_names, dsn_secrets, failure, query_text

SCHEMES = frozenset({"mysql", "mariadb"})
_DEFAULT_PORT = 3306
_GEOMETRY = 255  # MYSQL_TYPE_GEOMETRY in the columns' description
#: Server errors that say the server, not the configuration, failed: too many connections,
#: shutting down, lock wait timeout, the connection killed. Client errors (2000-2999: cannot
#: connect, connection lost, read timeout) are all of that kind.
_UNAVAILABLE_CODES = frozenset({1040, 1053, 1205, 1927})
_OPEN_STATEMENTS = (
    # For the next transaction only; the snapshot must be REPEATABLE READ to hold for all rows.
    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
)


class MariaDbReader:
    """An open query: its columns, then its rows through the unbuffered cursor."""

    def __init__(
        self, source: str, options: SqlOptions, cursor: Cursor, secrets: tuple[str, ...]
    ) -> None:
        self._source = source
        self._options = options
        self._cursor = cursor
        self._secrets = secrets
        self.columns = tuple(column[0] for column in cursor.description or ())
        self.problems: list[RowProblem] = []
        self.finished = False

    async def rows(self) -> AsyncIterator[SourceRow]:
        """The rows in the query's order, numbered from 1, `prefetch` read at a time."""
        position = 0
        try:
            while batch := await self._cursor.fetchmany(self._options.prefetch):
                for record in batch:
                    position += 1
                    yield SourceRow(position, self._values(position, record))
        except (MySQLError, OSError, TimeoutError) as error:
            raise _failure(
                self._source, f"reading row {position + 1}", error, self._secrets
            ) from None
        self.finished = True

    def _values(self, position: int, record: tuple[object, ...]) -> dict[str, str]:
        values: dict[str, str] = {}
        for column, value in zip(self.columns, record, strict=True):
            if isinstance(value, bytes | bytearray):
                raise SourceRejected(
                    f"source {self._source!r}: row {position}: column {column} is binary, "
                    "not text: cast it in the query (or leave it out)"
                )
            values[column] = (
                _time_text(value) if isinstance(value, datetime.timedelta) else as_text(value)
            )
        return values


def _time_text(value: datetime.timedelta) -> str:
    """A TIME (the driver gives a timedelta) as HH:MM:SS, as PostgreSQL's time reads."""
    if datetime.timedelta(0) <= value < datetime.timedelta(days=1):
        return (datetime.datetime.min + value).time().isoformat()
    return str(value)  # a duration beyond a day, which MariaDB's TIME allows


def _failure(source: str, doing: str, error: BaseException, secrets: tuple[str, ...]) -> Exception:
    """A clear message from the driver's error, with the secrets scrubbed out of it."""
    code = error.args[0] if isinstance(error, MySQLError) and error.args else None
    if isinstance(code, int) and len(error.args) > 1:
        detail = f"{code}: {error.args[1]}"
        unavailable = 2000 <= code < 3000 or code in _UNAVAILABLE_CODES
    elif isinstance(error, TimeoutError):
        detail, unavailable = "no answer in time", True
    else:
        detail = f"{type(error).__name__}: {error}"
        unavailable = not isinstance(error, MySQLError) or isinstance(
            error, asyncmy.errors.OperationalError | asyncmy.errors.InterfaceError
        )
    return failure(source, doing, detail, unavailable=unavailable, secrets=secrets)


async def _connect(source: str, options: SqlOptions, dsn: str) -> asyncmy.Connection:
    secrets = dsn_secrets(dsn)
    try:
        url = urlsplit(dsn)
        address = {
            "host": url.hostname or "127.0.0.1",
            "port": url.port or _DEFAULT_PORT,
            "user": unquote(url.username or ""),
            "password": unquote(url.password or ""),
            "database": unquote(url.path.lstrip("/")) or None,
        }
    except ValueError as error:  # a bad port: the parser's message may quote the DSN
        message = f"source {source!r}: ${options.dsn_env} is no usable MariaDB URL"
        raise SourceRejected(scrub(f"{message} ({type(error).__name__})", *secrets)) from None
    try:
        return await asyncio.wait_for(
            asyncmy.connect(
                **address,
                connect_timeout=options.timeout_s,
                read_timeout=options.timeout_s,
                charset="utf8mb4",
                autocommit=True,  # the transaction is begun explicitly, as a snapshot
            ),
            options.timeout_s,
        )
    except (MySQLError, OSError, TimeoutError) as error:
        raise _failure(source, f"connecting (${options.dsn_env})", error, secrets) from None


@contextlib.asynccontextmanager
async def open_mariadb(source: str, options: SqlOptions, dsn: str) -> AsyncIterator[MariaDbReader]:
    """Connect, begin the snapshot and start the query; closed at the end."""
    secrets = dsn_secrets(dsn)
    connection = await _connect(source, options, dsn)
    reader: MariaDbReader | None = None
    try:
        try:
            async with connection.cursor() as setup:
                for sql in _OPEN_STATEMENTS:
                    await setup.execute(sql)
            cursor = connection.cursor(SSCursor)
            await asyncio.wait_for(cursor.execute(query_text(options, "`")), options.timeout_s)
        except (MySQLError, OSError, TimeoutError) as error:
            raise _failure(source, "running the query", error, secrets) from None
        _check_columns(source, cursor)
        reader = MariaDbReader(source, options, cursor, secrets)
        yield reader
    finally:
        if reader is not None and reader.finished:
            # COM_QUIT ends the transaction (a rollback: it wrote nothing).
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.ensure_closed(), options.timeout_s)
        # Rows left unread would have to be read before a polite goodbye: drop the socket.
        connection.close()


def _check_columns(source: str, cursor: Cursor) -> None:
    description = cursor.description or ()
    check_names(source, [column[0] for column in description])
    for column in description:
        if column[1] == _GEOMETRY:
            raise SourceRejected(
                f"source {source!r}: column {column[0]} is geometry, not text: "
                "cast it in the query (or leave it out)"
            )
