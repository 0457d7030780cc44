"""Transactional outbox: enqueue events with the state change, relay them to Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from accord.events import Envelope, to_kafka
from accord.runtime.db import advisory_key
from accord.runtime.errors import INFRASTRUCTURE_ERRORS
from accord.runtime.tracing import with_current_trace

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


async def enqueue(conn: asyncpg.Connection, schema: str, events: Sequence[Envelope]) -> None:
    """Add events to the outbox inside the caller's transaction."""
    records = []
    for envelope in events:
        record = to_kafka(with_current_trace(envelope))
        records.append(
            OutboxRecord(envelope.id, record.topic, record.key, record.value, record.headers)
        )
    await enqueue_records(conn, schema, records)


async def enqueue_records(
    conn: asyncpg.Connection, schema: str, records: Sequence[OutboxRecord]
) -> None:
    """Add records to the outbox inside the caller's transaction."""
    if not records:
        return
    await conn.executemany(
        "INSERT INTO outbox (event_id, topic, key, value, headers) VALUES ($1, $2, $3, $4, $5)",
        [
            (
                r.event_id,
                r.topic,
                r.key,
                r.value,
                json.dumps([[n, v.decode()] for n, v in r.headers]),
            )
            for r in records
        ],
    )
    # Delivered at commit, so the relay wakes only when the rows are visible.
    await conn.execute("SELECT pg_notify($1, '')", channel_name(schema))


class OutboxRelay:
    """Publishes outbox rows in order; one relay per schema at a time holds the advisory lock."""

    def __init__(
        self,
        dsn: str,
        schema: str,
        producer: AIOKafkaProducer,
        *,
        poll_interval: float = 1.0,
    ) -> None:
        self._dsn = dsn
        self._schema = schema
        self._producer = producer
        self._poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._stopping = False
        self.leader = False
        self.published = 0

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
            while not self._stopping:
                sent = await self._relay_batch(conn)
                if sent < BATCH:
                    await self._sleep(self._poll_interval)
        finally:
            self.leader = False
            await conn.close()

    async def _relay_batch(self, conn: asyncpg.Connection) -> int:
        self._wake.clear()
        rows = await conn.fetch(
            "SELECT id, topic, key, value, headers FROM outbox ORDER BY id LIMIT $1", BATCH
        )
        if not rows:
            return 0
        futures = []
        for row in rows:
            headers = [(name, value.encode()) for name, value in json.loads(row["headers"])]
            futures.append(
                await self._producer.send(
                    row["topic"], value=row["value"], key=row["key"], headers=headers
                )
            )
        # Delete only what the broker acknowledged; a crash before this line re-sends, and
        # consumers drop the duplicates by event id.
        await asyncio.gather(*futures)
        await conn.execute(
            "DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows]
        )
        self.published += len(rows)
        return len(rows)

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
