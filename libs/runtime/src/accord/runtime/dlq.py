"""Dead letters: the original record, untouched, plus why and where it failed, in headers."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from accord.events.topics import dlq_for, is_dlq

log = logging.getLogger(__name__)

ERROR_HEADER = "accord-error"
MAX_REASON = 1000


async def dead_letter(
    producer: AIOKafkaProducer,
    record: ConsumerRecord[bytes, bytes],
    *,
    reason: str,
    error_type: str,
    consumer: str,
) -> str:
    """Send a record to `<topic>.dlq` and wait for the ack; returns the DLQ topic."""
    topic = record.topic if is_dlq(record.topic) else dlq_for(record.topic)
    headers = [(k, v) for k, v in record.headers if not k.startswith("accord-")]
    headers += [
        (ERROR_HEADER, reason[:MAX_REASON].encode()),
        ("accord-error-type", error_type.encode()),
        ("accord-consumer", consumer.encode()),
        ("accord-original-topic", record.topic.encode()),
        ("accord-original-partition", str(record.partition).encode()),
        ("accord-original-offset", str(record.offset).encode()),
        ("accord-failed-at", datetime.now(UTC).isoformat().encode()),
    ]
    await producer.send_and_wait(topic, value=record.value, key=record.key, headers=headers)
    log.warning(
        "event dead-lettered",
        extra={"topic": record.topic, "dlq": topic, "reason": reason, "offset": record.offset},
    )
    return topic
