"""Cron schedules and timers planned over the registry (workflows/schedules.py, the schedule
and timer-planning loops in workflows/loops.py, Engine.start_scheduled / replan_timers) on
the in-memory fakes: a schedule time runs once per identity in scope, page by page, not
again after a restart nor by a second orchestrator; a new time-triggered workflow (or
version) plans the timers of the identities that exist already."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from accord.events import Envelope, Profile
from accord.orchestrator.domain.birthright import everyone
from accord.orchestrator.domain.workflow import WorkflowSettings
from accord.orchestrator.fakes import FakeWorld
from accord.orchestrator.ports import ProfileChange
from accord.orchestrator.workflows import loops, runs
from accord.orchestrator.workflows.engine import Engine
from accord.orchestrator.workflows.fakes import FakeRuns, FakeTimers
from accord.orchestrator.workflows.run_model import Run
from accord.orchestrator.workflows.schedules import FakeSchedules, due_slot, scheduled

from .engine_kit import FakeUnit, fake_stores, workflow_set

SOURCE = "urn:test:orchestrator"

DAILY_SALES = """
id: sales-daily
category: custom
description: Every day at 06:00, Sales identities are asked to enrol MFA.
trigger: {schedule: "0 6 * * *"}
scope: identity.department == "Sales"
tasks:
  - id: mfa
    task: require_mfa_enrolment
"""

CONTRACT_END = """
id: contract-end
category: leaver
description: A contractor's accounts are disabled at the leave date.
trigger: {at: leave_date, offset: %s}
scope: identity.employee_type == "contractor"
tasks:
  - id: disable_accounts
    task: disable_accounts
"""


@dataclass
class Runner:
    """Every task's commands go out at once (the task completes)."""

    performed: list[runs.Effect] = field(default_factory=list)

    def envelopes(
        self,
        command: runs.Effect,
        run: Run,
        identity: Mapping[str, Any],
        cause: Envelope | None,
    ) -> list[Envelope] | None:
        return []

    async def perform(
        self, command: runs.Effect, run: Run, identity: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        self.performed.append(command)
        return {}


class Orchestrator:
    """One orchestrator process on shared (fake) tables: `restart` gives a new engine, with
    nothing in memory, on the same tables."""

    def __init__(self, *texts: str) -> None:
        self.world = FakeWorld(WorkflowSettings(birthright=everyone(["crm"])))
        self.workflows = workflow_set(*texts)
        self.schedules = FakeSchedules()
        self.stores = fake_stores(self.world, self.schedules)
        self.emitted: list[Envelope] = []
        self.restart()

    def restart(self) -> None:
        self.engine = Engine(
            lambda: self.workflows, Runner(), source=SOURCE, clock=self.world.clock
        )
        self.replanning = loops.TimerReplanning(self.engine, self.transaction, page=2)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[FakeUnit]:
        yield FakeUnit(self.stores, self.emitted)

    @property
    def now(self) -> datetime:
        return self.world.clock.now

    async def identity(self, user_id: str, status: str = "active", **profile: Any) -> None:
        data = Profile(user_name=user_id, active=status == "active", **profile)
        change = ProfileChange(
            user_id, user_id, data.model_dump(mode="json"), status, 1, "urn:test:hr"
        )
        await self.world.registry.save_profile(change)

    def runs(self) -> list[Run]:
        assert isinstance(self.stores.runs, FakeRuns)
        return [row.run for row in sorted(self.stores.runs.rows.values(), key=lambda r: r.seq)]

    def timers(self) -> dict[tuple[str, str], str]:
        """(identity, version) -> state, of every timer."""
        assert isinstance(self.stores.timers, FakeTimers)
        return {
            (timer.key.identity_id, timer.key.version): timer.state
            for timer in self.stores.timers.timers.values()
        }

    async def poll_schedules(self, page: int = loops.BATCH) -> int:
        """Polls until the schedule loop has nothing more (as `_poll` does with full pages);
        how many identities were handled."""
        total = 0
        while (handled := await loops.run_schedules(self.engine, self.transaction, page)) > 0:
            total += handled
        return total


async def sales_and_others(o: Orchestrator) -> None:
    await o.identity("s1", department="Sales")
    await o.identity("e1", department="Engineering")
    await o.identity("s2", department="Sales")
    await o.identity("s3", "deleted", department="Sales")  # left: no runs


def at_six(o: Orchestrator, days: int = 1) -> datetime:
    """06:00 UTC `days` after the clock's day, plus a minute."""
    day = o.now.replace(hour=6, minute=1, second=0, microsecond=0)
    return day + timedelta(days=days)


# --- schedules ----------------------------------------------------------------------------------


async def test_a_schedule_counts_from_when_it_is_first_seen() -> None:
    o = Orchestrator(DAILY_SALES)
    await sales_and_others(o)
    first_seen = o.now  # 09:00: today's 06:00 is before it and does not run

    assert await o.poll_schedules() == 0
    assert o.runs() == []
    assert o.schedules.last_runs() == {"sales-daily": first_seen}


async def test_a_schedule_time_runs_once_for_each_identity_in_scope() -> None:
    o = Orchestrator(DAILY_SALES)
    await sales_and_others(o)
    await o.poll_schedules()
    o.world.clock.now = at_six(o)

    assert await o.poll_schedules(page=2) == 3  # s1, s2, e1 living: two pages of two

    started = o.runs()
    assert sorted(run.identity_id for run in started) == ["s1", "s2"]  # e1 out of scope
    slot = datetime.combine(o.now.date(), datetime.min.time(), UTC).replace(hour=6)
    assert {run.trigger["kind"] for run in started} == {"schedule"}
    assert {run.trigger["slot"] for run in started} == {slot.isoformat()}
    assert o.schedules.states["sales-daily"].last_run_at == slot
    assert o.schedules.states["sales-daily"].running_slot is None
    assert "workflow.run_started" in {e.type for e in o.emitted}

    # Again in the same minute, then after a restart: the time ran already.
    assert await o.poll_schedules() == 0
    o.restart()
    o.world.clock.advance(timedelta(minutes=30))
    assert await o.poll_schedules() == 0
    assert len(o.runs()) == 2

    # The next day's time runs again, new runs.
    o.world.clock.now = at_six(o)
    await o.poll_schedules()
    assert len(o.runs()) == 4
    assert len({run.run_id for run in o.runs()}) == 4


async def test_a_restart_part_way_through_a_time_goes_on_and_starts_nothing_twice() -> None:
    o = Orchestrator(DAILY_SALES)
    await sales_and_others(o)
    await o.poll_schedules()
    o.world.clock.now = at_six(o)

    # One page of one identity (e1: out of scope), then the process dies.
    assert await loops.run_schedules(o.engine, o.transaction, page=1) == 1
    state = o.schedules.states["sales-daily"]
    assert (state.running_slot is not None, state.cursor) == (True, "e1")
    o.restart()
    o.world.clock.advance(timedelta(hours=1))
    await o.poll_schedules(page=1)

    assert sorted(run.identity_id for run in o.runs()) == ["s1", "s2"]
    # The same time run over again (a page done twice) starts nothing new: same run ids.
    assert o.schedules.states["sales-daily"].running_slot is None
    slot = o.schedules.states["sales-daily"].last_run_at
    before = len(o.emitted)
    assert await o.engine.start_scheduled(o.stores, "sales-daily", slot, ["s1", "s2"]) == []
    assert len(o.runs()) == 2
    assert len(o.emitted) == before


async def test_a_schedule_another_orchestrator_holds_is_left_to_it() -> None:
    o = Orchestrator(DAILY_SALES)
    await sales_and_others(o)
    await o.poll_schedules()
    o.world.clock.now = at_six(o)
    o.schedules.held.add("sales-daily")

    assert await o.poll_schedules() == 0
    assert o.runs() == []
    o.schedules.held.clear()
    assert await o.poll_schedules() == 3
    assert len(o.runs()) == 2


async def test_a_disabled_schedule_does_not_run() -> None:
    o = Orchestrator(DAILY_SALES)
    await sales_and_others(o)
    await o.poll_schedules()
    o.workflows = workflow_set(DAILY_SALES.replace("tasks:", "enabled: false\ntasks:"))
    o.world.clock.now = at_six(o)

    assert await o.poll_schedules() == 0
    assert o.runs() == []


def test_the_due_slot_is_the_latest_time_missed_and_a_time_equal_to_now() -> None:
    (loaded,) = scheduled(workflow_set(DAILY_SALES))
    last = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
    assert due_slot(loaded, last, last + timedelta(hours=23)) is None
    exactly = datetime(2026, 1, 6, 6, 0, tzinfo=UTC)
    assert due_slot(loaded, last, exactly) == exactly
    # Ten days down: caught up once, as the latest time.
    late = datetime(2026, 1, 15, 7, 0, tzinfo=UTC)
    assert due_slot(loaded, last, late) == datetime(2026, 1, 15, 6, 0, tzinfo=UTC)
    assert due_slot(loaded, last, datetime(2026, 1, 15, 6, 0, tzinfo=UTC)) == datetime(
        2026, 1, 15, 6, 0, tzinfo=UTC
    )


# --- timers planned again when the set changes ---------------------------------------------------


async def test_a_new_time_triggered_workflow_plans_the_existing_identities_timers() -> None:
    o = Orchestrator()  # no workflow yet
    await o.identity("c1", employee_type="contractor", leave_date="2026-03-01")
    await o.identity("c2", employee_type="contractor", leave_date="2026-04-01")
    await o.identity("c3", employee_type="contractor")  # no date: no timer
    await o.identity("e1", employee_type="employee", department="Sales")
    await o.identity("c4", "deleted", employee_type="contractor", leave_date="2026-03-01")
    assert await o.replanning.once() == 0  # at start: no time trigger, nothing to plan
    assert o.timers() == {}

    o.workflows = workflow_set(CONTRACT_END % "PT0S")
    pages = await o.replanning.once()

    assert pages == 3  # c1 c2 | c3 e1 | (end)
    (version,) = {v for _, v in o.timers()}
    assert o.timers() == {("c1", version): "scheduled", ("c2", version): "scheduled"}
    # Nothing changed: nothing done; after a restart: done again, nothing planned twice.
    assert await o.replanning.once() == 0
    o.restart()
    await o.replanning.once()
    assert o.timers() == {("c1", version): "scheduled", ("c2", version): "scheduled"}
    assert o.runs() == []


async def test_a_new_version_moves_the_timers_to_it() -> None:
    o = Orchestrator(CONTRACT_END % "PT0S")
    await o.identity("c1", employee_type="contractor", leave_date="2026-03-01")
    await o.replanning.once()
    (old,) = {v for _, v in o.timers()}

    o.workflows = workflow_set(CONTRACT_END % "PT8H")
    await o.replanning.once()

    (new,) = {v for _, v in o.timers()} - {old}
    assert o.timers() == {("c1", old): "cancelled", ("c1", new): "scheduled"}
    assert isinstance(o.stores.timers, FakeTimers)
    (timer,) = [t for t in o.stores.timers.timers.values() if t.state == "scheduled"]
    assert timer.fire_at == datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


async def test_a_date_within_catch_up_fires_when_its_workflow_arrives() -> None:
    o = Orchestrator()
    today = o.now.date().isoformat()  # midnight today: nine hours ago
    await o.identity("c1", employee_type="contractor", leave_date=today)
    await o.replanning.once()
    o.workflows = workflow_set(CONTRACT_END % "PT0S")

    await o.replanning.once()

    (run,) = o.runs()
    assert (run.workflow_id, run.identity_id) == ("contract-end", "c1")
    assert run.trigger["kind"] == "timer"
    assert set(o.timers().values()) == {"fired"}
    o.restart()
    await o.replanning.once()
    assert len(o.runs()) == 1  # fired once


async def test_replanning_ignores_identities_without_the_date() -> None:
    o = Orchestrator(CONTRACT_END % "PT0S")
    await o.identity("e1", employee_type="employee")
    timers = o.stores.timers
    assert isinstance(timers, FakeTimers)
    asked: list[str] = []
    original = timers.for_identity

    async def for_identity(identity_id: str) -> list[Any]:
        asked.append(identity_id)
        return await original(identity_id)

    timers.for_identity = for_identity  # type: ignore[method-assign]
    await o.replanning.once()
    assert asked == []


PRE_HIRE = """
id: pre-hire
category: joiner
description: A week before the start date, the manager is asked to prepare.
trigger: {at: attributes.start, offset: -P7D}
tasks:
  - id: mfa
    task: require_mfa_enrolment
"""


async def test_timers_a_changed_set_no_longer_plans_are_cancelled_when_it_changes() -> None:
    o = Orchestrator(CONTRACT_END % "PT0S", PRE_HIRE)
    await o.identity("c1", employee_type="contractor", leave_date="2026-03-01")
    await o.identity("n1", attributes={"start": "2026-03-09"})  # a custom date attribute
    await o.replanning.once()
    assert isinstance(o.stores.timers, FakeTimers)
    timers = o.stores.timers.timers

    def states() -> dict[str, str]:
        return {t.key.workflow_id: t.state for t in timers.values()}

    assert states() == {"contract-end": "scheduled", "pre-hire": "scheduled"}
    (pre_hire,) = [t for t in timers.values() if t.key.workflow_id == "pre-hire"]
    assert pre_hire.fire_at == datetime(2026, 3, 2, tzinfo=UTC)

    # Removed: cancelled at once, though n1 has no date the remaining trigger names.
    o.workflows = workflow_set(CONTRACT_END % "PT0S")
    await o.replanning.once()
    assert states() == {"contract-end": "scheduled", "pre-hire": "cancelled"}

    # Disabled (loaded, plans nothing); the other back: planned again under the same key.
    o.workflows = workflow_set((CONTRACT_END % "PT0S") + "enabled: false\n", PRE_HIRE)
    await o.replanning.once()
    assert states() == {"contract-end": "cancelled", "pre-hire": "scheduled"}

    # No time trigger left: nothing to page through, all cancelled in one statement.
    o.workflows = workflow_set()
    assert await o.replanning.once() == 0
    assert states() == {"contract-end": "cancelled", "pre-hire": "cancelled"}
    o.world.clock.advance(timedelta(days=60))
    assert await loops.fire_due(o.engine, o.transaction) == 0
