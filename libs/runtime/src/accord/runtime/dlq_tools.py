"""Reading and replaying dead letters (`<topic>.dlq`), for `accord dlq` and operators.

A dead letter is the original record, untouched, plus `accord-*` headers saying why and
where it failed and which consumer group failed it. Every group that fails an event writes
its own, so operators see them grouped: one `DeadEvent` per event, with the groups that
failed it. Replaying sends the original record (without those headers) back to its topic
once, for those groups only (`accord-replay-for`; the others skip it). Their inboxes drop
whatever was handled already, so replaying twice is harmless.

A DLQ also holds resolution records (accord.runtime.dlq_resolution): a group saying it has
since handled an event it once failed (a replay), or later work that makes it moot. An
event needs action while some group that failed it has not resolved it; only those groups
get its replay, and a resolved event is replayed only when asked for.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from accord.events.kafka_config import client_config
from accord.events.topics import dlq_for, is_dlq
from accord.runtime.dlq import (
    CONSUMER_HEADER,
    ERROR_HEADER,
    REPLAY_FOR_HEADER,
    RESOLVES_HEADER,
    is_resolution,
)
from accord.runtime.kafka import make_producer, partitions_of

_ORIGINAL_TOPIC = "accord-original-topic"


class NoSuchTopic(LookupError):
    """The broker has no such DLQ (a misspelt topic, or a topic no service has created)."""

    def __init__(self, dlq: str) -> None:
        super().__init__(f"the broker has no topic {dlq}")
        self.dlq = dlq


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

    @property
    def resolves(self) -> frozenset[str]:
        """For a resolution record, the events it resolves (for its consumer); else none."""
        try:
            ids = json.loads(self.header(RESOLVES_HEADER) or "[]")
        except ValueError:
            ids = None
        return (
            frozenset(i for i in ids if isinstance(i, str))
            if isinstance(ids, list)
            else frozenset()
        )

    @property
    def position(self) -> tuple[int, int]:
        """(partition, offset) in the DLQ."""
        return self.partition, self.offset

    @property
    def identity(self) -> str:
        """The event this is a dead letter of: its id, else its place in the original topic."""
        if self.event_id:
            return self.event_id
        partition = self.header("accord-original-partition")
        offset = self.header("accord-original-offset")
        if partition is None or offset is None:
            return f"{self.dlq}:{self.partition}:{self.offset}"
        return f"{self.original_topic}:{partition}:{offset}"

    def summary(self) -> dict[str, Any]:
        """What an operator needs to decide: which event, why, when, where."""
        return {
            "dlq": self.dlq,
            "position": f"{self.partition}:{self.offset}",
            "event_id": self.event_id,
            "type": self.header("ce_type"),
            "subject": self.header("ce_subject"),
            "reason": self.header(ERROR_HEADER),
            "error_type": self.header("accord-error-type"),
            "consumer": self.header(CONSUMER_HEADER),
            "failed_at": self.header("accord-failed-at"),
            "original_topic": self.original_topic,
        }


@dataclass(frozen=True)
class DeadEvent:
    """One event's dead letters in a DLQ, from every consumer group that failed it."""

    letters: tuple[DeadLetter, ...]
    """Oldest first; all copies of one original record (the same event)."""
    resolved: frozenset[str] = frozenset()
    """The groups that failed it and have resolved it since."""

    @property
    def event_id(self) -> str | None:
        """The CloudEvents id of the event (None if it was undecodable)."""
        return self.letters[0].event_id

    @property
    def consumers(self) -> dict[str, int]:
        """The consumer groups that failed the event, with how many times each."""
        counts = Counter(x.header(CONSUMER_HEADER) or "?" for x in self.letters)
        return dict(sorted(counts.items()))

    @property
    def unresolved(self) -> list[str]:
        """The groups that failed the event and have not resolved it."""
        return [g for g in self.consumers if g not in self.resolved]

    @property
    def needs_action(self) -> bool:
        """Whether some group that failed the event has not resolved it."""
        return bool(self.unresolved)

    def replay_for(self, *, include_resolved: bool = False) -> list[str] | None:
        """The groups a replay is for: those that have not resolved the event (or all that
        failed it); None (every group) if a dead letter does not say whose it is."""
        if any(x.header(CONSUMER_HEADER) is None for x in self.letters):
            return None
        return list(self.consumers) if include_resolved else self.unresolved

    def summary(self) -> dict[str, Any]:
        """What an operator needs to decide: which event, who failed it, why, when, where."""
        first, latest = self.letters[0], self.letters[-1]
        return {
            "dlq": first.dlq,
            "position": "{}:{}".format(*first.position),
            "event_id": self.event_id,
            "type": first.header("ce_type"),
            "subject": first.header("ce_subject"),
            "consumers": self.consumers,
            "resolved": sorted(self.resolved),
            "needs_action": self.needs_action,
            "reason": latest.header(ERROR_HEADER),
            "error_type": latest.header("accord-error-type"),
            "failed_at": latest.header("accord-failed-at"),
            "original_topic": first.original_topic,
        }


def by_event(records: Iterable[DeadLetter]) -> list[DeadEvent]:
    """A DLQ's dead letters grouped by event, oldest first (by when the event first failed),
    each with the groups that resolved it (from the DLQ's resolution records).

    An undecodable event without an id is known by its place in the original topic, which
    each group's copy names alike (and no resolution names it).
    """
    groups: dict[str, list[DeadLetter]] = {}
    resolved: set[tuple[str | None, str]] = set()
    ordered = sorted(records, key=lambda x: (x.header("accord-failed-at") or "", x.position))
    for record in ordered:
        if is_resolution(record.headers):
            resolved |= {(record.header(CONSUMER_HEADER), i) for i in record.resolves}
        else:
            groups.setdefault(record.identity, []).append(record)
    events = []
    for identity, letters in groups.items():
        failed = {x.header(CONSUMER_HEADER) for x in letters}
        by = frozenset(g for g in failed if g is not None and (g, identity) in resolved)
        events.append(DeadEvent(tuple(letters), by))
    return events


async def read_dead_events(topic: str) -> list[DeadEvent]:
    """Every event with dead letters in a topic's DLQ (or in a DLQ named directly); NoSuchTopic
    when the broker has no such DLQ."""
    return by_event(await read_dlq(topic))


async def read_dead_letters(topic: str, *, limit: int | None = None) -> list[DeadLetter]:
    """The dead letters of a topic (or of a DLQ named directly), oldest first per partition,
    without the resolution records."""
    letters = [x for x in await read_dlq(topic) if not is_resolution(x.headers)]
    return letters if limit is None else letters[:limit]


async def read_dlq(topic: str) -> list[DeadLetter]:
    """Every record of a topic's DLQ (or of a DLQ named directly), oldest first per partition;
    NoSuchTopic when the broker has no such DLQ.

    Reads without a consumer group, from the beginning to the end offsets seen at the start,
    so it neither moves any service's offsets nor waits for new records.
    """
    dlq = topic if is_dlq(topic) else dlq_for(topic)
    partitions = await partitions_of(dlq)
    if partitions is None:
        raise NoSuchTopic(dlq)
    if not partitions:
        return []
    assigned = [TopicPartition(dlq, p) for p in partitions]
    consumer = AIOKafkaConsumer(**client_config(), enable_auto_commit=False)
    try:
        await consumer.start()
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
        return found
    finally:
        await consumer.stop()


async def replay(events: Iterable[DeadEvent], *, include_resolved: bool = False) -> int:
    """Send each event back to its topic once, for the groups that failed it and have not
    resolved it (or, with include_resolved, all that failed it); how many were sent."""
    producer = make_producer()
    sent = 0
    try:
        await producer.start()
        for event in events:
            letter = event.letters[0]
            headers = [(k, v) for k, v in letter.headers if not k.startswith("accord-")]
            groups = event.replay_for(include_resolved=include_resolved)
            if groups == []:
                continue
            if groups is not None:
                headers.append((REPLAY_FOR_HEADER, ",".join(groups).encode()))
            await producer.send_and_wait(
                letter.original_topic, value=letter.value, key=letter.key, headers=headers
            )
            sent += 1
    finally:
        await producer.stop()
    return sent
