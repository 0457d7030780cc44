"""How PartitionHandler judges a handler's errors, with hand-written fakes for the pool and
the dead-letter producer: our own infrastructure failing is waited out, never counted."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from accord.events import Envelope, SagaCompleted, new_event, to_kafka
from accord.runtime.handling import ConsumerStats, PartitionHandler
from accord.runtime.routes import HandlerContext

GROUP = "accord-test"


class FakeConnection:
    """Answers the inbox insert (a fresh event) and the outbox writes."""

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        yield

    async def fetchval(self, query: str, *args: Any) -> Any:
        return True

    async def execute(self, query: str, *args: Any) -> str:
        return ""

    async def executemany(self, query: str, args: Any) -> None:
        return None


class FakePool:
    def __init__(self) -> None:
        self.connection = FakeConnection()

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[FakeConnection]:
        yield self.connection

    async def fetchval(self, query: str, *args: Any) -> Any:
        return None

    async def execute(self, query: str, *args: Any) -> str:
        return ""


class FakeProducer:
    """Keeps what would have gone to a DLQ."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None]] = []

    async def send_and_wait(self, topic: str, value: bytes | None = None, **_: Any) -> None:
        self.sent.append((topic, value))


class FailsThenWorks:
    """A handler whose first calls raise the given errors."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self, envelope: Envelope, ctx: HandlerContext) -> Sequence[Envelope]:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return []


def record_of(envelope: Envelope, offset: int = 0) -> ConsumerRecord[bytes, bytes]:
    kafka = to_kafka(envelope)
    return ConsumerRecord(
        kafka.topic, 0, offset, 0, 0, kafka.key, kafka.value, None,
        len(kafka.key), len(kafka.value), list(kafka.headers),
    )  # fmt: skip


def event() -> Envelope:
    data = SagaCompleted(saga_id="saga-1", saga_type="joiner", subject_id="u-1", duration_ms=1)
    return new_event(data, source="test/runtime")


def partition_handler(
    handler: FailsThenWorks, producer: FakeProducer, *, max_attempts: int
) -> PartitionHandler:
    return PartitionHandler(
        producer=cast(AIOKafkaProducer, producer),
        pool=cast(asyncpg.Pool, FakePool()),
        schema="test",
        group=GROUP,
        source="test/runtime",
        routes={"saga.completed": handler},
        max_attempts=max_attempts,
        dead_letter_handler=None,
        batch_handler=None,
        stats=ConsumerStats(),
        stopping=asyncio.Event(),
    )


@pytest.mark.parametrize(
    "error",
    [
        # Seen on commit while PostgreSQL restarted.
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator"),
        asyncpg.exceptions.CrashShutdownError("terminating connection: crash of another"),
        asyncpg.InternalClientError("cannot switch to state 12; another operation is running"),
        asyncpg.exceptions.ProtocolError("unexpected message"),
    ],
    ids=type,
)
async def test_a_database_going_away_is_retried_uncounted_and_never_dead_lettered(
    error: BaseException,
) -> None:
    # One attempt allowed: a single counted failure would dead-letter the event.
    handler = FailsThenWorks(error, error)
    producer = FakeProducer()
    handling = partition_handler(handler, producer, max_attempts=1)
    envelope = event()

    last, _, _ = await handling.handle([record_of(envelope)])

    assert producer.sent == []
    assert handler.calls == 3
    assert last == 0
    assert handling.stats.handled == 1
    assert handling.stats.dead_lettered == 0


async def test_a_handler_bug_still_counts_and_dead_letters() -> None:
    handler = FailsThenWorks(KeyError("no such column"))
    producer = FakeProducer()
    handling = partition_handler(handler, producer, max_attempts=1)

    await handling.handle([record_of(event())])

    assert [topic for topic, _ in producer.sent] == ["saga.completed.dlq"]
    assert handler.calls == 1
