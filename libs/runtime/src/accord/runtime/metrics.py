"""Prometheus metrics every service exposes on GET /metrics.

Each Service has a registry of its own (`RuntimeMetrics`, not prometheus-client's global
one: several services run in one test process), reachable as `runtime.metrics`. The runtime
feeds it: the consumer path (records by topic and outcome, handler failures and durations,
grouped transaction sizes), the outbox relay (backlog, oldest row's age, enqueue to broker
acknowledgement), the HTTP middleware (requests by route template, method and status), and,
at scrape time, the consumer lag, the database pool and the readiness.

Labels carry bounded values only: topics, partitions, event types, route templates (an
unmatched path is `unmatched`), methods (an unknown one is `other`) and statuses; never an
id. Prometheus's target labels (job, instance) say which service.

GET /metrics needs an API token (or OIDC caller) holding the `audit:read` permission on
every service, as the auditor's page always has: one scrape credential for the platform
(`authorization: {credentials_file: ...}` in the Prometheus scrape config). A service adds
its own metrics by registering a collector in `runtime.metrics.registry`, or a registry of
its own with `include` (the auditor's); metric names must not collide.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from typing import Any, TypeVar

import asyncpg
from aiokafka import TopicPartition
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from accord.events import REGISTRY
from accord.runtime.app_deps import Mounted
from accord.runtime.security.api import require
from accord.runtime.security.roles import Permission

#: The permission GET /metrics needs, on every service.
METRICS_PERMISSION = Permission.AUDIT_READ

#: Outcomes of accord_consumer_records_total.
HANDLED, DUPLICATE, DEAD_LETTERED = "handled", "duplicate", "dead_lettered"
#: The route label of a request no route matched.
UNMATCHED = "unmatched"
#: The methods counted by name; any other is `other`.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

#: Handlers take milliseconds; a slow target or a long retry takes seconds.
HANDLER_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5, 10)
GROUP_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500)
RELAY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5, 10, 30, 60)
HTTP_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5, 10)

#: How long a scrape waits for one partition's position (it may be resetting), and for all.
_POSITION_WAIT_S = 0.5
_LAG_SCRAPE_S = 2.0

Refresh = Callable[[], Awaitable[None]]
K = TypeVar("K", bound=Hashable)
M = TypeVar("M")


class RuntimeMetrics:
    """One service's metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.records = Counter(
            "accord_consumer_records",
            "Records consumed, by topic and outcome (handled, duplicate, dead_lettered)",
            ["topic", "outcome"],
            registry=reg,
        )
        self.handler_failures = Counter(
            "accord_handler_failures",
            "Handler attempts that raised (a dependency down included), by event type",
            ["event_type"],
            registry=reg,
        )
        self.handler_duration = Histogram(
            "accord_handler_duration_seconds",
            "Time in a handler (one attempt), by event type",
            ["event_type"],
            buckets=HANDLER_BUCKETS_S,
            registry=reg,
        )
        self.group_size = Histogram(
            "accord_consumer_group_size",
            "Records per grouped (or batch) transaction",
            buckets=GROUP_BUCKETS,
            registry=reg,
        )
        self.consumer_lag = Gauge(
            "accord_consumer_lag_records",
            "Broker end offset minus the group's position, by assigned partition (at scrape)",
            ["topic", "partition"],
            registry=reg,
        )
        self.outbox_backlog = Gauge(
            "accord_outbox_backlog_events",
            "Outbox rows not yet acknowledged by the broker, as the relay last saw them",
            registry=reg,
        )
        self.outbox_oldest_age = Gauge(
            "accord_outbox_oldest_event_age_seconds",
            "Age of the oldest outbox row when the relay last read the outbox (0 if empty)",
            registry=reg,
        )
        self.relay_delay = Histogram(
            "accord_outbox_relay_delay_seconds",
            "Outbox enqueue (its transaction's start) to acknowledgement by the broker",
            buckets=RELAY_BUCKETS_S,
            registry=reg,
        )
        self.http_requests = Counter(
            "accord_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=reg,
        )
        self.http_duration = Histogram(
            "accord_http_request_duration_seconds",
            "HTTP request duration by route template and method",
            ["route", "method"],
            buckets=HTTP_BUCKETS_S,
            registry=reg,
        )
        self.db_pool = Gauge(
            "accord_db_pool_connections",
            "The database pool's connections (in_use, idle, max), at scrape",
            ["state"],
            registry=reg,
        )
        self.ready = Gauge("accord_ready", "1 if the service is ready, else 0", registry=reg)
        self._children: dict[tuple[int, Hashable], Any] = {}
        self._refreshers: dict[str, Refresh] = {}

    # The consumer path: one dict lookup per update, the labelled child cached.

    def consuming(self, topics: Iterable[str]) -> None:
        """Start each outcome's series of these topics at 0: Prometheus's `increase()` sees
        no increase in a series whose first sample is already 1, so without it the first
        dead letter of a topic would never raise AccordDeadLetter."""
        for topic in topics:
            for outcome in (HANDLED, DUPLICATE, DEAD_LETTERED):
                self._child(self.records, (topic, outcome))

    def record(self, topic: str, outcome: str, count: int = 1) -> None:
        """Records of a topic done with an outcome (handled, duplicate, dead_lettered)."""
        if count:
            self._child(self.records, (topic, outcome)).inc(count)

    def handler_failed(self, event_type: str) -> None:
        """A handler attempt raised."""
        self._child(self.handler_failures, event_type).inc()

    def handler_time(self, event_type: str, seconds: float) -> None:
        """One handler attempt took `seconds`."""
        self._child(self.handler_duration, event_type).observe(seconds)

    def grouped(self, records: int) -> None:
        """A transaction took this many records."""
        self.group_size.observe(records)

    def relayed(self, enqueued_at: float | None, acknowledged_at: float) -> None:
        """An outbox row acknowledged; enqueued_at in epoch seconds, if known."""
        if enqueued_at is not None:
            self.relay_delay.observe(max(0.0, acknowledged_at - enqueued_at))

    def outbox_seen(self, backlog: int, oldest_enqueued_at: float | None) -> None:
        """The relay's view of its outbox: rows waiting and when the oldest was enqueued."""
        self.outbox_backlog.set(backlog)
        age = 0.0 if oldest_enqueued_at is None else max(0.0, time.time() - oldest_enqueued_at)
        self.outbox_oldest_age.set(age)

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        """An HTTP request answered."""
        method = method if method in METHODS else "other"
        self._child(self.http_requests, (route, method, status)).inc()
        self._child(self.http_duration, (route, method)).observe(seconds)

    def _child(self, metric: Any, labels: K) -> Any:
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            values = labels if isinstance(labels, tuple) else (labels,)
            child = metric.labels(*(str(v) for v in values))
            self._children[key] = child
        return child

    # At scrape time

    def on_scrape(self, name: str, refresh: Refresh) -> None:
        """Run `refresh` before each scrape (gauges read from live state); a later refresh
        of the same name replaces it (a new consumer loop, after a restart)."""
        self._refreshers[name] = refresh

    def watch_pool(self, pool: asyncpg.Pool) -> None:
        """Report the pool's connections at each scrape."""

        async def refresh() -> None:
            size, idle = pool.get_size(), pool.get_idle_size()
            self.db_pool.labels("in_use").set(size - idle)
            self.db_pool.labels("idle").set(idle)
            self.db_pool.labels("max").set(pool.get_max_size())

        self.on_scrape("pool", refresh)

    def watch_readiness(self, readiness: Callable[[], Awaitable[Mapping[str, Any]]]) -> None:
        """Report the readiness check's verdict at each scrape."""

        async def refresh() -> None:
            report = await readiness()
            self.ready.set(1 if report.get("ready") else 0)

        self.on_scrape("readiness", refresh)

    def watch_consumer(
        self,
        consumer: Any,
        assignment: Callable[[], set[TopicPartition]],
        committed: Callable[[TopicPartition], int | None] = lambda tp: None,
    ) -> None:
        """Report each assigned partition's lag at each scrape, if the consumer knows its end
        offsets (aiokafka's highwater; the in-memory consumer does not): the end offset
        minus the offset this member last committed, or, before its first commit, minus its
        position (at assignment, the group's committed offset)."""
        highwater = getattr(consumer, "highwater", None)
        position = getattr(consumer, "position", None)
        if highwater is None or position is None:
            self._refreshers.pop("consumer", None)
            return

        async def refresh() -> None:
            lags = {}
            deadline = time.monotonic() + _LAG_SCRAPE_S
            for tp in assignment():
                if time.monotonic() > deadline:
                    break
                end = highwater(tp)
                if end is None:
                    continue
                at = committed(tp)
                if at is None:
                    with contextlib.suppress(Exception):
                        at = await asyncio.wait_for(position(tp), _POSITION_WAIT_S)
                if at is not None:
                    lags[(tp.topic, str(tp.partition))] = max(0, end - at)
            self.consumer_lag.clear()
            for labels, lag in lags.items():
                self.consumer_lag.labels(*labels).set(lag)

        self.on_scrape("consumer", refresh)

    async def refresh(self) -> None:
        """Bring the scrape-time gauges up to date; a failing one keeps its last value."""
        for refresh in list(self._refreshers.values()):
            with contextlib.suppress(Exception):
                await refresh()

    def include(self, registry: CollectorRegistry) -> None:
        """Serve another registry's metrics on this page too (a service's own)."""
        clash = _names(registry) & _names(self.registry)
        if clash:
            raise ValueError(f"metric names already served: {sorted(clash)}")
        self.registry.register(registry)

    def metric_names(self) -> set[str]:
        """The metric families this page serves."""
        return _names(self.registry)


#: Label values that would make the series count grow without bound.
_ID_LIKE = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}|[0-9a-fA-F]{16,}|@")
_ROUTE = re.compile(r"/[A-Za-z0-9_./{}:-]*")
#: Longest label value accepted (a route template, a DLQ topic).
_MAX_LABEL = 120


def unbounded_labels(page: str) -> list[str]:
    """The samples of a /metrics page whose labels look unbounded: an id (a UUID, a long hex
    string, an address), an overlong value, or, on the runtime's own metrics, a value
    outside its label's allowed set (a service's own metrics, such as the auditor's, name
    their labels' values themselves). Tests of every service's page use it; an empty list
    means the page is fine."""
    allowed = _allowed_values()
    own = _names(RuntimeMetrics().registry)
    problems = []
    for family in text_string_to_metric_families(page):
        checks = allowed if family.name in own else {}
        for sample in family.samples:
            for label, value in sample.labels.items():
                if not _bounded(label, value, checks):
                    problems.append(f"{sample.name}{{{label}={value!r}}}")
    return problems


def _allowed_values() -> dict[str, Callable[[str], bool]]:
    topics = set(REGISTRY.topics(with_dlq=True))
    types = {spec.type for spec in REGISTRY} | {"batch", "dead-letter"}
    return {
        "outcome": {HANDLED, DUPLICATE, DEAD_LETTERED, "success", "failure"}.__contains__,
        "state": {"in_use", "idle", "max"}.__contains__,
        "method": (METHODS | {"other"}).__contains__,
        "status": lambda v: v.isdigit() and len(v) == 3,
        "partition": lambda v: v.isdigit() and len(v) <= 4,
        "topic": topics.__contains__,
        "event_type": types.__contains__,
        "route": lambda v: v == UNMATCHED or _ROUTE.fullmatch(v) is not None,
    }


def _bounded(label: str, value: str, allowed: Mapping[str, Callable[[str], bool]]) -> bool:
    if label in ("le", "quantile"):
        return True
    if len(value) > _MAX_LABEL or _ID_LIKE.search(value):
        return False
    check = allowed.get(label)
    return check is None or check(value)


def _names(registry: CollectorRegistry) -> set[str]:
    return {family.name for family in registry.collect()}


class HttpMetricsMiddleware:
    """Counts and times each HTTP request by the template of the route that matched."""

    def __init__(self, app: ASGIApp, metrics: RuntimeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            self.metrics.request(template, scope["method"], status, time.perf_counter() - started)


_metrics = Mounted[RuntimeMetrics]("runtime_metrics")
router = APIRouter(tags=["metrics"])


def install(app: FastAPI, metrics: RuntimeMetrics) -> None:
    """The HTTP middleware (outermost: it sees every answer) and GET /metrics."""
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
    serve(app, metrics)


def serve(app: FastAPI, metrics: RuntimeMetrics) -> None:
    """GET /metrics with these metrics, unless the app serves its page already."""
    if getattr(app.state, _metrics.name, None) is None:
        _metrics.mount(app, metrics, router)


@router.get(
    "/metrics",
    summary="Prometheus metrics of this service",
    response_class=Response,
    dependencies=[Depends(require(METRICS_PERMISSION))],
    responses={
        200: {
            "description": "The metrics, in the Prometheus text format by default",
            "content": {
                "text/plain": {"schema": {"type": "string"}},
                "application/openmetrics-text": {"schema": {"type": "string"}},
            },
        }
    },
)
async def prometheus_metrics(
    request: Request, metrics: RuntimeMetrics = Depends(_metrics)
) -> Response:
    await metrics.refresh()
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(metrics.registry), media_type=content_type)
