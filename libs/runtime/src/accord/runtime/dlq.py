"""Dead letters: the original record, untouched, plus why and where it failed, in headers;
and which consumer groups a replayed record is meant for.

Every consumer group that fails an event writes its own dead letter of it (`accord-consumer`
names the group), so `accord dlq` shows them as one entry per event and replays the event
once, with `accord-replay-for` naming the groups that failed it: the other groups of the
topic skip it (see `meant_for`), so they never take a replay for new. A DLQ also holds
resolution records (`accord-resolves`, see accord.runtime.dlq_resolution): they are for
`accord dlq`, and no consumer takes them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime

from accord.events.topics import dlq_for, is_dlq
from accord.runtime.records import Record
from accord.runtime.transport import Producer

log = logging.getLogger(__name__)

ERROR_HEADER = "accord-error"
CONSUMER_HEADER = "accord-consumer"
#: On a replayed record: the consumer groups it is for, comma-separated.
REPLAY_FOR_HEADER = "accord-replay-for"
#: On a resolution record: the events whose dead letters it resolves, a JSON array.
RESOLVES_HEADER = "accord-resolves"
MAX_REASON = 1000


def replayed_for(headers: Iterable[tuple[str, bytes]]) -> frozenset[str] | None:
    """The groups a replayed record is for; None for a record that is not a replay."""
    for name, value in headers:
        if name == REPLAY_FOR_HEADER:
            return frozenset(g for g in value.decode(errors="replace").split(",") if g)
    return None


def is_resolution(headers: Iterable[tuple[str, bytes]]) -> bool:
    """Whether a DLQ record is a resolution record rather than a dead letter."""
    return any(name == RESOLVES_HEADER for name, _ in headers)


def meant_for(record: Record, group: str) -> bool:
    """Whether a consumer group takes this record: every record, except a replay meant for
    other groups (they handled the event already, or never had to) and a resolution record."""
    if is_dlq(record.topic) and is_resolution(record.headers):
        return False
    groups = replayed_for(record.headers)
    return groups is None or group in groups


async def dead_letter(
    producer: Producer,
    record: Record,
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
        (CONSUMER_HEADER, consumer.encode()),
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
