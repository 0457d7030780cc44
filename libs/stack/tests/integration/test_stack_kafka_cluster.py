"""Apache Kafka as a three-node KRaft cluster: leadership moves when a broker dies (issue 19)."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from accord.events.topic_layout import KUBERNETES
from accord.stack.kafka_cluster import KafkaCluster
from accord.stack.testing import require_apache_kafka

pytestmark = pytest.mark.integration

TOPIC = "stack.cluster.check"


async def write(producer: AIOKafkaProducer, values: list[bytes]) -> None:
    """Send each value, keyed by itself (spread over the partitions), and wait for the acks."""
    sent = [await producer.send(TOPIC, value, key=value) for value in values]
    await asyncio.gather(*sent)


async def read_all(bootstrap: str, expected: int) -> list[bytes]:
    """Every value of the topic from the beginning, once `expected` have arrived."""
    consumer = AIOKafkaConsumer(
        TOPIC, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        async with asyncio.timeout(60):
            while len(values) < expected:
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    values += [r.value for r in records if r.value is not None]
            # Anything beyond what we wrote (a duplicate) would arrive with the rest.
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                values += [r.value for r in records if r.value is not None]
    finally:
        await consumer.stop()
    return values


async def test_three_nodes_keep_taking_acks_all_writes_while_a_leader_dies_and_returns(
    tmp_path: Path,
) -> None:
    require_apache_kafka()
    cluster = KafkaCluster(tmp_path / "data", log_dir=tmp_path)
    started = time.monotonic()
    await cluster.start()
    print(f"\ncluster ready in {time.monotonic() - started:.1f} s")
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
        await admin.start()
        try:
            await admin.create_topics(
                [
                    NewTopic(
                        TOPIC,
                        num_partitions=KUBERNETES.partitions,
                        replication_factor=KUBERNETES.replicas,
                        topic_configs=KUBERNETES.config(TOPIC),
                    )
                ]
            )
        finally:
            await admin.close()
        await cluster.wait_in_sync([TOPIC])
        led = await cluster.leaders([TOPIC])
        assert sorted(len(partitions) for partitions in led.values()) == [2, 2, 2]

        producer = AIOKafkaProducer(
            bootstrap_servers=cluster.bootstrap_servers,
            enable_idempotence=True,
            acks="all",
            request_timeout_ms=40_000,
        )
        await producer.start()
        try:
            written = [f"v{i}".encode() for i in range(300)]
            await write(producer, written[:100])

            victim = max(led, key=lambda node: len(led[node]))
            assert await cluster.kill(victim) == -signal.SIGKILL
            seconds = await cluster.wait_not_leading(victim, [TOPIC])
            print(f"leadership left the killed node {victim} {seconds:.1f} s after")
            await write(producer, written[100:200])  # two replicas: min.insync.replicas holds

            await cluster.start_node(victim)
            seconds = await cluster.wait_in_sync([TOPIC])
            print(f"node {victim} back in every ISR {seconds:.1f} s after its restart")
            other = next(node for node in cluster.nodes if node != victim)
            await cluster.stop_node(other)  # a controlled shutdown hands leadership over
            assert (await cluster.leaders([TOPIC]))[other] == []
            await write(producer, written[200:])
            await cluster.start_node(other)
        finally:
            await producer.stop()
        values = await read_all(cluster.bootstrap_servers, len(written))
    finally:
        await cluster.stop()
    assert sorted(values) == sorted(written), "a write lost or written twice"
