"""Access grants provisioned as group memberships, on a real PostgreSQL: sagas and outbox."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from accord.events import (
    Envelope,
    EventData,
    Provisioning,
    ProvisionRequested,
    UserCreated,
    new_event,
)
from accord.orchestrator import sagas
from accord.orchestrator.adapters import store
from accord.orchestrator.bootstrap import routes
from accord.orchestrator.domain import account_saga as saga
from accord.orchestrator.domain.birthright import everyone
from accord.orchestrator.domain.workflow import WorkflowSettings
from accord.orchestrator.handlers import UnknownIdentity
from accord.orchestrator.testing import answer_of, grant_of, revocation_of
from accord.runtime import outbox
from accord.runtime.consumer import HandlerContext
from accord.stack.testing import migrated_pool

pytestmark = pytest.mark.integration

SCHEMA = "orchestrator"
SOURCE = "urn:test:orchestrator"
SALES = Provisioning(target="crm", group="Sales Team")
EDITORS = Provisioning(target="wiki", group="editors")
READERS = Provisioning(target="wiki", group="readers")


@pytest_asyncio.fixture(loop_scope="session")
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool(fresh_database, SCHEMA, ["accord.orchestrator.migrations"]) as created:
        yield created


def workflows(**options: Any) -> WorkflowSettings:
    return WorkflowSettings(birthright=everyone(["crm", "wiki"]), **options)


async def handle(pool: asyncpg.Pool, flows: WorkflowSettings, event: Envelope) -> list[Envelope]:
    """Run the route of the event's type as the consumer does: its events join the outbox
    in its transaction."""
    route = routes(flows)[event.type]
    async with pool.acquire() as conn, conn.transaction():
        ctx = HandlerContext(conn=conn, source=SOURCE, topic=event.type)
        emitted = await route(event, ctx)
        await outbox.enqueue(conn, SCHEMA, emitted)
        return emitted


def event(data: EventData, sequence: int | None = None) -> Envelope:
    return new_event(data, source="urn:test:authz", sequence=sequence)


def granted(user: str, *provisioning: Provisioning, grant_id: str = "g-1") -> Envelope:
    return event(grant_of(user, *provisioning, grant_id=grant_id))


def revoked(user: str, *provisioning: Provisioning, grant_id: str = "g-1") -> Envelope:
    return event(revocation_of(user, *provisioning, grant_id=grant_id))


def requests(events: list[Envelope]) -> list[ProvisionRequested]:
    return [e.data for e in events if isinstance(e.data, ProvisionRequested)]


def memberships(events: list[Envelope]) -> list[tuple[str, str, str | None]]:
    return [(r.target, r.operation, r.group) for r in requests(events)]


def result(request: ProvisionRequested, **failure: Any) -> Envelope:
    """The provisioner's answer to a request: done, or failed when a reason is given."""
    return event(answer_of(request, **failure))


async def answer(
    pool: asyncpg.Pool, flows: WorkflowSettings, events: list[Envelope]
) -> list[Envelope]:
    """Report every provision.requested among events as done; returns what they caused."""
    caused: list[Envelope] = []
    for request in requests(events):
        caused += await handle(pool, flows, result(request))
    return caused


async def joined(pool: asyncpg.Pool, flows: WorkflowSettings, user: str) -> None:
    """An identity whose joiner completed: it holds accounts in crm and wiki."""
    created = event(UserCreated(user_id=user, user_name=user), 1)
    await answer(pool, flows, await handle(pool, flows, created))
    assert await store.account_targets(pool, user) == ["crm", "wiki"]


async def sagas_of(pool: asyncpg.Pool, user: str) -> list[tuple[str, str]]:
    listing = await store.list_sagas(pool, store.SagaFilter(subject_id=user), limit=20)
    return [(s["saga_type"], s["status"]) for s in listing]


async def outbox_requests(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT value FROM outbox WHERE topic = 'provision.requested' ORDER BY id"
    )
    return [json.loads(r["value"]) for r in rows]


async def test_a_grant_adds_its_memberships_and_their_results_complete_it(
    pool: asyncpg.Pool,
) -> None:
    flows = workflows()
    user = "u-grant"
    await joined(pool, flows, user)
    accounts_before = await pool.fetch("SELECT * FROM accounts WHERE user_id = $1", user)

    started = await handle(pool, flows, granted(user, SALES, EDITORS, READERS))

    assert [e.type for e in started] == ["saga.started", *["provision.requested"] * 3]
    assert started[0].data.model_dump()["targets"] == ("crm", "wiki")
    assert memberships(started) == [
        ("crm", "add_member", "Sales Team"),
        ("wiki", "add_member", "editors"),
        ("wiki", "add_member", "readers"),
    ]
    added = [r for r in await outbox_requests(pool) if r["operation"] == "add_member"]
    assert sorted((r["target"], r["group"]) for r in added) == [
        ("crm", "Sales Team"),
        ("wiki", "editors"),
        ("wiki", "readers"),
    ]
    assert all(r["profile"]["user_name"] == user for r in added)

    finished = await answer(pool, flows, started)

    assert [e.type for e in finished] == ["saga.completed"]
    assert await sagas_of(pool, user) == [("access_grant", "completed"), ("joiner", "completed")]
    # A membership is not an account: the registry's accounts did not move.
    assert await pool.fetch("SELECT * FROM accounts WHERE user_id = $1", user) == accounts_before
    shown = await store.get_saga(pool, requests(started)[0].saga_id)
    assert shown is not None
    assert [(s["target"], s["group"], s["status"]) for s in shown["steps"]] == [
        ("crm", "Sales Team", "done"),
        ("wiki", "editors", "done"),
        ("wiki", "readers", "done"),
    ]


async def test_a_replayed_grant_starts_no_second_saga(pool: asyncpg.Pool) -> None:
    flows = workflows()
    user = "u-replay"
    await joined(pool, flows, user)
    grant = granted(user, SALES)
    started = await handle(pool, flows, grant)

    assert await handle(pool, flows, grant) == []  # redelivered, running
    await answer(pool, flows, started)
    assert await handle(pool, flows, grant) == []  # redelivered, completed
    # The same grant announced again under another event id is still the same saga.
    assert await handle(pool, flows, granted(user, SALES)) == []

    assert await sagas_of(pool, user) == [("access_grant", "completed"), ("joiner", "completed")]


async def test_a_revocation_removes_the_memberships(pool: asyncpg.Pool) -> None:
    flows = workflows()
    user = "u-revoke"
    await joined(pool, flows, user)
    await answer(pool, flows, await handle(pool, flows, granted(user, EDITORS)))

    started = await handle(pool, flows, revoked(user, EDITORS))

    assert memberships(started) == [("wiki", "remove_member", "editors")]
    assert [e.type for e in await answer(pool, flows, started)] == ["saga.completed"]
    assert (await sagas_of(pool, user))[0] == ("access_revoke", "completed")
    assert await store.account_targets(pool, user) == ["crm", "wiki"]  # the account stays


async def test_a_grant_behind_a_running_joiner_waits_queued_and_follows_it(
    pool: asyncpg.Pool,
) -> None:
    flows = workflows()
    user = "u-queued-grant"
    created = event(UserCreated(user_id=user, user_name=user), 1)
    joiner = await handle(pool, flows, created)

    assert await handle(pool, flows, granted(user, SALES)) == []
    assert await sagas_of(pool, user) == [("access_grant", "queued"), ("joiner", "running")]
    assert [r["operation"] for r in await outbox_requests(pool)] == ["create", "create"]

    after_joiner = await answer(pool, flows, joiner)

    assert [e.type for e in after_joiner] == [
        "saga.completed",
        "saga.started",
        "provision.requested",
    ]
    assert memberships(after_joiner) == [("crm", "add_member", "Sales Team")]
    assert await sagas_of(pool, user) == [("access_grant", "running"), ("joiner", "completed")]


async def test_a_membership_without_an_account_fails_the_grant_for_an_operator(
    pool: asyncpg.Pool,
) -> None:
    flows = workflows()
    user = "u-no-account"
    await joined(pool, flows, user)
    started = await handle(pool, flows, granted(user, SALES))
    reason = "crm: no account to add to group 'Sales Team'"

    failed = await handle(pool, flows, result(requests(started)[0], reason=reason, retryable=False))

    assert [e.type for e in failed] == ["saga.failed"]
    assert (
        failed[0].data.model_dump()["reason"]
        == f"provisioning failed in crm group Sales Team: {reason}"
    )
    saga_id = requests(started)[0].saga_id
    assert await pool.fetchval("SELECT count(*) FROM timers WHERE kind = 'saga_retry'") == 0

    entry = await sagas.operate(
        pool,
        schema=SCHEMA,
        source=SOURCE,
        workflows=flows,
        saga_id=saga_id,
        action=saga.RetryRequested(),
    )

    assert entry["status"] == "running"
    again = (await outbox_requests(pool))[-1]
    assert (again["operation"], again["group"]) == ("add_member", "Sales Team")


async def test_a_revocation_cancels_a_failed_grant_and_a_late_grant_is_not_provisioned(
    pool: asyncpg.Pool,
) -> None:
    flows = workflows()
    user = "u-withdrawn"
    await joined(pool, flows, user)
    started = await handle(pool, flows, granted(user, SALES))
    await handle(pool, flows, result(requests(started)[0], reason="refused", retryable=False))

    revoking = await handle(pool, flows, revoked(user, SALES))

    assert [e.type for e in revoking] == [
        "saga.failed",  # the grant, cancelled: a retry must never add the group again
        "saga.started",
        "provision.requested",
    ]
    assert memberships(revoking) == [("crm", "remove_member", "Sales Team")]
    assert await sagas_of(pool, user) == [
        ("access_revoke", "running"),
        ("access_grant", "cancelled"),
        ("joiner", "completed"),
    ]
    # A grant that arrives after its revocation (another topic, another order) does nothing.
    late_user = "u-late-grant"
    await joined(pool, flows, late_user)
    await answer(
        pool,
        flows,
        await handle(pool, flows, revoked(late_user, SALES, grant_id="g-3")),
    )
    assert await handle(pool, flows, granted(late_user, SALES, grant_id="g-3")) == []
    assert await sagas_of(pool, late_user) == [
        ("access_revoke", "completed"),
        ("joiner", "completed"),
    ]


async def test_nothing_to_provision_starts_no_saga(pool: asyncpg.Pool) -> None:
    flows = workflows()
    user = "u-accord-only"
    await joined(pool, flows, user)

    assert await handle(pool, flows, granted(user)) == []
    assert await handle(pool, flows, revoked(user)) == []
    assert await sagas_of(pool, user) == [("joiner", "completed")]


async def test_a_grant_for_an_identity_the_registry_does_not_know_is_refused(
    pool: asyncpg.Pool,
) -> None:
    with pytest.raises(UnknownIdentity, match="u-nobody"):
        await handle(pool, workflows(), granted("u-nobody", SALES))
    assert await sagas_of(pool, "u-nobody") == []
