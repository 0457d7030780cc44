"""Kafka clients configured from the environment, and topic creation from the registry."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from accord.events.brokers import BrokerProfile, broker_profile
from accord.events.kafka_config import client_config
from accord.events.topic_layout import TopicSettings

log = logging.getLogger(__name__)


def make_producer(profile: BrokerProfile | None = None, **options: Any) -> AIOKafkaProducer:
    """A producer that waits for all in-sync replicas (an acked event is durable), and is
    idempotent where the broker allows (a retried send is written once)."""
    profile = profile or broker_profile()
    settings: dict[str, Any] = {
        **profile.producer_options(),
        "linger_ms": 1,
        "request_timeout_ms": 15000,
    }
    settings.update(options)
    return AIOKafkaProducer(**client_config(), **settings)


def make_consumer(
    group_id: str, *, fetch_max_wait_ms: int, session_timeout_ms: int, fetch_min_bytes: int = 1
) -> AIOKafkaConsumer:
    """A consumer that commits by hand, after the effect is durable.

    `fetch_min_bytes` above 1 lets the broker hold a fetch until that much has gathered (or
    the fetch wait runs out): fewer, larger fetches for a consumer of many partitions.
    """
    return AIOKafkaConsumer(
        **client_config(),
        group_id=group_id,
        enable_auto_commit=False,
        # A new group must see events published before it first joined.
        auto_offset_reset="earliest",
        fetch_max_wait_ms=fetch_max_wait_ms,
        fetch_min_bytes=fetch_min_bytes,
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=max(500, session_timeout_ms // 3),
        max_poll_interval_ms=300_000,
        # Pick up topics created after the consumer started within seconds, not minutes.
        metadata_max_age_ms=5000,
    )


async def ensure_topics(
    names: Iterable[str], layout: TopicSettings, *, with_configs: bool = True
) -> list[str]:
    """Create the topics that do not exist yet, laid out as `layout` says (their topic
    configs too, `with_configs`); returns those created."""
    admin = AIOKafkaAdminClient(**client_config())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = sorted(set(names) - existing)
        created = []
        for name in missing:
            try:
                await admin.create_topics(
                    [
                        NewTopic(
                            name=name,
                            num_partitions=layout.partitions,
                            replication_factor=layout.replicas,
                            topic_configs=layout.config(name) if with_configs else {},
                        )
                    ]
                )
                created.append(name)
            except TopicAlreadyExistsError:
                pass
        if created:
            log.info("created topics", extra={"topics": created})
        return created
    finally:
        await admin.close()


async def partitions_of(topic: str) -> list[int] | None:
    """A topic's partition ids; None when the broker has no such topic.

    Asks for every topic's metadata: a request naming the topic could create it on a broker
    that creates topics on demand. (A consumer's partitions_for_topic knows only the topics
    it subscribed to on Apache Kafka; Tansu tells every client about every topic.)"""
    admin = AIOKafkaAdminClient(**client_config())
    await admin.start()
    try:
        described = await admin.describe_topics()
    finally:
        await admin.close()
    for entry in described:
        if entry["topic"] == topic:
            return sorted(p["partition"] for p in entry["partitions"])
    return None
