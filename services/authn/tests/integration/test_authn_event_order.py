"""Events of one identity on different topics, delivered in the unlucky order (issue 17, item
4): Kafka orders one topic's events of a subject, never two topics'. Authn decides by the
events' own times and sequences, so each test delivers them the other way round as well."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio

from accord.authn import approvals
from accord.authn.adapters import credentials, enrolments, identities, lockouts
from accord.events import (
    AccessGranted,
    AuthnSucceeded,
    Envelope,
    MfaEnrolled,
    MfaEnrolmentRequested,
    Resource,
    UserCreated,
    UserDeactivated,
    UserDeleted,
    UserReactivated,
    UserUpdated,
)
from accord.stack.testing import migrated_pool

from .test_authn_lockout_flow import (
    SCHEMA,
    T0,
    Handlers,
    Recorder,
    event,
    failure,
    handle,
    handlers,
    known,
    ports_on,
)

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(loop_scope="session")
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool(fresh_database, SCHEMA, ["accord.authn.migrations"]) as created:
        yield created


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def success(user: str, when: datetime) -> Envelope:
    return event(AuthnSucceeded(user_id=user, idp="okta"), at=when)


async def deliver(pool: asyncpg.Pool, flows: Handlers, events: Sequence[Envelope]) -> bool:
    """Consume sign-in events in this order; whether the identity ended locked."""
    for sign_in in events:
        await handle(pool, flows.sign_in, sign_in)
    async with pool.acquire() as conn:
        return await lockouts.open_lockout(conn, events[0].subject) is not None


def orders(events: Sequence[Envelope]) -> list[tuple[Envelope, ...]]:
    return list(itertools.permutations(events))


# --- sign-ins: authn.failed and authn.succeeded ---------------------------------------------


async def test_a_failure_consumed_after_a_later_success_does_not_count(
    pool: asyncpg.Pool,
) -> None:
    # fail, fail, success, fail at a threshold of 3: never three failures in a row. Every
    # order in which the success is consumed before the last failure leaves it unlocked.
    # (Consumed after the last one, the success comes too late: that failure has locked.)
    flows = handlers(Recorder(), threshold=3)
    for n, order in enumerate(orders(range(4))):
        if order.index(2) == 3:
            continue
        user = f"u-fsf-{n}"
        await known(pool, flows, user)
        timeline = [failure(user, at(1)), failure(user, at(2)), success(user, at(3))]
        timeline.append(failure(user, at(4)))
        assert not await deliver(pool, flows, [timeline[i] for i in order]), order


async def test_failures_before_a_success_lock_whichever_is_consumed_first(
    pool: asyncpg.Pool,
) -> None:
    # Three failures in a row, then a success: the run happened, so every order locks (as
    # it would have had the events arrived in time order).
    flows = handlers(Recorder(), threshold=3)
    for n, order in enumerate(orders(range(4))):
        user = f"u-fffs-{n}"
        await known(pool, flows, user)
        timeline = [failure(user, at(1)), failure(user, at(2)), failure(user, at(3))]
        timeline.append(success(user, at(4)))
        assert await deliver(pool, flows, [timeline[i] for i in order]), order


async def test_a_failure_consumed_late_that_completes_a_run_locks(pool: asyncpg.Pool) -> None:
    # Two identity providers publish to authn.failed: the second failure in time arrives last.
    flows = handlers(Recorder(), threshold=3)
    user = "u-late-middle"
    await known(pool, flows, user)
    run = [failure(user, at(1)), failure(user, at(3)), failure(user, at(2))]
    assert await deliver(pool, flows, run)


async def test_failures_consumed_before_the_identity_is_known_lock_it_when_it_is(
    pool: asyncpg.Pool,
) -> None:
    # user.created is another topic: authn.failed may be consumed before it.
    recorder = Recorder()
    flows = handlers(recorder, threshold=3)
    user = "u-new-joiner"
    assert not await deliver(pool, flows, [failure(user, at(m)) for m in (1, 2, 3)])

    created = UserCreated(user_id=user, user_name=user, email=f"{user}@example.com")
    emitted = await handle(pool, flows.user_event, event(created, at=at(0), sequence=1))

    assert [e.type for e in emitted] == ["identity.locked", "session.revoked"]
    async with pool.acquire() as conn:
        lockout = await lockouts.open_lockout(conn, user)
    assert lockout is not None
    assert (lockout["failures"], lockout["locked_at"]) == (3, at(3))
    # Two failures only, or a success between them: known now, and still not locked.
    for timeline in (
        [failure("u-two", at(1)), failure("u-two", at(2))],
        [failure("u-ok", at(1)), success("u-ok", at(2)), *[failure("u-ok", at(m)) for m in (3, 4)]],
    ):
        who = timeline[0].subject
        await deliver(pool, flows, timeline)
        joined = UserCreated(user_id=who, user_name=who)
        assert await handle(pool, flows.user_event, event(joined, sequence=1)) == [], who


async def test_failures_before_an_unlock_do_not_count_after_it(pool: asyncpg.Pool) -> None:
    recorder = Recorder()
    flows = handlers(recorder, threshold=3)
    user = "u-forgiven"
    await known(pool, flows, user)
    assert await deliver(pool, flows, [failure(user, at(m)) for m in (1, 2, 3)])
    await unlock(pool, flows, user, "req-forgiven", at(6))

    # Failed sign-ins from before the unlock, consumed after it (another topic than the
    # grant's), and one after it: the unlock started the count again.
    late = [failure(user, at(4)), failure(user, at(5)), failure(user, at(7))]
    assert not await deliver(pool, flows, late)


async def unlock(
    pool: asyncpg.Pool, flows: Handlers, user: str, request: str, when: datetime
) -> list[Envelope]:
    async with pool.acquire() as conn:
        await approvals.file_request(
            ports_on(conn),
            kind="unlock",
            user_id=user,
            requester_id="helpdesk",
            justification=None,
            request_id=request,
        )
    granted = AccessGranted(
        request_id=request,
        grant_id=f"g-{request}",
        principal_id=user,
        resource=Resource(application="accord", entitlement="unlock"),
    )
    return await handle(pool, flows.access_event, event(granted, at=when))


async def test_an_unlock_after_a_deactivation_enables_nothing(pool: asyncpg.Pool) -> None:
    recorder = Recorder()
    flows = handlers(recorder, threshold=1)
    user = "u-unlocked-away"
    await known(pool, flows, user)
    assert await deliver(pool, flows, [failure(user, at(1))])
    await handle(pool, flows.user_event, event(UserDeactivated(user_id=user), sequence=2))

    unlocked = await unlock(pool, flows, user, "req-away", at(2))

    assert [e.type for e in unlocked] == ["identity.unlocked"]
    assert (user, "account-enabled") not in [(u, s) for u, s, _ in recorder.sent]
    # Reactivated later: now the receivers hear it.
    await handle(pool, flows.user_event, event(UserReactivated(user_id=user), sequence=3))
    assert [(u, s) for u, s, _ in recorder.sent][-1] == (user, "account-enabled")


# --- identity events: user.updated and the status topics --------------------------------------


def updated(user: str, *, active: bool) -> UserUpdated:
    return UserUpdated(user_id=user, user_name=user, email=f"{user}@example.com", active=active)


def signals(recorder: Recorder, user: str) -> list[str]:
    return [signal for who, signal, _ in recorder.sent if who == user]


@pytest.mark.parametrize("update_first", [False, True])
async def test_a_deactivation_and_its_update_revoke_the_sessions_in_either_order(
    pool: asyncpg.Pool, update_first: bool
) -> None:
    # One SCIM write that sets active false and changes an attribute publishes
    # user.deactivated (sequence n+1) and user.updated (n+2, active false): two topics.
    recorder = Recorder()
    flows = handlers(recorder)
    user = "u-scim-off"
    await known(pool, flows, user)
    pair = [
        event(UserDeactivated(user_id=user, reason="active set over SCIM"), sequence=2),
        event(updated(user, active=False), sequence=3),
    ]
    emitted: list[Envelope] = []
    for change in reversed(pair) if update_first else pair:
        emitted += await handle(pool, flows.user_event, change)

    assert [e.type for e in emitted] == ["session.revoked"]
    assert signals(recorder, user) == ["account-disabled", "session-revoked"]
    async with pool.acquire() as conn:
        assert await identities.status_of(conn, user) == "inactive"


@pytest.mark.parametrize("update_first", [False, True])
async def test_a_reactivation_and_its_update_enable_in_either_order(
    pool: asyncpg.Pool, update_first: bool
) -> None:
    recorder = Recorder()
    flows = handlers(recorder)
    user = "u-scim-on"
    await known(pool, flows, user)
    await handle(pool, flows.user_event, event(UserDeactivated(user_id=user), sequence=2))
    pair = [
        event(UserReactivated(user_id=user), sequence=3),
        event(updated(user, active=True), sequence=4),
    ]
    for change in reversed(pair) if update_first else pair:
        await handle(pool, flows.user_event, change)

    assert signals(recorder, user) == ["account-disabled", "session-revoked", "account-enabled"]
    async with pool.acquire() as conn:
        assert await identities.status_of(conn, user) == "active"


@pytest.mark.parametrize("update_first", [False, True])
async def test_a_leaver_stays_deleted_whatever_update_follows(
    pool: asyncpg.Pool, update_first: bool
) -> None:
    # The source corrects a leaver's attributes after the deletion (sequence 3 > 2): an update
    # never brings an identity back, and consumed first it must not hide the deletion.
    recorder = Recorder()
    flows = handlers(recorder)
    user = "u-left"
    await known(pool, flows, user)
    pair = [
        event(UserDeleted(user_id=user), sequence=2),
        event(updated(user, active=False), sequence=3),
    ]
    emitted: list[Envelope] = []
    for change in reversed(pair) if update_first else pair:
        emitted += await handle(pool, flows.user_event, change)

    # Consumed first, the update deactivates (sessions end); the deletion then ends them
    # again and removes the factors.
    assert {e.type for e in emitted} == {"session.revoked", "mfa.removed"}
    assert recorder.removed == [(user, "leaver")]
    async with pool.acquire() as conn:
        assert await identities.status_of(conn, user) == "deleted"
        assert await identities.find_by_email(conn, f"{user}@example.com") is None


async def test_an_older_status_event_changes_nothing_a_newer_update_settled(
    pool: asyncpg.Pool,
) -> None:
    # user.updated (sequence 3, active) is newer than user.deactivated (2): it stays active.
    recorder = Recorder()
    flows = handlers(recorder)
    user = "u-newer-update"
    await known(pool, flows, user)
    await handle(pool, flows.user_event, event(updated(user, active=True), sequence=3))
    assert (
        await handle(pool, flows.user_event, event(UserDeactivated(user_id=user), sequence=2)) == []
    )
    assert signals(recorder, user) == []
    async with pool.acquire() as conn:
        assert await identities.status_of(conn, user) == "active"


# --- enrolment: mfa.enrolment_requested and mfa.enrolled ---------------------------------------


@pytest.mark.parametrize("enrolled_first", [False, True])
async def test_an_enrolment_request_is_done_once_a_factor_is_enrolled_in_either_order(
    pool: asyncpg.Pool, enrolled_first: bool
) -> None:
    # The joiner saga asks on mfa.enrolment_requested; a quick joiner enrols a key before
    # authn consumes the request (mfa.enrolled is another topic).
    flows = handlers(Recorder())
    user, waiting = "u-quick", "u-waiting"
    await known(pool, flows, user)
    await known(pool, flows, waiting)
    async with pool.acquire() as conn:
        await credentials.insert_webauthn(
            conn,
            credential_id="c-quick",
            user_id=user,
            label="key",
            webauthn_id=b"quick",
            public_key=b"pk",
            sign_count=0,
        )
    done = event(MfaEnrolled(user_id=user, credential_id="c-quick", factor="webauthn"))
    asks = [
        event(MfaEnrolmentRequested(user_id=who, factors=("webauthn",), saga_id=f"s-{who}"))
        for who in (user, waiting)
    ]
    for arrived in [done, *asks] if enrolled_first else [*asks, done]:
        await handle(pool, flows.enrolment, arrived)

    async with pool.acquire() as conn:
        request = await enrolments.of_user(conn, user)
        assert request is not None
        assert request["enrolled_at"] is not None
        still = await enrolments.pending(conn, after=None, limit=10)
        assert [r["user_id"] for r in still] == [waiting]
