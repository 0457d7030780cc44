"""Traces reach an OpenTelemetry backend over OTLP/HTTP: one joiner is one trace, whose spans
come from every service that handled it and follow one another in causal order.

The backend is a small OTLP/HTTP receiver here that decodes what the services send with
opentelemetry-proto's own definitions. The platform is one of this test's own (its own
Tansu broker and database), started with the standard OTEL_* variables pointing at it.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from accord.events import Publisher, UserCreated, topics
from accord.events.brokers import BROKER_ENV
from accord.stack.network import free_port
from accord.stack.platform import Platform, PlatformConfig
from accord.stack.testing import create_database

from .conftest import eventually, running, scim_users

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

#: Services that handle a joiner one event at a time, each in a consumer span.
JOINER_SERVICES = {"accord-orchestrator", "accord-provisioner", "accord-authz", "accord-authn"}
#: The events each of them handles in the joiner's flow, at least.
JOINER_HANDLING = {
    ("accord-orchestrator", topics.USER_CREATED),
    ("accord-authz", topics.USER_CREATED),
    ("accord-authn", topics.USER_CREATED),
    ("accord-provisioner", topics.PROVISION_REQUESTED),
    ("accord-orchestrator", topics.ACCOUNT_PROVISIONED),
}
PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as the receiver decoded it, with the service that sent it."""

    service: str
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, str]


class OtlpReceiver:
    """An OTLP/HTTP (protobuf) trace receiver: POST /v1/traces, as a collector listens."""

    def __init__(self) -> None:
        self.port = free_port()
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        self._runner: web.AppRunner | None = None

    @property
    def endpoint(self) -> str:
        """What OTEL_EXPORTER_OTLP_ENDPOINT names: the exporter adds /v1/traces."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", self._export)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _export(self, request: web.Request) -> web.Response:
        assert request.content_type == PROTOBUF, request.content_type
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        self.requests += 1
        for resource_spans in message.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        ReceivedSpan(
                            service=resource.get("service.name", ""),
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            name=span.name,
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            attributes={a.key: a.value.string_value for a in span.attributes},
                        )
                    )
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(), content_type=PROTOBUF
        )

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        """The spans received of one trace."""
        return [s for s in self.spans if s.trace_id == trace_id]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def receiver() -> AsyncIterator[OtlpReceiver]:
    found = OtlpReceiver()
    await found.start()
    try:
        yield found
    finally:
        await found.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def traced_platform(
    receiver: OtlpReceiver, postgres_server: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Platform]:
    """The six services on a Tansu broker of their own (their consumer groups stay apart
    from the session platform's), exporting spans to the receiver."""
    config = PlatformConfig.ephemeral(
        Path(tmp_path_factory.mktemp("otlp-platform")),
        broker="tansu",
        database_url=await create_database(postgres_server, "accord_otlp"),
        extra_env={
            "ACCORD_LOG_LEVEL": "INFO",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            # Batches leave every 200 ms instead of every 5 s.
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        },
    )
    async with running(config, " exporting traces over OTLP") as platform:
        yield platform


@dataclass(frozen=True)
class JoinerTrace:
    """What the receiver got of one joiner's trace."""

    trace_id: str
    root_span_id: str
    """The span id in the first event's traceparent: the publisher's."""
    published_ns: int
    correlation_id: str
    spans: list[ReceivedSpan]

    def handled(self) -> set[tuple[str, str]]:
        """(service, topic) of every consumer span."""
        return {(s.service, s.attributes.get("messaging.destination.name", "")) for s in self.spans}


async def _joiner_trace(
    platform: Platform,
    receiver: OtlpReceiver,
    unique: str,
    expected: set[tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    timeout: float = 30,
) -> JoinerTrace:
    """Publish a joiner; its trace once the receiver holds the expected consumer spans and
    every span's parents (or the timeout has passed)."""
    user = UserCreated(
        user_id=f"otlp-{unique}",
        user_name=f"otel.{unique}",
        given_name="Ada",
        family_name="Lovelace",
        email=f"otel.{unique}@example.org",
        department="Research",
    )
    monkeypatch.setenv(BROKER_ENV, platform.config.broker)
    async with Publisher(
        source="urn:test:hr", bootstrap_servers=platform.bootstrap_servers
    ) as publisher:
        published_ns = time.time_ns()
        envelope = await publisher.publish(user, sequence=1)
    assert envelope.traceparent is not None
    _, trace_id, root_span_id, _ = envelope.traceparent.split("-")
    await eventually(lambda: scim_users(platform, user.user_name), what="the account")

    def received() -> JoinerTrace:
        spans = sorted(receiver.trace(trace_id), key=lambda s: s.start_ns)
        return JoinerTrace(trace_id, root_span_id, published_ns, envelope.correlationid, spans)

    deadline = time.monotonic() + timeout
    found = received()
    while not (found.handled() >= expected and _chains_closed(found)):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
        found = received()
    print(f"\n{len(found.spans)} spans of the joiner's trace ({receiver.requests} OTLP requests):")
    for span in found.spans:
        at_ms = (span.start_ns - published_ns) / 1e6
        print(f"  {at_ms:8.1f} ms  {span.service:22} {span.name}")
    return found


def _root_of(span: ReceivedSpan, by_id: dict[str, ReceivedSpan]) -> str:
    """The parent id where the span's chain of received parents ends."""
    seen: set[str] = set()
    while span.parent_span_id in by_id:
        assert span.span_id not in seen, f"a cycle of parents at {span.name}"
        seen.add(span.span_id)
        span = by_id[span.parent_span_id]
    return span.parent_span_id


def _chains_closed(found: JoinerTrace) -> bool:
    by_id = {s.span_id: s for s in found.spans}
    return all(_root_of(s, by_id) == found.root_span_id for s in found.spans)


async def test_a_joiner_is_one_trace_across_services_in_causal_order(
    traced_platform: Platform,
    receiver: OtlpReceiver,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found = await _joiner_trace(traced_platform, receiver, unique, JOINER_HANDLING, monkeypatch)
    spans = found.spans

    services = {s.service for s in spans}
    assert services >= JOINER_SERVICES, f"spans only from {sorted(services)}"
    assert found.handled() >= JOINER_HANDLING
    # No span of another trace carries the joiner's correlation id: the flow is one trace.
    strays = [
        s
        for s in receiver.spans
        if s.attributes.get("accord.correlation_id") == found.correlation_id
        and s.trace_id != found.trace_id
    ]
    assert strays == []

    by_id = {s.span_id: s for s in spans}
    assert len(by_id) == len(spans), "a span id came twice"
    for span in spans:
        # Each span's chain of parents leads to the span that published the first event.
        assert _root_of(span, by_id) == found.root_span_id, f"{span.service} {span.name} cut off"
        assert span.start_ns <= span.end_ns
        # A consumer starts after the event it handles was produced: after its parent
        # started (the span that was current as the event was stamped), or, handling the
        # first event, after the test published it.
        parent = by_id.get(span.parent_span_id)
        produced_after_ns = parent.start_ns if parent is not None else found.published_ns
        assert span.start_ns >= produced_after_ns, (
            f"{span.service} {span.name} started before its parent's event was produced"
        )
    # The provisioner's request was made while the orchestrator handled user.created, and
    # the orchestrator heard back in a span under the provisioner's.
    [created] = [
        s
        for s in spans
        if s.service == "accord-orchestrator" and s.parent_span_id == found.root_span_id
    ]
    [provisioning] = [
        s
        for s in spans
        if s.service == "accord-provisioner" and "messaging.destination.name" in s.attributes
    ]
    [provisioned] = [
        s
        for s in spans
        if s.service == "accord-orchestrator"
        and s.attributes.get("messaging.destination.name") == topics.ACCOUNT_PROVISIONED
    ]
    assert provisioning.parent_span_id == created.span_id
    assert provisioned.parent_span_id == provisioning.span_id


async def test_a_joiner_s_trace_holds_its_sql_and_its_scim_requests(
    traced_platform: Platform,
    receiver: OtlpReceiver,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The services' queries and the provisioner's request to the SCIM target are spans of
    the joiner's trace, under the consumer spans that made them, and none holds a value
    of the joiner's (no statement parameter, no SCIM filter)."""
    found = await _joiner_trace(traced_platform, receiver, unique, JOINER_HANDLING, monkeypatch)
    by_id = {s.span_id: s for s in found.spans}
    sql = [s for s in found.spans if s.attributes.get("db.system") == "postgresql"]
    assert sql, "no SQL span in the joiner's trace"
    assert {s.service for s in sql} >= {"accord-orchestrator", "accord-provisioner"}
    scim_url = traced_platform.scim.base_url
    requests = [
        s
        for s in found.spans
        if s.service == "accord-provisioner"
        and s.attributes.get("http.url", "").startswith(scim_url)
    ]
    assert requests, "no request of the provisioner's to the SCIM target in the joiner's trace"
    for span in [*sql, *requests]:
        assert span.trace_id == found.trace_id
        assert _root_of(span, by_id) == found.root_span_id, f"{span.service} {span.name} cut off"
        values = " ".join(span.attributes.values())
        assert f"otel.{unique}" not in values, f"{span.service} {span.name} holds the user name"
        assert traced_platform.scim.bearer_token not in values


async def test_the_auditor_s_spans_join_the_joiner_s_trace(
    traced_platform: Platform,
    receiver: OtlpReceiver,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    audited = {("accord-auditor", topics.USER_CREATED), ("accord-auditor", topics.SAGA_COMPLETED)}
    found = await _joiner_trace(traced_platform, receiver, unique, audited, monkeypatch, timeout=10)
    assert found.handled() >= audited
    assert _chains_closed(found)
