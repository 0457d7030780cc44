"""Transactional outbox: enqueue events with the state change, relay them to Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
from aiokafka.errors import KafkaError

from accord.events import Envelope, to_kafka
from accord.runtime.db import advisory_key
from accord.runtime.errors import INFRASTRUCTURE_ERRORS
from accord.runtime.metrics import RuntimeMetrics
from accord.runtime.tracing import with_current_trace
from accord.runtime.transport import Producer

log = logging.getLogger(__name__)

BATCH = 500


def channel_name(schema: str) -> str:
    """The NOTIFY channel that wakes a schema's relay."""
    return f"accord_outbox_{schema}"


@dataclass(frozen=True)
class OutboxRecord:
    """A record to publish as it is: an event's (see enqueue), or one that is no event."""

    event_id: str
    """The event's id; for a record that is no event, the id of the event that caused it."""
    topic: str
    key: bytes
    value: bytes
    headers: Sequence[tuple[str, bytes]]


@dataclass(frozen=True)
class OutboxRow:
    """An outbox row as the relay reads it: its id (publish order) and its record."""

    id: int
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    created_at: float | None = None
    """When the row was enqueued (epoch seconds), if the outbox knows."""


class OutboxRows(Protocol):
    """The outbox as the relay reads it (PostgreSQL's table, or an in-memory one)."""

    async def fetch(self, limit: int) -> list[OutboxRow]:
        """The oldest rows, in id order."""
        ...

    async def delete(self, ids: Sequence[int]) -> None:
        """Forget rows the broker acknowledged."""
        ...


class OutboxStore(OutboxRows, Protocol):
    """An outbox in this process (accord.runtime.memory.MemoryStorage): one relay reads it,
    with no leader election, woken by `wake` whenever a transaction adds rows."""

    def on_enqueue(self, wake: Callable[[], None]) -> None: ...


def outbox_records(events: Sequence[Envelope]) -> list[OutboxRecord]:
    """The records that publish events (with the current trace, if they carry none)."""
    records = []
    for envelope in events:
        record = to_kafka(with_current_trace(envelope))
        records.append(
            OutboxRecord(envelope.id, record.topic, record.key, record.value, record.headers)
        )
    return records


async def enqueue(conn: asyncpg.Connection, schema: str, events: Sequence[Envelope]) -> None:
    """Add events to the outbox inside the caller's transaction."""
    await enqueue_records(conn, schema, outbox_records(events))


#: The outbox table's columns a record fills, in the order of `outbox_row`.
OUTBOX_COLUMNS = ("event_id", "topic", "key", "value", "headers")


def outbox_row(record: OutboxRecord) -> tuple[str, str, bytes, bytes, str]:
    """A record as the outbox table's row (OUTBOX_COLUMNS; headers as a JSON list)."""
    headers = json.dumps([[name, value.decode()] for name, value in record.headers])
    return (record.event_id, record.topic, record.key, record.value, headers)


#: One statement, one round trip: the rows in their order (the relay publishes by id), then
#: the NOTIFY that wakes the relay, delivered at commit so it wakes only when the rows are
#: visible. (Was an executemany and a second statement for the NOTIFY.) PostgreSQL runs a
#: data-modifying WITH once and to completion, whether the main query reads it or not.
_ENQUEUE = (
    "WITH added AS ("
    " INSERT INTO outbox (event_id, topic, key, value, headers)"
    " SELECT event_id, topic, key, value, headers::jsonb"
    " FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bytea[], $5::text[])"
    " WITH ORDINALITY AS r (event_id, topic, key, value, headers, n)"
    " ORDER BY n)"
    " SELECT pg_notify($6, '')"
)


async def enqueue_records(
    conn: asyncpg.Connection, schema: str, records: Sequence[OutboxRecord]
) -> None:
    """Add records to the outbox inside the caller's transaction."""
    if not records:
        return
    columns = list(zip(*(outbox_row(r) for r in records), strict=True))
    await conn.execute(_ENQUEUE, *map(list, columns), channel_name(schema))


#: How long an idle relay waits before it looks at the outbox unasked. Every enqueue's NOTIFY
#: wakes it at once (and a reconnect relays what is there), so this is only a safety net;
#: at 1 s it was an eighth of an idle service's CPU.
IDLE_POLL_S = 5.0


class OutboxRelay:
    """Publishes outbox rows in order; one relay per schema at a time holds the advisory lock."""

    def __init__(
        self,
        dsn: str,
        schema: str,
        producer: Producer,
        *,
        poll_interval: float = IDLE_POLL_S,
        store: OutboxStore | None = None,
        metrics: RuntimeMetrics | None = None,
    ) -> None:
        """Relays the outbox of `schema` at `dsn`; or, given a `store`, that in-process
        outbox (dsn and schema unused: no connection, no advisory lock)."""
        self._store = store
        self._dsn = dsn
        self._schema = schema
        self._producer = producer
        self._poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._stopping = False
        self.leader = False
        self.published = 0
        self.metrics = metrics if metrics is not None else RuntimeMetrics()

    async def run(self) -> None:
        """Relay until stop(); reconnect after database errors."""
        while not self._stopping:
            try:
                await self._run_once()
            except (KafkaError, asyncpg.PostgresError, *INFRASTRUCTURE_ERRORS) as error:
                self.leader = False
                log.warning("outbox relay failed; retrying", extra={"error": str(error)})
                await self._sleep(2.0)

    async def stop(self) -> None:
        """Finish the current batch, then return from run()."""
        self._stopping = True
        self._wake.set()

    async def _run_once(self) -> None:
        if self._store is not None:
            self._store.on_enqueue(self._on_notify)
            try:
                await self._lead(self._store)
            finally:
                self.leader = False
            return
        conn = await asyncpg.connect(
            self._dsn,
            server_settings={"search_path": self._schema, "application_name": "accord-relay"},
        )
        try:
            lock = advisory_key(f"relay:{self._schema}")
            while not self._stopping and not await conn.fetchval(
                "SELECT pg_try_advisory_lock($1)", lock
            ):
                await self._sleep(2.0)
            if self._stopping:
                return
            self.leader = True
            await conn.add_listener(channel_name(self._schema), self._on_notify)
            await self._lead(_PgOutbox(conn))
        finally:
            self.leader = False
            await conn.close()

    async def _lead(self, outbox: OutboxRows) -> None:
        """Relay batches until stop(), as the leader."""
        self.leader = True
        while not self._stopping:
            sent = await self._relay_batch(outbox)
            if sent < BATCH:
                await self._sleep(self._poll_interval)

    async def _relay_batch(self, outbox: OutboxRows) -> int:
        self._wake.clear()
        rows = await outbox.fetch(BATCH)
        self.metrics.outbox_seen(await _backlog(outbox, rows), rows[0].created_at if rows else None)
        if not rows:
            return 0
        futures = []
        for row in rows:
            futures.append(
                await self._producer.send(
                    row.topic, value=row.value, key=row.key, headers=row.headers
                )
            )
        # Delete only what the broker acknowledged; a crash before this line re-sends, and
        # consumers drop the duplicates by event id.
        await asyncio.gather(*futures)
        acknowledged = time.time()
        for row in rows:
            self.metrics.relayed(row.created_at, acknowledged)
        await outbox.delete([r.id for r in rows])
        if len(rows) < BATCH:
            self.metrics.outbox_seen(0, None)
        self.published += len(rows)
        return len(rows)

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)


async def _backlog(outbox: OutboxRows, rows: Sequence[OutboxRow]) -> int:
    """Rows waiting: those fetched, or, behind a full batch, up to the outbox's last id (ids
    grow in commit order, mostly without gaps: one index lookup instead of a count)."""
    last_id = getattr(outbox, "last_id", None)
    if len(rows) < BATCH or last_id is None:
        return len(rows)
    last: int | None = await last_id()
    return len(rows) if last is None else max(len(rows), last - rows[0].id + 1)


class _PgOutbox:
    """The outbox table, read by the relay's own connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def fetch(self, limit: int) -> list[OutboxRow]:
        rows = await self._conn.fetch(
            "SELECT id, topic, key, value, headers, created_at FROM outbox ORDER BY id LIMIT $1",
            limit,
        )
        return [_row(r) for r in rows]

    async def delete(self, ids: Sequence[int]) -> None:
        await self._conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", list(ids))

    async def last_id(self) -> int | None:
        """The newest row's id (None if the outbox is empty)."""
        last: int | None = await self._conn.fetchval("SELECT max(id) FROM outbox")
        return last


def headers_of(column: str) -> list[tuple[str, bytes]]:
    """The headers of an outbox row as its `headers` column holds them (see outbox_row)."""
    return [(name, value.encode()) for name, value in json.loads(column)]


def _row(row: Any) -> OutboxRow:
    headers = headers_of(row["headers"])
    created_at = row["created_at"].timestamp()
    return OutboxRow(row["id"], row["topic"], row["key"], row["value"], headers, created_at)
