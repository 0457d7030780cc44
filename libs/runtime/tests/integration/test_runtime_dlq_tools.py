"""Dead letters can be listed with their reasons and replayed to their topic, once or twice."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from accord.runtime.dlq import dead_letter
from accord.runtime.dlq_tools import read_dead_letters, replay
from accord.runtime.kafka import ensure_topics

pytestmark = pytest.mark.integration


async def test_list_and_replay_dead_letters(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    topic = f"dlqtest.{uuid.uuid4().hex[:8]}"
    await ensure_topics([topic, f"{topic}.dlq"], partitions=2)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for n in range(3):
            record = ConsumerRecord(
                topic, 0, n, 0, 0, b"k", f"v{n}".encode(), None, 1, 2,
                [("ce_id", f"e-{n}".encode()), ("ce_type", b"user.created")],
            )  # fmt: skip
            await dead_letter(
                producer, record, reason=f"bad {n}", error_type="InvalidEvent", consumer="t"
            )
    finally:
        await producer.stop()

    letters = await read_dead_letters(topic)

    assert sorted(x.event_id or "" for x in letters) == ["e-0", "e-1", "e-2"]
    first = next(x for x in letters if x.event_id == "e-1")
    assert first.summary()["reason"] == "bad 1"
    assert first.original_topic == topic
    assert len(await read_dead_letters(f"{topic}.dlq", limit=2)) == 2

    assert await replay([first]) == 1
    replayed = await first_record(kafka_bootstrap, topic)
    assert replayed.value == b"v1"
    assert dict(replayed.headers) == {"ce_id": b"e-1", "ce_type": b"user.created"}


async def first_record(bootstrap: str, topic: str) -> ConsumerRecord[bytes, bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        return await asyncio.wait_for(consumer.getone(), 20)
    finally:
        await consumer.stop()


async def test_the_cli_explains_an_unreachable_broker_in_one_line() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "accord.events.cli",
        "dlq",
        "list",
        "provision.requested",
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    assert err.decode().strip().splitlines()[-1].startswith("accord: error: broker unavailable")
