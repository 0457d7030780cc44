"""One run of a source: read, map, compare with the last state, judge, publish or hold.

The order of a run, and why:

1. Lock the source (a PostgreSQL advisory lock held for the whole run): the service's
   schedule, a file watch and an operator's `accord sources run` never run one source twice
   at a time. A source whose last run is held for an operator does not run again until the
   operator decides: the next run would compare with a state the held run has not changed.
2. Read every row through the source's reader and map it; a bad row becomes a problem with
   its line and reason, never a stop. A source that cannot be read at all (a missing column,
   a refused password) ends the run as `failed`, publishing nothing.
3. Diff with the last state and the identities Accord has (correlation, taken names).
4. Judge the safety limits. A held run keeps its planned events and state, and publishes
   nothing until `accord sources approve RUN`.
5. Otherwise, in ONE transaction: the events into the outbox, the new state, the run's row
   and its `source.run_completed`. A run that dies before the commit published nothing and
   left the state as it was, so the next run repeats it; after the commit the relay
   publishes each event at least once and consumers drop redeliveries by event id.

A dry run does steps 2 to 4 and writes nothing.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from accord.events import Envelope
from accord.runtime.db import advisory_key
from accord.runtime.outbox import OutboxRecord, outbox_records
from accord.sources import store
from accord.sources.config import Source
from accord.sources.csv_reader import ExportError
from accord.sources.diff import DiffResult, diff
from accord.sources.events import Sequences, identity_events
from accord.sources.mapping import MappedRow, MappingError, RowMapper
from accord.sources.problems import RowProblem
from accord.sources.readers import open_reader
from accord.sources.runs import RunRecord, Trigger, counts_of, problem_rows
from accord.sources.safety import SafetyVerdict, judge_run

log = logging.getLogger(__name__)

#: Called with the rows read so far (every PROGRESS_EVERY rows, and once at the end).
Progress = Callable[[int], None]
PROGRESS_EVERY = 1_000


class RunRefused(Exception):
    """The run cannot start: the source runs already, or waits for a decision."""


class RunFailed(Exception):
    """The source could not be read; the run is recorded as failed."""

    def __init__(self, message: str, record: RunRecord | None = None) -> None:
        super().__init__(message)
        self.record = record


@dataclass
class RunReport:
    """What a run did (or, dry, would do)."""

    record: RunRecord
    verdict: SafetyVerdict
    result: DiffResult
    fields: tuple[str, ...]
    events: list[Envelope]
    """The identity events, in publishing order (a dry run's preview; empty once published,
    to keep a large run's memory flat)."""
    problems: list[RowProblem]
    published: int = 0


def lock_key(source: str) -> int:
    """The advisory lock that serialises one source's runs."""
    return advisory_key(f"accord.sources:{source}")


async def run_source(
    conn: asyncpg.Connection,
    schema: str,
    source: Source,
    *,
    trigger: Trigger,
    dry_run: bool = False,
    environ: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    run_id: str | None = None,
) -> RunReport:
    """Run `source` once on `conn` (a connection of its own: the run holds a lock on it)."""
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_key(source.name)):
        raise RunRefused(f"source {source.name!r} is running already")
    try:
        held = await store.held_run(conn, source.name)
        if held is not None and not dry_run:
            raise RunRefused(
                f"source {source.name!r} waits for a decision on held run {held}:"
                f" accord sources approve|reject {held}"
            )
        return await _run(conn, schema, source, trigger, dry_run, environ, progress, run_id)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", lock_key(source.name))


async def _run(
    conn: asyncpg.Connection,
    schema: str,
    source: Source,
    trigger: Trigger,
    dry_run: bool,
    environ: Mapping[str, str] | None,
    progress: Progress | None,
    run_id: str | None,
) -> RunReport:
    started = datetime.now(UTC)
    run_id = run_id or str(uuid.uuid4())
    mapper = RowMapper(source)
    problems: list[RowProblem] = []
    rows: list[MappedRow] = []
    read = 0
    try:
        async with open_reader(source, environ) as reader:
            mapper.check_columns(reader.columns)
            async for row in reader.rows():
                read += 1
                mapped = mapper.map(row)
                if isinstance(mapped, RowProblem):
                    problems.append(mapped)
                else:
                    rows.append(mapped)
                if progress is not None and read % PROGRESS_EVERY == 0:
                    progress(read)
            problems.extend(reader.problems)
            read += len(reader.problems)
    except (ExportError, MappingError) as error:
        failed = RunRecord(run_id, source.name, "failed", trigger, started, read,
                           reason=str(error))  # fmt: skip
        if dry_run:
            raise RunFailed(str(error)) from None
        async with conn.transaction():
            await store.insert_run(conn, failed)
            await store.enqueue(conn, schema, outbox_records([failed.completed()]))
        raise RunFailed(str(error), failed) from None
    if progress is not None:
        progress(read)
    problems.sort(key=lambda problem: problem.line)
    loaded = await store.load_state(conn, source.name)
    existing, known = await store.existing_identities(conn)
    result = diff(
        loaded.state,
        rows,
        fields=mapper.fields,
        existing=existing,
        correlation=[rule.by for rule in source.correlation],
    )
    del rows
    all_problems = sorted([*problems, *result.problems], key=lambda problem: problem.line)
    verdict = judge_run(loaded.state, result, source.safety)
    record = RunRecord(
        run_id,
        source.name,
        "held" if verdict.held else "published",
        trigger,
        started,
        read,
        counts_of(result),
        len(all_problems),
        problem_rows(all_problems),
        verdict.reason,
    )
    sequences = Sequences({**known, **loaded.sequences})
    events = identity_events(
        result.changes,
        fields=mapper.fields,
        source_name=source.name,
        sequences=sequences,
        run_id=run_id,
    )
    report = RunReport(record, verdict, result, mapper.fields, [], all_problems)
    if dry_run:
        report.events = list(events)
        return report
    records = _records(events, report)
    async with conn.transaction():
        await store.insert_run(conn, record)
        if verdict.held:
            # The records are made first: the keys' sequences are the events' sequences.
            planned = list(records)
            keys = store.changed_entries(loaded.state, result.state, sequences.last)
            await store.hold(conn, run_id, mapper.fields, keys, planned)
        else:
            await store.enqueue(conn, schema, records)
            keys = store.changed_entries(loaded.state, result.state, sequences.last)
            await store.save_state(conn, source.name, mapper.fields, keys)
        await store.enqueue(conn, schema, outbox_records([record.completed()]))
    log.info(
        "source run %s",
        record.status,
        extra={"source": source.name, "run_id": run_id, "rows": read, **record.counts},
    )
    return report


def _records(events: Iterator[Envelope], report: RunReport) -> Iterator[OutboxRecord]:
    """The events as outbox records, one at a time, counted in the report."""
    for event in events:
        report.published += 1
        yield from outbox_records([event])


async def approve(conn: asyncpg.Connection, schema: str, run_id: str, by: str) -> RunRecord:
    """Publish a held run as it was planned, and keep its state."""
    async with conn.transaction():
        held = await store.held_output(conn, run_id)
        if held is None:
            raise RunRefused(await _not_held(conn, run_id))
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key(held.source))
        await store.save_state(conn, held.source, held.fields, held.keys)
        await store.enqueue(conn, schema, held.records)
        await store.decide(conn, run_id, "approved", by, None)
        record = await _record(conn, run_id)
        await store.enqueue(conn, schema, outbox_records([record.completed(trigger="approval")]))
    return record


async def reject(
    conn: asyncpg.Connection, schema: str, run_id: str, by: str, reason: str
) -> RunRecord:
    """Drop a held run: nothing is published, the source's state stays as it was."""
    async with conn.transaction():
        if await store.lock_held(conn, run_id) is None:
            raise RunRefused(await _not_held(conn, run_id))
        await store.decide(conn, run_id, "rejected", by, reason)
        record = await _record(conn, run_id)
        await store.enqueue(conn, schema, outbox_records([record.completed(trigger="approval")]))
    return record


async def _not_held(conn: asyncpg.Connection, run_id: str) -> str:
    row = await store.run(conn, run_id)
    if row is None:
        return f"no run {run_id}"
    return f"run {run_id} is {row['status']}, not held"


async def _record(conn: asyncpg.Connection, run_id: str) -> RunRecord:
    row = await store.run(conn, run_id)
    assert row is not None
    return RunRecord(
        row["run_id"],
        row["source"],
        row["status"],
        row["trigger"],
        row["started_at"],
        row["rows_read"],
        json.loads(row["counts"]),
        row["problem_count"],
        json.loads(row["problems"]),
        row["reason"],
    )
