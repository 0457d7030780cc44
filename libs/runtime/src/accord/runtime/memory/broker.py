"""An in-memory Kafka: topics of partitions, consumer groups with committed offsets, and the
consumer and producer the runtime uses (accord.runtime.transport), behaving as aiokafka's.

- Topics are made on first use (produce or subscribe) with the broker's partition count,
  or up front with `create_topic`. A keyed record goes to the partition Kafka's default
  partitioner picks (murmur2 of the key); a record with no key to the next partition in turn.
- A group's members share its topics' partitions (round robin, by member). A member that
  joins or leaves changes the group's generation; every member then revokes its partitions
  (its rebalance listener hears of it first, and may still commit them), and takes its new
  ones at its next `getmany`, reading each from the group's committed offset (the beginning
  when there is none: auto_offset_reset="earliest").
- Offsets committed are the next offset to read, as in Kafka. `seek`, `pause`, `resume` and
  `commit` need an assigned partition (IllegalStateError otherwise); a paused partition
  returns nothing until resumed; a commit by a member whose generation has passed fails
  with CommitFailedError.
- `send` appends at once and returns a resolved future; `fail_sends` makes the next sends
  raise (a broker that does not acknowledge).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import (
    CommitFailedError,
    ConsumerStoppedError,
    IllegalOperation,
    IllegalStateError,
    KafkaError,
)
from aiokafka.partitioner import murmur2
from aiokafka.structs import RecordMetadata
from aiokafka.util import commit_structure_validate


@dataclass(frozen=True)
class MemoryRecord:
    """A record of an in-memory partition (an accord.runtime.records.Record)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_type: int = 0


@dataclass
class _Group:
    members: list[MemoryConsumer] = field(default_factory=list)
    generation: int = 0
    assignments: dict[int, set[TopicPartition]] = field(default_factory=dict)
    committed: dict[TopicPartition, int] = field(default_factory=dict)


class MemoryBroker:
    """Topics, partitions and consumer groups, in this process and event loop."""

    def __init__(self, *, partitions: int = 3) -> None:
        self.partitions = partitions
        """How many partitions a topic made on first use has."""
        self._logs: dict[str, list[list[MemoryRecord]]] = {}
        self._groups: dict[str, _Group] = {}
        self._arrived = asyncio.Event()
        self._next_member = itertools.count(1)
        self._unkeyed = itertools.count()

    # Topics and records

    def create_topic(self, topic: str, partitions: int | None = None) -> None:
        """Make a topic (with `partitions`, else the broker's count) unless it exists."""
        if topic not in self._logs:
            self._logs[topic] = [[] for _ in range(partitions or self.partitions)]
            self._rebalance_subscribers(topic)

    def partitions_for(self, topic: str) -> set[int]:
        """The topic's partition ids (made on first use)."""
        self.create_topic(topic)
        return set(range(len(self._logs[topic])))

    def topics(self) -> set[str]:
        return set(self._logs)

    def append(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        *,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Iterable[tuple[str, bytes]] = (),
    ) -> RecordMetadata:
        """Write a record at the end of its partition; its metadata."""
        self.create_topic(topic)
        logs = self._logs[topic]
        if partition is None:
            partition = self._partition(key, len(logs))
        if not 0 <= partition < len(logs):
            raise KafkaError(f"{topic} has no partition {partition}")
        log = logs[partition]
        timestamp = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
        record = MemoryRecord(
            topic, partition, len(log), timestamp, key, value, tuple(headers or ())
        )
        log.append(record)
        self._wake()
        tp = TopicPartition(topic, partition)
        return RecordMetadata(topic, partition, tp, record.offset, timestamp, 0, None)

    def _partition(self, key: bytes | None, count: int) -> int:
        if key is None:
            return next(self._unkeyed) % count
        # Kafka's default partitioner (and aiokafka's), so keys land where they would.
        hashed: int = murmur2(key)
        return (hashed & 0x7FFFFFFF) % count

    def records(self, topic: str, partition: int | None = None) -> list[MemoryRecord]:
        """A topic's records (of one partition, or of all of them, partition by partition)."""
        logs = self._logs.get(topic, [])
        if partition is not None:
            return list(logs[partition]) if partition < len(logs) else []
        return [record for log in logs for record in log]

    def end_offset(self, tp: TopicPartition) -> int:
        """The offset the partition's next record will get."""
        logs = self._logs.get(tp.topic, [])
        return len(logs[tp.partition]) if tp.partition < len(logs) else 0

    def read(self, tp: TopicPartition, offset: int, limit: int) -> list[MemoryRecord]:
        logs = self._logs.get(tp.topic, [])
        if tp.partition >= len(logs):
            return []
        return logs[tp.partition][offset : offset + limit]

    def _wake(self) -> None:
        """Wake fetches waiting for records (or for a rebalance)."""
        self._arrived.set()
        self._arrived = asyncio.Event()

    async def wait(self, timeout_s: float) -> None:
        """Until something arrives or `timeout_s` passes."""
        if timeout_s <= 0:
            return
        arrived = self._arrived
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrived.wait(), timeout_s)

    # Consumer groups

    def committed(self, group: str, tp: TopicPartition) -> int | None:
        """The group's committed offset of a partition (the next to read); None if none."""
        state = self._groups.get(group)
        return None if state is None else state.committed.get(tp)

    def lag(self, group: str, topics: Iterable[str]) -> int:
        """How many records of these topics the group has not committed yet."""
        total = 0
        for topic in topics:
            for partition in range(len(self._logs.get(topic, []))):
                tp = TopicPartition(topic, partition)
                total += self.end_offset(tp) - (self.committed(group, tp) or 0)
        return total

    def _join(self, group: str, member: MemoryConsumer) -> None:
        state = self._groups.setdefault(group, _Group())
        if member not in state.members:
            state.members.append(member)
        for topic in member.subscription:
            self.create_topic(topic)
        self._rebalance(state)

    def _leave(self, group: str, member: MemoryConsumer) -> None:
        state = self._groups.get(group)
        if state is not None and member in state.members:
            state.members.remove(member)
            self._rebalance(state)

    def _rebalance_subscribers(self, topic: str) -> None:
        for state in self._groups.values():
            if any(topic in m.subscription for m in state.members):
                self._rebalance(state)

    def _rebalance(self, state: _Group) -> None:
        state.generation += 1
        state.assignments = {m.member_id: set() for m in state.members}
        topics = sorted({t for m in state.members for t in m.subscription})
        for topic in topics:
            takers = [m for m in state.members if topic in m.subscription]
            for partition in range(len(self._logs[topic])):
                member = takers[partition % len(takers)]
                state.assignments[member.member_id].add(TopicPartition(topic, partition))
        self._wake()

    def _group(self, group: str) -> _Group:
        return self._groups.setdefault(group, _Group())

    def consumer(self, group_id: str | None = None, **options: Any) -> MemoryConsumer:
        """A consumer of this broker (as kafka.make_consumer's: commits by hand)."""
        return MemoryConsumer(self, group_id=group_id, **options)

    def producer(self) -> MemoryProducer:
        """A producer to this broker."""
        return MemoryProducer(self)


class MemoryConsumer:
    """The part of AIOKafkaConsumer the runtime uses, over a MemoryBroker."""

    def __init__(
        self, broker: MemoryBroker, *, group_id: str | None = None, max_poll_records: int = 500
    ) -> None:
        self._broker = broker
        self.group_id = group_id
        self.member_id = next(broker._next_member)
        self.subscription: tuple[str, ...] = ()
        self._listener: Any = None
        self._generation = 0
        self._assigned: set[TopicPartition] = set()
        self._positions: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()
        self._max_poll_records = max_poll_records
        self._revoking = False
        self._closed = False

    async def start(self) -> None:
        self._closed = False

    async def stop(self) -> None:
        """Leave the group (the others take its partitions at their next fetch)."""
        if self._closed:
            return
        self._closed = True
        if self.group_id is not None and self.subscription:
            self._broker._leave(self.group_id, self)
        self._assigned = set()

    def subscribe(
        self, topics: Iterable[str] = (), pattern: Any = None, listener: Any = None
    ) -> None:
        topics = tuple(topics)
        if not topics or pattern is not None:
            raise TypeError("the in-memory consumer takes a list of topics, no pattern")
        if self.group_id is None:
            raise IllegalOperation("subscribe needs a group_id here")
        self.subscription = topics
        self._listener = listener
        self._broker._join(self.group_id, self)

    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    def _check_assigned(self, tp: TopicPartition) -> None:
        if not isinstance(tp, TopicPartition):
            raise TypeError("partitions must be TopicPartition namedtuples")
        if tp not in self._assigned:
            raise IllegalStateError(f"No current assignment for partition {tp}")

    def seek(self, partition: TopicPartition, offset: int) -> None:
        if not isinstance(offset, int) or offset < 0:
            raise ValueError("Offset must be a positive integer")
        self._check_assigned(partition)
        self._positions[partition] = offset

    def pause(self, *partitions: TopicPartition) -> None:
        for tp in partitions:
            self._check_assigned(tp)
            self._paused.add(tp)

    def resume(self, *partitions: TopicPartition) -> None:
        for tp in partitions:
            self._check_assigned(tp)
            self._paused.discard(tp)

    async def position(self, partition: TopicPartition) -> int:
        self._check_assigned(partition)
        return self._positions[partition]

    async def committed(self, partition: TopicPartition) -> int | None:
        if self.group_id is None:
            raise IllegalOperation("Requires group_id")
        return self._broker.committed(self.group_id, partition)

    async def commit(self, offsets: Mapping[TopicPartition, Any] | None = None) -> None:
        if self.group_id is None:
            raise IllegalOperation("Requires group_id")
        if not self.subscription:
            raise IllegalStateError("Not subscribed to any topics")
        if offsets is None:
            chosen = {tp: self._positions[tp] for tp in self._assigned}
        else:
            validated = commit_structure_validate(dict(offsets))
            for tp in validated:
                if tp not in self._assigned:
                    raise IllegalStateError(f"Partition {tp} is not assigned")
            chosen = {tp: entry.offset for tp, entry in validated.items()}
        group = self._broker._group(self.group_id)
        if self._generation != group.generation and not self._revoking:
            raise CommitFailedError("the group rebalanced; the partitions may be another's")
        group.committed.update(chosen)

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[MemoryRecord]]:
        if self._closed:
            raise ConsumerStoppedError()
        if max_records is not None and (not isinstance(max_records, int) or max_records < 1):
            raise ValueError("`max_records` must be a positive Integer")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000
        while True:
            await self._sync()
            batch = self._fetch(partitions, max_records or self._max_poll_records)
            remaining = deadline - loop.time()
            if batch or remaining <= 0 or self._closed:
                return batch
            await self._broker.wait(remaining)

    def _fetch(
        self, partitions: Sequence[TopicPartition], limit: int
    ) -> dict[TopicPartition, list[MemoryRecord]]:
        batch: dict[TopicPartition, list[MemoryRecord]] = {}
        for tp in sorted(partitions or self._assigned):
            if limit <= 0:
                break
            if tp not in self._assigned or tp in self._paused:
                continue
            records = self._broker.read(tp, self._positions[tp], limit)
            if records:
                batch[tp] = records
                self._positions[tp] = records[-1].offset + 1
                limit -= len(records)
        return batch

    async def _sync(self) -> None:
        """Take the group's current assignment, if it changed (an eager rebalance)."""
        if self.group_id is None or not self.subscription:
            return
        group = self._broker._group(self.group_id)
        if self._generation == group.generation:
            return
        if self._generation:
            self._revoking = True
            try:
                await _call(self._listener, "on_partitions_revoked", sorted(self._assigned))
            finally:
                self._revoking = False
        # The listener may have waited: take the assignment of the latest generation.
        generation = group.generation
        self._generation = generation
        self._assigned = set(group.assignments.get(self.member_id, set()))
        self._paused = set()
        self._positions = {
            tp: self._broker.committed(self.group_id, tp) or 0 for tp in self._assigned
        }
        await _call(self._listener, "on_partitions_assigned", sorted(self._assigned))


async def _call(listener: Any, name: str, partitions: list[TopicPartition]) -> None:
    if listener is None:
        return
    result = getattr(listener, name)(partitions)
    if inspect.isawaitable(result):
        await result


class MemoryProducer:
    """The part of AIOKafkaProducer the runtime uses, over a MemoryBroker."""

    def __init__(self, broker: MemoryBroker) -> None:
        self._broker = broker
        self._failures: list[BaseException] = []
        self.sent = 0

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def flush(self) -> None:
        return None

    def fail_sends(self, *errors: BaseException) -> None:
        """Make the next sends raise these errors, one each (a broker that does not ack)."""
        self._failures.extend(errors)

    async def partitions_for(self, topic: str) -> set[int]:
        return self._broker.partitions_for(topic)

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[RecordMetadata]:
        if self._failures:
            raise self._failures.pop(0)
        metadata = self._broker.append(
            topic,
            value,
            key,
            partition=partition,
            timestamp_ms=timestamp_ms,
            headers=headers or (),
        )
        self.sent += 1
        future: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        future.set_result(metadata)
        return future

    async def send_and_wait(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, **options: Any
    ) -> RecordMetadata:
        """send(), then wait for the ack (options: partition, timestamp_ms, headers)."""
        return await (await self.send(topic, value, key, **options))
