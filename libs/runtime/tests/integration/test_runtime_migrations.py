"""db.migrate() and db.create_pool() against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import asyncpg
import pytest

from accord.runtime import db

pytestmark = pytest.mark.integration

RUNTIME_MIGRATIONS = [
    "accord.runtime.migrations/0001_inbox_outbox.sql",
    "accord.runtime.migrations/0002_dead_letters.sql",
]
RUNTIME_TABLES = {"inbox", "outbox", "dead_letters", "schema_migrations"}


async def tables_of(dsn: str, schema: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
        )
        return {r["table_name"] for r in rows}
    finally:
        await conn.close()


async def ledger(dsn: str, schema: str) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            f'SELECT package, name FROM "{schema}".schema_migrations ORDER BY applied_at, name'
        )
        return [(r["package"], r["name"]) for r in rows]
    finally:
        await conn.close()


def write_package(root: Path, name: str, files: dict[str, str]) -> None:
    package = root / name
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    for file_name, sql in files.items():
        (package / file_name).write_text(textwrap.dedent(sql))


async def test_migrate_creates_the_schema_the_tables_and_the_ledger(
    fresh_database: str, unique: str
) -> None:
    schema = f"rt_{unique}"

    applied = await db.migrate(fresh_database, schema, [])

    assert applied == RUNTIME_MIGRATIONS
    assert await tables_of(fresh_database, schema) == RUNTIME_TABLES
    assert await tables_of(fresh_database, "public") == set()
    assert await ledger(fresh_database, schema) == [
        ("accord.runtime.migrations", "0001_inbox_outbox.sql"),
        ("accord.runtime.migrations", "0002_dead_letters.sql"),
    ]


async def test_migrate_twice_applies_nothing_the_second_time(
    fresh_database: str, unique: str
) -> None:
    schema = f"rt_{unique}"
    assert await db.migrate(fresh_database, schema, []) == RUNTIME_MIGRATIONS

    assert await db.migrate(fresh_database, schema, []) == []
    assert len(await ledger(fresh_database, schema)) == len(RUNTIME_MIGRATIONS)


async def test_concurrent_migrations_of_one_schema_apply_once(
    fresh_database: str, unique: str
) -> None:
    schema = f"rt_{unique}"

    results = await asyncio.gather(*(db.migrate(fresh_database, schema, []) for _ in range(4)))

    assert sorted(results, key=len) == [[], [], [], RUNTIME_MIGRATIONS]
    assert await tables_of(fresh_database, schema) == RUNTIME_TABLES
    assert len(await ledger(fresh_database, schema)) == len(RUNTIME_MIGRATIONS)


async def test_concurrent_migrations_of_two_schemas_in_one_database(
    fresh_database: str, unique: str
) -> None:
    first, second = f"rt_{unique}_a", f"rt_{unique}_b"

    results = await asyncio.gather(
        db.migrate(fresh_database, first, []), db.migrate(fresh_database, second, [])
    )

    assert list(results) == [RUNTIME_MIGRATIONS, RUNTIME_MIGRATIONS]
    assert "inbox" in await tables_of(fresh_database, first)
    assert "inbox" in await tables_of(fresh_database, second)


async def test_service_migrations_run_after_the_runtime_in_name_order_and_a_failure_rolls_back(
    fresh_database: str, unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = f"rt_{unique}"
    package = f"rt_migrations_{unique}"
    monkeypatch.syspath_prepend(str(tmp_path))
    write_package(
        tmp_path,
        package,
        {
            # Written out of order on purpose: names decide the order, and 0002 needs 0001.
            "0002_items.sql": "CREATE TABLE items (id int REFERENCES things (id));",
            "0001_things.sql": "CREATE TABLE things (id int PRIMARY KEY);",
            "README.txt": "not a migration",
        },
    )
    assert await db.migrate(fresh_database, schema, [package]) == [
        *RUNTIME_MIGRATIONS,
        f"{package}/0001_things.sql",
        f"{package}/0002_items.sql",
    ]

    # A broken migration: its own statements roll back, nothing is recorded, the lock is freed.
    write_package(
        tmp_path,
        package,
        {"0003_broken.sql": "CREATE TABLE half_done (id int); CREATE TABLE oops (;"},
    )
    with pytest.raises(asyncpg.PostgresSyntaxError):
        await db.migrate(fresh_database, schema, [package])
    assert "half_done" not in await tables_of(fresh_database, schema)
    assert (package, "0003_broken.sql") not in await ledger(fresh_database, schema)

    write_package(tmp_path, package, {"0003_broken.sql": "CREATE TABLE half_done (id int);"})
    applied = await asyncio.wait_for(db.migrate(fresh_database, schema, [package]), 10)
    assert applied == [f"{package}/0003_broken.sql"]
    assert {"things", "items", "half_done"} <= await tables_of(fresh_database, schema)


@pytest.mark.parametrize("schema", ["bad-name", "x; DROP TABLE y", 'q"uote', ""])
async def test_migrate_refuses_unsafe_schema_names(fresh_database: str, schema: str) -> None:
    with pytest.raises(ValueError, match="unsafe schema name"):
        await db.migrate(fresh_database, schema, [])


async def test_pool_sees_the_schema_tables(fresh_database: str, unique: str) -> None:
    schema = f"rt_{unique}"
    await db.migrate(fresh_database, schema, [])
    pool = await db.create_pool(fresh_database, schema, max_size=2)
    try:
        assert await pool.fetchval("SELECT count(*) FROM inbox") == 0
        assert await pool.fetchval("SELECT current_schema()") == schema
    finally:
        await pool.close()


async def test_a_mixed_case_schema_is_refused_before_anything_is_created(
    fresh_database: str, unique: str
) -> None:
    # PostgreSQL folds unquoted names, so "Rt_x" in a search_path would miss its tables.
    schema = f"Rt_{unique}"
    with pytest.raises(ValueError, match="unsafe schema name"):
        await db.migrate(fresh_database, schema, [])
    with pytest.raises(ValueError, match="unsafe schema name"):
        await db.create_pool(fresh_database, schema, max_size=2)
    conn = await asyncpg.connect(fresh_database)
    try:
        found = await conn.fetchval(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1", schema
        )
    finally:
        await conn.close()
    assert found == 0
