"""The sql reader against a real PostgreSQL: a view of workers, streamed through a cursor."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import asyncpg
import pytest

from accord.sources.config import Source, SqlOptions
from accord.sources.diff import ChangeKind, SourceState, diff
from accord.sources.mapping import MappedRow, RowMapper
from accord.sources.problems import ProblemKind, RowProblem
from accord.sources.readers import SourceRejected, SourceUnavailable, open_reader
from accord.sources.readers.sql import open_sql
from accord.stack.network import free_port

pytestmark = pytest.mark.integration

WORKERS = 300
#: Trust authentication ignores it; it stands for the secret no message may show.
PASSWORD = "pw-" + uuid.uuid4().hex
ENV = "HR_DATABASE_URL"
SCHEMA = """
CREATE SCHEMA hr;
CREATE TABLE hr.employees (
    number integer PRIMARY KEY,
    first text NOT NULL,
    last text NOT NULL,
    mail text,
    dept text,
    hired date NOT NULL,
    left_on date,
    active boolean NOT NULL,
    salary numeric(9, 2)
);
INSERT INTO hr.employees
SELECT n, 'First' || n, 'Last' || n,
       CASE WHEN n % 10 = 0 THEN NULL  -- every tenth has no e-mail
            WHEN n % 100 = 7 THEN 'not-an-address'  -- three malformed ones
            ELSE 'p' || n || '@example.org' END,
       (ARRAY['sales', 'it', 'ops'])[n % 3 + 1],
       date '2020-01-01' + n, CASE WHEN n % 50 = 0 THEN date '2026-12-31' END,
       n % 50 <> 0, 1000 + n / 4.0
FROM generate_series(1, 300) AS n;
CREATE VIEW hr.workers AS
SELECT 'E' || lpad(number::text, 5, '0') AS employee_number, first, last, mail, dept,
       hired, left_on, active, salary
FROM hr.employees;
"""


def expected(n: int) -> dict[str, str]:
    mail = "" if n % 10 == 0 else "not-an-address" if n % 100 == 7 else f"p{n}@example.org"
    return {
        "employee_number": f"E{n:05d}",
        "first": f"First{n}",
        "last": f"Last{n}",
        "mail": mail,
        "dept": ["sales", "it", "ops"][n % 3],
        "hired": (datetime.date(2020, 1, 1) + datetime.timedelta(days=n)).isoformat(),
        "left_on": "2026-12-31" if n % 50 == 0 else "",
        "active": "false" if n % 50 == 0 else "true",
        "salary": f"{1000 + n / 4:.2f}",
    }


@pytest.fixture
async def hr_dsn(fresh_database: str) -> str:
    """The workers' database, as a DSN with a password in it."""
    conn = await asyncpg.connect(fresh_database)
    try:
        await conn.execute(SCHEMA)
    finally:
        await conn.close()
    return fresh_database.replace("://accord@", f"://accord:{PASSWORD}@", 1)


def sql_source(**options: Any) -> Source:
    return Source.model_validate(
        {
            "name": "hr",
            "kind": "sql",
            "sql": {"dsn_env": ENV, **options},
            "key": "employee_number",
            "mappings": {
                "user_name": 'lower(row.first) + "." + lower(row.last)',
                "given_name": "first",
                "family_name": "last",
                "email": "mail",
                "employee_number": "employee_number",
                "department": "dept",
                "hire_date": "hired",
                "leave_date": "left_on",
            },
            "status": {"column": "active", "active_values": ["true"]},
        }
    )


async def read_all(source: Source, dsn: str) -> tuple[tuple[str, ...], list[Any], list[Any]]:
    async with open_reader(source, {ENV: dsn}) as reader:
        rows = [row async for row in reader.rows()]
        return reader.columns, rows, reader.problems


async def test_a_view_is_read_whole_in_batches_with_nulls_empty_and_dates_iso(
    hr_dsn: str,
) -> None:
    columns, rows, problems = await read_all(sql_source(view="hr.workers", prefetch=7), hr_dsn)
    assert columns == tuple(expected(1))
    assert problems == []
    assert [row.line for row in rows] == list(range(1, WORKERS + 1))
    by_number = {row.values["employee_number"]: row.values for row in rows}
    assert by_number == {f"E{n:05d}": expected(n) for n in range(1, WORKERS + 1)}


async def test_a_query_is_read_the_same_way(hr_dsn: str) -> None:
    query = "SELECT employee_number, mail FROM hr.workers WHERE dept = 'it' ORDER BY 1"
    _, rows, _ = await read_all(sql_source(query=query), hr_dsn)
    numbers = [n for n in range(1, WORKERS + 1) if n % 3 == 1]
    assert [row.values for row in rows] == [
        {"employee_number": f"E{n:05d}", "mail": expected(n)["mail"]} for n in numbers
    ]


async def test_rows_are_fetched_batch_by_batch_not_all_at_once(hr_dsn: str) -> None:
    # Each row the server produces takes an advisory lock (allowed in a read-only
    # transaction, visible to other sessions): the locks count the rows produced so far.
    key = uuid.uuid4().int % 2**31
    query = f"SELECT n, pg_try_advisory_lock({key}, n) AS locked FROM generate_series(1, 300) n"
    monitor = await asyncpg.connect(hr_dsn)
    count = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = $1"
    try:
        async with open_sql(
            "hr", SqlOptions(dsn_env=ENV, query=query, prefetch=20), {ENV: hr_dsn}
        ) as reader:
            seen = []
            async for row in reader.rows():
                if row.line == 1:
                    produced_at_first_row = await monitor.fetchval(count, key)
                seen.append(row.values["n"])
            produced_at_end = await monitor.fetchval(count, key)
    finally:
        await monitor.close()
    assert seen == [str(n) for n in range(1, 301)]
    assert 0 < produced_at_first_row <= 20
    assert produced_at_end == 300


async def test_a_bad_query_is_one_clear_error_without_the_dsn(hr_dsn: str) -> None:
    with pytest.raises(SourceRejected) as raised:
        await read_all(sql_source(query="SELECT * FROM hr.nobody"), hr_dsn)
    message = str(raised.value)
    assert message.startswith("source 'hr': preparing the query: 42P01: ")
    assert 'relation "hr.nobody" does not exist' in message
    assert PASSWORD not in message
    assert hr_dsn not in message
    assert raised.value.__cause__ is None


async def test_an_unreachable_server_is_unavailable_without_the_password() -> None:
    dsn = f"postgresql://accord:{PASSWORD}@127.0.0.1:{free_port('127.0.0.1')}/hr"
    with pytest.raises(SourceUnavailable) as raised:
        await read_all(sql_source(view="hr.workers", timeout_s=5), dsn)
    assert str(raised.value).startswith("source 'hr': connecting ($HR_DATABASE_URL): ")
    assert PASSWORD not in str(raised.value)


async def test_a_missing_environment_variable_is_named() -> None:
    with pytest.raises(SourceRejected, match=r"environment variable HR_DATABASE_URL .* not set"):
        async with open_reader(sql_source(view="hr.workers"), {}):
            pass


async def test_binary_and_array_columns_are_refused_when_opening(hr_dsn: str) -> None:
    query = "SELECT employee_number, ARRAY[mail] AS mails FROM hr.workers"
    with pytest.raises(SourceRejected, match=r"column mails is text\[\] \(array\), not text"):
        await read_all(sql_source(query=query), hr_dsn)


async def test_the_view_through_mapping_and_diff_creates_every_good_row(hr_dsn: str) -> None:
    source = sql_source(view="hr.workers", prefetch=50)
    mapper = RowMapper(source)
    mapped: list[MappedRow] = []
    problems: list[RowProblem] = []
    async with open_reader(source, {ENV: hr_dsn}) as reader:
        mapper.check_columns(reader.columns)
        async for row in reader.rows():
            one = mapper.map(row)
            if isinstance(one, RowProblem):
                problems.append(one)
            else:
                mapped.append(one)
    result = diff(SourceState(), mapped, fields=mapper.fields)
    malformed = [n for n in range(1, WORKERS + 1) if n % 100 == 7]
    assert [(p.kind, p.key) for p in problems] == [
        (ProblemKind.UNMAPPABLE, f"E{n:05d}") for n in malformed
    ]
    assert result.count(ChangeKind.CREATED) == WORKERS - len(malformed)
    assert len(result.changes) == WORKERS - len(malformed)
    inactive = [change for change in result.changes if not change.active]
    assert len(inactive) == WORKERS // 50
    assert result.state.active_count() == WORKERS - len(malformed) - WORKERS // 50
