"""The AccessPasses port (accord.authn.ports) over PostgreSQL, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from accord.authn.domain.access_pass import AccessPass
from accord.events import Envelope
from accord.runtime.outbox import enqueue


def _pass(row: asyncpg.Record) -> AccessPass:
    """A row as a pass: the table's columns are the dataclass's fields."""
    return AccessPass(**dict(row))


@dataclass(frozen=True)
class PostgresAccessPasses:
    """Passes in `access_passes`, grants in `enrolment_grants`, events in the outbox of
    `schema` (the service's)."""

    conn: asyncpg.Connection
    schema: str

    async def user_named(self, user_name: str) -> str | None:
        found: str | None = await self.conn.fetchval(
            "SELECT user_id FROM identities WHERE user_name = $1 AND status <> 'deleted'"
            " ORDER BY user_id LIMIT 1",
            user_name,
        )
        return found

    async def has_active_factor(self, user_id: str) -> bool:
        return bool(
            await self.conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM mfa_credentials"
                " WHERE user_id = $1 AND status = 'active')",
                user_id,
            )
        )

    async def put(self, issued: AccessPass) -> AccessPass | None:
        previous = await self.revoke(issued.user_id)
        await self.conn.execute(
            "INSERT INTO access_passes (pass_id, user_id, key_id, code_hash, starts_at,"
            " expires_at, one_time, created_by, created_at, failed_attempts, used_at, locked_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            issued.pass_id,
            issued.user_id,
            issued.key_id,
            issued.code_hash,
            issued.starts_at,
            issued.expires_at,
            issued.one_time,
            issued.created_by,
            issued.created_at,
            issued.failed_attempts,
            issued.used_at,
            issued.locked_at,
        )
        return previous

    async def of_user(self, user_id: str, *, for_update: bool = False) -> AccessPass | None:
        query = "SELECT * FROM access_passes WHERE user_id = $1"
        if for_update:
            query = "SELECT * FROM access_passes WHERE user_id = $1 FOR UPDATE"
        row = await self.conn.fetchrow(query, user_id)
        return _pass(row) if row else None

    async def record(self, updated: AccessPass) -> None:
        await self.conn.execute(
            "UPDATE access_passes SET failed_attempts = $2, used_at = $3, locked_at = $4"
            " WHERE pass_id = $1",
            updated.pass_id,
            updated.failed_attempts,
            updated.used_at,
            updated.locked_at,
        )

    async def revoke(self, user_id: str) -> AccessPass | None:
        await self.conn.execute("DELETE FROM enrolment_grants WHERE user_id = $1", user_id)
        row = await self.conn.fetchrow(
            "DELETE FROM access_passes WHERE user_id = $1 RETURNING *", user_id
        )
        return _pass(row) if row else None

    async def add_grant(
        self, grant_hash: bytes, user_id: str, pass_id: str, expires_at: datetime
    ) -> None:
        await self.conn.execute(
            "INSERT INTO enrolment_grants (grant_hash, user_id, pass_id, expires_at)"
            " VALUES ($1, $2, $3, $4)",
            grant_hash,
            user_id,
            pass_id,
            expires_at,
        )

    async def grant_holds(self, grant_hash: bytes, user_id: str, now: datetime) -> bool:
        return bool(
            await self.conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM enrolment_grants"
                " WHERE grant_hash = $1 AND user_id = $2 AND expires_at > $3)",
                grant_hash,
                user_id,
                now,
            )
        )

    async def announce(self, events: Sequence[Envelope]) -> None:
        await enqueue(self.conn, self.schema, events)
