"""Reading and replaying dead letters (`<topic>.dlq`), for `accord dlq` and operators.

A dead letter is the original record, untouched, plus `accord-*` headers saying why and
where it failed. Replaying sends the original record (without those headers) back to its
topic: consumers' inboxes drop whatever was handled already, so replaying twice is harmless.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from accord.events.kafka_config import client_config
from accord.events.topics import dlq_for, is_dlq

_ORIGINAL_TOPIC = "accord-original-topic"


@dataclass(frozen=True)
class DeadLetter:
    """One record of a DLQ."""

    dlq: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> str | None:
        """A header's value as text, if the record has it."""
        for key, value in self.headers:
            if key == name:
                return value.decode(errors="replace")
        return None

    @property
    def event_id(self) -> str | None:
        """The CloudEvents id of the original event (None if it was undecodable)."""
        return self.header("ce_id")

    @property
    def original_topic(self) -> str:
        """Where the record came from."""
        return self.header(_ORIGINAL_TOPIC) or self.dlq.removesuffix(".dlq")

    def summary(self) -> dict[str, Any]:
        """What an operator needs to decide: which event, why, when, where."""
        return {
            "dlq": self.dlq,
            "position": f"{self.partition}:{self.offset}",
            "event_id": self.event_id,
            "type": self.header("ce_type"),
            "subject": self.header("ce_subject"),
            "reason": self.header("accord-error"),
            "error_type": self.header("accord-error-type"),
            "consumer": self.header("accord-consumer"),
            "failed_at": self.header("accord-failed-at"),
            "original_topic": self.original_topic,
        }


async def read_dead_letters(topic: str, *, limit: int | None = None) -> list[DeadLetter]:
    """Every dead letter of a topic (or of a DLQ named directly), oldest first per partition.

    Reads without a consumer group, from the beginning to the end offsets seen at the start,
    so it neither moves any service's offsets nor waits for new records.
    """
    dlq = topic if is_dlq(topic) else dlq_for(topic)
    consumer = AIOKafkaConsumer(**client_config(), enable_auto_commit=False)
    try:
        await consumer.start()
        partitions = consumer.partitions_for_topic(dlq)
        if not partitions:
            await consumer.force_metadata_update()
            partitions = consumer.partitions_for_topic(dlq) or set()
        assigned = [TopicPartition(dlq, p) for p in sorted(partitions)]
        if not assigned:
            return []
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        found: list[DeadLetter] = []
        while [tp for tp in assigned if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(*assigned, timeout_ms=1000)
            for tp, records in batch.items():
                for r in records:
                    if r.offset >= ends[tp]:
                        continue
                    found.append(
                        DeadLetter(dlq, r.partition, r.offset, r.key, r.value, tuple(r.headers))
                    )
                    if limit is not None and len(found) >= limit:
                        return found
        return found
    finally:
        await consumer.stop()


async def replay(letters: Iterable[DeadLetter]) -> int:
    """Send each dead letter's original record back to its topic; returns how many."""
    producer = AIOKafkaProducer(**client_config(), acks="all")
    sent = 0
    try:
        await producer.start()
        for letter in letters:
            headers = [(k, v) for k, v in letter.headers if not k.startswith("accord-")]
            await producer.send_and_wait(
                letter.original_topic, value=letter.value, key=letter.key, headers=headers
            )
            sent += 1
    finally:
        await producer.stop()
    return sent
