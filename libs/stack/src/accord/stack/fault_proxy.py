"""A fault-injecting HTTP reverse proxy, in-process, for tests of how Accord meets a bad target.

The proxy listens on 127.0.0.1 and forwards every request to an upstream base URL, unless a
test told it to misbehave:

- `passthrough()`: forward everything (the initial mode);
- `status(code, times=N, retry_after=S)`: answer the next N requests itself with `code` (and
  a `Retry-After: S` header), then pass through again; `times=None` means forever;
- `down(seconds)`: close the listening socket and every open connection, so that clients get
  "connection refused", then listen again on the same port after `seconds`.

It speaks just enough HTTP/1.1 for an httpx client: one request per connection (it answers
with `Connection: close`), bodies by Content-Length. Every request it sees is recorded, so a
test can count what reached the real target by method (`count("POST")`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from http import HTTPStatus

import httpx

from accord.stack.lifecycle import Startable

log = logging.getLogger(__name__)

_HOST = "127.0.0.1"
_MAX_HEAD = 64 * 1024
#: Headers that describe one connection or one encoding of the body, never forwarded.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "content-encoding",
    }
)


@dataclass(frozen=True)
class ProxiedRequest:
    """One request the proxy received, and whether it reached the upstream."""

    method: str
    path: str
    body: bytes
    forwarded: bool
    status: int


@dataclass
class _Injection:
    """Answer requests with this status instead of forwarding them."""

    status: int
    remaining: int | None
    """Requests still to answer so; None: all of them."""
    retry_after: int | None


class _BadRequest(Exception):
    """The client sent something this small proxy does not parse."""


class FaultProxy(Startable):
    """A reverse proxy in front of `upstream` whose faults a test switches on and off."""

    def __init__(self, upstream: str, *, port: int = 0, timeout_s: float = 10.0) -> None:
        """Forward to upstream (a base URL); listen on port (0: a free one, kept afterwards)."""
        self.upstream = upstream.rstrip("/")
        self.port = port
        self.requests: list[ProxiedRequest] = []
        """Every request received since the last `reset()`, in order."""
        self._timeout_s = timeout_s
        self._injection: _Injection | None = None
        self._server: asyncio.Server | None = None
        self._client: httpx.AsyncClient | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._reopen: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        """Where clients send requests (the upstream's paths apply unchanged)."""
        return f"http://{_HOST}:{self.port}"

    @property
    def is_up(self) -> bool:
        """True while the proxy accepts connections."""
        return self._server is not None

    async def start(self) -> None:
        """Open the upstream client and start listening."""
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.upstream, timeout=self._timeout_s)
        await self._listen()
        log.info("fault proxy on %s in front of %s", self.base_url, self.upstream)

    async def stop(self) -> None:
        """Stop listening, cancel a pending reopen, close the upstream client; idempotent."""
        await self._cancel_reopen()
        await self._close()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def passthrough(self) -> None:
        """Forward every request from now on."""
        self._injection = None

    def status(
        self, code: int, *, times: int | None = None, retry_after: int | None = None
    ) -> None:
        """Answer the next `times` requests (None: all) with `code`, then pass through."""
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for forever)")
        self._injection = _Injection(code, times, retry_after)

    async def down(self, seconds: float) -> None:
        """Refuse connections now (listener and open connections closed); back after seconds."""
        await self._cancel_reopen()
        await self._close()
        self._reopen = asyncio.create_task(self._reopen_after(seconds))

    async def up(self) -> None:
        """Listen again now, cutting a `down()` short (nothing to do if already up)."""
        await self._cancel_reopen()
        if not self.is_up:
            await self._listen()

    async def wait_up(self) -> None:
        """Return once the proxy listens again after `down()` (at once if it never went down)."""
        if self._reopen is not None:
            await asyncio.shield(self._reopen)

    def reset(self) -> None:
        """Pass through and forget the requests seen so far (a listener that is down stays so)."""
        self.passthrough()
        self.requests.clear()

    def count(
        self, method: str | None = None, *, forwarded: bool = True, containing: str | None = None
    ) -> int:
        """Requests that reached the upstream (or, forwarded=False, were answered with a
        fault), of this method and with this text in their body when given."""
        return sum(
            r.forwarded == forwarded
            and (method is None or r.method == method.upper())
            and (containing is None or containing.encode() in r.body)
            for r in self.requests
        )

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, _HOST, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await server.wait_closed()

    async def _reopen_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self._listen()
        log.info("fault proxy back on %s", self.base_url)

    async def _cancel_reopen(self) -> None:
        task, self._reopen = self._reopen, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            status, headers, body = await self._answer(reader)
            await _write_response(writer, status, headers, body)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away, or the proxy went down under it
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(
        self, reader: asyncio.StreamReader
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Read one request; answer it with an injected fault or the upstream's response."""
        try:
            method, path, headers, body = await _read_request(reader)
        except _BadRequest as error:
            return 400, [("Content-Type", "text/plain")], str(error).encode()
        injected = self._take_injection()
        if injected is not None:
            self.requests.append(ProxiedRequest(method, path, body, False, injected.status))
            return _fault_response(injected)
        status, response_headers, response_body = await self._forward(method, path, headers, body)
        self.requests.append(ProxiedRequest(method, path, body, True, status))
        return status, response_headers, response_body

    def _take_injection(self) -> _Injection | None:
        """The fault for this request, if any, counting it against `times`."""
        injection = self._injection
        if injection is None:
            return None
        if injection.remaining is not None:
            injection.remaining -= 1
            if injection.remaining <= 0:
                self._injection = None
        return injection

    async def _forward(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        assert self._client is not None, "start() the proxy first"
        try:
            response = await self._client.request(
                method, path, headers=_end_to_end(headers), content=body
            )
        except httpx.HTTPError as error:
            detail = f"fault proxy: upstream failed: {type(error).__name__}"
            return 502, [("Content-Type", "text/plain")], detail.encode()
        return response.status_code, _end_to_end(list(response.headers.items())), response.content


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, list[tuple[str, str]], bytes]:
    """Method, path with query, headers and body of one HTTP/1.1 request."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise _BadRequest("request head too large") from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise _BadRequest(f"bad request line {lines[0]!r}")
    method, path, _ = parts
    headers = [_header(line) for line in lines[1:] if line]
    names = {name.lower(): value for name, value in headers}
    if "chunked" in names.get("transfer-encoding", "").lower():
        raise _BadRequest("chunked request bodies are not supported")
    length = int(names.get("content-length", "0") or "0")
    body = await reader.readexactly(length) if length else b""
    return method.upper(), path, headers, body


def _header(line: str) -> tuple[str, str]:
    name, separator, value = line.partition(":")
    if not separator:
        raise _BadRequest(f"bad header line {line!r}")
    return name.strip(), value.strip()


def _end_to_end(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The headers that travel on to the other side."""
    return [(name, value) for name, value in headers if name.lower() not in _HOP_BY_HOP]


def _fault_response(injection: _Injection) -> tuple[int, list[tuple[str, str]], bytes]:
    """A SCIM-style error (RFC 7644 section 3.12) saying the fault was injected."""
    headers = [("Content-Type", "application/scim+json")]
    if injection.retry_after is not None:
        headers.append(("Retry-After", str(injection.retry_after)))
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": str(injection.status),
        "detail": f"injected by the fault proxy ({injection.status})",
    }
    return injection.status, headers, json.dumps(body).encode()


async def _write_response(
    writer: asyncio.StreamWriter, status: int, headers: list[tuple[str, str]], body: bytes
) -> None:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    writer.write("\r\n".join(lines).encode("latin-1") + body)
    await writer.drain()
