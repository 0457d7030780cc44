"""The runtime's tables in memory: inbox, outbox and dead letters of named work
(accord.runtime.storage's port), with transactions that commit whole or not at all.

A transaction stages its inbox rows, outbox rows and dead-letter deletions, and applies them
when its block ends without an error; one that raises leaves nothing behind. Transactions
are serialised, as the rows they touch would be in PostgreSQL.

Handlers get `conn` as HandlerContext.conn. It is no database: by default `NO_DATABASE`,
which raises on any use, so a handler that reaches for SQL fails loudly. A service's unit
tests route events to handlers whose ports ignore the connection and use in-memory
adapters (the `ports` of accord.runtime.routes.on), or pass their own fake as `conn`. The
handler's own state in those fakes is not rolled back with a failed transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import asyncpg

from accord.events import Envelope
from accord.runtime.dlq_resolution import Settlement, resolution_record
from accord.runtime.outbox import OutboxRecord, OutboxRow, outbox_records
from accord.runtime.storage import Transaction

_DeadLetterKey = tuple[str, str, str, str]
"""(consumer, topic, work_key, event_id), the dead_letters table's primary key."""


class NoDatabase:
    """The HandlerContext.conn of in-memory storage: any use says there is no database."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(
            f"conn.{name}: in-memory storage has no database; give the handler in-memory "
            "ports (see accord.runtime.memory.storage)"
        )

    def __repr__(self) -> str:
        return "NO_DATABASE"


NO_DATABASE = NoDatabase()


class MemoryStorage:
    """Inbox, outbox and dead letters of named work in memory; also the relay's outbox
    (accord.runtime.outbox.OutboxStore)."""

    def __init__(self, conn: object = NO_DATABASE) -> None:
        self.conn = conn
        """What handlers get as HandlerContext.conn."""
        self.inbox: set[tuple[str, str, str]] = set()
        """(consumer, topic, event id) of every event claimed."""
        self.outbox: list[OutboxRow] = []
        self.dead_letters: dict[_DeadLetterKey, datetime] = {}
        """Dead letters of named work waiting for a later event, with their event time."""
        self.failures: list[BaseException] = []
        """Errors the next transactions raise as they begin, one each (the database down)."""
        self.commits = 0
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()
        self._wakers: list[Callable[[], None]] = []

    def fail(self, *errors: BaseException) -> None:
        """Make the next transactions (and inbox reads) raise these errors, one each."""
        self.failures.extend(errors)

    def _check_up(self) -> None:
        if self.failures:
            raise self.failures.pop(0)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self._lock:
            self._check_up()
            tx = _MemoryTransaction(self)
            yield tx
            self._apply(tx)

    def _apply(self, tx: _MemoryTransaction) -> None:
        self.inbox |= tx.claimed
        for key in tx.deleted:
            self.dead_letters.pop(key, None)
        now = time.time()
        for record in tx.records:
            headers = list(record.headers)
            self.outbox.append(
                OutboxRow(next(self._ids), record.topic, record.key, record.value, headers, now)
            )
        self.commits += 1
        if tx.records:
            for wake in self._wakers:
                wake()

    async def seen(self, consumer: str, topic: str, event_ids: Sequence[str]) -> set[str]:
        self._check_up()
        return {e for e in event_ids if (consumer, topic, e) in self.inbox}

    async def remember(self, consumer: str, topic: str, settlement: Settlement) -> None:
        self._check_up()
        if settlement.work_key is None:
            return
        key = (consumer, topic, settlement.work_key, settlement.envelope.id)
        self.dead_letters.setdefault(key, settlement.envelope.time)

    # The relay's side (accord.runtime.outbox.OutboxStore)

    def on_enqueue(self, wake: Callable[[], None]) -> None:
        self._wakers.append(wake)

    async def fetch(self, limit: int) -> list[OutboxRow]:
        return self.outbox[:limit]

    async def delete(self, ids: Sequence[int]) -> None:
        gone = set(ids)
        self.outbox = [row for row in self.outbox if row.id not in gone]


@dataclass
class _MemoryTransaction:
    storage: MemoryStorage
    claimed: set[tuple[str, str, str]] = field(default_factory=set)
    records: list[OutboxRecord] = field(default_factory=list)
    deleted: set[_DeadLetterKey] = field(default_factory=set)

    @property
    def conn(self) -> asyncpg.Connection:
        return cast(asyncpg.Connection, self.storage.conn)

    async def claim(self, consumer: str, topic: str, event_id: str) -> bool:
        key = (consumer, topic, event_id)
        if key in self.storage.inbox or key in self.claimed:
            return False
        self.claimed.add(key)
        return True

    async def claim_all(self, consumer: str, topic: str, event_ids: Sequence[str]) -> set[str]:
        return {i for i in event_ids if await self.claim(consumer, topic, i)}

    async def release(self, consumer: str, topic: str, event_ids: Sequence[str]) -> None:
        self.claimed -= {(consumer, topic, i) for i in event_ids}

    async def enqueue(self, events: Sequence[Envelope]) -> None:
        self.records += outbox_records(events)

    async def settle(self, consumer: str, topic: str, settlement: Settlement) -> list[str]:
        resolved: list[str] = []
        if settlement.work_key is not None:
            moot = [
                key
                for key, time in self.storage.dead_letters.items()
                if key[:3] == (consumer, topic, settlement.work_key)
                and key not in self.deleted
                and time <= settlement.envelope.time
            ]
            self.deleted.update(moot)
            resolved = sorted(key[3] for key in moot)
        if settlement.replay and settlement.envelope.id not in resolved:
            resolved.append(settlement.envelope.id)
        record = resolution_record(consumer, topic, settlement, resolved)
        if record is not None:
            self.records.append(record)
        return resolved
