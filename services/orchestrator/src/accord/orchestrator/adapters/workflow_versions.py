"""The workflow versions runs started with, in the workflow_versions table (migration 0018),
bound to the connection of the caller's transaction like the other adapters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from accord.orchestrator.workflows.definitions import Workflow
from accord.orchestrator.workflows.loader import canonical_json, kept_definition


@dataclass(frozen=True)
class PostgresVersions:
    """`VersionStore` on the workflow_versions table."""

    conn: asyncpg.Connection

    async def record(self, workflow: Workflow, version: str, seen_at: datetime) -> None:
        await self.conn.execute(
            "INSERT INTO workflow_versions (workflow_id, version, definition, first_seen_at)"
            " VALUES ($1, $2, $3::jsonb, $4) ON CONFLICT (workflow_id, version) DO NOTHING",
            workflow.id,
            version,
            canonical_json(workflow),
            seen_at,
        )

    async def definition(self, workflow_id: str, version: str) -> Workflow | None:
        text: str | None = await self.conn.fetchval(
            "SELECT definition FROM workflow_versions WHERE workflow_id = $1 AND version = $2",
            workflow_id,
            version,
        )
        return kept_definition(text, version) if text is not None else None
