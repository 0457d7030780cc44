"""The ports' contract: the same cases over the in-memory fake (accord.authn.fakes) and the
PostgreSQL adapter, so the fake the unit tests trust cannot drift from the real one. Each
PostgreSQL case runs in a transaction that is rolled back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio

from accord.authn import factors
from accord.authn.adapters import credentials, enrolments, lockouts
from accord.authn.adapters.enrolments import PostgresEnrolments
from accord.authn.adapters.identities import PostgresIdentities
from accord.authn.adapters.lockouts import PostgresLockouts, PostgresRequests
from accord.authn.domain.identity import Change, View
from accord.authn.domain.lockout import ApprovalRequest, Lockout
from accord.authn.domain.sealing import Sealed
from accord.authn.fakes import Fakes, HeldFactor
from accord.authn.ports import Enrolments, Factors, Identities, Lockouts, Requests
from accord.stack.testing import migrated_pool

from .test_authn_lockout_flow import SCHEMA, SOURCE, T0

pytestmark = pytest.mark.integration

#: An enrolment request as both sides report it: factors, saga, when it was done.
Enrolment = tuple[list[str], str | None, datetime | None]


@dataclass
class Side:
    """One implementation of the ports, with what a case needs to set up and read back
    beyond them."""

    identities: Identities
    lockouts: Lockouts
    requests: Requests
    enrolments: Enrolments
    factors: Factors
    settle_as: Callable[[ApprovalRequest], Awaitable[None]]
    """Record a request as it would be once settled, whatever its status."""
    add_factor: Callable[[str, str, bool], Awaitable[datetime | None]]
    """(user_id, credential_id, active): a factor, and when it was confirmed if active."""
    enrolment_of: Callable[[str], Awaitable[Enrolment | None]]


def fake_side() -> Side:
    fakes = Fakes(source=SOURCE)

    async def settle_as(request: ApprovalRequest) -> None:
        fakes.requests.file(request)

    async def add_factor(user_id: str, credential_id: str, active: bool) -> datetime | None:
        factor = HeldFactor(credential_id, "webauthn" if active else "totp")
        if not active:
            factor = HeldFactor(credential_id, "totp", "pending")
        fakes.factors.held.setdefault(user_id, []).append(factor)
        confirmed = T0 if active else None
        if confirmed is not None:
            fakes.enrolments.confirmed.setdefault(user_id, []).append(confirmed)
        return confirmed

    async def enrolment_of(user_id: str) -> Enrolment | None:
        held = fakes.enrolments.requests.get(user_id)
        return (held.factors, held.saga_id, held.enrolled_at) if held else None

    ports = fakes.ports
    return Side(
        ports.identities,
        ports.lockouts,
        ports.requests,
        ports.enrolments,
        ports.factors,
        settle_as,
        add_factor,
        enrolment_of,
    )


def postgres_side(conn: asyncpg.Connection) -> Side:
    async def settle_as(request: ApprovalRequest) -> None:
        await lockouts.insert_request(
            conn, request.request_id, request.user_id, request.kind, "helpdesk", request.lockout_id
        )
        await lockouts.settle_request(conn, request.request_id, request.status)

    async def add_factor(user_id: str, credential_id: str, active: bool) -> datetime | None:
        if not active:
            await credentials.insert_pending_totp(
                conn,
                credential_id=credential_id,
                user_id=user_id,
                label=None,
                sealed=Sealed("k1", b"sealed"),
                expires_at=datetime.now(UTC) + timedelta(minutes=5),
            )
            return None
        await credentials.insert_webauthn(
            conn,
            credential_id=credential_id,
            user_id=user_id,
            label=None,
            webauthn_id=credential_id.encode(),
            public_key=b"pk",
            sign_count=0,
        )
        confirmed: datetime = await conn.fetchval(
            "SELECT confirmed_at FROM mfa_credentials WHERE id = $1", credential_id
        )
        return confirmed

    async def enrolment_of(user_id: str) -> Enrolment | None:
        row = await enrolments.of_user(conn, user_id)
        return (list(row["factors"]), row["saga_id"], row["enrolled_at"]) if row else None

    return Side(
        PostgresIdentities(conn),
        PostgresLockouts(conn),
        PostgresRequests(conn),
        PostgresEnrolments(conn),
        factors.PostgresFactors(conn, SOURCE),
        settle_as,
        add_factor,
        enrolment_of,
    )


@pytest_asyncio.fixture(loop_scope="session")
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool(fresh_database, SCHEMA, ["accord.authn.migrations"]) as created:
        yield created


@pytest_asyncio.fixture(loop_scope="session", params=["fake", "postgres"])
async def side(request: pytest.FixtureRequest, pool: asyncpg.Pool) -> AsyncIterator[Side]:
    if request.param == "fake":
        yield fake_side()
        return
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            yield postgres_side(conn)
        finally:
            await transaction.rollback()


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


# --- Identities -----------------------------------------------------------------------------


async def test_identities_apply_a_change_once_and_report_the_status(side: Side) -> None:
    assert await side.identities.status_of("u-1") is None
    joiner = Change(1, ("ada", "ada@example.com"), active=True, deleted=False)
    applied = await side.identities.apply("u-1", joiner)
    assert applied is not None
    before, after = applied
    assert before is None
    assert (after.user_name, after.email, after.status, after.sequence) == (
        "ada",
        "ada@example.com",
        "active",
        1,
    )
    assert await side.identities.apply("u-1", joiner) is None  # a duplicate
    assert await side.identities.status_of("u-1") == "active"

    applied = await side.identities.apply("u-1", Change(3, active=False))
    assert applied is not None
    assert applied[0] == after
    assert applied[1] == View("ada", "ada@example.com", 1, False, 3, False, 1)
    assert await side.identities.apply("u-1", Change(2, active=True)) is None  # older
    await side.identities.apply("u-1", Change(4, deleted=True))
    assert await side.identities.status_of("u-1") == "deleted"


# --- Lockouts: sign-ins -----------------------------------------------------------------------


async def test_a_failure_and_a_success_are_counted_once_and_read_between_bounds(
    side: Side,
) -> None:
    store = side.lockouts
    await store.serialise("u-1")
    assert await store.record_failure("e-1", "u-1", at(1), idp="okta", reason="bad")
    assert not await store.record_failure("e-1", "u-1", at(1), idp="okta", reason="bad")
    assert await store.record_failure("e-2", "u-1", at(5), idp="okta", reason="bad")
    assert await store.record_failure("e-3", "u-2", at(1), idp="okta", reason="bad")
    await store.record_success("s-1", "u-1", at(3))
    await store.record_success("s-1", "u-1", at(3))

    failures, successes = await store.sign_ins_between("u-1", None, None)
    assert (sorted(failures), successes) == ([at(1), at(5)], [at(3)])
    assert await store.sign_ins_between("u-1", at(1), at(3)) == ([at(1)], [at(3)])
    assert await store.sign_ins_between("u-1", at(4), None) == ([at(5)], [])
    assert await store.sign_ins_between("u-3", None, None) == ([], [])


async def test_settling_forgets_the_failures_up_to_its_time_and_keeps_the_latest(
    side: Side,
) -> None:
    store = side.lockouts
    assert await store.settled_at("u-1") is None
    for n, minute in enumerate((1, 2, 4)):
        await store.record_failure(f"e-{n}", "u-1", at(minute), idp="okta", reason="bad")
    await store.record_failure("e-other", "u-2", at(1), idp="okta", reason="bad")
    await store.record_success("s-1", "u-1", at(1))

    await store.settle("u-1", at(2))

    assert await store.settled_at("u-1") == at(2)
    assert await store.sign_ins_between("u-1", None, None) == ([at(4)], [at(1)])
    assert await store.sign_ins_between("u-2", None, None) == ([at(1)], [])
    # A failure at or before the settled time, recorded later, is not read.
    await store.record_failure("e-late", "u-1", at(1.5), idp="okta", reason="bad")
    assert await store.sign_ins_between("u-1", None, None) == ([at(4)], [at(1)])
    await store.settle("u-1", at(1))  # an earlier time keeps the later one
    assert await store.settled_at("u-1") == at(2)


# --- Lockouts: lockouts -----------------------------------------------------------------------


async def test_one_open_lockout_per_identity_until_it_is_closed(side: Side) -> None:
    store = side.lockouts
    assert await store.open_lockout("u-1") is None
    assert await store.insert_lockout("lock-1", "u-1", "three failures", 3, at(1))
    assert not await store.insert_lockout("lock-1", "u-1", "three failures", 3, at(1))
    assert not await store.insert_lockout("lock-2", "u-1", "another", 0, at(2))
    assert await store.open_lockout("u-1") == Lockout("lock-1", "u-1")
    assert await store.get_lockout("lock-1") == Lockout("lock-1", "u-1")
    assert await store.get_lockout("lock-unknown") is None

    assert await store.close_lockout("lock-1", "req-1")
    assert not await store.close_lockout("lock-1", "req-2")
    assert not await store.close_lockout("lock-unknown", "req-3")
    assert await store.open_lockout("u-1") is None
    assert await store.get_lockout("lock-1") == Lockout("lock-1", "u-1")
    assert await store.insert_lockout("lock-2", "u-1", "again", 0, at(3))
    assert await store.open_lockout("u-1") == Lockout("lock-2", "u-1")


# --- Requests ---------------------------------------------------------------------------------


async def test_a_request_is_filed_once_read_and_settled(side: Side) -> None:
    requests = side.requests
    assert await requests.insert("req-1", "u-1", "unlock", "helpdesk", "lock-1")
    assert not await requests.insert("req-1", "u-1", "unlock", "helpdesk", "lock-1")
    assert await requests.insert("req-2", "u-1", "mfa-reset", "u-1", None)
    assert await requests.get("req-1") == ApprovalRequest(
        "req-1", "u-1", "unlock", "pending", "lock-1"
    )
    assert await requests.get("req-2") == ApprovalRequest(
        "req-2", "u-1", "mfa-reset", "pending", None
    )
    assert await requests.get("req-unknown") is None
    await requests.settle("req-1", "done")
    await requests.settle("req-unknown", "denied")
    got = await requests.get("req-1")
    assert got is not None
    assert got.status == "done"
    assert await requests.get("req-unknown") is None


@pytest.mark.parametrize("status", ["granted", "denied", "done"])
async def test_a_settled_request_reads_as_settled(side: Side, status: str) -> None:
    await side.settle_as(ApprovalRequest("req-1", "u-1", "mfa-reset", status))
    assert await side.requests.get("req-1") == ApprovalRequest(
        "req-1", "u-1", "mfa-reset", status, None
    )


# --- Enrolments -------------------------------------------------------------------------------


async def test_an_enrolment_request_is_recorded_once_and_done_once(side: Side) -> None:
    await side.enrolments.requested("u-1", ["totp", "webauthn"], "s-1")
    await side.enrolments.requested("u-1", ["webauthn"], "s-2")  # once
    assert await side.enrolment_of("u-1") == (["totp", "webauthn"], "s-1", None)
    await side.enrolments.enrolled("u-1", at(5))
    await side.enrolments.enrolled("u-1", at(9))  # done already
    assert await side.enrolment_of("u-1") == (["totp", "webauthn"], "s-1", at(5))
    await side.enrolments.enrolled("u-2", at(5))  # no request: nothing to close
    assert await side.enrolment_of("u-2") is None


async def test_an_enrolment_asked_of_an_identity_holding_a_factor_is_done_at_once(
    side: Side,
) -> None:
    await side.add_factor("u-1", "c-pending", False)
    await side.enrolments.requested("u-1", ["totp"], None)
    assert await side.enrolment_of("u-1") == (["totp"], None, None)  # a pending one: no
    confirmed = await side.add_factor("u-2", "c-active", True)
    await side.enrolments.requested("u-2", ["webauthn"], "s-2")
    assert await side.enrolment_of("u-2") == (["webauthn"], "s-2", confirmed)


# --- Factors ----------------------------------------------------------------------------------


async def test_removing_every_factor_announces_the_active_ones(side: Side) -> None:
    await side.add_factor("u-1", "c-1", True)
    await side.add_factor("u-1", "c-2", False)
    await side.add_factor("u-1", "c-3", True)
    await side.add_factor("u-2", "c-4", True)

    events = await side.factors.remove_all("u-1", "leaver")

    assert [e.type for e in events] == ["mfa.removed", "mfa.removed"]
    assert [e.data.model_dump()["credential_id"] for e in events] == ["c-1", "c-3"]
    assert {e.data.model_dump()["reason"] for e in events} == {"leaver"}
    assert {e.source for e in events} == {SOURCE}
    assert await side.factors.remove_all("u-1", "leaver") == []
    assert len(await side.factors.remove_all("u-2", "reset")) == 1
