"""Fires due timers: a leaver's own retries, account deletion after the retention period.

Timers live in PostgreSQL, so they survive restarts; each is deleted in the transaction
that carries it out (with the events it causes, through the outbox), so it fires once.
Several replicas share the work: a replica skips the timers another one holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

import asyncpg

from accord.orchestrator.adapters import store
from accord.orchestrator.adapters.postgres import postgres_ports
from accord.orchestrator.domain.workflow import WorkflowSettings
from accord.orchestrator.handlers import on_timer
from accord.runtime import outbox
from accord.runtime.service import Runtime

log = logging.getLogger(__name__)

BATCH = 100
#: A timer whose work raised is tried again this much later (the error is logged).
REARM_AFTER = timedelta(seconds=60)


async def fire_due(
    pool: asyncpg.Pool, workflows: WorkflowSettings, *, schema: str, source: str, limit: int = BATCH
) -> int:
    """Carry out the timers that are due now; returns how many fired."""
    async with pool.acquire() as conn:
        if not await store.any_timer_due(conn):
            return 0
        async with conn.transaction():
            timers = await store.take_due_timers(conn, limit)
            ports = postgres_ports(conn, source, workflows)
            for timer in timers:
                try:
                    async with conn.transaction():  # a savepoint: one bad timer spoils no other
                        events = await on_timer(timer, ports)
                        await outbox.enqueue(conn, schema, events)
                except asyncpg.PostgresConnectionError:
                    raise
                except Exception:
                    log.exception(
                        "timer failed; trying again later", extra={"timer": timer.timer_id}
                    )
                    await store.add_timer(conn, timer, store.now_utc() + REARM_AFTER)
    return len(timers)


async def run(runtime: Runtime, workflows: WorkflowSettings, poll_s: float) -> None:
    """Fire due timers until the service stops."""
    while not runtime.stopping.is_set():
        try:
            fired = await fire_due(
                runtime.pool, workflows, schema=runtime.schema, source=runtime.source
            )
        except (OSError, asyncpg.PostgresError) as error:
            log.warning("timers unavailable: %s", type(error).__name__)
            fired = 0
        if fired == BATCH:
            continue  # more are due
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.stopping.wait(), timeout=poll_s)
