"""SQL and outbound HTTP spans: asyncpg and httpx, instrumented once per process.

The OpenTelemetry instrumentations patch the libraries' classes, so the spans join whatever
trace is current: a query or a request made while an event is handled is a child of its
consumer span, in the flow's one trace.

What they never record:

* SQL: statement parameters (``capture_parameters=False``, said here rather than left to the
  default). The statement text is kept: its values are ``$n`` placeholders.
* HTTP: the query string (a SCIM filter names a user); request and response headers, unless
  an operator lists them in OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_*, and even then
  the credential headers are redacted.

A query made outside any span makes none: the consumer loop's idle polling and the outbox
relay query the database every few hundred milliseconds, and each query would otherwise be
a trace of its own, one root span long, drowning the flows' traces. Nor does the reset a
pool runs on each connection given back. Outbound HTTP keeps its root spans: a request is
never idle polling (an OIDC key fetch, a push delivery).
"""

from __future__ import annotations

import os
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from opentelemetry import trace
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor, RequestInfo
from opentelemetry.trace import Span

#: Headers redacted even where an operator asks for every header to be captured.
CREDENTIAL_HEADERS = ("authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key")
_SANITIZE_ENV = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"
#: The URL attribute of either semantic-convention generation the httpx instrumentation writes.
_URL_ATTRIBUTES = ("http.url", "url.full")

_lock = threading.Lock()


def in_a_span() -> bool:
    """Whether a (valid) span is current: the caller is part of some trace."""
    return trace.get_current_span().get_span_context().is_valid


class SqlUnderASpan(AsyncPGInstrumentor):
    """asyncpg's instrumentation, making spans only for queries made inside a span.

    The instrumentation's own wrappers are the ones overridden: they receive every call of
    the patched asyncpg methods, so a query outside a span goes straight to asyncpg.
    """

    async def _do_execute(self, func: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if not in_a_span() or _is_pool_reset(instance, args):
            return await func(*args, **kwargs)
        return await super()._do_execute(func, instance, args, kwargs)  # type: ignore[no-untyped-call]

    async def _do_cursor_execute(self, func: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if not in_a_span():
            return await func(*args, **kwargs)
        return await super()._do_cursor_execute(func, instance, args, kwargs)  # type: ignore[no-untyped-call]

    async def _do_prepared_execute(self, func: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if not in_a_span():
            return await func(*args, **kwargs)
        return await super()._do_prepared_execute(func, instance, args, kwargs)  # type: ignore[no-untyped-call]


def _is_pool_reset(connection: Any, args: Any) -> bool:
    """Whether the query is the one a pool runs on every connection it takes back (which
    would double each handling's SQL spans, saying nothing of the handling)."""
    reset_query = getattr(connection, "get_reset_query", None)
    return bool(args) and callable(reset_query) and args[0] == reset_query()


def instrument_libraries() -> None:
    """Instrument asyncpg and httpx, once: a second call (another service set up in the same
    process) changes nothing, so no query or request is ever wrapped twice."""
    with _lock:
        sql = SqlUnderASpan(capture_parameters=False)  # type: ignore[no-untyped-call]
        if not sql.is_instrumented_by_opentelemetry:
            sql.instrument()
        http = HTTPXClientInstrumentor()
        if not http.is_instrumented_by_opentelemetry:
            _redact_credential_headers()
            http.instrument(request_hook=_strip_query, async_request_hook=_strip_query_async)


def uninstrument_libraries() -> None:
    """Undo instrument_libraries (tests)."""
    with _lock:
        for instrumentor in (SqlUnderASpan(), HTTPXClientInstrumentor()):  # type: ignore[no-untyped-call]
            if instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.uninstrument()


def without_query(url: str) -> str:
    """The URL without its query string and fragment."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _strip_query(span: Span, request: RequestInfo) -> None:
    """The request hook: the span's URL loses its query (a SCIM filter names a user)."""
    attributes = getattr(span, "attributes", None) or {}
    for name in _URL_ATTRIBUTES:
        value = attributes.get(name)
        if isinstance(value, str):
            span.set_attribute(name, without_query(value))


async def _strip_query_async(span: Span, request: RequestInfo) -> None:
    _strip_query(span, request)


def _redact_credential_headers() -> None:
    """Credential headers join the operator's list of headers to redact, which the httpx
    instrumentation reads as it instruments."""
    listed = [h.strip() for h in os.environ.get(_SANITIZE_ENV, "").split(",") if h.strip()]
    missing = [h for h in CREDENTIAL_HEADERS if h not in {x.lower() for x in listed}]
    if missing:
        os.environ[_SANITIZE_ENV] = ",".join([*listed, *missing])
