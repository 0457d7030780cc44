"""A service's consume -> handle -> outbox path in memory, for unit tests.

`InMemoryService` runs the runtime's real ConsumerLoop and OutboxRelay over an in-memory
broker and storage (accord.runtime.memory): the same inbox, grouped transactions, retries,
dead letters and outbox as in production, with no Kafka and no PostgreSQL::

    async with InMemoryService(routes, name="auditor") as service:
        await service.publish(event)
        await service.settle()  # consumed, handled, committed, relayed
        assert service.events("saga.failed") == [...]
        assert service.dead_letters("saga.completed") == []

Routes are a service's own (a mapping of event type to handler or Effect). Handlers get a
HandlerContext whose `conn` is no database (accord.runtime.memory.NO_DATABASE unless `conn`
is given): route with `accord.runtime.routes.on(Model, handle, ports)` and build the ports
of a test from in-memory adapters, ignoring the connection. Events the handlers return go
through the outbox to their topics; the service consumes the topics of its routes (and their
DLQs with a dead-letter or batch handler), so events it emits to itself come back to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from aiokafka.structs import RecordMetadata
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from accord.events import REGISTRY, Envelope, from_kafka, to_kafka
from accord.events.topics import dlq_for, is_dlq
from accord.runtime.consumer import ConsumerLoop
from accord.runtime.dlq import is_resolution
from accord.runtime.handling import ConsumerStats
from accord.runtime.instrumentation import instrument_libraries, uninstrument_libraries
from accord.runtime.memory import NO_DATABASE, MemoryBroker, MemoryRecord, MemoryStorage
from accord.runtime.metrics import RuntimeMetrics
from accord.runtime.outbox import OutboxRelay
from accord.runtime.routes import BatchHandler, RawHandler, Route

__all__ = ["InMemoryService"]


class InMemoryService:
    """One service's consumer loop and outbox relay on an in-memory broker and storage."""

    def __init__(
        self,
        routes: Mapping[str, Route] | None = None,
        *,
        name: str = "test",
        topics: Sequence[str] | None = None,
        max_attempts: int = 3,
        dead_letter_handler: RawHandler | None = None,
        batch_handler: BatchHandler | None = None,
        batch_types: Collection[str] = (),
        conn: object = NO_DATABASE,
        broker: MemoryBroker | None = None,
        storage: MemoryStorage | None = None,
        relay: bool = True,
    ) -> None:
        """`topics` default to those of the routed (and batch) types, with their DLQs when
        there is a dead-letter or batch handler, as accord.runtime.service subscribes.

        Replicas of a service share a `broker` and a `storage` (its database); one of them
        relays the outbox (`relay=False` for the others, as the advisory lock would have it).
        """
        self.routes = dict(routes or {})
        self.group = f"accord-{name}"
        self.source = f"accord/{name}"
        self.broker = broker or MemoryBroker()
        self.storage = storage or MemoryStorage(conn)
        self.producer = self.broker.producer()
        self.topics = list(topics) if topics is not None else self._topics(batch_types)
        if topics is None and (dead_letter_handler is not None or batch_handler is not None):
            self.topics += [dlq_for(t) for t in self.topics]
        self._options: dict[str, Any] = {
            "max_attempts": max_attempts,
            "dead_letter_handler": dead_letter_handler,
            "batch_handler": batch_handler,
            "batch_types": batch_types,
        }
        self.loop: ConsumerLoop | None = None
        self._relays = relay
        self.metrics = RuntimeMetrics()
        """The service's metrics (accord.runtime.metrics), kept across restarts."""
        self.relay = self._relay()
        self._tasks: list[asyncio.Task[None]] = []

    def _topics(self, batch_types: Collection[str]) -> list[str]:
        types = dict.fromkeys([*self.routes, *batch_types])
        return list(dict.fromkeys(REGISTRY.spec(t).topic for t in types))

    @property
    def stats(self) -> ConsumerStats:
        """The running consumer loop's counters."""
        assert self.loop is not None, "the service is not running"
        return self.loop.stats

    async def start(self) -> None:
        """Start the relay and a consumer loop (a new group member, reading from the
        group's committed offsets), unless there is nothing to consume."""
        self._tasks = []
        if self._relays:
            self._tasks.append(asyncio.create_task(self.relay.run(), name="memory relay"))
        if not self.topics:
            return
        consumer = self.broker.consumer(self.group)
        self.loop = ConsumerLoop(
            consumer=consumer,
            producer=self.producer,
            storage=self.storage,
            group=self.group,
            source=self.source,
            routes=self.routes,
            topics=self.topics,
            metrics=self.metrics,
            **self._options,
        )
        self._tasks.append(asyncio.create_task(self.loop.serve(), name="memory consumer"))

    async def stop(self) -> None:
        """Stop the loop (records in flight finish and commit) and the relay; re-raise a
        crash of either."""
        if self.loop is not None:
            self.loop.stop()
        await self.relay.stop()
        tasks, self._tasks = self._tasks, []
        if tasks:
            await asyncio.gather(*tasks)
        self.relay = self._relay()

    def _relay(self) -> OutboxRelay:
        return OutboxRelay(
            "", "", self.producer, poll_interval=0.05, store=self.storage, metrics=self.metrics
        )

    async def restart(self) -> None:
        """Stop and start again: redelivery of whatever was not committed."""
        await self.stop()
        await self.start()

    async def __aenter__(self) -> InMemoryService:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def publish(self, envelope: Envelope, *, partition: int | None = None) -> RecordMetadata:
        """Send an event to its topic, as another service's relay would."""
        record = to_kafka(envelope)
        return await self.producer.send_and_wait(
            record.topic,
            value=record.value,
            key=record.key,
            headers=list(record.headers),
            partition=partition,
        )

    async def settle(self, timeout_s: float = 5.0) -> None:
        """Wait until every record of the consumed topics is handled and committed and the
        outbox is empty (what the handlers emitted is on its topics)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            self._raise_crash()
            lag = self.broker.lag(self.group, self.topics)
            if lag == 0 and not self.storage.outbox:
                return
            if loop.time() > deadline:
                raise AssertionError(
                    f"not settled after {timeout_s} s: {lag} records uncommitted,"
                    f" {len(self.storage.outbox)} outbox rows"
                )
            await asyncio.sleep(0.01)

    def _raise_crash(self) -> None:
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise AssertionError(f"{task.get_name()} crashed") from task.exception()

    def records(self, topic: str) -> list[MemoryRecord]:
        """Every record of a topic, partition by partition."""
        return self.broker.records(topic)

    def events(self, event_type: str) -> list[Envelope]:
        """The events of a type on its topic (published or emitted), decoded."""
        topic = REGISTRY.spec(event_type).topic
        events = [from_kafka(r.topic, r.key, r.value, list(r.headers)) for r in self.records(topic)]
        return [e for e in events if e.type == event_type]

    def dead_letters(self, topic: str) -> list[MemoryRecord]:
        """The dead letters of a topic (not the DLQ's resolution records)."""
        dlq = topic if is_dlq(topic) else dlq_for(topic)
        return [r for r in self.records(dlq) if not is_resolution(r.headers)]

    def resolutions(self, topic: str) -> list[MemoryRecord]:
        """The resolution records in a topic's DLQ (accord.runtime.dlq_resolution)."""
        dlq = topic if is_dlq(topic) else dlq_for(topic)
        return [r for r in self.records(dlq) if is_resolution(r.headers)]


@contextmanager
def recorded_spans() -> Iterator[InMemorySpanExporter]:
    """Every span ended inside, with asyncpg and httpx instrumented as setup_tracing does
    when spans go somewhere (integration tests). The process's tracer provider can be set
    only once, so the exporter joins the one there is, if any."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        trace.set_tracer_provider(TracerProvider())
        provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument_libraries()
    try:
        yield exporter
    finally:
        uninstrument_libraries()
        exporter.shutdown()
