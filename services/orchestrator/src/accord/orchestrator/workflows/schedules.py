"""Cron-scheduled workflows: where each schedule stands, durably, and which time is due.

A schedule (`trigger: {schedule: "0 6 * * 1"}`) runs its workflow for every identity in its
scope at each of its times. `matching.schedule_due` decides which workflows are due; this
module keeps, per workflow, the last time it ran for (`ScheduleState.last_run_at`) where every
orchestrator sees it and a restart finds it (`ScheduleStore`, table workflow_schedules,
migration 0017), and names the time a due run is for (`due_slot`).

Why a slot and not "now": the runs a schedule time starts are identified by (workflow,
version, slot, identity), so the same time run twice (a crash between pages, two
orchestrators) starts nothing twice; and recording the slot as the last run (not the moment
the loop noticed it) makes the next time the schedule's own next time. Times missed while
no orchestrator ran are caught up once, as the latest of them: a daily report run ten times
after a ten-day outage helps no one.

A schedule time is run over the registry a page of identities per transaction (a big
registry is not one huge transaction): `running_slot` and `cursor` say how far it went.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from croniter import croniter

from accord.orchestrator.workflows.definitions import ScheduleTrigger
from accord.orchestrator.workflows.loader import LoadedWorkflow, WorkflowSet

__all__ = [
    "FakeSchedules",
    "ScheduleState",
    "ScheduleStore",
    "due_slot",
    "scheduled",
]


@dataclass(frozen=True)
class ScheduleState:
    """Where one workflow's schedule stands.

    `last_run_at` is the last schedule time run to its end (or when the workflow was first
    seen); `running_slot` the time being run now, `cursor` the last identity it is done
    for (None: none yet)."""

    workflow_id: str
    last_run_at: datetime
    running_slot: datetime | None = None
    cursor: str | None = None

    def begin(self, slot: datetime) -> ScheduleState:
        """Start running a schedule time over the identities."""
        return replace(self, running_slot=slot, cursor=None)

    def advanced(self, cursor: str) -> ScheduleState:
        """A page of identities done, up to `cursor`."""
        return replace(self, cursor=cursor)

    def finished(self) -> ScheduleState:
        """The running time done for every identity: it is the last run now."""
        assert self.running_slot is not None
        return ScheduleState(self.workflow_id, self.running_slot)


class ScheduleStore(Protocol):
    """The schedules' states (adapters.workflow_schedules; `FakeSchedules` in memory)."""

    async def claim(self, workflow_ids: Sequence[str], now: datetime) -> list[ScheduleState]:
        """The states of these workflows, locked for the rest of the transaction, skipping
        those another transaction holds; a workflow with no state yet gets one with
        `last_run_at` = `now` first (its schedule counts from now)."""
        ...

    async def save(self, state: ScheduleState) -> None:
        """Write a claimed state back."""
        ...


def scheduled(workflows: WorkflowSet) -> list[LoadedWorkflow]:
    """The enabled workflows with a schedule trigger."""
    return [
        loaded
        for loaded in workflows.enabled()
        if isinstance(loaded.definition.trigger, ScheduleTrigger)
    ]


def due_slot(loaded: LoadedWorkflow, last_run_at: datetime, now: datetime) -> datetime | None:
    """The schedule time to run now: the latest of the workflow's times after `last_run_at`
    and at or before `now` (in the workflow's zone); None when none is.

    Agrees with `matching.schedule_due`: a workflow is due exactly when this is not None.
    """
    trigger = loaded.definition.trigger
    if not isinstance(trigger, ScheduleTrigger):
        return None
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    zone = ZoneInfo(loaded.definition.time_zone)
    first: datetime = croniter(trigger.schedule, last_run_at.astimezone(zone)).get_next(datetime)
    if first > now:
        return None
    latest: datetime = croniter(trigger.schedule, now.astimezone(zone)).get_prev(datetime)
    following: datetime = croniter(trigger.schedule, latest).get_next(datetime)
    if following <= now:  # `now` is one of the times itself
        latest = following
    return max(first, latest)


@dataclass
class FakeSchedules:
    """`ScheduleStore` in memory (no locks: a claim takes every state)."""

    states: dict[str, ScheduleState] = field(default_factory=dict)
    held: set[str] = field(default_factory=set)
    """Workflow ids another transaction holds (a test stands in for it): skipped."""

    async def claim(self, workflow_ids: Sequence[str], now: datetime) -> list[ScheduleState]:
        claimed = []
        for workflow_id in dict.fromkeys(workflow_ids):
            if workflow_id in self.held:
                continue
            state = self.states.setdefault(workflow_id, ScheduleState(workflow_id, now))
            claimed.append(state)
        return sorted(claimed, key=lambda state: state.workflow_id)

    async def save(self, state: ScheduleState) -> None:
        self.states[state.workflow_id] = state

    def last_runs(self) -> Mapping[str, datetime]:
        return {key: state.last_run_at for key, state in self.states.items()}
