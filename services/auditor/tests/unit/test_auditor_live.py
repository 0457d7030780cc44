"""The live stream: fan-out to bounded queues, where it starts, replay, and the SSE route."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

import httpx
import pytest
from aiokafka.structs import TopicPartition
from fastapi import FastAPI
from fastapi.sse import ServerSentEvent

from accord.auditor import live
from accord.auditor.fakes import AUDITOR_TOKEN, REQUESTER_TOKEN, FakeRecord, secured_app
from accord.auditor.live import Item, LiveFeed, StreamFilter, Subscription, audit_stream
from accord.auditor.settings import AuditorSettings
from accord.events import AuditRecorded, new_event, to_kafka
from accord.runtime.service import Runtime

TP = TopicPartition(live.TOPIC, 0)
NOW = 1_800_000_000.0


def recorded(
    record_id: int,
    *,
    subject: str = "e-1",
    event_type: str = "user.created",
    outcome: str = "info",
    correlation_id: str = "flow-1",
) -> AuditRecorded:
    return AuditRecorded(
        record_id=record_id,
        source_event_id=f"event-{record_id}",
        source_topic=event_type,
        event_type_recorded=event_type,
        occurred_at=datetime.fromtimestamp(NOW, UTC),
        actor="urn:test:hr",
        subject=subject,
        outcome=outcome,  # type: ignore[arg-type]
        correlation_id=correlation_id,
        payload={"n": record_id},
    )


def kafka_record(data: AuditRecorded, *, offset: int = 0, timestamp_s: float = NOW) -> FakeRecord:
    encoded = to_kafka(new_event(data, source="accord/auditor"))
    return FakeRecord(
        topic=encoded.topic,
        value=encoded.value,
        headers=list(encoded.headers),
        key=encoded.key,
        partition=0,
        offset=offset,
        timestamp=int(timestamp_s * 1000),
    )


def item(record_id: int, **fields: Any) -> Item:
    data = recorded(record_id, **fields)
    return live.item_of(new_event(data, source="accord/auditor"), data)


class FakeConsumer:
    """Hands out the batches put on its queue; a batch that is an exception is raised."""

    def __init__(self) -> None:
        self.batches: asyncio.Queue[list[FakeRecord] | Exception] = asyncio.Queue()
        self.started = False
        self.stopped = False
        self.sought: list[TopicPartition] = []
        self.fail_start = False

    async def start(self) -> None:
        if self.fail_start:
            raise ConnectionError("no broker")
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    async def seek_to_end(self, *partitions: TopicPartition) -> bool:
        self.sought += partitions
        return True

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[FakeRecord]]:
        try:
            batch = await asyncio.wait_for(self.batches.get(), timeout_ms / 1000)
        except TimeoutError:
            return {}
        if isinstance(batch, Exception):
            raise batch
        return {TP: batch}


class Harness:
    """A feed on fake consumers (one per start) with a fixed clock."""

    def __init__(self, queue_size: int = 100) -> None:
        self.consumers: list[FakeConsumer] = []
        self.stopping = asyncio.Event()
        self.feed = LiveFeed(self._make, queue_size=queue_size, clock=lambda: NOW)

    def _make(self) -> FakeConsumer:
        self.consumers.append(FakeConsumer())
        return self.consumers[-1]

    @property
    def consumer(self) -> FakeConsumer:
        return self.consumers[-1]

    async def start(self) -> None:
        assert await self.feed.start(self.stopping, wait_s=5)

    async def publish(self, *records: FakeRecord) -> None:
        await self.consumer.batches.put(list(records))

    async def stop(self) -> None:
        self.stopping.set()
        task = self.feed._task
        if task is not None:
            await task


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    created = Harness()
    yield created
    await created.stop()


async def take(subscription: Subscription, count: int) -> list[Item]:
    taken = []
    for _ in range(count):
        got = await asyncio.wait_for(subscription.next(), 5)
        assert got is not None
        taken.append(got)
    return taken


# --- the feed --------------------------------------------------------------------------------


async def test_the_feed_starts_once_at_the_end_of_its_partitions(harness: Harness) -> None:
    await harness.start()
    await harness.start()
    assert len(harness.consumers) == 1
    assert harness.consumer.started
    assert harness.consumer.sought == [TP]


async def test_records_reach_every_subscriber_whose_filters_they_match(harness: Harness) -> None:
    await harness.start()
    everything = harness.feed.subscribe(StreamFilter())
    ada = harness.feed.subscribe(StreamFilter(subject="e-ada"))
    failures = harness.feed.subscribe(StreamFilter(outcome="failure", event_type="saga.failed"))
    flow = harness.feed.subscribe(StreamFilter(correlation_id="flow-2"))
    await harness.publish(
        kafka_record(recorded(1, subject="e-ada")),
        kafka_record(recorded(2, event_type="saga.failed", outcome="failure")),
        kafka_record(recorded(3, correlation_id="flow-2")),
    )
    assert [i["record_id"] for i in await take(everything, 3)] == [1, 2, 3]
    assert [i["record_id"] for i in await take(ada, 1)] == [1]
    assert [i["record_id"] for i in await take(failures, 1)] == [2]
    assert [i["record_id"] for i in await take(flow, 1)] == [3]
    await harness.publish(kafka_record(recorded(4)))
    fourth = (await take(everything, 1))[0]
    assert fourth == item(4) | {"recorded_at": fourth["recorded_at"]}
    assert fourth["event_type"] == "user.created"
    assert fourth["payload"] == {"n": 4}


async def test_a_slow_subscriber_loses_its_oldest_records_and_holds_up_nobody() -> None:
    feed = LiveFeed(FakeConsumer, queue_size=3, clock=lambda: NOW)
    slow = feed.subscribe(StreamFilter())
    fast = feed.subscribe(StreamFilter())
    for record_id in range(1, 11):
        feed.dispatch(kafka_record(recorded(record_id), offset=record_id))  # never waits
        if record_id <= 8:
            assert (await fast.next() or {})["record_id"] == record_id
    assert [i["record_id"] for i in await take(slow, 3)] == [8, 9, 10]
    assert slow.take_dropped() == 7
    assert slow.take_dropped() == 0
    assert [i["record_id"] for i in await take(fast, 2)] == [9, 10]
    assert fast.take_dropped() == 0


async def test_records_from_before_the_start_are_history_not_live(harness: Harness) -> None:
    await harness.start()
    subscription = harness.feed.subscribe(StreamFilter())
    margin = live.STALE_AFTER_S
    await harness.publish(
        kafka_record(recorded(1), timestamp_s=NOW - margin - 5),  # seek_to_end fell short
        kafka_record(recorded(2), timestamp_s=NOW - margin + 5),  # just before: harmless
        kafka_record(recorded(3), timestamp_s=NOW + 1),
    )
    assert [i["record_id"] for i in await take(subscription, 2)] == [2, 3]
    assert harness.feed.stats.stale == 1


async def test_records_without_a_timestamp_are_taken_as_new() -> None:
    feed = LiveFeed(FakeConsumer, clock=lambda: NOW)
    feed._since_ms = int(NOW * 1000)
    subscription = feed.subscribe(StreamFilter())
    record = replace(kafka_record(recorded(1)), timestamp=-1)
    feed.dispatch(record)
    assert [i["record_id"] for i in await take(subscription, 1)] == [1]


async def test_undecodable_records_are_skipped(harness: Harness) -> None:
    await harness.start()
    subscription = harness.feed.subscribe(StreamFilter())
    whole = kafka_record(recorded(1))
    broken = replace(whole, headers=[(k, v) for k, v in whole.headers if k != "ce_specversion"])
    await harness.publish(broken, kafka_record(recorded(2)))
    assert [i["record_id"] for i in await take(subscription, 1)] == [2]
    assert harness.feed.stats.invalid == 1


async def test_a_failing_consumer_ends_every_stream_and_the_next_client_restarts_it(
    harness: Harness,
) -> None:
    await harness.start()
    subscription = harness.feed.subscribe(StreamFilter())
    await harness.consumer.batches.put(RuntimeError("broker gone"))
    assert await asyncio.wait_for(subscription.next(), 5) is None
    assert harness.consumers[0].stopped
    await harness.start()
    assert len(harness.consumers) == 2


async def test_stopping_the_service_ends_the_streams_and_the_consumer(harness: Harness) -> None:
    await harness.start()
    subscription = harness.feed.subscribe(StreamFilter())
    await harness.stop()
    assert await subscription.next() is None
    assert harness.consumer.stopped
    assert not await harness.feed.start(harness.stopping, wait_s=0.1)


async def test_a_feed_that_cannot_start_says_so() -> None:
    made: list[FakeConsumer] = []

    def broken() -> FakeConsumer:
        made.append(FakeConsumer())
        made[-1].fail_start = True
        return made[-1]

    feed = LiveFeed(broken, clock=lambda: NOW)
    assert not await feed.start(asyncio.Event(), wait_s=5)
    assert made[0].stopped


# --- one connection ----------------------------------------------------------------------------


class FakeRecords:
    """The audit log as a list; counts the queries."""

    def __init__(self, items: list[Item]) -> None:
        self.items = items
        self.queries = 0

    async def after(self, match: StreamFilter, after: int, limit: int) -> list[Item]:
        self.queries += 1
        found = [i for i in self.items if i["record_id"] > after and match.matches(i)]
        return found[:limit]

    async def latest(self, match: StreamFilter, limit: int) -> list[Item]:
        self.queries += 1
        return [i for i in self.items if match.matches(i)][-limit:]


def describe(event: ServerSentEvent) -> tuple[str | None, Any]:
    data = event.data
    return event.event, data["record_id"] if event.event == "audit" else data


async def next_events(stream: AsyncIterator[ServerSentEvent], count: int) -> list[Any]:
    return [describe(await asyncio.wait_for(anext(stream), 5)) for _ in range(count)]


async def test_a_new_connection_is_ready_at_once_then_live() -> None:
    feed = LiveFeed(FakeConsumer, clock=lambda: NOW)
    stream = audit_stream(feed, FakeRecords([item(1)]), StreamFilter())
    assert await next_events(stream, 1) == [("ready", {"replayed": 0})]
    feed.dispatch(kafka_record(recorded(5)))
    event = await asyncio.wait_for(anext(stream), 5)
    assert (event.event, event.id) == ("audit", "5")
    await stream.aclose()
    assert feed.stats.subscribers == 0


async def test_a_resuming_connection_replays_then_skips_what_it_already_sent() -> None:
    feed = LiveFeed(FakeConsumer, clock=lambda: NOW)
    records = FakeRecords([item(n) for n in range(1, 6)])
    stream = audit_stream(feed, records, StreamFilter(), after=2)
    first = await asyncio.wait_for(anext(stream), 5)  # subscribed before the replay's query
    assert describe(first) == ("audit", 3)
    # Recorded meanwhile: arrives live as well as (below) from the table.
    for record_id in (2, 4, 5, 6):
        feed.dispatch(kafka_record(recorded(record_id)))
    assert await next_events(stream, 4) == [
        ("audit", 4),
        ("audit", 5),
        ("ready", {"replayed": 3}),
        ("audit", 6),  # 2 is not above the cursor, 4 and 5 were replayed
    ]
    await stream.aclose()


async def test_a_long_absence_replays_some_and_says_where_the_gap_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(live, "REPLAY_MAX", 4)
    monkeypatch.setattr(live, "REPLAY_PAGE", 3)
    feed = LiveFeed(FakeConsumer, clock=lambda: NOW)
    records = FakeRecords([item(n) for n in range(1, 11)])
    stream = audit_stream(feed, records, StreamFilter(), after=0)
    assert await next_events(stream, 6) == [
        ("audit", 1),
        ("audit", 2),
        ("audit", 3),
        ("audit", 4),
        ("gap", {"next_after": 4}),
        ("ready", {"replayed": 4}),
    ]
    assert records.queries == 2
    await stream.aclose()


async def test_recent_records_come_first_oldest_of_them_first() -> None:
    feed = LiveFeed(FakeConsumer, clock=lambda: NOW)
    records = FakeRecords([item(n, subject="e-ada" if n % 2 else "e-bob") for n in range(1, 8)])
    stream = audit_stream(feed, records, StreamFilter(subject="e-ada"), recent=2)
    assert await next_events(stream, 3) == [
        ("audit", 5),
        ("audit", 7),
        ("ready", {"replayed": 2}),
    ]
    feed.dispatch(kafka_record(recorded(7, subject="e-ada")))  # already sent
    feed.dispatch(kafka_record(recorded(8, subject="e-bob")))  # not this client's
    feed.dispatch(kafka_record(recorded(9, subject="e-ada")))
    assert await next_events(stream, 1) == [("audit", 9)]
    await stream.aclose()


async def test_a_client_that_fell_behind_is_told_how_much_it_missed() -> None:
    feed = LiveFeed(FakeConsumer, queue_size=2, clock=lambda: NOW)
    stream = audit_stream(feed, FakeRecords([]), StreamFilter())
    await next_events(stream, 1)
    for record_id in range(1, 6):
        feed.dispatch(kafka_record(recorded(record_id)))
    assert await next_events(stream, 3) == [("dropped", {"dropped": 3}), ("audit", 4), ("audit", 5)]
    await stream.aclose()


# --- the route -------------------------------------------------------------------------------


class StreamingConsumer(FakeConsumer):
    """Hands out its batch once a client listens, then stops the service (ending the stream)."""

    def __init__(self, feed: list[LiveFeed], stopping: asyncio.Event) -> None:
        super().__init__()
        self.feed = feed
        self.stopping = stopping
        self.batch = [kafka_record(recorded(n)) for n in (2, 3, 4)]

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[FakeRecord]]:
        while not self.feed[0].stats.subscribers:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # the replay, then `ready`, go first
        if not self.batch:
            self.stopping.set()
            return {}
        batch, self.batch = self.batch, []
        return {TP: batch}


class Route:
    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self.consumers: list[StreamingConsumer] = []
        holder: list[LiveFeed] = []

        def make() -> StreamingConsumer:
            self.consumers.append(StreamingConsumer(holder, self.stopping))
            return self.consumers[-1]

        self.feed = LiveFeed(make, clock=lambda: NOW)
        holder.append(self.feed)
        self.app = self._app()

    def _app(self) -> FastAPI:
        app = secured_app()
        runtime = Runtime("auditor", AuditorSettings(), cast(Any, None), cast(Any, None), "a")
        runtime.stopping = self.stopping
        live.configure(app, runtime, self.feed, FakeRecords([item(1), item(2)]))
        return app

    def client(self, token: str | None = AUDITOR_TOKEN) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://test", headers=headers
        )


def blocks(text: str) -> list[dict[str, str]]:
    parsed = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if fields:
            parsed.append(fields)
    return parsed


async def test_the_route_streams_server_sent_events_with_record_ids() -> None:
    route = Route()
    async with route.client() as client:
        response = await client.get("/v1/audit/stream", headers={"Last-Event-ID": "1"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert (
        response.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    )
    events = blocks(response.text)
    assert [(e.get("event"), e.get("id")) for e in events] == [
        ("audit", "2"),  # replayed after Last-Event-ID 1
        ("ready", None),
        ("audit", "3"),  # live; 2 came already
        ("audit", "4"),
    ]
    assert events[1]["retry"] == str(live.RETRY_MS)


@pytest.mark.parametrize("last_event_id", ["abc", "null", "-1", str(2**63), "1e3", " "])
async def test_a_last_event_id_the_stream_never_gave_starts_it_afresh(last_event_id: str) -> None:
    route = Route()
    async with route.client() as client:
        response = await client.get("/v1/audit/stream", headers={"Last-Event-ID": last_event_id})
    assert response.status_code == 200
    events = blocks(response.text)
    assert [(e.get("event"), e.get("id")) for e in events] == [
        ("ready", None),  # nothing replayed
        ("audit", "2"),
        ("audit", "3"),
        ("audit", "4"),
    ]


async def test_the_route_needs_audit_read() -> None:
    route = Route()
    async with route.client(None) as client:
        assert (await client.get("/v1/audit/stream")).status_code == 401
    async with route.client(REQUESTER_TOKEN) as client:
        response = await client.get("/v1/audit/stream")
    assert response.status_code == 403
    assert "audit:read" in response.json()["detail"]
    assert route.consumers == []  # refused before the feed started


@pytest.mark.parametrize(
    ("params", "headers"),
    [
        ({"after": "-1"}, {}),
        ({"recent": "201"}, {}),
        ({"outcome": "maybe"}, {}),
        ({"subject": "a\x00b"}, {}),
        ({"type": "x" * 300}, {}),
        ({}, {"Last-Event-ID": "1" * 65}),
    ],
)
async def test_bad_parameters_are_a_400_and_start_nothing(
    params: dict[str, str], headers: dict[str, str]
) -> None:
    route = Route()
    async with route.client() as client:
        response = await client.get("/v1/audit/stream", params=params, headers=headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert route.consumers == []


async def test_the_route_answers_503_when_the_feed_cannot_start() -> None:
    route = Route()
    route.stopping.set()  # a stopping service starts nothing new
    async with route.client() as client:
        response = await client.get("/v1/audit/stream")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.headers["content-type"] == "application/problem+json"
