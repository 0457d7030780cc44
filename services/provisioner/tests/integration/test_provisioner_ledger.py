"""The provisioner's ledger: newest command wins, replays never undo.

The Ledger port's contract runs over the in-memory fake and over PostgreSQL (a database of
its own per test), so the fake the handlers' unit tests use cannot drift from the adapter.
What only the adapter does (reconciliation runs) is tested on PostgreSQL alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio

from accord.events import Envelope, Profile, ProvisionRequested, new_event
from accord.events.catalogue.provisioning import Operation
from accord.provisioner.adapters import ledger
from accord.provisioner.adapters.ledger import PostgresLedger
from accord.provisioner.fakes import FakeLedger
from accord.provisioner.ports import Ledger
from accord.stack.testing import create_database, migrated_pool

pytestmark = pytest.mark.integration
SCHEMA = "provisioner"
MIGRATIONS = ["accord.provisioner.migrations"]


@pytest_asyncio.fixture(loop_scope="session")
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool(fresh_database, SCHEMA, MIGRATIONS) as created:
        yield created


@pytest_asyncio.fixture(loop_scope="session", params=["fake", "postgres"])
async def port(request: pytest.FixtureRequest, postgres_server: str) -> AsyncIterator[Ledger]:
    """The ledger behind its port: in memory, or on an empty PostgreSQL database."""
    if request.param == "fake":
        yield FakeLedger()
        return
    async with migrated_pool(await create_database(postgres_server), SCHEMA, MIGRATIONS) as db:
        yield PostgresLedger(db)


def command(
    operation: Operation,
    *,
    title: str = "Analyst",
    group: str | None = None,
    user_id: str = "u-1",
    target: str = "crm",
    active: bool = True,
) -> Envelope:
    data = ProvisionRequested(
        user_id=user_id,
        target=target,
        operation=operation,
        saga_id="s-1",
        step_id="s-1:crm",
        profile=Profile(user_name=f"n-{user_id}", title=title, active=active),
        group=group,
    )
    return new_event(data, source="urn:test:orchestrator")


def later(envelope: Envelope, seconds: float) -> Envelope:
    return envelope.model_copy(update={"time": envelope.time + timedelta(seconds=seconds)})


def data_of(envelope: Envelope) -> ProvisionRequested:
    data = envelope.data
    assert isinstance(data, ProvisionRequested)
    return data


async def record(port: Ledger, envelope: Envelope) -> None:
    await port.record_command(data_of(envelope), commanded_at=envelope.time, command_id=envelope.id)


async def desired(port: Ledger, user_id: str = "u-1") -> tuple[str, str | None] | None:
    found = (await port.desired_of("crm", [user_id])).get(user_id)
    return (found.state, found.profile.title) if found else None


async def latest(port: Ledger, envelope: Envelope) -> datetime | None:
    return await port.latest_command_at(data_of(envelope))


class TestLedgerContract:
    """What every Ledger does, the fake as the PostgreSQL adapter."""

    async def test_an_empty_ledger_knows_no_command(self, port: Ledger) -> None:
        assert await latest(port, command("create")) is None
        assert await latest(port, command("add_member", group="Admins")) is None
        assert await port.desired_of("crm", ["u-1"]) == {}
        assert [d async for d in port.present_desired("crm")] == []

    async def test_a_replayed_older_command_never_undoes_a_newer_one(self, port: Ledger) -> None:
        created = command("create")
        deleted = later(command("delete"), 5)

        await record(port, created)
        assert await desired(port) == ("active", "Analyst")
        await record(port, deleted)
        await record(port, created)  # the dead letter of the joiner, replayed late

        assert await desired(port) == ("absent", "Analyst")
        assert await latest(port, created) == deleted.time
        assert [d.user_id async for d in port.present_desired("crm")] == []

    async def test_a_newer_command_replaces_the_entry_and_a_redelivery_keeps_it(
        self, port: Ledger
    ) -> None:
        first = command("create", title="Analyst")
        second = later(command("update", title="Lead"), 1)

        await record(port, first)
        await record(port, second)
        await record(port, second)

        assert await desired(port) == ("active", "Lead")
        assert await latest(port, first) == second.time
        (entry,) = (await port.desired_of("crm", ["u-1"])).values()
        assert entry.profile == data_of(second).profile

    async def test_each_operation_asks_for_its_state(self, port: Ledger) -> None:
        steps: list[tuple[Operation, bool, str]] = [
            ("create", True, "active"),
            ("disable", True, "disabled"),
            ("enable", True, "active"),
            ("update", False, "disabled"),
            ("delete", True, "absent"),
        ]
        for offset, (operation, active, state) in enumerate(steps):
            await record(port, later(command(operation, active=active), offset))
            assert await desired(port) == (state, "Analyst"), operation

    async def test_memberships_are_recorded_apart_from_the_account(self, port: Ledger) -> None:
        await record(port, command("update", title="Lead"))
        added = later(command("add_member", group="Admins"), 1)
        await record(port, added)

        assert await desired(port) == ("active", "Lead")
        assert await latest(port, added) == added.time
        other_group = command("remove_member", group="Ops")
        assert await latest(port, other_group) is None
        removed = later(command("remove_member", group="Admins"), 2)
        await record(port, removed)
        await record(port, added)  # replayed late: the removal stays
        assert await latest(port, added) == removed.time

    async def test_entries_are_per_identity_and_target(self, port: Ledger) -> None:
        for user_id in ("u-3", "u-1", "u-2"):
            await record(port, command("create", user_id=user_id))
        await record(port, command("create", user_id="u-4", target="wiki"))
        await record(port, later(command("delete", user_id="u-2"), 1))

        present = [d.user_id async for d in port.present_desired("crm", batch=1)]
        found = await port.desired_of("crm", ["u-1", "u-2", "u-4", "u-9"])

        assert present == ["u-1", "u-3"]
        assert sorted(found) == ["u-1", "u-2"]
        assert found["u-2"].state == "absent"
        assert await latest(port, command("create", user_id="u-4")) is None


async def test_a_membership_records_whether_the_identity_is_a_member(pool: asyncpg.Pool) -> None:
    await record(PostgresLedger(pool), command("add_member", group="Admins"))

    member = await pool.fetchval(
        "SELECT member FROM desired_memberships WHERE group_name = 'Admins'"
    )
    assert member is True


async def test_the_ledger_joins_the_transaction_it_is_given(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        await record(PostgresLedger(conn), command("create"))
        assert await desired(PostgresLedger(conn)) == ("active", "Analyst")
        await transaction.rollback()

    assert await desired(PostgresLedger(pool)) is None


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
