"""The workflow engine's background work: wake-ups, time triggers, I/O effects, the folder.

Each loop polls its table every `poll_s` (ACCORD_TIMER_POLL_S, shared with the sagas'
timers), handles what is due in one transaction per batch (the claim and what it causes, with
the events through the outbox, commit together; several orchestrators share the work, as the
claims skip what another transaction holds) and sleeps again. A database outage is logged
and retried at the next poll: nothing claimed is lost, since an uncommitted claim is undone.

- wake-ups (`WakeupStore.claim_due` -> `Engine.on_wakeup`): a wait, a timeout, a retry's
  backoff ended;
- time triggers (`TimerStore.claim_due` -> `Engine.on_timer`): a date trigger's time came;
  its run starts if the scope still holds for the identity as it is now;
- I/O effects (`EffectQueue.claim_due` with a lease -> `EffectRunner.perform` outside any
  transaction -> `Engine.effect_done` in a new one): mail, extension calls, access passes;
- the workflow folder (`WorkflowHolder.watcher`): reloaded when its files change.

One item whose handling raises a bug (not an outage) must not stop the others nor come
back every second: each is handled in a savepoint; a wake-up that failed so is tried again
a minute later, a timer is marked skipped (an operator can run its workflow on demand).

`Operations` is the engine's `EngineOperations` (the runs API's port): each operator action
in a transaction of its own, its events through the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Protocol

import asyncpg

from accord.events import Envelope
from accord.orchestrator.adapters.workflow_effects import engine_stores
from accord.orchestrator.workflows.effect_queue import QueuedEffect
from accord.orchestrator.workflows.engine import EffectFailed, Engine, EngineStores
from accord.orchestrator.workflows.run_model import Run
from accord.runtime import outbox
from accord.runtime.errors import INFRASTRUCTURE_ERRORS
from accord.runtime.service import Runtime

__all__ = [
    "BATCH",
    "EFFECT_LEASE",
    "REARM_AFTER",
    "Operations",
    "Transactions",
    "UnitOfWork",
    "fire_due",
    "perform_due",
    "postgres_transactions",
    "wake_due",
    "workflow_hooks",
]

log = logging.getLogger(__name__)

#: Items claimed per transaction.
BATCH = 100
#: How long a claimed I/O effect is someone's: claimed again after, if not recorded by then
#: (an orchestrator that died while performing it). Longer than any effect's own timeout.
EFFECT_LEASE = timedelta(minutes=5)
#: A wake-up whose handling raised (a bug, not an outage) is tried again this much later.
REARM_AFTER = timedelta(seconds=60)


class UnitOfWork(Protocol):
    """An open transaction: the engine's stores on it, and its outbox."""

    @property
    def stores(self) -> EngineStores: ...

    async def emit(self, events: Sequence[Envelope]) -> None:
        """Queue events in the outbox, committed with the transaction."""
        ...

    def savepoint(self) -> AbstractAsyncContextManager[Any]:
        """A nested transaction: what raises inside is undone alone."""
        ...


#: Opens a transaction (committed when the block ends, rolled back if it raises).
Transactions = Callable[[], AbstractAsyncContextManager[UnitOfWork]]


@dataclass(frozen=True)
class _PostgresUnit:
    conn: asyncpg.Connection
    schema: str
    stores: EngineStores

    async def emit(self, events: Sequence[Envelope]) -> None:
        await outbox.enqueue(self.conn, self.schema, list(events))

    def savepoint(self) -> AbstractAsyncContextManager[Any]:
        nested: AbstractAsyncContextManager[Any] = self.conn.transaction()
        return nested


def postgres_transactions(pool: asyncpg.Pool, schema: str) -> Transactions:
    """Transactions on the service's pool, the events to its outbox."""

    @asynccontextmanager
    async def transaction() -> AsyncIterator[UnitOfWork]:
        async with pool.acquire() as conn, conn.transaction():
            yield _PostgresUnit(conn, schema, engine_stores(conn))

    return transaction


# --- one poll of each loop ---------------------------------------------------------------------


async def wake_due(engine: Engine, transactions: Transactions, limit: int = BATCH) -> int:
    """Handle the wake-ups due now; how many were claimed."""
    async with transactions() as tx:
        wakeups = await tx.stores.wakeups.claim_due(engine.clock(), limit)
        for wakeup in wakeups:
            try:
                async with tx.savepoint():
                    await tx.emit(await engine.on_wakeup(tx.stores, wakeup))
            except INFRASTRUCTURE_ERRORS:
                raise
            except Exception:
                log.exception("workflow wake-up failed; tried again later")
                later = replace(wakeup, fire_at=engine.clock() + REARM_AFTER)
                await tx.stores.wakeups.schedule([later])
    return len(wakeups)


async def fire_due(engine: Engine, transactions: Transactions, limit: int = BATCH) -> int:
    """Fire the time triggers due now; how many were claimed."""
    async with transactions() as tx:
        timers = await tx.stores.timers.claim_due(engine.clock(), limit)
        for timer in timers:
            try:
                async with tx.savepoint():
                    await tx.emit(await engine.on_timer(tx.stores, timer))
            except INFRASTRUCTURE_ERRORS:
                raise
            except Exception:
                log.exception("workflow timer failed; marked skipped")
                await tx.stores.timers.mark(timer.timer_id, "skipped")
    return len(timers)


async def perform_due(
    engine: Engine,
    transactions: Transactions,
    limit: int = BATCH,
    lease: timedelta = EFFECT_LEASE,
) -> int:
    """Perform the I/O effects due now, each outside any transaction, and record each
    outcome in a transaction of its own; how many were claimed."""
    todo: list[tuple[QueuedEffect, Run, Any]] = []
    async with transactions() as tx:
        claimed = await tx.stores.effects.claim_due(engine.clock(), lease, limit)
        for effect in claimed:
            subject = await engine.effect_subject(tx.stores, effect)
            if subject is not None:
                todo.append((effect, *subject))
    for effect, run, identity in todo:
        outcome: Any
        try:
            outcome = await engine.runner.perform(effect.command, run, identity)
        except EffectFailed as failed:
            outcome = failed
        except Exception as error:  # a bug of the effect layer: the task's retries apply
            log.exception("workflow effect raised", extra={"run_id": run.run_id})
            outcome = EffectFailed(f"unexpected error: {type(error).__name__}", retryable=True)
        async with transactions() as tx:
            await tx.emit(await engine.effect_done(tx.stores, effect, outcome))
    return len(claimed)


# --- the background hooks ----------------------------------------------------------------------


async def _poll(
    runtime: Runtime, what: str, once: Callable[[], Awaitable[int]], poll_s: float
) -> None:
    """Call `once` until the service stops: again at once while batches come full."""
    while not runtime.stopping.is_set():
        try:
            claimed = await once()
        except INFRASTRUCTURE_ERRORS as error:
            log.warning("workflow %s unavailable: %s", what, type(error).__name__)
            claimed = 0
        except Exception:
            log.exception("workflow %s failed", what)
            claimed = 0
        if claimed >= BATCH:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.stopping.wait(), timeout=poll_s)


def workflow_hooks(engine: Engine, poll_s: float) -> list[Callable[[Runtime], Awaitable[None]]]:
    """The wake-up, timer and effect loops as background hooks of the service."""

    async def workflow_wakeups(runtime: Runtime) -> None:
        transactions = postgres_transactions(runtime.pool, runtime.schema)
        await _poll(runtime, "wake-ups", lambda: wake_due(engine, transactions), poll_s)

    async def workflow_timers(runtime: Runtime) -> None:
        transactions = postgres_transactions(runtime.pool, runtime.schema)
        await _poll(runtime, "timers", lambda: fire_due(engine, transactions), poll_s)

    async def workflow_effects(runtime: Runtime) -> None:
        transactions = postgres_transactions(runtime.pool, runtime.schema)
        await _poll(runtime, "effects", lambda: perform_due(engine, transactions), poll_s)

    return [workflow_wakeups, workflow_timers, workflow_effects]


# --- operator actions --------------------------------------------------------------------------


@dataclass(frozen=True)
class Operations:
    """`operations.EngineOperations`: each action in its own transaction."""

    engine: Engine
    transactions: Transactions

    async def cancel(self, run_id: str, reason: str) -> Run:
        async with self.transactions() as tx:
            run, events = await self.engine.cancel(tx.stores, run_id, reason)
            await tx.emit(events)
        return run

    async def retry(self, run_id: str) -> Run:
        async with self.transactions() as tx:
            run, events = await self.engine.retry(tx.stores, run_id)
            await tx.emit(events)
        return run

    async def start_on_demand(
        self, workflow_id: str, identity_ids: Sequence[str], requested_by: str
    ) -> list[str]:
        async with self.transactions() as tx:
            started, events = await self.engine.start_on_demand(
                tx.stores, workflow_id, identity_ids, requested_by
            )
            await tx.emit(events)
        return started


@dataclass(frozen=True)
class CallbackDelivery:
    """`callback_api.CallbackSink`: a verified callback advances its run, in a transaction
    of its own; False when it was delivered before or the task no longer waits."""

    engine: Engine
    transactions: Transactions

    async def deliver(self, run_id: str, task_id: str, outputs: Mapping[str, Any]) -> bool:
        async with self.transactions() as tx:
            accepted, events = await self.engine.on_callback(tx.stores, run_id, task_id, outputs)
            await tx.emit(events)
        return accepted
