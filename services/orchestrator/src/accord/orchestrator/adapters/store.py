"""PostgreSQL tables of the orchestrator: the identity registry and the sagas."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from accord.orchestrator.domain.account_saga import SagaState, Step, TaskIntent, holds_identity
from accord.orchestrator.domain.identity import IdentityVersion
from accord.orchestrator.ports import (
    NO_ACCOUNT,
    ParkedEvent,
    SagaCount,
    Timer,
    UserNameTaken,
)
from accord.runtime.sql import Conditions

__all__ = ["NO_ACCOUNT", "ParkedEvent", "Timer", "UserNameTaken"]


async def lock_identity(conn: asyncpg.Connection, user_id: str) -> None:
    """Serialise every change of one identity, even before its row exists."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 42))", user_id)


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
        "SELECT sequence, status, status_sequence FROM identities WHERE user_id = $1 FOR UPDATE",
        user_id,
    )
    return IdentityVersion(row["sequence"], row["status"], row["status_sequence"]) if row else None


async def upsert_identity(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    user_name: str,
    profile: dict[str, Any],
    status: str,
    sequence: int,
    source: str,
    status_event: bool = True,
) -> None:
    """Create or replace a registry entry (`status_event`: a user.created, not an update)."""
    try:
        await conn.execute(
            "INSERT INTO identities (user_id, user_name, profile, status, sequence, source,"
            " status_sequence) VALUES ($1, $2, $3, $4, $5, $6, $5)"
            " ON CONFLICT (user_id) DO UPDATE SET user_name = EXCLUDED.user_name,"
            " profile = EXCLUDED.profile, status = EXCLUDED.status,"
            " sequence = EXCLUDED.sequence, source = EXCLUDED.source, updated_at = now(),"
            " status_sequence = CASE WHEN $7 THEN EXCLUDED.sequence"
            "   ELSE identities.status_sequence END",
            user_id,
            user_name,
            json.dumps(profile),
            status,
            sequence,
            source,
            status_event,
        )
    except asyncpg.UniqueViolationError:
        raise UserNameTaken(
            f"user name {user_name!r} already belongs to another identity"
        ) from None


async def set_identity_status(
    conn: asyncpg.Connection, user_id: str, status: str, sequence: int
) -> None:
    """Change an identity's status (the profile's `active` follows it).

    A deleted identity coming back needs its user name: UserNameTaken if a living identity
    has it meanwhile.
    """
    try:
        await conn.execute(
            "UPDATE identities SET status = $2, sequence = greatest(sequence, $3),"
            " status_sequence = greatest(status_sequence, $3), updated_at = now(),"
            " profile = jsonb_set(profile, '{active}', to_jsonb($2::text = 'active'))"
            " WHERE user_id = $1",
            user_id,
            status,
            sequence,
        )
    except asyncpg.UniqueViolationError:
        raise UserNameTaken(f"identity {user_id}'s user name belongs to another identity") from None


async def set_locked(conn: asyncpg.Connection, user_id: str, lockout_id: str | None) -> bool:
    """Mark an identity locked by a lockout, or unlocked (None); False if unknown."""
    status: str = await conn.execute(
        "UPDATE identities SET locked_by = $2, updated_at = now() WHERE user_id = $1",
        user_id,
        lockout_id,
    )
    return status.endswith(" 1")


async def end_lockout(conn: asyncpg.Connection, user_id: str, lockout_id: str) -> None:
    """Remember that a lockout ended (its identity.locked may still be on its way)."""
    await conn.execute(
        "INSERT INTO ended_lockouts (user_id, lockout_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        user_id,
        lockout_id,
    )


async def lockout_ended(conn: asyncpg.Connection, user_id: str, lockout_id: str) -> bool:
    """Whether the lockout's identity.unlocked has been consumed already."""
    found = await conn.fetchval(
        "SELECT 1 FROM ended_lockouts WHERE user_id = $1 AND lockout_id = $2", user_id, lockout_id
    )
    return found is not None


async def get_identity(
    conn: asyncpg.Connection | asyncpg.Pool, user_id: str
) -> dict[str, Any] | None:
    """A registry entry as a dict."""
    row = await conn.fetchrow(
        "SELECT user_id, user_name, profile, status, sequence, updated_at, locked_by"
        " FROM identities"
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
    if account_id == NO_ACCOUNT:
        # The target has no account to disable or enable: a create still in doubt is
        # settled (it never happened); nothing else to remember.
        await conn.execute(
            "DELETE FROM accounts WHERE user_id = $1 AND target = $2 AND state = 'requested'",
            user_id,
            target,
        )
        return
    # An update changes attributes, not whether the account is enabled.
    state = {"disable": "disabled", "create": "active", "enable": "active"}.get(operation)
    await conn.execute(
        "INSERT INTO accounts (user_id, target, account_id, state)"
        " VALUES ($1, $2, $3, coalesce($4, 'active'))"
        " ON CONFLICT (user_id, target) DO UPDATE SET account_id = EXCLUDED.account_id,"
        " state = coalesce($4, nullif(accounts.state, 'requested'), 'active'),"
        " updated_at = now()",
        user_id,
        target,
        account_id,
        state,
    )


async def record_requested(conn: asyncpg.Connection, user_id: str, targets: Iterable[str]) -> None:
    """Remember that targets were asked to create the identity's account: until a result
    proves otherwise, a leaver must treat it as there. One round trip for them all."""
    await conn.executemany(
        "INSERT INTO accounts (user_id, target, account_id, state)"
        " VALUES ($1, $2, NULL, 'requested') ON CONFLICT (user_id, target) DO NOTHING",
        [(user_id, target) for target in targets],
    )


async def account_targets(
    conn: asyncpg.Connection | asyncpg.Pool, user_id: str, *, requested: bool = False
) -> list[str]:
    """Targets where the identity holds an account; with `requested`, also those where a
    create was asked for and no result has settled it yet."""
    rows = await conn.fetch(
        "SELECT target FROM accounts WHERE user_id = $1 AND ($2 OR state <> 'requested')",
        user_id,
        requested,
    )
    return sorted(r["target"] for r in rows)


def _encode(state: SagaState) -> str:
    return json.dumps(
        {
            "steps": [
                {
                    "target": s.target,
                    "operation": s.operation,
                    "status": s.status,
                    "attempts": s.attempts,
                    "error": s.error,
                    "retryable": s.retryable,
                    "finished_at": s.finished_at.isoformat() if s.finished_at else None,
                    "group": s.group,
                }
                for s in state.steps
            ],
            "on_failure": state.on_failure,
            "retries_itself": state.retries_itself,
            "transient_rounds": state.transient_rounds,
            "failures": state.failures,
            "operation": state.operation,
            "intent": _encode_intent(state.intent),
        }
    )


def _encode_intent(intent: TaskIntent | None) -> dict[str, Any] | None:
    if intent is None:
        return None
    targets = list(intent.targets) if intent.targets is not None else None
    return {"operation": intent.operation, "targets": targets, "disabled": intent.disabled}


def _decode_intent(body: dict[str, Any] | None) -> TaskIntent | None:
    if body is None:
        return None
    targets = tuple(body["targets"]) if body["targets"] is not None else None
    return TaskIntent(body["operation"], targets, disabled=body["disabled"])


def _decode(row: asyncpg.Record) -> SagaState:
    body = json.loads(row["state"])
    steps = tuple(
        Step(
            target=s["target"],
            operation=s["operation"],
            status=s["status"],
            attempts=s["attempts"],
            error=s["error"],
            retryable=s.get("retryable", False),
            finished_at=datetime.fromisoformat(s["finished_at"]) if s["finished_at"] else None,
            group=s.get("group"),  # sagas saved before memberships have none
        )
        for s in body["steps"]
    )
    return SagaState(
        saga_id=row["saga_id"],
        user_id=row["subject_id"],
        saga_type=row["saga_type"],
        status=row["status"],
        started_at=row["started_at"],
        steps=steps,
        on_failure=body["on_failure"],
        retries_itself=body["retries_itself"],
        transient_rounds=body.get("transient_rounds", 0),
        failures=body["failures"],
        version=row["version"],
        operation=body.get("operation"),
        intent=_decode_intent(body.get("intent")),  # only workflow task sagas have one
    )


async def insert_saga(conn: asyncpg.Connection, state: SagaState, correlation_id: str) -> bool:
    """Record a new saga; False when a saga with this id exists already (a replayed start)."""
    result = await conn.execute(
        "INSERT INTO sagas (saga_id, saga_type, subject_id, correlation_id, status, state,"
        " started_at, holds_identity) VALUES ($1, $7, $2, $3, $4, $5, $6, $8)"
        " ON CONFLICT (saga_id) DO NOTHING",
        state.saga_id,
        state.user_id,
        correlation_id,
        state.status,
        _encode(state),
        state.started_at,
        state.saga_type,
        holds_identity(state),
    )
    return bool(result == "INSERT 0 1")


_SAGA_COLUMNS = (
    "saga_id, saga_type, subject_id, correlation_id, status, state, version, started_at, updated_at"
)


async def _text(conn: asyncpg.Connection, query: str, *args: object) -> str | None:
    """The value a one-column query selects, as text; None when it selects no row."""
    value = await conn.fetchval(query, *args)
    return str(value) if value is not None else None


async def load_saga(conn: asyncpg.Connection, saga_id: str) -> SagaState | None:
    """A saga, locked for the rest of the transaction."""
    row = await conn.fetchrow(
        f"SELECT {_SAGA_COLUMNS} FROM sagas WHERE saga_id = $1 FOR UPDATE",  # noqa: S608
        saga_id,
    )
    return _decode(row) if row else None


async def saga_status(conn: asyncpg.Connection, saga_id: str) -> str | None:
    """A saga's status, without locking it; None when there is no such saga."""
    return await _text(conn, "SELECT status FROM sagas WHERE saga_id = $1", saga_id)


async def busy(conn: asyncpg.Connection, user_id: str) -> bool:
    """Whether a saga holds the identity or waits for it (a new one must queue)."""
    found = await conn.fetchval(
        "SELECT 1 FROM sagas WHERE subject_id = $1"
        " AND (holds_identity OR status = 'queued') LIMIT 1",
        user_id,
    )
    return found is not None


async def holder(conn: asyncpg.Connection, user_id: str) -> str | None:
    """The saga that holds the identity, if one does."""
    return await _text(
        conn, "SELECT saga_id FROM sagas WHERE subject_id = $1 AND holds_identity", user_id
    )


async def saga_subject(conn: asyncpg.Connection, saga_id: str) -> str | None:
    """The identity a saga is about, without locking the saga."""
    return await _text(conn, "SELECT subject_id FROM sagas WHERE saga_id = $1", saga_id)


async def next_queued(conn: asyncpg.Connection, user_id: str) -> SagaState | None:
    """The identity's oldest queued saga, locked, unless a saga holds the identity."""
    row = await conn.fetchrow(
        f"SELECT {_SAGA_COLUMNS} FROM sagas WHERE subject_id = $1 AND status = 'queued'"  # noqa: S608
        " AND NOT EXISTS (SELECT 1 FROM sagas WHERE subject_id = $1 AND holds_identity)"
        " ORDER BY seq LIMIT 1 FOR UPDATE",
        user_id,
    )
    return _decode(row) if row else None


async def saga_correlation(conn: asyncpg.Connection, saga_id: str) -> str | None:
    """The correlation id a saga's events carry."""
    return await _text(conn, "SELECT correlation_id FROM sagas WHERE saga_id = $1", saga_id)


async def save_saga(conn: asyncpg.Connection, state: SagaState) -> None:
    """Write a saga's new state; refuses if someone else wrote it since it was read."""
    result = await conn.execute(
        "UPDATE sagas SET status = $2, state = $3, version = version + 1, updated_at = now(),"
        " holds_identity = $5 WHERE saga_id = $1 AND version = $4",
        state.saga_id,
        state.status,
        _encode(state),
        state.version,
        holds_identity(state),
    )
    if result != "UPDATE 1":
        raise asyncpg.exceptions.SerializationError(f"saga {state.saga_id} changed concurrently")


def _as_view(row: asyncpg.Record) -> dict[str, Any]:
    entry = dict(row)
    body = json.loads(entry.pop("state"))
    entry["steps"] = body["steps"]
    entry["on_failure"] = body["on_failure"]
    entry["failures"] = body["failures"]
    return entry


async def get_saga(pool: asyncpg.Pool, saga_id: str) -> dict[str, Any] | None:
    """A saga with its steps (attempts, errors, timings), for the API."""
    row = await pool.fetchrow(f"SELECT {_SAGA_COLUMNS} FROM sagas WHERE saga_id = $1", saga_id)  # noqa: S608 - constant columns
    return _as_view(row) if row else None


@dataclass(frozen=True)
class SagaFilter:
    """What a saga listing may be narrowed by; None means any."""

    status: str | None = None
    saga_type: str | None = None
    subject_id: str | None = None


async def list_sagas(
    pool: asyncpg.Pool, where: SagaFilter, *, limit: int, before: int | None = None
) -> list[dict[str, Any]]:
    """Sagas, newest first; `before` is the `seq` of the last saga of the previous page."""
    conditions = Conditions()
    conditions.add("status = {0}", where.status)
    conditions.add("saga_type = {0}", where.saga_type)
    conditions.add("subject_id = {0}", where.subject_id)
    conditions.add("seq < {0}", before)
    rows = await pool.fetch(
        f"SELECT seq, {_SAGA_COLUMNS} FROM sagas WHERE {conditions.where}"  # noqa: S608 - constant columns
        f" ORDER BY seq DESC LIMIT {conditions.placeholder(limit)}",
        *conditions.args,
    )
    return [_as_view(row) for row in rows]


async def saga_census(conn: asyncpg.Connection) -> list[SagaCount]:
    """The sagas counted by workflow and status, with each group's oldest last change: one
    aggregate over the table; no saga row leaves the database."""
    rows = await conn.fetch(
        "SELECT saga_type, status, count(*) AS sagas, min(updated_at) AS oldest_change"
        " FROM sagas GROUP BY saga_type, status"
        ' ORDER BY saga_type COLLATE "C", status COLLATE "C"'
    )
    return [SagaCount(r["saga_type"], r["status"], r["sagas"], r["oldest_change"]) for r in rows]


async def add_timer(conn: asyncpg.Connection, timer: Timer, due_at: datetime) -> None:
    """Schedule due work; scheduling the same timer twice keeps the first."""
    await conn.execute(
        "INSERT INTO timers (timer_id, kind, subject_id, saga_id, correlation_id, due_at,"
        " payload) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (timer_id) DO NOTHING",
        timer.timer_id,
        timer.kind,
        timer.subject_id,
        timer.saga_id,
        timer.correlation_id,
        due_at,
        json.dumps(timer.payload),
    )


async def drop_timers(conn: asyncpg.Connection, saga_id: str, kind: str) -> None:
    """Forget a saga's timers of one kind (work that is no longer due)."""
    await conn.execute("DELETE FROM timers WHERE saga_id = $1 AND kind = $2", saga_id, kind)


async def any_timer_due(conn: asyncpg.Connection) -> bool:
    """Whether a timer is due now: one statement outside a transaction, so an idle poll
    costs one round trip instead of BEGIN, the DELETE and COMMIT."""
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM timers WHERE due_at <= now())"))


async def take_due_timers(conn: asyncpg.Connection, limit: int) -> list[Timer]:
    """Remove and return due timers; other replicas skip the ones this transaction holds."""
    rows = await conn.fetch(
        "DELETE FROM timers WHERE timer_id IN (SELECT timer_id FROM timers"
        " WHERE due_at <= now() ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED)"
        " RETURNING timer_id, kind, subject_id, saga_id, correlation_id, payload",
        limit,
    )
    return [
        Timer(
            r["timer_id"],
            r["kind"],
            r["subject_id"],
            r["saga_id"],
            r["correlation_id"],
            json.loads(r["payload"]),
        )
        for r in rows
    ]


def now_utc() -> datetime:
    """The current time, for sagas."""
    return datetime.now(UTC)
