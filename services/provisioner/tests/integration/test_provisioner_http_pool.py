"""httpx over the aiohttp pool against real local servers: what httpx sends arrives as sent,
what the server answers comes back as httpx would read it, failures are httpx's errors, and the
OpenTelemetry instrumentation still sees every request."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpcore
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pydantic import SecretStr

from accord.provisioner.adapters.http_pool import (
    AiohttpPool,
    _aiohttp_errors_as_httpcore,
    async_transport,
    env_proxy_mounts,
)
from accord.provisioner.adapters.scim import ScimConnector
from accord.provisioner.adapters.webhook import WebhookConnector, WebhookSettings
from accord.runtime.testing import recorded_spans
from accord.stack.network import free_port

pytestmark = pytest.mark.integration

OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"

Answer = Callable[["Received", asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Received:
    """One request as the server read it off the socket."""

    head: bytes
    body: bytes

    @property
    def request_line(self) -> bytes:
        return self.head.split(b"\r\n", 1)[0]

    def header(self, name: bytes) -> bytes | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None


@dataclass
class RawServer:
    """An HTTP/1.1 server on a raw asyncio socket, so the test sees the very bytes sent."""

    answer: Answer
    tls: ssl.SSLContext | None = None
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for handler in self._handlers:  # a server that never answers is still waiting
            handler.cancel()
        await asyncio.gather(*self._handlers)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request = Received(head, b"")
            length = request.header(b"content-length")
            if length is not None:
                request.body = await reader.readexactly(int(length))
            self.received.append(request)
            await self.answer(request, writer)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        except asyncio.CancelledError:
            # Ended by __aexit__; ending quietly (Python 3.11's stream server logs a handler
            # that ends cancelled as an error).
            pass
        finally:
            writer.close()


def answering(raw: bytes) -> Answer:
    async def answer(_: Received, writer: asyncio.StreamWriter) -> None:
        writer.write(raw)
        await writer.drain()

    return answer


async def never_answering(_: Received, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(30)


async def hanging_up(_: Received, writer: asyncio.StreamWriter) -> None:
    writer.transport.abort()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=async_transport(), timeout=5.0) as made:
        yield made


async def test_a_query_with_quotes_and_spaces_arrives_byte_for_byte_as_httpx_encoded_it(
    client: httpx.AsyncClient,
) -> None:
    params = {"filter": 'userName eq "ada lovelace" and x eq "a+b&c=d/é"', "count": "1"}
    async with RawServer(answering(OK)) as server:
        response = await client.get(f"{server.url}/v2/Users", params=params)
    expected = httpx.Request("GET", f"{server.url}/v2/Users", params=params).url.raw_path
    assert response.status_code == 200
    assert b'"' not in expected  # httpx did encode the quotes: the test checks a real encoding
    assert server.received[0].request_line == b"GET " + expected + b" HTTP/1.1"


async def test_the_requests_go_through_the_aiohttp_pool(client: httpx.AsyncClient) -> None:
    """The transport hands httpx 0.28's private ``_pool`` each request: if httpx stopped doing
    so, httpcore would answer (with its network_stream) and the pool would have no session."""
    transport = client._transport
    assert isinstance(transport, httpx.AsyncHTTPTransport)
    pool = transport._pool
    assert isinstance(pool, AiohttpPool)
    async with RawServer(answering(OK)) as server:
        response = await client.get(server.url)
    assert response.text == "ok"
    assert "network_stream" not in response.extensions
    assert pool._session is not None


async def test_a_post_body_and_its_headers_arrive(client: httpx.AsyncClient) -> None:
    body = b'{"operation":"create","user_id":"u-1"}'
    async with RawServer(answering(OK)) as server:
        await client.post(
            f"{server.url}/hook",
            content=body,
            headers={"Content-Type": "application/json", "X-Accord-Signature": "v1=abc"},
        )
    received = server.received[0]
    assert received.request_line == b"POST /hook HTTP/1.1"
    assert received.body == body
    assert received.header(b"content-type") == b"application/json"
    assert received.header(b"x-accord-signature") == b"v1=abc"
    assert received.header(b"content-length") == str(len(body)).encode()
    assert received.header(b"host") == f"127.0.0.1:{server.port}".encode()
    assert received.header(b"user-agent") == f"python-httpx/{httpx.__version__}".encode()


async def test_a_streamed_upload_is_sent_whole_with_its_length(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"first,"
        yield b"second"

    async with RawServer(answering(OK)) as server:
        await client.post(server.url, content=chunks())
    received = server.received[0]
    assert received.header(b"transfer-encoding") is None
    assert received.body == b"first,second"


async def test_status_headers_and_a_gzip_body_come_back_as_httpx_reads_them(
    client: httpx.AsyncClient,
) -> None:
    text = '{"id": "2819c223", "userName": "ada"}'
    packed = gzip.compress(text.encode())
    raw = (
        b"HTTP/1.1 201 Created\r\nContent-Type: application/scim+json\r\n"
        b"Content-Encoding: gzip\r\nLocation: /v2/Users/2819c223\r\nSet-Cookie: a=1\r\n"
        b"Set-Cookie: b=2\r\nContent-Length: " + str(len(packed)).encode() + b"\r\n\r\n" + packed
    )
    async with RawServer(answering(raw)) as server:
        response = await client.get(server.url)
    assert response.status_code == 201
    assert response.reason_phrase == "Created"
    assert response.http_version == "HTTP/1.1"
    assert response.headers["location"] == "/v2/Users/2819c223"
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert response.text == text
    assert response.json()["userName"] == "ada"


async def test_a_refused_connection_is_a_connect_error(client: httpx.AsyncClient) -> None:
    with pytest.raises(httpx.ConnectError):
        await client.get(f"http://127.0.0.1:{free_port()}/")


async def test_a_server_that_never_answers_is_a_read_timeout() -> None:
    async with (
        httpx.AsyncClient(transport=async_transport(), timeout=0.2) as client,
        RawServer(never_answering) as server,
    ):
        with pytest.raises(httpx.ReadTimeout):
            await client.get(server.url)


async def test_a_server_that_hangs_up_without_answering_is_a_transport_error(
    client: httpx.AsyncClient,
) -> None:
    async with RawServer(hanging_up) as server:
        with pytest.raises(httpx.TransportError):
            await client.post(server.url, content=b"x")


async def test_a_malformed_answer_is_a_remote_protocol_error(client: httpx.AsyncClient) -> None:
    async with RawServer(answering(b"NOT HTTP AT ALL\r\n\r\n")) as server:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(server.url)


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no public authority signed, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "accord-test-target")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "target.pem", directory / "target.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def tls_target(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    cert_file, key_file = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file


async def test_tls_verifies_the_target_against_public_authorities(
    client: httpx.AsyncClient, tls_target: tuple[ssl.SSLContext, Path]
) -> None:
    context, _ = tls_target
    async with RawServer(answering(OK), tls=context) as server:
        with pytest.raises(httpx.ConnectError, match="certificate verify failed"):
            await client.get(server.url)
    assert server.received == []


async def test_tls_trusts_the_authorities_ssl_cert_file_names(
    monkeypatch: pytest.MonkeyPatch, tls_target: tuple[ssl.SSLContext, Path]
) -> None:
    context, cert_file = tls_target
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    async with (
        httpx.AsyncClient(transport=async_transport(), timeout=5.0) as client,
        RawServer(answering(OK), tls=context) as server,
    ):
        response = await client.get(f"{server.url}/v2/Users")
    assert response.text == "ok"
    assert server.received[0].request_line == b"GET /v2/Users HTTP/1.1"


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (aiohttp.ConnectionTimeoutError("connect"), httpcore.ConnectTimeout),
        (aiohttp.SocketTimeoutError("read"), httpcore.ReadTimeout),
        (TimeoutError(), httpcore.ReadTimeout),
        (aiohttp.ServerDisconnectedError(), httpcore.RemoteProtocolError),
        (aiohttp.ClientPayloadError("cut"), httpcore.ReadError),
        (aiohttp.ClientOSError(104, "reset"), httpcore.ReadError),
        (aiohttp.InvalidURL("nowhere"), httpcore.UnsupportedProtocol),
        (aiohttp.ClientError("other"), httpcore.NetworkError),
    ],
)
def test_aiohttp_errors_become_the_most_specific_httpcore_error(
    raised: Exception, expected: type[Exception]
) -> None:
    with pytest.raises(expected) as caught, _aiohttp_errors_as_httpcore():
        raise raised
    assert type(caught.value) is expected


async def test_the_environments_proxy_still_carries_the_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with RawServer(answering(OK)) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "localhost")
        async with httpx.AsyncClient(
            transport=async_transport(), mounts=env_proxy_mounts(), timeout=5.0
        ) as client:
            await client.get("http://target.invalid/v2/Users")
    assert proxy.received[0].request_line == b"GET http://target.invalid/v2/Users HTTP/1.1"


def test_no_proxy_hosts_stay_on_the_clients_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    mounts = env_proxy_mounts()
    assert isinstance(mounts["https://"], httpx.AsyncHTTPTransport)
    assert mounts["all://127.0.0.1"] is None


async def test_the_connectors_send_through_the_aiohttp_pool() -> None:
    scim = ScimConnector("scim", "http://127.0.0.1:1/v2", SecretStr("t"))
    hook = WebhookConnector(
        "hook", WebhookSettings(url="http://127.0.0.1:1/hook", secret=SecretStr("s" * 32))
    )
    try:
        for made in (scim._client, hook._client):
            transport = made._transport
            assert isinstance(transport, httpx.AsyncHTTPTransport)
            assert isinstance(transport._pool, AiohttpPool)
    finally:
        await scim.close()
        await hook.close()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span ended during the test, httpx and asyncpg instrumented as setup_tracing does."""
    with recorded_spans() as exporter:
        yield exporter


async def test_the_instrumentation_still_makes_a_client_span_and_sends_its_context(
    spans: InMemorySpanExporter,
) -> None:
    async with (
        httpx.AsyncClient(transport=async_transport(), timeout=5.0) as client,
        RawServer(answering(OK)) as server,
    ):
        with trace.get_tracer("test").start_as_current_span("handling"):
            await client.get(f"{server.url}/v2/Users")
    [span] = [
        s
        for s in spans.get_finished_spans()
        if s.kind == SpanKind.CLIENT
        and s.instrumentation_scope is not None
        and s.instrumentation_scope.name == "opentelemetry.instrumentation.httpx"
    ]
    traceparent = server.received[0].header(b"traceparent")
    assert traceparent is not None
    _, trace_id, span_id, _ = traceparent.decode().split("-")
    assert int(trace_id, 16) == span.context.trace_id
    assert int(span_id, 16) == span.context.span_id
