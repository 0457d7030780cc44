"""Authz's projection of the directory: groups (nested) and the entities policies see.

Fed by group.* events. A member id that names a known group is a nested group; Cedar
computes the transitive closure from each entity's direct parents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from accord.authz.adapters.authn_projection import authn_attrs
from accord.authz.adapters.grants import LIVE
from accord.authz.catalogue import entitlement_id
from accord.authz.domain.model import Entity, EntityRef


@dataclass(frozen=True)
class PostgresGroups:
    """The group projection in one transaction (accord.authz.ports.Groups)."""

    conn: asyncpg.Connection

    async def upsert(self, group_id: str, display_name: str, *, sequence: int) -> None:
        """Project group.created / group.updated (newer sequences only)."""
        await self.conn.execute(
            "INSERT INTO directory_groups (group_id, display_name, sequence) VALUES ($1, $2, $3)"
            " ON CONFLICT (group_id) DO UPDATE SET display_name = EXCLUDED.display_name,"
            " deleted = false, sequence = EXCLUDED.sequence"
            " WHERE directory_groups.sequence < EXCLUDED.sequence",
            group_id,
            display_name,
            sequence,
        )

    async def delete(self, group_id: str, *, sequence: int) -> None:
        """Project group.deleted: the group and its memberships go."""
        await self.conn.execute(
            "UPDATE directory_groups SET deleted = true, sequence = $2"
            " WHERE group_id = $1 AND sequence < $2",
            group_id,
            sequence,
        )
        await self.conn.execute(
            "DELETE FROM group_members WHERE group_id = $1 OR member_id = $1", group_id
        )

    async def change_members(
        self, group_id: str, added: Sequence[str], removed: Sequence[str]
    ) -> None:
        """Project group.members_changed (idempotent)."""
        if added:
            await self.conn.executemany(
                "INSERT INTO group_members (group_id, member_id) VALUES ($1, $2)"
                " ON CONFLICT DO NOTHING",
                [(group_id, member) for member in added],
            )
        if removed:
            await self.conn.execute(
                "DELETE FROM group_members WHERE group_id = $1 AND member_id = ANY($2::text[])",
                group_id,
                list(removed),
            )


@dataclass(frozen=True)
class PostgresDirectory:
    """What policies and chains read, in one transaction (accord.authz.ports.Directory)."""

    conn: asyncpg.Connection

    async def principal_entities(self, user_id: str) -> list[Entity]:
        """The principal as Cedar sees it (attributes, lockout and factors, live entitlements,
        groups), and every group it is in, directly or through nesting, with their own parents."""
        row = await self.conn.fetchrow(
            "SELECT department, active, deleted FROM principals WHERE user_id = $1", user_id
        )
        groups = await self.conn.fetch(
            "WITH RECURSIVE up(id) AS ("
            "  SELECT group_id FROM group_members WHERE member_id = $1"
            "  UNION SELECT m.group_id FROM group_members m JOIN up ON m.member_id = up.id"
            ") SELECT up.id, array_agg(m.group_id) FILTER (WHERE m.group_id IS NOT NULL) AS parents"
            " FROM up LEFT JOIN group_members m ON m.member_id = up.id GROUP BY up.id",
            user_id,
        )
        direct = await self.conn.fetch(
            "SELECT group_id FROM group_members WHERE member_id = $1", user_id
        )
        held = await self.conn.fetch(
            f"SELECT application, entitlement FROM grants WHERE principal_id = $1 AND {LIVE}",  # noqa: S608
            user_id,
        )
        attrs: dict[str, Any] = {}
        if row is not None:
            attrs["active"] = row["active"] and not row["deleted"]
            if row["department"]:
                attrs["department"] = row["department"]
        attrs.update(await authn_attrs(self.conn, user_id))
        if held:
            attrs["entitlements"] = {
                EntityRef("Entitlement", entitlement_id(r["application"], r["entitlement"]))
                for r in held
            }
        principal = Entity(
            EntityRef("User", user_id),
            attrs,
            tuple(EntityRef("Group", r["group_id"]) for r in direct),
        )
        group_entities = [
            Entity(
                EntityRef("Group", r["id"]),
                {},
                tuple(EntityRef("Group", p) for p in r["parents"] or ()),
            )
            for r in groups
        ]
        return [principal, *group_entities]

    async def managers(self, user_id: str) -> dict[str, str | None]:
        """user_id -> manager for the user and their manager (two levels, for escalation)."""
        found: dict[str, str | None] = {}
        current: str | None = user_id
        for _ in range(2):
            if current is None:
                break
            manager = await self.conn.fetchval(
                "SELECT manager_id FROM principals WHERE user_id = $1", current
            )
            found[current] = manager
            current = manager
        return found

    async def members(self, group_id: str) -> list[str]:
        """The users in a group, nested groups included."""
        rows = await self.conn.fetch(
            "WITH RECURSIVE inside(id) AS ("
            "  SELECT member_id FROM group_members WHERE group_id = $1"
            "  UNION SELECT m.member_id FROM group_members m JOIN inside ON m.group_id = inside.id"
            ") SELECT id FROM inside WHERE id NOT IN (SELECT group_id FROM directory_groups)"
            " ORDER BY id",
            group_id,
        )
        return [r["id"] for r in rows]
