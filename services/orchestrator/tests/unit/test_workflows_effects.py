"""The workflow effects: each task command becomes Kafka commands (their fields and routing)
or I/O (mail, extension calls, access passes, grants), on fakes and a real local server."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiohttp import web

from accord.events import (
    AccessRequested,
    ApprovalRequested,
    Envelope,
    MfaEnrolmentRequested,
    SessionRevokeRequested,
    UserCreated,
    from_kafka,
    new_event,
    to_kafka,
)
from accord.orchestrator.adapters.access_passes import HttpAccessPasses
from accord.orchestrator.adapters.authz_grants import HttpAccessGrants
from accord.orchestrator.workflows import access_requests, runs
from accord.orchestrator.workflows.callback_api import CallbackState
from accord.orchestrator.workflows.effect_fakes import (
    FakeAccessPasses,
    FakeDirectory,
    FakeGrants,
    InMemoryCallbacks,
)
from accord.orchestrator.workflows.effects import (
    AccessPassError,
    EffectFailed,
    Effects,
    EffectSettings,
    HeldGrant,
    MailTemplate,
)
from accord.orchestrator.workflows.extensions import (
    CALLBACK_TOKEN_HEADER,
    ExtensionCall,
    ExtensionClient,
    Outputs,
)
from accord.orchestrator.workflows.mail import FakeMailer, MailRejected, MailUnavailable
from accord.orchestrator.workflows.run_model import Run, RunStatus, TaskRun, TaskStatus
from accord.runtime.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verify_signature
from accord.stack.network import free_port

NOW = datetime(2027, 3, 1, 8, tzinfo=UTC)
RUN_ID = "0b9c8f0e-1d2a-4c3b-8e7f-6a5b4c3d2e1f"
USER = "u-1042"
MANAGER = "u-7"
SECRET_ENV = "ACCORD_TEST_EFFECTS_SECRET"
ENVIRON = {SECRET_ENV: "whsec_effects-3c9e"}

IDENTITY: dict[str, Any] = {
    "user_id": USER,
    "status": "active",
    "user_name": "ada.lovelace",
    "given_name": "Ada",
    "family_name": "Lovelace",
    "display_name": "Ada Lovelace",
    "email": "ada@example.com",
    "department": "Engineering",
    "manager_id": MANAGER,
    "hire_date": "2027-03-01",
    "active": True,
    "attributes": {"site": "Lyon"},
}


def run_of(workflow_id: str = "pre-hire") -> Run:
    return Run(
        run_id=RUN_ID,
        workflow_id=workflow_id,
        version="v1",
        identity_id=USER,
        category="joiner",
        trigger={"kind": "event", "event": "user.created"},
        status=RunStatus.RUNNING,
        created_at=NOW,
        updated_at=NOW,
    )


def keys(task_id: str = "accounts", attempt: int = 1) -> dict[str, Any]:
    return {"run_id": RUN_ID, "task_id": task_id, "attempt": attempt}


class NoExtensions:
    """An extension caller for the tests that call none."""

    async def call(self, call: ExtensionCall) -> Outputs:
        raise AssertionError(f"unexpected extension call {call.url}")


def effects(
    mailer: FakeMailer | None = None,
    *,
    callbacks: InMemoryCallbacks | None = None,
    passes: FakeAccessPasses | None = None,
    grants: FakeGrants | None = None,
    extensions: Any = None,
    templates: dict[str, MailTemplate] | None = None,
    callback_base_url: str | None = "https://accord.example.com",
) -> Effects:
    return Effects(
        source="accord.orchestrator",
        mailer=mailer or FakeMailer(),
        directory=FakeDirectory({MANAGER: ("grace@example.com", "Grace Hopper")}),
        extensions=extensions or NoExtensions(),
        callbacks=callbacks or InMemoryCallbacks(environ=ENVIRON),
        access_passes=passes,
        grants=grants,
        templates=templates,
        settings=EffectSettings(
            mfa_factors=("webauthn",), extension_timeout_s=5.0, callback_base_url=callback_base_url
        ),
    )


def cause() -> Envelope:
    data = UserCreated(user_id=USER, user_name="ada.lovelace")
    return new_event(data, source="hr", sequence=1)


# --- Kafka commands ------------------------------------------------------------------------


def test_require_mfa_is_the_enrolment_request_the_joiner_sends() -> None:
    envelopes = effects().envelopes(runs.RequireMfa(**keys("mfa")), run_of(), IDENTITY, None)
    assert envelopes is not None
    assert envelopes[0].type == "mfa.enrolment_requested"
    data = MfaEnrolmentRequested.model_validate(envelopes[0].data)
    assert (data.user_id, data.factors, data.saga_id) == (USER, ("webauthn",), RUN_ID)


def test_request_entitlement_is_an_access_request_by_the_workflow() -> None:
    command = runs.RequestEntitlement(
        **keys("payroll"), entitlement="payroll/viewer", justification="new hire"
    )
    envelopes = effects().envelopes(command, run_of(), IDENTITY, None)
    assert envelopes is not None
    assert envelopes[0].type == "access.requested"
    data = AccessRequested.model_validate(envelopes[0].data)
    assert data.requester_id == "workflow:pre-hire"
    assert data.principal_id == USER
    assert (data.resource.application, data.resource.entitlement) == ("payroll", "viewer")
    # authz's answers carry the request id: it names the run, task and attempt they are for.
    assert data.request_id == f"{RUN_ID}:payroll:1" == command.idempotency_key
    assert access_requests.request_of(data.request_id) == access_requests.RequestOf(
        RUN_ID, "payroll", 1
    )
    again = effects().envelopes(command, run_of(), IDENTITY, None)
    assert again is not None
    assert AccessRequested.model_validate(again[0].data).request_id == data.request_id


def waiting_for_approval(until: datetime, stage: int = 1, attempt: int = 1) -> Run:
    """The run as runs.advance leaves it after an ask: the approval task waits until the
    approval_timeout wake-up."""
    task = TaskRun(
        task_id="extend",
        position=0,
        kind="approval",
        status=TaskStatus.WAITING,
        attempts=attempt,
        started_at=NOW,
        waiting_for={"kind": "approval", "until": until.isoformat(), "stage": stage},
    )
    return replace(run_of("contractor-end-date"), status=RunStatus.WAITING, tasks=(task,))


def test_an_approval_is_asked_of_authz_until_the_timeout_wakeup() -> None:
    until = datetime(2027, 3, 8, 8, tzinfo=UTC)
    command = runs.AskApproval(
        **keys("extend"),
        approvers=("manager", "group:hr-partners"),
        reason="Extend the contract of Ada?",
        timeout=timedelta(days=7),
    )
    trigger = cause()
    envelopes = effects().envelopes(command, waiting_for_approval(until), IDENTITY, trigger)
    assert envelopes is not None
    (envelope,) = envelopes
    assert envelope.type == "approval.requested"
    assert envelope.subject == USER  # keyed by the identity
    assert (envelope.correlationid, envelope.causationid) == (trigger.correlationid, trigger.id)
    data = ApprovalRequested.model_validate(envelope.data)
    assert data.approval_id == f"{RUN_ID}:extend:1" == command.idempotency_key
    assert (data.user_id, data.workflow_id, data.run_id, data.task_id) == (
        USER,
        "contractor-end-date",
        RUN_ID,
        "extend",
    )
    assert data.approvers == ("manager", "group:hr-partners")
    assert data.reason == "Extend the contract of Ada?"
    assert data.expires_at == until  # the wake-up's instant, not now + timeout
    assert data.escalation is False
    record = to_kafka(envelope)
    assert from_kafka(record.topic, record.key, record.value, record.headers).id == envelope.id


def test_a_repeated_ask_is_the_same_event_and_an_escalation_a_new_one() -> None:
    until = datetime(2027, 3, 8, 8, tzinfo=UTC)
    ask = runs.AskApproval(
        **keys("extend"), approvers=("manager",), reason=None, timeout=timedelta(days=7)
    )
    runner = effects()
    first = runner.envelopes(ask, waiting_for_approval(until), IDENTITY, cause())
    # Re-emitted later (a redelivery, a crash): the stored run gives the same expiry and id.
    again = runner.envelopes(ask, waiting_for_approval(until), IDENTITY, None)
    assert first is not None
    assert again is not None
    assert first[0].id == again[0].id
    assert first[0].data == again[0].data
    later = until + timedelta(days=7)
    escalation = runs.AskApproval(
        **keys("extend", attempt=2),
        approvers=("user:u-9",),
        reason=None,
        timeout=timedelta(days=7),
        escalation=True,
    )
    escalated = runner.envelopes(
        escalation, waiting_for_approval(later, stage=2, attempt=2), IDENTITY, None
    )
    assert escalated is not None
    data = ApprovalRequested.model_validate(escalated[0].data)
    assert escalated[0].id != first[0].id
    assert (data.approval_id, data.escalation, data.expires_at) == (
        f"{RUN_ID}:extend:2",
        True,
        later,
    )
    assert data.reason is None


def test_an_ask_without_a_stored_wait_expires_a_timeout_after_the_run_step() -> None:
    command = runs.AskApproval(
        **keys("extend"),
        approvers=("manager",),
        reason="  " + "r" * 300,
        timeout=timedelta(hours=4),
    )
    envelopes = effects().envelopes(command, run_of(), IDENTITY, None)
    assert envelopes is not None
    data = ApprovalRequested.model_validate(envelopes[0].data)
    assert data.expires_at == NOW + timedelta(hours=4)  # run_of().updated_at + timeout
    assert data.reason == "r" * 256


def test_an_ask_that_cannot_be_an_event_fails_for_good() -> None:
    command = runs.AskApproval(
        **keys("extend"),
        approvers=tuple(f"user:u-{n}" for n in range(17)),
        reason=None,
        timeout=timedelta(days=1),
    )
    with pytest.raises(EffectFailed, match="approvers") as failed:
        effects().envelopes(command, run_of(), IDENTITY, None)
    assert not failed.value.retryable


def test_revoke_sessions_asks_authn_whatever_the_status() -> None:
    command = runs.RevokeSessions(**keys("sessions"))
    seen: list[SessionRevokeRequested] = []
    for identity in (IDENTITY, {**IDENTITY, "status": "inactive", "active": False}):
        envelopes = effects().envelopes(command, run_of("leaver"), identity, None)
        assert envelopes is not None
        (envelope,) = envelopes
        assert envelope.type == "session.revoke_requested"
        assert envelope.subject == USER
        assert envelope.correlationid == RUN_ID
        seen.append(SessionRevokeRequested.model_validate(envelope.data))
    assert seen[0] == seen[1]
    data = seen[0]
    assert (data.user_id, data.request_id, data.reason, data.run_id) == (
        USER,
        f"{RUN_ID}:sessions:1",
        "workflow leaver",
        RUN_ID,
    )
    again = effects().envelopes(command, run_of("leaver"), IDENTITY, cause())
    retried = effects().envelopes(
        runs.RevokeSessions(**keys("sessions", attempt=2)), run_of("leaver"), IDENTITY, None
    )
    assert again is not None
    assert retried is not None
    first = effects().envelopes(command, run_of("leaver"), IDENTITY, None)
    assert first is not None
    assert first[0].id == again[0].id != retried[0].id


def test_io_effects_have_no_envelopes() -> None:
    runner = effects()
    for command in (
        runs.SendMail(**keys("mail"), to=("manager",), subject="s", body="b"),
        runs.IssueAccessPass(
            **keys("tap"), lifetime=timedelta(hours=1), one_time=True, deliver_to="manager"
        ),
        runs.RevokeEntitlements(**keys("revoke"), entitlements="all"),
    ):
        assert runner.envelopes(command, run_of(), IDENTITY, None) is None


# --- mail ----------------------------------------------------------------------------------


async def test_mail_goes_to_the_manager_and_the_identity_rendered() -> None:
    mailer = FakeMailer()
    command = runs.SendMail(
        **keys("welcome"),
        to=("manager", "identity", "it@example.com", "Grace@Example.com"),
        subject="{display_name} starts today",
        body="Hello {manager_name}, {given_name} ({department}) starts on {hire_date}.",
    )
    outputs = await effects(mailer).perform(command, run_of(), IDENTITY)
    assert outputs == {"recipients": 3}
    (mail,) = mailer.sent
    assert mail.to == ("grace@example.com", "ada@example.com", "it@example.com")
    assert mail.subject == "Ada Lovelace starts today"
    assert mail.text == "Hello Grace Hopper, Ada (Engineering) starts on 2027-03-01."
    assert mail.message_id == f"<{RUN_ID}.welcome@accord>"


async def test_a_named_template_is_rendered() -> None:
    mailer = FakeMailer()
    templates = {"farewell": MailTemplate(subject="Bye {given_name}", body="{display_name}")}
    command = runs.SendMail(**keys("bye"), to=("identity",), template="farewell")
    await effects(mailer, templates=templates).perform(command, run_of(), IDENTITY)
    assert (mailer.sent[0].subject, mailer.sent[0].text) == ("Bye Ada", "Ada Lovelace")
    unknown = runs.SendMail(**keys("bye"), to=("identity",), template="nope")
    with pytest.raises(EffectFailed, match="no mail template"):
        await effects(mailer, templates=templates).perform(unknown, run_of(), IDENTITY)


@pytest.mark.parametrize(
    ("subject", "body", "why"),
    [
        ("Hi {password}", "x", "unknown placeholders: password"),
        ("Hi", "{display_name.__class__}", "only {name} placeholders"),
        ("Hi {title}", "x", "no value for: title"),  # known, but the identity has none
    ],
)
async def test_a_bad_or_unknown_placeholder_is_refused(subject: str, body: str, why: str) -> None:
    mailer = FakeMailer()
    command = runs.SendMail(**keys("m"), to=("identity",), subject=subject, body=body)
    with pytest.raises(EffectFailed) as failed:
        await effects(mailer).perform(command, run_of(), IDENTITY)
    assert not failed.value.retryable
    assert why in failed.value.reason
    assert mailer.sent == []


async def test_mail_without_a_manager_address_fails_for_good() -> None:
    identity = {**IDENTITY, "manager_id": "u-unknown"}
    command = runs.SendMail(**keys("m"), to=("manager",), subject="s", body="b")
    with pytest.raises(EffectFailed, match="has no e-mail") as failed:
        await effects().perform(command, run_of(), identity)
    assert not failed.value.retryable


async def test_mail_errors_map_to_permanent_and_transient() -> None:
    mailer = FakeMailer()
    mailer.fail_next(MailRejected("550 no such user"), MailUnavailable("421 busy"))
    command = runs.SendMail(**keys("m"), to=("identity",), subject="s", body="b")
    with pytest.raises(EffectFailed) as rejected:
        await effects(mailer).perform(command, run_of(), IDENTITY)
    assert not rejected.value.retryable
    with pytest.raises(EffectFailed) as unavailable:
        await effects(mailer).perform(command, run_of(), IDENTITY)
    assert unavailable.value.retryable


async def test_a_display_name_is_made_up_when_the_identity_has_none() -> None:
    mailer = FakeMailer()
    identity = {k: v for k, v in IDENTITY.items() if k != "display_name"}
    command = runs.SendMail(**keys("m"), to=("identity",), subject="{display_name}", body="b")
    await effects(mailer).perform(command, run_of(), identity)
    assert mailer.sent[0].subject == "Ada Lovelace"


# --- extensions (a real local server) -------------------------------------------------------


class Extension:
    """A team's extension: records the requests, answers as told."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        self.answer: Any = {"mailbox": "handed-over", "ticket": 4711}
        self.headers: dict[str, str] = {}

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        return web.json_response(self.answer, status=self.status, headers=self.headers)


@pytest_asyncio.fixture
async def extension() -> AsyncIterator[tuple[Extension, str]]:
    ext = Extension()
    app = web.Application()
    app.router.add_post("/hook", ext.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield ext, f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def local_client() -> AsyncIterator[ExtensionClient]:
    client = ExtensionClient(environ=ENVIRON)
    try:
        yield client
    finally:
        await client.close()


async def test_an_extension_call_sends_the_profile_signed_and_returns_its_outputs(
    extension: tuple[Extension, str],
    local_client: ExtensionClient,
) -> None:
    ext, url = extension
    callbacks = InMemoryCallbacks(environ=ENVIRON)
    runner = effects(callbacks=callbacks, extensions=local_client)
    command = runs.CallExtension(
        **keys("mailbox"),
        url=url,
        secret_env=SECRET_ENV,
        wait_for_callback=True,
        timeout=timedelta(days=3),
    )
    identity = {**IDENTITY, "locked_by": "lock-1", "password": "hunter2"}
    outputs = await runner.perform(command, run_of(), identity)
    assert outputs == {"mailbox": "handed-over", "ticket": 4711}
    (headers, body) = ext.requests[0]
    document = json.loads(body)
    assert document["identity"]["user_id"] == USER
    assert document["identity"]["department"] == "Engineering"
    assert set(document["identity"]) <= {"user_id", *IDENTITY} - {"status"}
    assert "password" not in body.decode()
    assert "lock-1" not in body.decode()
    assert headers[IDEMPOTENCY_HEADER] == f"{RUN_ID}:mailbox"
    secret = ENVIRON[SECRET_ENV].encode()
    assert verify_signature(
        secret, headers["X-Accord-Timestamp"], body, headers[SIGNATURE_HEADER], now=time.time()
    )
    callback = document["callback"]
    assert callback["url"] == f"https://accord.example.com/v1/workflow-callbacks/{RUN_ID}/mailbox"
    awaited = await callbacks.lookup(RUN_ID, "mailbox")
    assert awaited is not None
    assert awaited.token == callback["token"]
    assert awaited.secret == secret
    assert awaited.state is CallbackState.AWAITING
    assert CALLBACK_TOKEN_HEADER not in headers  # the token goes in the body, not a header


async def test_an_extension_that_does_not_wait_gets_no_callback(
    extension: tuple[Extension, str],
    local_client: ExtensionClient,
) -> None:
    ext, url = extension
    callbacks = InMemoryCallbacks(environ=ENVIRON)
    command = runs.CallExtension(
        **keys("ticket"), url=url, secret_env=SECRET_ENV, wait_for_callback=False, timeout=None
    )
    await effects(callbacks=callbacks, extensions=local_client).perform(command, run_of(), IDENTITY)
    assert json.loads(ext.requests[0][1])["callback"] is None
    assert callbacks.awaited == {}


@pytest.mark.parametrize(
    ("status", "retryable", "retry_after"), [(422, False, None), (503, True, 30.0)]
)
async def test_extension_failures_map_to_permanent_and_transient(
    extension: tuple[Extension, str],
    local_client: ExtensionClient,
    status: int,
    retryable: bool,
    retry_after: float | None,
) -> None:
    ext, url = extension
    ext.status, ext.answer = status, {"detail": "nope"}
    if retry_after:
        ext.headers = {"Retry-After": "30"}
    command = runs.CallExtension(
        **keys("x"), url=url, secret_env=SECRET_ENV, wait_for_callback=False, timeout=None
    )
    with pytest.raises(EffectFailed) as failed:
        await effects(extensions=local_client).perform(command, run_of(), IDENTITY)
    assert failed.value.retryable is retryable
    assert failed.value.retry_after_s == retry_after
    assert ENVIRON[SECRET_ENV] not in failed.value.reason


async def test_a_waiting_call_without_a_callback_url_fails_before_calling(
    extension: tuple[Extension, str],
    local_client: ExtensionClient,
) -> None:
    ext, url = extension
    command = runs.CallExtension(
        **keys("x"), url=url, secret_env=SECRET_ENV, wait_for_callback=True, timeout=None
    )
    runner = effects(extensions=local_client, callback_base_url=None)
    with pytest.raises(EffectFailed, match="callback base URL"):
        await runner.perform(command, run_of(), IDENTITY)
    assert ext.requests == []


# --- access passes ---------------------------------------------------------------------------


async def test_an_access_pass_is_mailed_to_the_manager_and_never_shown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mailer, passes = FakeMailer(), FakeAccessPasses(code="K7QW-M2PX-9RTA")
    command = runs.IssueAccessPass(
        **keys("tap"), lifetime=timedelta(hours=8), one_time=True, deliver_to="manager"
    )
    with caplog.at_level(logging.DEBUG):
        outputs = await effects(mailer, passes=passes).perform(command, run_of(), IDENTITY)
    assert passes.issued == [(USER, timedelta(hours=8), True)]
    assert outputs == {"expires_at": (passes.now + timedelta(hours=8)).isoformat()}
    (mail,) = mailer.sent
    assert mail.to == ("grace@example.com",)
    assert "K7QW-M2PX-9RTA" in mail.text
    assert "Ada Lovelace" in mail.subject
    assert mail.message_id == f"<{RUN_ID}.tap@accord>"
    assert "K7QW-M2PX-9RTA" not in caplog.text
    assert "K7QW-M2PX-9RTA" not in repr(outputs)
    assert "K7QW" not in repr(
        await FakeAccessPasses().issue(USER, lifetime=timedelta(1), one_time=True)
    )


async def test_an_access_pass_to_the_identity_and_its_failures() -> None:
    mailer, passes = FakeMailer(), FakeAccessPasses()
    command = runs.IssueAccessPass(
        **keys("tap"), lifetime=timedelta(hours=1), one_time=False, deliver_to="identity"
    )
    await effects(mailer, passes=passes).perform(command, run_of(), IDENTITY)
    assert mailer.sent[0].to == ("ada@example.com",)
    passes.failures.append(AccessPassError("authn answered 503", retryable=True, retry_after_s=5))
    with pytest.raises(EffectFailed) as failed:
        await effects(mailer, passes=passes).perform(command, run_of(), IDENTITY)
    assert failed.value.retryable
    assert failed.value.retry_after_s == 5
    mailer.fail_next(MailUnavailable("421"))
    with pytest.raises(EffectFailed) as unsent:
        await effects(mailer, passes=passes).perform(command, run_of(), IDENTITY)
    assert unsent.value.retryable
    assert passes.code not in unsent.value.reason


async def test_no_pass_is_issued_when_nobody_can_receive_it() -> None:
    passes = FakeAccessPasses()
    command = runs.IssueAccessPass(
        **keys("tap"), lifetime=timedelta(hours=1), one_time=True, deliver_to="manager"
    )
    identity = {k: v for k, v in IDENTITY.items() if k != "manager_id"}
    with pytest.raises(EffectFailed, match="no manager"):
        await effects(passes=passes).perform(command, run_of(), identity)
    assert passes.issued == []
    with pytest.raises(EffectFailed, match="not configured"):
        await effects().perform(command, run_of(), IDENTITY)


async def test_the_http_access_passes_call_authn_with_the_token(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(
                201, json={"code": "ABCD-EFGH", "expires_at": "2027-03-01T16:00:00+00:00"}
            )
        if len(seen) == 2:
            return httpx.Response(503, headers={"Retry-After": "7"})
        return httpx.Response(403, json={"detail": "forbidden"})

    token = tmp_path / "token"
    token.write_text("acc_0123456789abcdef_secret\n")
    client = HttpAccessPasses(
        "http://authn:8000/", token, transport=httpx.MockTransport(answer), clock=lambda: 0.0
    )
    issued = await client.issue(USER, lifetime=timedelta(hours=8), one_time=True)
    assert issued.code == "ABCD-EFGH"
    assert issued.expires_at == datetime(2027, 3, 1, 16, tzinfo=UTC)
    request = seen[0]
    assert request.url == f"http://authn:8000/v1/users/{USER}/access-passes"
    assert request.headers["Authorization"] == "Bearer acc_0123456789abcdef_secret"
    assert json.loads(request.content) == {"lifetime": 28800.0, "one_time": True}
    with pytest.raises(AccessPassError) as busy:
        await client.issue(USER, lifetime=timedelta(hours=8), one_time=True)
    assert busy.value.retryable
    assert busy.value.retry_after_s == 7
    with pytest.raises(AccessPassError) as refused:
        await client.issue(USER, lifetime=timedelta(hours=8), one_time=True)
    assert not refused.value.retryable
    await client.close()


# --- grants, and no I/O for Kafka commands ------------------------------------------------


async def test_revoke_entitlements_unless_allowed_keeps_what_policy_allows() -> None:
    grants = FakeGrants(
        grants={
            USER: [
                HeldGrant("g1", "payroll", "viewer"),
                HeldGrant("g2", "crm", "admin"),
                HeldGrant("g3", "wiki", "editor"),
            ]
        },
        allowed_names={"wiki/editor"},
    )
    command = runs.RevokeEntitlements(**keys("revoke"), entitlements="all", unless_allowed=True)
    outputs = await effects(grants=grants).perform(command, run_of("department-move"), IDENTITY)
    assert outputs == {"revoked": 2, "kept": 1}
    assert grants.revoked == [
        ("g1", "workflow department-move"),
        ("g2", "workflow department-move"),
    ]
    named = runs.RevokeEntitlements(**keys("revoke", 2), entitlements=("wiki/editor",))
    assert await effects(grants=grants).perform(named, run_of(), IDENTITY) == {
        "revoked": 1,
        "kept": 0,
    }
    with pytest.raises(EffectFailed, match="not configured"):
        await effects().perform(named, run_of(), IDENTITY)


async def test_kafka_commands_are_not_performed() -> None:
    approval = runs.AskApproval(
        **keys("ok"), approvers=("manager",), reason=None, timeout=timedelta(days=7)
    )
    for command in (approval, runs.RevokeSessions(**keys("s")), runs.RequireMfa(**keys("mfa"))):
        with pytest.raises(EffectFailed, match="Kafka command") as failed:
            await effects().perform(command, run_of(), IDENTITY)
        assert not failed.value.retryable


async def test_the_http_grants_page_revoke_and_ask_authz(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def grant(grant_id: str, entitlement: str, revoked: str | None = None) -> dict[str, Any]:
        return {
            "grant_id": grant_id,
            "application": "payroll",
            "entitlement": entitlement,
            "revoked_at": revoked,
        }

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        path = request.url.path
        if path == "/v1/entitlements" and "after" not in request.url.params:
            items = [grant("g1", "viewer"), grant("g2", "admin", "2027-01-01T00:00:00Z")]
            return httpx.Response(200, json={"items": items, "next_after": "g2"})
        if path == "/v1/entitlements":
            return httpx.Response(200, json={"items": [grant("g3", "auditor")], "next_after": None})
        if path == "/v1/authorize":
            allowed = json.loads(request.content)["resource"]["id"] == "payroll/viewer"
            return httpx.Response(200, json={"decision": "permit" if allowed else "deny"})
        if path == "/v1/grants/g1/revoke":
            return httpx.Response(409, json={"detail": "ended"})
        return httpx.Response(503, headers={"Retry-After": "3"})

    token = tmp_path / "token"
    token.write_text("acc_0123456789abcdef_authz\n")
    client = HttpAccessGrants(
        "http://authz:8000", token, transport=httpx.MockTransport(answer), clock=lambda: 0.0
    )
    held = await client.held(USER)
    assert [g.name for g in held] == ["payroll/viewer", "payroll/auditor"]
    assert seen[0].url.params["principal_id"] == USER
    assert seen[1].url.params["after"] == "g2"
    assert seen[0].headers["Authorization"] == "Bearer acc_0123456789abcdef_authz"
    assert await client.allowed(USER, "payroll", "viewer") is True
    assert await client.allowed(USER, "payroll", "auditor") is False
    question = json.loads(seen[2].content)
    assert question["principal"] == {"type": "User", "id": USER}
    assert question["action"] == "request"
    await client.revoke("g1", "workflow leaver")  # ended already: done
    assert json.loads(seen[-1].content) == {"reason": "workflow leaver"}
    with pytest.raises(EffectFailed) as busy:
        await client.revoke("g3", "workflow leaver")
    assert busy.value.retryable
    assert busy.value.retry_after_s == 3
    await client.close()
