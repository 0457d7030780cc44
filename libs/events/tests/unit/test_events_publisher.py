"""The Publisher, without a broker: configuration, what it sends, and that it connects lazily.

A real-broker test lives elsewhere; here AIOKafkaProducer is replaced by a recording fake,
except in the test proving that construction opens no connection.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar

import pytest
from aiokafka.errors import KafkaConnectionError

import accord.events.publisher as publisher_module
from accord.events import InvalidEvent, Publisher, from_kafka, new_event
from accord.events.kafka_config import DEFAULT_BOOTSTRAP


class FakeProducer:
    """Records the AIOKafkaProducer calls a Publisher makes."""

    fail_start: ClassVar[bool] = False
    instances: ClassVar[list[FakeProducer]] = []

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.calls: list[str] = []
        self.sent: list[dict[str, Any]] = []
        FakeProducer.instances.append(self)

    async def start(self) -> None:
        self.calls.append("start")
        if self.fail_start:
            raise KafkaConnectionError("Unable to bootstrap from 127.0.0.1:1")

    async def stop(self) -> None:
        self.calls.append("stop")

    async def send_and_wait(self, topic: str, **kwargs: Any) -> None:
        self.calls.append("send_and_wait")
        self.sent.append({"topic": topic, **kwargs})


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, no_kafka_env: None) -> type[FakeProducer]:
    FakeProducer.instances = []
    FakeProducer.fail_start = False
    monkeypatch.setattr(publisher_module, "AIOKafkaProducer", FakeProducer)
    return FakeProducer


def test_construction_only_configures_the_producer(fake: type[FakeProducer]) -> None:
    Publisher(source="urn:hr:workday")
    [producer] = fake.instances
    assert producer.calls == [], "constructing a Publisher must not start the producer"
    assert producer.config["bootstrap_servers"] == DEFAULT_BOOTSTRAP
    assert producer.config["security_protocol"] == "PLAINTEXT"
    assert producer.config["acks"] == "all"


def test_bootstrap_servers_come_from_the_environment(
    fake: type[FakeProducer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-a:9092")
    Publisher(source="urn:x")
    Publisher(source="urn:x", bootstrap_servers="kafka-b:9092")
    assert [p.config["bootstrap_servers"] for p in fake.instances] == [
        "kafka-a:9092",
        "kafka-b:9092",
    ]


def test_producer_options_override_the_defaults(fake: type[FakeProducer]) -> None:
    Publisher(source="urn:x", acks=1, linger_ms=0, client_id="hr-sync")
    [producer] = fake.instances
    assert (producer.config["acks"], producer.config["linger_ms"]) == (1, 0)
    assert producer.config["client_id"] == "hr-sync"
    assert producer.config["request_timeout_ms"] == 15000


async def test_publish_sends_the_cloudevents_record(
    fake: type[FakeProducer], make_event: Any
) -> None:
    async with Publisher(source="urn:hr:workday") as publisher:
        envelope = await publisher.publish(
            make_event("user.created"), sequence=3, correlation_id="flow-1", event_id="evt-1"
        )
    [producer] = fake.instances
    assert producer.calls == ["start", "send_and_wait", "stop"]
    [sent] = producer.sent
    assert sent["topic"] == "user.created"
    assert sent["key"] == b"e-1001"
    assert isinstance(sent["headers"], list)
    decoded = from_kafka(sent["topic"], sent["key"], sent["value"], sent["headers"])
    assert decoded == envelope
    assert (envelope.id, envelope.source, envelope.sequence) == ("evt-1", "urn:hr:workday", 3)
    assert envelope.correlationid == "flow-1"
    assert json.loads(sent["value"])["user_id"] == "e-1001"


async def test_send_republishes_an_envelope_unchanged(
    fake: type[FakeProducer], make_envelope: Any
) -> None:
    original = make_envelope("access.granted", event_id="evt-original")
    async with Publisher(source="urn:other") as publisher:
        await publisher.send(original)
    [sent] = fake.instances[0].sent
    assert from_kafka(sent["topic"], sent["key"], sent["value"], sent["headers"]) == original


async def test_identity_event_without_sequence_is_refused_before_sending(
    fake: type[FakeProducer], make_event: Any
) -> None:
    async with Publisher(source="urn:hr:workday") as publisher:
        with pytest.raises(InvalidEvent, match="sequence"):
            await publisher.publish(make_event("user.deleted"))
    assert fake.instances[0].sent == []


async def test_producer_is_stopped_when_the_block_raises(fake: type[FakeProducer]) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with Publisher(source="urn:x"):
            raise RuntimeError("boom")
    assert fake.instances[0].calls == ["start", "stop"]


async def test_producer_is_stopped_when_start_fails(fake: type[FakeProducer]) -> None:
    fake.fail_start = True
    with pytest.raises(KafkaConnectionError):
        async with Publisher(source="urn:x"):
            pytest.fail("the block must not run")
    assert fake.instances[0].calls == ["start", "stop"]


async def test_constructing_a_real_publisher_does_not_connect(no_kafka_env: None) -> None:
    """With the real AIOKafkaProducer: a listening socket sees no connection until start()."""
    connections: list[object] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        publisher = Publisher(source="urn:x", bootstrap_servers=f"127.0.0.1:{port}")
        for _ in range(5):
            await asyncio.sleep(0.01)
        assert connections == []
        await publisher._producer.stop()  # never started: just mark it closed
    finally:
        server.close()
        await server.wait_closed()


async def test_publish_takes_the_subject_from_the_data(
    fake: type[FakeProducer], make_event: Any
) -> None:
    """publish() goes through new_event: the subject always comes from the data."""
    expected = new_event(make_event("saga.started"), source="urn:x")
    async with Publisher(source="urn:x") as publisher:
        envelope = await publisher.publish(make_event("saga.started"))
    assert (envelope.subject, envelope.dataschema) == (expected.subject, expected.dataschema)
    assert fake.instances[0].sent[0]["key"] == b"e-1001"


async def test_a_published_event_starts_a_trace(fake: type[FakeProducer], make_event: Any) -> None:
    """Without a trace of the caller's, the event that starts a flow starts its trace, so it
    carries a trace id like every event it causes."""
    async with Publisher(source="urn:hr:workday") as publisher:
        first = await publisher.publish(make_event("user.created"), sequence=1)
        second = await publisher.publish(make_event("user.created"), sequence=2)
    sent = [
        from_kafka(s["topic"], s["key"], s["value"], s["headers"]) for s in fake.instances[0].sent
    ]
    assert sent == [first, second]
    traces = {e.traceparent.split("-")[1] for e in sent if e.traceparent}
    assert len(traces) == 2
    assert all(len(t) == 32 and int(t, 16) for t in traces)
