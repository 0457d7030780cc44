"""Per-target limits around connector calls: a rate, a concurrency cap, a circuit breaker."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from accord.provisioner.domain.breaker import CircuitBreaker
from accord.provisioner.ports import TargetRejected, TargetUnavailable
from accord.runtime.security.rate_limit import RateLimiter

T = TypeVar("T")


class CircuitOpen(TargetUnavailable):
    """The target failed repeatedly; calls are held back until the cooldown is over."""


class TargetGuard:
    """At most `concurrency` calls to one target at a time, at most `rate_per_s` calls a
    second (when set; the target's published API limits), through its circuit breaker;
    `attempts` is how many times a command may try the target before it gives up."""

    def __init__(
        self,
        name: str,
        *,
        attempts: int = 5,
        concurrency: int = 8,
        rate_per_s: float | None = None,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.name = name
        self.attempts = attempts
        self._sleep = sleep
        self.breaker = breaker or CircuitBreaker()
        self._slots = asyncio.Semaphore(concurrency)
        self._clock = clock
        self._rate = (
            RateLimiter(rate_per_s, max(1, math.ceil(rate_per_s)), clock=clock)
            if rate_per_s
            else None
        )

    async def call(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run one connector call; CircuitOpen at once while the breaker is open."""
        wait = self.breaker.admit(self._clock())
        if wait is not None:
            raise CircuitOpen(
                f"{self.name}: circuit open after repeated failures; next try in {wait:.0f} s",
                retry_after=wait,
            )
        async with self._slots:
            await self._keep_rate()
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

    async def _keep_rate(self) -> None:
        """Wait for the target's rate limit to allow one more call."""
        if self._rate is None:
            return
        pause = self._rate.acquire(self.name)
        while pause > 0:
            await self._sleep(pause)
            pause = self._rate.acquire(self.name)
