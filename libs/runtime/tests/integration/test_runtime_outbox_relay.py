"""OutboxRelay against a real PostgreSQL and a real broker; trace context in the outbox."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable

import asyncpg
import pytest
from aiokafka.structs import ConsumerRecord
from opentelemetry.sdk.trace import TracerProvider

from accord.events import Envelope, from_kafka
from accord.runtime import db
from accord.runtime.outbox import OutboxRelay, enqueue

from .conftest import RELAYED, Kit, eventually, started

pytestmark = pytest.mark.integration


def about(prefix: str) -> Callable[[ConsumerRecord[bytes, bytes]], bool]:
    def keep(record: ConsumerRecord[bytes, bytes]) -> bool:
        return record.key is not None and record.key.decode().startswith(prefix)

    return keep


def decoded(records: list[ConsumerRecord[bytes, bytes]]) -> list[Envelope]:
    return [from_kafka(r.topic, r.key, r.value, list(r.headers)) for r in records]


async def enqueue_in_transaction(
    pool: asyncpg.Pool, schema: str, events: list[Envelope], *, commit: bool = True
) -> None:
    class Rollback(Exception):
        pass

    try:
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, schema, events)
            if not commit:
                raise Rollback
    except Rollback:
        pass


async def run_relay(relay: OutboxRelay) -> asyncio.Task[None]:
    return asyncio.create_task(relay.run())


async def stop_relay(relay: OutboxRelay, task: asyncio.Task[None]) -> None:
    await relay.stop()
    await asyncio.wait_for(task, 20)


async def test_enqueued_rows_are_published_in_order_and_deleted(
    kit: Kit, pool: asyncpg.Pool, database: tuple[str, str], unique: str
) -> None:
    dsn, schema = database
    subject = f"u-{unique}-1"
    received = await kit.collect(RELAYED, about(f"u-{unique}"))
    committed = [started(subject) for _ in range(5)]
    rolled_back = [started(subject) for _ in range(2)]
    await enqueue_in_transaction(pool, schema, rolled_back, commit=False)
    await enqueue_in_transaction(pool, schema, committed[:3])
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 3
    # A long poll interval: rows enqueued while the relay runs must wake it by NOTIFY.
    relay = OutboxRelay(dsn, schema, kit.producer, poll_interval=60)
    task = await run_relay(relay)
    try:
        await received.wait_for(3, "the first three events")
        await enqueue_in_transaction(pool, schema, committed[3:])
        await received.wait_for(5, "all five events")
        await eventually(lambda: _outbox_is_empty(pool), what="the outbox to be emptied")
        assert relay.leader
        assert relay.published == 5
    finally:
        await stop_relay(relay, task)

    events = decoded(received.records)
    assert [e.id for e in events] == [e.id for e in committed]
    assert events == committed
    assert not {e.id for e in rolled_back} & {e.id for e in events}
    assert not relay.leader


async def _outbox_is_empty(pool: asyncpg.Pool) -> bool:
    count: int = await pool.fetchval("SELECT count(*) FROM outbox")
    return count == 0


async def test_one_relay_per_schema_leads_and_the_other_takes_over(
    kit: Kit, pool: asyncpg.Pool, database: tuple[str, str], unique: str
) -> None:
    dsn, schema = database
    received = await kit.collect(RELAYED, about(f"u-{unique}"))
    relays = [OutboxRelay(dsn, schema, kit.producer, poll_interval=0.1) for _ in range(2)]
    tasks = [await run_relay(r) for r in relays]
    try:
        await eventually(lambda: any(r.leader for r in relays), what="a leader")
        for _ in range(25):
            assert sum(r.leader for r in relays) == 1
            await asyncio.sleep(0.02)
        leader = next(i for i, r in enumerate(relays) if r.leader)
        other = 1 - leader
        before = started(f"u-{unique}-1")
        await enqueue_in_transaction(pool, schema, [before])
        await received.wait_for(1, "the event relayed by the first leader")
        # The relay counts a row once it is deleted, just after the broker acknowledged it.
        await eventually(lambda: relays[leader].published == 1, what="the count")
        assert relays[other].published == 0

        await stop_relay(relays[leader], tasks[leader])
        await eventually(lambda: relays[other].leader, what="the other relay to take over")
        after = started(f"u-{unique}-2")
        await enqueue_in_transaction(pool, schema, [after])
        await received.wait_for(2, "the event relayed by the new leader")
        await eventually(lambda: relays[other].published == 1, what="the new leader's count")
        assert [e.id for e in decoded(received.records)] == [before.id, after.id]
    finally:
        for relay, task in zip(relays, tasks, strict=True):
            if not task.done():
                await stop_relay(relay, task)


async def test_relays_of_two_schemas_lead_side_by_side(
    kit: Kit, database: tuple[str, str], unique: str
) -> None:
    dsn, schema = database
    other_schema = f"{schema}_b"
    await db.migrate(dsn, other_schema, [])
    relays = [OutboxRelay(dsn, s, kit.producer, poll_interval=0.1) for s in (schema, other_schema)]
    tasks = [await run_relay(r) for r in relays]
    try:
        await eventually(lambda: all(r.leader for r in relays), what="both relays to lead")
    finally:
        for relay, task in zip(relays, tasks, strict=True):
            await stop_relay(relay, task)


async def test_an_event_enqueued_inside_a_span_carries_its_trace(
    kit: Kit, pool: asyncpg.Pool, database: tuple[str, str], unique: str
) -> None:
    dsn, schema = database
    received = await kit.collect(RELAYED, about(f"u-{unique}"))
    # A provider of our own: the process-wide one belongs to whoever set it first.
    tracer = TracerProvider(shutdown_on_exit=False).get_tracer("test")
    traced, untraced = started(f"u-{unique}-1"), started(f"u-{unique}-2")
    with tracer.start_as_current_span("admin request") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        span_id = format(span.get_span_context().span_id, "016x")
        await enqueue_in_transaction(pool, schema, [traced])
    await enqueue_in_transaction(pool, schema, [untraced])

    rows = await pool.fetch("SELECT event_id, headers FROM outbox ORDER BY id")
    headers = {r["event_id"]: dict(json.loads(r["headers"])) for r in rows}
    version, header_trace_id, parent_id, _flags = headers[traced.id]["ce_traceparent"].split("-")
    assert (version, header_trace_id, parent_id) == ("00", trace_id, span_id)
    assert "ce_traceparent" not in headers[untraced.id]

    relay = OutboxRelay(dsn, schema, kit.producer, poll_interval=0.1)
    task = await run_relay(relay)
    try:
        events = {e.id: e for e in decoded(await received.wait_for(2, "both events"))}
    finally:
        await stop_relay(relay, task)
    traceparent = events[traced.id].traceparent
    assert traceparent is not None
    assert traceparent.split("-")[1] == trace_id
    assert events[untraced.id].traceparent is None


async def test_a_schema_name_too_long_for_the_notify_channel_is_refused(
    fresh_database: str,
) -> None:
    # pg_notify refuses channel names of 64 bytes or more: accord_outbox_ + 41+ characters.
    schema = "rt_" + uuid.uuid4().hex + "_" + "x" * 20
    with pytest.raises(ValueError, match="at most 40 characters"):
        await db.migrate(fresh_database, schema, [])


async def test_enqueue_works_for_the_longest_schema_name(fresh_database: str) -> None:
    schema = "rt_" + uuid.uuid4().hex[:8] + "_" + "x" * 28
    assert len(schema) == 40
    await db.migrate(fresh_database, schema, [])
    pool = await db.create_pool(fresh_database, schema, max_size=2)
    try:
        await enqueue_in_transaction(pool, schema, [started("u-long-1")])
        assert await pool.fetchval("SELECT count(*) FROM outbox") == 1
    finally:
        await pool.close()
