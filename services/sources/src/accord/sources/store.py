"""The sources service's tables (migrations/0001_sources.sql): each source's state, its runs,
held runs' planned output, and the projection of the identities Accord has.

Every function works on a connection the caller holds (inside its transaction where the
caller needs one), so a run's events, its new state and its run row commit together.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import asyncpg

from accord.runtime.outbox import (
    OUTBOX_COLUMNS,
    OutboxRecord,
    channel_name,
    headers_of,
    outbox_row,
)
from accord.sources.diff import Existing, KeyState, SourceState, Status
from accord.sources.runs import RunRecord

#: Rows per COPY: a first run of 100,000 creations writes in chunks, not one huge buffer.
CHUNK = 5_000


@dataclass(frozen=True)
class LoadedState:
    """A source's state and the last sequence of every identity it or Accord knows."""

    state: SourceState
    sequences: dict[str, int]


async def load_state(conn: asyncpg.Connection, source: str) -> LoadedState:
    """The last state of `source` (empty before its first run), with the sequences of its
    identities: the larger of its own last and what the projection has seen since."""
    fields = await conn.fetchval("SELECT fields FROM sources WHERE name = $1", source)
    entries: dict[str, KeyState] = {}
    sequences: dict[str, int] = {}
    rows = await conn.fetch(
        "SELECT k.key, k.user_id, k.status, k.user_name, k.digest,"
        " GREATEST(k.sequence, COALESCE(i.sequence, 0)) AS sequence"
        " FROM source_keys k LEFT JOIN identities i USING (user_id) WHERE k.source = $1",
        source,
    )
    for row in rows:
        entries[row["key"]] = KeyState(
            row["user_id"], Status(row["status"]), row["user_name"], bytes(row["digest"])
        )
        sequences[row["user_id"]] = row["sequence"]
    return LoadedState(SourceState(tuple(fields or ()), entries), sequences)


async def existing_identities(conn: asyncpg.Connection) -> tuple[Existing, dict[str, int]]:
    """Every identity Accord has (correlation, taken user names) and its last sequence."""
    rows = await conn.fetch(
        "SELECT user_id, user_name, employee_number, email, sequence, status FROM identities"
        " WHERE user_name IS NOT NULL"
    )
    existing = Existing.of(
        (row["user_id"], row["user_name"], row["employee_number"], row["email"]) for row in rows
    )
    inactive = frozenset(row["user_id"] for row in rows if row["status"] != "active")
    return replace(existing, inactive=inactive), {row["user_id"]: row["sequence"] for row in rows}


def changed_entries(
    previous: SourceState, state: SourceState, sequences: Mapping[str, int]
) -> list[tuple[str, str, str, str, bytes, int]]:
    """The keys whose state differs from the previous run's, as rows to write (each with the
    last sequence its identity got)."""
    rows = []
    for key, entry in state.entries.items():
        if previous.entries.get(key) == entry:
            continue
        sequence = sequences.get(entry.user_id, 0)
        rows.append(
            (key, entry.user_id, entry.status.value, entry.user_name, entry.digest, sequence)
        )
    return rows


async def save_state(
    conn: asyncpg.Connection,
    source: str,
    fields: Sequence[str],
    rows: Sequence[tuple[str, str, str, str, bytes, int]],
) -> None:
    """Keep the new state: the fields, and the keys that changed (upserted in chunks)."""
    await conn.execute(
        "INSERT INTO sources (name, fields) VALUES ($1, $2)"
        " ON CONFLICT (name) DO UPDATE SET fields = EXCLUDED.fields",
        source,
        list(fields),
    )
    if not rows:
        return
    await conn.execute(
        "CREATE TEMPORARY TABLE IF NOT EXISTS keys_in (key text, user_id text, status text,"
        " user_name text, digest bytea, sequence bigint) ON COMMIT DROP"
    )
    for start in range(0, len(rows), CHUNK):
        await conn.copy_records_to_table("keys_in", records=rows[start : start + CHUNK])
    await conn.execute(
        "INSERT INTO source_keys (source, key, user_id, status, user_name, digest, sequence)"
        " SELECT $1, key, user_id, status, user_name, digest, sequence FROM keys_in"
        " ON CONFLICT (source, key) DO UPDATE SET user_id = EXCLUDED.user_id,"
        " status = EXCLUDED.status, user_name = EXCLUDED.user_name,"
        " digest = EXCLUDED.digest, sequence = EXCLUDED.sequence",
        source,
    )
    await conn.execute("DROP TABLE keys_in")


async def enqueue(conn: asyncpg.Connection, schema: str, records: Iterable[OutboxRecord]) -> int:
    """Add records to the outbox by COPY (a first run may publish 100,000 events); returns
    how many. The relay wakes at commit."""
    count = 0
    chunk: list[tuple[str, str, bytes, bytes, str]] = []
    for record in records:
        chunk.append(outbox_row(record))
        if len(chunk) == CHUNK:
            count += await _copy_outbox(conn, chunk)
            chunk = []
    count += await _copy_outbox(conn, chunk)
    if count:
        await conn.execute("SELECT pg_notify($1, '')", channel_name(schema))
    return count


async def _copy_outbox(
    conn: asyncpg.Connection, rows: list[tuple[str, str, bytes, bytes, str]]
) -> int:
    if rows:
        await conn.copy_records_to_table("outbox", records=rows, columns=OUTBOX_COLUMNS)
    return len(rows)


async def insert_run(conn: asyncpg.Connection, run: RunRecord) -> None:
    """Record a run as it ended (published, held or failed)."""
    await conn.execute(
        "INSERT INTO runs (run_id, source, status, trigger, started_at, rows_read, counts,"
        " problem_count, problems, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        run.run_id,
        run.source,
        run.status,
        run.trigger,
        run.started_at,
        run.rows_read,
        json.dumps(run.counts),
        run.problem_count,
        json.dumps(run.problems),
        run.reason,
    )


async def held_run(conn: asyncpg.Connection, source: str) -> str | None:
    """The run of `source` that waits for an operator, if any."""
    run_id: str | None = await conn.fetchval(
        "SELECT run_id FROM runs WHERE source = $1 AND status = 'held'", source
    )
    return run_id


async def hold(
    conn: asyncpg.Connection,
    run_id: str,
    fields: Sequence[str],
    keys: Sequence[tuple[str, str, str, str, bytes, int]],
    records: Iterable[OutboxRecord],
) -> None:
    """Keep a held run's planned output: its events and the state it would leave."""
    await conn.execute("INSERT INTO held_fields (run_id, fields) VALUES ($1, $2)", run_id, fields)
    for start in range(0, len(keys), CHUNK):
        await conn.copy_records_to_table(
            "held_keys",
            records=[(run_id, *row) for row in keys[start : start + CHUNK]],
        )
    chunk: list[tuple[Any, ...]] = []
    for position, record in enumerate(records):
        chunk.append((run_id, position, *outbox_row(record)))
        if len(chunk) == CHUNK:
            await conn.copy_records_to_table("held_events", records=chunk)
            chunk = []
    if chunk:
        await conn.copy_records_to_table("held_events", records=chunk)


@dataclass(frozen=True)
class HeldOutput:
    """What a held run planned, read back to publish it."""

    source: str
    fields: tuple[str, ...]
    keys: list[tuple[str, str, str, str, bytes, int]]
    records: list[OutboxRecord]
    counts: dict[str, int]
    rows_read: int
    problem_count: int


async def lock_held(conn: asyncpg.Connection, run_id: str) -> str | None:
    """Lock a held run for a decision; its source, or None if it is not held."""
    source: str | None = await conn.fetchval(
        "SELECT source FROM runs WHERE run_id = $1 AND status = 'held' FOR UPDATE", run_id
    )
    return source


async def held_output(conn: asyncpg.Connection, run_id: str) -> HeldOutput | None:
    """A held run's planned output, locked for the decision; None if it is not held."""
    run = await conn.fetchrow(
        "SELECT source, counts, rows_read, problem_count FROM runs"
        " WHERE run_id = $1 AND status = 'held' FOR UPDATE",
        run_id,
    )
    if run is None:
        return None
    fields = await conn.fetchval("SELECT fields FROM held_fields WHERE run_id = $1", run_id)
    keys = await conn.fetch(
        "SELECT key, user_id, status, user_name, digest, sequence FROM held_keys WHERE run_id = $1",
        run_id,
    )
    events = await conn.fetch(
        "SELECT event_id, topic, key, value, headers FROM held_events WHERE run_id = $1"
        " ORDER BY position",
        run_id,
    )
    return HeldOutput(
        run["source"],
        tuple(fields),
        [
            (r["key"], r["user_id"], r["status"], r["user_name"], bytes(r["digest"]), r["sequence"])
            for r in keys
        ],
        [
            OutboxRecord(
                row["event_id"],
                row["topic"],
                bytes(row["key"]),
                bytes(row["value"]),
                headers_of(row["headers"]),
            )
            for row in events
        ],
        json.loads(run["counts"]),
        run["rows_read"],
        run["problem_count"],
    )


async def decide(
    conn: asyncpg.Connection, run_id: str, status: str, decided_by: str, reason: str | None
) -> None:
    """Record an operator's decision on a held run and drop its planned output."""
    await conn.execute(
        "UPDATE runs SET status = $2, decided_by = $3, decided_at = now(),"
        " reason = COALESCE($4, reason) WHERE run_id = $1",
        run_id,
        status,
        decided_by,
        reason,
    )
    await conn.execute("DELETE FROM held_events WHERE run_id = $1", run_id)
    await conn.execute("DELETE FROM held_keys WHERE run_id = $1", run_id)
    await conn.execute("DELETE FROM held_fields WHERE run_id = $1", run_id)


async def runs(conn: asyncpg.Connection, source: str | None, limit: int) -> list[asyncpg.Record]:
    """Runs, newest first (of one source, or all)."""
    found: list[asyncpg.Record] = await conn.fetch(
        "SELECT run_id, source, status, trigger, started_at, finished_at, rows_read, counts,"
        " problem_count, reason, decided_by, decided_at FROM runs"
        " WHERE $1::text IS NULL OR source = $1 ORDER BY started_at DESC LIMIT $2",
        source,
        limit,
    )
    return found


async def run(conn: asyncpg.Connection, run_id: str) -> asyncpg.Record | None:
    """One run with its problems."""
    return await conn.fetchrow("SELECT * FROM runs WHERE run_id = $1", run_id)


async def last_runs(conn: asyncpg.Connection) -> dict[str, asyncpg.Record]:
    """Each source's newest run."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (source) source, run_id, status, trigger, started_at, finished_at,"
        " rows_read, counts, problem_count, reason FROM runs ORDER BY source, started_at DESC"
    )
    return {row["source"]: row for row in rows}


async def key_counts(conn: asyncpg.Connection) -> dict[str, dict[str, int]]:
    """Per source, how many keys are active, inactive and deleted."""
    rows = await conn.fetch("SELECT source, status, count(*) AS n FROM source_keys GROUP BY 1, 2")
    found: dict[str, dict[str, int]] = {}
    for row in rows:
        found.setdefault(row["source"], {})[row["status"]] = row["n"]
    return found


@dataclass(frozen=True)
class IdentityFacts:
    """What the projection keeps of one identity event. A field in `sets` is written (None
    clears it); the others keep what the projection has (a status event, a partial update).
    `status` is set by a status event (`status` in `sets`), or by a profile's `active`
    (`active` in `sets`), which does not bring a deleted identity back: the registry keeps a
    leaver deleted through a profile change too."""

    user_id: str
    sequence: int
    user_name: str | None = None
    employee_number: str | None = None
    email: str | None = None
    status: str = "active"
    sets: frozenset[str] = frozenset()


async def project(conn: asyncpg.Connection, facts: Sequence[IdentityFacts]) -> None:
    """Apply identity events to the projection; an event not newer than what it has changes
    nothing (a redelivered batch, a late event), except that a late profile fills in an
    identity whose status event came first."""
    if not facts:
        return
    await conn.executemany(
        "INSERT INTO identities (user_id, user_name, employee_number, email, sequence, status)"
        " VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (user_id) DO UPDATE SET"
        " user_name = CASE WHEN $7 THEN EXCLUDED.user_name ELSE identities.user_name END,"
        " employee_number = CASE WHEN $8 THEN EXCLUDED.employee_number"
        "   ELSE identities.employee_number END,"
        " email = CASE WHEN $9 THEN EXCLUDED.email ELSE identities.email END,"
        " status = CASE WHEN identities.sequence >= EXCLUDED.sequence THEN identities.status"
        "   WHEN $10 THEN EXCLUDED.status"
        "   WHEN $11 AND identities.status <> 'deleted' THEN EXCLUDED.status"
        "   ELSE identities.status END,"
        " sequence = GREATEST(identities.sequence, EXCLUDED.sequence)"
        # An older profile still fills an identity known only from a status event so far
        # (its leaver overtook its creation): the fields, never the status.
        " WHERE identities.sequence < EXCLUDED.sequence OR (identities.user_name IS NULL AND $7)",
        [
            (
                f.user_id,
                f.user_name,
                f.employee_number,
                f.email,
                f.sequence,
                f.status,
                "user_name" in f.sets,
                "employee_number" in f.sets,
                "email" in f.sets,
                "status" in f.sets,
                "active" in f.sets,
            )
            for f in facts
        ],
    )
