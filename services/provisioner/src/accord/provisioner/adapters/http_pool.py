"""httpx over aiohttp: the connectors' HTTP client API stays httpx, the wire work is aiohttp's.

Why: httpcore on anyio costs about 2.2 ms of CPU per request against a target that closes
every connection, aiohttp under the same httpx client about 1.2 ms; the provisioner spent
44 % of its CPU in httpx/httpcore/anyio.

Why the pool and not the transport: the OpenTelemetry httpx instrumentation wraps
``httpx.AsyncHTTPTransport.handle_async_request`` at class level (client spans, the
``traceparent`` sent to targets), so the transport stays that class and only its connection
pool, the ``_pool`` it hands each ``httpcore.Request`` to, is replaced. ``_pool`` is a private
attribute of httpx 0.28 (pinned in uv.lock); tests/integration/test_provisioner_http_pool.py
fails if httpx stops routing requests through it.

What it does not do: HTTP/2 (the connectors never asked for it), a write timeout (aiohttp has
none), proxies (``env_proxy_mounts`` keeps the environment's proxies on httpx's own pools).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterable, Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType

import aiohttp
import httpcore
import httpx
import yarl
from httpx._utils import get_environment_proxies

#: Headers aiohttp would add on its own; httpx sends what it means to send.
_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")


class AiohttpPool:
    """An httpcore-compatible connection pool backed by one aiohttp session.

    The session is made on the first request, inside the running event loop (aiohttp binds it
    to that loop). Each answer is read whole before it is returned, so its connection goes
    back to aiohttp's pool at once and nothing is left to release: the connectors' answers
    are small JSON documents.
    """

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        *,
        max_connections: int = 100,
        keepalive_expiry_s: float = 5.0,
    ) -> None:
        self._ssl_context = ssl_context
        self._max_connections = max_connections
        self._keepalive_expiry_s = keepalive_expiry_s
        self._session: aiohttp.ClientSession | None = None

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections,
                    keepalive_timeout=self._keepalive_expiry_s,
                    ssl=self._ssl_context,
                ),
                cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps the cookies
                auto_decompress=False,  # httpx decodes Content-Encoding
                skip_auto_headers=_AUTO_HEADERS,
                trust_env=False,  # httpx (the client) decides about proxies
            )
        return self._session

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        """Send the request and read its whole answer; aiohttp's errors as httpcore's."""
        body = await _read_body(request)
        target = _url(request.url)
        # The body goes whole, with its Content-Length: a chunked upload is sent as one.
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in request.headers
            if name.lower() != b"transfer-encoding"
        ]
        with _aiohttp_errors_as_httpcore():
            async with self._session_now().request(
                request.method.decode("ascii"),
                target,
                headers=headers,
                data=body or None,
                allow_redirects=False,  # httpx follows redirects itself, if asked
                timeout=_client_timeout(request.extensions.get("timeout", {})),
            ) as response:
                content = await response.read()
                version = response.version or aiohttp.HttpVersion11
                return httpcore.Response(
                    response.status,
                    headers=list(response.raw_headers),
                    content=content,
                    extensions={
                        "http_version": f"HTTP/{version.major}.{version.minor}".encode(),
                        "reason_phrase": (response.reason or "").encode("latin-1"),
                    },
                )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> AiohttpPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.aclose()


def async_transport() -> httpx.AsyncHTTPTransport:
    """An ``httpx.AsyncHTTPTransport`` (the class the instrumentation wraps) over aiohttp.

    Its TLS context is the one httpx would make (certifi, or SSL_CERT_FILE / SSL_CERT_DIR).
    """
    transport = httpx.AsyncHTTPTransport()
    # httpx 0.28 private attribute: handle_async_request calls self._pool.handle_async_request
    # with an httpcore.Request inside map_httpcore_exceptions(). Pinned in uv.lock.
    transport._pool = AiohttpPool(httpx.create_ssl_context())  # type: ignore[assignment]
    return transport


def env_proxy_mounts() -> dict[str, httpx.AsyncBaseTransport | None]:
    """The environment's proxies (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY) as client
    mounts: httpx applies them only when the client makes its own transport, and the
    connectors have always honoured them. Proxied requests keep httpx's own pools; a NO_PROXY
    entry (None) sends its hosts to the client's transport, aiohttp's."""
    return {
        pattern: None if proxy is None else httpx.AsyncHTTPTransport(proxy=proxy)
        for pattern, proxy in get_environment_proxies().items()
    }


def _url(url: httpcore.URL) -> yarl.URL:
    """The URL as httpx wrote it: ``encoded=True`` so that what httpx percent-encoded (a SCIM
    filter's quotes and spaces) is sent as is, not encoded again."""
    host = url.host.decode("ascii")
    if ":" in host:  # an IPv6 address, which httpx hands over without its brackets
        host = f"[{host}]"
    port = f":{url.port}" if url.port is not None else ""
    return yarl.URL(
        f"{url.scheme.decode('ascii')}://{host}{port}{url.target.decode('ascii')}", encoded=True
    )


async def _read_body(request: httpcore.Request) -> bytes:
    """The whole body: httpx hands its stream over (bytes already, for the connectors)."""
    stream = request.stream
    assert isinstance(stream, AsyncIterable)
    return b"".join([chunk async for chunk in stream])


def _client_timeout(timeout: Mapping[str, float | None]) -> aiohttp.ClientTimeout:
    """httpx's four timeouts in aiohttp's terms.

    aiohttp's ``connect`` covers waiting for a pooled connection and making a new one, so it
    gets httpx's pool and connect timeouts together; ``sock_connect`` is the connect alone,
    ``sock_read`` the wait for each read (the answer's head, then each chunk of its body).
    There is no write timeout in aiohttp.
    """
    pool, connect, read = timeout.get("pool"), timeout.get("connect"), timeout.get("read")
    acquire = None if pool is None or connect is None else pool + connect
    return aiohttp.ClientTimeout(total=None, connect=acquire, sock_connect=connect, sock_read=read)


@contextmanager
def _aiohttp_errors_as_httpcore() -> Iterator[None]:
    """aiohttp's errors as the httpcore ones httpx maps on (the connectors catch
    httpx.TimeoutException and httpx.TransportError); most specific first."""
    try:
        yield
    except aiohttp.ConnectionTimeoutError as error:
        raise httpcore.ConnectTimeout(str(error)) from error
    except TimeoutError as error:  # aiohttp.ServerTimeoutError (sock_read) is one
        # The peer took too long to answer (or to send the rest of its answer).
        raise httpcore.ReadTimeout(str(error) or "timed out") from error
    except aiohttp.ClientConnectorError as error:
        raise httpcore.ConnectError(str(error)) from error
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientResponseError) as error:
        raise httpcore.RemoteProtocolError(str(error)) from error
    except aiohttp.InvalidURL as error:
        raise httpcore.UnsupportedProtocol(str(error)) from error
    except aiohttp.NonHttpUrlClientError as error:
        raise httpcore.UnsupportedProtocol(str(error)) from error
    except (aiohttp.ClientOSError, aiohttp.ClientPayloadError) as error:
        raise httpcore.ReadError(str(error)) from error
    except aiohttp.ClientError as error:
        raise httpcore.NetworkError(str(error)) from error
