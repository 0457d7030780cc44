"""Authz's clock: overdue approval stages escalate or expire, time-bound grants end.

Both live in PostgreSQL (deadlines on the rows), so a restart loses none; rows are locked
with SKIP LOCKED, so several authz instances share the work without doing it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from accord.authz.adapters.postgres import postgres_stores
from accord.authz.domain.approvals import ApprovalSettings
from accord.authz.handlers import timers as clock
from accord.runtime import outbox
from accord.runtime.service import Runtime

log = logging.getLogger(__name__)
BATCH = 100


async def fire_due(
    pool: asyncpg.Pool, *, schema: str, source: str, settings: ApprovalSettings
) -> int:
    """Handle what is due now, one batch; how many rows were handled."""
    async with pool.acquire() as conn, conn.transaction():
        fired = await clock.fire_due(
            postgres_stores(conn), settings=settings, source=source, limit=BATCH
        )
        await outbox.enqueue(conn, schema, fired.events)
    return fired.handled


async def run(runtime: Runtime, settings: ApprovalSettings, poll_s: float) -> None:
    """Fire due deadlines until the service stops."""
    while not runtime.stopping.is_set():
        try:
            handled = await fire_due(
                runtime.pool, schema=runtime.schema, source=runtime.source, settings=settings
            )
        except (OSError, asyncpg.PostgresError) as error:
            log.warning("authz timers unavailable: %s", type(error).__name__)
            handled = 0
        if handled >= BATCH:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.stopping.wait(), timeout=poll_s)
