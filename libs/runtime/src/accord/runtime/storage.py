"""The runtime's own tables behind a port: the inbox, the outbox and the dead letters of
named work, as the consumer path (accord.runtime.handling) uses them.

`PgStorage` is PostgreSQL: the service's schema, through its pool, with the SQL of
accord.runtime.outbox and accord.runtime.dlq_resolution; services run on it.
accord.runtime.memory.MemoryStorage keeps the same tables in memory, so a consume -> handle
-> outbox path runs in unit tests with no database.

A `Transaction` is one database transaction: what it claims, enqueues and settles commits
together with the handler's own work on `conn`, or not at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import asyncpg

from accord.events import Envelope
from accord.runtime.dlq_resolution import Settlement, remember, settle
from accord.runtime.outbox import enqueue


class Transaction(Protocol):
    """One open transaction of the runtime's tables."""

    @property
    def conn(self) -> asyncpg.Connection:
        """What handlers get as HandlerContext.conn (their work joins the transaction)."""
        ...

    async def claim(self, consumer: str, topic: str, event_id: str) -> bool:
        """Record the event in the consumer's inbox; False if it is there already."""
        ...

    async def claim_all(self, consumer: str, topic: str, event_ids: Sequence[str]) -> set[str]:
        """Record the events in the consumer's inbox at once; the ids that were not there
        already (an id twice in `event_ids` is claimed once)."""
        ...

    async def release(self, consumer: str, topic: str, event_ids: Sequence[str]) -> None:
        """Take claims of this transaction back: their events were not handled after all."""
        ...

    async def enqueue(self, events: Sequence[Envelope]) -> None:
        """Add events to the outbox."""
        ...

    async def settle(self, consumer: str, topic: str, settlement: Settlement) -> list[str]:
        """Resolve the dead letters handling this event makes moot (dlq_resolution.settle)."""
        ...


class Storage(Protocol):
    """Where the runtime keeps its inbox, outbox and dead letters of named work."""

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """A transaction: committed when the block ends, rolled back if it raises."""
        ...

    async def seen(self, consumer: str, topic: str, event_ids: Sequence[str]) -> set[str]:
        """Which of these ids the consumer's inbox holds (outside any transaction)."""
        ...

    async def remember(self, consumer: str, topic: str, settlement: Settlement) -> None:
        """Note a dead letter of named work before it is sent (dlq_resolution.remember)."""
        ...


class PgStorage:
    """The runtime's tables in the service's PostgreSQL schema."""

    def __init__(self, pool: asyncpg.Pool, schema: str) -> None:
        self._pool = pool
        self._schema = schema

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield _PgTransaction(conn, self._schema)

    async def seen(self, consumer: str, topic: str, event_ids: Sequence[str]) -> set[str]:
        rows = await self._pool.fetch(
            "SELECT event_id FROM inbox WHERE consumer = $1 AND topic = $2"
            " AND event_id = ANY($3::text[])",
            consumer,
            topic,
            list(event_ids),
        )
        return {r["event_id"] for r in rows}

    async def remember(self, consumer: str, topic: str, settlement: Settlement) -> None:
        await remember(self._pool, consumer, topic, settlement)


class _PgTransaction:
    def __init__(self, conn: asyncpg.Connection, schema: str) -> None:
        self._conn = conn
        self._schema = schema

    @property
    def conn(self) -> asyncpg.Connection:
        return self._conn

    async def claim(self, consumer: str, topic: str, event_id: str) -> bool:
        fresh = await self._conn.fetchval(
            "INSERT INTO inbox (consumer, topic, event_id) VALUES ($1, $2, $3) "
            "ON CONFLICT DO NOTHING RETURNING true",
            consumer,
            topic,
            event_id,
        )
        return bool(fresh)

    async def claim_all(self, consumer: str, topic: str, event_ids: Sequence[str]) -> set[str]:
        rows = await self._conn.fetch(
            "INSERT INTO inbox (consumer, topic, event_id) SELECT $1, $2, unnest($3::text[])"
            " ON CONFLICT DO NOTHING RETURNING event_id",
            consumer,
            topic,
            list(event_ids),
        )
        return {r["event_id"] for r in rows}

    async def release(self, consumer: str, topic: str, event_ids: Sequence[str]) -> None:
        await self._conn.execute(
            "DELETE FROM inbox WHERE consumer = $1 AND topic = $2 AND event_id = ANY($3::text[])",
            consumer,
            topic,
            list(event_ids),
        )

    async def enqueue(self, events: Sequence[Envelope]) -> None:
        await enqueue(self._conn, self._schema, events)

    async def settle(self, consumer: str, topic: str, settlement: Settlement) -> list[str]:
        return await settle(self._conn, self._schema, consumer, topic, settlement)
