"""InputGuardMiddleware (through secure()): NUL and control characters refused with a 400 in
the error format of the path, problem+json or SCIM, before any route or mount sees them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from pydantic import BaseModel
from starlette.types import Receive, Scope, Send

from accord.runtime.http import create_app, secure
from accord.runtime.problems import PROBLEM_JSON, SCIM_ERROR, SCIM_JSON, serve_scim_errors

LIMIT = 1000


class Note(BaseModel):
    text: str
    tags: dict[str, str] = {}


class Store:
    """A stand-in for PostgreSQL, which refuses U+0000 in text: what reached it."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def put(self, text: str) -> None:
        if "\x00" in text:
            raise AssertionError("a NUL reached the store")
        self.texts.append(text)


class EchoingScim:
    """A SCIM mount that, like scim2-server, repeats the request URL in a Location header."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if body:
            self.store.put(json.loads(body)["userName"])
        headers = [(b"content-type", SCIM_JSON.encode()), (b"location", scope["path"].encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})


async def _ready() -> dict[str, Any]:
    return {"ready": True}


@pytest.fixture
def store() -> Store:
    return Store()


@pytest.fixture
async def client(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app("guarded", _ready)

    @app.post("/notes")
    async def notes(note: Note) -> dict[str, int]:
        store.put(note.text)
        for key, value in note.tags.items():
            store.put(key + value)
        return {"stored": len(store.texts)}

    @app.get("/items/{item}")
    async def item(item: str, q: str = "") -> dict[str, str]:
        store.put(item + q)
        return {"item": item}

    @app.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    app.mount("/scim", EchoingScim(store))
    serve_scim_errors(app, "/scim")
    secure(app, max_body_bytes=LIMIT)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def assert_problem_400(response: httpx.Response) -> str:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["status"] == 400
    assert "location" not in response.headers
    detail: str = body["detail"]
    return detail


def assert_scim_400(response: httpx.Response, scim_type: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == SCIM_JSON
    assert response.json() == {
        "schemas": [SCIM_ERROR],
        "status": "400",
        "scimType": scim_type,
        "detail": response.json()["detail"],
    }
    assert "location" not in response.headers


@pytest.mark.parametrize("encoded", ["%00", "%0a", "%0D%0A", "%1f", "%7F"])
async def test_a_control_character_in_the_path_is_a_400_problem(
    client: httpx.AsyncClient, store: Store, encoded: str
) -> None:
    detail = assert_problem_400(await client.get(f"/items/a{encoded}b"))
    assert "control character" in detail
    assert store.texts == []


@pytest.mark.parametrize("encoded", ["%00", "%0d%0aX-Injected:%201", "%09"])
async def test_a_control_character_in_a_scim_path_is_invalid_path(
    client: httpx.AsyncClient, store: Store, encoded: str
) -> None:
    # The mount would repeat the path in its Location header: a NUL there kills the response.
    assert_scim_400(await client.get(f"/scim/v2/Users/a{encoded}b"), "invalidPath")


async def test_a_nul_in_the_query_is_a_400(client: httpx.AsyncClient, store: Store) -> None:
    assert_problem_400(await client.get("/items/a", params={"q": "x\x00y"}))
    assert_problem_400(await client.get("/items/a", params={"q\x00": "y"}))
    assert_scim_400(
        await client.get("/scim/v2/Users", params={"filter": 'userName eq "a\x00"'}),
        "invalidValue",
    )
    assert store.texts == []


@pytest.mark.parametrize(
    "body",
    [
        {"text": "a\x00b"},
        {"text": "fine", "tags": {"k\x00": "v"}},
        {"text": "fine", "tags": {"k": "\x00"}},
    ],
)
async def test_a_nul_in_a_json_body_is_a_400(
    client: httpx.AsyncClient, store: Store, body: dict[str, Any]
) -> None:
    detail = assert_problem_400(await client.post("/notes", json=body))
    assert "NUL" in detail
    assert store.texts == []


async def test_a_nul_in_a_json_body_without_a_media_type_or_in_utf16_is_a_400(
    client: httpx.AsyncClient, store: Store
) -> None:
    plain = json.dumps({"text": "a\x00b"}).encode()
    assert_problem_400(await client.post("/notes", content=plain))
    utf16 = json.dumps({"text": "a\x00b"}).encode("utf-16")
    assert_problem_400(
        await client.post("/notes", content=utf16, headers={"Content-Type": "application/json"})
    )
    assert store.texts == []


async def test_a_nul_in_a_scim_body_is_invalid_value(
    client: httpx.AsyncClient, store: Store
) -> None:
    response = await client.post(
        "/scim/v2/Users",
        json={"userName": "a\x00b"},
        headers={"Content-Type": SCIM_JSON},
    )
    assert_scim_400(response, "invalidValue")
    assert store.texts == []


async def test_an_escaped_backslash_before_u0000_is_no_nul(
    client: httpx.AsyncClient, store: Store
) -> None:
    response = await client.post("/notes", json={"text": "C:\\u0000"})
    assert response.status_code == 200, response.text
    assert store.texts == ["C:\\u0000"]


async def test_clean_bodies_reach_the_routes_whole(client: httpx.AsyncClient, store: Store) -> None:
    response = await client.post("/notes", json={"text": "hello", "tags": {"a": "b"}})
    assert response.json() == {"stored": 2}
    scim = await client.post("/scim/v2/Users", json={"userName": "ada"})
    assert scim.status_code == 200
    assert scim.headers["location"] == "/scim/v2/Users"
    assert store.texts == ["hello", "ab", "ada"]


async def test_a_body_that_is_not_json_is_left_to_the_route(client: httpx.AsyncClient) -> None:
    # Not the guard's to judge: the route refuses malformed JSON in its own words.
    broken = await client.post("/notes", content=b'{"text": "\\u0000', headers=_JSON)
    assert broken.status_code == 400
    assert broken.json()["errors"][0]["location"].startswith("body")
    binary = await client.post(
        "/raw", content=b"\x00\x01", headers={"Content-Type": "application/octet-stream"}
    )
    assert binary.json() == {"size": 2}


async def test_the_body_limit_still_holds_for_json_bodies(client: httpx.AsyncClient) -> None:
    response = await client.post("/notes", content=_streamed(b"x" * (LIMIT + 10)), headers=_JSON)
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM_JSON


async def test_a_body_over_the_limit_under_scim_is_a_scim_error(client: httpx.AsyncClient) -> None:
    response = await client.post("/scim/v2/Users", content=b"x" * (LIMIT + 1), headers=_JSON)
    assert response.status_code == 413
    assert response.headers["content-type"] == SCIM_JSON
    assert response.json()["status"] == "413"


def test_a_scim_prefix_is_a_path_without_a_trailing_slash() -> None:
    app = FastAPI()
    for bad in ("scim", "/scim/"):
        with pytest.raises(ValueError, match="SCIM prefix"):
            serve_scim_errors(app, bad)


_JSON = {"Content-Type": "application/json"}


async def _streamed(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 100):
        yield data[start : start + 100]
