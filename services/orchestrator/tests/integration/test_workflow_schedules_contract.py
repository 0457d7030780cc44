"""The cron schedules' states (workflows/schedules.py): the same cases on the in-memory fake and
on PostgreSQL (migration 0017), the claim's SKIP LOCKED on two connections, and the schedule
loop on PostgreSQL, page by page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio

from accord.events import Profile
from accord.orchestrator.adapters.postgres import PostgresRegistry
from accord.orchestrator.adapters.workflow_schedules import PostgresSchedules
from accord.orchestrator.fakes import Clock
from accord.orchestrator.ports import ProfileChange
from accord.orchestrator.workflows import loops
from accord.orchestrator.workflows.engine import Engine
from accord.orchestrator.workflows.loader import Checks, load_files
from accord.orchestrator.workflows.schedules import FakeSchedules, ScheduleState, ScheduleStore

from .contract_kit import IdleRunner, ports_on, rolled_back

pytestmark = pytest.mark.integration

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest_asyncio.fixture(loop_scope="session", params=["fake", "postgres"])
async def schedules(
    request: pytest.FixtureRequest, pool: asyncpg.Pool
) -> AsyncIterator[ScheduleStore]:
    if request.param == "fake":
        yield FakeSchedules()
        return
    async with rolled_back(pool) as conn:
        yield PostgresSchedules(conn)


async def test_a_workflow_first_claimed_counts_from_then(schedules: ScheduleStore) -> None:
    assert await schedules.claim([], NOW) == []
    claimed = await schedules.claim(["weekly", "daily", "daily"], NOW)
    assert claimed == [ScheduleState("daily", NOW), ScheduleState("weekly", NOW)]
    # Claimed again later: the state it had, not a new first sight.
    later = NOW + timedelta(hours=1)
    assert await schedules.claim(["daily"], later) == [ScheduleState("daily", NOW)]


async def test_a_saved_state_is_claimed_as_saved(schedules: ScheduleStore) -> None:
    (state,) = await schedules.claim(["daily"], NOW)
    slot = NOW + timedelta(days=1)
    await schedules.save(state.begin(slot).advanced("u-7"))
    (running,) = await schedules.claim(["daily"], NOW)
    assert running == ScheduleState("daily", NOW, slot, "u-7")
    await schedules.save(running.finished())
    assert await schedules.claim(["daily"], NOW) == [ScheduleState("daily", slot)]


async def test_a_schedule_claimed_by_one_transaction_is_skipped_by_another(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as first, pool.acquire() as second:
        async with first.transaction():
            await PostgresSchedules(first).claim(["race-a"], NOW)  # exists, committed
        async with first.transaction():
            held = await PostgresSchedules(first).claim(["race-a", "race-b"], NOW)
            assert [s.workflow_id for s in held] == ["race-a", "race-b"]
            async with second.transaction():
                # race-a is held: skipped. race-b's row is first's uncommitted insert: the
                # second insert waits for it... so ask for race-a only.
                assert await PostgresSchedules(second).claim(["race-a"], NOW) == []
        async with second.transaction():
            (state,) = await PostgresSchedules(second).claim(["race-a"], NOW)
            assert state.workflow_id == "race-a"
        await first.execute("DELETE FROM workflow_schedules WHERE workflow_id LIKE 'race-%'")


# --- the schedule loop on PostgreSQL -------------------------------------------------------------

DAILY = """
id: daily-sales
category: custom
description: Every day at 06:00, for Sales.
trigger: {schedule: "0 6 * * *"}
scope: identity.department == "Sales"
tasks:
  - id: mfa
    task: require_mfa_enrolment
"""


async def test_the_schedule_loop_runs_a_time_once_on_postgresql(pool: asyncpg.Pool) -> None:
    workflows = load_files({"daily.yaml": DAILY}, Checks(expression=lambda text: None))
    clock = Clock(NOW)
    transactions = loops.postgres_transactions(pool, "orchestrator", ports_on)

    def engine() -> Engine:  # a new one per "process": nothing in memory
        return Engine(lambda: workflows, IdleRunner(), source="urn:test", clock=clock)

    async with pool.acquire() as conn:
        for user_id, department in (("sched-a", "Sales"), ("sched-b", "Eng"), ("sched-c", "Sales")):
            profile = Profile(user_name=user_id, department=department)
            await PostgresRegistry(conn).save_profile(
                ProfileChange(user_id, user_id, profile.model_dump(mode="json"), "active", 1, "t")
            )
    assert await loops.run_schedules(engine(), transactions) == 0  # first seen at 09:00
    clock.now = datetime(2026, 1, 6, 6, 0, 30, tzinfo=UTC)
    assert await loops.run_schedules(engine(), transactions, page=2) == 2
    assert await loops.run_schedules(engine(), transactions, page=2) == 1
    assert await loops.run_schedules(engine(), transactions, page=2) == 0

    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT identity_id, trigger->>'slot' AS slot FROM workflow_runs"
            " WHERE workflow_id = 'daily-sales' ORDER BY identity_id"
        )
        state = await conn.fetchrow(
            "SELECT last_run_at, running_slot FROM workflow_schedules"
            " WHERE workflow_id = 'daily-sales'"
        )
    slot = datetime(2026, 1, 6, 6, 0, tzinfo=UTC)
    assert [(r["identity_id"], r["slot"]) for r in rows] == [
        ("sched-a", slot.isoformat()),
        ("sched-c", slot.isoformat()),
    ]
    assert (state["last_run_at"], state["running_slot"]) == (slot, None)
