"""A time-bound grant ends at its expires_at, whether or not authz's timer has run yet."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
import pytest_asyncio

from accord.authz import access, sod, timers
from accord.authz.adapters import grants
from accord.authz.adapters.directory import PostgresDirectory
from accord.authz.adapters.grants import PostgresGrants
from accord.authz.catalogue import load_catalogue
from accord.authz.domain.policy_files import default_policy_dir, load_policy_dir
from accord.authz.ports import NewGrant
from accord.events import (
    AccessDecided,
    AccessGranted,
    AccessRequested,
    AccessRevoked,
    Resource,
    new_event,
)
from accord.stack.testing import migrated_pool

pytestmark = pytest.mark.integration
SCHEMA = "authz"
SOURCE = "urn:test:authz"
POLICIES = load_policy_dir(default_policy_dir())
CATALOGUE = load_catalogue(default_policy_dir() / "catalogue.yaml")
SETTINGS = access.ApprovalSettings(timeout=timedelta(hours=1))


@pytest_asyncio.fixture(loop_scope="session")
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool(fresh_database, SCHEMA, ["accord.authz.migrations"]) as created:
        yield created


async def ask(pool: asyncpg.Pool, principal: str, entitlement: str, request_id: str) -> list:
    await pool.execute(
        "INSERT INTO principals (user_id, active, sequence) VALUES ($1, true, 1)"
        " ON CONFLICT DO NOTHING",
        principal,
    )
    request = AccessRequested(
        request_id=request_id,
        requester_id=principal,
        principal_id=principal,
        resource=Resource(application="wiki", entitlement=entitlement),
        duration_seconds=3600,
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
    return [e.data for e in events]


async def expire_an_hour_ago(pool: asyncpg.Pool, grant_id: str) -> None:
    """The grant's time ran out an hour ago, while the timer did not run (authz was down)."""
    await pool.execute(
        "UPDATE grants SET granted_at = now() - interval '2 hours',"
        " expires_at = now() - interval '1 hour' WHERE grant_id = $1",
        grant_id,
    )


async def held(pool: asyncpg.Pool, principal: str, as_of: object = None) -> list[str]:
    found = await grants.search(
        pool, principal_id=principal, application=None, as_of=as_of, after=None, limit=10
    )
    return [g["grant_id"] for g in found]


async def test_an_expired_grant_is_not_held_before_the_timer_runs(pool: asyncpg.Pool) -> None:
    *_, granted = await ask(pool, "eve", "reader", "req-eve-1")
    assert isinstance(granted, AccessGranted)
    await expire_an_hour_ago(pool, granted.grant_id)

    assert await held(pool, "eve") == []
    half_an_hour_ago = await pool.fetchval("SELECT now() - interval '30 minutes'")
    assert await held(pool, "eve", half_an_hour_ago) == []
    ninety_minutes_ago = await pool.fetchval("SELECT now() - interval '90 minutes'")
    assert await held(pool, "eve", ninety_minutes_ago) == [granted.grant_id]
    async with pool.acquire() as conn:
        (principal, *_) = await PostgresDirectory(conn).principal_entities("eve")
        assert "entitlements" not in principal.attrs
        assert await PostgresGrants(conn).live_of("eve") == []


async def test_the_timer_ends_it_at_its_expires_at_not_when_it_runs(pool: asyncpg.Pool) -> None:
    *_, granted = await ask(pool, "fay", "reader", "req-fay-1")
    assert isinstance(granted, AccessGranted)
    await expire_an_hour_ago(pool, granted.grant_id)

    assert await timers.fire_due(pool, schema=SCHEMA, source=SOURCE, settings=SETTINGS) == 1

    row = await pool.fetchrow(
        "SELECT revoked_at, expires_at, revoke_reason FROM grants WHERE grant_id = $1",
        granted.grant_id,
    )
    assert (row["revoked_at"], row["revoke_reason"]) == (row["expires_at"], "expired")


async def test_asking_again_after_expiry_grants_again(pool: asyncpg.Pool) -> None:
    *_, first = await ask(pool, "gus", "reader", "req-gus-1")
    assert isinstance(first, AccessGranted)
    await expire_an_hour_ago(pool, first.grant_id)

    events = await ask(pool, "gus", "reader", "req-gus-2")

    decided, revoked, granted = events
    assert isinstance(decided, AccessDecided)
    assert isinstance(revoked, AccessRevoked)
    assert (revoked.grant_id, revoked.reason) == (first.grant_id, "expired")
    assert isinstance(granted, AccessGranted)
    assert await held(pool, "gus") == [granted.grant_id]


async def test_an_operator_cannot_revoke_an_expired_grant(pool: asyncpg.Pool) -> None:
    *_, granted = await ask(pool, "hal", "reader", "req-hal-1")
    assert isinstance(granted, AccessGranted)
    await expire_an_hour_ago(pool, granted.grant_id)

    async with pool.acquire() as conn, conn.transaction():
        assert await access.revoke(conn, granted.grant_id, "by hand", source=SOURCE) == []
        assert await access.revoke_all(conn, "hal", "leaver", source=SOURCE) == []


async def test_an_expired_grant_makes_no_sod_violation(pool: asyncpg.Pool) -> None:
    for request_id, application, entitlement in (
        ("req-ivy-1", "payroll", "admin"),
        ("req-ivy-2", "finance", "payment-approver"),
    ):
        await pool.execute(
            "INSERT INTO access_requests (request_id, requester_id, principal_id, application,"
            " entitlement, status) VALUES ($1, 'ivy', 'ivy', $2, $3, 'permit')",
            request_id,
            application,
            entitlement,
        )
        async with pool.acquire() as conn:
            await PostgresGrants(conn).insert(
                NewGrant(
                    grant_id=f"grant-{request_id}",
                    request_id=request_id,
                    principal_id="ivy",
                    application=application,
                    entitlement=entitlement,
                    provisioning=(),
                    expires_at=None,
                )
            )
    async with pool.acquire() as conn:
        assert len(await sod.violations(conn, POLICIES, CATALOGUE)) == 2
    await expire_an_hour_ago(pool, "grant-req-ivy-1")

    async with pool.acquire() as conn:
        assert await sod.violations(conn, POLICIES, CATALOGUE) == []
