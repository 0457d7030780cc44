"""Lockout on a real PostgreSQL: failed sign-ins counted by event time, one lockout, sessions
revoked, an approved unlock, leavers and deactivations (the Shared Signals port is a fake
that records what it was asked to send)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import asyncpg
import pytest
import pytest_asyncio

from accord.authn import approvals, housekeeping
from accord.authn.adapters import identities, lockouts
from accord.authn.bootstrap import postgres_ports, routes_of
from accord.authn.domain.lockout import LockoutPolicy
from accord.authn.handlers.sessions import request_txn
from accord.authn.ports import Ports
from accord.authn.signals import Signal, send_nothing
from accord.events import (
    AccessDecided,
    AccessGranted,
    AuthnFailed,
    AuthnSucceeded,
    Envelope,
    EventData,
    MfaRemoved,
    Resource,
    SessionRevokeRequested,
    UserCreated,
    UserDeactivated,
    UserDeleted,
    new_event,
)
from accord.runtime.consumer import HandlerContext
from accord.runtime.routes import Route
from accord.stack.testing import migrated_pool

pytestmark = pytest.mark.integration

SCHEMA = "authn"
SOURCE = "urn:test:authn"
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


@dataclass
class Recorder:
    """Stands in for the transmitter: remembers each signal, reports two streams."""

    sent: list[tuple[str, Signal, str]] = field(default_factory=list)
    txns: list[str] = field(default_factory=list)
    """The Shared Signals txn of each signal sent, in order."""
    removed: list[tuple[str, str]] = field(default_factory=list)

    async def send(
        self, conn: asyncpg.Connection, user_id: str, signal: Signal, reason: str, *, txn: str
    ) -> int:
        self.sent.append((user_id, signal, reason))
        self.txns.append(txn)
        return 2

    async def remove_all(self, user_id: str, why: str) -> list[Envelope]:
        """The Factors port: every identity holds one active factor."""
        self.removed.append((user_id, why))
        gone = MfaRemoved(user_id=user_id, credential_id="c-1", factor="totp", reason=why)
        return [new_event(gone, source=SOURCE)]


@pytest_asyncio.fixture(loop_scope="session")
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool(fresh_database, SCHEMA, ["accord.authn.migrations"]) as created:
        yield created


def ports_on(conn: asyncpg.Connection) -> Ports:
    """The PostgreSQL ports on this connection, as the API builds them (no transmitter)."""
    policy = LockoutPolicy(threshold=3, window=timedelta(minutes=10))
    return postgres_ports(policy, send_nothing)(conn, SOURCE)


class Handlers:
    """Authn's routes, as the runtime calls them; each event goes to the route of its type."""

    def __init__(self, routes: Mapping[str, Route]) -> None:
        self.routes = routes

    async def route(self, event: Envelope, ctx: HandlerContext) -> list[Envelope]:
        handler = self.routes[event.type]
        assert callable(handler)
        return list(await handler(event, ctx))

    user_event = sign_in = access_event = enrolment = route


def handlers(recorder: Recorder, threshold: int = 3) -> Handlers:
    """Authn's routes over PostgreSQL, the recorder standing in for signals and factors."""
    policy = LockoutPolicy(threshold=threshold, window=timedelta(minutes=10))
    on_postgres = postgres_ports(policy, recorder.send)

    def ports(conn: asyncpg.Connection, source: str) -> Ports:
        return replace(on_postgres(conn, SOURCE), factors=recorder)

    return Handlers(routes_of(ports))


async def handle(pool: asyncpg.Pool, method: object, cause: Envelope) -> list[Envelope]:
    async with pool.acquire() as conn, conn.transaction():
        ctx = HandlerContext(conn=conn, source=SOURCE, topic=cause.type)
        emitted: list[Envelope] = await method(cause, ctx)  # type: ignore[operator]
        return emitted


def event(data: EventData, *, at: datetime = T0, sequence: int | None = None) -> Envelope:
    return new_event(data, source="urn:test:okta", time=at, sequence=sequence)


def failure(user: str, at: datetime) -> Envelope:
    return event(AuthnFailed(user_id=user, idp="okta", reason="bad password"), at=at)


async def known(pool: asyncpg.Pool, flows: Handlers, user: str) -> None:
    created = UserCreated(user_id=user, user_name=user, email=f"{user}@example.com")
    await handle(pool, flows.user_event, event(created, sequence=1))


async def test_the_failure_that_reaches_the_threshold_locks_once(pool: asyncpg.Pool) -> None:
    recorder = Recorder()
    flows = handlers(recorder)
    user = "u-lock"
    await known(pool, flows, user)

    first = failure(user, T0)
    assert await handle(pool, flows.sign_in, first) == []
    assert await handle(pool, flows.sign_in, first) == []  # redelivered: counted once
    assert await handle(pool, flows.sign_in, failure(user, T0 + timedelta(minutes=1))) == []
    locking = failure(user, T0 + timedelta(minutes=2))
    events = await handle(pool, flows.sign_in, locking)

    assert [e.type for e in events] == ["identity.locked", "session.revoked"]
    assert events[0].data.model_dump()["failures"] == 3
    assert events[0].causationid == locking.id
    assert events[1].data.model_dump()["streams"] == 2
    assert [(u, s) for u, s, _ in recorder.sent] == [
        (user, "account-disabled"),
        (user, "session-revoked"),
    ]
    assert recorder.txns == [locking.id, locking.id]  # one cause: one txn
    # More failures while locked: no second lockout.
    for minute in (3, 4, 5):
        assert (
            await handle(pool, flows.sign_in, failure(user, T0 + timedelta(minutes=minute))) == []
        )
    async with pool.acquire() as conn:
        rows = await lockouts.list_lockouts(
            conn, user_id=user, open_only=False, before=None, limit=10
        )
    assert len(rows) == 1


async def test_failures_of_an_identity_accord_does_not_hold_lock_nothing(
    pool: asyncpg.Pool,
) -> None:
    recorder = Recorder()
    flows = handlers(recorder, threshold=1)
    assert await handle(pool, flows.sign_in, failure("u-unknown", T0)) == []
    assert recorder.sent == []


async def test_failures_outside_the_window_or_before_a_success_do_not_count(
    pool: asyncpg.Pool,
) -> None:
    recorder = Recorder()
    flows = handlers(recorder)
    user = "u-slow"
    await known(pool, flows, user)
    # Two failures, then 11 minutes later one more: the window holds only one or two.
    await handle(pool, flows.sign_in, failure(user, T0))
    await handle(pool, flows.sign_in, failure(user, T0 + timedelta(minutes=1)))
    assert await handle(pool, flows.sign_in, failure(user, T0 + timedelta(minutes=12))) == []
    # A success resets: two more failures after it do not reach three.
    ok = event(AuthnSucceeded(user_id=user, idp="okta"), at=T0 + timedelta(minutes=13))
    await handle(pool, flows.sign_in, ok)
    await handle(pool, flows.sign_in, failure(user, T0 + timedelta(minutes=14)))
    assert await handle(pool, flows.sign_in, failure(user, T0 + timedelta(minutes=15))) == []
    assert recorder.sent == []
    # A burst consumed late still counts by its own times.
    late = [failure(user, T0 + timedelta(minutes=16, seconds=s)) for s in (1, 2)]
    assert await handle(pool, flows.sign_in, late[0]) != []
    assert await handle(pool, flows.sign_in, late[1]) == []


async def test_an_approved_unlock_ends_the_lockout_and_a_denied_one_is_settled(
    pool: asyncpg.Pool,
) -> None:
    recorder = Recorder()
    flows = handlers(recorder, threshold=1)
    user = "u-unlock"
    await known(pool, flows, user)
    await handle(pool, flows.sign_in, failure(user, T0))

    async with pool.acquire() as conn, conn.transaction():
        created, filed = await approvals.file_request(
            ports_on(conn),
            kind="unlock",
            user_id=user,
            requester_id="helpdesk",
            justification="verified by phone",
            request_id="req-denied",
        )
    assert created
    (requested,) = filed
    assert requested.data.model_dump()["resource"] == {
        "application": "accord",
        "entitlement": "unlock",
    }
    resource = Resource(application="accord", entitlement="unlock")
    denied = AccessDecided(
        request_id="req-denied", principal_id=user, resource=resource, decision="deny"
    )
    assert await handle(pool, flows.access_event, event(denied)) == []
    async with pool.acquire() as conn:
        assert (await lockouts.get_request(conn, "req-denied") or {})["status"] == "denied"
        created, _ = await approvals.file_request(
            ports_on(conn),
            kind="unlock",
            user_id=user,
            requester_id="helpdesk",
            justification=None,
            request_id="req-ok",
        )
    granted = AccessGranted(
        request_id="req-ok", grant_id="g-1", principal_id=user, resource=resource
    )
    events = await handle(pool, flows.access_event, event(granted))
    assert [e.type for e in events] == ["identity.unlocked"]
    assert events[0].data.model_dump()["request_id"] == "req-ok"
    assert await handle(pool, flows.access_event, event(granted)) == []  # acted on once
    assert recorder.sent[-1][:2] == (user, "account-enabled")
    async with pool.acquire() as conn:
        assert await lockouts.open_lockout(conn, user) is None
        with pytest.raises(approvals.NothingToUnlock):
            await approvals.file_request(
                ports_on(conn),
                kind="unlock",
                user_id=user,
                requester_id="helpdesk",
                justification=None,
                request_id="req-again",
            )


async def test_an_approved_factor_reset_removes_every_factor(pool: asyncpg.Pool) -> None:
    recorder = Recorder()
    flows = handlers(recorder)
    user = "u-reset"
    await known(pool, flows, user)
    async with pool.acquire() as conn:
        await approvals.file_request(
            ports_on(conn),
            kind="mfa-reset",
            user_id=user,
            requester_id=user,
            justification="lost my phone",
            request_id="req-reset",
        )
    resource = Resource(application="accord", entitlement="mfa-reset")
    granted = AccessGranted(
        request_id="req-reset", grant_id="g-2", principal_id=user, resource=resource
    )
    events = await handle(pool, flows.access_event, event(granted))
    assert [e.type for e in events] == ["mfa.removed"]
    assert recorder.removed == [(user, "reset (req-reset)")]
    # A grant of another application is not authn's business.
    other = AccessGranted(
        request_id="req-reset",
        grant_id="g-3",
        principal_id=user,
        resource=Resource(application="wiki", entitlement="reader"),
    )
    assert await handle(pool, flows.access_event, event(other)) == []


async def test_leavers_and_deactivations_lose_their_sessions_everywhere(
    pool: asyncpg.Pool,
) -> None:
    recorder = Recorder()
    flows = handlers(recorder)
    await known(pool, flows, "u-away")
    away = event(UserDeactivated(user_id="u-away", reason="leave"), sequence=2)
    events = await handle(pool, flows.user_event, away)
    assert [e.type for e in events] == ["session.revoked"]
    assert await handle(pool, flows.user_event, away) == []  # stale: once
    await known(pool, flows, "u-gone")
    gone = event(UserDeleted(user_id="u-gone"), sequence=2)
    events = await handle(pool, flows.user_event, gone)
    assert [e.type for e in events] == ["session.revoked", "mfa.removed"]
    assert recorder.removed == [("u-gone", "leaver")]
    assert [(u, s) for u, s, _ in recorder.sent] == [
        ("u-away", "account-disabled"),
        ("u-away", "session-revoked"),
        ("u-gone", "account-disabled"),
        ("u-gone", "session-revoked"),
    ]
    async with pool.acquire() as conn:
        assert await identities.status_of(conn, "u-gone") == "deleted"
        assert await identities.find_by_email(conn, "u-away@example.com") == "u-away"
        assert await identities.find_by_email(conn, "U-GONE@example.com") is None


async def test_a_workflows_request_ends_an_active_identitys_sessions_only(
    pool: asyncpg.Pool,
) -> None:
    recorder = Recorder()
    flows = handlers(recorder)
    user = "u-revoke"
    await known(pool, flows, user)
    request = SessionRevokeRequested(
        user_id=user,
        request_id="run-1:revoke_sessions:1",
        reason="workflow contractor-end-date",
        run_id="run-1",
    )
    asked = new_event(request, source="accord/orchestrator", correlation_id="run-1")
    events = await handle(pool, flows.route, asked)
    assert [e.type for e in events] == ["session.revoked"]
    assert events[0].causationid == asked.id
    assert events[0].data.model_dump()["streams"] == 2
    assert recorder.sent == [(user, "session-revoked", "workflow contractor-end-date")]
    assert recorder.txns == [request_txn("run-1:revoke_sessions:1")]
    # Sessions only: no lockout, and the identity stays active.
    async with pool.acquire() as conn:
        assert await identities.status_of(conn, user) == "active"
        rows = await lockouts.list_lockouts(
            conn, user_id=user, open_only=False, before=None, limit=10
        )
    assert rows == []


async def test_housekeeping_drops_failures_outside_the_window(pool: asyncpg.Pool) -> None:
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        await lockouts.record_failure(
            conn, "old", "u-prune", now - timedelta(hours=1), idp="x", reason="r"
        )
        await lockouts.record_failure(conn, "new", "u-prune", now, idp="x", reason="r")
    runtime = SimpleNamespace(pool=pool, stopping=asyncio.Event())
    prune = housekeeping.pruner(LockoutPolicy(threshold=5, window=timedelta(minutes=10)), 0.05)
    task = asyncio.create_task(prune(runtime))  # type: ignore[arg-type]
    await asyncio.sleep(0.2)
    runtime.stopping.set()
    await asyncio.wait_for(task, 5)
    kept = await pool.fetch("SELECT event_id FROM sign_in_failures WHERE user_id = 'u-prune'")
    assert [r["event_id"] for r in kept] == ["new"]
