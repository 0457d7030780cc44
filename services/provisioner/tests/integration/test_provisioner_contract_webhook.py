"""The connector contract against a real webhook receiver listening on a local socket.

The receiver is a small Starlette app served by uvicorn in the test's event loop. It checks
every request's signature and idempotency key as a real receiver would, and keeps accounts
in a dict keyed by account id and groups as sets of account ids, with the semantics the
module docstring of `accord.provisioner.adapters.webhook` gives.
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Generator

import pytest
import pytest_asyncio
from pydantic import SecretStr

from accord.events import Profile
from accord.provisioner.adapters.webhook import (
    WebhookConnector,
    WebhookSettings,
)
from accord.provisioner.ports import TargetRejected, TargetUnavailable
from accord.provisioner.testing import Account, ConnectorContract, Harness, person
from accord.provisioner.webhook_receiver import Fault, Receiver, Record, Running, serve
from accord.stack.network import free_port

pytestmark = pytest.mark.integration

SECRET = "whsec_contract-7f3a9c1e"
HOST = "127.0.0.1"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def webhook_receiver() -> AsyncIterator[Running]:
    async with serve(SECRET.encode(), HOST) as running:
        yield running


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
