"""The AccessPasses port's contract: the same cases over the in-memory fake
(accord.authn.fakes.FakeAccessPasses) and the PostgreSQL adapter on a real database, so the
fake the API's unit tests trust cannot drift. Each PostgreSQL case is rolled back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta

import asyncpg
import pytest
import pytest_asyncio

from accord.authn.adapters import credentials
from accord.authn.adapters.access_passes import PostgresAccessPasses
from accord.authn.adapters.identities import PostgresIdentities
from accord.authn.domain import access_pass as tap
from accord.authn.domain.access_pass import AccessPassPolicy, Pepper
from accord.authn.domain.identity import Change
from accord.authn.fakes import FakeAccessPasses
from accord.authn.ports import AccessPasses
from accord.events import new_event
from accord.events.catalogue.authn import AccessPassRedeemed
from accord.stack.testing import migrated_pool

from .test_authn_lockout_flow import SCHEMA, T0

pytestmark = pytest.mark.integration
PEPPER = Pepper({"k1": b"\x05" * 32}, "k1")


@dataclass
class Side:
    store: AccessPasses
    name: Callable[[str, str], Awaitable[None]]
    """(user_id, user_name): authn knows the identity by this name."""
    add_factor: Callable[[str], Awaitable[None]]
    """The identity holds an active factor."""
    announced: Callable[[], Awaitable[list[str]]]
    """The types of the events announced so far, in order."""


def fake_side() -> Side:
    fake = FakeAccessPasses()

    async def name(user_id: str, user_name: str) -> None:
        fake.user_names[user_name] = user_id

    async def add_factor(user_id: str) -> None:
        fake.with_factor.add(user_id)

    async def announced() -> list[str]:
        return [e.type for e in fake.announced]

    return Side(fake, name, add_factor, announced)


def postgres_side(conn: asyncpg.Connection) -> Side:
    async def name(user_id: str, user_name: str) -> None:
        change = Change(1, (user_name, f"{user_name}@example.com"), active=True, deleted=False)
        await PostgresIdentities(conn).apply(user_id, change)

    async def add_factor(user_id: str) -> None:
        await credentials.insert_webauthn(
            conn,
            credential_id=f"mfa-{user_id}",
            user_id=user_id,
            label=None,
            webauthn_id=user_id.encode(),
            public_key=b"pk",
            sign_count=0,
        )

    async def announced() -> list[str]:
        rows = await conn.fetch("SELECT topic FROM outbox ORDER BY id")
        return [r["topic"] for r in rows]

    return Side(PostgresAccessPasses(conn, SCHEMA), name, add_factor, announced)


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


def new_pass(user_id: str = "u-1", pass_id: str = "tap-1", **changes: object) -> tap.AccessPass:
    issued, _ = tap.issue(
        pass_id=pass_id,
        user_id=user_id,
        lifetime=timedelta(hours=4),
        one_time=True,
        starts_at=T0 + timedelta(days=1),
        now=T0,
        created_by="helpdesk",
        pepper=PEPPER,
        policy=AccessPassPolicy(),
    )
    return replace(issued, **changes)  # type: ignore[arg-type]


async def test_a_pass_is_stored_and_read_back_as_it_was(side: Side) -> None:
    issued = new_pass()

    assert await side.store.put(issued) is None

    assert await side.store.of_user("u-1") == issued
    assert await side.store.of_user("u-1", for_update=True) == issued
    assert await side.store.of_user("u-2") is None


async def test_a_new_pass_replaces_the_old_one_and_its_grants(side: Side) -> None:
    first = new_pass()
    await side.store.put(first)
    await side.store.add_grant(b"g" * 32, "u-1", first.pass_id, T0 + timedelta(hours=1))
    second = new_pass(pass_id="tap-2")

    replaced = await side.store.put(second)

    assert replaced == first
    assert await side.store.of_user("u-1") == second
    assert not await side.store.grant_holds(b"g" * 32, "u-1", T0)


async def test_attempts_are_recorded(side: Side) -> None:
    issued = new_pass()
    await side.store.put(issued)
    locked = replace(issued, failed_attempts=5, locked_at=T0 + timedelta(minutes=3))
    used = replace(issued, used_at=T0 + timedelta(minutes=2), failed_attempts=1)

    await side.store.record(used)
    assert await side.store.of_user("u-1") == used
    await side.store.record(locked)
    assert await side.store.of_user("u-1") == locked


async def test_revoking_removes_the_pass_and_its_grants(side: Side) -> None:
    issued = new_pass()
    await side.store.put(issued)
    await side.store.put(new_pass(user_id="u-2", pass_id="tap-9"))
    await side.store.add_grant(b"a" * 32, "u-1", issued.pass_id, T0 + timedelta(hours=1))
    await side.store.add_grant(b"b" * 32, "u-2", "tap-9", T0 + timedelta(hours=1))

    assert await side.store.revoke("u-1") == issued
    assert await side.store.revoke("u-1") is None

    assert await side.store.of_user("u-1") is None
    assert not await side.store.grant_holds(b"a" * 32, "u-1", T0)
    assert await side.store.grant_holds(b"b" * 32, "u-2", T0)  # another's stays


async def test_a_grant_holds_for_its_identity_until_it_expires(side: Side) -> None:
    await side.store.put(new_pass())
    expires = T0 + timedelta(minutes=15)
    await side.store.add_grant(b"g" * 32, "u-1", "tap-1", expires)

    assert await side.store.grant_holds(b"g" * 32, "u-1", expires - timedelta(seconds=1))
    assert not await side.store.grant_holds(b"g" * 32, "u-1", expires)
    assert not await side.store.grant_holds(b"g" * 32, "u-2", T0)
    assert not await side.store.grant_holds(b"h" * 32, "u-1", T0)


async def test_identities_are_found_by_name_and_their_factors_seen(side: Side) -> None:
    await side.name("u-1", "ada")

    assert await side.store.user_named("ada") == "u-1"
    assert await side.store.user_named("grace") is None
    assert not await side.store.has_active_factor("u-1")
    await side.add_factor("u-1")
    assert await side.store.has_active_factor("u-1")
    assert not await side.store.has_active_factor("u-2")


async def test_events_are_announced_with_the_transaction(side: Side) -> None:
    before = await side.announced()
    redeemed = AccessPassRedeemed(user_id="u-1", pass_id="tap-1", redeemed_by="okta")

    await side.store.announce([new_event(redeemed, source="accord/authn")])

    assert await side.announced() == [*before, "authn.access_pass_redeemed"]
