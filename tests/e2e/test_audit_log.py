"""The audit log of the running platform: a flow's story, replays, and a clean chain."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from accord.events import Publisher, UserCreated, new_event, to_kafka, topics
from accord.stack.platform import Platform

from .conftest import accord_cli, api_client, audit_events, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

#: A joiner's flow, in the order things happen.
FLOW = [
    "user.created",
    "saga.started",
    "provision.requested",
    "account.provisioned",
    "saga.completed",
]


async def story(platform: Platform, correlation_id: str) -> list[dict[str, Any]] | None:
    async with api_client(platform, "auditor") as client:
        response = await client.get(f"/v1/audit/correlations/{correlation_id}")
    if response.status_code == 404:
        return None
    response.raise_for_status()
    events: list[dict[str, Any]] = response.json()["events"]
    return events if {e["event_type"] for e in events} >= set(FLOW) else None


async def test_one_query_by_correlation_id_tells_the_whole_flow_in_order(
    platform: Platform, kafka_bootstrap: str, unique: str
) -> None:
    user = UserCreated(user_id=f"e-{unique}", user_name=f"story.{unique}", department="Research")
    async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as publisher:
        envelope = await publisher.publish(user, sequence=1)

    events = await eventually(
        lambda: story(platform, envelope.correlationid), what="the whole flow in the log"
    )

    flow = [e["event_type"] for e in events if e["event_type"] in FLOW]
    assert flow == FLOW
    times = [e["occurred_at"] for e in events]
    assert times == sorted(times)
    assert {e["correlation_id"] for e in events} == {envelope.correlationid}
    assert events[0]["source_event_id"] == envelope.id


async def test_replaying_a_topic_from_the_beginning_adds_no_records(
    platform: Platform, kafka_bootstrap: str, unique: str
) -> None:
    # Something to replay, recorded first.
    user = UserCreated(user_id=f"e-{unique}", user_name=f"replay.{unique}")
    async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as publisher:
        await publisher.publish(user, sequence=1)
    await eventually(
        lambda: audit_events(platform, subject=user.user_id, type="user.created"),
        what="the joiner recorded",
    )
    before = await _counts(platform)

    # Replay: every record of user.created so far, from the beginning, published again as it
    # is (what a replay or mirroring tool does), then one marker per partition after them.
    async with asyncio.timeout(60):
        replayed = await _republish_all(kafka_bootstrap, topics.USER_CREATED)
    assert replayed >= 1
    async with asyncio.timeout(30):
        markers = await _markers(kafka_bootstrap, topics.USER_CREATED, unique)
    for marker in markers:
        await eventually(
            lambda m=marker: audit_events(platform, subject=m, type="user.created"),
            what="the markers behind the replay",
        )

    after = await _counts(platform)
    assert after - before == len(markers)
    code, out, err = await accord_cli(platform, "audit", "verify", "--json")
    assert code == 0, out + err
    report = json.loads(out)
    assert report["ok"]
    assert report["first_break"] is None


async def test_the_platforms_log_verifies_clean_against_a_signed_checkpoint(
    platform: Platform, tmp_path: Path
) -> None:
    key = platform.audit_signing_key
    code, out, err = await accord_cli(
        platform, "audit", "checkpoint", "--key", str(key), "--out", str(tmp_path)
    )
    assert code == 0, out + err
    code, out, err = await accord_cli(
        platform,
        "audit",
        "verify",
        "--checkpoint-dir",
        str(tmp_path),
        "--public-key",
        f"{key}.pub",
    )
    assert code == 0, out + err
    assert out.startswith("chain OK: ")
    assert "(database): OK" in out
    assert f"({tmp_path}/checkpoint-" in out


async def _counts(platform: Platform) -> int:
    """How many user.created records the log holds."""
    count, after = 0, 0
    async with api_client(platform, "auditor") as client:
        while True:
            response = await client.get(
                "/v1/audit/events", params={"type": "user.created", "after": after, "limit": 1000}
            )
            page = response.json()
            count += len(page["items"])
            if page["next_after"] is None:
                return count
            after = page["next_after"]


async def _markers(bootstrap: str, topic: str, unique: str) -> list[str]:
    """One new joiner on every partition of the topic; their user ids."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        subjects = []
        for partition in sorted(await producer.partitions_for(topic)):
            user = UserCreated(
                user_id=f"m-{unique}-{partition}", user_name=f"m.{unique}.{partition}"
            )
            record = to_kafka(new_event(user, source="urn:test:hr", sequence=1))
            await producer.send_and_wait(
                topic,
                value=record.value,
                key=record.key,
                headers=list(record.headers),
                partition=partition,
            )
            subjects.append(user.user_id)
        return subjects
    finally:
        await producer.stop()


async def _republish_all(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await consumer.start()
    await producer.start()
    count = 0
    try:
        partitions = await producer.partitions_for(topic)
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        # Read everything there is first (until the topic stays quiet), then publish it again.
        records, idle = [], 0
        while idle < 5:
            batch = await consumer.getmany(timeout_ms=200)
            idle = 0 if batch else idle + 1
            for found in batch.values():
                records.extend(found)
        for r in records:
            headers = list(r.headers)
            await producer.send(
                topic, value=r.value, key=r.key, headers=headers, partition=r.partition
            )
            count += 1
        await producer.flush()
    finally:
        await consumer.stop()
        await producer.stop()
    return count
