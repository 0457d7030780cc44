"""RateLimiter token buckets on a fake clock, and the Retry-After header."""

from __future__ import annotations

import math

import pytest

from accord.runtime.security.rate_limit import RateLimiter, retry_after_header


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_burst_is_allowed_then_refused(clock: FakeClock) -> None:
    limiter = RateLimiter(1.0, 3, clock=clock)
    assert [limiter.acquire("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("k") > 0


def test_wait_is_the_time_until_the_next_token(clock: FakeClock) -> None:
    limiter = RateLimiter(2.0, 1, clock=clock)
    assert limiter.acquire("k") == 0.0
    assert limiter.acquire("k") == pytest.approx(0.5)
    clock.advance(0.2)
    assert limiter.acquire("k") == pytest.approx(0.3)
    clock.advance(0.3)
    assert limiter.acquire("k") == 0.0


def test_slow_rate_wait(clock: FakeClock) -> None:
    # 30 per minute, as the failure limiter is configured by default.
    limiter = RateLimiter(30 / 60, 2, clock=clock)
    limiter.acquire("k")
    limiter.acquire("k")
    assert limiter.acquire("k") == pytest.approx(2.0)
    clock.advance(1.5)
    assert limiter.acquire("k") == pytest.approx(0.5)


def test_a_refusal_consumes_nothing(clock: FakeClock) -> None:
    limiter = RateLimiter(1.0, 1, clock=clock)
    limiter.acquire("k")
    waits = [limiter.acquire("k") for _ in range(5)]
    assert waits == [pytest.approx(1.0)] * 5
    clock.advance(1.0)
    assert limiter.acquire("k") == 0.0


@pytest.mark.parametrize("rate", [0.1, 0.5, 1 / 3, 3.0, 50.0])
def test_waiting_the_announced_retry_after_is_enough(clock: FakeClock, rate: float) -> None:
    limiter = RateLimiter(rate, 2, clock=clock)
    for _ in range(20):
        wait = limiter.acquire("k")
        if wait > 0:
            clock.advance(int(retry_after_header(wait)["Retry-After"]))
            assert limiter.acquire("k") == 0.0


def test_the_wait_is_exact_in_binary_fractions() -> None:
    clock = FakeClock(0.0)
    limiter = RateLimiter(4.0, 1, clock=clock)
    limiter.acquire("k")
    assert limiter.acquire("k") == 0.25
    clock.advance(0.125)
    assert limiter.acquire("k") == 0.125
    clock.advance(0.125)
    assert limiter.acquire("k") == 0.0


def test_tokens_refill_at_the_rate(clock: FakeClock) -> None:
    limiter = RateLimiter(8.0, 5, clock=clock)
    for _ in range(5):
        limiter.acquire("k")
    assert limiter.acquire("k") > 0
    clock.advance(0.375)  # three tokens
    assert [limiter.acquire("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("k") > 0


def test_refill_is_capped_at_the_burst(clock: FakeClock) -> None:
    limiter = RateLimiter(100.0, 4, clock=clock)
    for _ in range(4):
        limiter.acquire("k")
    clock.advance(3600)
    assert [limiter.acquire("k") for _ in range(4)] == [0.0] * 4
    assert limiter.acquire("k") > 0


def test_keys_are_limited_separately(clock: FakeClock) -> None:
    limiter = RateLimiter(1.0, 2, clock=clock)
    limiter.acquire("a")
    limiter.acquire("a")
    assert limiter.acquire("a") > 0
    assert limiter.acquire("b") == 0.0
    assert limiter.acquire("b") == 0.0
    assert limiter.acquire("b") > 0
    assert limiter.acquire("c") == 0.0


def test_max_keys_evicts_the_least_recently_seen(clock: FakeClock) -> None:
    limiter = RateLimiter(1.0, 1, max_keys=2, clock=clock)
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("b") == 0.0
    assert limiter.acquire("a") > 0  # a is now the most recently seen
    assert limiter.acquire("c") == 0.0  # over the bound: b goes
    assert limiter.acquire("a") > 0  # a was kept, still empty
    assert limiter.acquire("b") == 0.0  # b was forgotten: a fresh bucket


def test_a_key_flood_keeps_memory_bounded(clock: FakeClock) -> None:
    limiter = RateLimiter(1.0, 1, max_keys=100, clock=clock)
    limiter.acquire("victim")
    assert limiter.acquire("victim") > 0
    for i in range(5000):
        limiter.acquire(f"flood-{i}")
    assert len(limiter._buckets) == 100
    # The victim's bucket was evicted, so it starts full again.
    assert limiter.acquire("victim") == 0.0


def test_default_clock_is_monotonic() -> None:
    limiter = RateLimiter(1000.0, 1)
    assert limiter.acquire("k") == 0.0
    assert 0 < limiter.acquire("k") <= 0.001


@pytest.mark.parametrize(
    ("rate", "burst", "max_keys"),
    [
        (0.0, 1, 10),
        (-1.0, 1, 10),
        (1.0, 0, 10),
        (1.0, -5, 10),
        (math.nan, 1, 10),
        (1.0, 1, 0),
    ],
    ids=["zero-rate", "negative-rate", "zero-burst", "negative-burst", "nan-rate", "zero-keys"],
)
def test_invalid_arguments_are_refused(rate: float, burst: int, max_keys: int) -> None:
    with pytest.raises(ValueError, match=r"rate|burst|keys"):
        RateLimiter(rate, burst, max_keys=max_keys)


# --- retry_after_header ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wait", "header"),
    [
        (0.0, "1"),
        (0.001, "1"),
        (0.5, "1"),
        (1.0, "1"),
        (1.0001, "2"),
        (2.5, "3"),
        (59.2, "60"),
        (-3.0, "1"),
    ],
)
def test_retry_after_rounds_up_to_whole_seconds_at_least_one(wait: float, header: str) -> None:
    assert retry_after_header(wait) == {"Retry-After": header}
