"""Grouped transactions: records fetched together commit together, and a poison record goes
alone; and the slower polling of a quiet consumer.

Each grouping test publishes its events before its loop starts, so the loop fetches them in
one batch (with the other tests' events on the shared topic, which its Recorder ignores).
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import pytest

from accord.events import Envelope
from accord.runtime.consumer import HandlerContext, IdlePolling

from .conftest import (
    CONSUMED,
    FETCH_MAX_WAIT_MS,
    Kit,
    LoopStarter,
    Recorder,
    completed,
    eventually,
    failed_because_of,
    header,
)
from .test_runtime_consumer_loop import DLQ, from_group, inbox_ids, outbox_envelopes

pytestmark = pytest.mark.integration

COUNT = 5


def traceparent(i: int) -> str:
    return f"00-{i + 1:032x}-{i + 1:016x}-01"


async def test_records_fetched_together_commit_in_one_transaction_in_order(
    kit: Kit, pool: asyncpg.Pool, start_loop: LoopStarter, unique: str
) -> None:
    await pool.execute(
        "CREATE TABLE effects (n serial, event_id text PRIMARY KEY, xid text NOT NULL)"
    )

    async def apply(envelope: Envelope, ctx: HandlerContext) -> Sequence[Envelope]:
        await ctx.conn.execute(
            "INSERT INTO effects (event_id, xid) VALUES ($1, pg_current_xact_id()::xid::text)",
            envelope.id,
        )
        return [failed_because_of(envelope, ctx.source)]

    # One subject, one key, one partition: the order is the publishing order.
    events = [
        completed(f"u-{unique}-1").model_copy(update={"traceparent": traceparent(i)})
        for i in range(COUNT)
    ]
    for event in events:
        await kit.publish(event)
    recorder = Recorder(f"u-{unique}", apply)
    running = await start_loop({CONSUMED: recorder})

    rows = await eventually(
        lambda: _rows_if(pool, "SELECT event_id, xid FROM effects ORDER BY n", COUNT),
        what="every event's effect",
    )
    assert [r["event_id"] for r in rows] == [e.id for e in events]
    assert len({r["xid"] for r in rows}) == 1, "one transaction for the records fetched together"
    assert [e.id for e in recorder.calls] == [e.id for e in events]
    assert set(await inbox_ids(pool, f"rt-{unique}")) >= {e.id for e in events}
    # Each reply carries the trace of the event it answers, not its neighbour's.
    replies = {r.causationid: r for r in await outbox_envelopes(pool)}
    for i, event in enumerate(events):
        reply_trace = replies[event.id].traceparent
        assert reply_trace is not None
        assert reply_trace.split("-")[1] == traceparent(i).split("-")[1]
    assert running.loop.stats.handled >= COUNT


async def test_a_poison_record_in_a_group_is_dead_lettered_alone_and_the_rest_commit_once(
    kit: Kit, pool: asyncpg.Pool, start_loop: LoopStarter, unique: str
) -> None:
    group = f"rt-{unique}"
    dead = await kit.collect(DLQ, from_group(group, f"u-{unique}"))
    await pool.execute("CREATE TABLE effects (event_id text NOT NULL)")
    events = [completed(f"u-{unique}-1") for _ in range(4)]
    poison = events[2]

    async def apply(envelope: Envelope, ctx: HandlerContext) -> Sequence[Envelope]:
        await ctx.conn.execute("INSERT INTO effects VALUES ($1)", envelope.id)
        if envelope.id == poison.id:
            raise KeyError("no such column")
        return [failed_because_of(envelope, ctx.source)]

    for event in events:
        await kit.publish(event)
    recorder = Recorder(f"u-{unique}", apply)
    await start_loop({CONSUMED: recorder}, max_attempts=2)

    [letter] = await dead.wait_for(1, "the poison record's dead letter")
    await eventually(lambda: recorder.count(events[3].id) >= 1, what="the record behind it")
    await eventually(
        lambda: _rows_if(pool, "SELECT event_id FROM effects", 3), what="three effects"
    )

    assert header(letter, "ce_id") == poison.id
    # The group's attempt counts: two attempts in all, as with max_attempts=2 alone.
    assert header(letter, "accord-error") == "handler failed 2 times: KeyError: 'no such column'"
    assert recorder.count(poison.id) == 2
    # The rolled-back group left nothing behind: each good record's effect and reply once.
    effects = [r["event_id"] for r in await pool.fetch("SELECT event_id FROM effects")]
    good = [e.id for e in events if e.id != poison.id]
    assert sorted(effects) == sorted(good)
    replies = [e.causationid for e in await outbox_envelopes(pool)]
    assert sorted(replies) == sorted(good)
    inbox = await inbox_ids(pool, group)
    assert poison.id not in inbox
    assert all(inbox.count(i) == 1 for i in good)


async def test_an_event_twice_in_one_group_is_handled_once_and_the_rest_commit(
    kit: Kit, pool: asyncpg.Pool, start_loop: LoopStarter, unique: str
) -> None:
    group = f"rt-{unique}"
    first, twice, last = (completed(f"u-{unique}-1") for _ in range(3))
    # The group's claims are one INSERT ... SELECT unnest(...): the copy of `twice` in it is
    # the inbox's duplicate, not a second handling.
    for event in (first, twice, twice, last):
        await kit.publish(event)
    recorder = Recorder(f"u-{unique}", _reply)
    running = await start_loop({CONSUMED: recorder})

    ours = [first.id, twice.id, last.id]
    await eventually(
        lambda: _rows_if(
            pool,
            "SELECT event_id FROM inbox WHERE consumer = $1 AND event_id = ANY($2::text[])",
            3,
            group,
            ours,
        ),
        what="the group's commit",
    )
    assert [e.id for e in recorder.calls] == ours
    # The loop also claims the other tests' events on the shared topic: ours are there once.
    inbox = await inbox_ids(pool, group)
    assert sorted(i for i in inbox if i in ours) == sorted(ours)
    replies = [e.causationid for e in await outbox_envelopes(pool)]
    assert sorted(replies) == sorted(ours)
    assert running.loop.stats.duplicates >= 1


async def _reply(envelope: Envelope, ctx: HandlerContext) -> Sequence[Envelope]:
    return [failed_because_of(envelope, ctx.source)]


async def _rows_if(
    pool: asyncpg.Pool, query: str, count: int, *args: object
) -> list[asyncpg.Record] | None:
    rows = await pool.fetch(query, *args)
    return rows if len(rows) >= count else None


async def test_a_quiet_consumer_polls_slower_and_speeds_up_at_the_first_record(
    kit: Kit, start_loop: LoopStarter, unique: str
) -> None:
    waits: list[tuple[int | None, int | None]] = []

    async def note_the_wait(envelope: Envelope, ctx: HandlerContext) -> Sequence[Envelope]:
        waits.append((running.loop.fetch_wait_ms, running.loop.fetch_min_bytes))
        return []

    recorder = Recorder(f"u-{unique}", note_the_wait)
    # The shared topic goes quiet once the other tests' events are behind this loop. The
    # loop gathers 64 KiB per fetch while records flow (as the auditor does).
    running = await start_loop(
        {CONSUMED: recorder}, idle_polling=IdlePolling(400, after_s=0.3), fetch_min_bytes=65536
    )
    await kit.barrier(recorder)
    await eventually(lambda: running.loop.fetch_wait_ms == 400, what="the idle fetch wait")
    # Quiet, a fetch returns at the first record: gathering would make it wait the 400 ms.
    assert running.loop.fetch_min_bytes == 1
    event = completed(f"u-{unique}-1")

    await kit.publish(event)
    await eventually(lambda: recorder.count(event.id) == 1, what="the event after the quiet")

    # Back to the short wait, gathering again, as soon as the record came, before its
    # handler ran.
    assert waits[-1] == (FETCH_MAX_WAIT_MS, 65536)
