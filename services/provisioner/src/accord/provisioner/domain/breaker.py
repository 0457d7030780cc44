"""A circuit breaker per target: a target that keeps failing is left alone for a while.

Closed: calls go through; `threshold` transient failures in a row open it. Open: calls fail
at once (the caller reports a retryable failure instead of spending its retry budget on a
dead target, so the other targets' work behind it is not held up). After `cooldown_s` one
trial call goes through (half-open): success closes the breaker, failure opens it again.
Pure: the caller passes the time.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class BreakerState(StrEnum):
    """Where the breaker is."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass
class CircuitBreaker:
    """One target's breaker."""

    threshold: int = 5
    cooldown_s: float = 30.0
    failures: int = 0
    opened_at: float | None = None
    trial_in_flight: bool = False

    def state(self, now: float) -> BreakerState:
        """The state at a time."""
        if self.opened_at is None:
            return BreakerState.CLOSED
        if now - self.opened_at < self.cooldown_s:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def admit(self, now: float) -> float | None:
        """None if a call may go now; else the seconds until the breaker lets one through."""
        state = self.state(now)
        if state is BreakerState.CLOSED:
            return None
        if state is BreakerState.HALF_OPEN and not self.trial_in_flight:
            self.trial_in_flight = True
            return None
        assert self.opened_at is not None
        return max(0.0, self.opened_at + self.cooldown_s - now)

    def succeeded(self) -> None:
        """The target answered: close."""
        self.failures, self.opened_at, self.trial_in_flight = 0, None, False

    def failed(self, now: float) -> None:
        """The target was unavailable: count, and open at the threshold (or after a trial)."""
        self.failures += 1
        if self.trial_in_flight or self.failures >= self.threshold:
            self.opened_at, self.trial_in_flight = now, False
