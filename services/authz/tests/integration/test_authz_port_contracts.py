"""The ports' contracts: the same cases over the in-memory fakes (accord.authz.fakes) and
the PostgreSQL adapters, so the fakes the unit tests use cannot drift from the real thing.

Each PostgreSQL case runs in one transaction of a database of its own (as the handlers run
in the consumer's transaction), rolled back at the end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio

from accord.authz.adapters.postgres import postgres_stores
from accord.authz.domain.approvals import Stage
from accord.authz.domain.model import Entity, EntityRef
from accord.authz.domain.principals import PROFILE_FACTS, PrincipalFacts
from accord.authz.fakes import Memory
from accord.authz.ports import NewGrant, Stores
from accord.events import AccessRequested, Resource
from accord.events.catalogue import Provisioning
from accord.stack.testing import migrated_pool

pytestmark = pytest.mark.integration

SCHEMA = "authz"
HOUR = timedelta(hours=1)


@pytest.fixture(params=["memory", "postgres"])
def database(request: pytest.FixtureRequest) -> str | None:
    """A database of its own for the PostgreSQL case; None for the in-memory one."""
    if request.param == "memory":
        return None
    dsn: str = request.getfixturevalue("fresh_database")
    return dsn


@pytest_asyncio.fixture(loop_scope="session")
async def stores(database: str | None) -> AsyncIterator[Stores]:
    if database is None:
        yield Memory().stores()
        return
    async with (
        migrated_pool(database, SCHEMA, ["accord.authz.migrations"]) as pool,
        pool.acquire() as conn,
    ):
        transaction = conn.transaction()
        await transaction.start()
        try:
            yield postgres_stores(conn)
        finally:
            await transaction.rollback()


def now() -> datetime:
    return datetime.now(UTC)


def request_of(
    request_id: str, principal: str = "ada", application: str = "wiki", entitlement: str = "reader"
) -> AccessRequested:
    return AccessRequested(
        request_id=request_id,
        requester_id=principal,
        principal_id=principal,
        resource=Resource(application=application, entitlement=entitlement),
        justification="needed",
        duration_seconds=3600,
    )


def shape(entities: list[Entity]) -> list[tuple[EntityRef, dict[str, Any], list[EntityRef]]]:
    """Entities in a comparable form: parents sorted, groups after the principal by id."""
    principal, *groups = entities
    return [
        (e.ref, e.attrs, sorted(e.parents, key=lambda p: p.id))
        for e in [principal, *sorted(groups, key=lambda g: g.ref.id)]
    ]


# --- principals -----------------------------------------------------------------------------


async def test_principals_are_known_once_projected_and_newer_sequences_win(
    stores: Stores,
) -> None:
    principals, directory = stores.principals, stores.directory
    await principals.lock("ada")
    assert not await principals.known("ada")

    await principals.upsert(
        "ada", PrincipalFacts(sequence=2, active=True, department="eng", manager_id="mia")
    )
    await principals.upsert(
        "ada", PrincipalFacts(sequence=1, active=False, department="ops", manager_id="x")
    )

    assert await principals.known("ada")
    (ada,) = await directory.principal_entities("ada")
    assert ada.attrs == {"active": True, "department": "eng"}
    assert await directory.managers("ada") == {"ada": "mia", "mia": None}


async def test_the_facts_an_event_does_not_set_stay_as_they_are(stores: Stores) -> None:
    principals, directory = stores.principals, stores.directory
    await principals.upsert(
        "ada",
        PrincipalFacts(sequence=1, active=False, department="eng", manager_id="mia", user_name="a"),
    )
    # A partial user.updated that lists the department only.
    keep = frozenset({"manager_id", "user_name", "active"})
    await principals.upsert(
        "ada", PrincipalFacts(sequence=2, active=True, department="ops", keep=keep)
    )
    (ada,) = await directory.principal_entities("ada")
    assert ada.attrs == {"active": False, "department": "ops"}
    assert await directory.managers("ada") == {"ada": "mia", "mia": None}
    # An older one changes nothing, kept facts or not.
    await principals.upsert("ada", PrincipalFacts(sequence=1, active=True, department="x"))
    (ada,) = await directory.principal_entities("ada")
    assert ada.attrs == {"active": False, "department": "ops"}


async def test_a_status_event_keeps_the_profile_and_a_deleted_principal_is_inactive(
    stores: Stores,
) -> None:
    principals, directory = stores.principals, stores.directory
    await principals.upsert(
        "ada", PrincipalFacts(sequence=1, active=True, department="eng", manager_id="mia")
    )
    await principals.upsert("ada", PrincipalFacts(sequence=2, active=False, keep=PROFILE_FACTS))
    (ada,) = await directory.principal_entities("ada")
    assert ada.attrs == {"active": False, "department": "eng"}
    assert await directory.managers("ada") == {"ada": "mia", "mia": None}

    await principals.upsert(
        "ada", PrincipalFacts(sequence=3, active=True, deleted=True, keep=PROFILE_FACTS)
    )
    (ada,) = await directory.principal_entities("ada")
    assert ada.attrs["active"] is False
    # A status event of an unknown principal projects it with no profile.
    await principals.upsert("new", PrincipalFacts(sequence=1, active=False, keep=PROFILE_FACTS))
    assert await principals.known("new")
    assert await directory.managers("new") == {"new": None}


async def test_managers_go_two_levels_up(stores: Stores) -> None:
    for user_id, manager in (("ceo", None), ("mia", "ceo"), ("ada", "mia"), ("bob", "ada")):
        await stores.principals.upsert(
            user_id, PrincipalFacts(sequence=1, active=True, manager_id=manager)
        )

    assert await stores.directory.managers("bob") == {"bob": "ada", "ada": "mia"}
    assert await stores.directory.managers("mia") == {"mia": "ceo", "ceo": None}
    assert await stores.directory.managers("nobody") == {"nobody": None}


# --- groups and the directory ---------------------------------------------------------------


async def test_members_of_nested_groups_are_users_only(stores: Stores) -> None:
    groups, directory = stores.groups, stores.directory
    await groups.change_members("security", ["sec-team", "ann"], [])
    await groups.change_members("sec-team", ["bob", "cy"], [])
    await groups.change_members("sec-team", ["bob"], [])  # again: idempotent
    # sec-team is a member id until authz hears of the group itself.
    assert await directory.members("security") == ["ann", "bob", "cy", "sec-team"]

    await groups.upsert("sec-team", "Sec", sequence=1)
    await groups.change_members("sec-team", [], ["cy"])

    assert await directory.members("security") == ["ann", "bob"]
    assert await directory.members("sec-team") == ["bob"]
    assert await directory.members("unknown") == []


async def test_a_deleted_group_loses_its_memberships_both_ways(stores: Stores) -> None:
    groups, directory = stores.groups, stores.directory
    await groups.upsert("g", "G", sequence=2)
    await groups.upsert("g", "Older", sequence=1)
    await groups.change_members("g", ["ada"], [])
    await groups.change_members("parent", ["g", "bob"], [])

    await groups.delete("g", sequence=3)

    assert await directory.members("g") == []
    assert await directory.members("parent") == ["bob"]
    (ada,) = await directory.principal_entities("ada")
    assert ada.parents == ()


async def test_principal_entities_carry_attributes_groups_and_entitlements(
    stores: Stores,
) -> None:
    await stores.principals.upsert("bob", PrincipalFacts(sequence=1, active=True, department="eng"))
    await stores.groups.upsert("sec-team", "Sec", sequence=1)
    await stores.groups.change_members("security", ["sec-team"], [])
    await stores.groups.change_members("sec-team", ["bob"], [])
    await stores.groups.change_members("staff", ["bob"], [])
    await stores.authn.lockout_started("bob", "lo-1")
    await stores.authn.factor_enrolled("bob", "cred-1", "totp")
    await stores.authn.factor_enrolled("bob", "cred-2", "webauthn")
    for number, (entitlement, expires) in enumerate(
        (("reader", None), ("editor", now() + HOUR), ("admin", now() - HOUR))
    ):
        await stores.requests.insert(request_of(f"req-{number}", "bob", entitlement=entitlement))
        await stores.grants.insert(
            NewGrant(
                grant_id=f"grant-{number}",
                request_id=f"req-{number}",
                principal_id="bob",
                application="wiki",
                entitlement=entitlement,
                provisioning=(),
                expires_at=expires,
            )
        )

    entities = await stores.directory.principal_entities("bob")

    user, group = EntityRef("User", "bob"), lambda g: EntityRef("Group", g)
    assert shape(entities) == [
        (
            user,
            {
                "active": True,
                "department": "eng",
                "locked": True,
                "factors": {"totp", "webauthn"},
                "entitlements": {
                    EntityRef("Entitlement", "wiki/reader"),
                    EntityRef("Entitlement", "wiki/editor"),
                },
            },
            [group("sec-team"), group("staff")],
        ),
        (group("sec-team"), {}, [group("security")]),
        (group("security"), {}, []),
        (group("staff"), {}, []),
    ]


async def test_an_unknown_principal_is_a_user_with_no_attributes(stores: Stores) -> None:
    entities = await stores.directory.principal_entities("nobody")
    assert shape(entities) == [(EntityRef("User", "nobody"), {}, [])]


# --- authn facts ----------------------------------------------------------------------------


async def test_an_ended_lockout_stays_ended_whatever_the_order(stores: Stores) -> None:
    authn, directory = stores.authn, stores.directory
    await authn.lockout_ended("ada", "lo-1")
    await authn.lockout_started("ada", "lo-1")
    (ada,) = await directory.principal_entities("ada")
    assert ada.attrs == {"locked": False}

    await authn.lockout_started("ada", "lo-2")
    await authn.lockout_started("ada", "lo-2")
    (ada,) = await directory.principal_entities("ada")
    assert ada.attrs == {"locked": True}
    await authn.lockout_ended("ada", "lo-2")
    (ada,) = await directory.principal_entities("ada")
    assert ada.attrs == {"locked": False}


async def test_a_removed_credential_stays_removed_and_kinds_last_while_one_remains(
    stores: Stores,
) -> None:
    authn, directory = stores.authn, stores.directory
    await authn.factor_enrolled("ada", "key-a", "webauthn")
    await authn.factor_enrolled("ada", "key-b", "webauthn")
    await authn.factor_removed("ada", "key-a", "webauthn")
    (ada,) = await directory.principal_entities("ada")
    assert ada.attrs == {"factors": {"webauthn"}}

    await authn.factor_removed("ada", "late", "totp")
    await authn.factor_enrolled("ada", "late", "totp")
    await authn.factor_removed("ada", "key-b", "webauthn")
    (ada,) = await directory.principal_entities("ada")
    assert ada.attrs == {}


# --- requests -------------------------------------------------------------------------------

REQUEST_FIELDS = (
    "request_id",
    "requester_id",
    "principal_id",
    "application",
    "entitlement",
    "justification",
    "duration_seconds",
    "status",
    "reasons",
)


async def test_a_request_is_recorded_once_and_decided_once(stores: Stores) -> None:
    requests = stores.requests
    assert await requests.insert(request_of("req-1"))
    assert not await requests.insert(request_of("req-1", entitlement="editor"))
    row = await requests.locked("req-1")
    assert row is not None
    assert {k: row[k] for k in REQUEST_FIELDS} == {
        "request_id": "req-1",
        "requester_id": "ada",
        "principal_id": "ada",
        "application": "wiki",
        "entitlement": "reader",
        "justification": "needed",
        "duration_seconds": 3600,
        "status": "pending",
        "reasons": [],
    }
    assert row["created_at"] is not None
    assert row["decided_at"] is None

    assert await requests.decide("req-1", "deny", ["no-rule"])
    assert not await requests.decide("req-1", "permit", [])
    row = await requests.locked("req-1")
    assert row is not None
    assert (row["status"], row["reasons"]) == ("deny", ["no-rule"])
    assert row["decided_at"] is not None
    assert await requests.locked("req-none") is None
    assert not await requests.decide("req-none", "permit", [])


async def test_the_requests_waiting_for_a_principal_are_its_pending_ones(stores: Stores) -> None:
    requests = stores.requests
    for request_id in ("req-a", "req-b", "req-c"):
        await requests.insert(request_of(request_id, "zed"))
    await requests.insert(request_of("req-other", "ann"))
    await requests.decide("req-c", "permit", [])

    waiting = await requests.waiting_for("zed")

    # Oldest first (one transaction's rows share their created_at: then by id).
    assert [r.request_id for r in waiting] == ["req-a", "req-b"]
    assert waiting[0] == request_of("req-a", "zed")
    assert await requests.waiting_for("nobody") == []


async def test_only_a_request_waiting_for_approvals_concludes(stores: Stores) -> None:
    requests = stores.requests
    await requests.insert(request_of("req-1"))
    assert not await requests.conclude("req-1", "approved")
    await requests.decide("req-1", "approval_required", ["high-risk"])
    assert await requests.conclude("req-1", "approved")
    assert not await requests.conclude("req-1", "denied")
    row = await requests.locked("req-1")
    assert row is not None
    assert (row["status"], row["reasons"]) == ("approved", ["high-risk"])


# --- approvals ------------------------------------------------------------------------------

CHAIN = [
    Stage(1, "manager", ("mia",), ("ceo",)),
    Stage(2, "application_owner", ("owner",), ("officer",)),
    Stage(3, "user:sec", ("sec",), ()),
]
STAGE_FIELDS = ("request_id", "stage", "name", "approvers", "escalation", "status", "escalated")


def stage_view(row: dict[str, Any] | None) -> tuple[Any, ...] | None:
    return None if row is None else tuple(row[k] for k in STAGE_FIELDS)


async def chained(stores: Stores, request_id: str, first_due: datetime | None) -> None:
    await stores.requests.insert(request_of(request_id))
    await stores.requests.decide(request_id, "approval_required", [])
    await stores.approvals.insert_chain(request_id, CHAIN, first_due)


async def test_a_chain_starts_at_its_first_stage(stores: Stores) -> None:
    due = now() + HOUR
    await chained(stores, "req-1", due)
    await stores.approvals.insert_chain("req-1", CHAIN[:1], None)  # again: nothing changes

    chain = await stores.approvals.chain("req-1")
    assert [stage_view(s) for s in chain] == [
        ("req-1", 1, "manager", ["mia"], ["ceo"], "pending", False),
        ("req-1", 2, "application_owner", ["owner"], ["officer"], "waiting", False),
        ("req-1", 3, "user:sec", ["sec"], [], "waiting", False),
    ]
    assert [s["due_at"] for s in chain] == [due, None, None]
    pending = await stores.approvals.pending_stage("req-1")
    assert stage_view(pending) == stage_view(chain[0])
    assert await stores.approvals.pending_stage("req-none") is None
    assert await stores.approvals.chain("req-none") == []


async def test_a_chain_names_its_approvers_escalations_and_deciders(stores: Stores) -> None:
    await chained(stores, "req-1", None)
    approvals = stores.approvals
    for user_id in ("mia", "ceo", "owner", "officer", "sec"):
        assert await approvals.names("req-1", user_id), user_id
    assert not await approvals.names("req-1", "stranger")
    assert not await approvals.names("req-none", "mia")

    await approvals.settle("req-1", 1, "approved", by="stranger", comment="ok")
    assert await approvals.names("req-1", "stranger")


async def test_stages_settle_and_open_in_order(stores: Stores) -> None:
    await chained(stores, "req-1", None)
    approvals = stores.approvals
    await approvals.settle("req-1", 2, "approved", by="owner")  # not pending: nothing
    await approvals.settle("req-1", 1, "approved", by="mia", comment="fine")
    await approvals.settle("req-1", 1, "denied", by="ceo")  # settled already: nothing

    due = now() + HOUR
    opened = await approvals.open_stage("req-1", 2, due)
    assert stage_view(opened) == (
        "req-1",
        2,
        "application_owner",
        ["owner"],
        ["officer"],
        "pending",
        False,
    )
    assert opened is not None
    assert opened["due_at"] == due
    assert await approvals.open_stage("req-1", 2, due) is None
    assert await approvals.open_stage("req-1", 4, due) is None

    first, second, third = await approvals.chain("req-1")
    assert (first["status"], first["decided_by"], first["comment"]) == ("approved", "mia", "fine")
    assert first["decided_at"] is not None
    assert (second["status"], third["status"]) == ("pending", "waiting")

    await approvals.settle("req-1", 2, "denied", by="owner")
    await approvals.skip_rest("req-1")
    assert [s["status"] for s in await approvals.chain("req-1")] == [
        "approved",
        "denied",
        "skipped",
    ]


async def test_a_pending_stage_escalates(stores: Stores) -> None:
    await chained(stores, "req-1", now() - HOUR)
    approvals = stores.approvals
    due = now() + HOUR

    escalated = await approvals.escalate("req-1", 1, due)

    assert stage_view(escalated) == ("req-1", 1, "manager", ["ceo"], ["ceo"], "pending", True)
    assert escalated is not None
    assert escalated["due_at"] == due
    assert await approvals.escalate("req-1", 2, due) is None


async def test_overdue_stages_are_the_pending_ones_past_their_deadline(stores: Stores) -> None:
    await chained(stores, "req-late", now() - 2 * HOUR)
    await chained(stores, "req-later", now() - HOUR)
    await chained(stores, "req-early", now() + HOUR)
    await chained(stores, "req-never", None)

    overdue = await stores.approvals.overdue(limit=10)

    assert [(s["request_id"], s["stage"]) for s in overdue] == [("req-late", 1), ("req-later", 1)]
    assert [s["request_id"] for s in await stores.approvals.overdue(limit=1)] == ["req-late"]
    await stores.approvals.settle("req-late", 1, "expired")
    assert [s["request_id"] for s in await stores.approvals.overdue(limit=10)] == ["req-later"]


# --- grants ---------------------------------------------------------------------------------

PROVISIONING = (Provisioning(target="scim-demo", group="wiki-readers"),)
GRANT_FIELDS = (
    "grant_id",
    "request_id",
    "principal_id",
    "application",
    "entitlement",
    "provisioning",
    "expires_at",
    "revoke_reason",
)


async def grant(
    stores: Stores,
    number: int,
    *,
    principal: str = "ada",
    entitlement: str = "reader",
    expires_at: datetime | None = None,
) -> bool:
    request_id = f"req-{number}"
    await stores.requests.insert(request_of(request_id, principal, entitlement=entitlement))
    return await stores.grants.insert(
        NewGrant(
            grant_id=f"grant-{number}",
            request_id=request_id,
            principal_id=principal,
            application="wiki",
            entitlement=entitlement,
            provisioning=PROVISIONING,
            expires_at=expires_at,
        )
    )


async def test_an_entitlement_is_held_once(stores: Stores) -> None:
    assert await grant(stores, 1)
    assert not await grant(stores, 2)  # held already
    assert await grant(stores, 3, principal="bob")

    (live,) = await stores.grants.live_of("ada")
    assert {k: live[k] for k in GRANT_FIELDS} == {
        "grant_id": "grant-1",
        "request_id": "req-1",
        "principal_id": "ada",
        "application": "wiki",
        "entitlement": "reader",
        "provisioning": [{"target": "scim-demo", "group": "wiki-readers"}],
        "expires_at": None,
        "revoke_reason": None,
    }
    assert live["granted_at"] is not None
    assert live["revoked_at"] is None


async def test_a_live_grant_is_revoked_once(stores: Stores) -> None:
    await grant(stores, 1)

    revoked = await stores.grants.revoke("grant-1", "by hand")

    assert revoked is not None
    assert (revoked["grant_id"], revoked["revoke_reason"]) == ("grant-1", "by hand")
    assert revoked["revoked_at"] >= revoked["granted_at"]
    assert revoked["provisioning"] == [{"target": "scim-demo", "group": "wiki-readers"}]
    assert await stores.grants.revoke("grant-1", "again") is None
    assert await stores.grants.revoke("grant-none", "by hand") is None
    assert await stores.grants.live_of("ada") == []
    # Revoked: the entitlement may be granted again.
    assert await grant(stores, 2)


async def test_a_grant_past_its_expiry_is_not_live_and_ends_at_its_expiry(
    stores: Stores,
) -> None:
    past, future = now() - HOUR, now() + HOUR
    await grant(stores, 1, expires_at=past)
    await grant(stores, 2, entitlement="editor", expires_at=future)

    assert [g["grant_id"] for g in await stores.grants.live_of("ada")] == ["grant-2"]
    assert await stores.grants.due_of("ada", "wiki", "reader") == ["grant-1"]
    assert await stores.grants.due_of("ada", "wiki", "editor") == []
    assert await stores.grants.expired(limit=10) == ["grant-1"]
    # Past its expiry, it is not live: an operator cannot revoke it...
    assert await stores.grants.revoke("grant-1", "by hand") is None
    # ...and, until its end is recorded, it still holds the entitlement's place.
    assert not await grant(stores, 3)

    ended = await stores.grants.expire("grant-1")

    assert ended is not None
    assert (ended["revoke_reason"], ended["revoked_at"]) == (
        "expired",
        max(past, ended["granted_at"]),
    )
    assert await stores.grants.expire("grant-1") is None
    assert await stores.grants.expire("grant-2") is None  # not due
    assert await stores.grants.expired(limit=10) == []
    assert await stores.grants.due_of("ada", "wiki", "reader") == []
    assert await grant(stores, 4)


async def test_the_grant_held_is_the_live_one_of_that_entitlement(stores: Stores) -> None:
    await grant(stores, 1, expires_at=now() - HOUR)
    assert await stores.grants.held("ada", "wiki", "reader") is None  # past its expiry
    await stores.grants.expire("grant-1")
    await grant(stores, 2, expires_at=now() + HOUR)
    await grant(stores, 3, entitlement="editor")
    await grant(stores, 4, principal="bob")

    held = await stores.grants.held("ada", "wiki", "reader")

    assert held is not None
    assert held == next(
        g for g in await stores.grants.live_of("ada") if g["entitlement"] == "reader"
    )
    assert {k: held[k] for k in GRANT_FIELDS if k != "expires_at"} == {
        "grant_id": "grant-2",
        "request_id": "req-2",
        "principal_id": "ada",
        "application": "wiki",
        "entitlement": "reader",
        "provisioning": [{"target": "scim-demo", "group": "wiki-readers"}],
        "revoke_reason": None,
    }
    assert await stores.grants.held("ada", "wiki", "admin") is None
    assert await stores.grants.held("ada", "crm", "reader") is None
    assert await stores.grants.held("cy", "wiki", "reader") is None
    await stores.grants.revoke("grant-2", "by hand")
    assert await stores.grants.held("ada", "wiki", "reader") is None


async def test_expired_grants_come_oldest_expiry_first(stores: Stores) -> None:
    await grant(stores, 1, entitlement="a", expires_at=now() - HOUR)
    await grant(stores, 2, entitlement="b", expires_at=now() - 2 * HOUR)
    await grant(stores, 3, entitlement="c", expires_at=None)

    assert await stores.grants.expired(limit=10) == ["grant-2", "grant-1"]
    assert await stores.grants.expired(limit=1) == ["grant-2"]
