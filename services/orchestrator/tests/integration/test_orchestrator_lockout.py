"""Lockout and unlock sagas (issue 10), and the joiner's enrolment step, on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from accord.events import (
    Envelope,
    IdentityLocked,
    IdentityUnlocked,
    MfaEnrolmentRequested,
    UserCreated,
    UserReactivated,
    UserUpdated,
)
from accord.orchestrator.adapters import store
from accord.orchestrator.handlers import UnknownIdentity
from accord.stack.testing import migrated_pool

from .test_orchestrator_access_workflows import (
    answer,
    event,
    handle,
    joined,
    requests,
    sagas_of,
    workflows,
)

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(loop_scope="session")
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool(
        fresh_database, "orchestrator", ["accord.orchestrator.migrations"]
    ) as made:
        yield made


def operations(events: list[Envelope]) -> list[tuple[str, str, bool]]:
    return [(r.target, r.operation, r.profile.active) for r in requests(events)]


async def test_a_lockout_disables_every_account_and_only_its_unlock_enables_them(
    pool: asyncpg.Pool,
) -> None:
    flows = workflows()
    user = "u-locked"
    await joined(pool, flows, user)

    locked = event(IdentityLocked(user_id=user, lockout_id="lock-1", reason="5 failures"))
    started = await handle(pool, flows, locked)
    assert operations(started) == [("crm", "disable", False), ("wiki", "disable", False)]
    assert await handle(pool, flows, locked) == []  # a redelivery
    await answer(pool, flows, started)

    # While locked, the source system's changes enable nothing.
    moved = event(UserUpdated(user_id=user, user_name=user, title="Lead"), 2)
    mover = await handle(pool, flows, moved)
    assert operations(mover) == [("crm", "update", False), ("wiki", "update", False)]
    await answer(pool, flows, mover)
    back = await handle(pool, flows, event(UserReactivated(user_id=user), 3))
    assert requests(back) == []

    wrong = IdentityUnlocked(user_id=user, lockout_id="lock-0", request_id="req-0")
    assert await handle(pool, flows, event(wrong)) == []
    unlocked = IdentityUnlocked(user_id=user, lockout_id="lock-1", request_id="req-1")
    enabling = await handle(pool, flows, event(unlocked))
    assert operations(enabling) == [("crm", "enable", True), ("wiki", "enable", True)]
    await answer(pool, flows, enabling)
    entry = await store.get_identity(pool, user)
    assert entry is not None
    assert entry["locked_by"] is None
    kinds = [kind for kind, _ in await sagas_of(pool, user)]
    assert kinds.count("lockout") == 1
    assert kinds.count("unlock") == 1


async def test_a_lockout_of_an_identity_not_here_yet_is_retried(pool: asyncpg.Pool) -> None:
    flows = workflows()
    locked = event(IdentityLocked(user_id="u-early", lockout_id="lock-9", reason="signal"))
    with pytest.raises(UnknownIdentity):
        await handle(pool, flows, locked)
    await joined(pool, flows, "u-early")
    assert operations(await handle(pool, flows, locked)) == [
        ("crm", "disable", False),
        ("wiki", "disable", False),
    ]


async def test_an_unlock_of_a_deactivated_identity_enables_nothing(pool: asyncpg.Pool) -> None:
    flows = workflows()
    user = "u-away"
    await joined(pool, flows, user)
    locked = event(IdentityLocked(user_id=user, lockout_id="lock-2", reason="5 failures"))
    await answer(pool, flows, await handle(pool, flows, locked))
    async with pool.acquire() as conn:
        await store.set_identity_status(conn, user, "inactive", 2)
    unlocked = IdentityUnlocked(user_id=user, lockout_id="lock-2", request_id="req-2")
    assert requests(await handle(pool, flows, event(unlocked))) == []


async def test_a_completed_joiner_asks_for_enrolment_when_configured(pool: asyncpg.Pool) -> None:
    flows = workflows(mfa_enrolment=("webauthn", "totp"))
    created = event(UserCreated(user_id="u-new", user_name="u-new"), 1)
    started = await handle(pool, flows, created)
    finished = await answer(pool, flows, started)
    assert [e.type for e in finished] == ["saga.completed", "mfa.enrolment_requested"]
    enrol = finished[1].data
    assert isinstance(enrol, MfaEnrolmentRequested)
    assert enrol.factors == ("webauthn", "totp")
    assert enrol.saga_id == requests(started)[0].saga_id

    plain = workflows()
    created = event(UserCreated(user_id="u-plain", user_name="u-plain"), 1)
    done = await answer(pool, plain, await handle(pool, plain, created))
    assert [e.type for e in done] == ["saga.completed"]
