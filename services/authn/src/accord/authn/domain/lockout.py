"""When failed sign-ins lock an identity: a threshold within a sliding window.

Pure: the caller counts the failures in the window (by the events' own times, so a
late-consumed burst still counts as the burst it was) and asks what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum


@dataclass(frozen=True)
class LockoutPolicy:
    """`threshold` failures within `window` lock the identity."""

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


class Verdict(Enum):
    """What one failed sign-in means."""

    COUNT = "count"
    """Below the threshold: remember it."""
    LOCK = "lock"
    """The threshold is reached: lock the identity now."""
    ALREADY_LOCKED = "already_locked"
    """A lockout is open: nothing more to do (the failure is still worth auditing)."""


def judge_failure(policy: LockoutPolicy, failures_in_window: int, *, locked: bool) -> Verdict:
    """What to do with a failure, given how many (this one included) fall in its window."""
    if locked:
        return Verdict.ALREADY_LOCKED
    if failures_in_window >= policy.threshold:
        return Verdict.LOCK
    return Verdict.COUNT


#: Entitlements in the `accord` application that authn files access requests for.
UNLOCK = "unlock"
MFA_RESET = "mfa-reset"
ACCORD_APPLICATION = "accord"
#: How long a granted unlock or reset stays a live grant: it acts once, at once. Short, so
#: that the next unlock of the same identity finds no live grant (authz grants an
#: entitlement held already no second time).
ONE_SHOT_GRANT = timedelta(seconds=1)
