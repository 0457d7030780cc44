"""Follows every joiner of the run from the outside, by reading the topics the platform writes.

One group-less consumer reads account.provisioned, saga.completed, the failure topics and
audit.recorded from their beginning and keeps the records whose subject belongs to the run,
so no API is polled per user. A joiner is done end to end once the audit records of every
event of its flow have arrived (the auditor publishes audit.recorded after it stored one).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from aiokafka import AIOKafkaConsumer

from accord.events import topics

#: The events of a joiner's flow that must all be in the audit log.
FLOW = frozenset(
    {
        topics.USER_CREATED,
        topics.SAGA_STARTED,
        topics.PROVISION_REQUESTED,
        topics.ACCOUNT_PROVISIONED,
        topics.SAGA_COMPLETED,
    }
)
_WATCHED = (
    topics.ACCOUNT_PROVISIONED,
    topics.SAGA_COMPLETED,
    topics.SAGA_FAILED,
    topics.ACCOUNT_PROVISION_FAILED,
    topics.AUDIT_RECORDED,
)


@dataclass
class Journey:
    """What was seen of one joiner; times are wall-clock seconds (time.time())."""

    phase: str
    published: float | None = None
    provisioned_at: float | None = None
    """ce_time of its first account.provisioned: when the provisioner had the account."""
    provisioned_seen: float | None = None
    """When that event reached the benchmark's consumer."""
    completed_at: float | None = None
    """ce_time of saga.completed."""
    completed_seen: float | None = None
    audited: set[str] = field(default_factory=set)
    done: float | None = None
    """Arrival of the audit record that completed the set of the flow's records."""
    failures: list[str] = field(default_factory=list)


class Tracker:
    """The consumer task and what it saw, by user id."""

    def __init__(self, bootstrap_servers: str, run: str, fetch_max_wait_ms: int) -> None:
        """Follow the joiners of `run`. On Tansu the fetch wait bounds how late a record is
        seen (it answers a fetch when the wait runs out): it only moves the "seen" times, and
        10 ms would cost the broker and this process a fifth of a core each while idle. Apache
        Kafka answers as soon as a record arrives: there the wait only paces empty polls
        (benchlib.brokers.tracker_fetch_wait_ms chooses it).

        Subscribed without a group: the consumer learns the partitions of the topics it
        names (Apache Kafka tells a consumer of no others) and reads them from the start."""
        self.prefix = f"bench-{run}-"
        self.journeys: dict[str, Journey] = {}
        self.records_read = 0
        self.audit_records_of_run: Counter[str] = Counter()
        self._consumer = AIOKafkaConsumer(
            *_WATCHED,
            bootstrap_servers=bootstrap_servers,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_wait_ms=fetch_max_wait_ms,
            metadata_max_age_ms=2000,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        self._task: asyncio.Task[None] | None = None

    def expect(self, user_ids: list[str], phase: str) -> None:
        """Register the joiners of a phase before they are published."""
        for user_id in user_ids:
            self.journeys[user_id] = Journey(phase)

    def stamp(self, user_id: str, when: float) -> None:
        """Record a joiner's publish time."""
        self.journeys[user_id].published = when

    async def start(self) -> None:
        """Connect and read in the background."""
        await self._consumer.start()
        self._task = asyncio.create_task(self._read())

    async def stop(self) -> None:
        """Stop reading and disconnect."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    def of_phase(self, phase: str) -> list[Journey]:
        """The journeys of one phase, in publish order."""
        return [j for j in self.journeys.values() if j.phase == phase]

    async def wait_done(self, phase: str, within_s: float, tick: float = 0.1) -> bool:
        """Wait until every joiner of the phase is done or failed; False on timeout."""
        deadline = time.monotonic() + within_s
        batch = self.of_phase(phase)
        while time.monotonic() < deadline:
            if self._task is not None and self._task.done():
                self._task.result()  # the reader died: say why
            if all(j.done is not None or j.failures for j in batch):
                return True
            await asyncio.sleep(tick)
        return False

    async def _read(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=10_000)
            seen = time.time()
            for partition, records in batches.items():
                self.records_read += len(records)
                for record in records:
                    self._take(partition.topic, record.key, record.value, record.headers, seen)

    def _take(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...],
        seen: float,
    ) -> None:
        if topic == topics.AUDIT_RECORDED:
            self._audited(value, seen)
            return
        subject = key.decode(errors="replace") if key else ""
        journey = self.journeys.get(subject) if subject.startswith(self.prefix) else None
        if journey is None:
            return
        if topic == topics.ACCOUNT_PROVISIONED and journey.provisioned_at is None:
            journey.provisioned_at = _ce_time(headers)
            journey.provisioned_seen = seen
        elif topic == topics.SAGA_COMPLETED and journey.completed_at is None:
            journey.completed_at = _ce_time(headers)
            journey.completed_seen = seen
        elif topic == topics.SAGA_FAILED:
            journey.failures.append(topic)
        elif topic == topics.ACCOUNT_PROVISION_FAILED:
            data = orjson.loads(value or b"{}")
            if not data.get("retryable", False):
                journey.failures.append(f"{topic}: {data.get('reason', '?')}")

    def _audited(self, value: bytes | None, seen: float) -> None:
        if not value or self.prefix.encode() not in value:
            return  # cheap test first: most audit records are not about the run's joiners
        data = orjson.loads(value)
        journey = self.journeys.get(data.get("subject", ""))
        if journey is None:
            return
        recorded = data.get("event_type_recorded", "")
        self.audit_records_of_run[recorded] += 1
        journey.audited.add(recorded)
        if journey.done is None and journey.audited >= FLOW:
            journey.done = seen


def _ce_time(headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...]) -> float | None:
    for name, raw in headers:
        if name == "ce_time":
            return datetime.fromisoformat(raw.decode()).timestamp()
    return None
