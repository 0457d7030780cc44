"""`accord workflows plan --identity ID` reads the identity from the registry on PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from accord.orchestrator.adapters import store
from accord.stack.testing import migrated_pool
from accord.stack.testing import run_accord as accord

pytestmark = pytest.mark.integration
SCHEMA = "orchestrator"


@pytest_asyncio.fixture(loop_scope="session")
async def pool(fresh_database: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[asyncpg.Pool]:
    """The orchestrator's tables; the CLI's DATABASE_URL is this database."""
    monkeypatch.setenv("DATABASE_URL", fresh_database)
    monkeypatch.delenv("ACCORD_WORKFLOWS_DIR", raising=False)
    async with migrated_pool(fresh_database, SCHEMA, ["accord.orchestrator.migrations"]) as made:
        yield made


async def test_plan_reads_the_identity_from_the_registry(
    pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = {
        "user_name": "ada",
        "employee_type": "employee",
        "hire_date": "2027-03-01",
        "time_zone": "America/New_York",
    }
    async with pool.acquire() as conn:
        await store.upsert_identity(
            conn,
            user_id="u-ada",
            user_name="ada",
            profile=profile,
            status="active",
            sequence=1,
            source="hr",
        )

    code, out, err = await accord(
        capsys, "workflows", "plan", "--identity", "u-ada", "--at", "2027-02-01T00:00:00Z", "--json"
    )

    assert (code, err) == (0, "")
    (timer,) = json.loads(out)["timers"]
    assert timer["workflow"] == "pre-hire"
    assert timer["utc"] == "2027-02-22T05:00:00Z"  # midnight in New York, a week before
    assert timer["local"] == "2027-02-22 00:00 America/New_York"
    assert timer["in_scope"] is True


async def test_plan_of_an_unknown_identity_fails_in_one_line(
    pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await accord(capsys, "workflows", "plan", "--identity", "nobody")
    assert (code, out) == (1, "")
    assert err == "accord: error: identity nobody not found\n"
