"""Authn's projection of identities (user.* events): status, name and e-mail."""

from __future__ import annotations

from typing import Literal

import asyncpg

Status = Literal["active", "inactive", "deleted"]


async def upsert(
    conn: asyncpg.Connection,
    user_id: str,
    *,
    sequence: int,
    status: Status,
    user_name: str | None = None,
    email: str | None = None,
    keep_profile: bool = False,
) -> bool:
    """Apply an identity event if it is newer than what is held; True when applied.

    `keep_profile` keeps the name and e-mail held (status events carry neither).
    """
    row = await conn.fetchval(
        """
        INSERT INTO identities (user_id, user_name, email, status, sequence)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (user_id) DO UPDATE SET
            user_name = CASE WHEN $6 THEN identities.user_name ELSE EXCLUDED.user_name END,
            email = CASE WHEN $6 THEN identities.email ELSE EXCLUDED.email END,
            status = EXCLUDED.status,
            sequence = EXCLUDED.sequence,
            updated_at = now()
        WHERE identities.sequence < EXCLUDED.sequence
        RETURNING 1
        """,
        user_id,
        user_name,
        email,
        status,
        sequence,
        keep_profile,
    )
    return row is not None


async def status_of(conn: asyncpg.Connection, user_id: str) -> Status | None:
    """The identity's status, None if authn has not seen it."""
    value: Status | None = await conn.fetchval(
        "SELECT status FROM identities WHERE user_id = $1", user_id
    )
    return value


async def user_name_of(conn: asyncpg.Connection, user_id: str) -> str | None:
    """The identity's login name, None if unknown."""
    value: str | None = await conn.fetchval(
        "SELECT user_name FROM identities WHERE user_id = $1", user_id
    )
    return value


async def email_of(conn: asyncpg.Connection, user_id: str) -> str | None:
    """The identity's e-mail address, None if unknown or absent."""
    value: str | None = await conn.fetchval(
        "SELECT email FROM identities WHERE user_id = $1", user_id
    )
    return value


async def find_by_email(conn: asyncpg.Connection, email: str) -> str | None:
    """The user_id of the one live identity with this e-mail (case-insensitive); None when
    there is none or more than one (an ambiguous subject is not acted on)."""
    rows = await conn.fetch(
        "SELECT user_id FROM identities WHERE lower(email) = lower($1) AND status <> 'deleted'"
        " LIMIT 2",
        email,
    )
    return str(rows[0]["user_id"]) if len(rows) == 1 else None
