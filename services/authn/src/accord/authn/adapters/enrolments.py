"""Enrolment requests from the joiner saga, until the identity enrols a factor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


async def requested(
    conn: asyncpg.Connection, user_id: str, factors: Sequence[str], saga_id: str | None
) -> None:
    """Record (once) that the identity is asked to enrol one of these factors; done already
    when it holds an active factor (its mfa.enrolled, another topic, may have come first)."""
    await conn.execute(
        """
        INSERT INTO enrolment_requests (user_id, factors, saga_id, enrolled_at)
        SELECT $1, $2, $3, min(confirmed_at) FROM mfa_credentials
        WHERE user_id = $1 AND status = 'active'
        ON CONFLICT (user_id) DO NOTHING
        """,
        user_id,
        list(factors),
        saga_id,
    )


async def enrolled(conn: asyncpg.Connection, user_id: str, at: datetime) -> None:
    """The identity enrolled a factor: its open request is done."""
    await conn.execute(
        "UPDATE enrolment_requests SET enrolled_at = $2 WHERE user_id = $1 AND enrolled_at IS NULL",
        user_id,
        at,
    )


async def of_user(conn: asyncpg.Connection, user_id: str) -> dict[str, Any] | None:
    """The identity's enrolment request, if the joiner saga made one."""
    row = await conn.fetchrow("SELECT * FROM enrolment_requests WHERE user_id = $1", user_id)
    return dict(row) if row else None


async def pending(
    conn: asyncpg.Connection, *, after: str | None, limit: int
) -> list[dict[str, Any]]:
    """Identities asked to enrol that have not yet, by user_id (keyset pages)."""
    rows = await conn.fetch(
        """
        SELECT * FROM enrolment_requests
        WHERE enrolled_at IS NULL AND ($1::text IS NULL OR user_id > $1)
        ORDER BY user_id LIMIT $2
        """,
        after,
        limit,
    )
    return [dict(r) for r in rows]


@dataclass(frozen=True)
class PostgresEnrolments:
    """The Enrolments port (accord.authn.ports) inside the caller's transaction."""

    conn: asyncpg.Connection

    async def requested(self, user_id: str, factors: Sequence[str], saga_id: str | None) -> None:
        await requested(self.conn, user_id, factors, saga_id)

    async def enrolled(self, user_id: str, at: datetime) -> None:
        await enrolled(self.conn, user_id, at)
