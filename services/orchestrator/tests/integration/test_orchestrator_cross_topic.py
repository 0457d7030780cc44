"""Events of one identity on two topics, delivered in the unlucky order (issue 17, item 4).

Kafka orders one topic's events of a subject, never two topics': identity.locked and
identity.unlocked, access.granted and access.revoked, user.updated and the status events
may each be consumed either way round."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from accord.events import (
    Envelope,
    IdentityLocked,
    IdentityUnlocked,
    UserCreated,
    UserDeactivated,
    UserDeleted,
    UserUpdated,
    from_kafka,
)
from accord.orchestrator.adapters import store
from accord.orchestrator.adapters.scim_storage import ResourceChange
from accord.orchestrator.scim.sync import RegistrySync
from accord.stack.testing import migrated_pool

from .test_orchestrator_access_workflows import (
    SALES,
    SCHEMA,
    SOURCE,
    answer,
    event,
    granted,
    handle,
    joined,
    memberships,
    outbox_requests,
    requests,
    revoked,
    sagas_of,
    workflows,
)

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(loop_scope="session")
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool(fresh_database, SCHEMA, ["accord.orchestrator.migrations"]) as made:
        yield made


def operations(events: list[Envelope]) -> list[tuple[str, str, bool]]:
    return [(r.target, r.operation, r.profile.active) for r in requests(events)]


async def account_states(pool: asyncpg.Pool, user: str) -> list[tuple[str, str]]:
    rows = await pool.fetch(
        "SELECT target, state FROM accounts WHERE user_id = $1 ORDER BY target", user
    )
    return [(r["target"], r["state"]) for r in rows]


# --- identity.locked / identity.unlocked ------------------------------------------------------


async def test_an_unlock_consumed_before_its_lockout_leaves_the_accounts_enabled(
    pool: asyncpg.Pool,
) -> None:
    flows = workflows()
    user = "u-unlock-first"
    await joined(pool, flows, user)
    locked = event(IdentityLocked(user_id=user, lockout_id="lock-1", reason="3 failures"))
    unlocked = event(IdentityUnlocked(user_id=user, lockout_id="lock-1", request_id="req-1"))

    assert await handle(pool, flows, unlocked) == []
    late = await handle(pool, flows, locked)

    # The lockout is over: its late announcement disables nothing and locks nothing.
    assert operations(late) == []
    entry = await store.get_identity(pool, user)
    assert entry is not None
    assert entry["locked_by"] is None


async def test_an_older_lockouts_unlock_does_not_end_a_newer_lockout(pool: asyncpg.Pool) -> None:
    # identity.locked is one topic: lock-1 then lock-2 arrive in order. The unlock of lock-1
    # (another topic) consumed after lock-2 must leave the identity locked.
    flows = workflows()
    user = "u-two-lockouts"
    await joined(pool, flows, user)
    first = event(IdentityLocked(user_id=user, lockout_id="lock-1", reason="3 failures"))
    await answer(pool, flows, await handle(pool, flows, first))
    second = event(IdentityLocked(user_id=user, lockout_id="lock-2", reason="by hand"))
    await answer(pool, flows, await handle(pool, flows, second))

    old = event(IdentityUnlocked(user_id=user, lockout_id="lock-1", request_id="req-1"))
    assert await handle(pool, flows, old) == []
    entry = await store.get_identity(pool, user)
    assert entry is not None
    assert entry["locked_by"] == "lock-2"
    assert await account_states(pool, user) == [("crm", "disabled"), ("wiki", "disabled")]


# --- access.granted / access.revoked ----------------------------------------------------------


async def test_a_grant_consumed_after_its_queued_revocation_is_never_provisioned(
    pool: asyncpg.Pool,
) -> None:
    # The revocation arrives first and waits behind the running joiner; the grant comes later
    # still. Already safe: the grant finds its revocation's saga (queued) and does nothing.
    flows = workflows()
    user = "u-revoked-first"
    created = event(UserCreated(user_id=user, user_name=user), 1)
    joiner = await handle(pool, flows, created)
    assert await handle(pool, flows, revoked(user, SALES, grant_id="g-rf")) == []

    assert await handle(pool, flows, granted(user, SALES, grant_id="g-rf")) == []
    after_joiner = await answer(pool, flows, joiner)
    assert memberships(after_joiner) == [("crm", "remove_member", "Sales Team")]
    await answer(pool, flows, after_joiner)

    assert "add_member" not in [r["operation"] for r in await outbox_requests(pool)]
    assert await sagas_of(pool, user) == [("access_revoke", "completed"), ("joiner", "completed")]


# --- user.updated / user.deleted, user.deactivated --------------------------------------------


def update(user: str, *, active: bool, title: str) -> UserUpdated:
    return UserUpdated(user_id=user, user_name=user, title=title, active=active)


@pytest.mark.parametrize(
    "update_first",
    [False, True],
)
async def test_a_leaver_corrected_after_the_deletion_loses_its_accounts_in_either_order(
    pool: asyncpg.Pool, update_first: bool
) -> None:
    # A source corrects a leaver's attributes after the deletion (sequence 3 > 2).
    flows = workflows(leaver_retention=timedelta(0))
    user = f"u-corrected-{update_first}"
    await joined(pool, flows, user)
    pair = [
        event(UserDeleted(user_id=user), 2),
        event(update(user, active=False, title="Former"), 3),
    ]
    for change in reversed(pair) if update_first else pair:
        await answer(pool, flows, await handle(pool, flows, change))

    entry = await store.get_identity(pool, user)
    assert entry is not None
    assert entry["status"] == "deleted"
    assert await store.account_targets(pool, user) == []


@pytest.mark.parametrize("update_first", [False, True])
async def test_a_deactivation_and_its_update_disable_the_accounts_in_either_order(
    pool: asyncpg.Pool, update_first: bool
) -> None:
    # What one SCIM write of active false plus a new title publishes, from another source.
    # Already safe: consumed first, the update's mover sends every account the inactive
    # profile (the target disables it, the provisioner's ledger says disabled) and the older
    # deactivation is skipped; consumed last, it updates the disabled accounts.
    flows = workflows()
    user = f"u-off-{update_first}"
    await joined(pool, flows, user)
    pair = [
        event(UserDeactivated(user_id=user), 2),
        event(update(user, active=False, title="On leave"), 3),
    ]
    last: dict[str, tuple[str, bool]] = {}
    for change in reversed(pair) if update_first else pair:
        started = await handle(pool, flows, change)
        last |= {target: (op, active) for target, op, active in operations(started)}
        await answer(pool, flows, started)

    assert set(last) == {"crm", "wiki"}
    assert all(not active for _, active in last.values())
    entry = await store.get_identity(pool, user)
    assert entry is not None
    assert (entry["status"], entry["profile"]["title"]) == ("inactive", "On leave")


# --- SCIM writes and the events they publish --------------------------------------------------


def scim_user(user_name: str, **fields: Any) -> dict[str, Any]:
    return {"id": "ignored", "userName": user_name, "active": True, **fields}


async def scim_write(
    pool: asyncpg.Pool, sync: RegistrySync, change: ResourceChange
) -> list[Envelope]:
    """A SCIM write as the storage makes it: registry, saga and events in one transaction;
    returns the identity events it published."""
    async with pool.acquire() as conn, conn.transaction():
        last = await conn.fetchval("SELECT coalesce(max(id), 0) FROM outbox")
        await sync(conn, change)
        rows = await conn.fetch(
            "SELECT topic, key, value, headers FROM outbox WHERE id > $1 ORDER BY id", last
        )
    published = [
        from_kafka(
            r["topic"],
            bytes(r["key"]),
            bytes(r["value"]),
            [(n, v.encode()) for n, v in json.loads(r["headers"])],
        )
        for r in rows
    ]
    return [e for e in published if e.type.startswith("user.")]


async def test_a_scim_writes_events_come_back_in_any_order_and_change_nothing(
    pool: asyncpg.Pool,
) -> None:
    # Already safe: a SCIM write applies its events to the registry in its own transaction,
    # numbered after the newest sequence the registry holds (from any source), so the
    # orchestrator skips them when it consumes them back, in whichever order, and every
    # other consumer applies them by that sequence.
    flows = workflows()
    sync = RegistrySync(flows, SCHEMA, SOURCE)
    user = "u-scim-pair"
    before = scim_user("scim-ada")
    (created,) = await scim_write(pool, sync, ResourceChange("created", "User", user, None, before))
    # Another source publishes about the identity on Kafka meanwhile, far ahead in sequence.
    hr = event(UserUpdated(user_id=user, user_name="scim-ada", title="Analyst"), 1000)
    await handle(pool, flows, hr)
    after = scim_user("scim-ada", active=False, title="On leave")
    pair = await scim_write(pool, sync, ResourceChange("replaced", "User", user, before, after))

    assert [(e.type, e.sequence) for e in pair] == [
        ("user.deactivated", 1001),
        ("user.updated", 1002),
    ]
    sagas = await sagas_of(pool, user)
    for back in reversed([created, *pair]):
        assert await handle(pool, flows, back) == []
    assert await sagas_of(pool, user) == sagas
    entry = await store.get_identity(pool, user)
    assert entry is not None
    assert (entry["status"], entry["sequence"]) == ("inactive", 1002)
