"""The audit log table."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from accord.auditor.domain.chain import FIELDS, canonical_time
from accord.auditor.domain.chaining import (
    ChainState,
    SourceKey,
    Stored,
    chain,
    key_of,
)
from accord.auditor.domain.checkpoints import Checkpoint
from accord.auditor.domain.normalise import AuditEntry
from accord.runtime.sql import Conditions

WRITER_ROLE = "accord_audit_writer"
_COLUMNS = (*FIELDS, "payload", "prev_hash", "hash")


async def writer_role_usable(pool: asyncpg.Pool) -> bool:
    """Whether this login may write as accord_audit_writer (created by the migrations)."""
    usable: bool = await pool.fetchval(
        "SELECT CASE WHEN EXISTS (SELECT FROM pg_roles WHERE rolname = $1)"
        " THEN pg_has_role(session_user, $1, 'MEMBER') ELSE false END",
        WRITER_ROLE,
    )
    return usable


@dataclass(frozen=True)
class PostgresAuditLog:
    """The AuditLog port on audit_log, in the caller's transaction on `conn`.

    `chain_state` takes the chain head's row lock, held until the transaction ends: it
    serialises writers, so record ids follow commit order and each hash links to the record
    before it. With `as_writer`, the transaction writes as accord_audit_writer.
    """

    conn: asyncpg.Connection
    as_writer: bool = False

    async def chain_state(self, keys: Sequence[SourceKey]) -> ChainState:
        """Lock and read the chain head, and which of these events the log holds."""
        conn = self.conn
        if self.as_writer:
            await conn.execute(f"SET LOCAL ROLE {WRITER_ROLE}")
        head = await conn.fetchrow("SELECT record_id, hash FROM audit_chain_head FOR UPDATE")
        assert head is not None, "migration 0002 creates the chain head"
        recorded = await conn.fetch(
            "SELECT source_topic, source_event_id FROM audit_log"
            " WHERE (source_topic, source_event_id) IN"
            " (SELECT * FROM unnest($1::text[], $2::text[]))",
            [topic for topic, _ in keys],
            [event_id for _, event_id in keys],
        )
        return ChainState(
            head["record_id"],
            head["hash"],
            frozenset((r["source_topic"], r["source_event_id"]) for r in recorded),
        )

    async def append(self, records: Sequence[Stored]) -> None:
        """Store chained records (after the head read by chain_state); the head moves on."""
        if not records:
            return
        rows = [(*r.fields.values(), r.payload, r.prev_hash, r.hash) for r in records]
        await self.conn.copy_records_to_table("audit_log", records=rows, columns=_COLUMNS)
        last = records[-1]
        await self.conn.execute(
            "UPDATE audit_chain_head SET record_id = $1, hash = $2", last.record_id, last.hash
        )


async def append_many(
    conn: asyncpg.Connection, entries: Sequence[AuditEntry], *, as_writer: bool = False
) -> list[Stored]:
    """Append the entries not yet recorded, chained, in order; the others are skipped.

    Runs in the caller's transaction (see PostgresAuditLog).
    """
    log = PostgresAuditLog(conn, as_writer)
    state = await log.chain_state([key_of(e) for e in entries])
    stored = chain(state, entries)
    await log.append(stored)
    return stored


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
