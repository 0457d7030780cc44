"""The WorkflowApprovals port's contract (issue 22): the same cases over the in-memory fake
and the PostgreSQL adapter (migration 0007), each PostgreSQL case in one transaction of a
database of its own, rolled back at the end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio

from accord.authz.adapters import workflow_approvals
from accord.authz.adapters.postgres import postgres_stores
from accord.authz.fakes import Memory
from accord.authz.ports import NewWorkflowApproval, Stores
from accord.stack.testing import migrated_pool

pytestmark = pytest.mark.integration

SCHEMA = "authz"
EXPIRES = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "postgres"])
def database(request: pytest.FixtureRequest) -> str | None:
    if request.param == "memory":
        return None
    dsn: str = request.getfixturevalue("fresh_database")
    return dsn


@pytest_asyncio.fixture(loop_scope="session")
async def stores(database: str | None) -> AsyncIterator[Stores]:
    if database is None:
        yield Memory().stores()
        return
    async with (
        migrated_pool(database, SCHEMA, ["accord.authz.migrations"]) as pool,
        pool.acquire() as conn,
    ):
        transaction = conn.transaction()
        await transaction.start()
        try:
            yield postgres_stores(conn)
        finally:
            await transaction.rollback()


def approval(approval_id: str = "run-1:approve:1", **changes: object) -> NewWorkflowApproval:
    fields: dict[str, object] = {
        "approval_id": approval_id,
        "user_id": "ada",
        "workflow_id": "contractor-end-date",
        "run_id": "run-1",
        "task_id": "approve",
        "asked": ("manager", "group:it-leads"),
        "approvers": ("mia", "tom"),
        "reason": "extend the contract?",
        "escalation": False,
        "expires_at": EXPIRES,
        "correlation_id": "corr-1",
        **changes,
    }
    return NewWorkflowApproval(**fields)  # type: ignore[arg-type]


async def test_an_approval_is_recorded_once_pending(stores: Stores) -> None:
    assert await stores.workflow_approvals.insert(approval()) is True
    assert await stores.workflow_approvals.insert(approval(approvers=("sam",))) is False
    row = await stores.workflow_approvals.locked("run-1:approve:1")
    assert row is not None
    assert {k: row[k] for k in ("user_id", "workflow_id", "run_id", "task_id")} == {
        "user_id": "ada",
        "workflow_id": "contractor-end-date",
        "run_id": "run-1",
        "task_id": "approve",
    }
    assert (row["asked"], row["approvers"]) == (["manager", "group:it-leads"], ["mia", "tom"])
    assert (row["reason"], row["escalation"], row["expires_at"]) == (
        "extend the contract?",
        False,
        EXPIRES,
    )
    assert (row["status"], row["decided_by"], row["decided_at"]) == ("pending", None, None)
    assert row["correlation_id"] == "corr-1"
    assert row["created_at"] is not None
    assert await stores.workflow_approvals.locked("run-9:approve:1") is None


async def test_an_approval_is_decided_once(stores: Stores) -> None:
    await stores.workflow_approvals.insert(approval(reason=None, escalation=True))
    decided = await stores.workflow_approvals.decide(
        "run-1:approve:1", "rejected", by="mia", comment="not this time"
    )
    assert decided is not None
    assert (decided["status"], decided["decided_by"], decided["comment"]) == (
        "rejected",
        "mia",
        "not this time",
    )
    assert decided["decided_at"] is not None
    assert (decided["reason"], decided["escalation"]) == (None, True)
    again = await stores.workflow_approvals.decide("run-1:approve:1", "approved", by="tom")
    assert again is None
    row = await stores.workflow_approvals.locked("run-1:approve:1")
    assert row is not None
    assert row["status"] == "rejected"
    assert await stores.workflow_approvals.decide("run-9:approve:1", "approved", by="x") is None


async def test_pending_lists_an_approvers_approvals_by_id(fresh_database: str) -> None:
    """The read side the API and CLI list from (PostgreSQL only: the fake has no listing)."""
    async with migrated_pool(fresh_database, SCHEMA, ["accord.authz.migrations"]) as pool:
        async with pool.acquire() as conn, conn.transaction():
            stores = postgres_stores(conn)
            await stores.workflow_approvals.insert(approval("b", approvers=("tom",)))
            await stores.workflow_approvals.insert(approval("a", approvers=("mia", "tom")))
            await stores.workflow_approvals.insert(approval("c", approvers=("tom",)))
            await stores.workflow_approvals.decide("c", "approved", by="tom")
        toms = await workflow_approvals.pending(pool, approver="tom", after=None, limit=10)
        assert [r["approval_id"] for r in toms] == ["a", "b"]
        mias = await workflow_approvals.pending(pool, approver="mia", after=None, limit=10)
        assert [r["approval_id"] for r in mias] == ["a"]
        page = await workflow_approvals.pending(pool, approver=None, after="a", limit=1)
        assert [r["approval_id"] for r in page] == ["b"]
        got = await workflow_approvals.get(pool, "c")
        assert got is not None
        assert got["status"] == "approved"
