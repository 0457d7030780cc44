"""Authn's projection of identities (user.* events): status, name and e-mail, kept as the
facts of accord.authn.domain.identity so that any order of the events ends the same."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from accord.authn.domain.identity import Change, Status, View
from accord.authn.domain.identity import apply as apply_change


async def view_of(conn: asyncpg.Connection, user_id: str) -> View | None:
    """The identity as authn holds it, None if authn has not seen it."""
    row = await conn.fetchrow(
        "SELECT user_name, email, profile_sequence, active, active_sequence, deleted,"
        " deleted_sequence FROM identities WHERE user_id = $1",
        user_id,
    )
    return View(**dict(row)) if row else None


async def apply(
    conn: asyncpg.Connection, user_id: str, change: Change
) -> tuple[View | None, View] | None:
    """Apply what one identity event says; (before, after), or None when it is older than
    every fact it sets. The caller serialises the identity's events (lock_identity_row)."""
    before = await view_of(conn, user_id)
    after = apply_change(before, change)
    if after is None:
        return None
    await conn.execute(
        """
        INSERT INTO identities (user_id, user_name, email, status, sequence, profile_sequence,
                                active, active_sequence, deleted, deleted_sequence)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        ON CONFLICT (user_id) DO UPDATE SET
            user_name = EXCLUDED.user_name, email = EXCLUDED.email, status = EXCLUDED.status,
            sequence = EXCLUDED.sequence, profile_sequence = EXCLUDED.profile_sequence,
            active = EXCLUDED.active, active_sequence = EXCLUDED.active_sequence,
            deleted = EXCLUDED.deleted, deleted_sequence = EXCLUDED.deleted_sequence,
            updated_at = now()
        """,
        user_id,
        after.user_name,
        after.email,
        after.status,
        after.sequence,
        after.profile_sequence,
        after.active,
        after.active_sequence,
        after.deleted,
        after.deleted_sequence,
    )
    return before, after


async def upsert(
    conn: asyncpg.Connection,
    user_id: str,
    *,
    sequence: int,
    status: Status,
    user_name: str | None = None,
    email: str | None = None,
) -> bool:
    """Set every fact of an identity at one sequence, as a snapshot (seeding, tests); True
    when it was newer than something held."""
    change = Change(
        sequence, (user_name, email), active=status == "active", deleted=status == "deleted"
    )
    return await apply(conn, user_id, change) is not None


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


@dataclass(frozen=True)
class PostgresIdentities:
    """The Identities port (accord.authn.ports) inside the caller's transaction."""

    conn: asyncpg.Connection

    async def apply(self, user_id: str, change: Change) -> tuple[View | None, View] | None:
        return await apply(self.conn, user_id, change)

    async def status_of(self, user_id: str) -> Status | None:
        return await status_of(self.conn, user_id)
