"""Per-target limits around connector calls: a concurrency cap and a circuit breaker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from accord.provisioner.domain.breaker import CircuitBreaker
from accord.provisioner.ports import TargetRejected, TargetUnavailable

T = TypeVar("T")


class CircuitOpen(TargetUnavailable):
    """The target failed repeatedly; calls are held back until the cooldown is over."""


class TargetGuard:
    """At most `concurrency` calls to one target at a time, through its circuit breaker."""

    def __init__(
        self,
        name: str,
        *,
        concurrency: int = 8,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.breaker = breaker or CircuitBreaker()
        self._slots = asyncio.Semaphore(concurrency)
        self._clock = clock

    async def call(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run one connector call; CircuitOpen at once while the breaker is open."""
        wait = self.breaker.admit(self._clock())
        if wait is not None:
            raise CircuitOpen(
                f"{self.name}: circuit open after repeated failures; next try in {wait:.0f} s",
                retry_after=wait,
            )
        async with self._slots:
            try:
                result = await work()
            except TargetUnavailable:
                self.breaker.failed(self._clock())
                raise
            except TargetRejected:
                self.breaker.succeeded()  # it answered: refusing is not being down
                raise
            except BaseException:
                self.breaker.trial_in_flight = False
                raise
        self.breaker.succeeded()
        return result
