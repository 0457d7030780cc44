"""PostgreSQL table of authz's principal projection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from accord.authz.adapters.authn_projection import authn_attrs
from accord.authz.domain.principals import PrincipalFacts


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
    attrs.update(await authn_attrs(conn, user_id))
    if "factors" in attrs:
        attrs["factors"] = sorted(attrs["factors"])
    return attrs


@dataclass(frozen=True)
class PostgresPrincipals:
    """The principals table in one transaction (accord.authz.ports.Principals)."""

    conn: asyncpg.Connection

    async def upsert(self, user_id: str, facts: PrincipalFacts) -> None:
        """Project an identity event; older sequences than the stored one change nothing.

        The facts the event does not set (`facts.keep`: the profile of a status event,
        what a partial user.updated does not list) stay as they are.
        """
        await self.conn.execute(
            "INSERT INTO principals (user_id, department, active, deleted, sequence, manager_id,"
            " user_name) VALUES ($1, $2, $3, $4, $5, $7, $8)"
            " ON CONFLICT (user_id) DO UPDATE SET"
            "   department = CASE WHEN 'department' = ANY($6::text[])"
            "     THEN principals.department ELSE EXCLUDED.department END,"
            "   manager_id = CASE WHEN 'manager_id' = ANY($6::text[])"
            "     THEN principals.manager_id ELSE EXCLUDED.manager_id END,"
            "   user_name = CASE WHEN 'user_name' = ANY($6::text[])"
            "     THEN principals.user_name ELSE EXCLUDED.user_name END,"
            "   active = CASE WHEN 'active' = ANY($6::text[])"
            "     THEN principals.active ELSE EXCLUDED.active END,"
            "   deleted = EXCLUDED.deleted, sequence = EXCLUDED.sequence, updated_at = now()"
            " WHERE principals.sequence < EXCLUDED.sequence",
            user_id,
            facts.department,
            facts.active,
            facts.deleted,
            facts.sequence,
            sorted(facts.keep),
            facts.manager_id,
            facts.user_name,
        )

    async def lock(self, user_id: str) -> None:
        """Serialise an identity event and an access request of one principal (two topics): a
        request that finds no principal waits, and the principal's event then finds it."""
        await self.conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('authz-principal:' || $1))", user_id
        )

    async def known(self, user_id: str) -> bool:
        """Whether any identity event of the principal has been projected."""
        found = await self.conn.fetchval("SELECT 1 FROM principals WHERE user_id = $1", user_id)
        return found is not None
