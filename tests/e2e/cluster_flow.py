"""Joiners published at a steady rate, with checkpoints where a test injects its faults.

Each joiner is published in a task of its own, as many HR writers would: a send stuck on a
dead leader delays that joiner only, not the ones behind it, so the rate offered stays
steady through a fault. At a checkpoint the flow waits for the test (it picks a broker and
fails it) and goes on when released; the pause is added to the schedule, never caught up
in a burst.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from accord.events import Publisher, UserCreated


@dataclass
class Checkpoint:
    """Where the flow waits for the test before publishing joiner `index`."""

    index: int
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the flow reaches the joiner."""
    released: asyncio.Event = field(default_factory=asyncio.Event)
    """Set by the test to let the flow go on."""

    async def reached(self) -> None:
        """Wait until the flow waits here."""
        await self.arrived.wait()

    def release(self) -> None:
        """Let the flow go on."""
        self.released.set()


class SteadyFlow:
    """`users` published at `rate` per second; `sent_at` holds each one's wall-clock time
    (time.time()) of publishing, by user id."""

    def __init__(self, users: list[UserCreated], rate: float) -> None:
        """The joiners in publishing order, and the rate."""
        self.users = users
        self.rate = rate
        self.sent_at: dict[str, float] = {}
        self.held_s = 0.0
        """How long the flow waited at its checkpoints."""
        self._checkpoints: dict[int, Checkpoint] = {}

    def checkpoint(self, index: int) -> Checkpoint:
        """A checkpoint before joiner `index`."""
        if not 0 <= index < len(self.users):
            raise ValueError(f"no joiner {index} in a flow of {len(self.users)}")
        return self._checkpoints.setdefault(index, Checkpoint(index))

    async def run(self, publisher: Publisher) -> None:
        """Publish every joiner on schedule; return once the broker has acknowledged all."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        sends: list[asyncio.Task[object]] = []
        for i, user in enumerate(self.users):
            checkpoint = self._checkpoints.get(i)
            if checkpoint is not None:
                waited = loop.time()
                checkpoint.arrived.set()
                await checkpoint.released.wait()
                self.held_s += loop.time() - waited
            delay = start + self.held_s + i / self.rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.sent_at[user.user_id] = time.time()
            sends.append(asyncio.create_task(publisher.publish(user, sequence=1)))
        await asyncio.gather(*sends)
