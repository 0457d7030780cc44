"""`accord approvals` on a real PostgreSQL with a workflow's approval (issue 22): listed
with its reason beside access requests' stages, shown, and decided as an approver (never
the identity itself, never once it expired), approval.decided queued in the outbox."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio

from accord.authz.testing import consume
from accord.events import ApprovalRequested, EventData, UserCreated, new_event
from accord.runtime import db
from accord.runtime.consumer import HandlerContext
from accord.stack.testing import run_accord as accord

pytestmark = pytest.mark.integration
SCHEMA = "authz"


@pytest_asyncio.fixture(loop_scope="session")
async def pool(fresh_database: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[asyncpg.Pool]:
    """authz's tables; ada reports to mia; the CLI's DATABASE_URL is this database."""
    await db.migrate(fresh_database, SCHEMA, ["accord.authz.migrations"])
    monkeypatch.setenv("DATABASE_URL", fresh_database)
    monkeypatch.delenv("ACCORD_POLICY_DIR", raising=False)
    created = await db.create_pool(fresh_database, SCHEMA, max_size=2)
    try:
        for user_id, manager in (("mia", None), ("ada", "mia")):
            await handle(
                created, UserCreated(user_id=user_id, user_name=user_id, manager_id=manager), 1
            )
        yield created
    finally:
        await created.close()


async def handle(pool: asyncpg.Pool, data: EventData, sequence: int | None = None) -> None:
    async with pool.acquire() as conn, conn.transaction():
        ctx = HandlerContext(conn=conn, source="urn:test", topic=data.event_type)
        await consume(new_event(data, source="urn:test", sequence=sequence), ctx)


async def ask(pool: asyncpg.Pool, approval_id: str, expires_at: datetime) -> None:
    await handle(
        pool,
        ApprovalRequested(
            approval_id=approval_id,
            user_id="ada",
            workflow_id="contractor-end-date",
            run_id="run-7",
            task_id="approve_extension",
            approvers=("manager",),
            reason="extend ada's contract by 3 months?",
            expires_at=expires_at,
        ),
    )


async def test_a_workflow_approval_is_listed_shown_and_decided(
    pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    await ask(pool, "run-7:approve_extension:1", datetime.now(UTC) + timedelta(days=2))

    code, out, err = await accord(capsys, "approvals", "list")
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split() == [
        "WORKFLOW",
        "APPROVAL",
        "IDENTITY",
        "WORKFLOW/TASK",
        "APPROVERS",
        "REASON",
        "EXPIRES",
    ]
    assert row.split()[:4] == [
        "run-7:approve_extension:1",
        "ada",
        "contractor-end-date/approve_extension",
        "mia",
    ]
    assert "extend ada's contract by 3 months?" in row

    code, out, err = await accord(capsys, "approvals", "list", "--approver", "mia", "--json")
    assert code == 0, err
    (item,) = [json.loads(line) for line in out.splitlines()]
    assert (item["kind"], item["approval_id"], item["approvers"], item["asked"]) == (
        "workflow",
        "run-7:approve_extension:1",
        ["mia"],
        ["manager"],
    )
    assert item["reason"] == "extend ada's contract by 3 months?"
    assert "correlation_id" not in item
    code, out, _ = await accord(capsys, "approvals", "list", "--approver", "ada")
    assert (code, out.strip()) == (0, "no approvals waiting for ada")

    code, out, err = await accord(
        capsys, "approvals", "approve", "run-7:approve_extension:1", "--as", "ada"
    )
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "accord: error: ada cannot approve run-7:approve_extension:1:"
        " nobody approves an approval about themselves"
    ]
    code, out, err = await accord(
        capsys, "approvals", "approve", "run-7:approve_extension:1", "--as", "zed"
    )
    assert (code, out) == (1, "")
    assert "not an approver of it" in err

    code, out, err = await accord(
        capsys,
        "approvals",
        "approve",
        "run-7:approve_extension:1",
        "--as",
        "mia",
        "--comment",
        "fine by me",
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "approved workflow approval run-7:approve_extension:1 as mia"
    assert "status:        approved" in out
    assert lines[-1] == "approval.decided queued in authz's outbox for run run-7"
    queued = await pool.fetch("SELECT topic, value FROM outbox WHERE key = $1", b"ada")
    (decided,) = [json.loads(r["value"]) for r in queued if r["topic"] == "approval.decided"]
    assert {k: decided[k] for k in ("approval_id", "user_id", "run_id", "task_id")} == {
        "approval_id": "run-7:approve_extension:1",
        "user_id": "ada",
        "run_id": "run-7",
        "task_id": "approve_extension",
    }
    assert (decided["approved"], decided["decided_by"], decided["reason"]) == (
        True,
        "mia",
        "fine by me",
    )

    code, out, err = await accord(capsys, "approvals", "show", "run-7:approve_extension:1")
    assert code == 0, err
    assert "decided:       by mia at" in out
    assert '"fine by me"' in out

    code, out, err = await accord(
        capsys, "approvals", "deny", "run-7:approve_extension:1", "--as", "mia"
    )
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "accord: error: workflow approval run-7:approve_extension:1:"
        " the workflow approval is approved, not pending"
    ]


async def test_an_expired_workflow_approval_is_refused(
    pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    await ask(pool, "run-7:approve_extension:2", datetime.now(UTC) - timedelta(minutes=1))

    code, out, err = await accord(
        capsys, "approvals", "deny", "run-7:approve_extension:2", "--as", "mia"
    )

    assert (code, out) == (1, "")
    assert "expired: the run no longer waits for it" in err
    status = await pool.fetchval(
        "SELECT status FROM workflow_approvals WHERE approval_id = 'run-7:approve_extension:2'"
    )
    assert status == "pending"
