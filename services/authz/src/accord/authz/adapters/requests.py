"""The access_requests table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from accord.authz.ports import access_request
from accord.events import AccessRequested
from accord.runtime.sql import Conditions

_COLUMNS = (
    "request_id, requester_id, principal_id, application, entitlement, justification,"
    " duration_seconds, status, reasons, created_at, decided_at"
)


async def get(pool: asyncpg.Pool, request_id: str) -> dict[str, Any] | None:
    """One request as a dict."""
    row = await pool.fetchrow(
        f"SELECT {_COLUMNS} FROM access_requests WHERE request_id = $1",  # noqa: S608
        request_id,
    )
    return dict(row) if row else None


async def search(
    pool: asyncpg.Pool,
    *,
    involving: str | None,
    status: str | None,
    after_id: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Requests in id order after a cursor; `involving` keeps those a user asked or is for."""
    conditions = Conditions()
    conditions.add("(requester_id = {0} OR principal_id = {0})", involving)
    conditions.add("status = {0}", status)
    conditions.add("request_id > {0}", after_id)
    limit_at = conditions.placeholder(limit)
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM access_requests WHERE {conditions.where}"  # noqa: S608
        f" ORDER BY request_id LIMIT {limit_at}",
        *conditions.args,
    )
    return [dict(r) for r in rows]


@dataclass(frozen=True)
class PostgresRequests:
    """The access_requests table in one transaction (accord.authz.ports.Requests)."""

    conn: asyncpg.Connection

    async def insert(self, request: AccessRequested) -> bool:
        """Record a new request; False if its id is already known."""
        result = await self.conn.execute(
            "INSERT INTO access_requests (request_id, requester_id, principal_id, application,"
            " entitlement, justification, duration_seconds) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT (request_id) DO NOTHING",
            request.request_id,
            request.requester_id,
            request.principal_id,
            request.resource.application,
            request.resource.entitlement,
            request.justification,
            request.duration_seconds,
        )
        return bool(result == "INSERT 0 1")

    async def waiting_for(self, principal_id: str) -> list[AccessRequested]:
        """The requests for this principal not decided yet (they waited for it), oldest first."""
        rows = await self.conn.fetch(
            "SELECT request_id, requester_id, principal_id, application, entitlement,"
            " justification, duration_seconds FROM access_requests"
            " WHERE principal_id = $1 AND status = 'pending' ORDER BY created_at, request_id",
            principal_id,
        )
        return [access_request(r) for r in rows]

    async def decide(self, request_id: str, status: str, reasons: list[str]) -> bool:
        """Set the decision of a pending request; False if it was already decided."""
        result = await self.conn.execute(
            "UPDATE access_requests SET status = $2, reasons = $3, decided_at = now()"
            " WHERE request_id = $1 AND status = 'pending'",
            request_id,
            status,
            reasons,
        )
        return bool(result == "UPDATE 1")

    async def locked(self, request_id: str) -> dict[str, Any] | None:
        """One request, locked for this transaction."""
        row = await self.conn.fetchrow(
            f"SELECT {_COLUMNS} FROM access_requests WHERE request_id = $1 FOR UPDATE",  # noqa: S608
            request_id,
        )
        return dict(row) if row else None

    async def conclude(self, request_id: str, status: str) -> bool:
        """End a request waiting for approvals: approved, denied or expired."""
        result = await self.conn.execute(
            "UPDATE access_requests SET status = $2, decided_at = now()"
            " WHERE request_id = $1 AND status = 'approval_required'",
            request_id,
            status,
        )
        return bool(result == "UPDATE 1")
