"""PostgreSQL tables of the orchestrator: the identity registry and the sagas."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from accord.orchestrator.domain.identity import IdentityVersion
from accord.orchestrator.domain.joiner import JoinerState


class UserNameTaken(Exception):
    """Another identity already holds this user name."""


async def lock_identity(conn: asyncpg.Connection, user_id: str) -> None:
    """Serialise every change of one identity, even before its row exists."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 42))", user_id)


@dataclass(frozen=True)
class ParkedEvent:
    """An identity event waiting for its identity."""

    event_id: str
    sequence: int
    event_type: str
    version: int
    data: dict[str, Any]
    source: str


async def park(
    conn: asyncpg.Connection,
    user_id: str,
    sequence: int,
    event_id: str,
    event_type: str,
    version: int,
    data: dict[str, Any],
    source: str,
) -> None:
    """Keep an event (data in the given schema version) until its identity exists."""
    await conn.execute(
        "INSERT INTO parked_events (event_id, user_id, sequence, event_type, version, data,"
        " source) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id) DO NOTHING",
        event_id,
        user_id,
        sequence,
        event_type,
        version,
        json.dumps(data),
        source,
    )


async def take_parked(conn: asyncpg.Connection, user_id: str) -> list[ParkedEvent]:
    """Remove and return an identity's parked events, in sequence order."""
    rows = await conn.fetch(
        "DELETE FROM parked_events WHERE user_id = $1"
        " RETURNING event_id, sequence, event_type, version, data, source",
        user_id,
    )
    parked = [
        ParkedEvent(
            r["event_id"],
            r["sequence"],
            r["event_type"],
            r["version"],
            json.loads(r["data"]),
            r["source"],
        )
        for r in rows
    ]
    return sorted(parked, key=lambda e: e.sequence)


async def identity_version(conn: asyncpg.Connection, user_id: str) -> IdentityVersion | None:
    """The identity's sequence and status, locked for the rest of the transaction."""
    row = await conn.fetchrow(
        "SELECT sequence, status FROM identities WHERE user_id = $1 FOR UPDATE", user_id
    )
    return IdentityVersion(row["sequence"], row["status"]) if row else None


async def upsert_identity(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    user_name: str,
    profile: dict[str, Any],
    status: str,
    sequence: int,
    source: str,
) -> None:
    """Create or replace a registry entry."""
    try:
        await conn.execute(
            "INSERT INTO identities (user_id, user_name, profile, status, sequence, source)"
            " VALUES ($1, $2, $3, $4, $5, $6)"
            " ON CONFLICT (user_id) DO UPDATE SET user_name = EXCLUDED.user_name,"
            " profile = EXCLUDED.profile, status = EXCLUDED.status,"
            " sequence = EXCLUDED.sequence, source = EXCLUDED.source, updated_at = now()",
            user_id,
            user_name,
            json.dumps(profile),
            status,
            sequence,
            source,
        )
    except asyncpg.UniqueViolationError:
        raise UserNameTaken(
            f"user name {user_name!r} already belongs to another identity"
        ) from None


async def set_identity_status(
    conn: asyncpg.Connection, user_id: str, status: str, sequence: int
) -> None:
    """Change an identity's status."""
    await conn.execute(
        "UPDATE identities SET status = $2, sequence = $3, updated_at = now() WHERE user_id = $1",
        user_id,
        status,
        sequence,
    )


async def get_identity(
    conn: asyncpg.Connection | asyncpg.Pool, user_id: str
) -> dict[str, Any] | None:
    """A registry entry as a dict."""
    row = await conn.fetchrow(
        "SELECT user_id, user_name, profile, status, sequence, updated_at FROM identities"
        " WHERE user_id = $1",
        user_id,
    )
    if row is None:
        return None
    entry = dict(row)
    entry["profile"] = json.loads(entry["profile"])
    return entry


async def record_account(
    conn: asyncpg.Connection, user_id: str, target: str, account_id: str, operation: str
) -> None:
    """Keep the registry's view of an identity's account in step with a provisioning result."""
    if operation == "delete":
        await conn.execute(
            "DELETE FROM accounts WHERE user_id = $1 AND target = $2", user_id, target
        )
        return
    state = "disabled" if operation == "disable" else "active"
    await conn.execute(
        "INSERT INTO accounts (user_id, target, account_id, state) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (user_id, target) DO UPDATE SET account_id = EXCLUDED.account_id,"
        " state = EXCLUDED.state, updated_at = now()",
        user_id,
        target,
        account_id,
        state,
    )


async def account_targets(conn: asyncpg.Connection, user_id: str) -> list[str]:
    """Targets where the identity holds an account."""
    rows = await conn.fetch("SELECT target FROM accounts WHERE user_id = $1", user_id)
    return sorted(r["target"] for r in rows)


def _encode(state: JoinerState) -> str:
    return json.dumps(
        {
            "pending": sorted(state.pending),
            "done": sorted(state.done),
            "failed": [list(f) for f in state.failed],
            "operation": state.operation,
        }
    )


async def insert_saga(conn: asyncpg.Connection, state: JoinerState, correlation_id: str) -> None:
    """Record a new saga."""
    await conn.execute(
        "INSERT INTO sagas (saga_id, saga_type, subject_id, correlation_id, status, state,"
        " started_at) VALUES ($1, $7, $2, $3, $4, $5, $6)",
        state.saga_id,
        state.user_id,
        correlation_id,
        state.status,
        _encode(state),
        state.started_at,
        state.saga_type,
    )


async def load_saga(conn: asyncpg.Connection, saga_id: str) -> JoinerState | None:
    """A saga, locked for the rest of the transaction."""
    row = await conn.fetchrow(
        "SELECT saga_id, saga_type, subject_id, status, state, version, started_at FROM sagas"
        " WHERE saga_id = $1 FOR UPDATE",
        saga_id,
    )
    if row is None:
        return None
    body = json.loads(row["state"])
    return JoinerState(
        saga_id=row["saga_id"],
        user_id=row["subject_id"],
        status=row["status"],
        started_at=row["started_at"],
        pending=frozenset(body["pending"]),
        done=frozenset(body["done"]),
        failed=tuple((t, r) for t, r in body["failed"]),
        version=row["version"],
        saga_type=row["saga_type"],
        operation=body.get("operation", "create"),
    )


async def save_saga(conn: asyncpg.Connection, state: JoinerState) -> None:
    """Write a saga's new state; refuses if someone else wrote it since it was read."""
    result = await conn.execute(
        "UPDATE sagas SET status = $2, state = $3, version = version + 1, updated_at = now()"
        " WHERE saga_id = $1 AND version = $4",
        state.saga_id,
        state.status,
        _encode(state),
        state.version,
    )
    if result != "UPDATE 1":
        raise asyncpg.exceptions.SerializationError(f"saga {state.saga_id} changed concurrently")


async def get_saga(pool: asyncpg.Pool, saga_id: str) -> dict[str, Any] | None:
    """A saga as a dict, for the API."""
    row = await pool.fetchrow(
        "SELECT saga_id, saga_type, subject_id, correlation_id, status, state, version,"
        " started_at, updated_at FROM sagas WHERE saga_id = $1",
        saga_id,
    )
    if row is None:
        return None
    entry = dict(row)
    entry["state"] = json.loads(entry["state"])
    return entry


def now_utc() -> datetime:
    """The current time, for sagas."""
    from datetime import UTC

    return datetime.now(UTC)
