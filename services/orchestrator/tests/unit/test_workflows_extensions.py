"""The call_extension task: the signed call against a real local HTTP server, the signed
callback through the API, and the timeout policy."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiohttp import web
from fastapi import FastAPI

from accord.orchestrator.workflows import callback_api
from accord.orchestrator.workflows.callback_api import AwaitedCallback, CallbackState
from accord.orchestrator.workflows.extensions import (
    CALLBACK_TOKEN_HEADER,
    ExtensionCall,
    ExtensionClient,
    ExtensionRejected,
    ExtensionUnavailable,
    InvalidOutputs,
    OnTimeout,
    Outputs,
    callback_deadline,
    new_callback,
    on_timeout,
    parse_outputs,
)
from accord.runtime.problems import PROBLEM_JSON, install_problem_handlers
from accord.runtime.signing import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
    signed_headers,
    verify_signature,
)
from accord.stack.network import free_port

SECRET = "whsec_ext-4b1d9e"
SECRET_ENV = "ACCORD_TEST_EXTENSION_SECRET"
ENVIRON = {SECRET_ENV: SECRET}
RUN, TASK = "run-7", "hand-over-mailbox"

# --- the callback API ---------------------------------------------------------------------


@dataclass
class Engine:
    """The engine's side of the ports, in memory: what it awaits and what it was given."""

    awaited: dict[tuple[str, str], AwaitedCallback] = field(default_factory=dict)
    delivered: list[tuple[str, str, Outputs]] = field(default_factory=list)

    def wait(self, run_id: str, task_id: str, token: str, state: CallbackState) -> None:
        self.awaited[(run_id, task_id)] = AwaitedCallback(state, SECRET.encode(), token)

    async def lookup(self, run_id: str, task_id: str) -> AwaitedCallback | None:
        return self.awaited.get((run_id, task_id))

    async def deliver(self, run_id: str, task_id: str, outputs: Outputs) -> bool:
        awaited = self.awaited[(run_id, task_id)]
        if awaited.state is not CallbackState.AWAITING:
            return False
        self.delivered.append((run_id, task_id, outputs))
        self.awaited[(run_id, task_id)] = AwaitedCallback(
            CallbackState.DELIVERED, awaited.secret, awaited.token
        )
        return True


TOKEN = "tok-3f9a"
PATH = f"/v1/workflow-callbacks/{RUN}/{TASK}"


@pytest_asyncio.fixture
async def api() -> AsyncIterator[tuple[Engine, httpx.AsyncClient]]:
    engine = Engine()
    engine.wait(RUN, TASK, TOKEN, CallbackState.AWAITING)
    app = FastAPI()
    install_problem_handlers(app)
    callback_api.configure(app, engine, engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://orchestrator") as client:
        yield engine, client


def signed(
    body: bytes, *, at: float | None = None, secret: str = SECRET, token: str = TOKEN
) -> dict[str, str]:
    now = time.time() if at is None else at
    headers = signed_headers(secret.encode(), body, now=now)
    return {**headers, CALLBACK_TOKEN_HEADER: token, "Content-Type": "application/json"}


OUTPUTS = {"mailbox_owner": "grace", "items": 1204, "archived": True}
BODY = json.dumps(OUTPUTS).encode()


async def test_a_signed_callback_is_accepted_and_delivered_once(
    api: tuple[Engine, httpx.AsyncClient],
) -> None:
    engine, client = api
    response = await client.post(PATH, content=BODY, headers=signed(BODY))
    assert response.status_code == 202, response.text
    assert response.json() == {"status": "accepted"}
    assert engine.delivered == [(RUN, TASK, OUTPUTS)]


async def test_a_replayed_callback_is_answered_202_and_not_delivered_again(
    api: tuple[Engine, httpx.AsyncClient],
) -> None:
    engine, client = api
    headers = signed(BODY)
    first = await client.post(PATH, content=BODY, headers=headers)
    replay = await client.post(PATH, content=BODY, headers=headers)
    assert (first.status_code, replay.status_code) == (202, 202)
    assert replay.json() == {"status": "already_delivered"}
    assert len(engine.delivered) == 1


async def test_a_callback_the_sink_already_had_is_answered_202(
    api: tuple[Engine, httpx.AsyncClient],
) -> None:
    # Two callbacks racing past the lookup: the engine refuses the second; still a 202.
    engine, client = api

    async def already(run_id: str, task_id: str, outputs: Outputs) -> bool:
        return False

    engine.deliver = already  # type: ignore[method-assign]
    response = await client.post(PATH, content=BODY, headers=signed(BODY))
    assert response.status_code == 202
    assert response.json() == {"status": "already_delivered"}


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda h: {**h, SIGNATURE_HEADER: "v1=" + "0" * 64}, id="wrong-signature"),
        pytest.param(
            lambda h: {k: v for k, v in h.items() if k != SIGNATURE_HEADER}, id="no-signature"
        ),
        pytest.param(
            lambda h: {k: v for k, v in h.items() if k != TIMESTAMP_HEADER}, id="no-timestamp"
        ),
        pytest.param(lambda h: {**h, CALLBACK_TOKEN_HEADER: "tok-other"}, id="wrong-token"),
        pytest.param(
            lambda h: {k: v for k, v in h.items() if k != CALLBACK_TOKEN_HEADER}, id="no-token"
        ),
    ],
)
async def test_a_callback_not_signed_with_the_task_secret_and_token_is_refused(
    api: tuple[Engine, httpx.AsyncClient], tamper: Callable[[dict[str, str]], dict[str, str]]
) -> None:
    engine, client = api
    response = await client.post(PATH, content=BODY, headers=tamper(signed(BODY)))
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["status"] == 401
    assert engine.delivered == []


async def test_a_callback_signed_with_another_secret_is_refused(
    api: tuple[Engine, httpx.AsyncClient],
) -> None:
    engine, client = api
    response = await client.post(PATH, content=BODY, headers=signed(BODY, secret="whsec_other"))
    assert response.status_code == 401
    assert engine.delivered == []


async def test_a_body_changed_after_signing_is_refused(
    api: tuple[Engine, httpx.AsyncClient],
) -> None:
    engine, client = api
    forged = json.dumps({**OUTPUTS, "mailbox_owner": "mallory"}).encode()
    response = await client.post(PATH, content=forged, headers=signed(BODY))
    assert response.status_code == 401
    assert engine.delivered == []


async def test_a_stale_callback_is_refused(api: tuple[Engine, httpx.AsyncClient]) -> None:
    engine, client = api
    response = await client.post(PATH, content=BODY, headers=signed(BODY, at=time.time() - 600))
    assert response.status_code == 401
    assert "timestamp" in response.json()["detail"].lower()
    assert engine.delivered == []


async def test_a_callback_for_a_task_that_stopped_waiting_is_a_conflict(
    api: tuple[Engine, httpx.AsyncClient],
) -> None:
    engine, client = api
    engine.wait(RUN, TASK, TOKEN, CallbackState.CLOSED)
    response = await client.post(PATH, content=BODY, headers=signed(BODY))
    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM_JSON
    assert engine.delivered == []


async def test_a_callback_for_an_unknown_run_or_task_is_not_found(
    api: tuple[Engine, httpx.AsyncClient],
) -> None:
    engine, client = api
    for path in (f"/v1/workflow-callbacks/run-unknown/{TASK}", f"/v1/workflow-callbacks/{RUN}/x"):
        response = await client.post(path, content=BODY, headers=signed(BODY))
        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM_JSON
    assert engine.delivered == []


async def test_a_closed_task_still_checks_the_signature_first(
    api: tuple[Engine, httpx.AsyncClient],
) -> None:
    engine, client = api
    engine.wait(RUN, TASK, TOKEN, CallbackState.CLOSED)
    response = await client.post(PATH, content=BODY, headers=signed(BODY, secret="whsec_x"))
    assert response.status_code == 401


async def test_a_callback_over_64_kib_is_refused(api: tuple[Engine, httpx.AsyncClient]) -> None:
    engine, client = api
    large = json.dumps({"note": "x" * (64 * 1024)}).encode()
    response = await client.post(PATH, content=large, headers=signed(large))
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM_JSON

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        for start in range(0, len(large), 8192):
            yield large[start : start + 8192]

    streamed = await client.post(PATH, content=chunks(), headers=signed(large))
    assert streamed.status_code == 413
    assert engine.delivered == []


@pytest.mark.parametrize(
    "document",
    [
        [1, 2],
        {"nested": {"a": 1}},
        {"none": None},
        {"not an identifier": "x"},
        {f"k{i}": i for i in range(65)},
    ],
)
async def test_signed_outputs_that_are_not_a_flat_map_are_a_bad_request(
    api: tuple[Engine, httpx.AsyncClient], document: object
) -> None:
    engine, client = api
    body = json.dumps(document).encode()
    response = await client.post(PATH, content=body, headers=signed(body))
    assert response.status_code == 400
    assert engine.delivered == []


# --- the client against a real HTTP server -----------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Extension:
    """A custom extension listening on a local socket; each test sets how it answers."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[Received] = []
        self.answer: Handler = self._ok
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/mailbox"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks/mailbox", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.received.append(Received(dict(request.headers), await request.read()))
        return await self.answer(request)

    @staticmethod
    async def _ok(request: web.Request) -> web.StreamResponse:
        return web.json_response({"ticket": "INC-42"})


@pytest_asyncio.fixture
async def extension() -> AsyncIterator[Extension]:
    server = Extension()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture
async def client() -> AsyncIterator[ExtensionClient]:
    made = ExtensionClient(environ=ENVIRON)
    try:
        yield made
    finally:
        await made.close()


def a_call(url: str, **changes: Any) -> ExtensionCall:
    fields: dict[str, Any] = {
        "run_id": RUN,
        "task_id": TASK,
        "url": url,
        "secret_env": SECRET_ENV,
        "identity": {"user_id": "u-1", "user_name": "ada", "manager": "grace"},
        "timeout_s": 2.0,
    }
    return ExtensionCall(**(fields | changes))


def answering(status: int, body: object = None, **headers: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        if body is None:
            return web.Response(status=status, headers=headers)
        return web.json_response(body, status=status, headers=headers)

    return handler


async def test_the_extension_receives_a_signed_call_it_can_verify(
    extension: Extension, client: ExtensionClient
) -> None:
    callback = new_callback("https://accord.example.org/", RUN, TASK)
    outputs = await client.call(a_call(extension.url, callback=callback))
    assert outputs == {"ticket": "INC-42"}
    [received] = extension.received
    timestamp = received.headers[TIMESTAMP_HEADER]
    signature = received.headers[SIGNATURE_HEADER]
    assert verify_signature(SECRET.encode(), timestamp, received.body, signature, now=time.time())
    assert not verify_signature(
        b"whsec_other", timestamp, received.body, signature, now=time.time()
    )
    assert received.headers[IDEMPOTENCY_HEADER] == f"{RUN}:{TASK}"
    assert received.headers["Content-Type"] == "application/json"
    assert json.loads(received.body) == {
        "run_id": RUN,
        "task_id": TASK,
        "identity": {"user_id": "u-1", "user_name": "ada", "manager": "grace"},
        "callback": {
            "url": f"https://accord.example.org/v1/workflow-callbacks/{RUN}/{TASK}",
            "token": callback.token,
        },
    }
    assert SECRET not in json.dumps(received.headers)
    assert SECRET.encode() not in received.body


async def test_every_attempt_of_a_task_carries_the_same_idempotency_key(
    extension: Extension, client: ExtensionClient
) -> None:
    await client.call(a_call(extension.url))
    await client.call(a_call(extension.url))
    keys = {r.headers[IDEMPOTENCY_HEADER] for r in extension.received}
    assert keys == {f"{RUN}:{TASK}"}


async def test_an_answer_without_a_body_gives_no_outputs(
    extension: Extension, client: ExtensionClient
) -> None:
    extension.answer = answering(202)
    assert await client.call(a_call(extension.url)) == {}


@pytest.mark.parametrize(
    "answer",
    [["a"], {"nested": {"x": 1}}, {"n": None}, {f"k{i}": i for i in range(65)}],
)
async def test_an_answer_that_is_not_a_flat_map_is_a_permanent_error(
    extension: Extension, client: ExtensionClient, answer: object
) -> None:
    extension.answer = answering(200, answer)
    with pytest.raises(ExtensionRejected, match="bad answer"):
        await client.call(a_call(extension.url))


async def test_an_answer_that_is_not_json_is_a_permanent_error(
    extension: Extension, client: ExtensionClient
) -> None:
    async def text(request: web.Request) -> web.StreamResponse:
        return web.Response(text="<html>ok</html>", content_type="text/html")

    extension.answer = text
    with pytest.raises(ExtensionRejected, match="not JSON"):
        await client.call(a_call(extension.url))


async def test_a_4xx_is_a_permanent_rejection_with_its_reason(
    extension: Extension, client: ExtensionClient
) -> None:
    extension.answer = answering(422, {"detail": "no mailbox for ada"})
    with pytest.raises(ExtensionRejected, match="422: no mailbox for ada"):
        await client.call(a_call(extension.url))


@pytest.mark.parametrize(("status", "retry_after"), [(503, "7"), (429, "3"), (500, None)])
async def test_a_5xx_or_429_is_transient_and_honours_retry_after(
    extension: Extension, client: ExtensionClient, status: int, retry_after: str | None
) -> None:
    headers = {"Retry-After": retry_after} if retry_after else {}
    extension.answer = answering(status, {"detail": "busy"}, **headers)
    with pytest.raises(ExtensionUnavailable) as raised:
        await client.call(a_call(extension.url))
    assert raised.value.retry_after == (float(retry_after) if retry_after else None)
    assert str(status) in raised.value.reason


async def test_a_slow_extension_times_out_as_transient(
    extension: Extension, client: ExtensionClient
) -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(2)
        return web.json_response({})

    extension.answer = slow
    with pytest.raises(ExtensionUnavailable, match="timed out") as raised:
        await client.call(a_call(extension.url, timeout_s=0.2))
    assert raised.value.retry_after is None


async def test_a_refused_connection_is_transient(client: ExtensionClient) -> None:
    with pytest.raises(ExtensionUnavailable, match="ConnectError"):
        await client.call(a_call(f"http://127.0.0.1:{free_port()}/hooks"))


async def test_a_missing_secret_is_a_permanent_error_naming_the_variable(
    extension: Extension,
) -> None:
    client = ExtensionClient(environ={})
    try:
        with pytest.raises(ExtensionRejected, match=SECRET_ENV):
            await client.call(a_call(extension.url))
    finally:
        await client.close()
    assert extension.received == []


async def test_a_metadata_address_is_refused_unless_allowed(client: ExtensionClient) -> None:
    with pytest.raises(ExtensionRejected, match="allow_link_local"):
        await client.call(a_call("http://169.254.169.254/latest/meta-data/"))


async def test_a_name_resolving_to_a_metadata_address_is_refused(extension: Extension) -> None:
    def resolve(host: str, port: int) -> list[str]:
        return ["169.254.169.254"]

    client = ExtensionClient(environ=ENVIRON, resolve=resolve)
    try:
        with pytest.raises(ExtensionRejected, match=r"169\.254\.169\.254"):
            await client.call(a_call(f"http://extension.example.org:{extension.port}/hooks"))
    finally:
        await client.close()


async def test_an_oversized_answer_is_a_permanent_error(
    extension: Extension, client: ExtensionClient
) -> None:
    extension.answer = answering(200, {"blob": "x" * (70 * 1024)})
    with pytest.raises(ExtensionRejected, match="larger than"):
        await client.call(a_call(extension.url))


async def test_the_callback_an_extension_sends_back_is_accepted(
    extension: Extension, client: ExtensionClient, api: tuple[Engine, httpx.AsyncClient]
) -> None:
    """The round trip: what the call tells the extension is enough to call back."""
    engine, orchestrator = api
    callback = new_callback("http://orchestrator", RUN, "mailbox")
    engine.wait(RUN, "mailbox", callback.token, CallbackState.AWAITING)
    extension.answer = answering(202)
    await client.call(a_call(extension.url, task_id="mailbox", callback=callback))
    told = json.loads(extension.received[0].body)["callback"]
    body = json.dumps({"handed_over_to": "grace"}).encode()
    headers = {
        **signed_headers(SECRET.encode(), body, now=time.time()),
        CALLBACK_TOKEN_HEADER: told["token"],
    }
    response = await orchestrator.post(told["url"], content=body, headers=headers)
    assert response.status_code == 202
    assert engine.delivered == [(RUN, "mailbox", {"handed_over_to": "grace"})]


# --- outputs and timeouts (pure) ----------------------------------------------------------


def test_outputs_keep_strings_numbers_and_booleans() -> None:
    assert parse_outputs({"a": "x", "b": 1, "c": 1.5, "d": False}) == {
        "a": "x",
        "b": 1,
        "c": 1.5,
        "d": False,
    }
    with pytest.raises(InvalidOutputs, match="64"):
        parse_outputs({f"k{i}": 1 for i in range(65)})
    assert len(parse_outputs({f"k{i}": 1 for i in range(64)})) == 64


def test_the_deadline_is_the_timeout_after_the_call() -> None:
    started = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    assert callback_deadline(started, timedelta(hours=4)) == datetime(
        2026, 12, 5, 14, 0, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="timezone"):
        callback_deadline(datetime(2026, 12, 5, 10, 0), timedelta(hours=1))
    with pytest.raises(ValueError, match="positive"):
        callback_deadline(started, timedelta(0))


def test_a_timeout_fails_the_task_or_lets_the_run_continue() -> None:
    assert on_timeout(OnTimeout.FAIL).failed
    assert not on_timeout("continue").failed
    with pytest.raises(ValueError, match="sometimes"):
        on_timeout("sometimes")


def test_the_signature_scheme_matches_the_webhooks_known_vector() -> None:
    # The vector of the provisioner's webhook tests: one scheme for both.
    body = b'{"operation":"find","user_id":"u-1","user_name":"ada"}'
    assert sign(b"whsec_s3cr3t", "1700000000", body) == (
        "v1=55fd92bac17809f3ba3c83408b6a07c1113f3859a88e765f01dd77c7bbde461a"
    )
