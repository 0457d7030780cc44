"""Workflow runs, wake-ups and timers in the orchestrator's tables (migration 0014), bound to
the connection of the caller's transaction like the other adapters.

One statement per operation: a run is one row (its tasks a jsonb array), so reading it is
one SELECT and saving it one UPDATE guarded by its revision; claiming due wake-ups or
timers is one DELETE/UPDATE over a `FOR UPDATE SKIP LOCKED` selection.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import asyncpg

from accord.orchestrator.workflows.ports import Conflict, IdentityBusy, RunPage
from accord.orchestrator.workflows.run_model import (
    Run,
    RunStatus,
    TaskRun,
    TaskStatus,
    Wakeup,
)
from accord.orchestrator.workflows.timers import Timer, TimerKey, TimerState, TimeTrigger
from accord.runtime.sql import Conditions

_RUN_COLUMNS = (
    "run_id, workflow_id, version, identity_id, category, trigger, status, created_at,"
    " updated_at, vars, tasks, revision, cancel_reason"
)
_ACTIVE = "('running', 'waiting')"


def encode_tasks(tasks: Sequence[TaskRun]) -> str:
    """A run's tasks as the jsonb array the row keeps."""
    return json.dumps(
        [
            {
                "task_id": t.task_id,
                "position": t.position,
                "kind": t.kind,
                "status": t.status.value,
                "attempts": t.attempts,
                "started_at": t.started_at.isoformat() if t.started_at else None,
                "finished_at": t.finished_at.isoformat() if t.finished_at else None,
                "waiting_for": dict(t.waiting_for) if t.waiting_for is not None else None,
                "outputs": dict(t.outputs),
                "error": t.error,
            }
            for t in tasks
        ]
    )


def decode_tasks(text: str) -> tuple[TaskRun, ...]:
    """The jsonb array back as the model's tasks."""
    return tuple(
        TaskRun(
            task_id=t["task_id"],
            position=t["position"],
            kind=t["kind"],
            status=TaskStatus(t["status"]),
            attempts=t["attempts"],
            started_at=_instant(t["started_at"]),
            finished_at=_instant(t["finished_at"]),
            waiting_for=t["waiting_for"],
            outputs=t["outputs"],
            error=t["error"],
        )
        for t in json.loads(text)
    )


def _instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None


def _run(row: Mapping[str, Any]) -> Run:
    return Run(
        run_id=row["run_id"],
        workflow_id=row["workflow_id"],
        version=row["version"],
        identity_id=row["identity_id"],
        category=row["category"],
        trigger=json.loads(row["trigger"]),
        status=RunStatus(row["status"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        vars=json.loads(row["vars"]),
        tasks=decode_tasks(row["tasks"]),
        revision=row["revision"],
        cancel_reason=row["cancel_reason"],
    )


def _row_values(run: Run, status: RunStatus) -> tuple[Any, ...]:
    """The insert's $1..$12 (revision 0)."""
    return (
        run.run_id,
        run.workflow_id,
        run.version,
        run.identity_id,
        run.category,
        json.dumps(dict(run.trigger)),
        status.value,
        run.created_at,
        run.updated_at,
        json.dumps(dict(run.vars)),
        encode_tasks(run.tasks),
        run.cancel_reason,
    )


_INSERT = (
    "INSERT INTO workflow_runs (run_id, workflow_id, version, identity_id, category, trigger,"
    " status, created_at, updated_at, vars, tasks, cancel_reason)"
    " SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12"
)


@dataclass(frozen=True)
class PostgresRuns:
    """`RunStore` on the workflow_runs table."""

    conn: asyncpg.Connection

    async def start(self, run: Run) -> Run:
        # Running unless the identity has an active run (the partial unique index decides a
        # concurrent start: the second waits for the first's commit, then conflicts) or a
        # queued one (first come, first served).
        row = await self.conn.fetchrow(
            _INSERT + " WHERE NOT EXISTS (SELECT 1 FROM workflow_runs"  # noqa: S608 - constants
            " WHERE identity_id = $4 AND status = 'queued')"
            f" ON CONFLICT DO NOTHING RETURNING {_RUN_COLUMNS}",
            *_row_values(run, RunStatus.RUNNING),
        )
        if row is None:
            row = await self.conn.fetchrow(
                _INSERT + f" ON CONFLICT (run_id) DO NOTHING RETURNING {_RUN_COLUMNS}",
                *_row_values(run, RunStatus.QUEUED),
            )
        if row is None:  # a replayed start
            stored = await self.get(run.run_id)
            assert stored is not None
            return stored
        return _run(row)

    async def get(self, run_id: str) -> Run | None:
        row = await self.conn.fetchrow(
            f"SELECT {_RUN_COLUMNS} FROM workflow_runs WHERE run_id = $1",  # noqa: S608
            run_id,
        )
        return _run(row) if row else None

    async def save(self, run: Run, expected_revision: int) -> Run:
        # A run that becomes active while another of its identity is stays as it was (the
        # caller's transaction goes on); a race between two such saves is the unique
        # index's to decide (the loser's transaction is aborted).
        try:
            result = await self.conn.execute(
                "UPDATE workflow_runs SET status = $3, updated_at = $4, vars = $5, tasks = $6,"  # noqa: S608
                " cancel_reason = $7, trigger = $8, revision = revision + 1"
                " WHERE run_id = $1 AND revision = $2"
                f" AND NOT ($3 IN {_ACTIVE} AND EXISTS (SELECT 1 FROM workflow_runs other"
                "   WHERE other.identity_id = workflow_runs.identity_id"
                f"   AND other.status IN {_ACTIVE} AND other.run_id <> $1))",
                run.run_id,
                expected_revision,
                run.status.value,
                run.updated_at,
                json.dumps(dict(run.vars)),
                encode_tasks(run.tasks),
                run.cancel_reason,
                json.dumps(dict(run.trigger)),
            )
        except asyncpg.UniqueViolationError:
            raise IdentityBusy(
                f"identity {run.identity_id} has another active run than {run.run_id}"
            ) from None
        if result != "UPDATE 1":
            stored = await self.conn.fetchval(
                "SELECT revision FROM workflow_runs WHERE run_id = $1", run.run_id
            )
            if stored == expected_revision:
                raise IdentityBusy(
                    f"identity {run.identity_id} has another active run than {run.run_id}"
                )
            raise Conflict(f"run {run.run_id} is not at revision {expected_revision}")
        return replace(run, revision=expected_revision + 1)

    async def active_for(self, identity_id: str) -> Run | None:
        row = await self.conn.fetchrow(
            f"SELECT {_RUN_COLUMNS} FROM workflow_runs"  # noqa: S608
            f" WHERE identity_id = $1 AND status IN {_ACTIVE}",
            identity_id,
        )
        return _run(row) if row else None

    async def next_queued(self, identity_id: str) -> Run | None:
        row = await self.conn.fetchrow(
            f"SELECT {_RUN_COLUMNS} FROM workflow_runs"  # noqa: S608
            " WHERE identity_id = $1 AND status = 'queued' AND NOT EXISTS"
            " (SELECT 1 FROM workflow_runs"
            f"  WHERE identity_id = $1 AND status IN {_ACTIVE})"
            " ORDER BY seq LIMIT 1",
            identity_id,
        )
        return _run(row) if row else None

    async def runs(
        self,
        *,
        identity_id: str | None = None,
        workflow_id: str | None = None,
        status: RunStatus | None = None,
        after: str | None = None,
        limit: int = 50,
    ) -> RunPage:
        conditions = Conditions()
        conditions.add("identity_id = {0}", identity_id)
        conditions.add("workflow_id = {0}", workflow_id)
        conditions.add("status = {0}", status.value if status is not None else None)
        conditions.add("seq < {0}", decode_cursor(after))
        rows = await self.conn.fetch(
            f"SELECT seq, {_RUN_COLUMNS} FROM workflow_runs"  # noqa: S608 - constant columns
            f" WHERE {conditions.where} ORDER BY seq DESC"
            f" LIMIT {conditions.placeholder(limit + 1)}",
            *conditions.args,
        )
        page = rows[:limit]
        following = str(page[-1]["seq"]) if len(rows) > limit else None
        return RunPage(tuple(_run(row) for row in page), following)


def decode_cursor(cursor: str | None) -> int | None:
    """A page cursor's position; ValueError for a text no page gave."""
    if cursor is None:
        return None
    if not cursor.isdigit():
        raise ValueError(f"not a run listing cursor: {cursor!r}")
    return int(cursor)


@dataclass(frozen=True)
class PostgresWakeups:
    """`WakeupStore` on the workflow_wakeups table."""

    conn: asyncpg.Connection

    async def schedule(self, wakeups: Iterable[Wakeup]) -> None:
        latest = {(w.run_id, w.task_id, w.purpose): w for w in wakeups}  # one row per key
        if not latest:
            return
        await self.conn.execute(
            "INSERT INTO workflow_wakeups (run_id, task_id, purpose, fire_at)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])"
            " ON CONFLICT (run_id, task_id, purpose) DO UPDATE SET fire_at = EXCLUDED.fire_at",
            [w.run_id for w in latest.values()],
            [w.task_id for w in latest.values()],
            [w.purpose for w in latest.values()],
            [w.fire_at for w in latest.values()],
        )

    async def cancel(self, run_id: str, task_id: str | None = None) -> None:
        await self.conn.execute(
            "DELETE FROM workflow_wakeups WHERE run_id = $1 AND ($2::text IS NULL OR task_id = $2)",
            run_id,
            task_id,
        )

    async def claim_due(self, now: datetime, limit: int) -> list[Wakeup]:
        rows = await self.conn.fetch(
            "DELETE FROM workflow_wakeups WHERE (run_id, task_id, purpose) IN"
            " (SELECT run_id, task_id, purpose FROM workflow_wakeups WHERE fire_at <= $1"
            "  ORDER BY fire_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
            " RETURNING run_id, task_id, purpose, fire_at",
            now,
            limit,
        )
        claimed = [Wakeup(r["run_id"], r["task_id"], r["purpose"], r["fire_at"]) for r in rows]
        return sorted(claimed, key=lambda w: (w.fire_at, w.run_id, w.task_id, w.purpose))


_TIMER_COLUMNS = (
    "timer_id, identity_id, workflow_id, version, attribute, date_value, fire_at, state"
)


def _timer(row: Mapping[str, Any]) -> Timer:
    key = TimerKey(
        row["identity_id"], row["workflow_id"], row["version"], row["attribute"], row["date_value"]
    )
    return Timer(key, row["fire_at"], row["state"])


@dataclass(frozen=True)
class PostgresTimers:
    """`TimerStore` on the workflow_timers table."""

    conn: asyncpg.Connection

    async def upsert(self, timers: Sequence[Timer]) -> None:
        latest = {t.timer_id: t for t in timers}
        if not latest:
            return
        columns = list(zip(*(_timer_values(t) for t in latest.values()), strict=True))
        await self.conn.execute(
            f"INSERT INTO workflow_timers ({_TIMER_COLUMNS})"  # noqa: S608 - constant columns
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
            " $6::text[], $7::timestamptz[], $8::text[])"
            " ON CONFLICT (timer_id) DO UPDATE SET fire_at = EXCLUDED.fire_at,"
            " state = EXCLUDED.state, updated_at = now()"
            " WHERE workflow_timers.state NOT IN ('fired', 'skipped')",
            *(list(column) for column in columns),
        )

    async def cancel(self, timer_ids: Iterable[str]) -> None:
        await self.conn.execute(
            "UPDATE workflow_timers SET state = 'cancelled', updated_at = now()"
            " WHERE timer_id = ANY($1::text[]) AND state = 'scheduled'",
            list(timer_ids),
        )

    async def cancel_stale(self, workflows: Sequence[TimeTrigger]) -> int:
        # timers.stale_timers in one statement: what the set still plans is the
        # (workflow, version, attribute) of its triggers; none planned cancels them all.
        planned = sorted({(t.workflow_id, t.version, t.attribute) for t in workflows})
        columns = [list(column) for column in zip(*planned, strict=True)] or [[], [], []]
        result = await self.conn.execute(
            "UPDATE workflow_timers SET state = 'cancelled', updated_at = now()"
            " WHERE state = 'scheduled' AND (workflow_id, version, attribute) NOT IN"
            " (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))",
            *columns,
        )
        return int(result.split()[-1])

    async def for_identity(self, identity_id: str) -> list[Timer]:
        rows = await self.conn.fetch(
            f"SELECT {_TIMER_COLUMNS} FROM workflow_timers"  # noqa: S608 - constant columns
            " WHERE identity_id = $1 ORDER BY fire_at, timer_id",
            identity_id,
        )
        return [_timer(r) for r in rows]

    async def claim_due(self, now: datetime, limit: int) -> list[Timer]:
        rows = await self.conn.fetch(
            "UPDATE workflow_timers SET state = 'fired', updated_at = now()"  # noqa: S608
            " WHERE timer_id IN (SELECT timer_id FROM workflow_timers"
            "  WHERE state = 'scheduled' AND fire_at <= $1"
            "  ORDER BY fire_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
            f" RETURNING {_TIMER_COLUMNS}",
            now,
            limit,
        )
        return sorted((_timer(r) for r in rows), key=lambda t: (t.fire_at, t.timer_id))

    async def mark(self, timer_id: str, state: TimerState) -> bool:
        result = await self.conn.execute(
            "UPDATE workflow_timers SET state = $2, updated_at = now() WHERE timer_id = $1",
            timer_id,
            state,
        )
        return bool(result == "UPDATE 1")


def _timer_values(timer: Timer) -> tuple[Any, ...]:
    key = timer.key
    return (
        timer.timer_id,
        key.identity_id,
        key.workflow_id,
        key.version,
        key.attribute,
        key.date_value,
        timer.fire_at,
        timer.state,
    )


def workflow_stores(
    conn: asyncpg.Connection,
) -> tuple[PostgresRuns, PostgresWakeups, PostgresTimers]:
    """The three stores inside the transaction open on `conn`."""
    return PostgresRuns(conn), PostgresWakeups(conn), PostgresTimers(conn)
