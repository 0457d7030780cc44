"""Per-target limits around connector calls: a rate, a concurrency cap, a circuit breaker.

An observer (the provisioner's metrics) hears each call's outcome and time, and each wait
for the rate limit; without one the guard only guards.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from accord.provisioner.domain.breaker import BreakerState, CircuitBreaker
from accord.provisioner.ports import TargetRejected, TargetUnavailable
from accord.runtime.security.rate_limit import RateLimiter

T = TypeVar("T")

#: The operation label of a call whose caller did not name one.
UNNAMED_OPERATION = "other"


class GuardObserver(Protocol):
    """Hears what the guard does (accord.provisioner.metrics.ProvisionerMetrics)."""

    def called(self, target: str, operation: str, outcome: str, seconds: float | None) -> None:
        """A call ended with an outcome (ok, rejected, unavailable, circuit_open, error);
        `seconds` is None when the open circuit refused it without calling."""

    def waited(self, target: str, seconds: float) -> None:
        """A call waited this long for the target's rate limit."""


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
        observer: GuardObserver | None = None,
    ) -> None:
        self.name = name
        self.observer = observer
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

    async def call(
        self, work: Callable[[], Awaitable[T]], *, operation: str = UNNAMED_OPERATION
    ) -> T:
        """Run one connector call; CircuitOpen at once while the breaker is open.
        `operation` (a ProvisionRequested operation) labels the call for the observer."""
        wait = self.breaker.admit(self._clock())
        if wait is not None:
            self._observe(operation, "circuit_open", None)
            raise CircuitOpen(
                f"{self.name}: circuit open after repeated failures; next try in {wait:.0f} s",
                retry_after=wait,
            )
        async with self._slots:
            await self._keep_rate()
            started = self._clock()
            try:
                result = await work()
            except TargetUnavailable:
                self.breaker.failed(self._clock())
                self._observe(operation, "unavailable", self._clock() - started)
                raise
            except TargetRejected:
                self.breaker.succeeded()  # it answered: refusing is not being down
                self._observe(operation, "rejected", self._clock() - started)
                raise
            except Exception:
                self.breaker.trial_in_flight = False
                self._observe(operation, "error", self._clock() - started)
                raise
            except BaseException:
                # Cancelled (a shutdown, a rebalance): no outcome of the target's to count.
                self.breaker.trial_in_flight = False
                raise
        self.breaker.succeeded()
        self._observe(operation, "ok", self._clock() - started)
        return result

    def breaker_state(self) -> BreakerState:
        """The target's breaker now (open and half-open change with time alone)."""
        return self.breaker.state(self._clock())

    def _observe(self, operation: str, outcome: str, seconds: float | None) -> None:
        if self.observer is not None:
            self.observer.called(self.name, operation, outcome, seconds)

    async def _keep_rate(self) -> None:
        """Wait for the target's rate limit to allow one more call."""
        if self._rate is None:
            return
        waited = 0.0
        pause = self._rate.acquire(self.name)
        while pause > 0:
            await self._sleep(pause)
            waited += pause
            pause = self._rate.acquire(self.name)
        if waited and self.observer is not None:
            self.observer.waited(self.name, waited)
