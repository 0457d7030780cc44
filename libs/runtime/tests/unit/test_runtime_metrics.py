"""The runtime's Prometheus metrics (accord.runtime.metrics): the consumer path and the outbox
relay on the in-memory transport, the HTTP middleware, GET /metrics and its protection, and
the check that no label value is unbounded."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

import httpx
import pytest
from aiokafka import TopicPartition
from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from accord.events import REGISTRY, Envelope, SagaCompleted, SagaFailed, new_event
from accord.runtime.consumer import HandlerContext
from accord.runtime.errors import PermanentError, RetryableError
from accord.runtime.http import create_app, secure
from accord.runtime.metrics import (
    DEAD_LETTERED,
    DUPLICATE,
    HANDLED,
    RuntimeMetrics,
    install,
    serve,
    unbounded_labels,
)
from accord.runtime.outbox import BATCH, OutboxRow, _backlog
from accord.runtime.security.api import ApiSecurity
from accord.runtime.security.api_tokens import InvalidToken, TokenStore
from accord.runtime.security.rate_limit import RateLimiter
from accord.runtime.security.roles import Caller, Role
from accord.runtime.testing import InMemoryService

CONSUMED = "saga.completed"
TOPIC = REGISTRY.spec(CONSUMED).topic


ADMIN_TOKEN = "acc_00000000000000a1_" + "A" * 43
REQUESTER_TOKEN = "acc_00000000000000c3_" + "C" * 43


class FakeTokenStore:
    async def verify(self, token: str) -> Caller:
        roles = {ADMIN_TOKEN: Role.ADMIN, REQUESTER_TOKEN: Role.REQUESTER}
        if token not in roles:
            raise InvalidToken("unknown API token")
        return Caller(
            subject="ada", roles=frozenset({roles[token]}), kind="api-token", credential_id=token
        )


def security() -> ApiSecurity:
    return ApiSecurity(
        cast(TokenStore, FakeTokenStore()),
        None,
        per_caller=RateLimiter(1000.0, 1000),
        failures=RateLimiter(1000.0, 1000),
        per_application=RateLimiter(1000.0, 1000),
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def completed(subject: str = "user-1") -> Envelope:
    data = SagaCompleted(
        saga_id=f"saga-{uuid.uuid4().hex[:8]}",
        saga_type="joiner",
        subject_id=subject,
        duration_ms=1,
    )
    return new_event(data, source="test/runtime")


class Replier:
    """Replies to each event; raises for the ids in `fail`."""

    def __init__(self, fail: dict[str, Exception] | None = None) -> None:
        self.fail = fail or {}

    async def __call__(self, envelope: Envelope, ctx: HandlerContext) -> Sequence[Envelope]:
        if envelope.id in self.fail:
            raise self.fail[envelope.id]
        data = SagaFailed(
            saga_id=f"r-{envelope.id}", saga_type="joiner", subject_id=envelope.subject, reason="r"
        )
        return [new_event(data, source=ctx.source, causation=envelope)]


def value(metrics: RuntimeMetrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def records(metrics: RuntimeMetrics, outcome: str, topic: str = TOPIC) -> float:
    return value(metrics, "accord_consumer_records_total", topic=topic, outcome=outcome)


# --- the consumer path -----------------------------------------------------------------------


async def test_handled_records_are_counted_by_topic_timed_and_grouped() -> None:
    service = InMemoryService({CONSUMED: Replier()})
    events = [completed(f"user-{i}") for i in range(12)]
    for envelope in events:
        await service.publish(envelope, partition=0)
    async with service:
        await service.settle()

    metrics = service.metrics
    assert records(metrics, HANDLED) == 12
    assert records(metrics, DUPLICATE) == 0
    assert records(metrics, DEAD_LETTERED) == 0
    timed = value(metrics, "accord_handler_duration_seconds_count", event_type=CONSUMED)
    assert timed == 12
    assert value(metrics, "accord_handler_duration_seconds_sum", event_type=CONSUMED) >= 0
    # One partition's records in grouped transactions: their sizes add up to the records.
    assert value(metrics, "accord_consumer_group_size_sum") == 12
    assert value(metrics, "accord_consumer_group_size_count") < 12


async def test_every_outcome_of_a_consumed_topic_is_served_at_zero_before_any_record() -> None:
    # Prometheus's increase() needs a sample before the first dead letter to see it.
    service = InMemoryService({CONSUMED: Replier()})
    async with service:
        page = generate_latest(service.metrics.registry).decode()
    for outcome in (HANDLED, DUPLICATE, DEAD_LETTERED):
        assert f'accord_consumer_records_total{{outcome="{outcome}",topic="{TOPIC}"}} 0.0' in page


class EndOffsets:
    """What the lag reads of an aiokafka consumer: end offsets and positions."""

    def __init__(self, end: int, position: int) -> None:
        self.end, self.at = end, position

    def highwater(self, tp: TopicPartition) -> int:
        return self.end

    async def position(self, tp: TopicPartition) -> int:
        return self.at


async def test_lag_counts_from_the_last_commit_and_from_the_position_before_one() -> None:
    tp, committed = TopicPartition(TOPIC, 0), {}
    metrics = RuntimeMetrics()
    metrics.watch_consumer(EndOffsets(end=10, position=9), lambda: {tp}, committed.get)
    lag = ("accord_consumer_lag_records", {"topic": TOPIC, "partition": "0"})
    await metrics.refresh()
    assert metrics.registry.get_sample_value(*lag) == 1  # assigned, nothing committed yet
    committed[tp] = 6  # records 6..8 fetched but not yet handled
    await metrics.refresh()
    assert metrics.registry.get_sample_value(*lag) == 4


async def test_the_loop_remembers_what_it_committed() -> None:
    service = InMemoryService({CONSUMED: Replier()})
    async with service:
        for i in range(3):
            await service.publish(completed(f"user-{i}"), partition=0)
        await service.settle()
        assert service.loop.committed[TopicPartition(TOPIC, 0)] == 3


async def test_a_redelivered_event_counts_as_a_duplicate() -> None:
    service = InMemoryService({CONSUMED: Replier()})
    envelope = completed()
    async with service:
        await service.publish(envelope)
        await service.settle()
        await service.publish(envelope)
        await service.settle()

    assert records(service.metrics, HANDLED) == 1
    assert records(service.metrics, DUPLICATE) == 1


async def test_failed_attempts_are_counted_and_the_dead_letter_too() -> None:
    poison = completed()
    service = InMemoryService(
        {CONSUMED: Replier({poison.id: RuntimeError("target down")})}, max_attempts=2
    )
    async with service:
        await service.publish(poison)
        await service.settle(timeout_s=10)

    metrics = service.metrics
    assert value(metrics, "accord_handler_failures_total", event_type=CONSUMED) == 2
    assert records(metrics, DEAD_LETTERED) == 1
    assert records(metrics, HANDLED) == 0
    # Failed attempts are timed as well.
    assert value(metrics, "accord_handler_duration_seconds_count", event_type=CONSUMED) == 2


async def test_a_permanent_error_is_one_failure_and_one_dead_letter() -> None:
    poison = completed()
    service = InMemoryService({CONSUMED: Replier({poison.id: PermanentError("refused")})})
    async with service:
        await service.publish(poison)
        await service.settle()

    assert value(service.metrics, "accord_handler_failures_total", event_type=CONSUMED) == 1
    assert records(service.metrics, DEAD_LETTERED) == 1


async def test_an_attempt_refused_by_a_dependency_counts_as_a_failure_too() -> None:
    flaky = completed()

    class DownOnce(Replier):
        async def __call__(self, envelope: Envelope, ctx: HandlerContext) -> Sequence[Envelope]:
            if not self.fail:
                self.fail[flaky.id] = RetryableError("target down")
                raise self.fail[flaky.id]
            return await Replier()(envelope, ctx)

    service = InMemoryService({CONSUMED: DownOnce()})
    async with service:
        await service.publish(flaky)
        await service.settle()

    assert value(service.metrics, "accord_handler_failures_total", event_type=CONSUMED) == 1
    assert records(service.metrics, HANDLED) == 1


# --- the outbox relay ------------------------------------------------------------------------


async def test_the_relay_times_each_row_and_reports_an_empty_backlog_once_done() -> None:
    service = InMemoryService({CONSUMED: Replier()})
    async with service:
        for i in range(5):
            await service.publish(completed(f"user-{i}"))
        await service.settle()

    metrics = service.metrics
    assert value(metrics, "accord_outbox_relay_delay_seconds_count") == 5
    assert 0 <= value(metrics, "accord_outbox_relay_delay_seconds_sum") < 5
    assert value(metrics, "accord_outbox_backlog_events") == 0
    assert value(metrics, "accord_outbox_oldest_event_age_seconds") == 0


def test_the_backlog_gauges_say_what_the_relay_saw() -> None:
    metrics = RuntimeMetrics()
    metrics.outbox_seen(42, time.time() - 30)
    assert value(metrics, "accord_outbox_backlog_events") == 42
    assert 29 <= value(metrics, "accord_outbox_oldest_event_age_seconds") < 60
    metrics.relayed(None, time.time())  # an outbox that does not know: nothing observed
    assert value(metrics, "accord_outbox_relay_delay_seconds_count") == 0


class BigOutbox:
    """A full batch of rows and an outbox that knows its last id."""

    def __init__(self, first: int, last: int | None) -> None:
        self.rows = [
            OutboxRow(first + i, TOPIC, b"k", b"v", [], time.time() - 5) for i in range(BATCH)
        ]
        self.last = last

    async def fetch(self, limit: int) -> list[OutboxRow]:
        return self.rows[:limit]

    async def delete(self, ids: Sequence[int]) -> None:
        pass

    async def last_id(self) -> int | None:
        return self.last


async def test_behind_a_full_batch_the_backlog_runs_to_the_last_id() -> None:
    assert await _backlog(BigOutbox(1000, 100_999), BigOutbox(1000, None).rows) == 100_000
    assert await _backlog(BigOutbox(1000, None), BigOutbox(1000, None).rows) == BATCH
    few = BigOutbox(1, 10).rows[:3]
    assert await _backlog(BigOutbox(1, 10), few) == 3


def test_labelled_children_are_cached() -> None:
    metrics = RuntimeMetrics()
    metrics.record(TOPIC, HANDLED)
    children = dict(metrics._children)
    for _ in range(3):
        metrics.record(TOPIC, HANDLED)
    assert metrics._children == children
    assert records(metrics, HANDLED) == 4


# --- HTTP ------------------------------------------------------------------------------------


async def _ready() -> dict[str, Any]:
    return {"ready": True}


def http_app(metrics: RuntimeMetrics) -> FastAPI:
    app = create_app("metrics-test", _ready)
    secure(app, max_body_bytes=1024)
    install(app, metrics)
    metrics.watch_readiness(_ready)
    app.state.security = security()

    @app.get("/v1/sagas/{saga_id}")
    async def saga(saga_id: str) -> dict[str, str]:
        return {"saga_id": saga_id}

    @app.post("/v1/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    return app


@pytest.fixture
async def http() -> AsyncIterator[tuple[httpx.AsyncClient, RuntimeMetrics]]:
    metrics = RuntimeMetrics()
    transport = httpx.ASGITransport(app=http_app(metrics), client=("192.0.2.10", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client, metrics


def requests(metrics: RuntimeMetrics, route: str, method: str, status: str) -> float:
    labels = {"route": route, "method": method, "status": status}
    return value(metrics, "accord_http_requests_total", **labels)


async def test_requests_are_counted_by_route_template(
    http: tuple[httpx.AsyncClient, RuntimeMetrics],
) -> None:
    client, metrics = http
    for _ in range(3):
        assert (await client.get(f"/v1/sagas/{uuid.uuid4()}")).status_code == 200
    assert (await client.get("/healthz")).status_code == 200

    assert requests(metrics, "/v1/sagas/{saga_id}", "GET", "200") == 3
    assert requests(metrics, "/healthz", "GET", "200") == 1
    duration = "accord_http_request_duration_seconds_count"
    assert value(metrics, duration, route="/v1/sagas/{saga_id}", method="GET") == 3


async def test_unmatched_paths_and_unknown_methods_share_one_label(
    http: tuple[httpx.AsyncClient, RuntimeMetrics],
) -> None:
    client, metrics = http
    for _ in range(2):
        assert (await client.get(f"/no/such/{uuid.uuid4()}")).status_code == 404
    await client.request("BREW", "/v1/echo")

    assert requests(metrics, "unmatched", "GET", "404") == 2
    counted = [
        s.labels
        for f in metrics.registry.collect()
        if f.name == "accord_http_requests"
        for s in f.samples
        if s.name.endswith("_total") and s.labels["method"] == "other"
    ]
    assert [c["route"] for c in counted] == ["/v1/echo"]


async def test_refusals_of_the_edge_middlewares_are_counted(
    http: tuple[httpx.AsyncClient, RuntimeMetrics],
) -> None:
    client, metrics = http
    response = await client.post("/v1/echo", content=b"x" * 4096)
    assert response.status_code == 413
    assert (
        sum(
            s.value
            for f in metrics.registry.collect()
            if f.name == "accord_http_requests"
            for s in f.samples
            if s.name.endswith("_total") and s.labels["status"] == "413"
        )
        == 1
    )


async def test_the_metrics_page_needs_the_audit_read_permission(
    http: tuple[httpx.AsyncClient, RuntimeMetrics],
) -> None:
    client, _ = http
    assert (await client.get("/metrics")).status_code == 401
    refused = await client.get("/metrics", headers=bearer(REQUESTER_TOKEN))
    assert refused.status_code == 403
    assert "audit:read" in refused.json()["detail"]
    page = await client.get("/metrics", headers=bearer(ADMIN_TOKEN))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/plain")
    names = {f.name for f in text_string_to_metric_families(page.text)}
    assert {"accord_ready", "accord_http_requests", "accord_consumer_records"} <= names
    assert "accord_ready 1.0" in page.text


async def test_a_service_registry_is_served_on_the_same_page(
    http: tuple[httpx.AsyncClient, RuntimeMetrics],
) -> None:
    client, metrics = http
    own = CollectorRegistry()
    Counter("accord_test_things", "things", registry=own).inc(7)
    metrics.include(own)
    page = await client.get("/metrics", headers=bearer(ADMIN_TOKEN))
    assert "accord_test_things_total 7.0" in page.text
    with pytest.raises(ValueError, match="accord_test_things"):
        metrics.include(own)


def test_serving_twice_keeps_the_first_page() -> None:
    metrics = RuntimeMetrics()
    app = http_app(metrics)
    serve(app, RuntimeMetrics())
    assert app.state.runtime_metrics is metrics
    operations = app.openapi()["paths"]["/metrics"]
    assert list(operations) == ["get"]


# --- bounded labels --------------------------------------------------------------------------


async def test_a_busy_page_has_only_bounded_labels(
    http: tuple[httpx.AsyncClient, RuntimeMetrics],
) -> None:
    client, metrics = http
    service = InMemoryService({CONSUMED: Replier()})
    service.metrics = metrics
    service.relay = service._relay()
    async with service:
        for i in range(4):
            await service.publish(completed(f"user-{uuid.uuid4()}"), partition=i % 2)
        await service.settle()
    for _ in range(3):
        await client.get(f"/v1/sagas/{uuid.uuid4()}")
        await client.get(f"/v1/{uuid.uuid4().hex}")

    page = (await client.get("/metrics", headers=bearer(ADMIN_TOKEN))).text
    assert records(metrics, HANDLED) == 4
    assert unbounded_labels(page) == []


def test_the_label_check_catches_ids_and_unknown_values() -> None:
    metrics = RuntimeMetrics()
    metrics.request(f"/v1/sagas/{uuid.uuid4()}", "GET", 200, 0.01)
    metrics.request("/v1/tokens/" + "ab" * 10, "GET", 200, 0.01)
    metrics.record("no-such-topic", HANDLED)
    metrics.record(TOPIC, "exploded")
    metrics.handler_time("user@example.com", 0.1)
    problems = unbounded_labels(generate_latest(metrics.registry).decode())
    assert any("/v1/sagas/" in p for p in problems)
    assert any("abab" in p for p in problems)
    assert any("no-such-topic" in p for p in problems)
    assert any("exploded" in p for p in problems)
    assert any("user@example.com" in p for p in problems)


def test_a_service_s_own_metrics_name_their_label_values_but_never_an_id() -> None:
    """The runtime's allowed sets are for its own metrics: the auditor's `outcome` has other
    values (pending, info...), and only an id-like value is refused there."""
    own = CollectorRegistry()
    records = Counter("accord_audit_records", "records", ["outcome"], registry=own)
    records.labels("pending").inc()
    assert unbounded_labels(generate_latest(own).decode()) == []
    leaked = str(uuid.uuid4())
    records.labels(leaked).inc()
    problems = unbounded_labels(generate_latest(own).decode())
    assert problems
    assert all(leaked in problem for problem in problems)
