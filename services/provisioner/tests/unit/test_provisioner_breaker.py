"""A target that keeps failing is left alone for a while, then tried once."""

from __future__ import annotations

import asyncio

import pytest

from accord.provisioner.domain.breaker import BreakerState, CircuitBreaker
from accord.provisioner.guard import CircuitOpen, TargetGuard
from accord.provisioner.ports import TargetRejected, TargetUnavailable


def test_it_opens_at_the_threshold_and_half_opens_after_the_cooldown() -> None:
    breaker = CircuitBreaker(threshold=3, cooldown_s=30)
    for _ in range(2):
        assert breaker.admit(0) is None
        breaker.failed(0)
    assert breaker.state(0) is BreakerState.CLOSED
    breaker.failed(10)
    assert breaker.state(10) is BreakerState.OPEN
    assert breaker.admit(25) == pytest.approx(15)
    assert breaker.state(40) is BreakerState.HALF_OPEN
    assert breaker.admit(40) is None  # the one trial
    assert breaker.admit(40) == 0  # no second call while the trial runs


def test_a_failed_trial_reopens_and_a_successful_one_closes() -> None:
    breaker = CircuitBreaker(threshold=1, cooldown_s=5)
    breaker.failed(0)
    assert breaker.admit(5) is None
    breaker.failed(5)
    assert breaker.state(6) is BreakerState.OPEN
    assert breaker.admit(10) is None
    breaker.succeeded()
    assert breaker.state(10) is BreakerState.CLOSED
    assert breaker.failures == 0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_the_guard_fails_fast_while_open_and_refusals_do_not_count() -> None:
    clock = Clock()
    guard = TargetGuard("crm", breaker=CircuitBreaker(threshold=2, cooldown_s=30), clock=clock)
    calls = 0

    async def down() -> str:
        nonlocal calls
        calls += 1
        raise TargetUnavailable("crm: 503")

    async def refuses() -> str:
        raise TargetRejected("crm: 400")

    with pytest.raises(TargetRejected):
        await guard.call(refuses)
    for _ in range(2):
        with pytest.raises(TargetUnavailable):
            await guard.call(down)
    with pytest.raises(CircuitOpen) as opened:
        await guard.call(down)
    assert calls == 2
    assert opened.value.retry_after == pytest.approx(30)

    clock.now = 31

    async def up() -> str:
        return "ok"

    assert await guard.call(up) == "ok"
    assert guard.breaker.state(clock.now) is BreakerState.CLOSED


async def test_the_guard_caps_calls_in_flight() -> None:
    guard = TargetGuard("crm", concurrency=2)
    inside = 0
    most = 0

    async def slow() -> None:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        await asyncio.sleep(0.01)
        inside -= 1

    await asyncio.gather(*(guard.call(slow) for _ in range(6)))
    assert most == 2


async def test_the_guard_keeps_a_targets_rate() -> None:
    clock = Clock()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:  # time passes only when the guard waits
        slept.append(seconds)
        clock.now += seconds

    guard = TargetGuard("okta", rate_per_s=10, clock=clock, sleep=sleep)  # burst 10, 10/s
    made_at: list[float] = []

    async def call() -> None:
        made_at.append(clock.now)

    for _ in range(15):
        await guard.call(call)

    assert made_at[:10] == [0.0] * 10  # the burst
    assert made_at[10:] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])  # then 10 a second
    assert sum(slept) == pytest.approx(0.5)
