"""Open circuits are probed with the target's health check once the cooldown is over
(accord.provisioner.circuit_probe), so a circuit closes when its target is back even when
no command comes, and opens again while it stays down."""

from __future__ import annotations

import asyncio

from accord.provisioner.circuit_probe import PROBE, keep_probing, probe_due
from accord.provisioner.domain.breaker import BreakerState, CircuitBreaker
from accord.provisioner.fakes import ScriptedConnector
from accord.provisioner.guard import TargetGuard
from accord.provisioner.metrics import ProvisionerMetrics
from accord.provisioner.ports import AccountRef, TargetRejected, TargetUnavailable

UP = AccountRef("health", already_existed=True)
DOWN = TargetUnavailable("connection refused")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def opened(clock: Clock, metrics: ProvisionerMetrics | None = None) -> TargetGuard:
    """A guard whose breaker opened at time 0 (cooldown 30 s)."""
    breaker = CircuitBreaker(threshold=1, cooldown_s=30)
    breaker.failed(0.0)
    return TargetGuard("crm", breaker=breaker, clock=clock, observer=metrics)


async def test_an_open_circuit_is_left_alone_until_its_cooldown_is_over() -> None:
    clock = Clock()
    guard, connector = opened(clock), ScriptedConnector("crm", UP)
    clock.now = 29
    assert await probe_due({"crm": guard}, {"crm": connector}) == {}
    assert guard.breaker_state() is BreakerState.OPEN


async def test_a_target_back_closes_its_circuit_without_a_command() -> None:
    clock, metrics = Clock(), ProvisionerMetrics(["crm"])
    guard, connector = opened(clock, metrics), ScriptedConnector("crm", UP)
    clock.now = 30
    assert await probe_due({"crm": guard}, {"crm": connector}) == {"crm": BreakerState.CLOSED}
    assert connector.calls == []  # only the health check
    assert connector.update_calls == []
    labels = {"target": "crm", "operation": PROBE, "outcome": "ok"}
    assert metrics.registry.get_sample_value("accord_provisioner_calls_total", labels) == 1


async def test_a_target_still_down_opens_again_for_another_cooldown() -> None:
    clock = Clock()
    guard, connector = opened(clock), ScriptedConnector("crm", DOWN)
    clock.now = 31
    assert await probe_due({"crm": guard}, {"crm": connector}) == {"crm": BreakerState.OPEN}
    clock.now = 60
    assert await probe_due({"crm": guard}, {"crm": connector}) == {}  # 29 s into the new one
    clock.now = 61
    assert await probe_due({"crm": guard}, {"crm": connector}) == {"crm": BreakerState.OPEN}


async def test_credentials_refused_is_an_answer_the_circuit_closes() -> None:
    clock = Clock()
    guard, connector = opened(clock), ScriptedConnector("crm", TargetRejected("401"))
    clock.now = 30
    assert await probe_due({"crm": guard}, {"crm": connector}) == {"crm": BreakerState.CLOSED}


async def test_a_command_s_trial_in_flight_is_not_doubled() -> None:
    clock = Clock()
    guard, connector = opened(clock), ScriptedConnector("crm", UP)
    clock.now = 30
    assert guard.breaker.admit(clock.now) is None  # a command took the trial
    assert await probe_due({"crm": guard}, {"crm": connector}) == {}
    assert guard.breaker.trial_in_flight


async def test_a_connector_s_bug_does_not_stop_the_other_targets_probes() -> None:
    clock = Clock()
    broken, fine = opened(clock), opened(clock)
    clock.now = 30
    found = await probe_due(
        {"broken": broken, "crm": fine},
        {
            "broken": ScriptedConnector("broken", RuntimeError("bug")),
            "crm": ScriptedConnector("crm", UP),
        },
    )
    assert found["crm"] is BreakerState.CLOSED
    assert not broken.breaker.trial_in_flight  # the next round may try again


async def test_probing_goes_on_until_the_service_stops() -> None:
    clock = Clock()
    guard, connector = opened(clock), ScriptedConnector("crm", UP)
    clock.now = 30
    stopping = asyncio.Event()
    task = asyncio.create_task(keep_probing({"crm": guard}, {"crm": connector}, stopping, 0.01))
    for _ in range(100):
        if guard.breaker_state() is BreakerState.CLOSED:
            break
        await asyncio.sleep(0.01)
    stopping.set()
    await asyncio.wait_for(task, 1)
    assert guard.breaker_state() is BreakerState.CLOSED
