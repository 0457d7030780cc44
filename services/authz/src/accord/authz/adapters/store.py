"""PostgreSQL table of authz's principal projection."""

from __future__ import annotations

from typing import Any

import asyncpg


async def upsert_principal(
    conn: asyncpg.Connection,
    user_id: str,
    *,
    sequence: int,
    active: bool,
    department: str | None = None,
    deleted: bool = False,
    keep_department: bool = False,
) -> None:
    """Project an identity event; older sequences than the stored one change nothing."""
    await conn.execute(
        "INSERT INTO principals (user_id, department, active, deleted, sequence)"
        " VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (user_id) DO UPDATE SET"
        "   department = CASE WHEN $6 THEN principals.department ELSE EXCLUDED.department END,"
        "   active = EXCLUDED.active, deleted = EXCLUDED.deleted,"
        "   sequence = EXCLUDED.sequence, updated_at = now()"
        " WHERE principals.sequence < EXCLUDED.sequence",
        user_id,
        department,
        active,
        deleted,
        sequence,
        keep_department,
    )


async def principal_attrs(conn: asyncpg.Connection, user_id: str) -> dict[str, Any]:
    """The attributes policies see for a principal (none for an unknown one)."""
    row = await conn.fetchrow(
        "SELECT department, active, deleted FROM principals WHERE user_id = $1", user_id
    )
    if row is None:
        return {}
    attrs: dict[str, Any] = {"active": row["active"] and not row["deleted"]}
    if row["department"]:
        attrs["department"] = row["department"]
    return attrs
