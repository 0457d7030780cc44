"""The connector contract against a real PostgreSQL table that is not Accord's own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import pytest
import pytest_asyncio
from pydantic import SecretStr

from accord.events import Profile
from accord.provisioner.adapters.sql import SqlConnector, SqlSettings
from accord.provisioner.ports import TargetRejected, TargetUnavailable
from accord.provisioner.testing import Account, ConnectorContract, Harness, person
from accord.stack.network import free_port
from accord.stack.testing import create_database

pytestmark = pytest.mark.integration

SCHEMA = """
CREATE SCHEMA app;
CREATE TABLE app.users (
    id bigserial PRIMARY KEY,
    accord_id text UNIQUE,
    user_name text NOT NULL UNIQUE,
    display_name text,
    email text,
    title text,
    department text,
    active boolean NOT NULL DEFAULT true
);
CREATE TABLE app.memberships (
    group_name text NOT NULL,
    account_id bigint NOT NULL REFERENCES app.users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_name, account_id)
);
"""

COLUMNS = {
    "display_name": "display_name",
    "email": "email",
    "title": "title",
    "department": "department",
}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sql_target(postgres_server: str) -> str:
    """DSN of a fresh database holding the app.users table."""
    dsn = await create_database(postgres_server, "accord_sql_target")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SCHEMA)
    finally:
        await conn.close()
    return dsn


def settings(dsn: str, *, timeout_s: float = 5.0) -> SqlSettings:
    return SqlSettings(
        SecretStr(dsn),
        "app.users",
        COLUMNS,
        timeout_s=timeout_s,
        membership_table="app.memberships",
    )


def unreachable_dsn(password: str = "s3cr3t-Pa55word") -> str:
    """A DSN of a port nothing listens on."""
    return f"postgresql://accord:{password}@127.0.0.1:{free_port()}/nowhere"


@pytest_asyncio.fixture(loop_scope="session")
async def connector(sql_target: str) -> AsyncIterator[SqlConnector]:
    ready = SqlConnector("contract-sql", settings(sql_target))
    yield ready
    await ready.close()


class TestSqlConnectorContract(ConnectorContract):
    """A bigserial-keyed table with a unique user name and a unique link column."""

    @pytest_asyncio.fixture(loop_scope="session")
    async def harness(self, sql_target: str, connector: SqlConnector) -> AsyncIterator[Harness]:
        async def accounts(user_name: str) -> list[Account]:
            rows = await _fetch(
                sql_target,
                "SELECT id::text, user_name, active, title FROM app.users WHERE user_name = $1",
                user_name,
            )
            return [Account(r["id"], r["user_name"], r["active"], r["title"]) for r in rows]

        async def plant(user_name: str, owner: str | None) -> None:
            # The link column is unique: an owner planted before gives up its earlier row.
            await _fetch(sql_target, "DELETE FROM app.users WHERE accord_id = $1", owner)
            await _fetch(
                sql_target,
                "INSERT INTO app.users (user_name, accord_id) VALUES ($1, $2)",
                user_name,
                owner,
            )

        async def retitle(user_name: str, title: str) -> None:
            await _fetch(
                sql_target, "UPDATE app.users SET title = $2 WHERE user_name = $1", user_name, title
            )

        def unreachable() -> SqlConnector:
            return SqlConnector("dead-sql", settings(unreachable_dsn(), timeout_s=2.0))

        yield Harness(connector, accounts, plant, retitle, unreachable)


async def _fetch(dsn: str, query: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        rows: list[asyncpg.Record] = await conn.fetch(query, *args)
        return rows
    finally:
        await conn.close()


async def test_values_with_quotes_and_semicolons_are_stored_verbatim(
    sql_target: str, connector: SqlConnector
) -> None:
    user_id, _ = person()
    evil = "x'); DROP TABLE app.users; --"
    profile = Profile(
        user_name=f"o'brien;{user_id}\"",
        display_name='Dr. "Bobby" Tables',
        title=evil,
        department="R&D; $1 \\ ",
    )

    ref = await connector.ensure_account(user_id, profile)

    (row,) = await _fetch(
        sql_target,
        "SELECT id::text, accord_id, user_name, display_name, title, department"
        " FROM app.users WHERE accord_id = $1",
        user_id,
    )
    assert dict(row) == {
        "id": ref.account_id,
        "accord_id": user_id,
        "user_name": profile.user_name,
        "display_name": profile.display_name,
        "title": evil,
        "department": profile.department,
    }


async def test_update_writes_every_mapped_column_and_clears_absent_ones(
    sql_target: str, connector: SqlConnector
) -> None:
    user_id, profile = person(family_name="Lovelace", email="ada@example.org", department="R")
    ref = await connector.ensure_account(user_id, profile)
    renamed = profile.model_copy(
        update={"user_name": f"{profile.user_name}.new", "department": None, "active": False}
    )

    updated = await connector.update_account(user_id, renamed)

    assert (updated.account_id, updated.already_existed) == (ref.account_id, True)
    (row,) = await _fetch(
        sql_target,
        "SELECT user_name, display_name, email, department, active FROM app.users"
        " WHERE accord_id = $1",
        user_id,
    )
    assert dict(row) == {
        "user_name": renamed.user_name,
        "display_name": "Ada Lovelace",
        "email": "ada@example.org",
        "department": None,
        "active": False,
    }
    assert await connector.find_account(user_id, renamed.user_name) == ref.account_id


async def test_a_constraint_violation_is_rejected_without_the_dsn(
    sql_target: str, connector: SqlConnector
) -> None:
    first_id, first = person()
    second_id, second = person()
    await connector.ensure_account(first_id, first)
    await connector.ensure_account(second_id, second)

    # Renaming onto a user name the table already holds breaks its unique constraint.
    with pytest.raises(TargetRejected, match="contract-sql") as caught:
        await connector.update_account(
            second_id, second.model_copy(update={"user_name": first.user_name})
        )

    assert "unique" in str(caught.value)
    assert sql_target not in str(caught.value)


async def test_an_unreachable_database_is_unavailable_and_the_password_stays_secret() -> None:
    password = "s3cr3t-Pa55word"
    connector = SqlConnector("unreachable-sql", settings(unreachable_dsn(password), timeout_s=2.0))
    user_id, profile = person()
    try:
        with pytest.raises(TargetUnavailable, match="unreachable-sql") as caught:
            await connector.ensure_account(user_id, profile)
    finally:
        await connector.close()

    error = caught.value
    assert password not in f"{error} {error!r}"
    assert error.__cause__ is None
    assert error.__suppress_context__
    assert password not in repr(connector.settings)


async def test_a_refused_login_fails_the_health_check_as_rejected(sql_target: str) -> None:
    password = "n0t-the-Pa55word"
    parts = urlsplit(sql_target)
    stranger = parts._replace(netloc=f"nobody:{password}@{parts.hostname}:{parts.port}")
    connector = SqlConnector("refused-sql", settings(stranger.geturl()))
    try:
        with pytest.raises(TargetRejected, match="refused-sql: login refused") as caught:
            await connector.health()
    finally:
        await connector.close()

    assert password not in f"{caught.value} {caught.value!r}"


async def test_a_statement_stuck_behind_a_lock_times_out_as_unavailable(sql_target: str) -> None:
    connector = SqlConnector("slow-sql", settings(sql_target, timeout_s=0.5))
    user_id, profile = person()
    ref = await connector.ensure_account(user_id, profile)
    locker = await asyncpg.connect(sql_target)
    try:
        async with locker.transaction():
            await locker.execute(
                "SELECT 1 FROM app.users WHERE id = $1::bigint FOR UPDATE", int(ref.account_id)
            )
            with pytest.raises(TargetUnavailable, match="timed out"):
                await connector.disable_account(user_id, profile.user_name)
        # The lock is gone: the connector (and its pool) work again.
        assert await connector.disable_account(user_id, profile.user_name) == ref.account_id
    finally:
        await locker.close()
        await connector.close()
