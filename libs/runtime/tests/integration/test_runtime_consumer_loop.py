"""ConsumerLoop against a real broker and a real PostgreSQL: inbox, outbox, DLQ, offsets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence

import asyncpg
import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from accord.events import Envelope, from_kafka, to_kafka
from accord.runtime import db
from accord.runtime.consumer import Effect, EffectContext, GaveUp, HandlerContext
from accord.runtime.errors import PermanentError
from accord.runtime.outbox import enqueue

from .conftest import (
    CONSUMED,
    EMITTED,
    Kit,
    LoopStarter,
    Recorder,
    RunningLoop,
    completed,
    eventually,
    failed_because_of,
    header,
)

pytestmark = pytest.mark.integration

DLQ = f"{CONSUMED}.dlq"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def inbox_ids(pool: asyncpg.Pool, group: str) -> list[str]:
    rows = await pool.fetch("SELECT event_id FROM inbox WHERE consumer = $1", group)
    return [r["event_id"] for r in rows]


async def outbox_envelopes(pool: asyncpg.Pool) -> list[Envelope]:
    rows = await pool.fetch("SELECT topic, key, value, headers FROM outbox ORDER BY id")
    return [
        from_kafka(
            r["topic"],
            r["key"],
            r["value"],
            [(name, value.encode()) for name, value in json.loads(r["headers"])],
        )
        for r in rows
    ]


def from_group(group: str, prefix: str) -> Callable[[ConsumerRecord[bytes, bytes]], bool]:
    """Keeps the dead letters of one consumer group about one test's subjects."""

    def keep(record: ConsumerRecord[bytes, bytes]) -> bool:
        return (
            record.key is not None
            and record.key.decode().startswith(prefix)
            and header(record, "accord-consumer") == group
        )

    return keep


async def test_a_valid_event_is_handled_once_and_recorded_in_the_inbox(
    kit: Kit, pool: asyncpg.Pool, start_loop: LoopStarter, unique: str
) -> None:
    recorder = Recorder(f"u-{unique}")
    running = await start_loop({CONSUMED: recorder})
    event = completed(f"u-{unique}-1")

    await kit.publish(event)
    await kit.barrier(recorder)

    assert recorder.count(event.id) == 1
    assert next(e for e in recorder.calls if e.id == event.id) == event
    assert event.id in await inbox_ids(pool, f"rt-{unique}")
    assert running.loop.stats.handled >= 1
    assert running.loop.running
    await running.stop()
    assert not running.loop.running


async def test_the_same_event_published_twice_is_handled_once(
    kit: Kit, pool: asyncpg.Pool, start_loop: LoopStarter, unique: str
) -> None:
    recorder = Recorder(f"u-{unique}")
    running = await start_loop({CONSUMED: recorder})
    # Everything already on the topic (other tests' events) is behind us after this. Twice:
    # a handler sees a record inside its group's transaction, and the group's duplicates
    # are counted after it commits; the second markers come in later groups.
    await kit.barrier(recorder)
    await kit.barrier(recorder)
    duplicates_before = running.loop.stats.duplicates
    event = completed(f"u-{unique}-1")

    await kit.publish(event)
    await kit.publish(event)
    await kit.barrier(recorder)
    await kit.barrier(recorder)

    assert recorder.count(event.id) == 1
    assert running.loop.stats.duplicates - duplicates_before == 1
    assert (await inbox_ids(pool, f"rt-{unique}")).count(event.id) == 1


async def test_emitted_events_join_the_handlers_transaction_in_the_outbox(
    kit: Kit, pool: asyncpg.Pool, start_loop: LoopStarter, unique: str
) -> None:
    await pool.execute("CREATE TABLE effects (event_id text PRIMARY KEY, xid text NOT NULL)")

    async def apply(envelope: Envelope, ctx: HandlerContext) -> Sequence[Envelope]:
        await ctx.conn.execute(
            "INSERT INTO effects VALUES ($1, pg_current_xact_id()::xid::text)", envelope.id
        )
        return [failed_because_of(envelope, ctx.source), failed_because_of(envelope, ctx.source)]

    recorder = Recorder(f"u-{unique}", apply)
    await start_loop({CONSUMED: recorder})
    event = completed(f"u-{unique}-1").model_copy(update={"traceparent": TRACEPARENT})

    await kit.publish(event)
    await eventually(lambda: recorder.count(event.id) == 1, what="the event to be handled")
    emitted = await eventually(lambda: outbox_envelopes(pool), what="the outbox rows")

    assert [e.type for e in emitted] == [EMITTED, EMITTED]
    assert {e.causationid for e in emitted} == {event.id}
    assert {e.correlationid for e in emitted} == {event.correlationid}
    assert {e.subject for e in emitted} == {event.subject}
    assert {e.source for e in emitted} == {"test/runtime"}
    # The consumer span continues the incoming trace, and the outbox stamps it on the replies.
    assert {e.traceparent.split("-")[1] for e in emitted if e.traceparent} == {
        TRACEPARENT.split("-")[1]
    }
    assert all(e.traceparent for e in emitted)
    # One transaction wrote the inbox row, the handler's own row and the outbox rows.
    xids = await pool.fetch(
        "SELECT xmin::text AS xid FROM inbox WHERE event_id = $1 "
        "UNION ALL SELECT xid FROM effects WHERE event_id = $1 "
        "UNION ALL SELECT xmin::text FROM outbox",
        event.id,
    )
    assert len(xids) == 4
    assert len({r["xid"] for r in xids}) == 1


async def test_a_failing_handler_leaves_no_inbox_row_no_effect_and_no_outbox_row(
    kit: Kit,
    pool: asyncpg.Pool,
    database: tuple[str, str],
    start_loop: LoopStarter,
    unique: str,
) -> None:
    await pool.execute("CREATE TABLE effects (event_id text PRIMARY KEY)")
    group = f"rt-{unique}"
    dead = await kit.collect(DLQ, from_group(group, f"u-{unique}"))

    async def half_done(envelope: Envelope, ctx: HandlerContext) -> Sequence[Envelope]:
        await ctx.conn.execute("INSERT INTO effects VALUES ($1)", envelope.id)
        await enqueue(ctx.conn, database[1], [failed_because_of(envelope, ctx.source)])
        raise PermanentError("target refused the change")

    recorder = Recorder(f"u-{unique}", half_done)
    await start_loop({CONSUMED: recorder})
    event = completed(f"u-{unique}-1")

    await kit.publish(event)
    await dead.wait_for(1, "the dead letter")

    assert event.id not in await inbox_ids(pool, group)
    assert await pool.fetchval("SELECT count(*) FROM effects") == 0
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_contract_violations_are_dead_lettered_and_the_loop_goes_on(
    kit: Kit, pool: asyncpg.Pool, start_loop: LoopStarter, unique: str
) -> None:
    group = f"rt-{unique}"
    dead = await kit.collect(DLQ, from_group(group, f"u-{unique}"))
    recorder = Recorder(f"u-{unique}")
    running = await start_loop({CONSUMED: recorder})

    valid = to_kafka(completed(f"u-{unique}-missing"))
    value = json.loads(valid.value)
    del value["duration_ms"]
    missing_field = await kit.send(
        CONSUMED, valid.key, json.dumps(value).encode(), list(valid.headers)
    )
    valid = to_kafka(completed(f"u-{unique}-notjson"))
    not_json = await kit.send(CONSUMED, valid.key, b"{not json", list(valid.headers))
    valid = to_kafka(completed(f"u-{unique}-noid"))
    without_id = [(k, v) for k, v in valid.headers if k != "ce_id"] + [("x-trace", b"kept")]
    no_id = await kit.send(CONSUMED, valid.key, valid.value, without_id)
    later = completed(f"u-{unique}-later")
    await kit.publish(later)

    await eventually(lambda: recorder.count(later.id) == 1, what="the later valid event")
    letters = {r.key.decode(): r for r in await dead.wait_for(3, "three dead letters") if r.key}
    assert set(letters) == {f"u-{unique}-missing", f"u-{unique}-notjson", f"u-{unique}-noid"}
    expected = {
        f"u-{unique}-missing": (missing_field, "duration_ms", json.dumps(value).encode()),
        f"u-{unique}-notjson": (not_json, "JSON", b"{not json"),
        f"u-{unique}-noid": (no_id, "missing CloudEvents attributes: id", valid.value),
    }
    for key, (meta, problem, original_value) in expected.items():
        letter = letters[key]
        assert problem in (header(letter, "accord-error") or ""), key
        assert header(letter, "accord-error-type") == "invalid-event"
        assert header(letter, "accord-original-topic") == CONSUMED
        assert header(letter, "accord-original-partition") == str(meta.partition)
        assert header(letter, "accord-original-offset") == str(meta.offset)
        assert header(letter, "accord-failed-at")
        assert letter.value == original_value
    # The original headers travel with the dead letter.
    assert header(letters[f"u-{unique}-noid"], "x-trace") == "kept"
    assert recorder.ids == {later.id}
    assert later.id in await inbox_ids(pool, group)
    assert running.loop.stats.dead_lettered >= 3


async def test_a_permanent_error_is_dead_lettered_at_once(
    kit: Kit, start_loop: LoopStarter, unique: str
) -> None:
    group = f"rt-{unique}"
    dead = await kit.collect(DLQ, from_group(group, f"u-{unique}"))

    async def refuse(envelope: Envelope, ctx: HandlerContext) -> Sequence[Envelope]:
        raise PermanentError(f"target refused {envelope.subject}")

    recorder = Recorder(f"u-{unique}", refuse)
    await start_loop({CONSUMED: recorder})
    event = completed(f"u-{unique}-1")

    meta = await kit.publish(event)
    [letter] = await dead.wait_for(1, "the dead letter")

    assert recorder.count(event.id) == 1
    assert header(letter, "accord-error") == f"target refused u-{unique}-1"
    assert header(letter, "accord-error-type") == "PermanentError"
    assert header(letter, "accord-original-offset") == str(meta.offset)
    assert header(letter, "ce_id") == event.id
    assert from_kafka(DLQ, letter.key, letter.value, list(letter.headers)).id == event.id


async def test_a_failing_handler_is_retried_then_dead_lettered(
    kit: Kit, start_loop: LoopStarter, unique: str
) -> None:
    group = f"rt-{unique}"
    dead = await kit.collect(DLQ, from_group(group, f"u-{unique}"))

    async def crash(envelope: Envelope, ctx: HandlerContext) -> Sequence[Envelope]:
        raise KeyError("no such column")

    recorder = Recorder(f"u-{unique}", crash)
    running = await start_loop({CONSUMED: recorder}, max_attempts=3)
    event = completed(f"u-{unique}-1")
    after = completed(f"u-{unique}-2")

    await kit.publish(event)
    await kit.publish(after)
    letters = await dead.wait_for(2, "both dead letters")

    assert recorder.count(event.id) == 3
    assert recorder.count(after.id) == 3
    first = next(r for r in letters if header(r, "ce_id") == event.id)
    assert header(first, "accord-error") == "handler failed 3 times: KeyError: 'no such column'"
    assert header(first, "accord-error-type") == "handler-error"
    assert running.loop.stats.retries >= 6
    assert running.loop.stats.last_error == "KeyError: 'no such column'"


async def test_offsets_are_committed_only_for_handled_records(
    kit: Kit,
    pool: asyncpg.Pool,
    database: tuple[str, str],
    start_loop: LoopStarter,
    unique: str,
) -> None:
    group = f"rt-{unique}"
    in_flight, release = asyncio.Event(), asyncio.Event()
    subject = f"u-{unique}-1"
    first, held, behind = completed(subject), completed(subject), completed(subject)

    async def hold(envelope: Envelope, ctx: HandlerContext) -> Sequence[Envelope]:
        if envelope.id == held.id:
            in_flight.set()
            await release.wait()
        return []

    recorder = Recorder(f"u-{unique}", hold)
    running = await start_loop({CONSUMED: recorder}, group=group)
    # One subject, one key: all three land on one partition, in this order.
    first_meta = await kit.publish(first)
    held_meta = await kit.publish(held)
    behind_meta = await kit.publish(behind)
    assert first_meta.partition == held_meta.partition == behind_meta.partition
    tp = TopicPartition(CONSUMED, held_meta.partition)

    await asyncio.wait_for(in_flight.wait(), 20)
    running.loop.stop()
    release.set()
    await asyncio.wait_for(running.task, 20)

    # The record in flight finished and was committed; the one behind it was not handled.
    assert recorder.ids == {first.id, held.id}
    assert await running.consumer.committed(tp) == held_meta.offset + 1
    await running.stop()

    # A new loop in the same group, with a fresh inbox (so a re-delivery would be handled
    # again, not dropped as a duplicate), starts after the committed offset.
    dsn, _ = database
    schema = f"rt_{unique}_again"
    await db.migrate(dsn, schema, [])
    again_pool = await db.create_pool(dsn, schema, max_size=3)
    try:
        again = Recorder(f"u-{unique}")
        second = await start_loop({CONSUMED: again}, group=group, on_pool=again_pool, schema=schema)
        await eventually(lambda: behind.id in again.ids, what="the unhandled record")
        assert again.ids == {behind.id}
        await eventually(
            lambda: _committed_at_least(second, tp, behind_meta.offset + 1),
            what="the commit of the record behind",
        )
        await second.stop()
    finally:
        await again_pool.close()


async def _committed_at_least(running: RunningLoop, tp: TopicPartition, offset: int) -> bool:
    committed = await running.consumer.committed(tp)
    return committed is not None and committed >= offset


async def test_a_dead_letter_handler_reads_the_dlq_raw_once(
    kit: Kit, pool: asyncpg.Pool, start_loop: LoopStarter, unique: str
) -> None:
    prefix = f"u-{unique}"
    seen: list[ConsumerRecord[bytes, bytes]] = []

    async def on_dead_letter(
        record: ConsumerRecord[bytes, bytes], ctx: HandlerContext
    ) -> Sequence[Envelope]:
        if record.key is not None and record.key.decode().startswith(prefix):
            seen.append(record)
        return []

    recorder = Recorder(prefix)
    await start_loop(
        {CONSUMED: recorder}, topics=[CONSUMED, DLQ], dead_letter_handler=on_dead_letter
    )
    broken = to_kafka(completed(f"{prefix}-broken"))

    await kit.send(CONSUMED, broken.key, b"not json at all", list(broken.headers))
    await eventually(lambda: seen, what="the dead letter to come back to the handler")
    await kit.barrier(recorder)

    assert len(seen) == 1
    assert seen[0].value == b"not json at all"
    assert header(seen[0], "accord-error-type") == "invalid-event"
    position = f"{seen[0].partition}:{seen[0].offset}"
    assert await pool.fetchval("SELECT topic FROM inbox WHERE event_id = $1", position) == DLQ


async def test_stopping_while_the_database_is_down_leaves_the_record_uncommitted(
    kit: Kit, start_loop: LoopStarter, unique: str
) -> None:
    group = f"rt-{unique}"
    attempts = asyncio.Event()
    subject = f"u-{unique}-down"
    stuck = completed(subject)

    async def database_down(envelope: Envelope, ctx: HandlerContext) -> Sequence[Envelope]:
        attempts.set()
        raise OSError("connection refused")  # an infrastructure error: retried, never dropped

    recorder = Recorder(f"u-{unique}", database_down)
    running = await start_loop({CONSUMED: recorder}, group=group)
    meta = await kit.publish(stuck)
    tp = TopicPartition(CONSUMED, meta.partition)
    await asyncio.wait_for(attempts.wait(), 20)

    running.loop.stop()
    # run() returns promptly instead of retrying until the shutdown timeout.
    await asyncio.wait_for(running.task, 5)
    committed = await running.consumer.committed(tp)
    assert committed is None or committed <= meta.offset
    await running.stop()


async def test_a_slow_partition_does_not_hold_up_polling_or_the_others(
    kit: Kit, pool: asyncpg.Pool, start_loop: LoopStarter, unique: str
) -> None:
    release = asyncio.Event()
    entered = asyncio.Event()

    async def slow_on_the_first(envelope: Envelope, ctx: HandlerContext) -> Sequence[Envelope]:
        if envelope.subject.endswith("-slow"):
            entered.set()
            await release.wait()  # a target that takes its time
        return []

    recorder = Recorder(f"u-{unique}", slow_on_the_first)
    running = await start_loop({CONSUMED: recorder})
    slow = completed(f"u-{unique}-slow")
    await kit.publish(slow, partition=0)
    await asyncio.wait_for(entered.wait(), 30)

    # Published after the slow record was fetched: handled while it is still in flight.
    quick = [completed(f"u-{unique}-q{p}") for p in (1, 2)]
    for partition, event in zip((1, 2), quick, strict=True):
        await kit.publish(event, partition=partition)
    await eventually(lambda: all(recorder.count(e.id) == 1 for e in quick), what="quick ones")
    assert recorder.count(slow.id) == 1
    assert slow.id not in await inbox_ids(pool, running.loop._group)

    release.set()
    await kit.barrier(recorder)
    assert recorder.count(slow.id) == 1
    assert slow.id in await inbox_ids(pool, running.loop._group)


async def test_an_effect_runs_with_no_connection_held_and_commits_its_events_after(
    kit: Kit,
    pool: asyncpg.Pool,
    database: tuple[str, str],
    start_loop: LoopStarter,
    unique: str,
) -> None:
    # The loop gets a pool of one connection: the effect can take it only if the loop holds
    # none while the effect runs (a slow target must not pin a connection).
    single = await db.create_pool(*database, max_size=1)
    free_during_effect: list[bool] = []
    attempts: list[str] = []

    async def call_a_target(envelope: Envelope, ctx: EffectContext) -> Sequence[Envelope]:
        if not envelope.subject.startswith(f"u-{unique}"):
            return []
        try:
            async with single.acquire(timeout=2):
                free_during_effect.append(True)
        except TimeoutError:
            free_during_effect.append(False)
        attempts.append(envelope.id)
        if len(attempts) == 1:
            raise RuntimeError("target hiccup")  # retried: nothing recorded yet
        return [completed(f"{envelope.subject}-done")]

    try:
        running = await start_loop({CONSUMED: Effect(call_a_target)}, on_pool=single)
        event = completed(f"u-{unique}-1")
        await kit.publish(event)
        await eventually(lambda: len(attempts) == 2, what="the retried effect")
        await eventually(
            lambda: _inbox_has(pool, running.loop._group, event.id), what="the inbox row"
        )
        await kit.publish(event)  # a duplicate: the effect must not run again
        await asyncio.sleep(1.0)
        await running.stop()
    finally:
        await single.close()

    assert attempts == [event.id, event.id]
    assert free_during_effect == [True, True]
    assert [e.subject for e in await outbox_envelopes(pool)] == [f"u-{unique}-1-done"]


async def test_an_effect_that_gives_up_is_dead_lettered_and_runs_again_when_replayed(
    kit: Kit, pool: asyncpg.Pool, start_loop: LoopStarter, unique: str
) -> None:
    calls: list[str] = []

    async def give_up_once(envelope: Envelope, ctx: EffectContext) -> GaveUp | Sequence[Envelope]:
        if not envelope.subject.startswith(f"u-{unique}"):
            return []
        calls.append(envelope.id)
        if len(calls) == 1:
            return GaveUp([completed(f"{envelope.subject}-failed")], "target down for good")
        return [completed(f"{envelope.subject}-done")]

    async def project(envelope: Envelope, ctx: HandlerContext) -> Sequence[Envelope]:
        if not envelope.subject.startswith(f"u-{unique}-1"):
            return []
        # Joins the commit transaction: the inbox row is already there.
        claimed = await ctx.conn.fetchval(
            "SELECT count(*) FROM inbox WHERE event_id LIKE $1", f"{envelope.id}%"
        )
        return [completed(f"{envelope.subject}-recorded-{claimed}")]

    running = await start_loop({CONSUMED: Effect(give_up_once, record=project)})
    group = running.loop._group
    dead = await kit.collect(DLQ, from_group(group, f"u-{unique}"))
    event = completed(f"u-{unique}-1")

    await kit.publish(event)
    [letter] = await dead.wait_for(1, "the dead letter")
    await eventually(lambda: _inbox_has(pool, group, f"{event.id}@"), what="the inbox row")

    assert calls == [event.id]
    assert header(letter, "accord-error") == "target down for good"
    assert header(letter, "accord-error-type") == "retries-exhausted"
    assert from_kafka(DLQ, letter.key, letter.value, list(letter.headers)).id == event.id
    assert await mine(pool, unique) == [f"u-{unique}-1-failed", f"u-{unique}-1-recorded-1"]

    await kit.publish(event)  # the dead letter replayed: the same event, a new record
    await eventually(lambda: _inbox_has(pool, group, event.id), what="the replay's inbox row")
    await kit.publish(event)  # and a duplicate of that: handled once already
    await asyncio.sleep(1.0)
    await running.stop()

    assert calls == [event.id, event.id]
    assert (await mine(pool, unique))[2:] == [f"u-{unique}-1-done", f"u-{unique}-1-recorded-2"]


async def mine(pool: asyncpg.Pool, unique: str) -> list[str]:
    """Subjects of this test's events in the outbox, in order."""
    return [e.subject for e in await outbox_envelopes(pool) if e.subject.startswith(f"u-{unique}")]


async def _inbox_has(pool: asyncpg.Pool, group: str, event_id: str) -> bool:
    """Whether the inbox holds the id (or, for an id ending in @, one of its positions)."""
    ids = await inbox_ids(pool, group)
    if event_id.endswith("@"):
        return any(i.startswith(event_id) for i in ids)
    return event_id in ids
