"""SQL and outbound HTTP spans against a real PostgreSQL and a real local HTTP server: children
of the span that was current, without parameters, query strings or credentials, and none for
a query made outside any span (idle polling)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from aiohttp import web
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span, SpanKind

from accord.runtime import db
from accord.runtime.instrumentation import instrument_libraries, uninstrument_libraries
from accord.runtime.testing import recorded_spans
from accord.stack.network import free_port

pytestmark = pytest.mark.integration

SECRET = "s3cret-value-of-a-parameter"
TOKEN = "Bearer t0ken-never-recorded"
USER_NAME = "ada.lovelace"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span ended during the test, httpx and asyncpg instrumented as setup_tracing does."""
    with recorded_spans() as exporter:
        yield exporter


@pytest_asyncio.fixture
async def pool(fresh_database: str, unique: str) -> AsyncIterator[asyncpg.Pool]:
    """A service's kind of pool (the instrumentation patches its connections' class)."""
    schema = f"tr_{unique}"
    await db.migrate(fresh_database, schema, [])
    pool = await db.create_pool(fresh_database, schema, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()


def _sql(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    return [
        s
        for s in spans.get_finished_spans()
        if (s.attributes or {}).get("db.system") == "postgresql"
        or (s.attributes or {}).get("db.system.name") == "postgresql"
    ]


def _http(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    return [
        s
        for s in spans.get_finished_spans()
        if s.kind == SpanKind.CLIENT and s.instrumentation_scope is not None
        if s.instrumentation_scope.name == "opentelemetry.instrumentation.httpx"
    ]


def _values(span: ReadableSpan) -> str:
    """Every attribute value of a span, as one string to search."""
    return " ".join(str(v) for v in (span.attributes or {}).values())


def _is_child(span: ReadableSpan, parent: Span) -> bool:
    context = parent.get_span_context()
    return (
        span.parent is not None
        and span.parent.span_id == context.span_id
        and span.context is not None
        and span.context.trace_id == context.trace_id
    )


async def test_a_query_inside_a_span_is_its_child_with_the_statement_and_no_parameters(
    spans: InMemorySpanExporter, pool: asyncpg.Pool
) -> None:
    with trace.get_tracer("test").start_as_current_span("handle") as parent:
        assert await pool.fetchval("SELECT $1::text", SECRET) == SECRET
    [span] = _sql(spans)
    assert _is_child(span, parent)
    assert span.kind == SpanKind.CLIENT
    attributes = span.attributes or {}
    statement = attributes.get("db.statement", attributes.get("db.query.text"))
    assert statement == "SELECT $1::text"
    assert SECRET not in _values(span)
    assert "db.statement.parameters" not in attributes


async def test_a_query_outside_any_span_makes_no_span(
    spans: InMemorySpanExporter, pool: asyncpg.Pool
) -> None:
    assert await pool.fetchval("SELECT 1") == 1
    async with pool.acquire() as conn:
        await conn.execute("SELECT 2")
    assert _sql(spans) == []
    assert spans.get_finished_spans() == ()


async def test_instrumenting_twice_makes_one_span_per_query(
    spans: InMemorySpanExporter, pool: asyncpg.Pool
) -> None:
    instrument_libraries()
    instrument_libraries()
    with trace.get_tracer("test").start_as_current_span("handle"):
        await pool.fetchval("SELECT 1")
    assert len(_sql(spans)) == 1


class Server:
    """A local HTTP server noting the headers of each request it gets."""

    def __init__(self) -> None:
        self.port = free_port()
        self.headers: list[dict[str, str]] = []
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/Users", self._users)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _users(self, request: web.Request) -> web.Response:
        self.headers.append({k.lower(): v for k, v in request.headers.items()})
        return web.json_response({"Resources": []}, headers={"X-Served-By": "test"})


@pytest_asyncio.fixture
async def server() -> AsyncIterator[Server]:
    found = Server()
    await found.start()
    try:
        yield found
    finally:
        await found.stop()


async def _get_users(server: Server) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url) as client:
        return await client.get(
            "/Users",
            params={"filter": f'userName eq "{USER_NAME}"'},
            headers={"Authorization": TOKEN, "X-Request-Kind": "lookup"},
        )


async def test_a_request_inside_a_span_is_a_client_span_whose_context_reaches_the_server(
    spans: InMemorySpanExporter, server: Server
) -> None:
    with trace.get_tracer("test").start_as_current_span("handle") as parent:
        response = await _get_users(server)
    assert response.status_code == 200
    [span] = _http(spans)
    assert _is_child(span, parent)
    attributes: dict[str, Any] = dict(span.attributes or {})
    assert attributes.get("http.method", attributes.get("http.request.method")) == "GET"
    status = attributes.get("http.status_code", attributes.get("http.response.status_code"))
    assert status == 200
    url = attributes.get("http.url", attributes.get("url.full"))
    assert url == f"{server.url}/Users"
    # The server got the client span's W3C trace context.
    [received] = server.headers
    assert span.context is not None
    version, trace_id, span_id, _ = received["traceparent"].split("-")
    assert (version, trace_id, span_id) == (
        "00",
        format(span.context.trace_id, "032x"),
        format(span.context.span_id, "016x"),
    )
    assert TOKEN.split()[1] not in _values(span)
    assert USER_NAME not in _values(span)


async def test_captured_headers_never_include_credentials(
    spans: InMemorySpanExporter, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even an operator capturing every request header gets the Authorization one redacted."""
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST", ".*")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS", "x-custom")
    uninstrument_libraries()
    instrument_libraries()  # the httpx instrumentation reads the variables as it instruments
    with trace.get_tracer("test").start_as_current_span("handle"):
        await _get_users(server)
    [span] = _http(spans)
    attributes = span.attributes or {}
    assert attributes["http.request.header.x_request_kind"] == ("lookup",)
    assert attributes["http.request.header.authorization"] == ("[REDACTED]",)
    assert TOKEN.split()[1] not in _values(span)
