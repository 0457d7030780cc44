"""The workflow_approvals table: approvals lifecycle workflows ask for, one row per ask."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from accord.authz.ports import NewWorkflowApproval

COLUMNS = (
    "approval_id, user_id, workflow_id, run_id, task_id, asked, approvers, reason, escalation,"
    " expires_at, correlation_id, status, decided_by, comment, decided_at, created_at"
)


async def pending(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    approver: str | None,
    after: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Pending workflow approvals (those `approver` may decide, when given), by id."""
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM workflow_approvals"  # noqa: S608 - constants
        " WHERE status = 'pending' AND ($1::text IS NULL OR $1 = ANY(approvers))"
        " AND ($2::text IS NULL OR approval_id > $2) ORDER BY approval_id LIMIT $3",
        approver,
        after,
        limit,
    )
    return [dict(r) for r in rows]


async def get(conn: asyncpg.Connection | asyncpg.Pool, approval_id: str) -> dict[str, Any] | None:
    """One workflow approval, as it is now."""
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM workflow_approvals WHERE approval_id = $1",  # noqa: S608
        approval_id,
    )
    return dict(row) if row else None


@dataclass(frozen=True)
class PostgresWorkflowApprovals:
    """The workflow_approvals table in one transaction (accord.authz.ports.WorkflowApprovals)."""

    conn: asyncpg.Connection

    async def insert(self, approval: NewWorkflowApproval) -> bool:
        """Record a pending approval; False when its id is known already."""
        inserted = await self.conn.fetchval(
            "INSERT INTO workflow_approvals (approval_id, user_id, workflow_id, run_id, task_id,"
            " asked, approvers, reason, escalation, expires_at, correlation_id)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            " ON CONFLICT (approval_id) DO NOTHING RETURNING 1",
            approval.approval_id,
            approval.user_id,
            approval.workflow_id,
            approval.run_id,
            approval.task_id,
            list(approval.asked),
            list(approval.approvers),
            approval.reason,
            approval.escalation,
            approval.expires_at,
            approval.correlation_id,
        )
        return inserted is not None

    async def locked(self, approval_id: str) -> dict[str, Any] | None:
        """One approval, locked for this transaction."""
        row = await self.conn.fetchrow(
            f"SELECT {COLUMNS} FROM workflow_approvals WHERE approval_id = $1"  # noqa: S608
            " FOR UPDATE",
            approval_id,
        )
        return dict(row) if row else None

    async def decide(
        self,
        approval_id: str,
        status: str,
        *,
        by: str,
        comment: str | None = None,
    ) -> dict[str, Any] | None:
        """Close a pending approval now; None when it was not pending."""
        row = await self.conn.fetchrow(
            "UPDATE workflow_approvals SET status = $2, decided_by = $3, comment = $4,"  # noqa: S608
            " decided_at = now() WHERE approval_id = $1 AND status = 'pending'"
            f" RETURNING {COLUMNS}",
            approval_id,
            status,
            by,
            comment,
        )
        return dict(row) if row else None
