"""Apache Kafka as the stack runs it: one KRaft node from deploy/kafka/lib (issue 19)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from accord.stack.kafka import KafkaBroker, kafka_uuid
from accord.stack.testing import require_apache_kafka

pytestmark = pytest.mark.integration


async def test_a_node_starts_takes_an_idempotent_producer_and_keeps_its_data_across_a_restart(
    tmp_path: Path,
) -> None:
    require_apache_kafka()
    broker = KafkaBroker(tmp_path / "kafka", log_dir=tmp_path)
    await broker.start()
    try:
        # Tansu refuses InitProducerId; Apache Kafka gives idempotent, acks=all producers.
        producer = AIOKafkaProducer(
            bootstrap_servers=broker.bootstrap_servers, enable_idempotence=True, acks="all"
        )
        await producer.start()
        try:
            await producer.send_and_wait("stack.check", b"kept", key=b"k")
        finally:
            await producer.stop()
    finally:
        await broker.stop()
    assert broker.process is not None
    assert broker.process.returncode is not None

    again = KafkaBroker(tmp_path / "kafka", port=broker.port, log_dir=tmp_path)
    await again.start()
    try:
        consumer = AIOKafkaConsumer(
            "stack.check",
            bootstrap_servers=again.bootstrap_servers,
            group_id="stack-check",
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            record = await consumer.getone()
        finally:
            await consumer.stop()
    finally:
        await again.stop()
    assert (record.key, record.value) == (b"k", b"kept")


def test_no_kafka_id_starts_with_a_dash() -> None:
    # The storage tool took such a cluster id for an option: 1 in 64 formats failed.
    ids = [kafka_uuid() for _ in range(5000)]
    assert not [i for i in ids if i.startswith("-")]
    assert len(set(ids)) == len(ids)
    assert {len(i) for i in ids} == {22}
