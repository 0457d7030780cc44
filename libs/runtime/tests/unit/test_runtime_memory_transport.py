"""The in-memory broker behaves as aiokafka's clients do for the calls the runtime makes:
key partitioning, committed offsets (the next to read) per group, pause and seek, and group
rebalances with their listener."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import OffsetAndMetadata

from accord.runtime.memory import MemoryBroker, MemoryConsumer

TOPIC = "memory.test"


class Listener:
    """Notes the rebalance calls, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[TopicPartition]]] = []

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.calls.append(("revoked", revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.calls.append(("assigned", assigned))


async def fill(broker: MemoryBroker, count: int, partition: int = 0) -> None:
    producer = broker.producer()
    for i in range(count):
        await producer.send_and_wait(TOPIC, value=f"v{i}".encode(), partition=partition)


def member(broker: MemoryBroker, group: str = "g", **options: Any) -> MemoryConsumer:
    consumer = broker.consumer(group, **options)
    consumer.subscribe([TOPIC], listener=Listener())
    return consumer


async def test_a_key_goes_to_the_partition_kafkas_default_partitioner_picks() -> None:
    broker = MemoryBroker(partitions=6)
    producer = broker.producer()
    keys = [f"user-{i}".encode() for i in range(20)]

    placed = [(await producer.send_and_wait(TOPIC, value=b"", key=key)).partition for key in keys]

    partitioner = DefaultPartitioner()
    assert placed == [partitioner(key, list(range(6)), list(range(6))) for key in keys]
    assert len(set(placed)) > 1


async def test_records_of_a_partition_come_in_order_with_their_offsets() -> None:
    broker = MemoryBroker(partitions=1)
    await fill(broker, 3)
    consumer = member(broker)

    batch = await consumer.getmany(timeout_ms=0)

    records = batch[TopicPartition(TOPIC, 0)]
    assert [(r.offset, r.value) for r in records] == [(0, b"v0"), (1, b"v1"), (2, b"v2")]
    assert await consumer.getmany(timeout_ms=0) == {}


async def test_max_records_limits_a_fetch_and_the_rest_comes_next() -> None:
    broker = MemoryBroker(partitions=1)
    await fill(broker, 5)
    consumer = member(broker)

    first = await consumer.getmany(timeout_ms=0, max_records=2)
    rest = await consumer.getmany(timeout_ms=0)

    tp = TopicPartition(TOPIC, 0)
    assert [r.offset for r in first[tp]] == [0, 1]
    assert [r.offset for r in rest[tp]] == [2, 3, 4]


async def test_a_committed_offset_is_where_the_groups_next_member_starts() -> None:
    broker = MemoryBroker(partitions=1)
    await fill(broker, 4)
    tp = TopicPartition(TOPIC, 0)
    first = member(broker)
    await first.getmany(timeout_ms=0)
    await first.commit({tp: OffsetAndMetadata(2, "")})
    await first.stop()

    second = member(broker)
    other_group = member(broker, group="other")

    assert await second.committed(tp) == 2
    assert broker.committed("g", tp) == 2
    assert [r.offset for r in (await second.getmany(timeout_ms=0))[tp]] == [2, 3]
    assert [r.offset for r in (await other_group.getmany(timeout_ms=0))[tp]] == [0, 1, 2, 3]


async def test_commit_takes_a_plain_offset_and_refuses_an_unassigned_partition() -> None:
    broker = MemoryBroker(partitions=1)
    consumer = member(broker)
    await consumer.getmany(timeout_ms=0)

    await consumer.commit({TopicPartition(TOPIC, 0): 5})

    assert broker.committed("g", TopicPartition(TOPIC, 0)) == 5
    with pytest.raises(IllegalStateError):
        await consumer.commit({TopicPartition("elsewhere", 0): 1})


async def test_a_paused_partition_gives_nothing_until_resumed() -> None:
    broker = MemoryBroker(partitions=2)
    await fill(broker, 2, partition=0)
    await fill(broker, 2, partition=1)
    consumer = member(broker)
    await consumer.getmany(timeout_ms=0, max_records=1)  # joins; reads p0's first record
    consumer.pause(TopicPartition(TOPIC, 0))

    while_paused = await consumer.getmany(timeout_ms=0)
    consumer.resume(TopicPartition(TOPIC, 0))
    resumed = await consumer.getmany(timeout_ms=0)

    assert list(while_paused) == [TopicPartition(TOPIC, 1)]
    assert [r.offset for r in resumed[TopicPartition(TOPIC, 0)]] == [1]
    assert consumer.paused() == set()


async def test_seek_fetches_again_from_the_offset_and_needs_the_partition() -> None:
    broker = MemoryBroker(partitions=1)
    await fill(broker, 3)
    consumer = member(broker)
    tp = TopicPartition(TOPIC, 0)
    await consumer.getmany(timeout_ms=0)

    consumer.seek(tp, 1)

    assert [r.offset for r in (await consumer.getmany(timeout_ms=0))[tp]] == [1, 2]
    with pytest.raises(IllegalStateError):
        consumer.seek(TopicPartition(TOPIC, 7), 0)
    with pytest.raises(IllegalStateError):
        consumer.pause(TopicPartition(TOPIC, 7))


async def test_a_waiting_fetch_returns_as_a_record_arrives() -> None:
    broker = MemoryBroker(partitions=1)
    consumer = member(broker)
    await consumer.getmany(timeout_ms=0)
    loop = asyncio.get_running_loop()
    started = loop.time()

    fetch = asyncio.create_task(consumer.getmany(timeout_ms=5000))
    await asyncio.sleep(0.01)
    await fill(broker, 1)
    batch = await asyncio.wait_for(fetch, 1)

    assert [r.value for r in batch[TopicPartition(TOPIC, 0)]] == [b"v0"]
    assert loop.time() - started < 1


async def test_members_share_the_partitions_and_hear_of_the_rebalance() -> None:
    broker = MemoryBroker(partitions=4)
    first = member(broker)
    await first.getmany(timeout_ms=0)
    listener = first._listener
    assert first.assignment() == {TopicPartition(TOPIC, p) for p in range(4)}

    second = member(broker)
    await first.getmany(timeout_ms=0)
    await second.getmany(timeout_ms=0)

    assert first.assignment().isdisjoint(second.assignment())
    assert first.assignment() | second.assignment() == {TopicPartition(TOPIC, p) for p in range(4)}
    assert [name for name, _ in listener.calls] == ["assigned", "revoked", "assigned"]
    assert listener.calls[1][1] == sorted(TopicPartition(TOPIC, p) for p in range(4))


async def test_a_member_may_commit_while_revoking_but_not_after_the_group_moved_on() -> None:
    broker = MemoryBroker(partitions=2)
    tp = TopicPartition(TOPIC, 0)

    class CommitsOnRevoke(Listener):
        async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
            await super().on_partitions_revoked(revoked)
            await consumer.commit({tp: 1})

    consumer = broker.consumer("g")
    consumer.subscribe([TOPIC], listener=CommitsOnRevoke())
    await consumer.getmany(timeout_ms=0)
    other = member(broker)

    await consumer.getmany(timeout_ms=0)  # revokes (committing), then takes its share
    assert broker.committed("g", tp) == 1

    await other.stop()  # the group moves on; `consumer` has not rejoined yet
    with pytest.raises(CommitFailedError):
        await consumer.commit({next(iter(consumer.assignment())): 2})


async def test_a_send_can_be_made_to_fail_like_an_unacknowledged_one() -> None:
    broker = MemoryBroker(partitions=1)
    producer = broker.producer()
    producer.fail_sends(KafkaError("not acknowledged"))

    with pytest.raises(KafkaError):
        await producer.send_and_wait(TOPIC, value=b"lost")
    await producer.send_and_wait(TOPIC, value=b"kept")

    assert [r.value for r in broker.records(TOPIC)] == [b"kept"]
