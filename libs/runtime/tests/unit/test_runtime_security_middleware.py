"""BodyLimitMiddleware and SecurityHeadersMiddleware on a tiny FastAPI app, in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from pydantic import BaseModel
from starlette.types import Message, Receive, Scope, Send

from accord.runtime.http import create_app, secure
from accord.runtime.problems import PROBLEM_JSON, install_problem_handlers
from accord.runtime.security.middleware import (
    SECURITY_HEADERS,
    BodyLimitMiddleware,
    SecurityHeadersMiddleware,
    override_csp,
)

LIMIT = 100
EXPECTED_HEADERS = {name.decode(): value.decode() for name, value in SECURITY_HEADERS}


class Note(BaseModel):
    text: str


class Seen:
    """What the endpoints saw: how many calls, the body sizes and the request headers."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.headers: list[dict[str, str]] = []


def build(seen: Seen, *, via_secure: bool = True) -> FastAPI:
    """A small app with the problem handlers, limited to LIMIT bytes."""
    app = FastAPI(docs_url=None, redoc_url=None)
    install_problem_handlers(app)

    @app.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        seen.headers.append(dict(request.headers))
        body = await request.body()
        seen.sizes.append(len(body))
        return {"size": len(body)}

    @app.post("/notes")
    async def notes(note: Note) -> dict[str, int]:
        seen.sizes.append(len(note.text))
        return {"size": len(note.text)}

    @app.get("/ok")
    async def ok() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/own-headers")
    async def own_headers() -> Response:
        return Response(
            "cached",
            headers={"Cache-Control": "public, max-age=60", "X-Frame-Options": "SAMEORIGIN"},
        )

    if via_secure:
        secure(app, max_body_bytes=LIMIT)
    else:
        app.add_middleware(BodyLimitMiddleware, max_bytes=LIMIT)
        app.add_middleware(SecurityHeadersMiddleware)
    return app


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture(params=["secure", "add_middleware"])
async def client(request: pytest.FixtureRequest, seen: Seen) -> AsyncIterator[httpx.AsyncClient]:
    app = build(seen, via_secure=request.param == "secure")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def assert_too_large(response: httpx.Response) -> None:
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["status"] == 413
    assert body["title"] == "Content Too Large"
    assert str(LIMIT) in body["detail"]


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in EXPECTED_HEADERS.items():
        assert response.headers.get_list(name) == [value], name


# --- BodyLimitMiddleware ---------------------------------------------------------------------


async def test_a_body_under_the_limit_passes(client: httpx.AsyncClient, seen: Seen) -> None:
    response = await client.post("/raw", content=b"x" * 10)
    assert response.status_code == 200
    assert response.json() == {"size": 10}


async def test_a_body_of_exactly_the_limit_passes(client: httpx.AsyncClient, seen: Seen) -> None:
    response = await client.post("/raw", content=b"x" * LIMIT)
    assert response.status_code == 200
    assert response.json() == {"size": LIMIT}


async def test_a_streamed_body_of_exactly_the_limit_passes(
    client: httpx.AsyncClient, seen: Seen
) -> None:
    response = await client.post("/raw", content=chunks(b"x" * 60, b"y" * 40))
    assert response.status_code == 200
    assert response.json() == {"size": LIMIT}


async def test_a_declared_length_over_the_limit_is_refused_unread(
    client: httpx.AsyncClient, seen: Seen
) -> None:
    response = await client.post("/raw", content=b"x" * (LIMIT + 1))
    assert_too_large(response)
    assert seen.sizes == []  # the endpoint never ran


async def test_a_huge_declared_length_is_refused_before_any_body(
    client: httpx.AsyncClient, seen: Seen
) -> None:
    response = await client.post("/raw", content=b"tiny", headers={"Content-Length": str(10**12)})
    assert_too_large(response)
    assert seen.sizes == []


@pytest.mark.parametrize("declared", ["abc", "-1", "1e3", "+5", "0x10", "", " 5"])
async def test_a_non_numeric_content_length_is_refused(
    client: httpx.AsyncClient, seen: Seen, declared: str
) -> None:
    response = await client.post("/raw", content=b"hello", headers={"Content-Length": declared})
    assert_too_large(response)
    assert seen.sizes == []


async def test_a_streamed_body_over_the_limit_is_refused(
    client: httpx.AsyncClient, seen: Seen
) -> None:
    # Not JSON: the route reads it itself (a JSON body is read first by the input guard).
    response = await client.post(
        "/raw",
        content=chunks(b"x" * 60, b"y" * 60, b"z" * 60),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert_too_large(response)
    # It really was streamed: no Content-Length was declared.
    assert seen.headers
    assert "content-length" not in seen.headers[0]
    assert seen.sizes == []


async def test_a_streamed_body_over_the_limit_in_one_chunk_is_refused(
    client: httpx.AsyncClient, seen: Seen
) -> None:
    response = await client.post("/raw", content=chunks(b"x" * (LIMIT + 1)))
    assert_too_large(response)


async def test_a_streamed_body_over_the_limit_to_a_model_endpoint_is_refused(
    client: httpx.AsyncClient, seen: Seen
) -> None:
    big = b'{"text": "' + b"x" * (2 * LIMIT) + b'"}'
    response = await client.post(
        "/notes",
        content=chunks(big[:50], big[50:]),
        headers={"Content-Type": "application/json"},
    )
    assert_too_large(response)


async def test_a_declared_body_over_the_limit_to_a_model_endpoint_is_refused(
    client: httpx.AsyncClient, seen: Seen
) -> None:
    response = await client.post("/notes", json={"text": "x" * (2 * LIMIT)})
    assert_too_large(response)
    assert seen.sizes == []


async def test_a_model_body_under_the_limit_passes(client: httpx.AsyncClient, seen: Seen) -> None:
    response = await client.post("/notes", json={"text": "hello"})
    assert response.status_code == 200
    assert response.json() == {"size": 5}


async def test_a_request_without_a_body_passes(client: httpx.AsyncClient) -> None:
    response = await client.get("/ok")
    assert response.status_code == 200


async def _no_message() -> Message:
    raise AssertionError("receive must not be called")


async def _no_send(message: Message) -> None:
    raise AssertionError("send must not be called")


@pytest.mark.parametrize("middleware", ["body", "headers"])
@pytest.mark.parametrize("scope_type", ["lifespan", "websocket"])
async def test_other_scopes_pass_straight_through(middleware: str, scope_type: str) -> None:
    calls: list[Scope] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append(scope)

    wrapped: Any = (
        BodyLimitMiddleware(inner, max_bytes=1)
        if middleware == "body"
        else SecurityHeadersMiddleware(inner)
    )
    scope: Scope = {"type": scope_type, "headers": [(b"content-length", b"999")]}
    await wrapped(scope, _no_message, _no_send)
    assert calls == [scope]


# --- SecurityHeadersMiddleware ---------------------------------------------------------------


async def test_security_headers_on_200(client: httpx.AsyncClient) -> None:
    response = await client.get("/ok")
    assert response.status_code == 200
    assert_security_headers(response)


async def test_security_headers_on_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON
    assert_security_headers(response)


async def test_security_headers_on_405(client: httpx.AsyncClient) -> None:
    response = await client.delete("/ok")
    assert response.status_code == 405
    assert_security_headers(response)


async def test_security_headers_on_declared_413(client: httpx.AsyncClient) -> None:
    response = await client.post("/raw", content=b"x" * (LIMIT + 1))
    assert_too_large(response)
    assert_security_headers(response)


async def test_security_headers_on_streamed_413(client: httpx.AsyncClient) -> None:
    response = await client.post("/raw", content=chunks(b"x" * 80, b"x" * 80))
    assert_too_large(response)
    assert_security_headers(response)


async def test_security_headers_on_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/notes", json={"wrong": 1})
    assert response.status_code == 400
    assert_security_headers(response)


async def test_the_apps_own_headers_win_and_are_not_duplicated(client: httpx.AsyncClient) -> None:
    response = await client.get("/own-headers")
    assert response.status_code == 200
    assert response.headers.get_list("cache-control") == ["public, max-age=60"]
    assert response.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    for name in ("x-content-type-options", "content-security-policy", "referrer-policy"):
        assert response.headers.get_list(name) == [EXPECTED_HEADERS[name]]


async def test_security_headers_added_once_to_a_raw_asgi_response() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"referrer-policy", b"same-origin")],
            }
        )
        await send({"type": "http.response.body", "body": b"ok"})

    transport = httpx.ASGITransport(app=SecurityHeadersMiddleware(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        response = await c.get("/")
    assert response.text == "ok"
    assert response.headers.get_list("referrer-policy") == ["same-origin"]
    assert response.headers.get_list("cache-control") == ["no-store"]
    assert response.headers.get_list("x-content-type-options") == ["nosniff"]


async def test_created_apps_get_the_headers_on_health_probes() -> None:
    async def ready() -> dict[str, Any]:
        return {"ready": True}

    app = create_app("svc", ready)
    secure(app, max_body_bytes=LIMIT)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        response = await c.get("/healthz")
    assert response.status_code == 200
    assert_security_headers(response)


# --- Per-path CSP overrides ------------------------------------------------------------------

PAGE_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; frame-ancestors 'none'"
ADMIN_CSP = "default-src 'none'; script-src 'self'; frame-ancestors 'none'"


def page_app() -> FastAPI:
    """An API route and a page whose prefix gets its own CSP."""
    app = FastAPI(docs_url=None, redoc_url=None)
    install_problem_handlers(app)

    @app.get("/page")
    async def page() -> Response:
        return Response("<p>page</p>", media_type="text/html")

    @app.get("/page/static/app.js")
    async def script() -> Response:
        return Response("//", media_type="text/javascript")

    @app.get("/pages")
    async def not_under_the_prefix() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/page/admin")
    async def nested() -> dict[str, str]:
        return {"status": "ok"}

    secure(app, max_body_bytes=LIMIT)
    override_csp(app, "/page", PAGE_CSP)
    override_csp(app, "/page/admin", ADMIN_CSP)
    return app


async def test_a_path_prefix_gets_its_own_csp_and_keeps_the_other_headers() -> None:
    transport = httpx.ASGITransport(app=page_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        for path in ("/page", "/page/static/app.js"):
            response = await c.get(path)
            assert response.status_code == 200
            assert response.headers.get_list("content-security-policy") == [PAGE_CSP]
            for name in ("x-content-type-options", "x-frame-options", "cache-control"):
                assert response.headers.get_list(name) == [EXPECTED_HEADERS[name]]
        # Its 404s are answered under the page's policy too, still without any script.
        missing = await c.get("/page/static/nothing.js")
        assert missing.status_code == 404
        assert missing.headers["content-security-policy"] == PAGE_CSP


@pytest.mark.parametrize("path", ["/page/admin", "/page/admin/x"])
async def test_the_longest_covering_prefix_wins(path: str) -> None:
    transport = httpx.ASGITransport(app=page_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        response = await c.get(path)
    assert response.headers.get_list("content-security-policy") == [ADMIN_CSP]


@pytest.mark.parametrize("path", ["/pages", "/ok", "/", "/pag", "/nowhere/page"])
async def test_other_paths_keep_the_strict_default(path: str) -> None:
    transport = httpx.ASGITransport(app=page_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        response = await c.get(path)
    assert response.headers.get_list("content-security-policy") == [
        EXPECTED_HEADERS["content-security-policy"]
    ]


@pytest.mark.parametrize("prefix", ["page", "/page/", "", "/"])
def test_a_csp_prefix_is_a_path_without_a_trailing_slash(prefix: str) -> None:
    with pytest.raises(ValueError, match="CSP prefix"):
        override_csp(FastAPI(), prefix, PAGE_CSP)
