"""The consumer loop: polls the topics of its routes with one consumer group, hands each
partition's records to a PartitionHandler (accord.runtime.handling: inbox, transactions,
outbox, dead letters) and commits offsets only for what the handler finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from asyncio import FIRST_COMPLETED
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import asyncpg
from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError
from aiokafka.structs import OffsetAndMetadata

from accord.runtime.handling import ConsumerStats, PartitionHandler, describe
from accord.runtime.metrics import RuntimeMetrics
from accord.runtime.polling import IdlePolling, Pacer
from accord.runtime.records import Record
from accord.runtime.routes import (
    BatchHandler,
    BatchItem,
    Effect,
    EffectContext,
    GaveUp,
    Handler,
    HandlerContext,
    RawHandler,
    Route,
)
from accord.runtime.storage import Storage
from accord.runtime.transport import Consumer, Producer

log = logging.getLogger(__name__)

#: The route types, the stats and the idle polling are defined in their own modules;
#: services import them from here too.
__all__ = [
    "BatchHandler",
    "BatchItem",
    "ConsumerLoop",
    "ConsumerStats",
    "Effect",
    "EffectContext",
    "GaveUp",
    "Handler",
    "HandlerContext",
    "IdlePolling",
    "RawHandler",
    "Route",
    "describe",
]


#: How long a poll waits for records while partitions are being handled, and while none
#: are. New records end either wait at once. The busy bound is how late a finished worker's
#: partition may resume while several run (see run()); an idle loop at that bound woke five
#: times a second for nothing.
BUSY_POLL_MS = 200
IDLE_POLL_MS = 1000


class ConsumerLoop:
    """Consumes the topics of its routes with one consumer group.

    The runtime's tables are the PostgreSQL schema `schema` through `pool`, or `storage`
    (accord.runtime.storage; accord.runtime.memory.MemoryStorage in unit tests, with the
    in-memory consumer and producer of accord.runtime.memory).
    """

    def __init__(
        self,
        *,
        consumer: Consumer,
        producer: Producer,
        pool: asyncpg.Pool | None = None,
        schema: str = "",
        group: str,
        source: str,
        routes: Mapping[str, Route],
        max_attempts: int = 3,
        topics: Sequence[str] | None = None,
        dead_letter_handler: RawHandler | None = None,
        batch_handler: BatchHandler | None = None,
        batch_types: Collection[str] = (),
        idle_polling: IdlePolling | None = None,
        storage: Storage | None = None,
        metrics: RuntimeMetrics | None = None,
    ) -> None:
        self._consumer = consumer
        self._pacer = Pacer(consumer, idle_polling)
        self._group = group
        self._topics = list(topics) if topics is not None else list(routes)
        self._stopping = asyncio.Event()
        self._workers: dict[TopicPartition, asyncio.Task[tuple[int | None, int, int]]] = {}
        self.stats = ConsumerStats()
        self.committed: dict[TopicPartition, int] = {}
        """The offset this member last committed per partition, since it was assigned."""
        self.metrics = metrics if metrics is not None else RuntimeMetrics()
        self.metrics.watch_consumer(consumer, consumer.assignment, self.committed.get)
        self.metrics.consuming(self._topics)
        self._handler = PartitionHandler(
            producer=producer,
            pool=pool,
            schema=schema,
            group=group,
            source=source,
            routes=routes,
            max_attempts=max_attempts,
            dead_letter_handler=dead_letter_handler,
            batch_handler=batch_handler,
            batch_types=batch_types,
            stats=self.stats,
            stopping=self._stopping,
            storage=storage,
            metrics=self.metrics,
        )
        self.running = False
        self.joined = False
        """True once the group has assigned this member its partitions (maybe none)."""

    async def serve(self) -> None:
        """Start the consumer client, consume until stop(), then close the client."""
        await self._consumer.start()
        try:
            await self.run()
        finally:
            await self._consumer.stop()

    async def run(self) -> None:
        """Consume until stop(); in-flight records finish and are committed first.

        Each partition is handled by one worker at a time, in order. While its worker runs
        the partition is paused and the loop keeps polling: the other partitions go on, and
        a slow target cannot make this member miss max.poll.interval and be thrown out of
        the group (a rebalance storm).
        """
        self._consumer.subscribe(self._topics, listener=_JoinListener(self))
        self.running = True
        fetch: asyncio.Future[Mapping[TopicPartition, Sequence[Record]]] | None = None
        stopped = asyncio.ensure_future(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                if fetch is None:
                    wait_ms = BUSY_POLL_MS if self._workers else IDLE_POLL_MS
                    fetch = asyncio.ensure_future(
                        self._consumer.getmany(timeout_ms=wait_ms, max_records=500)
                    )
                # A lone worker that finishes resumes its partition at once, not when the
                # poll in flight ends (up to BUSY_POLL_MS): at a light load the next record of
                # that partition would wait for it (issue 24: p99 at 10 joiners/s). With
                # several workers in flight the poll returns soon enough, and waking for
                # each one cost a fifth of the throughput at saturation (measured).
                waits: list[asyncio.Future[Any]] = [fetch, stopped]
                if len(self._workers) == 1:
                    waits += self._workers.values()
                await asyncio.wait(waits, return_when=FIRST_COMPLETED)
                batch: Mapping[TopicPartition, Sequence[Record]] = {}
                if fetch.done():
                    batch, fetch = fetch.result(), None
                self._pacer.pace(busy=bool(batch) or bool(self._workers))
                for tp, records in batch.items():
                    if tp in self._workers:
                        # Fetched before the pause took effect: read it again after the worker.
                        self._consumer.seek(tp, records[0].offset)
                        continue
                    self._consumer.pause(tp)
                    self._workers[tp] = asyncio.create_task(
                        self._handler.handle(list(records)),
                        name=f"partition {tp.topic}/{tp.partition}",
                    )
                await self._commit(self._collect())
            await self.drain(list(self._workers))
        finally:
            stopped.cancel()
            if fetch is not None:
                # Records it fetched are not handled, so not committed: fetched again later.
                fetch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await fetch
            self.running = False

    @property
    def fetch_wait_ms(self) -> int | None:
        """The fetch wait of the consumer's next fetch (None before it started)."""
        return self._pacer.fetch_wait_ms

    @property
    def fetch_min_bytes(self) -> int | None:
        """What the consumer's next fetch gathers before it returns (None before it started)."""
        return self._pacer.fetch_min_bytes

    async def drain(self, partitions: list[TopicPartition], wait_s: float | None = None) -> None:
        """Let the workers of these partitions finish, then commit what they handled."""
        tasks = [self._workers[tp] for tp in partitions if tp in self._workers]
        if tasks:
            await asyncio.wait(tasks, timeout=wait_s)
        await self._commit(self._collect())

    def _collect(self) -> dict[TopicPartition, OffsetAndMetadata]:
        """Offsets of finished workers; their partitions resume where handling stopped."""
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp, task in list(self._workers.items()):
            if not task.done():
                continue
            del self._workers[tp]
            last, first, end = task.result()  # a crashed worker crashes the service
            if last is not None:
                offsets[tp] = OffsetAndMetadata(last + 1, "")
            if tp not in self._consumer.assignment():
                continue
            if last != end:
                # Stopped early: fetch the unhandled records again rather than skip them.
                self._consumer.seek(tp, first if last is None else last + 1)
            self._consumer.resume(tp)
        return offsets

    def stop(self) -> None:
        """Ask run() to return once the records in flight are handled."""
        self._stopping.set()

    async def _commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
            self.committed.update((tp, meta.offset) for tp, meta in offsets.items())
        except CommitFailedError as error:
            # The partitions moved to another member during a rebalance; it will see these
            # records again and the inbox will drop them.
            log.warning("offset commit lost to a rebalance", extra={"error": str(error)})


_REVOKE_WAIT_S = 20.0


class _JoinListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Marks the loop joined once the group assigned it partitions (possibly none)."""

    def __init__(self, loop: ConsumerLoop) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # Hand the partitions over with their progress committed (bounded: a worker stuck on
        # a slow target must not hold the whole group; the next owner redoes its records,
        # and inboxes and idempotent connectors make that harmless).
        await self._loop.drain(revoked, wait_s=_REVOKE_WAIT_S)
        for tp in revoked:  # another member commits them now
            self._loop.committed.pop(tp, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._loop.joined = True
        self._loop.stats.assigned = set(assigned)
