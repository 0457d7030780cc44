"""Workflows and their durable timers on a real PostgreSQL: what the transaction holds."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from accord.events import (
    AccountProvisioned,
    AccountProvisionFailed,
    Envelope,
    EventData,
    ProvisionRequested,
    UserCreated,
    UserDeleted,
    UserUpdated,
    new_event,
)
from accord.orchestrator import timers
from accord.orchestrator.adapters import store
from accord.orchestrator.bootstrap import routes
from accord.orchestrator.domain.birthright import everyone
from accord.orchestrator.domain.workflow import WorkflowSettings
from accord.runtime.consumer import HandlerContext
from accord.stack.testing import migrated_pool

pytestmark = pytest.mark.integration

SCHEMA = "orchestrator"
SOURCE = "urn:test:orchestrator"


@pytest_asyncio.fixture(loop_scope="session")
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool(fresh_database, SCHEMA, ["accord.orchestrator.migrations"]) as created:
        yield created


def workflows(**options: Any) -> WorkflowSettings:
    return WorkflowSettings(birthright=everyone(["crm", "wiki"]), **options)


async def handle(pool: asyncpg.Pool, flows: WorkflowSettings, event: Envelope) -> list[Envelope]:
    """Hand an event to the orchestrator's route for its type, as the consumer would."""
    route = routes(flows)[event.type]
    async with pool.acquire() as conn, conn.transaction():
        ctx = HandlerContext(conn=conn, source=SOURCE, topic=event.type)
        return await route(event, ctx)


def event(data: EventData, sequence: int | None = None) -> Envelope:
    return new_event(data, source="urn:test:hr", sequence=sequence)


async def due_now(pool: asyncpg.Pool, kind: str) -> int:
    """Make every timer of a kind due; returns how many there are."""
    result = await pool.execute("UPDATE timers SET due_at = now() WHERE kind = $1", kind)
    return int(result.split()[-1])


async def outbox_types(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch("SELECT topic FROM outbox ORDER BY id")
    return [r["topic"] for r in rows]


async def test_a_round_without_answers_times_out_and_fails_the_saga(pool: asyncpg.Pool) -> None:
    flows = workflows(transient_rounds=0)
    joined = event(UserCreated(user_id="u-timeout", user_name="timeout"), 1)
    started = await handle(pool, flows, joined)
    requests = [e.data for e in started if isinstance(e.data, ProvisionRequested)]
    assert [r.target for r in requests] == ["crm", "wiki"]
    saga_id = requests[0].saga_id
    crm = AccountProvisioned(
        user_id="u-timeout",
        target="crm",
        operation="create",
        saga_id=saga_id,
        step_id=requests[0].step_id,
        account_id="c-1",
    )
    await handle(pool, flows, event(crm))

    assert await due_now(pool, "saga_timeout") == 1
    fired = await timers.fire_due(pool, flows, schema=SCHEMA, source=SOURCE)

    assert fired == 1
    saga = await store.get_saga(pool, saga_id)
    assert saga is not None
    assert saga["status"] == "failed"
    assert [(s["target"], s["status"], s["error"]) for s in saga["steps"]] == [
        ("crm", "done", None),
        ("wiki", "failed", "no answer within 600 s"),
    ]
    assert (await outbox_types(pool))[-1] == "saga.failed"
    assert await pool.fetchval("SELECT count(*) FROM timers WHERE saga_id = $1", saga_id) == 0


async def test_a_transient_failure_schedules_a_retry_and_a_late_success_heals_the_saga(
    pool: asyncpg.Pool,
) -> None:
    flows = workflows(transient_rounds=1)
    user = "u-heal"
    started = await handle(pool, flows, event(UserCreated(user_id=user, user_name=user), 1))
    requests = [e.data for e in started if isinstance(e.data, ProvisionRequested)]
    saga_id = requests[0].saga_id
    for request in requests:
        common = {
            "user_id": user,
            "target": request.target,
            "operation": "create",
            "saga_id": saga_id,
            "step_id": request.step_id,
        }
        result: EventData = (
            AccountProvisioned(**common, account_id="c-1")
            if request.target == "crm"
            else AccountProvisionFailed(**common, reason="503", retryable=True)
        )
        await handle(pool, flows, event(result))
    saga = await store.get_saga(pool, saga_id)
    assert saga is not None
    assert saga["status"] == "failed"
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM timers WHERE saga_id = $1 AND kind = 'saga_retry'", saga_id
        )
        == 1
    )

    # The dead letter replayed after the target recovered: its success heals the saga.
    late = AccountProvisioned(
        user_id=user,
        target="wiki",
        operation="create",
        saga_id=saga_id,
        step_id=f"{saga_id}:wiki",
        account_id="w-1",
    )
    healed = await handle(pool, flows, event(late))

    assert [e.type for e in healed] == ["saga.completed"]
    saga = await store.get_saga(pool, saga_id)
    assert saga is not None
    assert saga["status"] == "completed"
    assert sorted(await store.account_targets(pool, user)) == ["crm", "wiki"]


async def test_a_deleted_identitys_accounts_go_when_the_retention_timer_fires(
    pool: asyncpg.Pool,
) -> None:
    flows = workflows(leaver_retention=timedelta(days=30))
    user = "u-retention"
    joined = event(UserCreated(user_id=user, user_name=user), 1)
    await answer(pool, flows, await handle(pool, flows, joined))

    left = await handle(pool, flows, event(UserDeleted(user_id=user), 2))
    assert operations(left) == [("crm", "disable"), ("wiki", "disable")]
    await answer(pool, flows, left)
    assert await timers.fire_due(pool, flows, schema=SCHEMA, source=SOURCE) == 0  # not yet due

    assert await due_now(pool, "account_deletion") == 1
    assert await timers.fire_due(pool, flows, schema=SCHEMA, source=SOURCE) == 1

    rows = await pool.fetch("SELECT value FROM outbox WHERE topic = 'provision.requested'")
    deletes = [json.loads(r["value"]) for r in rows]
    assert sorted((d["target"], d["operation"]) for d in deletes) == [
        ("crm", "delete"),
        ("wiki", "delete"),
    ]
    assert await timers.fire_due(pool, flows, schema=SCHEMA, source=SOURCE) == 0  # fired once


async def test_a_mover_behind_its_joiner_waits_and_is_planned_on_the_joiners_accounts(
    pool: asyncpg.Pool,
) -> None:
    flows = workflows()
    user = "u-queue"
    started = await handle(pool, flows, event(UserCreated(user_id=user, user_name=user), 1))
    moved = event(UserUpdated(user_id=user, user_name=user, title="Lead"), 2)

    assert await handle(pool, flows, moved) == []  # queued: joiner in flight
    listing = await store.list_sagas(pool, store.SagaFilter(subject_id=user), limit=10)
    assert [(s["saga_type"], s["status"]) for s in listing] == [
        ("mover", "queued"),
        ("joiner", "running"),
    ]

    after_joiner = await answer(pool, flows, started)

    types = [e.type for e in after_joiner]
    assert types == ["saga.completed", "saga.started", "provision.requested", "provision.requested"]
    # Planned once the joiner's accounts were known: an update of each, no second creation.
    assert operations(after_joiner) == [("crm", "update"), ("wiki", "update")]
    assert after_joiner[1].correlationid == moved.correlationid


def operations(events: list[Envelope]) -> list[tuple[str, str]]:
    return [
        (e.data.target, e.data.operation) for e in events if isinstance(e.data, ProvisionRequested)
    ]


async def answer(
    pool: asyncpg.Pool, flows: WorkflowSettings, events: list[Envelope]
) -> list[Envelope]:
    """Report every provision.requested among events as done; returns what the last caused."""
    caused: list[Envelope] = []
    for request in (e.data for e in events if isinstance(e.data, ProvisionRequested)):
        done = AccountProvisioned(
            user_id=request.user_id,
            target=request.target,
            operation=request.operation,
            saga_id=request.saga_id,
            step_id=request.step_id,
            account_id=f"{request.target}-{request.user_id}",
        )
        caused = await handle(pool, flows, event(done))
    return caused
