"""What the runtime asks of its Kafka clients: the part of aiokafka's AIOKafkaConsumer the
consumer loop uses, and the part of AIOKafkaProducer that dead letters and the outbox relay
use.

aiokafka's clients have these methods, and so have the in-memory ones of
accord.runtime.memory, which behave as aiokafka's do (offsets committed are the next offset
to read, seek and pause need an assigned partition, pause takes effect at the next fetch).
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from aiokafka import TopicPartition

from accord.runtime.records import Record

#: A record's headers, as the runtime sends them.
Headers = Sequence[tuple[str, bytes]]


class Producer(Protocol):
    """Sends records (dead letters, the outbox's rows)."""

    async def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, *, headers: Headers
    ) -> Awaitable[Any]:
        """Queue a record; the awaitable resolves (to its RecordMetadata) once acked."""
        ...

    async def send_and_wait(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, *, headers: Headers
    ) -> Any:
        """Send a record and wait for the ack; its RecordMetadata."""
        ...


class Consumer(Protocol):
    """A member of a consumer group that commits offsets by hand."""

    async def start(self) -> None: ...

    async def stop(self) -> None:
        """Leave the group; a stopped consumer fetches nothing more."""
        ...

    def subscribe(
        self, topics: Iterable[str] = (), pattern: Any = None, listener: Any = None
    ) -> None:
        """Join the group for these topics; `listener` hears of revoked and assigned partitions."""
        ...

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[TopicPartition, Sequence[Record]]:
        """The records fetched since the last call, by partition (none of paused ones)."""
        ...

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Fetch this partition from `offset` next."""
        ...

    def pause(self, *partitions: TopicPartition) -> None: ...

    def resume(self, *partitions: TopicPartition) -> None: ...

    def assignment(self) -> set[TopicPartition]:
        """The partitions the group assigned this member."""
        ...

    async def commit(self, offsets: Mapping[TopicPartition, Any] | None = None) -> None:
        """Commit offsets (the next offset to read, or (offset, metadata)) for the group."""
        ...
