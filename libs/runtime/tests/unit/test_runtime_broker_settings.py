"""A service's Kafka clients follow ACCORD_BROKER; explicit settings still win."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from accord.runtime import kafka
from accord.runtime.settings import ServiceSettings


def settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> ServiceSettings:
    for name in ("ACCORD_BROKER", "ACCORD_KAFKA_FETCH_MAX_WAIT_MS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ACCORD_KAFKA_IDLE_FETCH_MAX_WAIT_MS", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return ServiceSettings()


def test_on_apache_kafka_a_service_polls_briefly_while_busy_and_long_once_quiet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = settings(monkeypatch)
    assert s.broker == "kafka"
    assert (s.fetch_wait_ms(), s.idle_fetch_wait_ms()) == (50, 5000)


def test_on_tansu_a_service_polls_often_and_slower_once_quiet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = settings(monkeypatch, ACCORD_BROKER="tansu")
    assert (s.fetch_wait_ms(), s.idle_fetch_wait_ms()) == (20, 200)


def test_explicit_fetch_waits_override_the_brokers(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(
        monkeypatch,
        ACCORD_BROKER="tansu",
        ACCORD_KAFKA_FETCH_MAX_WAIT_MS="0",
        ACCORD_KAFKA_IDLE_FETCH_MAX_WAIT_MS="50",
    )
    assert (s.fetch_wait_ms(), s.idle_fetch_wait_ms()) == (0, 50)


def test_an_unknown_broker_stops_the_service_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="ACCORD_BROKER"):
        settings(monkeypatch, ACCORD_BROKER="redpanda")


def test_topics_a_service_creates_follow_the_replication_factor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = settings(monkeypatch, ACCORD_TOPIC_REPLICATION="3", ACCORD_TOPIC_PARTITIONS="6")
    layout = s.topic_layout
    assert (layout.partitions, layout.replicas, layout.min_insync_replicas) == (6, 3, 2)


@pytest.mark.parametrize(("broker", "idempotent"), [("kafka", True), ("tansu", False)])
async def test_the_producer_is_idempotent_only_where_the_broker_grants_producer_ids(
    monkeypatch: pytest.MonkeyPatch, broker: str, idempotent: bool
) -> None:
    producer = kafka.make_producer(settings(monkeypatch, ACCORD_BROKER=broker).broker_profile)
    try:
        assert producer._txn_manager is not None if idempotent else producer._txn_manager is None
        assert producer.client is not None
    finally:
        await producer.stop()
