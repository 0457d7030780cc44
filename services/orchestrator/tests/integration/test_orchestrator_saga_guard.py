"""The database's own guard on sagas (migrations 0001, 0005, 0008, 0009, 0012), tried
directly in SQL: whatever the code does, a finished saga never changes, each status moves
only where the engine allows, every write names the version it read, and one saga at a time
holds an identity. Each forbidden case must fail; drop the guard and these tests fail."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from accord.stack.testing import migrated_pool

pytestmark = pytest.mark.integration

SCHEMA = "orchestrator"
STATUSES = ("queued", "running", "compensating", "completed", "failed", "cancelled")
#: Where each status may go: written out here, not read from the SQL, so that a change to
#: the guard shows up as a failing case.
ALLOWED = {
    "queued": {"queued", "running", "completed", "cancelled"},
    "running": set(STATUSES),
    "compensating": {"compensating", "failed"},
    "failed": {"failed", "running", "completed", "cancelled"},
    "completed": set(),
    "cancelled": set(),
}


@pytest_asyncio.fixture(loop_scope="session")
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool(fresh_database, SCHEMA, ["accord.orchestrator.migrations"]) as made:
        yield made


async def insert(pool: asyncpg.Pool, status: str, *, subject: str | None = None) -> str:
    saga_id = f"saga-{uuid.uuid4().hex[:12]}"
    await pool.execute(
        "INSERT INTO sagas (saga_id, saga_type, subject_id, correlation_id, status, state,"
        " started_at) VALUES ($1, 'joiner', $2, $1, $3, '{}'::jsonb, now())",
        saga_id,
        subject or f"u-{saga_id}",
        status,
    )
    return saga_id


async def move(pool: asyncpg.Pool, saga_id: str, status: str, *, step: int = 1) -> None:
    await pool.execute(
        "UPDATE sagas SET status = $2, version = version + $3 WHERE saga_id = $1",
        saga_id,
        status,
        step,
    )


@pytest.mark.parametrize("old", STATUSES)
@pytest.mark.parametrize("new", STATUSES)
async def test_a_saga_moves_only_where_the_engine_allows(
    pool: asyncpg.Pool, old: str, new: str
) -> None:
    saga_id = await insert(pool, old)
    if new in ALLOWED[old]:
        await move(pool, saga_id, new)
        assert await pool.fetchval("SELECT status FROM sagas WHERE saga_id = $1", saga_id) == new
    else:
        with pytest.raises(asyncpg.RaiseError, match=saga_id):
            await move(pool, saga_id, new)
        assert await pool.fetchval("SELECT status FROM sagas WHERE saga_id = $1", saga_id) == old


@pytest.mark.parametrize("step", [0, 2, -1])
async def test_every_write_advances_the_version_by_exactly_one(
    pool: asyncpg.Pool, step: int
) -> None:
    saga_id = await insert(pool, "running")
    with pytest.raises(asyncpg.RaiseError, match="version must advance by one"):
        await move(pool, saga_id, "running", step=step)
    assert await pool.fetchval("SELECT version FROM sagas WHERE saga_id = $1", saga_id) == 0


async def test_one_saga_at_a_time_holds_an_identity(pool: asyncpg.Pool) -> None:
    subject = f"u-{uuid.uuid4().hex[:8]}"
    first = await insert(pool, "running", subject=subject)
    second = await insert(pool, "failed", subject=subject)
    await pool.execute(
        "UPDATE sagas SET holds_identity = true, version = version + 1 WHERE saga_id = $1", first
    )
    with pytest.raises(asyncpg.UniqueViolationError):
        await pool.execute(
            "UPDATE sagas SET holds_identity = true, version = version + 1 WHERE saga_id = $1",
            second,
        )


@pytest.mark.parametrize("status", ["queued", "completed", "cancelled"])
async def test_only_an_unfinished_saga_may_hold_its_identity(
    pool: asyncpg.Pool, status: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError, match="sagas_holder_is_unfinished"):
        await pool.execute(
            "INSERT INTO sagas (saga_id, saga_type, subject_id, correlation_id, status, state,"
            " started_at, holds_identity) VALUES ($1, 'joiner', $1, $1, $2, '{}'::jsonb, now(),"
            " true)",
            f"saga-{uuid.uuid4().hex[:12]}",
            status,
        )
