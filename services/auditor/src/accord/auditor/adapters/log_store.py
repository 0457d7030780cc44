"""The audit log table."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from accord.auditor.domain.chain import FIELDS, canonical, canonical_time, record_hash
from accord.auditor.domain.checkpoints import Checkpoint
from accord.auditor.domain.normalise import AuditEntry
from accord.runtime.sql import Conditions

WRITER_ROLE = "accord_audit_writer"
_COLUMNS = (*FIELDS, "payload", "prev_hash", "hash")


@dataclass(frozen=True)
class Stored:
    """An entry as the log holds it: its place in the chain and its hash."""

    entry: AuditEntry
    record_id: int
    hash: str


async def writer_role_usable(pool: asyncpg.Pool) -> bool:
    """Whether this login may write as accord_audit_writer (created by the migrations)."""
    usable: bool = await pool.fetchval(
        "SELECT CASE WHEN EXISTS (SELECT FROM pg_roles WHERE rolname = $1)"
        " THEN pg_has_role(session_user, $1, 'MEMBER') ELSE false END",
        WRITER_ROLE,
    )
    return usable


async def append_many(
    conn: asyncpg.Connection, entries: Sequence[AuditEntry], *, as_writer: bool = False
) -> list[Stored]:
    """Append the entries not yet recorded, chained, in order; the others are skipped.

    Runs in the caller's transaction. The chain head's row lock serialises writers, so
    record ids follow commit order and each hash links to the record before it.
    """
    if as_writer:
        await conn.execute(f"SET LOCAL ROLE {WRITER_ROLE}")
    head = await conn.fetchrow("SELECT record_id, hash FROM audit_chain_head FOR UPDATE")
    assert head is not None, "migration 0002 creates the chain head"
    fresh = await _not_yet_recorded(conn, entries)
    if not fresh:
        return []
    previous, record_id = head["hash"], head["record_id"]
    rows, stored = [], []
    for entry in fresh:
        record_id += 1
        fields = _fields(entry, record_id)
        payload = storable_json(entry.payload)
        digest = record_hash(previous, fields, payload)
        rows.append((*fields.values(), payload, previous, digest))
        stored.append(Stored(entry, record_id, digest))
        previous = digest
    await conn.copy_records_to_table("audit_log", records=rows, columns=_COLUMNS)
    await conn.execute("UPDATE audit_chain_head SET record_id = $1, hash = $2", record_id, previous)
    return stored


async def _not_yet_recorded(
    conn: asyncpg.Connection, entries: Sequence[AuditEntry]
) -> list[AuditEntry]:
    """The entries whose (topic, event id) is neither in the log nor earlier in the batch."""
    seen = {
        (r["source_topic"], r["source_event_id"])
        for r in await conn.fetch(
            "SELECT source_topic, source_event_id FROM audit_log"
            " WHERE (source_topic, source_event_id) IN"
            " (SELECT * FROM unnest($1::text[], $2::text[]))",
            [e.source_topic for e in entries],
            [e.source_event_id for e in entries],
        )
    }
    fresh = []
    for entry in entries:
        key = (entry.source_topic, entry.source_event_id)
        if key not in seen:
            seen.add(key)
            fresh.append(entry)
    return fresh


def _fields(entry: AuditEntry, record_id: int) -> dict[str, Any]:
    """The hashed fields of a record, in column order (FIELDS)."""
    return {
        "record_id": record_id,
        "recorded_at": datetime.now(UTC),
        "source_event_id": entry.source_event_id,
        "source_topic": entry.source_topic,
        "event_type": entry.event_type,
        "occurred_at": entry.occurred_at,
        "actor": entry.actor,
        "subject": entry.subject,
        "target": entry.target,
        "outcome": entry.outcome,
        "correlation_id": entry.correlation_id,
        "trace_id": entry.trace_id,
    }


def storable_json(payload: dict[str, Any]) -> str:
    """The payload's canonical JSON, as stored and hashed; NUL (which a dead letter may hold
    and PostgreSQL text functions refuse) becomes U+FFFD."""
    return canonical(payload).replace("\\u0000", "\\ufffd")


@dataclass(frozen=True)
class Filters:
    """What a query keeps; None is no filter. Times are occurred_at bounds [since, until)."""

    correlation_id: str | None = None
    subject: str | None = None
    actor: str | None = None
    event_type: str | None = None
    outcome: str | None = None
    target: str | None = None
    since: datetime | None = None
    until: datetime | None = None


_SELECT = (
    "SELECT record_id, source_event_id, source_topic, event_type, occurred_at, recorded_at,"
    " actor, subject, target, outcome, correlation_id, trace_id, payload, hash FROM audit_log"
)


def record_of(row: asyncpg.Record) -> dict[str, Any]:
    """A row of audit_log as a dict, its payload parsed."""
    record = dict(row)
    payload = record["payload"]
    record["payload"] = json.loads(payload) if isinstance(payload, str) else payload
    return record


async def query(
    pool: asyncpg.Pool,
    filters: Filters,
    *,
    after: int = 0,
    limit: int = 100,
    newest: bool = False,
) -> list[dict[str, Any]]:
    """Entries matching every filter, in log order, after a record id (cursor); with
    `newest`, the last `limit` of them (still in log order)."""
    conditions = Conditions()
    conditions.add("record_id > {0}", after)
    conditions.add("correlation_id = {0}", filters.correlation_id)
    conditions.add("subject = {0}", filters.subject)
    conditions.add("actor = {0}", filters.actor)
    conditions.add("event_type = {0}", filters.event_type)
    conditions.add("outcome = {0}", filters.outcome)
    conditions.add("target = {0}", filters.target)
    conditions.add("occurred_at >= {0}", filters.since)
    conditions.add("occurred_at < {0}", filters.until)
    limit_at = conditions.placeholder(limit)
    order = "DESC" if newest else ""
    sql = f"{_SELECT} WHERE {conditions.where} ORDER BY record_id {order} LIMIT {limit_at}"
    rows = await pool.fetch(sql, *conditions.args)
    return [record_of(row) for row in (reversed(rows) if newest else rows)]


async def pages(
    pool: asyncpg.Pool, filters: Filters, *, after: int = 0, size: int
) -> AsyncIterator[list[dict[str, Any]]]:
    """`query`'s pages of `size` in log order from the cursor on, until a short page (the
    first page is given even when empty)."""
    while True:
        page = await query(pool, filters, after=after, limit=size)
        yield page
        if len(page) < size:
            return
        after = page[-1]["record_id"]


async def story(pool: asyncpg.Pool, correlation_id: str, *, limit: int) -> list[dict[str, Any]]:
    """Every record of one correlation id, in the order things happened."""
    rows = await pool.fetch(
        f"{_SELECT} WHERE correlation_id = $1 ORDER BY occurred_at, record_id LIMIT $2",
        correlation_id,
        limit,
    )
    return [record_of(row) for row in rows]


async def head(db: asyncpg.Pool | asyncpg.Connection) -> asyncpg.Record:
    """The chain head: record_id, hash, chained_from (the first chained record)."""
    row = await db.fetchrow("SELECT record_id, hash, chained_from FROM audit_chain_head")
    assert row is not None
    return row


async def chained_rows(
    conn: asyncpg.Connection, *, after: int, until: int, batch: int = 5000
) -> AsyncIterator[list[asyncpg.Record]]:
    """Chained records with after < record_id <= until, in order, a batch at a time."""
    columns = ", ".join(_COLUMNS)
    while after < until:
        rows = await conn.fetch(
            f"SELECT {columns} FROM audit_log WHERE record_id > $1 AND record_id <= $2"  # noqa: S608
            " ORDER BY record_id LIMIT $3",
            after,
            until,
            batch,
        )
        if not rows:
            return
        yield rows
        after = rows[-1]["record_id"]


async def insert_checkpoint(pool: asyncpg.Pool, checkpoint: Checkpoint, *, as_writer: bool) -> None:
    """Keep a signed checkpoint in the database too (once per record id)."""
    async with pool.acquire() as conn, conn.transaction():
        if as_writer:
            await conn.execute(f"SET LOCAL ROLE {WRITER_ROLE}")
        await conn.execute(
            "INSERT INTO audit_checkpoints"
            " (record_id, hash, created_at, key_id, signature, public_key)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (record_id) DO NOTHING",
            checkpoint.record_id,
            checkpoint.hash,
            datetime.fromisoformat(checkpoint.created_at),
            checkpoint.key_id,
            checkpoint.signature,
            checkpoint.public_key,
        )


async def latest_checkpoint(pool: asyncpg.Pool) -> dict[str, Any] | None:
    """The newest checkpoint kept in the database."""
    row = await pool.fetchrow(
        "SELECT record_id, hash, created_at, key_id, signature FROM audit_checkpoints"
        " ORDER BY record_id DESC LIMIT 1"
    )
    return dict(row) if row else None


async def stored_checkpoints(pool: asyncpg.Pool | asyncpg.Connection) -> list[Checkpoint]:
    """Every checkpoint kept in the database, oldest first."""
    rows = await pool.fetch(
        "SELECT record_id, hash, created_at, key_id, signature, public_key"
        " FROM audit_checkpoints ORDER BY record_id"
    )
    return [
        Checkpoint(
            record_id=r["record_id"],
            hash=r["hash"],
            created_at=canonical_time(r["created_at"]),
            key_id=r["key_id"],
            signature=r["signature"],
            public_key=r["public_key"],
        )
        for r in rows
    ]


async def hash_at(pool: asyncpg.Pool | asyncpg.Connection, record_id: int) -> str | None:
    """The stored hash of one record (None if there is no such record)."""
    found: str | None = await pool.fetchval(
        "SELECT hash FROM audit_log WHERE record_id = $1", record_id
    )
    return found
