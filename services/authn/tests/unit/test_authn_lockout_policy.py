"""The lockout rule: a threshold of failures within a sliding window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from accord.authn.domain.lockout import LockoutPolicy, Verdict, judge_failure

POLICY = LockoutPolicy(threshold=5, window=timedelta(minutes=10))


@pytest.mark.parametrize(
    ("failures", "locked", "verdict"),
    [
        (1, False, Verdict.COUNT),
        (4, False, Verdict.COUNT),
        (5, False, Verdict.LOCK),
        (9, False, Verdict.LOCK),
        (5, True, Verdict.ALREADY_LOCKED),
        (1, True, Verdict.ALREADY_LOCKED),
    ],
)
def test_the_failure_that_reaches_the_threshold_locks(
    failures: int, locked: bool, verdict: Verdict
) -> None:
    assert judge_failure(POLICY, failures, locked=locked) is verdict


def test_the_window_reaches_back_from_the_failure_itself() -> None:
    at = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert POLICY.window_start(at) == datetime(2026, 11, 26, 11, 50, tzinfo=UTC)


@pytest.mark.parametrize(("threshold", "window"), [(0, timedelta(minutes=1)), (3, timedelta(0))])
def test_a_policy_that_could_never_or_always_lock_is_refused(
    threshold: int, window: timedelta
) -> None:
    with pytest.raises(ValueError, match="lockout"):
        LockoutPolicy(threshold=threshold, window=window)
