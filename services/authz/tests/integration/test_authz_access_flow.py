"""Access requests on a real PostgreSQL: decisions, approval chains, grants, SoD, expiry."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from accord.authz import access, sod, timers
from accord.authz.adapters import approvals, grants, requests
from accord.authz.adapters.directory import PostgresDirectory
from accord.authz.adapters.grants import PostgresGrants
from accord.authz.catalogue import load_catalogue
from accord.authz.domain.approvals import NotAnApprover
from accord.authz.domain.policy_files import default_policy_dir, load_policy_dir
from accord.authz.ports import NewGrant
from accord.authz.testing import consume
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
    GroupMembersChanged,
    Resource,
    UserCreated,
    UserDeleted,
    new_event,
)
from accord.runtime.consumer import HandlerContext
from accord.stack.testing import migrated_pool

pytestmark = pytest.mark.integration
SCHEMA = "authz"
SOURCE = "urn:test:authz"
POLICIES = load_policy_dir(default_policy_dir())
CATALOGUE = load_catalogue(default_policy_dir() / "catalogue.yaml")
SETTINGS = access.ApprovalSettings(timeout=timedelta(hours=1), on_timeout="escalate")


@pytest_asyncio.fixture(loop_scope="session")
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool(fresh_database, SCHEMA, ["accord.authz.migrations"]) as created:
        await people(created)
        yield created


async def on(
    pool: asyncpg.Pool, handler: Any, data: EventData, sequence: int = 1
) -> list[Envelope]:
    async with pool.acquire() as conn, conn.transaction():
        ctx = HandlerContext(conn=conn, source=SOURCE, topic=data.event_type)
        result: list[Envelope] = await handler(
            new_event(data, source="urn:test", sequence=sequence), ctx
        )
        return result


async def people(pool: asyncpg.Pool) -> None:
    """ada reports to mia, mia to the ceo; payroll is owned by payroll-owner."""
    for user_id, manager in (("ceo", None), ("mia", "ceo"), ("ada", "mia"), ("bob", "mia")):
        await on(
            pool,
            consume,
            UserCreated(user_id=user_id, user_name=user_id, manager_id=manager),
        )
    for user_id in ("payroll-owner", "finance-owner", "security-officer"):
        await on(pool, consume, UserCreated(user_id=user_id, user_name=user_id))


async def ask(
    pool: asyncpg.Pool,
    application: str,
    entitlement: str,
    *,
    principal: str = "ada",
    requester: str | None = None,
    duration: int | None = None,
    request_id: str | None = None,
) -> tuple[str, list[EventData]]:
    request = AccessRequested(
        request_id=request_id or f"req-{application}-{entitlement}-{principal}",
        requester_id=requester or principal,
        principal_id=principal,
        resource=Resource(application=application, entitlement=entitlement),
        duration_seconds=duration,
    )
    async with pool.acquire() as conn, conn.transaction():
        events = await access.decide_request(
            conn,
            new_event(request, source="urn:test"),
            policies=POLICIES,
            catalogue=CATALOGUE,
            settings=SETTINGS,
            source=SOURCE,
        )
    return request.request_id, [e.data for e in events]


async def answer(
    pool: asyncpg.Pool, request_id: str, approver: str, *, approve: bool = True
) -> list[EventData]:
    async with pool.acquire() as conn, conn.transaction():
        events = await access.decide_stage(
            conn,
            request_id,
            approver_id=approver,
            approve=approve,
            comment="checked",
            catalogue=CATALOGUE,
            settings=SETTINGS,
            source=SOURCE,
        )
    return [e.data for e in events]


async def test_a_low_risk_request_is_granted_at_once_with_its_group(pool: asyncpg.Pool) -> None:
    _, events = await ask(pool, "wiki", "reader", duration=3600)

    decided, granted = events
    assert isinstance(decided, AccessDecided)
    assert (decided.decision, decided.reasons) == ("permit", ("low-risk-self-service",))
    assert isinstance(granted, AccessGranted)
    assert [(p.target, p.group) for p in granted.provisioning] == [("scim-demo", "wiki-readers")]
    assert granted.expires_at is not None
    # A second request for what is held makes no second grant: it is answered with this one.
    _, again = await ask(pool, "wiki", "reader", request_id="req-wiki-again")
    assert again[-1] == granted.model_copy(
        update={"request_id": "req-wiki-again", "reaffirmed": True}
    )


async def test_a_request_for_an_entitlement_held_is_answered_once_with_its_grant(
    pool: asyncpg.Pool,
) -> None:
    _, first = await ask(pool, "wiki", "editor", principal="bob", duration=3600)
    held = first[-1]
    assert isinstance(held, AccessGranted)
    request = AccessRequested(
        request_id="run-1:grant_wiki:1",
        requester_id="bob",
        principal_id="bob",
        resource=Resource(application="wiki", entitlement="editor"),
    )
    event = new_event(request, source="urn:test")

    answers = [await decided(pool, event), await decided(pool, event)]  # then redelivered

    assert answers[0] == [
        AccessDecided,
        held.model_copy(update={"request_id": "run-1:grant_wiki:1", "reaffirmed": True}),
    ]
    assert answers[1] == []
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT grant_id, expires_at FROM grants WHERE principal_id = 'bob'"
            " AND entitlement = 'editor'"
        )
    assert [(r["grant_id"], r["expires_at"]) for r in rows] == [(held.grant_id, held.expires_at)]


async def decided(pool: asyncpg.Pool, event: Envelope) -> list[Any]:
    """authz's answer to one delivery of a request: the types of the events, but a grant's
    data in full."""
    async with pool.acquire() as conn, conn.transaction():
        events = await access.decide_request(
            conn,
            event,
            policies=POLICIES,
            catalogue=CATALOGUE,
            settings=SETTINGS,
            source=SOURCE,
        )
    return [e.data if isinstance(e.data, AccessGranted) else type(e.data) for e in events]


async def test_a_high_risk_request_goes_through_manager_then_owner(pool: asyncpg.Pool) -> None:
    request_id, events = await ask(pool, "payroll", "viewer", principal="bob")

    decided, first = events
    assert isinstance(decided, AccessDecided)
    assert decided.decision == "approval_required"
    assert isinstance(first, AccessApprovalRequested)
    assert (first.stage, first.stages, first.stage_name, first.approvers) == (
        1,
        2,
        "manager",
        ("mia",),
    )

    with pytest.raises(NotAnApprover, match="own request"):
        await answer(pool, request_id, "bob")
    with pytest.raises(NotAnApprover, match="not an approver"):
        await answer(pool, request_id, "payroll-owner")  # not yet: stage 2

    approved, second = await answer(pool, request_id, "mia")
    assert isinstance(approved, AccessApprovalDecided)
    assert (approved.outcome, approved.approver_id) == ("approved", "mia")
    assert isinstance(second, AccessApprovalRequested)
    assert (second.stage, second.approvers) == (2, ("payroll-owner",))

    final = await answer(pool, request_id, "payroll-owner")
    assert [type(e) for e in final] == [AccessApprovalDecided, AccessGranted]
    row = await requests.get(pool, request_id)
    assert row is not None
    assert row["status"] == "approved"
    with pytest.raises(access.NotWaiting):
        await answer(pool, request_id, "payroll-owner")


async def test_a_denied_stage_ends_the_request(pool: asyncpg.Pool) -> None:
    request_id, _ = await ask(pool, "payroll", "admin", principal="bob", request_id="req-deny")

    events = await answer(pool, request_id, "mia", approve=False)

    assert [(type(e), getattr(e, "outcome", None)) for e in events] == [
        (AccessApprovalDecided, "denied")
    ]
    row = await requests.get(pool, request_id)
    assert row is not None
    assert row["status"] == "denied"
    # The owner's stage was never opened: it waits for nothing.
    chain = await approvals.chain(pool, request_id)
    assert [s["status"] for s in chain] == ["denied", "skipped"]


async def test_a_chain_nobody_else_can_approve_is_denied_with_the_reason(
    pool: asyncpg.Pool,
) -> None:
    # The ceo has no manager: the manager stage cannot be decided by anyone else.
    _, events = await ask(pool, "payroll", "viewer", principal="ceo")

    (decided,) = events
    assert isinstance(decided, AccessDecided)
    assert decided.decision == "deny"
    assert "approval stage 1 (manager) has no approver" in decided.reasons[-1]


async def test_a_toxic_combination_is_denied_naming_the_sod_policy_and_listed(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        # Held from before the rule existed: granted directly.
        for application, entitlement in (("payroll", "admin"), ("finance", "payment-approver")):
            await conn.execute(
                "INSERT INTO access_requests (request_id, requester_id, principal_id,"
                " application, entitlement, status) VALUES ($1, 'mia', 'mia', $2, $3, 'permit')",
                f"req-old-{entitlement}",
                application,
                entitlement,
            )
            await PostgresGrants(conn).insert(
                NewGrant(
                    grant_id=f"grant-old-{entitlement}",
                    request_id=f"req-old-{entitlement}",
                    principal_id="mia",
                    application=application,
                    entitlement=entitlement,
                    provisioning=(),
                    expires_at=None,
                )
            )
        found = await sod.violations(conn, POLICIES, CATALOGUE)
    assert {(v["principal_id"], v["entitlement"], v["policy"]) for v in found} == {
        ("mia", "admin", "sod-payroll-admin-vs-payment-approver"),
        ("mia", "payment-approver", "sod-payroll-admin-vs-payment-approver"),
    }

    # ada asks for payroll admin, then for payment approval: the second is a toxic pair.
    request_id, _ = await ask(pool, "payroll", "admin", principal="ada", request_id="req-sod-1")
    await answer(pool, request_id, "mia")
    await answer(pool, request_id, "payroll-owner")
    _, events = await ask(
        pool, "finance", "payment-approver", principal="ada", request_id="req-sod-2"
    )

    (decided,) = events
    assert isinstance(decided, AccessDecided)
    assert (decided.decision, decided.reasons) == (
        "deny",
        ("sod-payroll-admin-vs-payment-approver",),
    )


async def test_an_overdue_stage_escalates_then_expires(pool: asyncpg.Pool) -> None:
    request_id, _ = await ask(pool, "payroll", "viewer", principal="ada", request_id="req-late")

    await pool.execute(
        "UPDATE approval_stages SET due_at = now() WHERE request_id = $1", request_id
    )
    assert await timers.fire_due(pool, schema=SCHEMA, source=SOURCE, settings=SETTINGS) >= 1
    (stage, _) = await approvals.chain(pool, request_id)
    assert (stage["status"], stage["escalated"], stage["approvers"]) == ("pending", True, ["ceo"])

    await pool.execute(
        "UPDATE approval_stages SET due_at = now() WHERE request_id = $1", request_id
    )
    await timers.fire_due(pool, schema=SCHEMA, source=SOURCE, settings=SETTINGS)
    (stage, later) = await approvals.chain(pool, request_id)
    assert (stage["status"], later["status"]) == ("expired", "skipped")
    row = await requests.get(pool, request_id)
    assert row is not None
    assert row["status"] == "expired"


async def test_time_bound_grants_end_by_themselves_and_leavers_lose_every_grant(
    pool: asyncpg.Pool,
) -> None:
    await on(pool, consume, UserCreated(user_id="tim", user_name="tim", manager_id="mia"))
    _, events = await ask(pool, "wiki", "editor", principal="tim", duration=60)
    granted = events[-1]
    assert isinstance(granted, AccessGranted)
    await ask(pool, "wiki", "reader", principal="tim")

    await pool.execute("UPDATE grants SET expires_at = now() WHERE grant_id = $1", granted.grant_id)
    assert await timers.fire_due(pool, schema=SCHEMA, source=SOURCE, settings=SETTINGS) == 1
    topics = await pool.fetch(
        "SELECT topic FROM outbox WHERE key = $1", granted.request_id.encode()
    )
    assert "access.revoked" in [r["topic"] for r in topics]
    live = await grants.search(
        pool, principal_id="tim", application=None, as_of=None, after=None, limit=10
    )
    assert [g["entitlement"] for g in live] == ["reader"]
    then = await grants.search(
        pool,
        principal_id="tim",
        application="wiki",
        as_of=await pool.fetchval(
            # When reader was granted: editor was still live.
            "SELECT max(granted_at) FROM grants WHERE principal_id = 'tim'",
        ),
        after=None,
        limit=10,
    )
    assert sorted(g["entitlement"] for g in then) == ["editor", "reader"]

    left = await on(pool, consume, UserDeleted(user_id="tim"), sequence=2)

    assert [type(e.data) for e in left] == [AccessRevoked]
    assert getattr(left[0].data, "reason", None) == "leaver"
    async with pool.acquire() as conn:
        assert await PostgresGrants(conn).live_of("tim") == []


async def test_group_approvers_include_nested_groups(pool: asyncpg.Pool) -> None:
    await on(pool, consume, GroupMembersChanged(group_id="security", added=("sec-team",)))
    await on(pool, consume, GroupMembersChanged(group_id="sec-team", added=("bob",)))
    await on(pool, consume, GroupCreated(group_id="sec-team", display_name="Sec"))
    async with pool.acquire() as conn:
        assert await PostgresDirectory(conn).members("security") == ["bob"]
        entities = await PostgresDirectory(conn).principal_entities("bob")
    groups = {e.ref.id: [p.id for p in e.parents] for e in entities[1:]}
    assert groups == {"sec-team": ["security"], "security": []}
    assert [p.id for p in entities[0].parents] == ["sec-team"]


ROUTED_SOD = """
@id("sod-viewer-vs-payment-approver")
@sod("payroll viewers approve payments only with the security officer's consent")
@approval("user:security-officer")
forbid (principal is User, action == Action::"request", resource is Entitlement)
when {
  principal has entitlements &&
  resource == Entitlement::"finance/payment-approver" &&
  principal.entitlements.contains(Entitlement::"payroll/viewer")
};
"""


async def test_a_routed_sod_rule_sends_a_toxic_request_to_its_approvers_first(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    folder = tmp_path / "policies"
    shutil.copytree(default_policy_dir(), folder, ignore=shutil.ignore_patterns("tests"))
    (folder / "routed.cedar").write_text(ROUTED_SOD, encoding="utf-8")
    policies = load_policy_dir(folder)
    assert policies.routed == {"sod-viewer-vs-payment-approver"}
    await on(pool, consume, UserCreated(user_id="vic", user_name="vic", manager_id="mia"))
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO access_requests (request_id, requester_id, principal_id,"
            " application, entitlement, status) VALUES ('req-vic-0', 'vic', 'vic', 'payroll',"
            " 'viewer', 'permit')"
        )
        await PostgresGrants(conn).insert(
            NewGrant(
                grant_id="grant-vic-0",
                request_id="req-vic-0",
                principal_id="vic",
                application="payroll",
                entitlement="viewer",
                provisioning=(),
                expires_at=None,
            )
        )
    request = AccessRequested(
        request_id="req-vic-1",
        requester_id="vic",
        principal_id="vic",
        resource=Resource(application="finance", entitlement="payment-approver"),
    )
    async with pool.acquire() as conn, conn.transaction():
        events = await access.decide_request(
            conn,
            new_event(request, source="urn:test"),
            policies=policies,
            catalogue=CATALOGUE,
            settings=SETTINGS,
            source=SOURCE,
        )

    decided, first = (e.data for e in events)
    assert isinstance(decided, AccessDecided)
    assert decided.decision == "approval_required"
    assert decided.reasons == (
        "sod-viewer-vs-payment-approver",
        "high-risk-needs-manager-and-owner",
    )
    assert isinstance(first, AccessApprovalRequested)
    assert (first.stage_name, first.stages, first.approvers) == (
        "user:security-officer",
        3,
        ("security-officer",),
    )
    chain = await approvals.chain(pool, "req-vic-1")
    assert [s["name"] for s in chain] == ["user:security-officer", "manager", "application_owner"]
