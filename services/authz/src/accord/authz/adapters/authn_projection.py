"""Authz's projection of authn's events: lockouts and enrolled factors, per identity.

Fed by identity.locked / identity.unlocked and mfa.enrolled / mfa.removed. One row per
lockout and per credential, written so that any arrival order and any redelivery end in
the same state: an end (unlock, removal) always wins over its start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg


async def authn_attrs(conn: asyncpg.Connection, user_id: str) -> dict[str, Any]:
    """The principal's Cedar attributes from authn: `locked` (once it has had a lockout)
    and `factors`, the kinds it has a credential of (when it has one)."""
    row = await conn.fetchrow(
        "SELECT (SELECT bool_or(NOT ended) FROM principal_lockouts WHERE user_id = $1)"
        "   AS locked,"
        " (SELECT array_agg(DISTINCT factor ORDER BY factor) FROM principal_factors"
        "   WHERE user_id = $1 AND NOT removed) AS factors",
        user_id,
    )
    attrs: dict[str, Any] = {}
    if row is not None and row["locked"] is not None:
        attrs["locked"] = row["locked"]
    if row is not None and row["factors"]:
        attrs["factors"] = set(row["factors"])
    return attrs


@dataclass(frozen=True)
class PostgresAuthnFacts:
    """Lockouts and factors in one transaction (accord.authz.ports.AuthnFacts)."""

    conn: asyncpg.Connection

    async def lockout_started(self, user_id: str, lockout_id: str) -> None:
        """Project identity.locked (a lockout already ended stays ended)."""
        await self.conn.execute(
            "INSERT INTO principal_lockouts (user_id, lockout_id, ended) VALUES ($1, $2, false)"
            " ON CONFLICT (user_id, lockout_id) DO NOTHING",
            user_id,
            lockout_id,
        )

    async def lockout_ended(self, user_id: str, lockout_id: str) -> None:
        """Project identity.unlocked (also when it arrives before its identity.locked)."""
        await self.conn.execute(
            "INSERT INTO principal_lockouts (user_id, lockout_id, ended) VALUES ($1, $2, true)"
            " ON CONFLICT (user_id, lockout_id) DO UPDATE SET ended = true, updated_at = now()",
            user_id,
            lockout_id,
        )

    async def factor_enrolled(self, user_id: str, credential_id: str, factor: str) -> None:
        """Project mfa.enrolled (a credential already removed stays removed)."""
        await self.conn.execute(
            "INSERT INTO principal_factors (user_id, credential_id, factor, removed)"
            " VALUES ($1, $2, $3, false) ON CONFLICT (user_id, credential_id) DO NOTHING",
            user_id,
            credential_id,
            factor,
        )

    async def factor_removed(self, user_id: str, credential_id: str, factor: str) -> None:
        """Project mfa.removed (also when it arrives before its mfa.enrolled)."""
        await self.conn.execute(
            "INSERT INTO principal_factors (user_id, credential_id, factor, removed)"
            " VALUES ($1, $2, $3, true) ON CONFLICT (user_id, credential_id)"
            " DO UPDATE SET removed = true, updated_at = now()",
            user_id,
            credential_id,
            factor,
        )
