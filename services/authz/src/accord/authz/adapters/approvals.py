"""The approval_stages table: each request's chain, one row per stage, decided in order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from accord.authz.domain.approvals import Stage

_COLUMNS = (
    "s.request_id, s.stage, s.name, s.approvers, s.escalation, s.status, s.escalated, s.due_at,"
    " s.decided_by, s.comment, s.decided_at"
)


async def chain(conn: asyncpg.Connection | asyncpg.Pool, request_id: str) -> list[dict[str, Any]]:
    """Every stage of a request, in order."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM approval_stages s WHERE s.request_id = $1"  # noqa: S608
        " ORDER BY s.stage",
        request_id,
    )
    return [dict(r) for r in rows]


async def pending(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    approver: str | None,
    after: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Pending stages (those `approver` may decide, when given) with their request."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS}, r.requester_id, r.principal_id, r.application, r.entitlement,"  # noqa: S608
        " r.justification, r.duration_seconds, r.created_at"
        " FROM approval_stages s JOIN access_requests r USING (request_id)"
        " WHERE s.status = 'pending' AND ($1::text IS NULL OR $1 = ANY(s.approvers))"
        " AND ($2::text IS NULL OR s.request_id > $2) ORDER BY s.request_id LIMIT $3",
        approver,
        after,
        limit,
    )
    return [dict(r) for r in rows]


@dataclass(frozen=True)
class PostgresApprovals:
    """The approval_stages table in one transaction (accord.authz.ports.Approvals)."""

    conn: asyncpg.Connection

    async def insert_chain(
        self, request_id: str, stages: Sequence[Stage], first_due: datetime | None
    ) -> None:
        """Record the chain; the first stage pending, the others waiting."""
        await self.conn.executemany(
            "INSERT INTO approval_stages (request_id, stage, name, approvers, escalation, status,"
            " due_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            [
                (
                    request_id,
                    s.number,
                    s.name,
                    list(s.approvers),
                    list(s.escalation),
                    "pending" if s.number == 1 else "waiting",
                    first_due if s.number == 1 else None,
                )
                for s in stages
            ],
        )

    async def pending_stage(self, request_id: str) -> dict[str, Any] | None:
        """The stage waiting for a decision, locked for this transaction."""
        row = await self.conn.fetchrow(
            f"SELECT {_COLUMNS} FROM approval_stages s"  # noqa: S608
            " WHERE s.request_id = $1 AND s.status = 'pending' FOR UPDATE",
            request_id,
        )
        return dict(row) if row else None

    async def settle(
        self,
        request_id: str,
        stage: int,
        status: str,
        *,
        by: str | None = None,
        comment: str | None = None,
    ) -> None:
        """Close a pending stage as approved, denied or expired."""
        await self.conn.execute(
            "UPDATE approval_stages SET status = $3, decided_by = $4, comment = $5,"
            " decided_at = now() WHERE request_id = $1 AND stage = $2 AND status = 'pending'",
            request_id,
            stage,
            status,
            by,
            comment,
        )

    async def names(self, request_id: str, user_id: str) -> bool:
        """Whether the request's chain names the user: an approver of a stage (now or
        escalated to), or who decided one."""
        found = await self.conn.fetchval(
            "SELECT 1 FROM approval_stages WHERE request_id = $1 AND ($2 = ANY(approvers)"
            " OR $2 = ANY(escalation) OR decided_by = $2) LIMIT 1",
            request_id,
            user_id,
        )
        return found is not None

    async def skip_rest(self, request_id: str) -> None:
        """The stages a request never reached, once it ended before them (denied, expired)."""
        await self.conn.execute(
            "UPDATE approval_stages SET status = 'skipped'"
            " WHERE request_id = $1 AND status = 'waiting'",
            request_id,
        )

    async def open_stage(
        self, request_id: str, stage: int, due_at: datetime | None
    ) -> dict[str, Any] | None:
        """Make a waiting stage pending; the stage, or None when the chain has no such stage."""
        row = await self.conn.fetchrow(
            "UPDATE approval_stages s SET status = 'pending', due_at = $3"  # noqa: S608 - constants
            f" WHERE request_id = $1 AND stage = $2 AND status = 'waiting' RETURNING {_COLUMNS}",
            request_id,
            stage,
            due_at,
        )
        return dict(row) if row else None

    async def escalate(
        self, request_id: str, stage: int, due_at: datetime | None
    ) -> dict[str, Any] | None:
        """Hand an overdue stage to its escalation approvers."""
        row = await self.conn.fetchrow(
            "UPDATE approval_stages s SET approvers = escalation, escalated = true, due_at = $3"  # noqa: S608
            " WHERE request_id = $1 AND stage = $2 AND status = 'pending'"
            f" RETURNING {_COLUMNS}",
            request_id,
            stage,
            due_at,
        )
        return dict(row) if row else None

    async def overdue(self, *, limit: int) -> list[dict[str, Any]]:
        """Pending stages past their deadline, locked for this transaction."""
        rows = await self.conn.fetch(
            f"SELECT {_COLUMNS} FROM approval_stages s"  # noqa: S608
            " WHERE s.status = 'pending' AND s.due_at <= now()"
            " ORDER BY s.due_at LIMIT $1 FOR UPDATE SKIP LOCKED",
            limit,
        )
        return [dict(r) for r in rows]

    async def chain(self, request_id: str) -> list[dict[str, Any]]:
        """Every stage of a request, in order."""
        return await chain(self.conn, request_id)
