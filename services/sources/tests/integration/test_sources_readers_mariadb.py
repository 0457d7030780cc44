"""The sql reader against a real MariaDB: a table and a view of workers, streamed in batches."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import asyncmy
import pytest

from accord.sources.config import Source, SqlOptions
from accord.sources.readers import SourceRejected, SourceUnavailable, open_reader
from accord.sources.readers.sql import open_sql
from accord.stack.network import free_port

pytestmark = pytest.mark.integration

WORKERS = 130
ENV = "HR_DATABASE_URL"
SCHEMA = [
    """CREATE TABLE employees (
        number int PRIMARY KEY,
        first varchar(40) NOT NULL,
        last varchar(40) NOT NULL,
        mail varchar(80),
        hired date NOT NULL,
        left_on date,
        active boolean NOT NULL,
        salary decimal(9, 2),
        starts time NOT NULL,
        updated datetime NOT NULL
    )""",
    # Unicode both ways: Latin with accents, and a character outside the BMP (utf8mb4 only).
    """INSERT INTO employees
    SELECT seq, CONCAT('Fírst', seq), CONCAT('Łast', seq, '🙂'),
           IF(seq % 10 = 0, NULL, CONCAT('p', seq, '@example.org')),
           DATE '2020-01-01' + INTERVAL seq DAY, IF(seq % 50 = 0, DATE '2026-12-31', NULL),
           seq % 50 <> 0, 1000 + seq / 4, TIME '08:30:00', TIMESTAMP '2025-03-01 08:00:00'
    FROM seq_1_to_130""",
    """CREATE VIEW workers AS
    SELECT CONCAT('E', LPAD(number, 5, '0')) AS employee_number, first, last, mail, hired,
           left_on, active, salary
    FROM employees""",
]


def expected(n: int) -> dict[str, str]:
    return {
        "employee_number": f"E{n:05d}",
        "first": f"Fírst{n}",
        "last": f"Łast{n}🙂",
        "mail": "" if n % 10 == 0 else f"p{n}@example.org",
        "hired": (datetime.date(2020, 1, 1) + datetime.timedelta(days=n)).isoformat(),
        "left_on": "2026-12-31" if n % 50 == 0 else "",
        "active": "0" if n % 50 == 0 else "1",  # MariaDB's boolean is a tinyint
        "salary": f"{1000 + n / 4:.2f}",
    }


def connect_args(dsn: str) -> dict[str, Any]:
    url = urlsplit(dsn)
    return {
        "host": url.hostname,
        "port": url.port,
        "user": url.username,
        "password": url.password,
        "database": url.path.lstrip("/") or None,
        "autocommit": True,
        "charset": "utf8mb4",
    }


async def execute(dsn: str, *statements: str) -> list[tuple[Any, ...]]:
    connection = await asyncmy.connect(**connect_args(dsn))
    try:
        async with connection.cursor() as cursor:
            for sql in statements:
                await cursor.execute(sql)
            return list(await cursor.fetchall())
    finally:
        await connection.ensure_closed()


@pytest.fixture
async def hr_dsn(mariadb_server: str) -> AsyncIterator[str]:
    """A database of its own with the workers, as a DSN with the user's password in it."""
    name = f"hr_{uuid.uuid4().hex[:12]}"
    await execute(mariadb_server, f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    base, _, _ = mariadb_server.rpartition("/")
    dsn = f"{base}/{name}"
    await execute(dsn, *SCHEMA)
    yield dsn
    await execute(mariadb_server, f"DROP DATABASE {name}")


def sql_source(**options: Any) -> Source:
    return Source.model_validate(
        {
            "name": "hr",
            "kind": "sql",
            "sql": {"dsn_env": ENV, **options},
            "key": "employee_number",
            "mappings": {"user_name": "first", "employee_number": "employee_number"},
        }
    )


async def read_all(source: Source, dsn: str) -> tuple[tuple[str, ...], list[Any], list[Any]]:
    async with open_reader(source, {ENV: dsn}) as reader:
        rows = [row async for row in reader.rows()]
        return reader.columns, rows, reader.problems


async def test_a_view_is_read_whole_in_batches_with_nulls_empty_dates_iso_and_unicode(
    hr_dsn: str,
) -> None:
    columns, rows, problems = await read_all(sql_source(view="workers", prefetch=7), hr_dsn)
    assert columns == tuple(expected(1))
    assert problems == []
    assert [row.line for row in rows] == list(range(1, WORKERS + 1))
    by_number = {row.values["employee_number"]: row.values for row in rows}
    assert by_number == {f"E{n:05d}": expected(n) for n in range(1, WORKERS + 1)}


async def test_a_table_is_read_with_times_and_datetimes_as_text(hr_dsn: str) -> None:
    query = "SELECT number, starts, updated, mail FROM employees ORDER BY number"
    _, rows, _ = await read_all(sql_source(query=query, prefetch=50), hr_dsn)
    assert [row.values for row in rows] == [
        {
            "number": str(n),
            "starts": "08:30:00",
            "updated": "2025-03-01T08:00:00",
            "mail": expected(n)["mail"],
        }
        for n in range(1, WORKERS + 1)
    ]


async def test_rows_are_streamed_not_read_whole_before_the_first(hr_dsn: str) -> None:
    # Each row the server produces takes a named lock (allowed in a read-only transaction,
    # visible to other sessions through IS_USED_LOCK): the locks count the rows produced.
    # 200 KB of padding a row fills the socket's buffers long before the last row, so the
    # server waits for the reader, unless the reader loads the whole result first.
    key = uuid.uuid4().hex[:8]
    query = (
        f"SELECT seq AS n, GET_LOCK(CONCAT('{key}-', seq), 0) AS locked, "
        "REPEAT('x', 200000) AS pad FROM seq_1_to_130"
    )
    produced = (
        f"SELECT COALESCE(SUM(IS_USED_LOCK(CONCAT('{key}-', seq)) IS NOT NULL), 0) "
        "FROM seq_1_to_130"
    )
    seen = []
    async with open_sql(
        "hr", SqlOptions(dsn_env=ENV, query=query, prefetch=10), {ENV: hr_dsn}
    ) as reader:
        async for row in reader.rows():
            if row.line == 1:
                [(produced_at_first_row,)] = await execute(hr_dsn, produced)
            seen.append(row.values["n"])
        [(produced_at_end,)] = await execute(hr_dsn, produced)
    assert seen == [str(n) for n in range(1, WORKERS + 1)]
    assert 0 < produced_at_first_row < WORKERS
    assert produced_at_end == WORKERS


async def test_the_rows_are_one_snapshot_taken_when_the_reader_opens(hr_dsn: str) -> None:
    async with open_reader(sql_source(view="workers", prefetch=5), {ENV: hr_dsn}) as reader:
        await execute(
            hr_dsn,
            "DELETE FROM employees WHERE number = 1",
            "INSERT INTO employees SELECT 999, first, last, mail, hired, left_on, active,"
            " salary, starts, updated FROM employees WHERE number = 2",
        )
        numbers = [row.values["employee_number"] async for row in reader.rows()]
    assert numbers == [f"E{n:05d}" for n in range(1, WORKERS + 1)]


async def test_the_snapshot_is_read_only(hr_dsn: str) -> None:
    query = "SELECT number FROM employees FOR UPDATE"  # a locking read needs a writer
    # 1792: ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION.
    with pytest.raises(SourceRejected, match=r"running the query: 1792: "):
        await read_all(sql_source(query=query), hr_dsn)


async def test_a_bad_query_is_one_clear_error_without_the_password(hr_dsn: str) -> None:
    with pytest.raises(SourceRejected) as raised:
        await read_all(sql_source(query="SELECT * FROM nobody"), hr_dsn)
    message = str(raised.value)
    assert message.startswith("source 'hr': running the query: 1146: ")
    assert "nobody' doesn't exist" in message
    password = urlsplit(hr_dsn).password
    assert password
    assert password not in message
    assert hr_dsn not in message
    assert raised.value.__cause__ is None


async def test_a_wrong_password_is_refused_without_either_password(hr_dsn: str) -> None:
    # Refused, not unavailable: repeating the run cannot help (as for PostgreSQL).
    password = urlsplit(hr_dsn).password
    assert password
    wrong = "wrong-" + uuid.uuid4().hex
    dsn = hr_dsn.replace(f":{password}@", f":{wrong}@", 1)
    with pytest.raises(SourceRejected) as raised:
        await read_all(sql_source(view="workers"), dsn)
    message = str(raised.value)
    assert message.startswith("source 'hr': connecting ($HR_DATABASE_URL): 1045: Access denied")
    assert wrong not in message
    assert password not in message


async def test_a_server_that_is_down_is_unavailable_without_the_password() -> None:
    password = "pw-" + uuid.uuid4().hex
    dsn = f"mariadb://accord:{password}@127.0.0.1:{free_port('127.0.0.1')}/hr"
    with pytest.raises(SourceUnavailable) as raised:
        await read_all(sql_source(view="workers", timeout_s=5), dsn)
    message = str(raised.value)
    assert message.startswith("source 'hr': connecting ($HR_DATABASE_URL): 2003: ")
    assert password not in message


async def test_binary_and_geometry_columns_are_refused(hr_dsn: str) -> None:
    query = "SELECT number, POINT(1, 2) AS place FROM employees"
    with pytest.raises(SourceRejected, match=r"column place is geometry, not text"):
        await read_all(sql_source(query=query), hr_dsn)
    query = "SELECT number, CAST(first AS BINARY) AS raw FROM employees"
    with pytest.raises(SourceRejected, match=r"row 1: column raw is binary, not text"):
        await read_all(sql_source(query=query), hr_dsn)
