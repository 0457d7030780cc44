"""Dead letters that need no action any more, and the records that say so in the DLQ.

A dead letter says that a consumer group could not handle an event. It is resolved once that
group has handled the event after all: a replay that worked, or that found the event handled
already. For a route that names its work (`Effect.work_key`: say, one account in one
target), it is also resolved once the group has handled a later event of the same work
(the saga's next round, after the target came back): replaying the older event could no
longer do anything the later one did not.

The group then writes a resolution record to the DLQ, through its outbox and so in the very
transaction that handled the event: no value, the record key of the event, the header
`accord-resolves` (a JSON array) naming the events whose dead letters by this group it
resolves, and `accord-consumer`. `accord dlq` reads them to hide what is resolved; no
consumer takes them (accord.runtime.dlq.meant_for).

The dead letters of named work wait in the `dead_letters` table until resolved, so that a
later event of the work knows which ones to resolve; a replay knows its own event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from accord.events import Envelope
from accord.events.topics import dlq_for
from accord.runtime.dlq import CONSUMER_HEADER, RESOLVES_HEADER, replayed_for
from accord.runtime.outbox import OutboxRecord, enqueue_records
from accord.runtime.records import Record
from accord.runtime.routes import Effect, Route


@dataclass(frozen=True)
class Settlement:
    """What handling an event resolves (and what a dead letter of it is about)."""

    envelope: Envelope
    key: bytes | None
    """The record key, which the resolution record keeps (same key, same DLQ partition)."""
    work_key: str | None
    """The route's name for the work, if it names it."""
    replay: bool
    """The record is a replay: handling it resolves its own dead letters."""

    @classmethod
    def of(cls, record: Record, envelope: Envelope, route: Route | None) -> Settlement | None:
        """What handling this record would resolve; None when nothing can be."""
        namer = route.work_key if isinstance(route, Effect) else None
        work_key = namer(envelope) if namer is not None else None
        replay = replayed_for(record.headers) is not None
        if work_key is None and not replay:
            return None
        return cls(envelope, record.key, work_key, replay)


async def remember(
    conn: asyncpg.Connection | asyncpg.Pool, consumer: str, topic: str, settlement: Settlement
) -> None:
    """Note a dead letter of named work (before it is sent), for a later event to resolve."""
    if settlement.work_key is None:
        return
    await conn.execute(
        "INSERT INTO dead_letters (consumer, topic, work_key, event_id, event_time)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        consumer,
        topic,
        settlement.work_key,
        settlement.envelope.id,
        settlement.envelope.time,
    )


async def settle(
    conn: asyncpg.Connection, schema: str, consumer: str, topic: str, settlement: Settlement
) -> list[str]:
    """Resolve, in the transaction that handled the event, the dead letters it makes moot;
    the ids of their events (the resolution record goes out with the commit)."""
    resolved: list[str] = []
    if settlement.work_key is not None:
        rows = await conn.fetch(
            "DELETE FROM dead_letters WHERE consumer = $1 AND topic = $2 AND work_key = $3"
            " AND event_time <= $4 RETURNING event_id",
            consumer,
            topic,
            settlement.work_key,
            settlement.envelope.time,
        )
        resolved = sorted(r["event_id"] for r in rows)
    if settlement.replay and settlement.envelope.id not in resolved:
        resolved.append(settlement.envelope.id)
    record = resolution_record(consumer, topic, settlement, resolved)
    if record is not None:
        await enqueue_records(conn, schema, [record])
    return resolved


def resolution_record(
    consumer: str, topic: str, settlement: Settlement, resolved: list[str]
) -> OutboxRecord | None:
    """The DLQ record saying this group's dead letters of `resolved` need no action; None
    when nothing is resolved."""
    if not resolved:
        return None
    return OutboxRecord(
        event_id=settlement.envelope.id,
        topic=dlq_for(topic),
        key=settlement.key or b"",
        value=b"",
        headers=[
            (RESOLVES_HEADER, json.dumps(resolved).encode()),
            (CONSUMER_HEADER, consumer.encode()),
            ("accord-resolved-by", settlement.envelope.id.encode()),
            ("accord-resolved-at", datetime.now(UTC).isoformat().encode()),
        ],
    )
