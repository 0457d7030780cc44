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
- cron schedules (`ScheduleStore.claim` -> `matching.schedule_due` -> `Engine.start_scheduled`
  over the registry, a page of identities per transaction): a schedule's time came; the
  schedule's state (last time run, the time being run and how far) is durable and claimed
  with SKIP LOCKED, so one orchestrator at a time runs a schedule (`schedules.py`);
- timers planned again (`Engine.replan_timers` over the registry, a page per transaction):
  once at start and whenever the set's time triggers change (a reload brings a new
  time-triggered workflow or version), so identities that exist already get their timers,
  not only those an identity event touches later; the timers the new set no longer plans
  are cancelled first, in one statement (`TimerStore.cancel_stale`);
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
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Protocol

import asyncpg

from accord.events import Envelope
from accord.orchestrator.adapters.workflow_effects import engine_stores
from accord.orchestrator.adapters.workflow_schedules import PostgresSchedules
from accord.orchestrator.handlers.workflows import SagaTasks
from accord.orchestrator.ports import OrchestratorPorts
from accord.orchestrator.workflows import matching, schedules
from accord.orchestrator.workflows.effect_queue import QueuedEffect
from accord.orchestrator.workflows.engine import EffectFailed, Engine, EngineStores
from accord.orchestrator.workflows.run_model import Run
from accord.orchestrator.workflows.timers import TimeTrigger
from accord.runtime import outbox
from accord.runtime.errors import INFRASTRUCTURE_ERRORS
from accord.runtime.service import Runtime

__all__ = [
    "BATCH",
    "EFFECT_LEASE",
    "REARM_AFTER",
    "Operations",
    "TimerReplanning",
    "Transactions",
    "UnitOfWork",
    "fire_due",
    "perform_due",
    "postgres_transactions",
    "replan_page",
    "run_schedules",
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


#: The handlers' ports on a connection (the task sagas the engine starts need them).
PortsOn = Callable[[asyncpg.Connection], OrchestratorPorts]


def postgres_transactions(pool: asyncpg.Pool, schema: str, ports: PortsOn) -> Transactions:
    """Transactions on the service's pool, the events to its outbox."""

    @asynccontextmanager
    async def transaction() -> AsyncIterator[UnitOfWork]:
        async with pool.acquire() as conn, conn.transaction():
            sagas = SagaTasks(ports(conn))
            stores = replace(engine_stores(conn, sagas), schedules=PostgresSchedules(conn))
            yield _PostgresUnit(conn, schema, stores)

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


async def run_schedules(engine: Engine, transactions: Transactions, page: int = BATCH) -> int:
    """Run the cron schedules due now, one page of identities each, in one transaction;
    how many identities were handled (a full page: the loop comes back at once).

    The schedules' states are claimed (SKIP LOCKED: another orchestrator's are left to
    it); a schedule with no time in progress starts the one `matching.schedule_due` finds
    due (`schedules.due_slot`); each claimed time in progress goes on from its cursor and
    ends, recorded as the last run, at the registry's last page. A schedule whose handling
    raises a bug (not an outage) gives up that time (logged), so it does not come back at
    every poll."""
    workflows = engine.current()
    wanted = {loaded.id: loaded for loaded in schedules.scheduled(workflows)}
    if not wanted:
        return 0
    handled = 0
    async with transactions() as tx:
        store = tx.stores.schedules
        if store is None:
            raise RuntimeError("the schedule loop needs a ScheduleStore")
        now = engine.clock()
        claimed = await store.claim(sorted(wanted), now)
        due = set(
            matching.schedule_due(
                workflows,
                {s.workflow_id: s.last_run_at for s in claimed if s.running_slot is None},
                now,
            )
        )
        for state in claimed:
            if state.running_slot is None:
                slot = schedules.due_slot(wanted[state.workflow_id], state.last_run_at, now)
                if state.workflow_id not in due or slot is None:
                    continue
                state = state.begin(slot)
                log.info(
                    "workflow schedule runs",
                    extra={"workflow_id": state.workflow_id, "slot": slot.isoformat()},
                )
            assert state.running_slot is not None
            ids = await tx.stores.registry.identity_ids(state.cursor, page)
            try:
                async with tx.savepoint():
                    await tx.emit(
                        await engine.start_scheduled(
                            tx.stores, state.workflow_id, state.running_slot, ids
                        )
                    )
            except INFRASTRUCTURE_ERRORS:
                raise
            except Exception:
                log.exception("workflow schedule failed; this time is given up")
                ids = []
            handled += len(ids)
            await store.save(state.advanced(ids[-1]) if len(ids) >= page else state.finished())
    return handled


async def replan_page(
    engine: Engine, transactions: Transactions, after: str | None, page: int = BATCH
) -> str | None:
    """Plan again the timers of one page of identities after `after`, in one transaction;
    the last identity of the page, or None after the last page."""
    async with transactions() as tx:
        ids = await tx.stores.registry.identity_ids(after, page)
        await tx.emit(await engine.replan_timers(tx.stores, ids))
    return ids[-1] if len(ids) >= page else None


@dataclass
class TimerReplanning:
    """Plans every identity's timers again when the set's time triggers change (and once
    at start): a reload that adds a time-triggered workflow, or a new version of one, then
    reaches the identities that exist already. What it planned for is kept in memory: each
    orchestrator does it once after it starts (planning is idempotent, so two doing it
    plan nothing twice); an outage part-way starts it over at the next poll."""

    engine: Engine
    transactions: Transactions
    page: int = BATCH
    planned_for: tuple[TimeTrigger, ...] | None = None

    async def once(self) -> int:
        """Plan the timers again if the time triggers changed; how many pages it took.

        First the timers no trigger plans any more (a workflow removed, disabled, given a
        new version or another date) are cancelled in one statement: they would only be
        skipped when due, and meanwhile `plan --identity` and the table would show them.
        Then the pages plan what the set does plan."""
        triggers = tuple(matching.time_triggers(self.engine.current()))
        if triggers == self.planned_for:
            return 0
        async with self.transactions() as tx:
            cancelled = await tx.stores.timers.cancel_stale(triggers)
        if cancelled:
            log.info("workflow timers no longer planned cancelled", extra={"count": cancelled})
        if not triggers:  # nothing left to plan
            self.planned_for = triggers
            return 0
        pages, after = 0, None
        while True:
            after = await replan_page(self.engine, self.transactions, after, self.page)
            pages += 1
            if after is None:
                break
        self.planned_for = triggers
        log.info("workflow timers planned again", extra={"pages": pages})
        return pages


# --- the background hooks ----------------------------------------------------------------------


async def _poll(
    runtime: Runtime, what: str, once: Callable[[], Awaitable[int]], poll_s: float
) -> None:
    """Call `once` until the service stops: again at once while batches come full, else
    every `poll_s` from the start of the last call (a batch's own time is not added to the
    wait: measured with 1,000 timers, that extra time was most of the lateness)."""
    while not runtime.stopping.is_set():
        started = time.monotonic()
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
        rest = poll_s - (time.monotonic() - started)
        if rest > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(runtime.stopping.wait(), timeout=rest)


def workflow_hooks(
    engine: Engine, poll_s: float, ports: PortsOn
) -> list[Callable[[Runtime], Awaitable[None]]]:
    """The wake-up, timer and effect loops as background hooks of the service."""

    def postgres(runtime: Runtime) -> Transactions:
        return postgres_transactions(runtime.pool, runtime.schema, ports)

    async def workflow_wakeups(runtime: Runtime) -> None:
        transactions = postgres(runtime)
        await _poll(runtime, "wake-ups", lambda: wake_due(engine, transactions), poll_s)

    async def workflow_timers(runtime: Runtime) -> None:
        transactions = postgres(runtime)
        await _poll(runtime, "timers", lambda: fire_due(engine, transactions), poll_s)

    async def workflow_effects(runtime: Runtime) -> None:
        transactions = postgres(runtime)
        await _poll(runtime, "effects", lambda: perform_due(engine, transactions), poll_s)

    async def workflow_schedules(runtime: Runtime) -> None:
        transactions = postgres(runtime)
        await _poll(runtime, "schedules", lambda: run_schedules(engine, transactions), poll_s)

    async def workflow_timer_replanning(runtime: Runtime) -> None:
        replanning = TimerReplanning(engine, postgres(runtime))
        await _poll(runtime, "timer planning", lambda: _none(replanning.once()), poll_s)

    return [
        workflow_wakeups,
        workflow_timers,
        workflow_effects,
        workflow_schedules,
        workflow_timer_replanning,
    ]


async def _none(work: Awaitable[Any]) -> int:
    """Do `work` and tell `_poll` to wait for the next poll."""
    await work
    return 0


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
