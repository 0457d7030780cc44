"""The lockout rule: a threshold of failures in a row within a sliding window, by the
events' own times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.authn.domain.lockout import (
    LockoutPolicy,
    Verdict,
    judge_failure,
    longest_run,
    longest_run_anywhere,
)

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


def minutes(*values: float) -> list[datetime]:
    return [T0 + timedelta(minutes=v) for v in values]


T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
THREE = LockoutPolicy(threshold=3, window=timedelta(minutes=10))


@pytest.mark.parametrize(
    ("failures", "successes", "at", "run"),
    [
        # fail, fail, success, fail: the success ends the run, whenever it was consumed.
        ((1, 2, 4), (3,), 4, 1),
        ((1, 2, 4), (3,), 1, 2),
        ((1, 2, 4), (3,), 2, 2),
        # A failure consumed late counts where it happened: it completes the run around it.
        ((1, 2, 3), (), 2, 3),
        ((1, 2, 3), (4,), 1, 3),
        # The window reaches back from the run's last failure.
        ((0, 11), (), 11, 1),
        ((0, 5, 10), (), 0, 3),
        ((0, 5, 10.5), (), 0, 2),
        # A failure at the very time of a success is before it.
        ((2, 3), (2,), 3, 1),
    ],
)
def test_a_run_is_failures_in_a_row_within_the_window_by_their_own_times(
    failures: tuple[float, ...], successes: tuple[float, ...], at: float, run: int
) -> None:
    found = longest_run(THREE, minutes(at)[0], minutes(*failures), minutes(*successes))
    assert found.failures == run


@given(
    failures=st.lists(st.integers(0, 40), min_size=1, max_size=12),
    successes=st.lists(st.integers(0, 40), max_size=4),
    pick=st.integers(0, 11),
)
def test_the_longest_run_is_what_counting_every_window_finds(
    failures: list[int], successes: list[int], pick: int
) -> None:
    at = failures[pick % len(failures)]
    window = 10

    def run_ending_at(end: int) -> int:
        # Failures in [end - window, end] with no success at or after them up to end.
        counted = [
            f
            for f in failures
            if end - window <= f <= end and not any(f <= s <= end for s in successes)
        ]
        return len(counted) if at in counted else 0

    expected = max(run_ending_at(end) for end in failures)
    found = longest_run(THREE, minutes(at)[0], minutes(*failures), minutes(*successes))
    assert found.failures == expected


def test_the_longest_run_anywhere_is_the_longest_of_every_failures_run() -> None:
    found = longest_run_anywhere(THREE, minutes(1, 2, 4, 5, 6), minutes(3))
    assert found is not None
    assert (found.failures, found.ends_at) == (3, minutes(6)[0])
    assert longest_run_anywhere(THREE, [], minutes(3)) is None
