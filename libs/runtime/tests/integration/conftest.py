"""Fixtures for the runtime's integration tests: a migrated schema, a producer, consumer loops.

The broker and PostgreSQL are the session's real ones (accord.stack.testing). Topics are named
by event type and shared by every test of the session, so each test reads only what carries
its own unique subject ids, and each consumer loop gets a consumer group of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord, RecordMetadata

from accord.events import Envelope, SagaCompleted, SagaFailed, SagaStarted, new_event, to_kafka
from accord.events.topic_layout import TopicSettings
from accord.runtime import db, kafka
from accord.runtime.consumer import (
    BatchHandler,
    ConsumerLoop,
    Handler,
    HandlerContext,
    IdlePolling,
    RawHandler,
)

SESSION_TIMEOUT_MS = 2000
FETCH_MAX_WAIT_MS = 20
DEADLINE_S = 20.0
SOURCE = "test/runtime"

#: The event types these tests route; their topics and dead-letter topics are created up front.
CONSUMED = "saga.completed"
EMITTED = "saga.failed"
RELAYED = "saga.started"
TOPICS = [CONSUMED, f"{CONSUMED}.dlq", EMITTED, RELAYED]


async def eventually(
    predicate: Callable[[], Any], *, what: str, timeout: float = DEADLINE_S
) -> Any:
    """Poll until predicate() (sync or async) is truthy and return it; fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.02)


def completed(subject: str, **overrides: Any) -> Envelope:
    """A valid saga.completed event about `subject` (its key and ce_subject)."""
    data = SagaCompleted(
        saga_id=f"saga-{uuid.uuid4().hex[:8]}",
        saga_type="joiner",
        subject_id=subject,
        duration_ms=1,
    )
    return new_event(data, source=SOURCE, **overrides)


def started(subject: str) -> Envelope:
    """A valid saga.started event about `subject`."""
    data = SagaStarted(
        saga_id=f"saga-{uuid.uuid4().hex[:8]}", saga_type="joiner", subject_id=subject
    )
    return new_event(data, source=SOURCE)


def failed_because_of(envelope: Envelope, source: str) -> Envelope:
    """The saga.failed event a handler emits in reply to a saga.completed one."""
    data = SagaFailed(
        saga_id=f"reply-{uuid.uuid4().hex[:8]}",
        saga_type="joiner",
        subject_id=envelope.subject,
        reason="test reply",
    )
    return new_event(data, source=source, causation=envelope)


def header(record: ConsumerRecord[bytes, bytes], name: str) -> str | None:
    """The last value of a record header, decoded."""
    values = [v for k, v in record.headers if k == name]
    return values[-1].decode() if values else None


class Recorder:
    """A handler that notes the events about its own subjects and ignores everyone else's."""

    def __init__(
        self,
        prefix: str,
        behaviour: Callable[[Envelope, HandlerContext], Awaitable[Sequence[Envelope]]]
        | None = None,
    ) -> None:
        self.prefix = prefix
        self.behaviour = behaviour
        self.calls: list[Envelope] = []

    async def __call__(self, envelope: Envelope, ctx: HandlerContext) -> Sequence[Envelope]:
        if not envelope.subject.startswith(self.prefix):
            return []
        self.calls.append(envelope)
        if self.behaviour is None:
            return []
        return await self.behaviour(envelope, ctx)

    def count(self, event_id: str) -> int:
        """How many times the handler ran for an event id."""
        return sum(1 for e in self.calls if e.id == event_id)

    @property
    def ids(self) -> set[str]:
        return {e.id for e in self.calls}


class Collector:
    """Reads a topic from its beginning, without a consumer group, keeping matching records."""

    def __init__(
        self, bootstrap: str, topic: str, keep: Callable[[ConsumerRecord[bytes, bytes]], bool]
    ) -> None:
        self.records: list[ConsumerRecord[bytes, bytes]] = []
        self._keep = keep
        self._consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            metadata_max_age_ms=1000,
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> Collector:
        await self._consumer.start()
        self._task = asyncio.create_task(self._pump())
        return self

    async def _pump(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=100)
            for records in batch.values():
                self.records.extend(r for r in records if self._keep(r))

    async def wait_for(self, count: int, what: str) -> list[ConsumerRecord[bytes, bytes]]:
        await eventually(lambda: len(self.records) >= count, what=what)
        return self.records

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()


@dataclass
class Kit:
    """The broker side of a test: a producer, publishing helpers and topic readers."""

    bootstrap: str
    producer: AIOKafkaProducer
    collectors: list[Collector] = field(default_factory=list)

    async def publish(self, envelope: Envelope, *, partition: int | None = None) -> RecordMetadata:
        record = to_kafka(envelope)
        return await self.send(
            record.topic, record.key, record.value, list(record.headers), partition=partition
        )

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        *,
        partition: int | None = None,
    ) -> RecordMetadata:
        return await self.producer.send_and_wait(
            topic, value=value, key=key, headers=headers, partition=partition
        )

    async def collect(
        self, topic: str, keep: Callable[[ConsumerRecord[bytes, bytes]], bool]
    ) -> Collector:
        collector = await Collector(self.bootstrap, topic, keep).start()
        self.collectors.append(collector)
        return collector

    async def barrier(self, recorder: Recorder) -> None:
        """Publish a marker to every partition of the consumed topic and wait until handled.

        Partitions keep order, so afterwards every record published earlier is handled too.
        """
        partitions = sorted(await self.producer.partitions_for(CONSUMED))
        ids = []
        for partition in partitions:
            marker = completed(f"{recorder.prefix}-barrier-{uuid.uuid4().hex[:6]}")
            await self.publish(marker, partition=partition)
            ids.append(marker.id)
        await eventually(lambda: set(ids) <= recorder.ids, what="the barrier markers")


@dataclass
class RunningLoop:
    """A ConsumerLoop running as a task, with its own consumer and dead-letter producer."""

    loop: ConsumerLoop
    consumer: AIOKafkaConsumer
    producer: AIOKafkaProducer
    task: asyncio.Task[None]
    stopped: bool = False

    async def stop(self) -> None:
        """stop(), wait for run() to return (re-raising its error), leave the group."""
        if self.stopped:
            return
        self.stopped = True
        self.loop.stop()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), DEADLINE_S)
        finally:
            await self.consumer.stop()
            await self.producer.stop()


@pytest.fixture
def kafka_env(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Points accord.runtime.kafka (and Service) at the session's broker."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    return kafka_bootstrap


@pytest_asyncio.fixture
async def kit(kafka_env: str) -> AsyncIterator[Kit]:
    await kafka.ensure_topics(TOPICS, TopicSettings.for_replicas(3, 1))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_env, acks="all", linger_ms=1)
    await producer.start()
    kit = Kit(kafka_env, producer)
    try:
        yield kit
    finally:
        for collector in kit.collectors:
            await collector.stop()
        await producer.stop()


@pytest_asyncio.fixture
async def database(fresh_database: str, unique: str) -> tuple[str, str]:
    """(dsn, schema) of a migrated schema in a fresh database."""
    schema = f"rt_{unique}"
    await db.migrate(fresh_database, schema, [])
    return fresh_database, schema


@pytest_asyncio.fixture
async def pool(database: tuple[str, str]) -> AsyncIterator[asyncpg.Pool]:
    dsn, schema = database
    pool = await db.create_pool(dsn, schema, max_size=5)
    try:
        yield pool
    finally:
        await pool.close()


LoopStarter = Callable[..., Awaitable[RunningLoop]]


@pytest_asyncio.fixture
async def start_loop(
    kit: Kit, pool: asyncpg.Pool, database: tuple[str, str], unique: str
) -> AsyncIterator[LoopStarter]:
    """Starts ConsumerLoops (by default on the test's pool and schema); stops them at the end.

    Depends on `pool`, so the loops stop before the pool closes.
    """
    running: list[RunningLoop] = []

    async def start(
        routes: Mapping[str, Handler],
        *,
        group: str | None = None,
        on_pool: asyncpg.Pool | None = None,
        schema: str | None = None,
        max_attempts: int = 3,
        topics: Sequence[str] | None = None,
        dead_letter_handler: RawHandler | None = None,
        batch_handler: BatchHandler | None = None,
        batch_types: Sequence[str] = (),
        idle_polling: IdlePolling | None = None,
        fetch_min_bytes: int = 1,
    ) -> RunningLoop:
        consumer = kafka.make_consumer(
            group or f"rt-{unique}",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            session_timeout_ms=SESSION_TIMEOUT_MS,
            fetch_min_bytes=fetch_min_bytes,
        )
        producer = kafka.make_producer()
        await consumer.start()
        await producer.start()
        loop = ConsumerLoop(
            consumer=consumer,
            producer=producer,
            pool=on_pool or pool,
            schema=schema or database[1],
            group=group or f"rt-{unique}",
            source=SOURCE,
            routes=routes,
            max_attempts=max_attempts,
            topics=topics,
            dead_letter_handler=dead_letter_handler,
            batch_handler=batch_handler,
            batch_types=batch_types,
            idle_polling=idle_polling,
        )
        task = asyncio.create_task(loop.run())
        handle = RunningLoop(loop, consumer, producer, task)
        running.append(handle)
        return handle

    try:
        yield start
    finally:
        for handle in running:
            with contextlib.suppress(Exception):
                await handle.stop()
