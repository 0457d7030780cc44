"""Sign-ins, lockouts and the approval requests that end them (PostgreSQL)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from accord.authn.domain.lockout import ApprovalRequest, Lockout
from accord.runtime.sql import Conditions


async def record_failure(
    conn: asyncpg.Connection,
    event_id: str,
    user_id: str,
    occurred_at: datetime,
    *,
    idp: str,
    reason: str,
) -> bool:
    """Remember one failed sign-in; False if this event was counted already."""
    row = await conn.fetchval(
        """
        INSERT INTO sign_in_failures (event_id, user_id, occurred_at, idp, reason)
        VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING 1
        """,
        event_id,
        user_id,
        occurred_at,
        idp,
        reason,
    )
    return row is not None


async def record_success(
    conn: asyncpg.Connection, event_id: str, user_id: str, occurred_at: datetime
) -> None:
    """Remember one successful sign-in (once per event): it ends the run before it."""
    await conn.execute(
        "INSERT INTO sign_in_successes (event_id, user_id, occurred_at) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING",
        event_id,
        user_id,
        occurred_at,
    )


async def sign_ins_between(
    conn: asyncpg.Connection, user_id: str, start: datetime | None, end: datetime | None
) -> tuple[list[datetime], list[datetime]]:
    """The times of the identity's failures (after it was last settled) and successes
    between `start` and `end` (None: no bound)."""
    failures = await conn.fetch(
        "SELECT occurred_at FROM sign_in_failures WHERE user_id = $1"
        " AND ($2::timestamptz IS NULL OR occurred_at >= $2)"
        " AND ($3::timestamptz IS NULL OR occurred_at <= $3)"
        " AND occurred_at > coalesce("
        "   (SELECT settled_at FROM sign_in_settled WHERE user_id = $1), '-infinity')",
        user_id,
        start,
        end,
    )
    successes = await conn.fetch(
        "SELECT occurred_at FROM sign_in_successes WHERE user_id = $1"
        " AND ($2::timestamptz IS NULL OR occurred_at >= $2)"
        " AND ($3::timestamptz IS NULL OR occurred_at <= $3)",
        user_id,
        start,
        end,
    )
    return [r["occurred_at"] for r in failures], [r["occurred_at"] for r in successes]


async def settled_at(conn: asyncpg.Connection, user_id: str) -> datetime | None:
    """The time of the identity's latest lockout or unlock: no failure before it counts."""
    value: datetime | None = await conn.fetchval(
        "SELECT settled_at FROM sign_in_settled WHERE user_id = $1", user_id
    )
    return value


async def settle(conn: asyncpg.Connection, user_id: str, at: datetime) -> None:
    """Start the identity's count again for good at `at` (a lockout, an unlock): failures at
    or before it are forgotten, and one consumed later is not counted."""
    await conn.execute(
        "INSERT INTO sign_in_settled (user_id, settled_at) VALUES ($1, $2)"
        " ON CONFLICT (user_id) DO UPDATE"
        " SET settled_at = greatest(sign_in_settled.settled_at, EXCLUDED.settled_at)",
        user_id,
        at,
    )
    await conn.execute(
        "DELETE FROM sign_in_failures WHERE user_id = $1 AND occurred_at <= $2", user_id, at
    )


async def prune_failures(conn: asyncpg.Connection, before: datetime) -> int:
    """Drop every failure and success older than `before` (outside any window); how many."""
    dropped = 0
    for table in ("sign_in_failures", "sign_in_successes"):
        status: str = await conn.execute(
            f"DELETE FROM {table} WHERE occurred_at < $1",  # noqa: S608 - the two names above
            before,
        )
        dropped += int(status.split()[-1])
    return dropped


async def lock_identity_row(conn: asyncpg.Connection, user_id: str) -> None:
    """Serialise authn's decisions about one identity (two failures at once lock once; two
    identity events of two topics at once see each other)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('authn-lockout:' || $1))", user_id)


async def open_lockout(conn: asyncpg.Connection, user_id: str) -> asyncpg.Record | None:
    """The identity's open lockout, if any."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT * FROM lockouts WHERE user_id = $1 AND unlocked_at IS NULL", user_id
    )
    return row


async def insert_lockout(
    conn: asyncpg.Connection,
    lockout_id: str,
    user_id: str,
    reason: str,
    failures: int,
    locked_at: datetime,
) -> bool:
    """Open a lockout; False when this one exists already (a redelivery)."""
    row = await conn.fetchval(
        """
        INSERT INTO lockouts (lockout_id, user_id, reason, failures, locked_at)
        VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING 1
        """,
        lockout_id,
        user_id,
        reason,
        failures,
        locked_at,
    )
    return row is not None


async def close_lockout(conn: asyncpg.Connection, lockout_id: str, request_id: str) -> bool:
    """End a lockout by an approved request; False if it was not open."""
    row = await conn.fetchval(
        """
        UPDATE lockouts SET unlocked_at = now(), unlock_request_id = $2
        WHERE lockout_id = $1 AND unlocked_at IS NULL RETURNING 1
        """,
        lockout_id,
        request_id,
    )
    return row is not None


async def list_lockouts(
    conn: asyncpg.Connection,
    *,
    user_id: str | None,
    open_only: bool,
    before: datetime | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Lockouts, newest first, filtered; `before` pages by lock time."""
    where = Conditions()
    where.add("user_id = {0}", user_id)
    where.add("locked_at < {0}", before)
    if open_only:
        where.clauses.append("unlocked_at IS NULL")
    limit_at = where.placeholder(limit)
    rows = await conn.fetch(
        f"SELECT * FROM lockouts WHERE {where.where}"  # noqa: S608 - code-written SQL only
        f" ORDER BY locked_at DESC, lockout_id LIMIT {limit_at}",
        *where.args,
    )
    return [dict(r) for r in rows]


async def get_lockout(conn: asyncpg.Connection, lockout_id: str) -> dict[str, Any] | None:
    """One lockout by id."""
    row = await conn.fetchrow("SELECT * FROM lockouts WHERE lockout_id = $1", lockout_id)
    return dict(row) if row else None


# --- approval requests filed with authz --------------------------------------------------


async def insert_request(
    conn: asyncpg.Connection,
    request_id: str,
    user_id: str,
    kind: str,
    requester_id: str,
    lockout_id: str | None,
) -> bool:
    """Remember a request filed with authz; False if it exists (an idempotent retry)."""
    row = await conn.fetchval(
        """
        INSERT INTO approval_requests (request_id, user_id, kind, requester_id, lockout_id)
        VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING 1
        """,
        request_id,
        user_id,
        kind,
        requester_id,
        lockout_id,
    )
    return row is not None


async def get_request(conn: asyncpg.Connection, request_id: str) -> dict[str, Any] | None:
    """A request authn filed, locked for update; None if authn did not file it."""
    row = await conn.fetchrow(
        "SELECT * FROM approval_requests WHERE request_id = $1 FOR UPDATE", request_id
    )
    return dict(row) if row else None


async def settle_request(conn: asyncpg.Connection, request_id: str, status: str) -> None:
    """Record what became of a request (granted, denied, done)."""
    await conn.execute(
        "UPDATE approval_requests SET status = $2, decided_at = now() WHERE request_id = $1",
        request_id,
        status,
    )


# --- the ports (accord.authn.ports) over the functions above -----------------------------


def _lockout(row: asyncpg.Record | dict[str, Any] | None) -> Lockout | None:
    if row is None:
        return None
    return Lockout(lockout_id=str(row["lockout_id"]), user_id=str(row["user_id"]))


@dataclass(frozen=True)
class PostgresLockouts:
    """The Lockouts port inside the caller's transaction."""

    conn: asyncpg.Connection

    async def serialise(self, user_id: str) -> None:
        await lock_identity_row(self.conn, user_id)

    async def record_failure(
        self, event_id: str, user_id: str, occurred_at: datetime, *, idp: str, reason: str
    ) -> bool:
        return await record_failure(
            self.conn, event_id, user_id, occurred_at, idp=idp, reason=reason
        )

    async def record_success(self, event_id: str, user_id: str, occurred_at: datetime) -> None:
        await record_success(self.conn, event_id, user_id, occurred_at)

    async def sign_ins_between(
        self, user_id: str, start: datetime | None, end: datetime | None
    ) -> tuple[list[datetime], list[datetime]]:
        return await sign_ins_between(self.conn, user_id, start, end)

    async def settled_at(self, user_id: str) -> datetime | None:
        return await settled_at(self.conn, user_id)

    async def settle(self, user_id: str, at: datetime) -> None:
        await settle(self.conn, user_id, at)

    async def open_lockout(self, user_id: str) -> Lockout | None:
        return _lockout(await open_lockout(self.conn, user_id))

    async def insert_lockout(
        self, lockout_id: str, user_id: str, reason: str, failures: int, locked_at: datetime
    ) -> bool:
        return await insert_lockout(self.conn, lockout_id, user_id, reason, failures, locked_at)

    async def get_lockout(self, lockout_id: str) -> Lockout | None:
        return _lockout(await get_lockout(self.conn, lockout_id))

    async def close_lockout(self, lockout_id: str, request_id: str) -> bool:
        return await close_lockout(self.conn, lockout_id, request_id)


@dataclass(frozen=True)
class PostgresRequests:
    """The Requests port inside the caller's transaction."""

    conn: asyncpg.Connection

    async def insert(
        self, request_id: str, user_id: str, kind: str, requester_id: str, lockout_id: str | None
    ) -> bool:
        return await insert_request(self.conn, request_id, user_id, kind, requester_id, lockout_id)

    async def get(self, request_id: str) -> ApprovalRequest | None:
        row = await get_request(self.conn, request_id)
        if row is None:
            return None
        lockout_id = row["lockout_id"]
        return ApprovalRequest(
            request_id=str(row["request_id"]),
            user_id=str(row["user_id"]),
            kind=str(row["kind"]),
            status=str(row["status"]),
            lockout_id=str(lockout_id) if lockout_id else None,
        )

    async def settle(self, request_id: str, status: str) -> None:
        await settle_request(self.conn, request_id, status)
