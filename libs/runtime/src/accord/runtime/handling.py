"""How a consumer handles one partition's records: at-least-once, inbox deduplication,
outbox, dead letters.

For each record: decode (a broken record goes to the DLQ), then in one transaction record
the event id in the inbox, run the handler and enqueue the events it returns. The loop
(accord.runtime.consumer) commits offsets only after that transaction (or the dead letter)
is durable.

Consecutive records of a partition whose routes are plain handlers share one transaction
(up to GROUP_LIMIT): the same inbox rows, handler calls and outbox rows, in the same order,
with one BEGIN, one COMMIT and one wake-up of the relay instead of one each per record. A
group that fails for any reason is rolled back and its records handled one by one, so a
poison record is retried and dead-lettered alone, exactly as without grouping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

import asyncpg
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from accord.events import Envelope, InvalidEvent, from_kafka
from accord.events.topics import is_dlq
from accord.runtime import logs
from accord.runtime.dlq import dead_letter, meant_for, replayed_for
from accord.runtime.dlq_resolution import Settlement
from accord.runtime.errors import INFRASTRUCTURE_ERRORS, PermanentError
from accord.runtime.metrics import DEAD_LETTERED, DUPLICATE, HANDLED, RuntimeMetrics
from accord.runtime.records import Record
from accord.runtime.routes import (
    BatchHandler,
    BatchItem,
    Effect,
    EffectContext,
    EffectWork,
    GaveUp,
    Handler,
    HandlerContext,
    RawHandler,
    Route,
    Work,
)
from accord.runtime.storage import PgStorage, Storage, Transaction
from accord.runtime.tracing import batch_spans, consume_span, trace_id_of, with_current_trace
from accord.runtime.transport import Producer

log = logging.getLogger(__name__)


#: Most records of one partition handled in one transaction (it holds its locks until then).
GROUP_LIMIT = 100
#: The event_type label of a batch handler's attempts (it takes several types at once).
BATCH = "batch"


class _Abandoned(Exception):
    """A record left unhandled because the loop is stopping (while a dependency is down, or
    in the middle of a group's records handled one by one)."""


@dataclass
class ConsumerStats:
    """Counters for health and benchmarks."""

    handled: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    retries: int = 0
    last_error: str | None = None
    assigned: set[TopicPartition] = field(default_factory=set)


class PartitionHandler:
    """Handles a fetched batch of one partition's records, in order, and says how far it
    got, so the loop commits only what is done. The loop runs one batch per partition at a
    time, several partitions at once.

    Its inbox, outbox and dead letters are in `storage`, by default the PostgreSQL schema
    `schema` through `pool` (accord.runtime.storage).
    """

    def __init__(
        self,
        *,
        producer: Producer,
        pool: asyncpg.Pool | None = None,
        schema: str = "",
        group: str,
        source: str,
        routes: Mapping[str, Route],
        max_attempts: int,
        dead_letter_handler: RawHandler | None,
        batch_handler: BatchHandler | None,
        stats: ConsumerStats,
        stopping: asyncio.Event,
        batch_types: Collection[str] = (),
        storage: Storage | None = None,
        metrics: RuntimeMetrics | None = None,
    ) -> None:
        self._producer = producer
        self._metrics = metrics if metrics is not None else RuntimeMetrics()
        self._storage = storage_of(pool, schema, storage)
        self._group = group
        self._source = source
        self._routes = dict(routes)
        self._max_attempts = max_attempts
        self._dead_letter_handler = dead_letter_handler
        self._batch_handler = batch_handler
        # The types the batch handler takes: its own list, else the routes'.
        self._batch_types = frozenset(batch_types or routes)
        self.stats = stats
        self._stopping = stopping

    async def handle(self, records: list[Record]) -> tuple[int | None, int, int]:
        """Handle records in order; (last handled offset, first offset, last offset)."""
        if self._batch_handler is not None:
            return await self._handle_batch(self._batch_handler, records)
        progress = _Progress()
        try:
            for record in records:
                if self._stopping.is_set() and (progress.last is not None or progress.group):
                    break
                await self._take(record, progress)
            await self._flush(progress)
        except _Abandoned:
            # Not handled, so not committed: the next owner of the partition gets it.
            pass
        return progress.last, records[0].offset, records[-1].offset

    async def _take(self, record: Record, progress: _Progress) -> None:
        """Add a record to the open group, or flush the group and handle the record alone."""
        if not meant_for(record, self._group):
            # A replay for other groups: not even decoded, so never dead-lettered here.
            progress.add(record, None)
        elif is_dlq(record.topic):
            await self._flush(progress)
            await self._handle_dead_letter(record)
            progress.last = record.offset
        else:
            await self._take_event(record, progress)
        if len(progress.group) >= GROUP_LIMIT:
            await self._flush(progress)

    async def _take_event(self, record: Record, progress: _Progress) -> None:
        envelope = await self._decode(record)
        route = None if envelope is None else self._routes.get(envelope.type)
        if envelope is None or route is None:
            # Dead-lettered or not ours: nothing to do, but its offset follows the group's.
            progress.add(record, None)
        elif isinstance(route, Effect) or replayed_for(record.headers) is not None:
            # Alone: an effect holds no transaction, and a replay resolves dead letters.
            await self._flush(progress)
            await self._handle_event(record, envelope, route)
            progress.last = record.offset
        else:
            progress.add(record, (envelope, route))

    async def _flush(self, progress: _Progress) -> None:
        """Handle the open group in one transaction; one by one if that fails."""
        group, progress.group = progress.group, []
        culprit: _GroupFailed | None = None
        if sum(1 for _, item in group if item is not None) > 1:
            try:
                done = await self._apply_group(group)
                progress.last = group[done - 1][0].offset
                return
            except _GroupFailed as failed:
                # Rolled back whole: each record now gets its own retries and dead letter.
                culprit = failed
                log.info(
                    "grouped transaction failed; handling its records one by one",
                    extra={"error": self._describe(failed.error), "records": len(group)},
                )
        for record, item in group:
            if self._stopping.is_set() and record is not group[0][0]:
                raise _Abandoned
            if item is not None:
                # The record whose handler broke the group has had its first attempt; a
                # permanent error is dead-lettered at once, as it would be alone.
                prior = culprit.error if culprit and culprit.record is record else None
                await self._handle_event(record, *item, failed=prior)
            progress.last = record.offset

    async def _apply_group(self, group: list[_Pending]) -> int:
        """Inbox rows, handlers and outbox rows of several records in one transaction; how
        many of the group's records it took (all, unless a stop request cut it short)."""
        emitted: list[Envelope] = []
        duplicates: list[str] = []
        fresh = done = 0
        topic = group[0][0].topic
        try:
            async with self._storage.transaction() as tx:
                # One statement claims the group's events (was one per event); what a stop
                # request cuts off is released, so the partition's next owner handles it.
                ids = [item[0].id for _, item in group if item is not None]
                unhandled = await tx.claim_all(self._group, topic, ids)
                for record, item in group:
                    if self._stopping.is_set() and done:
                        await tx.release(self._group, topic, sorted(unhandled))
                        break
                    done += 1
                    if item is None:
                        continue
                    envelope, handler = item
                    with _event_context(envelope, record.topic, self._group):
                        if envelope.id not in unhandled:
                            duplicates.append(envelope.type)
                            continue
                        unhandled.discard(envelope.id)
                        context = HandlerContext(
                            conn=tx.conn, source=self._source, topic=record.topic
                        )
                        started = time.perf_counter()
                        try:
                            replies = await handler(envelope, context)
                        except Exception as error:
                            raise _GroupFailed(error, record) from error
                        finally:
                            self._timed(envelope.type, started)
                        # Stamped here, inside the record's span: enqueue runs outside it.
                        emitted += [with_current_trace(e) for e in replies]
                        fresh += 1
                await tx.enqueue(emitted)
        except _GroupFailed:
            raise
        except Exception as error:
            raise _GroupFailed(error, None) from error
        self.stats.handled += fresh
        self._metrics.record(topic, HANDLED, fresh)
        self._metrics.grouped(done)
        for kind in duplicates:
            self._duplicate(topic, kind)
        return done

    async def _handle_batch(
        self, handler: BatchHandler, records: list[Record]
    ) -> tuple[int | None, int, int]:
        """One transaction for the partition's records; a record that breaks it goes alone.

        Undecodable records are dead-lettered first (the DLQ copy comes back as a dead
        letter); events of types without a route are skipped, as in per-record handling.
        """
        first, end = records[0].offset, records[-1].offset
        items: list[BatchItem] = []
        for record in records:
            if not meant_for(record, self._group):
                continue
            if is_dlq(record.topic):
                items.append((record, None))
                continue
            envelope = await self._decode(record)
            if envelope is not None and envelope.type in self._batch_types:
                items.append((record, envelope))
        if not items:
            return end, first, end
        try:
            await self._apply_batch(handler, items)
        except _Abandoned:
            return None, first, end
        return end, first, end

    async def _apply_batch(self, handler: BatchHandler, items: list[BatchItem]) -> None:
        failures = 0
        delay = 0.1
        topic = items[0][0].topic
        while True:
            try:
                async with self._storage.transaction() as tx:
                    context = HandlerContext(conn=tx.conn, source=self._source, topic=topic)
                    started = time.perf_counter()
                    traced = [envelope for _, envelope in items if envelope is not None]
                    try:
                        with batch_spans(traced, topic, self._group):
                            emitted = await handler(items, context)
                    finally:
                        self._timed(BATCH, started)
                    await tx.enqueue(emitted)
                    for record, envelope in items:
                        settlement = Settlement.of(record, envelope, None) if envelope else None
                        if settlement is not None:
                            await tx.settle(self._group, topic, settlement)
                self.stats.handled += len(items)
                self._metrics.record(topic, HANDLED, len(items))
                self._metrics.grouped(len(items))
                return
            except INFRASTRUCTURE_ERRORS as error:
                self._metrics.handler_failed(BATCH)
                self._dependency_down(error, "batch will retry")
            except Exception as error:
                failures += 1
                self._note_retry(error)
                self._metrics.handler_failed(BATCH)
                log.exception("batch handler failed", extra={"attempt": failures})
                if failures >= self._max_attempts:
                    await self._isolate(handler, items, error)
                    return
            delay = await self._back_off(delay)

    def _note_retry(self, error: BaseException) -> None:
        self.stats.retries += 1
        self.stats.last_error = self._describe(error)

    @staticmethod
    def _describe(error: BaseException) -> str:
        return f"{type(error).__name__}: {error}"

    def _dependency_down(self, error: BaseException, message: str) -> None:
        """Count and log an infrastructure failure; abandon the work if stopping."""
        self._note_retry(error)
        log.warning(message, extra={"error": self.stats.last_error})
        if self._stopping.is_set():
            raise _Abandoned from None

    async def _back_off(self, delay: float) -> float:
        """Wait `delay` (a stop request cuts it short); the next, doubled, up to 10 s."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)
        return min(delay * 2, 10.0)

    async def _isolate(
        self, handler: BatchHandler, items: list[BatchItem], error: Exception
    ) -> None:
        """Handle a failing batch record by record: only the records that fail alone are lost
        to the DLQ (a dead letter that fails stays in its DLQ topic)."""
        if len(items) > 1:
            for item in items:
                await self._apply_batch(handler, [item])
            return
        await self._give_up(items[0][0], self._max_attempts, error)

    async def _decode(self, record: Record) -> Envelope | None:
        """The record's event; None when it breaks the contract (then it is dead-lettered)."""
        try:
            return from_kafka(record.topic, record.key, record.value, list(record.headers))
        except InvalidEvent as error:
            await self._dead_letter(record, error.reason, "invalid-event")
            return None

    async def _give_up(
        self,
        record: Record,
        failures: int,
        error: Exception,
        settlement: Settlement | None = None,
    ) -> None:
        """Dead-letter a record whose handler kept failing; a dead letter stays in its DLQ
        topic (skipping it here loses nothing)."""
        if is_dlq(record.topic):
            log.error("dead letter skipped after repeated failures")
            return
        reason = f"handler failed {failures} times: {type(error).__name__}: {error}"
        await self._dead_letter(record, reason, "handler-error", settlement)

    async def _handle_event(
        self,
        record: Record,
        envelope: Envelope,
        route: Route,
        *,
        failed: Exception | None = None,
    ) -> None:
        """One record in its own transaction, with retries and its dead letter; `failed` is
        the error of an attempt already made (in a group)."""
        settlement = Settlement.of(record, envelope, route)
        with _event_context(envelope, record.topic, self._group):
            if isinstance(route, Effect):
                effect = partial(route.handler, envelope)
                on_commit = partial(route.record, envelope) if route.record else None
                await self._apply_with_retries(
                    record,
                    envelope.id,
                    effect,
                    envelope.type,
                    outside=True,
                    on_commit=on_commit,
                    settlement=settlement,
                )
            else:
                work = partial(route, envelope)
                await self._apply_with_retries(
                    record, envelope.id, work, envelope.type, failed=failed, settlement=settlement
                )

    async def _handle_dead_letter(self, record: Record) -> None:
        """Dead letters are read raw (they may be undecodable) and never dead-lettered again."""
        if self._dead_letter_handler is None:
            return
        work = partial(self._dead_letter_handler, record)
        # A dead letter's identity is its place in the DLQ: the same event may fail twice.
        position = f"{record.partition}:{record.offset}"
        await self._apply_with_retries(record, position, work, "dead-letter")

    async def _apply_with_retries(
        self,
        record: Record,
        inbox_id: str,
        work: Work | EffectWork,
        kind: str,
        *,
        outside: bool = False,
        on_commit: Work | None = None,
        failed: Exception | None = None,
        settlement: Settlement | None = None,
    ) -> None:
        failures = 0
        delay = 0.1
        while True:
            try:
                if failed is not None:
                    # An attempt made in a group: its error is judged as this attempt's.
                    attempted, failed = failed, None
                    raise attempted
                if outside:
                    effect = cast(EffectWork, work)
                    await self._apply_effect(
                        record, inbox_id, effect, kind, on_commit, settlement=settlement
                    )
                else:
                    await self._apply(record, inbox_id, cast(Work, work), kind, settlement)
                return
            except (PermanentError, InvalidEvent) as error:
                self._metrics.handler_failed(kind)
                if is_dlq(record.topic):
                    log.error("dead letter cannot be recorded", extra={"error": str(error)})
                    return
                await self._dead_letter(record, str(error), type(error).__name__, settlement)
                return
            except INFRASTRUCTURE_ERRORS as error:
                # Our own database or a dependency is down; the event is fine: wait, never drop.
                self._metrics.handler_failed(kind)
                self._dependency_down(error, "handler will retry")
            except Exception as error:
                failures += 1
                self._note_retry(error)
                self._metrics.handler_failed(kind)
                log.exception("handler failed", extra={"attempt": failures})
                if failures >= self._max_attempts:
                    await self._give_up(record, failures, error, settlement)
                    return
            delay = await self._back_off(delay)

    async def _apply(
        self,
        record: Record,
        inbox_id: str,
        work: Work,
        kind: str,
        settlement: Settlement | None = None,
    ) -> None:
        async with self._storage.transaction() as tx:
            fresh = await self._claim(tx, record.topic, inbox_id, kind)
            if fresh:
                context = HandlerContext(conn=tx.conn, source=self._source, topic=record.topic)
                started = time.perf_counter()
                try:
                    emitted = await work(context)
                finally:
                    self._timed(kind, started)
                await tx.enqueue(emitted)
            if settlement is not None:
                # A duplicate resolves too: the event was handled before.
                await tx.settle(self._group, record.topic, settlement)
        self.stats.handled += int(fresh)
        self._metrics.record(record.topic, HANDLED, int(fresh))

    async def _apply_effect(
        self,
        record: Record,
        inbox_id: str,
        work: EffectWork,
        kind: str,
        on_commit: Work | None = None,
        *,
        settlement: Settlement | None = None,
    ) -> None:
        """Run an effect with no connection held, then commit its inbox row and events.

        An effect that gave up is recorded under this record's position rather than the
        event id: a redelivery of this record is skipped, while a replay of its dead letter
        (the same event, published again) runs the effect again.
        """
        position = f"{inbox_id}@{record.partition}:{record.offset}"
        seen = await self._storage.seen(self._group, record.topic, [inbox_id, position])
        if seen:
            self._duplicate(record.topic, kind)
            # Handled before (not this very record given up on): a replay resolves.
            if settlement is not None and inbox_id in seen:
                async with self._storage.transaction() as tx:
                    await tx.settle(self._group, record.topic, settlement)
            return
        started = time.perf_counter()
        try:
            emitted = await work(EffectContext(source=self._source, topic=record.topic))
        finally:
            self._timed(kind, started)
        claim = inbox_id
        if isinstance(emitted, GaveUp):
            # Dead letter first: a crash before the commit below redoes the effect (and may
            # dead-letter it twice, harmless to a replay); the other order could lose it.
            await self._dead_letter(record, emitted.reason, emitted.error_type, settlement)
            emitted, claim, settlement = emitted.events, position, None
        async with self._storage.transaction() as tx:
            # Claimed meanwhile by another member (a rebalance): its events went out.
            if not await self._claim(tx, record.topic, claim, kind):
                return
            if on_commit is not None:
                context = HandlerContext(conn=tx.conn, source=self._source, topic=record.topic)
                emitted = [*emitted, *await on_commit(context)]
            await tx.enqueue(emitted)
            if settlement is not None:
                await tx.settle(self._group, record.topic, settlement)
        self.stats.handled += 1
        self._metrics.record(record.topic, HANDLED)

    async def _claim(self, tx: Transaction, topic: str, inbox_id: str, kind: str) -> bool:
        """Record the event in the inbox; False (a duplicate) if it is there already."""
        fresh = await tx.claim(self._group, topic, inbox_id)
        if not fresh:
            self._duplicate(topic, kind)
        return fresh

    def _timed(self, kind: str, started: float) -> None:
        self._metrics.handler_time(kind, time.perf_counter() - started)

    def _duplicate(self, topic: str, kind: str) -> None:
        self.stats.duplicates += 1
        self._metrics.record(topic, DUPLICATE)
        log.info("duplicate event ignored", extra={"type": kind})

    async def _dead_letter(
        self,
        record: Record,
        reason: str,
        kind: str,
        settlement: Settlement | None = None,
    ) -> None:
        if settlement is not None and settlement.work_key is not None:
            await self._remember(record.topic, settlement)
        while True:
            try:
                await dead_letter(
                    self._producer, record, reason=reason, error_type=kind, consumer=self._group
                )
                self.stats.dead_lettered += 1
                self._metrics.record(record.topic, DEAD_LETTERED)
                return
            except KafkaError as error:
                # Committing past a record that is not in the DLQ would lose it.
                log.warning("dead letter not acknowledged; retrying", extra={"error": str(error)})
                await asyncio.sleep(1.0)

    async def _remember(self, topic: str, settlement: Settlement) -> None:
        """Note a dead letter of named work before it is sent (accord.runtime.dlq_resolution)."""
        delay = 0.1
        while True:
            try:
                await self._storage.remember(self._group, topic, settlement)
                return
            except INFRASTRUCTURE_ERRORS as error:
                self._dependency_down(error, "dead letter not noted yet; will retry")
            delay = await self._back_off(delay)


def storage_of(pool: asyncpg.Pool | None, schema: str, storage: Storage | None) -> Storage:
    """The storage given, else the PostgreSQL schema `schema` through `pool`."""
    if storage is not None:
        return storage
    if pool is None:
        raise TypeError("a consumer needs a pool (and schema) or a storage")
    return PgStorage(pool, schema)


class _GroupFailed(Exception):
    """A grouped transaction rolled back; `record` is the one whose handler raised, if any."""

    def __init__(self, error: Exception, record: Record | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.record = record


#: A record of an open group, with its event and handler (None: nothing to do but commit).
_Pending = tuple[Record, tuple[Envelope, Handler] | None]


@dataclass
class _Progress:
    """A partition worker's place: the last offset done and the group not yet committed."""

    last: int | None = None
    group: list[_Pending] = field(default_factory=list)

    def add(self, record: Record, item: tuple[Envelope, Handler] | None) -> None:
        self.group.append((record, item))


@contextlib.contextmanager
def _event_context(envelope: Envelope, topic: str, group: str) -> Iterator[None]:
    """The event's ids in every log line, and its consumer span current."""
    tokens = (
        logs.correlation_id.set(envelope.correlationid),
        logs.event_id.set(envelope.id),
        logs.trace_id.set(trace_id_of(envelope.traceparent)),
    )
    try:
        with consume_span(envelope, topic, group):
            yield
    finally:
        logs.correlation_id.reset(tokens[0])
        logs.event_id.reset(tokens[1])
        logs.trace_id.reset(tokens[2])


def describe(stats: ConsumerStats) -> dict[str, Any]:
    """Stats as JSON-friendly values."""
    return {
        "handled": stats.handled,
        "duplicates": stats.duplicates,
        "dead_lettered": stats.dead_lettered,
        "retries": stats.retries,
        "assigned_partitions": len(stats.assigned),
    }
