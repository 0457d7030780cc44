"""The queue of workflow I/O effects on the workflow_effects table (migration 0015), bound to
the connection of the caller's transaction like the other adapters; the task sagas on the
saga machinery; and the engine's stores on one connection."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from accord.orchestrator.adapters import store
from accord.orchestrator.adapters.postgres import PostgresRegistry
from accord.orchestrator.adapters.workflow_callbacks import PostgresCallbacks
from accord.orchestrator.adapters.workflow_runs import workflow_stores
from accord.orchestrator.adapters.workflow_versions import PostgresVersions
from accord.orchestrator.workflows import runs
from accord.orchestrator.workflows.effect_queue import (
    QueuedEffect,
    decode_command,
    encode_command,
)
from accord.orchestrator.workflows.engine import EngineStores
from accord.orchestrator.workflows.ports import TaskSagas


@dataclass(frozen=True)
class PostgresEffectQueue:
    """`EffectQueue` on the workflow_effects table."""

    conn: asyncpg.Connection

    async def enqueue(self, command: runs.Effect, identity_id: str, due_at: datetime) -> None:
        await self.conn.execute(
            "INSERT INTO workflow_effects (effect_id, run_id, task_id, identity_id, command,"
            " due_at) VALUES ($1, $2, $3, $4, $5::jsonb, $6) ON CONFLICT (effect_id) DO NOTHING",
            command.idempotency_key,
            command.run_id,
            command.task_id or "-",
            identity_id,
            json.dumps(encode_command(command)),
            due_at,
        )

    async def claim_due(self, now: datetime, lease: timedelta, limit: int) -> list[QueuedEffect]:
        rows = await self.conn.fetch(
            "UPDATE workflow_effects SET due_at = $2 WHERE effect_id IN"
            " (SELECT effect_id FROM workflow_effects WHERE due_at <= $1"
            "  ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED)"
            " RETURNING effect_id, identity_id, command, due_at",
            now,
            now + lease,
            limit,
        )
        claimed = [
            QueuedEffect(decode_command(json.loads(r["command"])), r["identity_id"], now)
            for r in rows
        ]
        return sorted(claimed, key=lambda q: q.effect_id)

    async def done(self, effect_id: str) -> bool:
        result: str = await self.conn.execute(
            "DELETE FROM workflow_effects WHERE effect_id = $1", effect_id
        )
        return result != "DELETE 0"

    async def cancel(self, run_id: str, task_id: str | None = None) -> None:
        await self.conn.execute(
            "DELETE FROM workflow_effects WHERE run_id = $1 AND ($2::text IS NULL OR task_id = $2)",
            run_id,
            task_id,
        )


def engine_stores(conn: asyncpg.Connection, sagas: TaskSagas) -> EngineStores:
    """The workflow engine's stores inside the transaction open on `conn`; `sagas`: the
    task sagas on the handlers' ports of the same connection
    (`handlers.workflows.SagaTasks`)."""
    runs_store, wakeups, timers = workflow_stores(conn)
    return EngineStores(
        registry=PostgresRegistry(conn),
        runs=runs_store,
        wakeups=wakeups,
        timers=timers,
        effects=PostgresEffectQueue(conn),
        versions=PostgresVersions(conn),
        sagas=sagas,
        callbacks=PostgresCallbacks(conn),
    )


@dataclass(frozen=True)
class RegistryDirectory:
    """The effects' `Directory` (whom a mail goes to or names) on the identity registry,
    each lookup on a connection of the pool of its own (effects run outside transactions).
    `pool` gives the service's pool, which exists once the service started."""

    pool: Callable[[], asyncpg.Pool]

    async def email_of(self, user_id: str) -> str | None:
        profile = await self._profile(user_id)
        email = profile.get("email") if profile else None
        return str(email) if email else None

    async def name_of(self, user_id: str) -> str | None:
        profile = await self._profile(user_id)
        if not profile:
            return None
        if profile.get("display_name"):
            return str(profile["display_name"])
        parts = [profile.get("given_name"), profile.get("family_name")]
        named = " ".join(str(part) for part in parts if part)
        return named or None

    async def _profile(self, user_id: str) -> dict[str, Any] | None:
        entry = await store.get_identity(self.pool(), user_id)
        if entry is None or entry["status"] == "deleted":
            return None
        profile: dict[str, Any] = entry["profile"]
        return profile
