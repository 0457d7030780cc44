"""A replayed dead letter goes to the consumer groups that failed it, and to no other."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from accord.events import Envelope
from accord.runtime.consumer import HandlerContext
from accord.runtime.dlq_tools import DeadEvent, read_dead_events, replay
from accord.runtime.errors import PermanentError

from .conftest import CONSUMED, Kit, LoopStarter, Recorder, completed, eventually

pytestmark = pytest.mark.integration


async def dead_event(event_id: str) -> DeadEvent | None:
    """The DLQ's entry for an event, if it has one."""
    return next((e for e in await read_dead_events(CONSUMED) if e.event_id == event_id), None)


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
    await kit.barrier(fine)
    duplicates = other.loop.stats.duplicates
    assert entry.consumers == {f"rt-{unique}-failing": 1}

    refusing = False  # the failing service is fixed; the operator replays the event
    assert await replay([entry]) == 1
    await eventually(lambda: failing.count(event.id) == 2, what="the replay in the failed group")
    await kit.barrier(fine)

    # The group that had handled it never saw the replay, not even as a duplicate.
    assert fine.count(event.id) == 1
    assert other.loop.stats.duplicates == duplicates
