"""The connector contract against a real webhook receiver listening on a local socket.

The receiver is a small Starlette app served by uvicorn in the test's event loop. It checks
every request's signature and idempotency key as a real receiver would, and keeps accounts
in a dict keyed by account id and groups as sets of account ids, with the semantics the
module docstring of `accord.provisioner.adapters.webhook` gives.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
import uvicorn
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from accord.events import Profile
from accord.provisioner.adapters.webhook import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookConnector,
    WebhookSettings,
    idempotency_key,
    verify_signature,
)
from accord.provisioner.ports import TargetRejected, TargetUnavailable
from accord.provisioner.testing import Account, ConnectorContract, Harness, person
from accord.stack.network import free_port

pytestmark = pytest.mark.integration

SECRET = "whsec_contract-7f3a9c1e"
HOST = "127.0.0.1"


@dataclass
class Record:
    """One account as the receiver keeps it."""

    user_name: str
    user_id: str | None
    active: bool = True
    profile: dict[str, Any] = field(default_factory=dict)
    """The other profile attributes, as the last create or update sent them."""

    @property
    def title(self) -> str | None:
        title: str | None = self.profile.get("title")
        return title

    def described(self, account_id: str) -> dict[str, Any]:
        """The account as get and list answer it."""
        profile = {**self.profile, "user_name": self.user_name}
        return {
            "account_id": account_id,
            "owner": self.user_id,
            "active": self.active,
            "profile": profile,
        }


@dataclass(frozen=True)
class Fault:
    """An answer the receiver gives instead of acting, for one user name ("": list calls)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    body: bytes = b'{"detail": "injected"}'


class _Conflict(Exception):
    pass


class Receiver:
    """A webhook receiver that keeps the protocol, its accounts in a dict by account id."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.accounts: dict[str, Record] = {}
        self.groups: dict[str, set[str]] = {}
        self.faults: dict[str, Fault] = {}
        self.refused = 0
        self.keys: list[str] = []
        self.app = Starlette(routes=[Route("/hooks/accord", self.handle, methods=["POST"])])

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        timestamp = request.headers.get(TIMESTAMP_HEADER, "")
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not verify_signature(self.secret, timestamp, body, signature, now=time.time()):
            self.refused += 1
            return JSONResponse({"detail": "bad signature or stale timestamp"}, status_code=401)
        if request.headers.get("content-type") != "application/json":
            return JSONResponse({"detail": "not JSON"}, status_code=415)
        call = json.loads(body)
        operation = call["operation"]
        user_id, user_name = call.get("user_id", ""), call.get("user_name", "")
        key = request.headers.get(IDEMPOTENCY_HEADER, "")
        if key != idempotency_key(operation, user_id, body):
            return JSONResponse({"detail": "bad idempotency key"}, status_code=400)
        self.keys.append(key)
        fault = self.faults.get(user_name)
        if fault is not None:
            await asyncio.sleep(fault.delay_s)
            return Response(fault.body, fault.status, fault.headers, "application/json")
        if "user_id" not in call:
            return self.survey(operation, call)
        try:
            return self.act(operation, user_id, user_name, call)
        except _Conflict:
            return JSONResponse(
                {"detail": f"{user_name!r} belongs to another identity"}, status_code=409
            )

    def survey(self, operation: str, call: dict[str, Any]) -> Response:
        """The calls about the whole target: list, list_members, health."""
        if operation == "health":
            return Response(status_code=204)
        if operation == "list_members":
            return JSONResponse({"members": sorted(self.groups.get(call["group"], set()))})
        if operation != "list":
            return JSONResponse({"detail": f"unknown operation {operation!r}"}, status_code=400)
        cursor = call["cursor"]
        after = sorted(a for a in self.accounts if cursor is None or a > cursor)
        page = after[: call["limit"]]
        return JSONResponse(
            {
                "accounts": [self.accounts[a].described(a) for a in page],
                "next_cursor": page[-1] if len(after) > len(page) else None,
            }
        )

    def act(self, operation: str, user_id: str, user_name: str, call: dict[str, Any]) -> Response:
        # No await in here: one request's lookup and change are atomic in the event loop.
        if operation == "get":
            seen = self.lookup(user_id, user_name, claim=False)
            if seen is None:
                return JSONResponse({"detail": "no such account"}, status_code=404)
            return JSONResponse(seen[1].described(seen[0]))
        found = self.lookup(user_id, user_name)
        if operation in ("create", "update"):
            profile = call["profile"]
            if found is None:
                account_id = uuid.uuid4().hex
                self.accounts[account_id] = self.record(user_id, profile)
                return JSONResponse({"account_id": account_id, "created": True})
            account_id, _ = found
            if operation == "update":
                self.accounts[account_id] = self.record(user_id, profile)
            else:
                self.accounts[account_id].user_id = user_id  # adopt an unlinked account
            return JSONResponse({"account_id": account_id, "created": False})
        if found is None:
            return JSONResponse({"detail": "no such account"}, status_code=404)
        account_id, record = found
        if operation in ("disable", "enable"):
            record.active = operation == "enable"
        elif operation == "delete":
            del self.accounts[account_id]
            for members in self.groups.values():
                members.discard(account_id)
        elif operation == "add_member":
            self.groups.setdefault(call["group"], set()).add(account_id)
        elif operation == "remove_member":
            self.groups.get(call["group"], set()).discard(account_id)
        elif operation != "find":
            return JSONResponse({"detail": f"unknown operation {operation!r}"}, status_code=400)
        return JSONResponse({"account_id": account_id})

    def lookup(
        self, user_id: str, user_name: str, *, claim: bool = True
    ) -> tuple[str, Record] | None:
        """The account linked to user_id, else the one named user_name.

        Claiming it (every operation but get): unless it is another identity's.
        """
        for account_id, record in self.accounts.items():
            if record.user_id == user_id:
                return account_id, record
        for account_id, record in self.accounts.items():
            if record.user_name == user_name:
                if claim and record.user_id not in (None, user_id):
                    raise _Conflict
                return account_id, record
        return None

    @staticmethod
    def record(user_id: str, profile: dict[str, Any]) -> Record:
        rest = {k: v for k, v in profile.items() if k not in ("user_name", "active")}
        return Record(profile["user_name"], user_id, profile["active"], rest)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # pytest owns the signals; the fixture stops the server itself.
        yield


@dataclass(frozen=True)
class Running:
    receiver: Receiver
    url: str


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def webhook_receiver() -> AsyncIterator[Running]:
    receiver = Receiver(SECRET.encode())
    port = free_port(HOST)
    config = uvicorn.Config(
        receiver.app,
        host=HOST,
        port=port,
        http="h11",
        ws="none",
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=2,
    )
    server = _Server(config)
    serving = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            if serving.done():
                serving.result()  # raises what stopped it
                pytest.fail("the webhook receiver stopped before it started")
            await asyncio.sleep(0.01)
    yield Running(receiver, f"http://{HOST}:{port}/hooks/accord")
    server.should_exit = True
    await serving


def connect(
    running: Running,
    *,
    secret: str = SECRET,
    timeout_s: float = 5.0,
    clock: Callable[[], float] = time.time,
) -> WebhookConnector:
    settings = WebhookSettings(running.url, SecretStr(secret), timeout_s)
    return WebhookConnector("contract-webhook", settings, clock=clock)


class TestWebhookConnectorContract(ConnectorContract):
    """A Starlette receiver on a real socket."""

    @pytest_asyncio.fixture(loop_scope="session")
    async def harness(self, webhook_receiver: Running) -> AsyncIterator[Harness]:
        receiver = webhook_receiver.receiver
        connector = connect(webhook_receiver)

        async def accounts(user_name: str) -> list[Account]:
            return [
                Account(account_id, r.user_name, r.active, r.title)
                for account_id, r in receiver.accounts.items()
                if r.user_name == user_name
            ]

        async def plant(user_name: str, owner: str | None) -> None:
            receiver.accounts[uuid.uuid4().hex] = Record(user_name, owner)

        async def retitle(user_name: str, title: str) -> None:
            for record in receiver.accounts.values():
                if record.user_name == user_name:
                    record.profile["title"] = title

        def unreachable() -> WebhookConnector:
            return connect(closed_port(), timeout_s=2.0)

        yield Harness(connector, accounts, plant, retitle, unreachable)
        await connector.close()


@pytest_asyncio.fixture(loop_scope="session")
async def connector(webhook_receiver: Running) -> AsyncIterator[WebhookConnector]:
    connected = connect(webhook_receiver)
    yield connected
    await connected.close()


def assert_secret_not_in(error: BaseException) -> None:
    texts = [str(error), repr(error), str(error.args)]
    cause = error.__cause__ or error.__context__
    if cause is not None and not error.__suppress_context__:
        texts += [str(cause), repr(cause)]
    assert not [t for t in texts if SECRET in t]


def records_named(running: Running, user_name: str) -> list[Record]:
    return [r for r in running.receiver.accounts.values() if r.user_name == user_name]


async def test_a_wrong_secret_is_refused_for_good(webhook_receiver: Running) -> None:
    user_id, profile = person()
    refused = webhook_receiver.receiver.refused
    wrong = connect(webhook_receiver, secret="whsec_not-the-right-one")
    try:
        with pytest.raises(TargetRejected, match="401") as raised:
            await wrong.ensure_account(user_id, profile)
    finally:
        await wrong.close()
    assert webhook_receiver.receiver.refused == refused + 1
    assert "whsec_not-the-right-one" not in str(raised.value)
    assert not [r for r in webhook_receiver.receiver.accounts.values() if r.user_id == user_id]


def skewed_clock(skew_s: float) -> Callable[[], float]:
    return lambda: time.time() + skew_s


async def test_a_stale_timestamp_is_refused_by_the_receiver(webhook_receiver: Running) -> None:
    user_id, profile = person()
    refused = webhook_receiver.receiver.refused
    for skew in (-301.0, 301.0):
        skewed = connect(webhook_receiver, clock=skewed_clock(skew))
        try:
            with pytest.raises(TargetRejected, match="401"):
                await skewed.find_account(user_id, profile.user_name)
        finally:
            await skewed.close()
    assert webhook_receiver.receiver.refused == refused + 2


async def test_throttling_is_retried_after_the_time_the_target_asks(
    webhook_receiver: Running, connector: WebhookConnector
) -> None:
    user_id, profile = person()
    webhook_receiver.receiver.faults[profile.user_name] = Fault(429, {"Retry-After": "7"})

    with pytest.raises(TargetUnavailable, match="429") as raised:
        await connector.ensure_account(user_id, profile)

    assert raised.value.retry_after == 7.0
    assert records_named(webhook_receiver, profile.user_name) == []


async def test_retry_after_may_be_an_http_date(
    webhook_receiver: Running, connector: WebhookConnector
) -> None:
    user_id, profile = person()
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    webhook_receiver.receiver.faults[profile.user_name] = Fault(503, {"Retry-After": when})

    with pytest.raises(TargetUnavailable) as raised:
        await connector.disable_account(user_id, profile.user_name)

    assert raised.value.retry_after is not None
    assert 100 <= raised.value.retry_after <= 121


async def test_an_unavailable_target_is_retried(
    webhook_receiver: Running, connector: WebhookConnector
) -> None:
    user_id, profile = person()
    webhook_receiver.receiver.faults[profile.user_name] = Fault(503)

    with pytest.raises(TargetUnavailable, match="503") as raised:
        await connector.update_account(user_id, profile)

    assert raised.value.retry_after is None


async def test_a_slow_target_times_out_as_unavailable(webhook_receiver: Running) -> None:
    user_id, profile = person()
    webhook_receiver.receiver.faults[profile.user_name] = Fault(200, delay_s=1.0)
    impatient = connect(webhook_receiver, timeout_s=0.2)
    try:
        with pytest.raises(TargetUnavailable, match="timed out"):
            await impatient.find_account(user_id, profile.user_name)
    finally:
        await impatient.close()


def closed_port() -> Running:
    """A receiver URL where nothing listens."""
    return Running(Receiver(b"unused"), f"http://{HOST}:{free_port(HOST)}/hooks/accord")


async def test_a_target_that_does_not_listen_is_unavailable() -> None:
    connector = connect(closed_port())
    try:
        with pytest.raises(TargetUnavailable, match="ConnectError"):
            await connector.find_account("u-1", "nobody")
    finally:
        await connector.close()


@pytest.mark.parametrize(
    ("status", "body", "problem"),
    [
        (200, b"not json", "not JSON"),
        (200, b"[]", "not a JSON object"),
        (200, b'{"created": true}', "no account_id"),
        (200, b'{"account_id": "a-1"}', "no boolean 'created'"),
        (404, b"", "404"),
        (400, b'{"detail": "user_name too long"}', "user_name too long"),
        (302, b"", "302"),
    ],
)
async def test_a_malformed_or_refusing_answer_to_create_is_rejected(
    webhook_receiver: Running, connector: WebhookConnector, status: int, body: bytes, problem: str
) -> None:
    user_id, profile = person()
    webhook_receiver.receiver.faults[profile.user_name] = Fault(status, body=body)

    with pytest.raises(TargetRejected, match=problem):
        await connector.ensure_account(user_id, profile)


async def test_retries_of_one_call_carry_one_idempotency_key(
    webhook_receiver: Running, connector: WebhookConnector
) -> None:
    user_id, profile = person()
    keys = webhook_receiver.receiver.keys

    await connector.ensure_account(user_id, profile)
    await connector.ensure_account(user_id, profile)
    await connector.find_account(user_id, profile.user_name)

    first, again, find = keys[-3:]
    assert first == again != find


async def test_the_secret_is_in_no_exception_or_log(
    webhook_receiver: Running, caplog: pytest.LogCaptureFixture
) -> None:
    receiver = webhook_receiver.receiver
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    user_id, profile = person()
    connector = connect(webhook_receiver, timeout_s=0.2)
    stale = connect(webhook_receiver, clock=lambda: time.time() - 3600)
    try:
        for fault in (Fault(429), Fault(503), Fault(409), Fault(401), Fault(200, delay_s=1.0)):
            receiver.faults[profile.user_name] = fault
            with pytest.raises((TargetRejected, TargetUnavailable)) as raised:
                await connector.ensure_account(user_id, profile)
            errors.append(raised.value)
        with pytest.raises(TargetRejected) as stale_raised:
            await stale.find_account(user_id, profile.user_name)
        errors.append(stale_raised.value)
    finally:
        await connector.close()
        await stale.close()

    for error in errors:
        assert_secret_not_in(error)
    assert SECRET not in caplog.text
    assert SECRET not in repr(connector)


async def test_the_profile_is_sent_whole(
    webhook_receiver: Running, connector: WebhookConnector
) -> None:
    user_id, _ = person()
    profile = Profile(user_name=f"p.{user_id}", title="Lead", active=False)

    ref = await connector.update_account(user_id, profile)

    assert ref.already_existed is False
    (record,) = records_named(webhook_receiver, profile.user_name)
    assert (record.user_id, record.title, record.active) == (user_id, "Lead", False)


ACCOUNT = {"account_id": "a-1", "owner": None, "active": True, "profile": {"user_name": "x"}}


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ({**ACCOUNT, "active": "yes"}, "no boolean 'active'"),
        ({**ACCOUNT, "owner": ""}, "owner is neither null nor a user_id"),
        ({**ACCOUNT, "owner": 7}, "owner is neither null nor a user_id"),
        ({**ACCOUNT, "profile": None}, "no profile object"),
        ({**ACCOUNT, "profile": {"title": "Lead"}}, r"profile is invalid: \['user_name'\]"),
        ({**ACCOUNT, "profile": {"user_name": "x", "email": "no"}}, r"invalid: \['email'\]"),
        ({**ACCOUNT, "account_id": ""}, "no account_id"),
    ],
)
async def test_a_malformed_account_from_get_is_rejected(
    webhook_receiver: Running, connector: WebhookConnector, answer: object, problem: str
) -> None:
    user_id, profile = person()
    webhook_receiver.receiver.faults[profile.user_name] = Fault(
        200, body=json.dumps(answer).encode()
    )

    with pytest.raises(TargetRejected, match=problem):
        await connector.get_account(user_id, profile.user_name)


@pytest.fixture
def target_faults(webhook_receiver: Running) -> Generator[dict[str, Fault], None, None]:
    """Faults for the calls about the whole target (list, list_members, health)."""
    faults = webhook_receiver.receiver.faults
    yield faults
    faults.pop("", None)


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ({"accounts": {}, "next_cursor": None}, "no list of accounts"),
        ({"accounts": [1], "next_cursor": None}, "an account is not a JSON object"),
        ({"accounts": [], "next_cursor": 3}, "next_cursor is neither null nor a string"),
        ({"accounts": [], "next_cursor": "c-1"}, "repeats the last one"),
    ],
)
async def test_a_malformed_page_from_list_is_rejected(
    connector: WebhookConnector, target_faults: dict[str, Fault], answer: object, problem: str
) -> None:
    target_faults[""] = Fault(200, body=json.dumps(answer).encode())

    with pytest.raises(TargetRejected, match=problem):
        _ = [account async for account in connector.list_accounts(page_size=2)]


async def test_list_members_and_health_answers_are_checked(
    connector: WebhookConnector, target_faults: dict[str, Fault]
) -> None:
    target_faults[""] = Fault(200, body=b'{"members": ["a-1", 2]}')
    with pytest.raises(TargetRejected, match="no list of account ids"):
        await connector.list_members("staff")
    target_faults[""] = Fault(404)
    with pytest.raises(TargetRejected, match="404"):
        await connector.list_members("staff")
    with pytest.raises(TargetRejected, match="health -> 404"):
        await connector.health()
    target_faults[""] = Fault(503, {"Retry-After": "3"})
    with pytest.raises(TargetUnavailable) as raised:
        await connector.health()
    assert raised.value.retry_after == 3.0


async def test_calls_without_an_identity_are_signed_and_keyed_without_one(
    webhook_receiver: Running, connector: WebhookConnector
) -> None:
    refused = webhook_receiver.receiver.refused

    await connector.health()
    assert await connector.list_members(f"grp-{uuid.uuid4().hex}") == []

    # The receiver checked both signatures and the keys (made with an empty user_id).
    assert webhook_receiver.receiver.refused == refused
    wrong = connect(webhook_receiver, secret="whsec_not-the-right-one")
    try:
        with pytest.raises(TargetRejected, match="401"):
            await wrong.health()
    finally:
        await wrong.close()
