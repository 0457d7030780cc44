"""Events of one identity on two topics, delivered in the unlucky order (issue 17, item 4):
Kafka orders one topic's events of a subject, never two topics'."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from accord.authz.adapters import authn_projection, requests
from accord.authz.testing import consume
from accord.events import (
    AccessDecided,
    AccessGranted,
    EventData,
    IdentityLocked,
    IdentityUnlocked,
    UserCreated,
    UserDeleted,
)
from accord.stack.testing import migrated_pool

from .test_authz_access_flow import SCHEMA, ask, on

pytestmark = pytest.mark.integration

identity_event = consume


@pytest_asyncio.fixture(loop_scope="session")
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool(fresh_database, SCHEMA, ["accord.authz.migrations"]) as created:
        yield created


def kinds(events: list[Any]) -> list[type[EventData]]:
    return [type(getattr(e, "data", e)) for e in events]


async def test_a_request_consumed_before_its_principal_is_known_is_decided_once_it_is(
    pool: asyncpg.Pool,
) -> None:
    # access.requested for a joiner whose user.created (another topic) authz has not
    # consumed yet: it waits instead of being refused as an unknown, inactive principal.
    request_id, events = await ask(pool, "wiki", "reader", principal="zed")
    assert events == []
    assert (await requests.get(pool, request_id) or {})["status"] == "pending"

    decided = await on(pool, identity_event, UserCreated(user_id="zed", user_name="zed"))

    assert kinds(decided) == [AccessDecided, AccessGranted]
    assert decided[0].data.model_dump()["decision"] == "permit"
    assert decided[0].correlationid == request_id
    assert (await requests.get(pool, request_id) or {})["status"] == "permit"
    # The request redelivered, or the identity's next event: decided once.
    assert (await ask(pool, "wiki", "reader", principal="zed"))[1] == []
    assert await on(pool, identity_event, UserCreated(user_id="zed", user_name="z"), 2) == []


async def test_a_request_for_a_leaver_it_waited_for_is_refused(pool: asyncpg.Pool) -> None:
    _, events = await ask(pool, "wiki", "reader", principal="gone")
    assert events == []

    decided = await on(pool, identity_event, UserDeleted(user_id="gone"))

    assert kinds(decided) == [AccessDecided]
    assert decided[0].data.model_dump()["decision"] == "deny"


async def test_an_unlock_consumed_before_its_lockout_leaves_the_identity_unlocked(
    pool: asyncpg.Pool,
) -> None:
    # Already safe: the projection keeps one row per lockout and an end always wins.
    await on(pool, identity_event, UserCreated(user_id="ada", user_name="ada"))
    unlocked = IdentityUnlocked(user_id="ada", lockout_id="lo-7", request_id="req-7")
    locked = IdentityLocked(user_id="ada", lockout_id="lo-7", reason="3 failures", failures=3)
    for data in (unlocked, locked):
        assert await on(pool, consume, data) == []

    async with pool.acquire() as conn:
        assert (await authn_projection.authn_attrs(conn, "ada"))["locked"] is False
