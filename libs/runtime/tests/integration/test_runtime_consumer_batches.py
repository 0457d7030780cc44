"""ConsumerLoop in batch mode: one transaction per partition batch, a poison record isolated."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import pytest

from accord.events import Envelope, to_kafka
from accord.runtime.consumer import BatchItem, HandlerContext

from .conftest import (
    CONSUMED,
    Kit,
    LoopStarter,
    Recorder,
    completed,
    eventually,
    failed_because_of,
)

pytestmark = pytest.mark.integration

DLQ = f"{CONSUMED}.dlq"


class BatchRecorder:
    """Writes one row per event of its own subjects, in the batch's transaction."""

    def __init__(self, prefix: str, poison: str | None = None) -> None:
        self.prefix = prefix
        self.poison = poison
        self.batches: list[int] = []
        self.dead_letters: list[bytes | None] = []

    async def __call__(self, items: Sequence[BatchItem], ctx: HandlerContext) -> list[Envelope]:
        mine = [
            (r, e) for r, e in items if r.key is not None and r.key.decode().startswith(self.prefix)
        ]
        emitted = []
        for record, envelope in mine:
            if envelope is None:
                self.dead_letters.append(record.value)
                continue
            if self.poison and envelope.subject == self.poison:
                raise RuntimeError("poisoned")
            await ctx.conn.execute(
                "INSERT INTO batched (event_id, xid) VALUES ($1, pg_current_xact_id()::text)"
                " ON CONFLICT DO NOTHING",
                envelope.id,
            )
            emitted.append(failed_because_of(envelope, ctx.source))
        if mine:
            self.batches.append(len(mine))
        return emitted


@pytest.fixture
async def batched(pool: asyncpg.Pool) -> asyncpg.Pool:
    await pool.execute("CREATE TABLE batched (event_id text PRIMARY KEY, xid text NOT NULL)")
    return pool


async def rows(pool: asyncpg.Pool) -> dict[str, str]:
    return {r["event_id"]: r["xid"] for r in await pool.fetch("SELECT * FROM batched")}


async def test_a_partition_batch_commits_in_one_transaction_with_its_events(
    kit: Kit, batched: asyncpg.Pool, start_loop: LoopStarter, unique: str
) -> None:
    handler = BatchRecorder(f"u-{unique}")
    events = [completed(f"u-{unique}-{n}") for n in range(20)]
    for event in events:
        await kit.publish(event, partition=0)

    await start_loop({CONSUMED: Recorder("nobody")}, batch_handler=handler)
    stored = await eventually(
        lambda: _all(batched, {e.id for e in events}), what="every event stored"
    )

    # Published before the loop started, so fetched together: fewer transactions than events.
    assert len(set(stored.values())) < len(events)
    # The relay is not running here: the batch's events wait in the outbox.
    assert await batched.fetchval("SELECT count(*) FROM outbox") == len(events)
    outbox_xids = {r["x"] for r in await batched.fetch("SELECT xmin::text AS x FROM outbox")}
    assert outbox_xids <= set(stored.values())
    assert await batched.fetchval("SELECT count(*) FROM inbox") == 0


async def test_a_batch_handler_takes_the_types_it_names_with_no_routes(
    kit: Kit, batched: asyncpg.Pool, start_loop: LoopStarter, unique: str
) -> None:
    handler = BatchRecorder(f"u-{unique}")
    events = [completed(f"u-{unique}-{n}") for n in range(3)]
    for event in events:
        await kit.publish(event)

    await start_loop({}, topics=[CONSUMED], batch_handler=handler, batch_types=[CONSUMED])

    stored = await eventually(
        lambda: _all(batched, {e.id for e in events}), what="every event stored"
    )
    assert set(stored) >= {e.id for e in events}


async def test_a_record_that_fails_the_batch_is_isolated_and_dead_lettered_alone(
    kit: Kit, batched: asyncpg.Pool, start_loop: LoopStarter, unique: str
) -> None:
    poison = f"u-{unique}-poison"
    handler = BatchRecorder(f"u-{unique}", poison=poison)
    events = [completed(f"u-{unique}-{n}") for n in range(5)]
    bad = completed(poison)
    for event in [*events[:2], bad, *events[2:]]:
        await kit.publish(event, partition=1)

    await start_loop(
        {CONSUMED: Recorder("nobody")},
        topics=[CONSUMED, DLQ],
        batch_handler=handler,
        max_attempts=2,
    )

    await eventually(lambda: _all(batched, {e.id for e in events}), what="the good events")
    # The poisoned record comes back from the DLQ as a dead letter (no envelope).
    await eventually(lambda: handler.dead_letters, what="the dead letter")
    assert handler.dead_letters == [to_kafka(bad).value]
    assert bad.id not in await rows(batched)


async def test_an_undecodable_record_is_dead_lettered_and_the_batch_goes_on(
    kit: Kit, batched: asyncpg.Pool, start_loop: LoopStarter, unique: str
) -> None:
    handler = BatchRecorder(f"u-{unique}")
    good = completed(f"u-{unique}-good")
    broken = to_kafka(completed(f"u-{unique}-broken"))
    await kit.send(CONSUMED, broken.key, b"{not json", list(broken.headers), partition=2)
    await kit.publish(good, partition=2)

    await start_loop({CONSUMED: Recorder("nobody")}, topics=[CONSUMED, DLQ], batch_handler=handler)

    await eventually(lambda: _all(batched, {good.id}), what="the good event")
    await eventually(lambda: handler.dead_letters, what="the dead letter")
    assert handler.dead_letters == [b"{not json"]


async def _all(pool: asyncpg.Pool, ids: set[str]) -> dict[str, str] | None:
    stored = await rows(pool)
    return stored if ids <= set(stored) else None
