"""Dead letters as operators see them: a replay goes to the consumer groups that failed the
event and to no other, and a dead letter that no longer needs action is resolved."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from accord.events import Envelope
from accord.runtime.consumer import Effect, EffectContext, GaveUp, HandlerContext
from accord.runtime.dlq_tools import DeadEvent, read_dead_events, read_dead_letters, replay
from accord.runtime.errors import PermanentError
from accord.runtime.outbox import OutboxRelay

from .conftest import CONSUMED, Kit, LoopStarter, Recorder, completed, eventually
from .test_runtime_dlq_tools import accord

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def relay(kit: Kit, database: tuple[str, str]) -> AsyncIterator[OutboxRelay]:
    """Publishes the test schema's outbox (where resolution records wait for the commit)."""
    relay = OutboxRelay(*database, kit.producer, poll_interval=0.1)
    task = asyncio.create_task(relay.run())
    try:
        yield relay
    finally:
        await relay.stop()
        await asyncio.wait_for(task, 20)


async def dead_event(event_id: str) -> DeadEvent | None:
    """The DLQ's entry for an event, if it has one."""
    return next((e for e in await read_dead_events(CONSUMED) if e.event_id == event_id), None)


async def dead_lettered(*events: Envelope) -> bool:
    """Whether every one of these events is in the DLQ."""
    ids = {x.event_id for x in await read_dead_letters(CONSUMED)}
    return {e.id for e in events} <= ids


async def published(pool: asyncpg.Pool) -> bool:
    """Whether the relay has published everything the outbox held."""
    return bool(await pool.fetchval("SELECT count(*) = 0 FROM outbox"))


async def listed(kafka_bootstrap: str, *options: str) -> dict[str, dict[str, Any]]:
    """`accord dlq list --json` of the consumed topic, by event id."""
    code, out, err = await accord(
        kafka_bootstrap, "dlq", "list", CONSUMED, "--json", "--limit", "100000", *options
    )
    assert code == 0, err
    return {e["event_id"]: e for e in map(json.loads, out.splitlines())}


async def test_a_replay_reaches_only_the_group_that_failed_the_event(
    kit: Kit, start_loop: LoopStarter, unique: str
) -> None:
    prefix = f"u-{unique}"
    refusing = True

    async def refuse_until_fixed(envelope: Envelope, ctx: HandlerContext) -> Sequence[Envelope]:
        if refusing:
            raise PermanentError("not handled by this version")
        return []

    failing, fine = Recorder(prefix, refuse_until_fixed), Recorder(prefix)
    await start_loop({CONSUMED: failing}, group=f"rt-{unique}-failing")
    other = await start_loop({CONSUMED: fine}, group=f"rt-{unique}-fine")
    event = completed(f"{prefix}-1")

    await kit.publish(event)
    entry = await eventually(lambda: dead_event(event.id), what="the dead letter")
    # Twice: a group's duplicates are counted after its transaction, which saw the markers.
    await kit.barrier(fine)
    await kit.barrier(fine)
    duplicates = other.loop.stats.duplicates
    assert entry.consumers == {f"rt-{unique}-failing": 1}

    refusing = False  # the failing service is fixed; the operator replays the event
    assert await replay([entry]) == 1
    await eventually(lambda: failing.count(event.id) == 2, what="the replay in the failed group")
    await kit.barrier(fine)
    await kit.barrier(fine)

    # The group that had handled it never saw the replay, not even as a duplicate.
    assert fine.count(event.id) == 1
    assert other.loop.stats.duplicates == duplicates


async def test_a_replay_that_worked_resolves_its_dead_letter(
    kit: Kit,
    pool: asyncpg.Pool,
    relay: OutboxRelay,
    start_loop: LoopStarter,
    unique: str,
) -> None:
    refusing = True

    async def refuse_until_fixed(envelope: Envelope, ctx: HandlerContext) -> Sequence[Envelope]:
        if refusing:
            raise PermanentError("not handled by this version")
        return []

    failing = Recorder(f"u-{unique}", refuse_until_fixed)
    await start_loop({CONSUMED: failing})
    event = completed(f"u-{unique}-1")
    await kit.publish(event)
    await eventually(lambda: dead_lettered(event), what="the dead letter")
    assert event.id in await listed(kit.bootstrap)

    refusing = False
    code, _, err = await accord(kit.bootstrap, "dlq", "replay", CONSUMED, "--event-id", event.id)
    assert code == 0, err
    await eventually(lambda: failing.count(event.id) == 2, what="the replay")
    await eventually(lambda: published(pool), what="the outbox published")

    assert event.id not in await listed(kit.bootstrap)
    resolved = (await listed(kit.bootstrap, "--include-resolved"))[event.id]
    assert (resolved["resolved"], resolved["needs_action"]) == ([f"rt-{unique}"], False)
    code, out, err = await accord(kit.bootstrap, "dlq", "replay", CONSUMED, "--all", "--dry-run")
    assert code == 0, err
    assert event.id not in out
    code, out, err = await accord(
        kit.bootstrap, "dlq", "replay", CONSUMED, "--event-id", event.id, "--dry-run"
    )
    assert (code, out) == (0, ""), err
    assert "would replay 0 dead letter(s)" in err


async def test_a_later_event_of_the_same_work_resolves_the_earlier_dead_letters(
    kit: Kit,
    pool: asyncpg.Pool,
    relay: OutboxRelay,
    start_loop: LoopStarter,
    unique: str,
) -> None:
    # A target down for a while: the first commands give up, a later one for the same
    # account (the saga's next round) gets through; another account's command stays failed.
    account, other_account = f"u-{unique}-1", f"u-{unique}-2"
    down = True

    async def call_target(envelope: Envelope, ctx: EffectContext) -> GaveUp | list[Envelope]:
        if not envelope.subject.startswith(f"u-{unique}"):
            return []
        return GaveUp([], "target down") if down else []

    route = Effect(call_target, work_key=lambda envelope: envelope.subject)
    await start_loop({CONSUMED: route})
    first, second, other = completed(account), completed(account), completed(other_account)
    for event in (first, second, other):
        await kit.publish(event)
    await eventually(lambda: dead_lettered(first, second, other), what="three dead letters")

    down = False
    later = completed(account)
    await kit.publish(later)
    await eventually(
        lambda: pool.fetchval("SELECT true FROM inbox WHERE event_id = $1", later.id),
        what="the later command handled",
    )
    await eventually(lambda: published(pool), what="the outbox published")

    needing_action = await listed(kit.bootstrap)
    assert other.id in needing_action
    assert first.id not in needing_action
    assert second.id not in needing_action
    code, out, err = await accord(kit.bootstrap, "dlq", "replay", CONSUMED, "--all", "--dry-run")
    assert code == 0, err
    assert other.id in out
    assert first.id not in out
    assert second.id not in out


async def test_a_replay_of_an_older_event_leaves_a_later_ones_dead_letter_unresolved(
    kit: Kit,
    pool: asyncpg.Pool,
    relay: OutboxRelay,
    start_loop: LoopStarter,
    unique: str,
) -> None:
    account = f"u-{unique}-1"
    older, newer = completed(account), completed(account)

    async def call_target(envelope: Envelope, ctx: EffectContext) -> GaveUp | list[Envelope]:
        if envelope.id == newer.id:
            return GaveUp([], "target down")
        return []  # the older one is done, or (on a target that tracks it) superseded

    route = Effect(call_target, work_key=lambda envelope: envelope.subject)
    await start_loop({CONSUMED: route})
    await kit.publish(newer)
    await eventually(lambda: dead_lettered(newer), what="the newer command's dead letter")

    await kit.publish(older)  # published late: a replay of an older command, say
    await eventually(
        lambda: pool.fetchval("SELECT true FROM inbox WHERE event_id = $1", older.id),
        what="the older command handled",
    )
    await eventually(lambda: published(pool), what="the outbox published")

    assert newer.id in await listed(kit.bootstrap)
