"""Workflow runs, wake-ups, timers and versions in memory: the same behaviour as the
PostgreSQL adapters (`adapters/workflow_runs.py`, `adapters/workflow_versions.py`; the
contract tests run the same cases on both), for the engine's unit tests.

What the fakes cannot show is concurrency: they hold no locks and have no transactions, so
a claim is final at once (the database's claim is undone by a rollback) and a race between
two starts is one start after the other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from accord.orchestrator.workflows.definitions import Workflow
from accord.orchestrator.workflows.loader import canonical_json, kept_definition
from accord.orchestrator.workflows.ports import Conflict, IdentityBusy, RunPage
from accord.orchestrator.workflows.run_model import Run, RunStatus, Wakeup
from accord.orchestrator.workflows.timers import (
    DONE,
    Timer,
    TimerState,
    TimeTrigger,
    stale_timers,
)


@dataclass
class _Row:
    run: Run
    seq: int


@dataclass
class FakeRuns:
    """`RunStore` in memory."""

    rows: dict[str, _Row] = field(default_factory=dict)
    _seq: int = 0

    async def start(self, run: Run) -> Run:
        if run.run_id in self.rows:
            return self.rows[run.run_id].run
        mine = [row.run for row in self.rows.values() if row.run.identity_id == run.identity_id]
        waits = any(r.status.active or r.status is RunStatus.QUEUED for r in mine)
        stored = replace(run, status=RunStatus.QUEUED if waits else RunStatus.RUNNING, revision=0)
        self._seq += 1
        self.rows[run.run_id] = _Row(stored, self._seq)
        return stored

    async def get(self, run_id: str) -> Run | None:
        row = self.rows.get(run_id)
        return row.run if row else None

    async def save(self, run: Run, expected_revision: int) -> Run:
        row = self.rows.get(run.run_id)
        if row is None or row.run.revision != expected_revision:
            raise Conflict(f"run {run.run_id} is not at revision {expected_revision}")
        if run.status.active:
            other = await self.active_for(row.run.identity_id)
            if other is not None and other.run_id != run.run_id:
                raise IdentityBusy(
                    f"identity {row.run.identity_id} has another active run than {run.run_id}"
                )
        # What the table keeps: the identity and the run's origin do not change.
        stored = replace(
            row.run,
            status=run.status,
            updated_at=run.updated_at,
            vars=run.vars,
            tasks=run.tasks,
            cancel_reason=run.cancel_reason,
            trigger=run.trigger,
            revision=expected_revision + 1,
        )
        row.run = stored
        return replace(run, revision=expected_revision + 1)

    async def active_for(self, identity_id: str) -> Run | None:
        active = [
            row.run
            for row in self.rows.values()
            if row.run.identity_id == identity_id and row.run.status.active
        ]
        return active[0] if active else None

    async def next_queued(self, identity_id: str) -> Run | None:
        if await self.active_for(identity_id) is not None:
            return None
        queued = [
            row
            for row in self.rows.values()
            if row.run.identity_id == identity_id and row.run.status is RunStatus.QUEUED
        ]
        return min(queued, key=lambda row: row.seq).run if queued else None

    async def runs(
        self,
        *,
        identity_id: str | None = None,
        workflow_id: str | None = None,
        status: RunStatus | None = None,
        after: str | None = None,
        limit: int = 50,
    ) -> RunPage:
        if after is not None and not after.isdigit():
            raise ValueError(f"not a run listing cursor: {after!r}")
        below = int(after) if after is not None else None
        rows = sorted(
            (
                row
                for row in self.rows.values()
                if (identity_id is None or row.run.identity_id == identity_id)
                and (workflow_id is None or row.run.workflow_id == workflow_id)
                and (status is None or row.run.status == status)
                and (below is None or row.seq < below)
            ),
            key=lambda row: -row.seq,
        )
        page = rows[:limit]
        following = str(page[-1].seq) if len(rows) > limit else None
        return RunPage(tuple(row.run for row in page), following)


@dataclass
class FakeWakeups:
    """`WakeupStore` in memory."""

    due: dict[tuple[str, str, str], Wakeup] = field(default_factory=dict)

    async def schedule(self, wakeups: Iterable[Wakeup]) -> None:
        for wakeup in wakeups:
            self.due[(wakeup.run_id, wakeup.task_id, wakeup.purpose)] = wakeup

    async def cancel(self, run_id: str, task_id: str | None = None) -> None:
        for key in [
            key for key in self.due if key[0] == run_id and (task_id is None or key[1] == task_id)
        ]:
            del self.due[key]

    async def claim_due(self, now: datetime, limit: int) -> list[Wakeup]:
        ready = sorted(
            (w for w in self.due.values() if w.fire_at <= now),
            key=lambda w: (w.fire_at, w.run_id, w.task_id, w.purpose),
        )[:limit]
        for wakeup in ready:
            del self.due[(wakeup.run_id, wakeup.task_id, wakeup.purpose)]
        return ready


@dataclass
class FakeTimers:
    """`TimerStore` in memory."""

    timers: dict[str, Timer] = field(default_factory=dict)

    async def upsert(self, timers: Sequence[Timer]) -> None:
        for timer in timers:
            current = self.timers.get(timer.timer_id)
            if current is None or current.state not in DONE:
                self.timers[timer.timer_id] = timer

    async def cancel(self, timer_ids: Iterable[str]) -> None:
        for timer_id in timer_ids:
            current = self.timers.get(timer_id)
            if current is not None and current.state == "scheduled":
                self.timers[timer_id] = replace(current, state="cancelled")

    async def cancel_stale(self, workflows: Sequence[TimeTrigger]) -> int:
        stale = stale_timers(workflows, self.timers.values())
        await self.cancel(stale)
        return len(stale)

    async def for_identity(self, identity_id: str) -> list[Timer]:
        return sorted(
            (t for t in self.timers.values() if t.key.identity_id == identity_id),
            key=lambda t: (t.fire_at, t.timer_id),
        )

    async def claim_due(self, now: datetime, limit: int) -> list[Timer]:
        ready = sorted(
            (t for t in self.timers.values() if t.state == "scheduled" and t.fire_at <= now),
            key=lambda t: (t.fire_at, t.timer_id),
        )[:limit]
        for timer in ready:
            self.timers[timer.timer_id] = timer.fired()
        return [timer.fired() for timer in ready]

    async def mark(self, timer_id: str, state: TimerState) -> bool:
        current = self.timers.get(timer_id)
        if current is None:
            return False
        self.timers[timer_id] = replace(current, state=state)
        return True


@dataclass
class FakeVersions:
    """`VersionStore` in memory: the canonical JSON by (workflow id, version), with when it
    was first kept, as the table holds them."""

    kept: dict[tuple[str, str], tuple[str, datetime]] = field(default_factory=dict)

    async def record(self, workflow: Workflow, version: str, seen_at: datetime) -> None:
        self.kept.setdefault((workflow.id, version), (canonical_json(workflow), seen_at))

    async def definition(self, workflow_id: str, version: str) -> Workflow | None:
        kept = self.kept.get((workflow_id, version))
        return kept_definition(kept[0], version) if kept is not None else None
