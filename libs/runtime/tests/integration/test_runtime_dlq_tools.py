"""Dead letters can be listed with their reasons and replayed to their topic, once or twice;
an operator sees one entry per event, whatever the number of consumer groups that failed it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from accord.events.topic_layout import TopicSettings
from accord.runtime.dlq import dead_letter
from accord.runtime.dlq_tools import read_dead_events, read_dead_letters, replay
from accord.runtime.kafka import ensure_topics, partitions_of

pytestmark = pytest.mark.integration


async def test_list_and_replay_dead_letters(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    topic = f"dlqtest.{uuid.uuid4().hex[:8]}"
    await ensure_topics([topic, f"{topic}.dlq"], TopicSettings.for_replicas(2, 1))
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

    [event] = [x for x in await read_dead_events(topic) if x.event_id == "e-1"]
    assert await replay([event]) == 1
    replayed = await first_record(kafka_bootstrap, topic)
    assert replayed.value == b"v1"
    assert dict(replayed.headers) == {
        "ce_id": b"e-1",
        "ce_type": b"user.created",
        "accord-replay-for": b"t",
    }


async def first_record(bootstrap: str, topic: str) -> ConsumerRecord[bytes, bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        return await asyncio.wait_for(consumer.getone(), 20)
    finally:
        await consumer.stop()


async def accord(kafka_bootstrap: str, *args: str) -> tuple[int, str, str]:
    """Run the accord command; (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "accord.events.cli",
        *args,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_an_event_every_group_rejected_is_one_entry_and_one_replay_to_those_groups(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    topic = f"dlqtest.{uuid.uuid4().hex[:8]}"
    await ensure_topics([topic, f"{topic}.dlq"], TopicSettings.for_replicas(2, 1))
    groups = ["accord-orchestrator", "accord-authz", "accord-authn", "accord-auditor"]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for n, group in enumerate(["accord-orchestrator", *groups]):
            # The same malformed user.created, rejected by every group (one of them twice).
            record = ConsumerRecord(
                topic, 1, 7 + n, 0, 0, b"u-1", b"{}", None, 1, 2,
                [("ce_id", b"e-bad"), ("ce_type", b"user.created"), ("x-kept", b"1")],
            )  # fmt: skip
            await dead_letter(
                producer, record, reason="user_name missing", error_type="invalid", consumer=group
            )
        other = ConsumerRecord(
            topic, 0, 3, 0, 0, b"u-2", b"v", None, 1, 1, [("ce_id", b"e-other")]
        )  # fmt: skip
        await dead_letter(producer, other, reason="bug", error_type="x", consumer="accord-authz")
    finally:
        await producer.stop()

    code, out, err = await accord(kafka_bootstrap, "dlq", "list", topic, "--json")

    assert code == 0, err
    entries = {e["event_id"]: e for e in map(json.loads, out.splitlines())}
    assert len(out.splitlines()) == len(entries) == 2
    assert entries["e-bad"]["consumers"] == {
        "accord-auditor": 1,
        "accord-authn": 1,
        "accord-authz": 1,
        "accord-orchestrator": 2,
    }
    assert entries["e-bad"]["reason"] == "user_name missing"
    assert entries["e-other"]["consumers"] == {"accord-authz": 1}
    code, out, _ = await accord(kafka_bootstrap, "dlq", "list", topic)
    assert len(out.splitlines()) == 2
    assert "accord-auditor,accord-authn,accord-authz,accord-orchestrator" in out

    code, _, err = await accord(kafka_bootstrap, "dlq", "replay", topic, "--event-id", "e-bad")

    assert code == 0, err
    assert "replayed 1 dead letter(s)" in err
    [replayed] = await records_of(kafka_bootstrap, topic)
    assert replayed.value == b"{}"
    assert dict(replayed.headers) == {
        "ce_id": b"e-bad",
        "ce_type": b"user.created",
        "x-kept": b"1",
        "accord-replay-for": b"accord-auditor,accord-authn,accord-authz,accord-orchestrator",
    }


async def records_of(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record a topic holds now (KAFKA_BOOTSTRAP_SERVERS is the same broker)."""
    ids = await partitions_of(topic)
    assert ids, f"no partitions for {topic}"
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in ids]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[ConsumerRecord[bytes, bytes]] = []
        while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
            batch = await consumer.getmany(*partitions, timeout_ms=1000)
            found += [r for records in batch.values() for r in records]
        return found
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


async def test_a_topic_the_broker_does_not_have_is_one_line(kafka_bootstrap: str) -> None:
    for action in (["list"], ["list", "--json"], ["replay", "--all"]):
        code, out, err = await accord(
            kafka_bootstrap, "dlq", action[0], f"nosuch.{uuid.uuid4().hex[:8]}", *action[1:]
        )
        assert (code, out) == (1, ""), err
        [line] = err.splitlines()
        assert line.startswith("accord: error: the broker has no topic nosuch."), line
