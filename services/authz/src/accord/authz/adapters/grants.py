"""The grants table: who holds which entitlement, from when until when.

A time-bound grant ends at its expires_at, whatever the timer's delay: a grant past it is
not held (here, in the policies' entities, in `as_of` queries) even before the timer
records its end, and the timer records it as ended then, not when it ran.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from accord.authz.ports import NewGrant
from accord.events.catalogue import Provisioning

_COLUMNS = (
    "grant_id, request_id, principal_id, application, entitlement, provisioning, granted_at,"
    " expires_at, revoked_at, revoke_reason"
)
#: Held now: not revoked and not past its expiry (SQL, for the grants table's rows).
LIVE = "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"


async def search(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    principal_id: str | None,
    application: str | None,
    as_of: datetime | None,
    after: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Grants live now (or at `as_of`), by grant id after a cursor."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM grants WHERE"  # noqa: S608
        " ($1::text IS NULL OR principal_id = $1) AND ($2::text IS NULL OR application = $2)"
        f" AND ($3::timestamptz IS NULL AND {LIVE}"
        "      OR $3::timestamptz IS NOT NULL AND granted_at <= $3"
        "         AND (revoked_at IS NULL OR revoked_at > $3)"
        "         AND (expires_at IS NULL OR expires_at > $3))"
        " AND ($4::text IS NULL OR grant_id > $4) ORDER BY grant_id LIMIT $5",
        principal_id,
        application,
        as_of,
        after,
        limit,
    )
    return [_grant(r) for r in rows]


def provisioning_of(grant: dict[str, Any]) -> tuple[Provisioning, ...]:
    """The group memberships a grant carries."""
    return tuple(Provisioning.model_validate(p) for p in grant["provisioning"])


def _grant(row: asyncpg.Record) -> dict[str, Any]:
    grant = dict(row)
    grant["provisioning"] = json.loads(grant["provisioning"])
    return grant


@dataclass(frozen=True)
class PostgresGrants:
    """The grants table in one transaction (accord.authz.ports.Grants)."""

    conn: asyncpg.Connection

    async def insert(self, grant: NewGrant) -> bool:
        """Record a grant; False when it exists or the principal holds that entitlement already."""
        result = await self.conn.execute(
            "INSERT INTO grants (grant_id, request_id, principal_id, application, entitlement,"
            " provisioning, expires_at) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)"
            " ON CONFLICT DO NOTHING",
            grant.grant_id,
            grant.request_id,
            grant.principal_id,
            grant.application,
            grant.entitlement,
            json.dumps([p.model_dump() for p in grant.provisioning]),
            grant.expires_at,
        )
        return bool(result == "INSERT 0 1")

    async def revoke(self, grant_id: str, reason: str) -> dict[str, Any] | None:
        """End a live grant now; the grant, or None when it was not live (an expired grant
        ended at its expiry: the timer records that, see `expire`)."""
        row = await self.conn.fetchrow(
            f"UPDATE grants SET revoked_at = greatest(now(), granted_at), revoke_reason = $2"  # noqa: S608
            f" WHERE grant_id = $1 AND {LIVE} RETURNING {_COLUMNS}",
            grant_id,
            reason,
        )
        return _grant(row) if row else None

    async def expire(self, grant_id: str) -> dict[str, Any] | None:
        """Record that a grant past its expiry ended at its expires_at; the grant, or None when
        it is not due (not past its expiry, or its end recorded already)."""
        row = await self.conn.fetchrow(
            "UPDATE grants SET revoked_at = greatest(expires_at, granted_at),"  # noqa: S608
            " revoke_reason = 'expired' WHERE grant_id = $1 AND revoked_at IS NULL"
            f" AND expires_at <= now() RETURNING {_COLUMNS}",
            grant_id,
        )
        return _grant(row) if row else None

    async def due_of(self, principal_id: str, application: str, entitlement: str) -> list[str]:
        """The principal's grants of an entitlement past their expiry whose end is not recorded
        yet, locked for this transaction."""
        rows = await self.conn.fetch(
            "SELECT grant_id FROM grants WHERE principal_id = $1 AND application = $2"
            " AND entitlement = $3 AND revoked_at IS NULL AND expires_at <= now() FOR UPDATE",
            principal_id,
            application,
            entitlement,
        )
        return [r["grant_id"] for r in rows]

    async def live_of(self, principal_id: str) -> list[dict[str, Any]]:
        """The principal's live grants."""
        rows = await self.conn.fetch(
            f"SELECT {_COLUMNS} FROM grants WHERE principal_id = $1 AND {LIVE}"  # noqa: S608
            " ORDER BY granted_at",
            principal_id,
        )
        return [_grant(r) for r in rows]

    async def held(
        self, principal_id: str, application: str, entitlement: str
    ) -> dict[str, Any] | None:
        """The principal's live grant of an entitlement, or None. FOR SHARE: a revocation or
        expiry waits for this transaction, so its access.revoked follows the answer that
        names the grant instead of overtaking it."""
        row = await self.conn.fetchrow(
            f"SELECT {_COLUMNS} FROM grants WHERE principal_id = $1 AND application = $2"  # noqa: S608
            f" AND entitlement = $3 AND {LIVE} FOR SHARE",
            principal_id,
            application,
            entitlement,
        )
        return _grant(row) if row else None

    async def expired(self, *, limit: int) -> list[str]:
        """Grants past their expiry whose end is not recorded yet, locked for this transaction
        (others skip them)."""
        rows = await self.conn.fetch(
            "SELECT grant_id FROM grants WHERE revoked_at IS NULL AND expires_at <= now()"
            " ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED",
            limit,
        )
        return [r["grant_id"] for r in rows]
