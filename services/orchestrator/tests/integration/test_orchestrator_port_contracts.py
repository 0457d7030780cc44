"""The ports' contract: the same cases against the in-memory fakes and the PostgreSQL
adapters, so that the fakes the handler unit tests run on cannot drift from the tables.

Each PostgreSQL case runs in a transaction rolled back at its end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio

from accord.events import Profile
from accord.orchestrator.adapters.postgres import PostgresRegistry, PostgresSagas, saga_census
from accord.orchestrator.domain import account_saga as saga
from accord.orchestrator.domain.identity import IdentityVersion
from accord.orchestrator.fakes import FakeRegistry, FakeSagas
from accord.orchestrator.ports import (
    NO_ACCOUNT,
    ParkedEvent,
    ProfileChange,
    RegistryStore,
    SagaStore,
    Timer,
    UserNameTaken,
)

from .contract_kit import rolled_back

pytestmark = pytest.mark.integration

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@dataclass
class Stores:
    registry: RegistryStore
    sagas: SagaStore
    conn: asyncpg.Connection | None = None
    """The PostgreSQL case's connection (None for the fakes): to read what no port reads."""

    async def timers(self) -> list[tuple[str, str, datetime]]:
        """Every timer as (id, kind, due at), by id."""
        if self.conn is None:
            assert isinstance(self.sagas, FakeSagas)
            found = [(t.timer_id, t.kind, due) for t, due in self.sagas.timers.values()]
        else:
            rows = await self.conn.fetch("SELECT timer_id, kind, due_at FROM timers")
            found = [(r["timer_id"], r["kind"], r["due_at"]) for r in rows]
        return sorted(found)

    async def changed(self, saga_id: str, at: datetime) -> None:
        """Date a saga's last change back (the table's updated_at; the fake's changed_at)."""
        if self.conn is None:
            assert isinstance(self.sagas, FakeSagas)
            self.sagas.rows[saga_id].changed_at = at
        else:  # the guard wants every update to move the version on
            await self.conn.execute(
                "UPDATE sagas SET updated_at = $2, version = version + 1 WHERE saga_id = $1",
                saga_id,
                at,
            )


@pytest_asyncio.fixture(loop_scope="session", params=["fake", "postgres"])
async def stores(request: pytest.FixtureRequest, pool: asyncpg.Pool) -> AsyncIterator[Stores]:
    if request.param == "fake":
        yield Stores(FakeRegistry(), FakeSagas())
        return
    async with rolled_back(pool) as conn:
        yield Stores(PostgresRegistry(conn), PostgresSagas(conn), conn)


def change(user_id: str, sequence: int, **fields: object) -> ProfileChange:
    name = str(fields.pop("user_name", user_id))
    status = str(fields.pop("status", "active"))
    status_event = bool(fields.pop("status_event", True))
    profile = Profile(user_name=name, active=status == "active", **fields)  # type: ignore[arg-type]
    return ProfileChange(
        user_id=user_id,
        user_name=name,
        profile=profile.model_dump(mode="json"),
        status=status,
        sequence=sequence,
        source="urn:test:hr",
        status_event=status_event,
    )


# --- the registry ---------------------------------------------------------------------------


async def test_an_unknown_identity_has_nothing(stores: Stores) -> None:
    registry = stores.registry
    await registry.lock("u-none")
    assert await registry.version("u-none") is None
    assert await registry.identity("u-none") is None
    assert await registry.accounts("u-none") == (await registry.accounts("u-other"))
    assert (await registry.accounts("u-none")).maybe == ()
    assert await registry.set_locked("u-none", "lock-1") is False
    await registry.set_status("u-none", "inactive", 3)
    assert await registry.identity("u-none") is None


async def test_a_profile_is_saved_and_replaced(stores: Stores) -> None:
    registry = stores.registry
    await registry.save_profile(change("u-1", 1, department="Eng"))
    assert await registry.version("u-1") == IdentityVersion(1, "active", 1)
    identity = await registry.identity("u-1")
    assert identity is not None
    assert (identity.user_id, identity.status, identity.locked_by) == ("u-1", "active", None)
    assert identity.profile.department == "Eng"

    # An update is no status event: the status's sequence stays.
    await registry.save_profile(change("u-1", 4, department="Sales", status_event=False))
    assert await registry.version("u-1") == IdentityVersion(4, "active", 1)
    await registry.save_profile(change("u-1", 5, status="inactive"))
    assert await registry.version("u-1") == IdentityVersion(5, "inactive", 5)


async def test_lifecycle_attributes_come_back_as_they_were_saved(stores: Stores) -> None:
    """Hire and leave dates keep their form (a day, an instant with its offset) through jsonb."""
    lifecycle = {
        "employee_type": "intern",
        "hire_date": "2025-03-03",
        "leave_date": "2025-08-29T17:30:00.250-04:00",
        "time_zone": "America/New_York",
    }
    await stores.registry.save_profile(change("u-1", 1, **lifecycle))
    identity = await stores.registry.identity("u-1")
    assert identity is not None
    assert identity.profile.model_dump(include=set(lifecycle)) == lifecycle

    await stores.registry.save_profile(change("u-1", 2, status_event=False, hire_date=None))
    identity = await stores.registry.identity("u-1")
    assert identity is not None
    assert (identity.profile.hire_date, identity.profile.time_zone) == (None, None)


async def test_a_status_change_moves_the_sequences_forward_and_the_active_flag(
    stores: Stores,
) -> None:
    registry = stores.registry
    await registry.save_profile(change("u-1", 3))
    await registry.set_status("u-1", "inactive", 5)
    assert await registry.version("u-1") == IdentityVersion(5, "inactive", 5)
    identity = await registry.identity("u-1")
    assert identity is not None
    assert identity.profile.active is False

    await registry.set_status("u-1", "active", 2)  # an older sequence moves nothing back
    assert await registry.version("u-1") == IdentityVersion(5, "active", 5)
    identity = await registry.identity("u-1")
    assert identity is not None
    assert identity.profile.active is True


async def test_a_user_name_belongs_to_one_living_identity(stores: Stores) -> None:
    registry = stores.registry
    await registry.save_profile(change("u-1", 1, user_name="ada"))
    await registry.set_status("u-1", "deleted", 2)
    await registry.save_profile(change("u-2", 1, user_name="ADA"))  # released by the leaver
    with pytest.raises(UserNameTaken):
        await registry.set_status("u-1", "active", 3)  # back, but the name is taken


async def test_identity_ids_page_through_the_living_identities_in_order(
    stores: Stores,
) -> None:
    registry = stores.registry
    assert await registry.identity_ids(None, 10) == []
    for user_id in ("c3", "a1", "e5", "b2", "d4"):
        await registry.save_profile(change(user_id, 1))
    await registry.set_status("d4", "deleted", 2)  # a leaver is listed no more

    assert await registry.identity_ids(None, 2) == ["a1", "b2"]
    assert await registry.identity_ids("b2", 2) == ["c3", "e5"]
    assert await registry.identity_ids("e5", 2) == []
    assert await registry.identity_ids(None, 10) == ["a1", "b2", "c3", "e5"]


async def test_a_second_identity_cannot_take_a_living_user_name(stores: Stores) -> None:
    await stores.registry.save_profile(change("u-1", 1, user_name="ada"))
    with pytest.raises(UserNameTaken):
        await stores.registry.save_profile(change("u-2", 1, user_name="Ada"))


async def test_lockouts_are_held_and_remembered_when_ended(stores: Stores) -> None:
    registry = stores.registry
    await registry.save_profile(change("u-1", 1))
    assert await registry.set_locked("u-1", "lock-1") is True
    identity = await registry.identity("u-1")
    assert identity is not None
    assert identity.locked_by == "lock-1"
    assert await registry.lockout_ended("u-1", "lock-1") is False
    await registry.end_lockout("u-1", "lock-1")
    await registry.end_lockout("u-1", "lock-1")  # twice: remembered once
    assert await registry.lockout_ended("u-1", "lock-1") is True
    assert await registry.lockout_ended("u-1", "lock-2") is False
    assert await registry.set_locked("u-1", None) is True
    identity = await registry.identity("u-1")
    assert identity is not None
    assert identity.locked_by is None


async def test_parked_events_are_taken_once_in_sequence_order(stores: Stores) -> None:
    registry = stores.registry

    def parked(event_id: str, sequence: int) -> ParkedEvent:
        data = {"user_id": "u-1", "reason": None}
        return ParkedEvent(event_id, sequence, "user.deactivated", 1, data, "urn:test:hr")

    await registry.park("u-1", parked("e-3", 3))
    await registry.park("u-1", parked("e-2", 2))
    await registry.park("u-1", parked("e-2", 9))  # a redelivery keeps the first
    await registry.park("u-2", parked("e-other", 2))

    taken = await registry.take_parked("u-1")
    assert [(e.event_id, e.sequence) for e in taken] == [("e-2", 2), ("e-3", 3)]
    assert taken[0].data == {"user_id": "u-1", "reason": None}
    assert await registry.take_parked("u-1") == []
    assert [e.event_id for e in await registry.take_parked("u-2")] == ["e-other"]


async def test_accounts_follow_requests_and_results(stores: Stores) -> None:
    registry = stores.registry

    async def accounts() -> tuple[tuple[str, ...], tuple[str, ...]]:
        found = await registry.accounts("u-1")
        return tuple(found.held), tuple(found.maybe)

    await registry.record_requested("u-1", ["crm", "wiki"])
    await registry.record_requested("u-1", ["hr"])
    assert await accounts() == ((), ("crm", "hr", "wiki"))
    await registry.record_account("u-1", "crm", "c-1", "create")
    await registry.record_requested("u-1", ["crm"])  # asked again: the account stays
    assert await accounts() == (("crm",), ("crm", "hr", "wiki"))
    await registry.record_account("u-1", "wiki", NO_ACCOUNT, "disable")  # never created
    await registry.record_account("u-1", "crm", NO_ACCOUNT, "disable")  # not in doubt: kept
    assert await accounts() == (("crm",), ("crm", "hr"))
    await registry.record_account("u-1", "hr", "h-1", "update")  # settles the doubt
    await registry.record_account("u-1", "crm", "c-1", "disable")
    await registry.record_account("u-1", "crm", "c-1", "update")
    assert await accounts() == (("crm", "hr"), ("crm", "hr"))
    await registry.record_account("u-1", "crm", "c-1", "delete")
    assert await accounts() == (("hr",), ("hr",))


# --- the sagas ------------------------------------------------------------------------------


def joiner(saga_id: str, user_id: str = "u-1") -> saga.SagaState:
    state, _ = saga.start(saga_id, user_id, {"crm": "create"}, NOW, saga_type="joiner")
    return state


def queued(saga_id: str, user_id: str = "u-1") -> saga.SagaState:
    return saga.queue(saga_id, user_id, "mover", NOW)


async def test_a_saga_is_inserted_once_and_loaded_with_its_version(stores: Stores) -> None:
    sagas = stores.sagas
    state = joiner("s-1")
    assert await sagas.insert(state, "corr-1") is True
    assert await sagas.insert(state, "corr-2") is False
    loaded = await sagas.load("s-1")
    assert loaded == state
    assert (await sagas.status("s-1"), await sagas.subject("s-1")) == ("running", "u-1")
    assert await sagas.correlation("s-1") == "corr-1"
    assert await sagas.load("s-none") is None
    assert await sagas.status("s-none") is None
    assert await sagas.subject("s-none") is None
    assert await sagas.correlation("s-none") is None


async def complete(sagas: SagaStore, saga_id: str) -> saga.SagaState:
    """Load a one-step joiner, let its step succeed and save it; returns what was saved."""
    read = await sagas.load(saga_id)
    assert read is not None
    done, _ = saga.decide(read, saga.Provisioned("crm", "create"), NOW)
    await sagas.save(done)
    return done


async def test_a_save_needs_the_version_it_read(stores: Stores) -> None:
    sagas = stores.sagas
    await sagas.insert(joiner("s-1"), "corr-1")
    done = await complete(sagas, "s-1")
    saved = await sagas.load("s-1")
    assert saved is not None
    assert (saved.status, saved.version) == ("completed", 1)
    with pytest.raises(asyncpg.exceptions.SerializationError):
        await sagas.save(done)  # written since it was read


async def test_a_saga_that_ended_never_changes(stores: Stores) -> None:
    sagas = stores.sagas
    await sagas.insert(joiner("s-1"), "corr-1")
    await complete(sagas, "s-1")
    ended = await sagas.load("s-1")
    assert ended is not None
    with pytest.raises(asyncpg.exceptions.RaiseError):
        await sagas.save(ended)


async def test_sagas_queue_behind_the_one_that_holds_the_identity(stores: Stores) -> None:
    sagas = stores.sagas
    assert await sagas.busy("u-1") is False
    assert await sagas.holder("u-1") is None
    await sagas.insert(joiner("s-1"), "corr-1")
    await sagas.insert(queued("s-2"), "corr-2")
    await sagas.insert(queued("s-3"), "corr-3")
    await sagas.insert(queued("s-9", "u-2"), "corr-9")
    assert await sagas.busy("u-1") is True
    assert await sagas.holder("u-1") == "s-1"
    assert await sagas.next_queued("u-1") is None  # held

    await complete(sagas, "s-1")
    assert await sagas.holder("u-1") is None
    assert await sagas.busy("u-1") is True  # two still wait
    following = await sagas.next_queued("u-1")
    assert following is not None
    assert following.saga_id == "s-2"
    elsewhere = await sagas.next_queued("u-2")  # another identity's queue holds its own
    assert elsewhere is not None
    assert elsewhere.saga_id == "s-9"


async def test_the_census_counts_sagas_by_workflow_and_status(stores: Stores) -> None:
    sagas = stores.sagas
    assert await sagas.census() == []
    await sagas.insert(joiner("s-1"), "corr-1")
    await sagas.insert(joiner("s-2", "u-2"), "corr-2")
    await complete(sagas, "s-2")
    await sagas.insert(queued("s-3"), "corr-3")
    await sagas.insert(queued("s-4"), "corr-4")
    for saga_id, user_id in (("s-5", "u-5"), ("s-6", "u-6")):
        started = joiner(saga_id, user_id)
        failed, _ = saga.decide(started, saga.ProvisionFailed("crm", "refused"), NOW)
        assert failed.status == "failed"
        await sagas.insert(failed, f"corr-{saga_id}")
    await stores.changed("s-5", NOW - timedelta(hours=2))
    await stores.changed("s-6", NOW - timedelta(hours=1))

    census = await sagas.census()

    assert [(c.workflow, c.status, c.sagas) for c in census] == [
        ("joiner", "completed", 1),
        ("joiner", "failed", 2),
        ("joiner", "running", 1),
        ("mover", "queued", 2),
    ]
    assert census[1].oldest_change == NOW - timedelta(hours=2)  # the longest-failed one's
    assert all(c.oldest_change.tzinfo is not None for c in census)


async def test_the_scrape_reads_the_census_on_a_connection_of_its_own(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await PostgresSagas(conn).insert(joiner("s-uncommitted"), "corr-1")
            assert len(await PostgresSagas(conn).census()) == 1
            # Its own read-only transaction, bounded by a statement timeout: what another
            # transaction has not committed is not there.
            assert await saga_census(pool, timeout_s=2.0) == []
        finally:
            await transaction.rollback()


async def test_timers_are_kept_once_and_dropped_by_saga_and_kind(stores: Stores) -> None:
    sagas = stores.sagas
    retry = Timer("s-1:retry:1", "saga_retry", "u-1", "s-1", "corr-1")
    timeout = Timer("s-1:timeout:0:running", "saga_timeout", "u-1", "s-1", "corr-1", {"round": 0})
    other = Timer("s-2:retry:1", "saga_retry", "u-1", "s-2", "corr-2")
    await sagas.add_timer(retry, NOW)
    await sagas.add_timer(retry, NOW + timedelta(hours=1))  # the first stays
    await sagas.add_timer(timeout, NOW)
    await sagas.add_timer(other, NOW)
    assert await stores.timers() == [
        ("s-1:retry:1", "saga_retry", NOW),
        ("s-1:timeout:0:running", "saga_timeout", NOW),
        ("s-2:retry:1", "saga_retry", NOW),
    ]
    await sagas.drop_timers("s-1", "saga_retry")
    assert [t[0] for t in await stores.timers()] == ["s-1:timeout:0:running", "s-2:retry:1"]
