"""When failed sign-ins lock an identity: a threshold of failures in a row within a sliding
window.

Pure, and by the events' own times (`ce_time`), never by the order they were consumed in:
failures and successes travel on two topics (`authn.failed`, `authn.succeeded`) that Kafka
does not order, and identity providers publish to one topic out of time order too. So a
success ends the run of the failures before it whenever it is consumed, and a failure
consumed late still counts where it happened. The caller reads the failures and successes
around a new failure and asks how long its run is, then what to do.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Final


@dataclass(frozen=True)
class LockoutPolicy:
    """`threshold` failures in a row (no success between them) within `window` lock the
    identity."""

    threshold: int = 5
    window: timedelta = timedelta(minutes=10)

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError("the lockout threshold must be at least 1")
        if self.window <= timedelta(0):
            raise ValueError("the lockout window must be positive")

    def window_start(self, at: datetime) -> datetime:
        """The oldest failure time that still counts for a failure at `at`."""
        return at - self.window


@dataclass(frozen=True)
class Run:
    """Failures in a row (no success between them) within one window."""

    failures: int
    ends_at: datetime
    """The time of the run's last failure."""


def longest_run(
    policy: LockoutPolicy,
    at: datetime,
    failures: Iterable[datetime],
    successes: Iterable[datetime],
) -> Run:
    """The longest run that the failure at `at` belongs to (`failures` includes it).

    A run ends at a failure and reaches back a window from it, but not to a success: a
    failure at or before a success does not count with the failures after it. Only the
    events within a window either side of `at` matter.
    """
    times = sorted(failures)
    ends = sorted(successes)
    best = Run(0, at)
    for end in times[bisect_left(times, at) : bisect_right(times, at + policy.window)]:
        successes_before = bisect_right(ends, end)
        last_success = ends[successes_before - 1] if successes_before else None
        if last_success is not None and last_success >= at:
            continue  # a success between `at` and this end: not `at`'s run
        first = bisect_left(times, end - policy.window)
        if last_success is not None:
            first = max(first, bisect_right(times, last_success))
        length = bisect_right(times, end) - first
        if length > best.failures:
            best = Run(length, end)
    return best


def longest_run_anywhere(
    policy: LockoutPolicy, failures: Iterable[datetime], successes: Iterable[datetime]
) -> Run | None:
    """The longest run among these failures (counted before authn knew the identity)."""
    times, ends = sorted(failures), sorted(successes)
    runs = (longest_run(policy, at, times, ends) for at in set(times))
    return max(runs, key=lambda run: (run.failures, run.ends_at), default=None)


class Verdict(Enum):
    """What one failed sign-in means."""

    COUNT = "count"
    """Below the threshold: remember it."""
    LOCK = "lock"
    """The threshold is reached: lock the identity now."""
    ALREADY_LOCKED = "already_locked"
    """A lockout is open: nothing more to do (the failure is still worth auditing)."""


def judge_failure(policy: LockoutPolicy, run: int, *, locked: bool) -> Verdict:
    """What to do with a failure, given the length of its longest run (itself included)."""
    if locked:
        return Verdict.ALREADY_LOCKED
    if run >= policy.threshold:
        return Verdict.LOCK
    return Verdict.COUNT


#: Entitlements in the `accord` application that authn files access requests for.
UNLOCK: Final = "unlock"
MFA_RESET: Final = "mfa-reset"
ACCORD_APPLICATION = "accord"
#: How long a granted unlock or reset stays a live grant: it acts once, at once. Short, so
#: that the next unlock of the same identity finds no live grant (authz grants an
#: entitlement held already no second time).
ONE_SHOT_GRANT = timedelta(seconds=1)


@dataclass(frozen=True)
class Lockout:
    """An identity's lockout, as the handlers need it."""

    lockout_id: str
    user_id: str


@dataclass(frozen=True)
class ApprovalRequest:
    """An unlock or factor reset authn filed with authz."""

    request_id: str
    user_id: str
    kind: str
    status: str
    """pending, granted, denied or done."""
    lockout_id: str | None = None


class GrantAction(Enum):
    """What an approved request of the `accord` application makes authn do."""

    IGNORE = "ignore"
    """Not a request authn filed, or one acted on already."""
    UNLOCK = "unlock"
    RESET = "reset"
    """Remove every factor of the identity."""
    SETTLE = "settle"
    """Nothing to do but record it done."""


def grant_action(request: ApprovalRequest | None) -> GrantAction:
    """What to do with the grant of this request (once: a settled one is ignored)."""
    if request is None or request.status not in ("pending", "granted"):
        return GrantAction.IGNORE
    if request.kind == UNLOCK and request.lockout_id:
        return GrantAction.UNLOCK
    if request.kind == MFA_RESET:
        return GrantAction.RESET
    return GrantAction.SETTLE


def lockout_reason(policy: LockoutPolicy, run: Run) -> str:
    """Why a run of failures locked an identity."""
    window_s = int(policy.window.total_seconds())
    return f"{run.failures} failed sign-ins in a row within {window_s} s"
