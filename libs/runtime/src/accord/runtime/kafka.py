"""Kafka clients configured from the environment, and topic creation from the registry."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from accord.events.kafka_config import client_config

log = logging.getLogger(__name__)


def make_producer(**options: Any) -> AIOKafkaProducer:
    """A producer that waits for all in-sync replicas: an acked event is durable."""
    settings: dict[str, Any] = {"acks": "all", "linger_ms": 1, "request_timeout_ms": 15000}
    settings.update(options)
    return AIOKafkaProducer(**client_config(), **settings)


def make_consumer(
    group_id: str, *, fetch_max_wait_ms: int, session_timeout_ms: int
) -> AIOKafkaConsumer:
    """A consumer that commits by hand, after the effect is durable."""
    return AIOKafkaConsumer(
        **client_config(),
        group_id=group_id,
        enable_auto_commit=False,
        # A new group must see events published before it first joined.
        auto_offset_reset="earliest",
        fetch_max_wait_ms=fetch_max_wait_ms,
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=max(500, session_timeout_ms // 3),
        max_poll_interval_ms=300_000,
        # Pick up topics created after the consumer started within seconds, not minutes.
        metadata_max_age_ms=5000,
    )


async def ensure_topics(
    names: Iterable[str], *, partitions: int, replication: int = 1
) -> list[str]:
    """Create the topics that do not exist yet; returns those created."""
    admin = AIOKafkaAdminClient(**client_config())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = sorted(set(names) - existing)
        created = []
        for name in missing:
            try:
                await admin.create_topics(
                    [NewTopic(name=name, num_partitions=partitions, replication_factor=replication)]
                )
                created.append(name)
            except TopicAlreadyExistsError:
                pass
        if created:
            log.info("created topics", extra={"topics": created})
        return created
    finally:
        await admin.close()
