"""The access and enrolment handlers, the lockout flows and the routes, on in-memory
ports: approved unlocks and resets act once, refused ones are settled, enrolment requests
close when a factor is enrolled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import asyncpg
import pytest

from accord.authn import approvals
from accord.authn.bootstrap import routes_of
from accord.authn.domain.identity import Change
from accord.authn.domain.lockout import ApprovalRequest, GrantAction, grant_action
from accord.authn.fakes import Fakes, HeldFactor
from accord.authn.handlers import (
    lockout,
    on_access_decided,
    on_access_granted,
    on_enrolment_requested,
    on_mfa_enrolled,
)
from accord.authn.ports import Ports
from accord.events import (
    AccessDecided,
    AccessGranted,
    Envelope,
    EventData,
    IdentityUnlocked,
    MfaEnrolled,
    MfaEnrolmentRequested,
    Resource,
    UserCreated,
    new_event,
)
from accord.runtime.errors import PermanentError
from accord.runtime.routes import HandlerContext

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
USER = "u-1"
UNLOCK = Resource(application="accord", entitlement="unlock")
RESET = Resource(application="accord", entitlement="mfa-reset")


def event(data: EventData, when: datetime = T0) -> Envelope:
    return new_event(data, source="urn:test:authz", time=when)


def granted(request_id: str, resource: Resource = UNLOCK) -> AccessGranted:
    return AccessGranted(
        request_id=request_id, grant_id=f"g-{request_id}", principal_id=USER, resource=resource
    )


def denied(request_id: str, resource: Resource = UNLOCK) -> AccessDecided:
    return AccessDecided(
        request_id=request_id, principal_id=USER, resource=resource, decision="deny"
    )


async def locked(fakes: Fakes, *, active: bool = True) -> str:
    await fakes.identities.apply(USER, Change(1, (USER, None), active=active))
    events = await lockout.lock(fakes.ports, USER, "by hand", cause=None, at=T0)
    assert [e.type for e in events] == ["identity.locked", "session.revoked"]
    held = await fakes.lockouts.open_lockout(USER)
    assert held is not None
    return held.lockout_id


async def grant(fakes: Fakes, data: AccessGranted, when: datetime = T0) -> list[Envelope]:
    return await on_access_granted(event(data, when), data, fakes.ports)


async def test_an_approved_unlock_ends_the_lockout_once() -> None:
    fakes = Fakes()
    lockout_id = await locked(fakes)
    fakes.requests.file(ApprovalRequest("req-1", USER, "unlock", "pending", lockout_id))

    events = await grant(fakes, granted("req-1"), T0 + timedelta(minutes=5))

    assert [e.type for e in events] == ["identity.unlocked"]
    unlocked = events[0].data
    assert isinstance(unlocked, IdentityUnlocked)
    assert (unlocked.lockout_id, unlocked.request_id) == (lockout_id, "req-1")
    assert await fakes.lockouts.open_lockout(USER) is None
    assert fakes.lockouts.settled[USER] == T0 + timedelta(minutes=5)
    assert fakes.signals.sent[-1] == (USER, "account-enabled", "unlocked by req-1")
    assert fakes.requests.requests["req-1"].status == "done"
    assert await grant(fakes, granted("req-1")) == []  # acted on once


async def test_an_unlock_of_an_inactive_identity_enables_nothing() -> None:
    fakes = Fakes()
    lockout_id = await locked(fakes, active=False)
    fakes.requests.file(ApprovalRequest("req-1", USER, "unlock", "pending", lockout_id))
    assert [e.type for e in await grant(fakes, granted("req-1"))] == ["identity.unlocked"]
    assert "account-enabled" not in fakes.signals.of(USER)


async def test_an_unlock_of_a_lockout_ended_already_is_only_settled() -> None:
    fakes = Fakes()
    lockout_id = await locked(fakes)
    await fakes.lockouts.close_lockout(lockout_id, "req-0")
    fakes.requests.file(ApprovalRequest("req-1", USER, "unlock", "granted", lockout_id))
    assert await grant(fakes, granted("req-1")) == []
    assert fakes.requests.requests["req-1"].status == "done"
    fakes.requests.file(ApprovalRequest("req-2", USER, "unlock", "pending", "lock-unknown"))
    assert await grant(fakes, granted("req-2")) == []
    assert fakes.requests.requests["req-2"].status == "done"


async def test_an_approved_factor_reset_removes_every_factor() -> None:
    fakes = Fakes()
    fakes.factors.held[USER] = [HeldFactor("c-1", "totp"), HeldFactor("c-2", "webauthn")]
    fakes.requests.file(ApprovalRequest("req-reset", USER, "mfa-reset", "pending"))
    events = await grant(fakes, granted("req-reset", RESET))
    assert [e.type for e in events] == ["mfa.removed", "mfa.removed"]
    assert fakes.factors.removed == [(USER, "reset (req-reset)")]
    assert fakes.requests.requests["req-reset"].status == "done"


async def test_grants_that_are_not_authns_change_nothing() -> None:
    fakes = Fakes()
    fakes.requests.file(ApprovalRequest("req-1", USER, "mfa-reset", "pending"))
    other = granted("req-1", Resource(application="wiki", entitlement="reader"))
    assert await grant(fakes, other) == []
    assert await grant(fakes, granted("req-unknown")) == []
    assert fakes.requests.requests["req-1"].status == "pending"
    assert fakes.factors.removed == []


async def test_a_refused_request_is_settled_as_denied_once() -> None:
    fakes = Fakes()
    fakes.requests.file(ApprovalRequest("req-1", USER, "unlock", "pending", "lock-1"))
    fakes.requests.file(ApprovalRequest("req-2", USER, "unlock", "done", "lock-1"))
    for request_id in ("req-1", "req-2", "req-unknown"):
        data = denied(request_id)
        assert await on_access_decided(event(data), data, fakes.ports) == []
    assert fakes.requests.requests["req-1"].status == "denied"
    assert fakes.requests.requests["req-2"].status == "done"


@pytest.mark.parametrize(
    "data",
    [
        AccessDecided(request_id="req-1", principal_id=USER, resource=UNLOCK, decision="permit"),
        denied("req-1", Resource(application="wiki", entitlement="reader")),
    ],
)
async def test_a_permit_or_another_applications_refusal_settles_nothing(
    data: AccessDecided,
) -> None:
    fakes = Fakes()
    fakes.requests.file(ApprovalRequest("req-1", USER, "unlock", "pending", "lock-1"))
    assert await on_access_decided(event(data), data, fakes.ports) == []
    assert fakes.requests.requests["req-1"].status == "pending"


@pytest.mark.parametrize(
    ("filed", "expected"),
    [
        (None, GrantAction.IGNORE),
        (ApprovalRequest("r", USER, "unlock", "done", "l"), GrantAction.IGNORE),
        (ApprovalRequest("r", USER, "unlock", "denied", "l"), GrantAction.IGNORE),
        (ApprovalRequest("r", USER, "unlock", "pending", "l"), GrantAction.UNLOCK),
        (ApprovalRequest("r", USER, "unlock", "granted", None), GrantAction.SETTLE),
        (ApprovalRequest("r", USER, "mfa-reset", "granted"), GrantAction.RESET),
    ],
)
def test_what_a_grant_makes_authn_do(filed: ApprovalRequest | None, expected: GrantAction) -> None:
    assert grant_action(filed) is expected


# --- the lockout flows the API and the Shared Signals receiver use --------------------------


async def test_a_lock_by_hand_locks_once_and_its_signals_share_a_txn() -> None:
    fakes = Fakes()
    await locked(fakes)
    (txn,) = set(fakes.signals.txns)
    assert fakes.signals.sent == [
        (USER, "account-disabled", "by hand"),
        (USER, "session-revoked", "lockout: by hand"),
    ]
    assert await lockout.lock(fakes.ports, USER, "again", cause=None) == []
    assert fakes.signals.txns == [txn, txn]


async def test_revocations_without_a_cause_have_a_txn_each() -> None:
    fakes = Fakes()
    for _ in range(2):
        (revoked,) = await lockout.revoke_sessions(fakes.ports, USER, "x" * 300, cause=None)
        assert revoked.data.model_dump()["reason"] == "x" * 256
        assert revoked.causationid is None
    assert len(set(fakes.signals.txns)) == 2


# --- enrolment ------------------------------------------------------------------------------


@pytest.mark.parametrize("enrolled_first", [False, True])
async def test_an_enrolment_request_is_done_once_a_factor_is_enrolled_in_either_order(
    enrolled_first: bool,
) -> None:
    fakes = Fakes()
    done = MfaEnrolled(user_id=USER, credential_id="c-1", factor="webauthn")
    ask = MfaEnrolmentRequested(user_id=USER, factors=("webauthn",), saga_id="s-1")
    if enrolled_first:
        fakes.enrolments.confirmed[USER] = [T0]  # the credential the event announced
        assert await on_mfa_enrolled(event(done), done, fakes.ports) == []
        assert await on_enrolment_requested(event(ask), ask, fakes.ports) == []
    else:
        assert await on_enrolment_requested(event(ask), ask, fakes.ports) == []
        assert fakes.enrolments.requests[USER].enrolled_at is None
        assert await on_mfa_enrolled(event(done), done, fakes.ports) == []
    request = fakes.enrolments.requests[USER]
    assert request.enrolled_at == T0
    assert (request.factors, request.saga_id) == (["webauthn"], "s-1")


# --- the routes -----------------------------------------------------------------------------


async def test_the_routes_build_the_ports_from_the_context_and_check_the_payload() -> None:
    fakes = Fakes()
    seen: list[str] = []

    def ports_of(conn: asyncpg.Connection, source: str) -> Ports:
        seen.append(source)
        return fakes.ports

    routes = routes_of(ports_of)
    ctx = HandlerContext(conn=cast(Any, None), source="accord/authn", topic="user.created")
    joiner = new_event(UserCreated(user_id=USER, user_name=USER), source="urn:test", sequence=1)
    route = routes["user.created"]
    assert callable(route)
    assert list(await route(joiner, ctx)) == []
    assert seen == ["accord/authn"]
    assert await fakes.identities.status_of(USER) == "active"
    with pytest.raises(PermanentError):
        await route(event(denied("req-1")), ctx)


# --- filing requests (the lockout API) --------------------------------------------------------


async def test_an_unlock_request_names_the_open_lockout_and_is_filed_once() -> None:
    fakes = Fakes()
    with pytest.raises(approvals.NothingToUnlock):
        await approvals.file_request(
            fakes.ports,
            kind="unlock",
            user_id=USER,
            requester_id="helpdesk",
            justification=None,
            request_id="req-1",
        )
    assert fakes.requests.requests == {}
    lockout_id = await locked(fakes)

    async def file() -> tuple[bool, list[Envelope]]:
        return await approvals.file_request(
            fakes.ports,
            kind="unlock",
            user_id=USER,
            requester_id="helpdesk",
            justification="verified by phone",
            request_id="req-1",
        )

    created, events = await file()

    assert created
    (requested,) = events
    assert requested.type == "access.requested"
    assert requested.source == fakes.source
    assert requested.data.model_dump() == {
        "request_id": "req-1",
        "requester_id": "helpdesk",
        "principal_id": USER,
        "resource": {"application": "accord", "entitlement": "unlock"},
        "justification": "verified by phone",
        "duration_seconds": 1,
    }
    assert fakes.requests.requests["req-1"] == ApprovalRequest(
        "req-1", USER, "unlock", "pending", lockout_id
    )
    assert await file() == (False, [])


async def test_a_reset_request_needs_no_lockout() -> None:
    fakes = Fakes()
    created, events = await approvals.file_request(
        fakes.ports,
        kind="mfa-reset",
        user_id=USER,
        requester_id=USER,
        justification=None,
        request_id="req-reset",
    )
    assert created
    assert events[0].data.model_dump()["resource"]["entitlement"] == "mfa-reset"
    assert fakes.requests.requests["req-reset"].lockout_id is None


def test_a_request_id_is_stable_for_one_callers_key_only() -> None:
    same = approvals.request_id_for("unlock", USER, "helpdesk", "k-1")
    assert same == approvals.request_id_for("unlock", USER, "helpdesk", "k-1")
    assert same != approvals.request_id_for("unlock", USER, "someone", "k-1")
    assert same != approvals.request_id_for("mfa-reset", USER, "helpdesk", "k-1")
    assert approvals.request_id_for("unlock", USER, "helpdesk", None) != (
        approvals.request_id_for("unlock", USER, "helpdesk", None)
    )
    assert same.startswith("req-")
