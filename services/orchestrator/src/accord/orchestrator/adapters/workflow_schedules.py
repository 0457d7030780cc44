"""The cron schedules' states on the workflow_schedules table (migration 0017), bound to the
connection of the caller's transaction like the other adapters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from accord.orchestrator.workflows.schedules import ScheduleState


@dataclass(frozen=True)
class PostgresSchedules:
    """`ScheduleStore` on the workflow_schedules table."""

    conn: asyncpg.Connection

    async def claim(self, workflow_ids: Sequence[str], now: datetime) -> list[ScheduleState]:
        ids = sorted(set(workflow_ids))
        if not ids:
            return []
        # A row another orchestrator is inserting makes this insert wait for its commit;
        # the claim below then skips it if that transaction still holds it.
        await self.conn.execute(
            "INSERT INTO workflow_schedules (workflow_id, last_run_at)"
            " SELECT unnest($1::text[]), $2 ON CONFLICT (workflow_id) DO NOTHING",
            ids,
            now,
        )
        rows = await self.conn.fetch(
            "SELECT workflow_id, last_run_at, running_slot, cursor FROM workflow_schedules"
            " WHERE workflow_id = ANY($1::text[]) ORDER BY workflow_id FOR UPDATE SKIP LOCKED",
            ids,
        )
        return [
            ScheduleState(r["workflow_id"], r["last_run_at"], r["running_slot"], r["cursor"])
            for r in rows
        ]

    async def save(self, state: ScheduleState) -> None:
        await self.conn.execute(
            "UPDATE workflow_schedules SET last_run_at = $2, running_slot = $3, cursor = $4,"
            " updated_at = now() WHERE workflow_id = $1",
            state.workflow_id,
            state.last_run_at,
            state.running_slot,
            state.cursor,
        )
