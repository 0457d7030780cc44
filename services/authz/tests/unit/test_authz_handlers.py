"""Every authz handler, and the timers, on the in-memory ports (accord.authz.fakes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from accord.authz import handlers
from accord.authz.catalogue import load_catalogue
from accord.authz.domain.approvals import (
    ApprovalSettings,
    NotAnApprover,
    NotInvolved,
    NotWaiting,
    RequestNotFound,
)
from accord.authz.domain.model import EntityRef
from accord.authz.domain.policy_files import default_policy_dir, load_policy_dir
from accord.authz.fakes import Memory
from accord.authz.handlers import access
from accord.authz.handlers.timers import fire_due
from accord.authz.ports import AuthzPorts
from accord.events import (
    AccessApprovalDecided,
    AccessApprovalRequested,
    AccessDecided,
    AccessGranted,
    AccessRequested,
    AccessRevoked,
    Envelope,
    EventData,
    GroupCreated,
    GroupDeleted,
    GroupMembersChanged,
    GroupUpdated,
    IdentityLocked,
    IdentityUnlocked,
    MfaEnrolled,
    MfaRemoved,
    Resource,
    UserCreated,
    UserDeactivated,
    UserDeleted,
    UserReactivated,
    UserUpdated,
    new_event,
)
from accord.runtime.errors import PermanentError
from accord.runtime.routes import HandlerContext

POLICIES = load_policy_dir(default_policy_dir())
CATALOGUE = load_catalogue(default_policy_dir() / "catalogue.yaml")
SETTINGS = ApprovalSettings(timeout=timedelta(hours=1), on_timeout="escalate")
SOURCE = "urn:test:authz"
#: The consumer's context: the fake ports ignore it.
CTX = cast(HandlerContext, object())


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def memory(clock: Clock) -> Memory:
    return Memory(clock=clock)


def ports_of(memory: Memory) -> AuthzPorts:
    return memory.ports(lambda: (POLICIES, CATALOGUE), SETTINGS, SOURCE)


async def consume(memory: Memory, data: EventData, sequence: int = 1) -> list[Envelope]:
    """Hand an event to its route, as the consumer does (the ports over `memory`)."""
    routes = handlers.routes(lambda ctx: ports_of(memory))
    event = new_event(data, source="urn:test", sequence=sequence)
    return list(await routes[event.type](event, CTX))


def kinds(events: list[Envelope]) -> list[type[EventData]]:
    return [type(e.data) for e in events]


async def people(memory: Memory) -> None:
    """ada and bob report to mia, mia to the ceo."""
    for user_id, manager in (("ceo", None), ("mia", "ceo"), ("ada", "mia"), ("bob", "mia")):
        await consume(memory, UserCreated(user_id=user_id, user_name=user_id, manager_id=manager))
    await consume(memory, UserCreated(user_id="payroll-owner", user_name="payroll-owner"))


async def ask(
    memory: Memory,
    application: str,
    entitlement: str,
    *,
    principal: str = "ada",
    request_id: str | None = None,
    duration: int | None = None,
) -> tuple[str, list[Envelope]]:
    request = AccessRequested(
        request_id=request_id or f"req-{application}-{entitlement}-{principal}",
        requester_id=principal,
        principal_id=principal,
        resource=Resource(application=application, entitlement=entitlement),
        duration_seconds=duration,
    )
    return request.request_id, await consume(memory, request)


async def answer(
    memory: Memory, request_id: str, approver: str, *, approve: bool = True
) -> list[Envelope]:
    return await access.decide_stage(
        memory.stores(),
        request_id,
        approver_id=approver,
        approve=approve,
        comment="checked",
        catalogue=CATALOGUE,
        settings=SETTINGS,
        source=SOURCE,
    )


# --- routes ---------------------------------------------------------------------------------


def test_every_consumed_event_type_has_one_route() -> None:
    routes = handlers.routes(lambda ctx: ports_of(Memory()))
    assert set(routes) == {
        "user.created",
        "user.updated",
        "user.deactivated",
        "user.reactivated",
        "user.deleted",
        "group.created",
        "group.updated",
        "group.deleted",
        "group.members_changed",
        "identity.locked",
        "identity.unlocked",
        "mfa.enrolled",
        "mfa.removed",
        "access.requested",
        "approval.requested",
    }


async def test_a_payload_of_the_wrong_model_is_a_permanent_error(memory: Memory) -> None:
    routes = handlers.routes(lambda ctx: ports_of(memory))
    event = new_event(GroupCreated(group_id="g", display_name="G"), source="urn:test", sequence=1)
    with pytest.raises(PermanentError):
        await routes["user.created"](event, CTX)


# --- identity events ------------------------------------------------------------------------


async def test_a_user_is_projected_under_its_lock(memory: Memory) -> None:
    data = UserCreated(user_id="ada", user_name="ada", department="eng", manager_id="mia")
    assert await consume(memory, data) == []

    assert memory.locks == ["ada"]
    row = memory.principals["ada"]
    assert (row["department"], row["manager_id"], row["active"], row["deleted"]) == (
        "eng",
        "mia",
        True,
        False,
    )


async def test_an_older_identity_event_changes_nothing(memory: Memory) -> None:
    await consume(memory, UserCreated(user_id="ada", user_name="ada", department="eng"), 2)
    await consume(memory, UserUpdated(user_id="ada", user_name="ada", department="ops"), 1)
    assert memory.principals["ada"]["department"] == "eng"

    await consume(memory, UserUpdated(user_id="ada", user_name="ada", department="ops"), 3)
    assert memory.principals["ada"]["department"] == "ops"


async def test_a_partial_update_sets_the_facts_it_lists_only(memory: Memory) -> None:
    await consume(
        memory, UserCreated(user_id="ada", user_name="ada", department="eng", manager_id="mia")
    )
    await consume(memory, UserDeactivated(user_id="ada"), 2)
    # An HR export that maps the department only: its unset manager and default active
    # are not listed, nor is the user name it must carry.
    moved = UserUpdated(user_id="ada", user_name="hr-ada", department="ops", changed=["department"])
    await consume(memory, moved, 3)
    row = memory.principals["ada"]
    assert (row["department"], row["manager_id"], row["user_name"], row["active"]) == (
        "ops",
        "mia",
        "ada",
        False,
    )
    back = UserUpdated(user_id="ada", user_name="ada", active=True, changed=["active"])
    await consume(memory, back, 4)
    assert (memory.principals["ada"]["active"], memory.principals["ada"]["department"]) == (
        True,
        "ops",
    )


async def test_a_status_event_keeps_the_profile(memory: Memory) -> None:
    await consume(
        memory, UserCreated(user_id="ada", user_name="ada", department="eng", manager_id="mia")
    )
    assert await consume(memory, UserDeactivated(user_id="ada"), 2) == []
    row = memory.principals["ada"]
    assert (row["active"], row["department"], row["manager_id"]) == (False, "eng", "mia")

    await consume(memory, UserReactivated(user_id="ada"), 3)
    assert memory.principals["ada"]["active"] is True
    assert memory.locks == ["ada", "ada", "ada"]


async def test_a_request_that_waited_for_its_principal_is_decided_by_its_user_created(
    memory: Memory,
) -> None:
    request_id, events = await ask(memory, "wiki", "reader", principal="zed")
    assert events == []
    assert memory.requests[request_id]["status"] == "pending"

    decided = await consume(memory, UserCreated(user_id="zed", user_name="zed"))

    assert kinds(decided) == [AccessDecided, AccessGranted]
    assert decided[0].correlationid == request_id
    assert memory.requests[request_id]["status"] == "permit"
    # Decided once: the next identity event finds nothing waiting.
    assert await consume(memory, UserUpdated(user_id="zed", user_name="z"), 2) == []


async def test_a_deleted_user_loses_every_grant(memory: Memory) -> None:
    await people(memory)
    await ask(memory, "wiki", "reader")
    await ask(memory, "wiki", "editor")

    left = await consume(memory, UserDeleted(user_id="ada"), 2)

    assert kinds(left) == [AccessRevoked, AccessRevoked]
    assert {getattr(e.data, "reason", None) for e in left} == {"leaver"}
    assert await memory.stores().grants.live_of("ada") == []
    row = memory.principals["ada"]
    assert (row["deleted"], row["active"], row["manager_id"]) == (True, False, "mia")


# --- group events ---------------------------------------------------------------------------


async def test_groups_are_projected_by_sequence(memory: Memory) -> None:
    assert await consume(memory, GroupCreated(group_id="g", display_name="One"), 2) == []
    await consume(memory, GroupUpdated(group_id="g", display_name="Old"), 1)
    assert memory.groups["g"]["display_name"] == "One"
    await consume(memory, GroupUpdated(group_id="g", display_name="Two"), 3)
    assert memory.groups["g"]["display_name"] == "Two"


async def test_members_changed_adds_and_removes_and_nested_groups_count(memory: Memory) -> None:
    await consume(memory, GroupMembersChanged(group_id="security", added=("sec-team", "ann")))
    await consume(memory, GroupMembersChanged(group_id="sec-team", added=("bob", "cy")))
    await consume(memory, GroupCreated(group_id="sec-team", display_name="Sec"))
    assert await consume(memory, GroupMembersChanged(group_id="sec-team", removed=("cy",))) == []

    directory = memory.stores().directory
    assert await directory.members("security") == ["ann", "bob"]
    entities = await directory.principal_entities("bob")
    assert [p.id for p in entities[0].parents] == ["sec-team"]
    assert {e.ref.id: [p.id for p in e.parents] for e in entities[1:]} == {
        "sec-team": ["security"],
        "security": [],
    }


async def test_a_deleted_group_loses_its_memberships(memory: Memory) -> None:
    await consume(memory, GroupCreated(group_id="g", display_name="G"), 1)
    await consume(memory, GroupMembersChanged(group_id="g", added=("ada",)))
    await consume(memory, GroupMembersChanged(group_id="parent", added=("g",)))

    assert await consume(memory, GroupDeleted(group_id="g"), 2) == []

    assert memory.groups["g"]["deleted"] is True
    assert memory.members == set()


# --- authn events ---------------------------------------------------------------------------


async def test_a_lockout_locks_until_it_ends_whatever_the_order(memory: Memory) -> None:
    directory = memory.stores().directory
    assert await consume(memory, IdentityLocked(user_id="ada", lockout_id="lo-1", reason="x")) == []
    assert (await directory.principal_entities("ada"))[0].attrs["locked"] is True

    assert (
        await consume(memory, IdentityUnlocked(user_id="ada", lockout_id="lo-1", request_id="r-1"))
        == []
    )
    assert (await directory.principal_entities("ada"))[0].attrs["locked"] is False

    # An unlock consumed before its lockout: the lockout never locks.
    await consume(memory, IdentityUnlocked(user_id="bob", lockout_id="lo-2", request_id="r-2"))
    await consume(memory, IdentityLocked(user_id="bob", lockout_id="lo-2", reason="x"))
    assert (await directory.principal_entities("bob"))[0].attrs["locked"] is False


async def test_factors_follow_their_credentials(memory: Memory) -> None:
    directory = memory.stores().directory
    for credential in ("key-a", "key-b"):
        data = MfaEnrolled(user_id="ada", credential_id=credential, factor="webauthn")
        assert await consume(memory, data) == []
    removed = MfaRemoved(user_id="ada", credential_id="key-a", factor="webauthn", reason="removed")
    assert await consume(memory, removed) == []
    assert (await directory.principal_entities("ada"))[0].attrs["factors"] == {"webauthn"}

    await consume(
        memory,
        MfaRemoved(user_id="ada", credential_id="key-b", factor="webauthn", reason="removed"),
    )
    assert "factors" not in (await directory.principal_entities("ada"))[0].attrs
    # A removal consumed before its enrolment wins.
    await consume(
        memory, MfaRemoved(user_id="ada", credential_id="late", factor="totp", reason="removed")
    )
    await consume(memory, MfaEnrolled(user_id="ada", credential_id="late", factor="totp"))
    assert "factors" not in (await directory.principal_entities("ada"))[0].attrs


# --- access requested -----------------------------------------------------------------------


async def test_a_low_risk_request_is_granted_at_once_with_its_group(
    memory: Memory, clock: Clock
) -> None:
    await people(memory)
    _, events = await ask(memory, "wiki", "reader", duration=3600)

    assert kinds(events) == [AccessDecided, AccessGranted]
    decided, granted = (e.data for e in events)
    assert isinstance(decided, AccessDecided)
    assert (decided.decision, decided.reasons) == ("permit", ("low-risk-self-service",))
    assert isinstance(granted, AccessGranted)
    assert [(p.target, p.group) for p in granted.provisioning] == [("scim-demo", "wiki-readers")]
    assert granted.expires_at == clock.now + timedelta(hours=1)
    entities = await memory.stores().directory.principal_entities("ada")
    assert entities[0].attrs["entitlements"] == {EntityRef("Entitlement", "wiki/reader")}
    # A second request for what is held makes no second grant (it is answered with this
    # one: see the next tests).
    await ask(memory, "wiki", "reader", request_id="req-again")
    assert [g["grant_id"] for g in memory.grants.values()] == [granted.grant_id]


async def test_a_redelivered_request_is_answered_once(memory: Memory) -> None:
    await people(memory)
    request = AccessRequested(
        request_id="req-1",
        requester_id="ada",
        principal_id="ada",
        resource=Resource(application="wiki", entitlement="reader"),
    )
    assert kinds(await consume(memory, request)) == [AccessDecided, AccessGranted]
    assert await consume(memory, request) == []


async def test_a_request_for_an_entitlement_held_is_answered_with_its_grant(
    memory: Memory, clock: Clock
) -> None:
    await people(memory)
    _, first = await ask(memory, "wiki", "reader", duration=3600)
    held = first[-1].data
    assert isinstance(held, AccessGranted)
    clock.now += timedelta(minutes=5)

    request = AccessRequested(
        request_id="run-1:grant_wiki:1",
        requester_id="ada",
        principal_id="ada",
        resource=Resource(application="wiki", entitlement="reader"),
        duration_seconds=7200,
    )
    events = await consume(memory, request)

    assert kinds(events) == [AccessDecided, AccessGranted]
    answer = events[-1].data
    assert isinstance(answer, AccessGranted)
    # The held grant as it is: its id, expiry and groups; the request's longer duration
    # does not extend it.
    assert answer == held.model_copy(
        update={"request_id": "run-1:grant_wiki:1", "reaffirmed": True}
    )
    assert events[-1].subject == "run-1:grant_wiki:1"
    assert len(memory.grants) == 1
    assert memory.requests["run-1:grant_wiki:1"]["status"] == "permit"
    # A redelivery is answered once, as any request (the answer above is committed with
    # the decision).
    assert await consume(memory, request) == []

    # Another request gets its own answer, naming the same grant.
    _, other = await ask(memory, "wiki", "reader", request_id="run-1:grant_wiki:2")
    assert kinds(other) == [AccessDecided, AccessGranted]
    assert other[-1].data == answer.model_copy(update={"request_id": "run-1:grant_wiki:2"})
    assert other[-1].id != events[-1].id


async def test_an_approved_request_for_an_entitlement_held_is_answered_with_its_grant(
    memory: Memory,
) -> None:
    await people(memory)
    first, _ = await ask(memory, "payroll", "viewer", principal="bob", request_id="req-1")
    await answer(memory, first, "mia")
    held = (await answer(memory, first, "payroll-owner"))[-1].data
    assert isinstance(held, AccessGranted)
    assert not held.reaffirmed
    second, _ = await ask(memory, "payroll", "viewer", principal="bob", request_id="req-2")
    await answer(memory, second, "mia")

    final = await answer(memory, second, "payroll-owner")

    assert kinds(final) == [AccessApprovalDecided, AccessGranted]
    reaffirmed = final[-1].data
    assert isinstance(reaffirmed, AccessGranted)
    assert (reaffirmed.request_id, reaffirmed.grant_id, reaffirmed.reaffirmed) == (
        "req-2",
        held.grant_id,
        True,
    )
    assert memory.requests[second]["status"] == "approved"


async def test_a_request_for_an_unknown_principal_waits(memory: Memory) -> None:
    request_id, events = await ask(memory, "wiki", "reader", principal="nobody")
    assert events == []
    assert memory.requests[request_id]["status"] == "pending"
    assert memory.locks == ["nobody"]


async def test_a_high_risk_request_goes_through_manager_then_owner(memory: Memory) -> None:
    await people(memory)
    request_id, events = await ask(memory, "payroll", "viewer", principal="bob")

    assert kinds(events) == [AccessDecided, AccessApprovalRequested]
    first = events[1].data
    assert isinstance(first, AccessApprovalRequested)
    assert (first.stage, first.stages, first.stage_name, first.approvers) == (
        1,
        2,
        "manager",
        ("mia",),
    )
    with pytest.raises(NotAnApprover, match="own request"):
        await answer(memory, request_id, "bob")
    with pytest.raises(NotAnApprover, match="not an approver"):
        await answer(memory, request_id, "payroll-owner")

    approved = await answer(memory, request_id, "mia")
    assert kinds(approved) == [AccessApprovalDecided, AccessApprovalRequested]
    second = approved[1].data
    assert isinstance(second, AccessApprovalRequested)
    assert (second.stage, second.approvers) == (2, ("payroll-owner",))

    final = await answer(memory, request_id, "payroll-owner")
    assert kinds(final) == [AccessApprovalDecided, AccessGranted]
    assert memory.requests[request_id]["status"] == "approved"
    with pytest.raises(NotWaiting):
        await answer(memory, request_id, "payroll-owner")


async def test_a_denied_stage_ends_the_request_and_skips_the_rest(memory: Memory) -> None:
    await people(memory)
    request_id, _ = await ask(memory, "payroll", "admin", principal="bob")

    events = await answer(memory, request_id, "mia", approve=False)

    assert kinds(events) == [AccessApprovalDecided]
    assert getattr(events[0].data, "outcome", None) == "denied"
    assert memory.requests[request_id]["status"] == "denied"
    chain = await memory.stores().approvals.chain(request_id)
    assert [s["status"] for s in chain] == ["denied", "skipped"]


async def test_a_chain_nobody_else_can_approve_is_denied_with_the_reason(memory: Memory) -> None:
    await people(memory)
    _, events = await ask(memory, "payroll", "viewer", principal="ceo")

    (decided,) = (e.data for e in events)
    assert isinstance(decided, AccessDecided)
    assert decided.decision == "deny"
    assert "approval stage 1 (manager) has no approver" in decided.reasons[-1]


async def test_who_may_not_decide_a_stage_is_told_so(memory: Memory) -> None:
    await people(memory)
    with pytest.raises(RequestNotFound):
        await answer(memory, "req-none", "mia")
    request_id, _ = await ask(memory, "payroll", "viewer", principal="bob")
    with pytest.raises(NotInvolved):
        await answer(memory, request_id, "stranger")
    _, granted = await ask(memory, "wiki", "reader")
    with pytest.raises(NotWaiting):
        await answer(memory, "req-wiki-reader-ada", "ada")
    assert kinds(granted) == [AccessDecided, AccessGranted]


# --- timers ---------------------------------------------------------------------------------


async def test_an_overdue_stage_escalates_then_expires(memory: Memory, clock: Clock) -> None:
    await people(memory)
    request_id, _ = await ask(memory, "payroll", "viewer")
    stores = memory.stores()

    fired = await fire_due(stores, settings=SETTINGS, source=SOURCE, limit=100)
    assert (fired.events, fired.handled) == ([], 0)

    clock.now += timedelta(hours=1)
    fired = await fire_due(stores, settings=SETTINGS, source=SOURCE, limit=100)
    assert (kinds(fired.events), fired.handled) == ([AccessApprovalRequested], 1)
    stage, _ = await stores.approvals.chain(request_id)
    assert (stage["status"], stage["escalated"], stage["approvers"]) == ("pending", True, ["ceo"])

    clock.now += timedelta(hours=1)
    fired = await fire_due(stores, settings=SETTINGS, source=SOURCE, limit=100)
    assert kinds(fired.events) == [AccessApprovalDecided]
    assert getattr(fired.events[0].data, "outcome", None) == "expired"
    stage, later = await stores.approvals.chain(request_id)
    assert (stage["status"], later["status"]) == ("expired", "skipped")
    assert memory.requests[request_id]["status"] == "expired"


async def test_an_overdue_stage_expires_at_once_when_settings_say_so(
    memory: Memory, clock: Clock
) -> None:
    await people(memory)
    request_id, _ = await ask(memory, "payroll", "viewer")
    clock.now += timedelta(hours=2)
    expire_now = ApprovalSettings(timeout=timedelta(hours=1), on_timeout="expire")

    fired = await fire_due(memory.stores(), settings=expire_now, source=SOURCE, limit=100)

    assert kinds(fired.events) == [AccessApprovalDecided]
    assert memory.requests[request_id]["status"] == "expired"


async def test_a_time_bound_grant_ends_at_its_expiry(memory: Memory, clock: Clock) -> None:
    await people(memory)
    _, events = await ask(memory, "wiki", "editor", duration=60)
    granted = events[-1].data
    assert isinstance(granted, AccessGranted)

    clock.now += timedelta(seconds=61)
    fired = await fire_due(memory.stores(), settings=SETTINGS, source=SOURCE, limit=100)

    assert (kinds(fired.events), fired.handled) == ([AccessRevoked], 1)
    assert getattr(fired.events[0].data, "reason", None) == "expired"
    assert memory.grants[granted.grant_id]["revoked_at"] == granted.expires_at
    again = await fire_due(memory.stores(), settings=SETTINGS, source=SOURCE, limit=100)
    assert (again.events, again.handled) == ([], 0)


async def test_a_new_grant_records_the_end_of_an_expired_one_first(
    memory: Memory, clock: Clock
) -> None:
    await people(memory)
    await ask(memory, "wiki", "editor", duration=60)
    clock.now += timedelta(seconds=61)

    _, events = await ask(memory, "wiki", "editor", request_id="req-again")

    assert kinds(events) == [AccessDecided, AccessRevoked, AccessGranted]


async def test_revoking_a_grant_that_is_not_live_emits_nothing(memory: Memory) -> None:
    await people(memory)
    _, events = await ask(memory, "wiki", "reader")
    granted = events[-1].data
    assert isinstance(granted, AccessGranted)
    stores = memory.stores()

    first = await access.revoke(stores, granted.grant_id, "by hand", source=SOURCE)
    assert kinds(first) == [AccessRevoked]
    assert await access.revoke(stores, granted.grant_id, "by hand", source=SOURCE) == []
    assert await access.revoke(stores, "grant-none", "by hand", source=SOURCE) == []
