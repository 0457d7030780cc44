"""The live audit stream: audit.recorded records fanned out to server-sent-event subscribers.

One consumer per auditor process reads audit.recorded and hands each record to the
subscribers whose filters it matches. It belongs to no consumer group: every replica must
see every record, since any replica may hold a browser's connection, and nothing is
committed. Each subscriber has a bounded queue that drops its oldest record when the
client reads too slowly, so one slow browser never holds up the consumer or the others.

Where the consumer starts, and why it is correct on Tansu as well as on Kafka:

- A live stream wants only what is recorded from now on; history comes from the table.
  So the consumer jumps to the end of each partition once assigned (`seek_to_end`).
- On Tansu that end (ListOffsets "latest") can lie short of the real end, and a partition
  assigned later (a new partition, a topic created after start) is read from the earliest
  offset. Either would replay old records as if live, so the consumer also drops every
  record whose timestamp is older than its own start minus STALE_AFTER_S. The margin is
  generous on purpose: a record of the last minute shown as live is harmless, a new record
  dropped because two clocks disagree by a few seconds is not. Only the start matters:
  once running, a record's age never hides it (a lagging consumer still delivers).
- A subscriber receives what the consumer hands out after it subscribed. A client that
  resumes (Last-Event-ID, or `after`) subscribes first and then replays the newer records
  from the table, so nothing recorded in between is missed; a record that arrives both ways
  is sent once (ids already replayed, or not above the cursor, are skipped live).
- If the consumer fails, every stream ends: the browser reconnects with Last-Event-ID and
  the table fills the gap. Whatever happens, a client sees each record id at most once
  per connection, and `id:` lets it drop repeats across connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query
from fastapi.sse import EventSourceResponse, ServerSentEvent

from accord.auditor.adapters import log_store
from accord.auditor.adapters.log_store import Filters
from accord.events import REGISTRY, AuditRecorded, Envelope, InvalidEvent, from_kafka, topics
from accord.events.catalogue.audit import Outcome
from accord.events.kafka_config import client_config
from accord.runtime.app_deps import Mounted
from accord.runtime.params import Cursor, Text
from accord.runtime.records import Record
from accord.runtime.security.api import require
from accord.runtime.security.roles import Permission
from accord.runtime.service import Runtime

log = logging.getLogger(__name__)

TOPIC = REGISTRY.spec(topics.AUDIT_RECORDED).topic
QUEUE_SIZE = 500
"""Records a subscriber may fall behind by before its oldest are dropped."""
STALE_AFTER_S = 60.0
"""Records older than the consumer's start by more than this are history, not live."""
ASSIGN_WAIT_S = 5.0
"""How long a starting consumer waits for its partitions before it serves anyway."""
READY_TIMEOUT_S = 10.0
POLL_MS = 500
REPLAY_MAX = 2000
"""Most records a resuming client is sent from the table before it goes live."""
REPLAY_PAGE = 500
RECENT_MAX = 200
RETRY_MS = 2000
"""What clients are told to wait before they reconnect."""
Item = dict[str, Any]


@dataclass(frozen=True)
class StreamFilter:
    """What one subscriber wants; None matches anything."""

    subject: str | None = None
    event_type: str | None = None
    correlation_id: str | None = None
    outcome: str | None = None

    def matches(self, item: Item) -> bool:
        """Whether a record passes every given filter."""
        return (
            (self.subject is None or item["subject"] == self.subject)
            and (self.event_type is None or item["event_type"] == self.event_type)
            and (self.correlation_id is None or item["correlation_id"] == self.correlation_id)
            and (self.outcome is None or item["outcome"] == self.outcome)
        )


class Subscription:
    """One client's queue: bounded, the oldest record dropped when full."""

    def __init__(self, match: StreamFilter, size: int) -> None:
        self.filter = match
        self._items: deque[Item] = deque(maxlen=size)
        self._wake = asyncio.Event()
        self._dropped = 0
        self.closed = False

    def offer(self, item: Item) -> None:
        """Queue a record; never waits."""
        if len(self._items) == self._items.maxlen:
            self._dropped += 1
        self._items.append(item)
        self._wake.set()

    def close(self) -> None:
        """End the subscription: next() returns None from now on."""
        self.closed = True
        self._wake.set()

    async def next(self) -> Item | None:
        """The oldest queued record, waiting for one; None once closed."""
        while not self.closed and not self._items:
            self._wake.clear()
            await self._wake.wait()
        return None if self.closed else self._items.popleft()

    def take_dropped(self) -> int:
        """Records dropped since last asked."""
        dropped, self._dropped = self._dropped, 0
        return dropped


class FeedConsumer(Protocol):
    """The part of AIOKafkaConsumer the feed uses."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def assignment(self) -> set[TopicPartition]: ...

    async def seek_to_end(self, *partitions: TopicPartition) -> bool: ...

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[TopicPartition, Sequence[Record]]: ...


def feed_consumer(fetch_max_wait_ms: int) -> FeedConsumer:
    """A consumer of audit.recorded in no group, committing nothing."""
    consumer: FeedConsumer = AIOKafkaConsumer(
        TOPIC,
        **client_config(),
        group_id=None,
        enable_auto_commit=False,
        # Only for partitions assigned after start; see the module docstring.
        auto_offset_reset="earliest",
        # Tansu answers a fetch when this expires: there it bounds the stream's latency.
        fetch_max_wait_ms=fetch_max_wait_ms,
        metadata_max_age_ms=5000,
    )
    return consumer


@dataclass
class FeedStats:
    """What the feed did with the records it read."""

    delivered: int = 0
    stale: int = 0
    invalid: int = 0
    subscribers: int = 0


class LiveFeed:
    """One consumer, fanned out to subscribers; started by the first subscriber."""

    def __init__(
        self,
        make_consumer: Callable[[], FeedConsumer],
        *,
        queue_size: int = QUEUE_SIZE,
        stale_after_s: float = STALE_AFTER_S,
        assign_wait_s: float = ASSIGN_WAIT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._make_consumer = make_consumer
        self._queue_size = queue_size
        self._stale_after_s = stale_after_s
        self._assign_wait_s = assign_wait_s
        self._clock = clock
        self._subscribers: set[Subscription] = set()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._since_ms = 0
        self.stats = FeedStats()

    async def start(self, stopping: asyncio.Event, wait_s: float = READY_TIMEOUT_S) -> bool:
        """Start the consumer unless it runs; True once it is positioned and reading."""
        if stopping.is_set():
            return False
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(stopping), name="live-audit-feed")
        waiting = asyncio.create_task(self._ready.wait())
        await asyncio.wait(
            {waiting, self._task}, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED
        )
        waiting.cancel()
        return self._ready.is_set()

    def subscribe(self, match: StreamFilter) -> Subscription:
        """A new subscriber: it gets the matching records read from now on."""
        subscription = Subscription(match, self._queue_size)
        self._subscribers.add(subscription)
        self.stats.subscribers = len(self._subscribers)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Forget a subscriber (its client went away)."""
        self._subscribers.discard(subscription)
        self.stats.subscribers = len(self._subscribers)

    def dispatch(self, record: Record) -> None:
        """Hand one audit.recorded record to every subscriber it matches."""
        # A record without a timestamp (-1) is taken as new: better shown than lost.
        if 0 <= record.timestamp < self._since_ms:
            self.stats.stale += 1
            return
        try:
            envelope = from_kafka(record.topic, record.key, record.value, list(record.headers))
        except InvalidEvent as error:
            self.stats.invalid += 1
            log.warning(
                "live stream skipped an undecodable audit.recorded record",
                extra={
                    "partition": record.partition,
                    "offset": record.offset,
                    "reason": str(error),
                },
            )
            return
        if not isinstance(envelope.data, AuditRecorded):
            self.stats.invalid += 1
            return
        item = item_of(envelope, envelope.data)
        for subscription in list(self._subscribers):
            if subscription.filter.matches(item):
                subscription.offer(item)
                self.stats.delivered += 1

    async def _run(self, stopping: asyncio.Event) -> None:
        consumer = self._make_consumer()
        try:
            await consumer.start()
            await self._position(consumer)
            self._ready.set()
            log.info("live audit stream started")
            while not stopping.is_set():
                batch = await consumer.getmany(timeout_ms=POLL_MS)
                for records in batch.values():
                    for record in records:
                        self.dispatch(record)
        except Exception:
            log.exception("live audit stream failed: its clients will reconnect")
        finally:
            self._ready.clear()
            for subscription in list(self._subscribers):
                subscription.close()
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _position(self, consumer: FeedConsumer) -> None:
        self._since_ms = int((self._clock() - self._stale_after_s) * 1000)
        deadline = time.monotonic() + self._assign_wait_s
        # aiokafka signals no event when a group-less consumer gets its partitions.
        while not consumer.assignment() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        partitions = consumer.assignment()
        if partitions:
            await consumer.seek_to_end(*partitions)


def item_of(envelope: Envelope, recorded: AuditRecorded) -> Item:
    """A record as /v1/audit/events lists it; recorded_at is when it was announced."""
    return {
        "record_id": recorded.record_id,
        "source_event_id": recorded.source_event_id,
        "source_topic": recorded.source_topic,
        "event_type": recorded.event_type_recorded,
        "occurred_at": recorded.occurred_at,
        "recorded_at": envelope.time,
        "actor": recorded.actor,
        "subject": recorded.subject,
        "target": recorded.target,
        "outcome": recorded.outcome,
        "correlation_id": recorded.correlation_id,
        "trace_id": recorded.trace_id,
        "payload": recorded.payload,
    }


# --- the stream ------------------------------------------------------------------------------


class RecordSource(Protocol):
    """The audit log as the stream replays it."""

    async def after(self, match: StreamFilter, after: int, limit: int) -> list[Item]: ...

    async def latest(self, match: StreamFilter, limit: int) -> list[Item]: ...


@dataclass(frozen=True)
class TableRecords:
    """RecordSource on the audit_log table."""

    pool: asyncpg.Pool

    async def after(self, match: StreamFilter, after: int, limit: int) -> list[Item]:
        """Matching records after a record id, in log order."""
        return await log_store.query(self.pool, _filters(match), after=after, limit=limit)

    async def latest(self, match: StreamFilter, limit: int) -> list[Item]:
        """The newest matching records, oldest first."""
        return await log_store.query(self.pool, _filters(match), limit=limit, newest=True)


def _filters(match: StreamFilter) -> Filters:
    return Filters(
        subject=match.subject,
        event_type=match.event_type,
        correlation_id=match.correlation_id,
        outcome=match.outcome,
    )


def _audit_event(item: Item) -> ServerSentEvent:
    return ServerSentEvent(event="audit", id=str(item["record_id"]), data=item)


async def _replay(source: RecordSource, match: StreamFilter, after: int) -> tuple[list[Item], bool]:
    """Records after the cursor, up to REPLAY_MAX; and whether that was all of them."""
    items: list[Item] = []
    cursor = after
    while len(items) < REPLAY_MAX:
        wanted = min(REPLAY_PAGE, REPLAY_MAX - len(items))
        page = await source.after(match, cursor, wanted)
        items += page
        if len(page) < wanted:
            return items, True
        cursor = page[-1]["record_id"]
    return items, False


async def audit_stream(
    feed: LiveFeed,
    source: RecordSource,
    match: StreamFilter,
    *,
    after: int | None = None,
    recent: int = 0,
) -> AsyncIterator[ServerSentEvent]:
    """The events of one connection: the replay or recent records, `ready`, then live ones.

    Events: `audit` (a record; its id is the record id), `ready` (live from here),
    `gap` (more records after the cursor than one replay sends: page /v1/audit/events from
    `next_after`), `dropped` (this client read too slowly and missed that many records).
    """
    subscription = feed.subscribe(match)
    try:
        sent: set[int] = set()
        replayed: list[Item] = []
        complete = True
        if after is not None:
            replayed, complete = await _replay(source, match, after)
        elif recent:
            replayed, complete = await source.latest(match, recent), True
        for item in replayed:
            sent.add(item["record_id"])
            yield _audit_event(item)
        if not complete:
            yield ServerSentEvent(event="gap", data={"next_after": replayed[-1]["record_id"]})
        yield ServerSentEvent(event="ready", data={"replayed": len(replayed)}, retry=RETRY_MS)
        floor = after or 0
        while (live := await subscription.next()) is not None:
            dropped = subscription.take_dropped()
            if dropped:
                yield ServerSentEvent(event="dropped", data={"dropped": dropped})
            record_id = live["record_id"]
            if record_id <= floor or record_id in sent:
                sent.discard(record_id)
                continue
            yield _audit_event(live)
    finally:
        feed.unsubscribe(subscription)


@dataclass(frozen=True)
class StreamRequest:
    """A stream's filters and where it starts."""

    match: StreamFilter
    after: int | None
    recent: int


def stream_request(
    subject: Text | None = None,
    event_type: Annotated[Text | None, Query(alias="type")] = None,
    correlation_id: Text | None = None,
    outcome: Outcome | None = None,
    after: Annotated[
        Cursor | None, Query(description="Resume after this record id (as Last-Event-ID does)")
    ] = None,
    recent: Annotated[
        int, Query(ge=0, le=RECENT_MAX, description="Begin with the newest N records")
    ] = 0,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=64,
            description="The id of the last event received: the stream resumes after it."
            " Browsers send it back by themselves; an id this stream never gave is ignored.",
        ),
    ] = None,
) -> StreamRequest:
    """The stream's parameters; Last-Event-ID wins over `after`, either over `recent`."""
    resume = _record_id(last_event_id)
    return StreamRequest(
        StreamFilter(subject, event_type, correlation_id, outcome),
        resume if resume is not None else after,
        recent,
    )


def _record_id(text: str | None) -> int | None:
    """A Last-Event-ID as a record id; None when it is none (the client starts afresh)."""
    text = (text or "").strip()
    if text.isascii() and text.isdigit() and len(text) <= 19 and int(text) < 2**63:
        return int(text)
    return None


@dataclass(frozen=True)
class LiveDeps:
    """What the stream route works with, set by `configure` on the app it is mounted on."""

    runtime: Runtime
    feed: LiveFeed
    records: RecordSource


_deps = Mounted[LiveDeps]("auditor_live")


async def opened(
    request: StreamRequest = Depends(stream_request), deps: LiveDeps = Depends(_deps)
) -> StreamRequest:
    """The stream's parameters, once the feed runs (503 if it cannot start)."""
    # A dependency of the parameters: an invalid request is a 400 and starts nothing.
    if not await deps.feed.start(deps.runtime.stopping):
        raise HTTPException(
            503, "the live stream is not available now", headers={"Retry-After": "5"}
        )
    return request


router = APIRouter(prefix="/v1", tags=["audit"])


@router.get(
    "/audit/stream",
    summary="Audit records as they are recorded (server-sent events)",
    description=(
        "Events: `audit` (data: a record as /v1/audit/events lists it; id: its record id),"
        " `ready` (the replay is over, live from here), `gap` (more records after the"
        " cursor than one replay sends; page /v1/audit/events from `next_after`),"
        " `dropped` (the client read too slowly and missed that many records)."
        " A comment every 15 s keeps idle connections open."
    ),
    response_class=EventSourceResponse,
    dependencies=[Depends(require(Permission.AUDIT_READ))],
)
async def stream(
    request: StreamRequest = Depends(opened), deps: LiveDeps = Depends(_deps)
) -> AsyncIterator[ServerSentEvent]:
    async for event in audit_stream(
        deps.feed, deps.records, request.match, after=request.after, recent=request.recent
    ):
        yield event


def configure(
    app: FastAPI,
    runtime: Runtime,
    feed: LiveFeed | None = None,
    records: RecordSource | None = None,
) -> LiveFeed:
    """Mount GET /v1/audit/stream; the feed starts with its first client."""
    fetch_wait = runtime.settings.fetch_wait_ms()
    live = feed or LiveFeed(lambda: feed_consumer(fetch_wait))
    source = records if records is not None else TableRecords(runtime.pool)
    _deps.mount(app, LiveDeps(runtime, live, source), router)
    return live
