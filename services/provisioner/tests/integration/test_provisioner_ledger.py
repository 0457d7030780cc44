"""The provisioner's ledger on a real PostgreSQL: newest command wins, replays never undo."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
import pytest_asyncio

from accord.events import Envelope, Profile, ProvisionRequested, new_event
from accord.provisioner.adapters import ledger
from accord.stack.testing import migrated_pool

pytestmark = pytest.mark.integration
SCHEMA = "provisioner"


@pytest_asyncio.fixture(loop_scope="session")
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool(fresh_database, SCHEMA, ["accord.provisioner.migrations"]) as created:
        yield created


def command(operation: str, *, title: str = "Analyst", group: str | None = None) -> Envelope:
    data = ProvisionRequested(
        user_id="u-1",
        target="crm",
        operation=operation,  # type: ignore[arg-type]
        saga_id="s-1",
        step_id="s-1:crm",
        profile=Profile(user_name="ada", title=title),
        group=group,
    )
    return new_event(data, source="urn:test:orchestrator")


async def record(pool: asyncpg.Pool, envelope: Envelope) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await ledger.record_command(conn, envelope)


async def desired(pool: asyncpg.Pool) -> tuple[str, str | None] | None:
    async with pool.acquire() as conn:
        found = (await ledger.desired_of(conn, "crm", ["u-1"])).get("u-1")
    return (found.state, found.profile.title) if found else None


async def test_a_replayed_older_command_never_undoes_a_newer_one(pool: asyncpg.Pool) -> None:
    created = command("create")
    deleted = command("delete")
    deleted = deleted.model_copy(update={"time": created.time + timedelta(seconds=5)})

    await record(pool, created)
    assert await desired(pool) == ("active", "Analyst")
    await record(pool, deleted)
    await record(pool, created)  # the dead letter of the joiner, replayed late

    assert await desired(pool) == ("absent", "Analyst")
    data = created.data
    assert isinstance(data, ProvisionRequested)
    assert await ledger.newer_command_at(pool, data) == deleted.time
    async with pool.acquire() as conn:
        assert [d.user_id async for d in ledger.present_desired(conn, "crm")] == []


async def test_memberships_are_recorded_apart_from_the_account(pool: asyncpg.Pool) -> None:
    await record(pool, command("update", title="Lead"))
    added = command("add_member", group="Admins")
    await record(pool, added)

    assert await desired(pool) == ("active", "Lead")
    data = added.data
    assert isinstance(data, ProvisionRequested)
    assert await ledger.newer_command_at(pool, data) == added.time
    member = await pool.fetchval(
        "SELECT member FROM desired_memberships WHERE group_name = 'Admins'"
    )
    assert member is True


async def test_runs_are_recorded_with_their_summary(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await ledger.start_run(conn, "rec-1", "crm", trigger="cli", fix=False)
        assert await ledger.last_run_started(conn, "crm") is not None
        await ledger.finish_run(conn, "rec-1", summary={"accounts": 3})
        await ledger.start_run(conn, "rec-2", "crm", trigger="schedule", fix=True)
        await ledger.finish_run(conn, "rec-2", summary={}, error="crm: down")

    runs = await ledger.runs(pool, "crm", limit=10)

    assert [(r["run_id"], r["status"], r["summary"], r["error"]) for r in runs] == [
        ("rec-2", "failed", {}, "crm: down"),
        ("rec-1", "completed", {"accounts": 3}, None),
    ]
