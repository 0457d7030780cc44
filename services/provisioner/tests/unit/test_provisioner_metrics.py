"""The provisioner's own metrics, driven through its guard and its provision.requested effect
on fakes: calls by outcome, retries, give-ups, rate-limit waits and open circuits."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast, get_args

import pytest
from prometheus_client import generate_latest

from accord.events import Envelope, Profile, ProvisionRequested, new_event
from accord.events.catalogue.provisioning import Operation
from accord.provisioner.bootstrap import definition
from accord.provisioner.domain.breaker import CircuitBreaker
from accord.provisioner.fakes import FakeLedger, ScriptedConnector
from accord.provisioner.guard import CircuitOpen, TargetGuard
from accord.provisioner.handlers import Provisioning, on_provision_requested
from accord.provisioner.metrics import ProvisionerMetrics
from accord.provisioner.ports import AccountRef, TargetRejected, TargetUnavailable
from accord.provisioner.settings import ProvisionerSettings
from accord.runtime.metrics import RuntimeMetrics, unbounded_labels
from accord.runtime.routes import GaveUp
from accord.runtime.service import Runtime

CREATED = AccountRef("acc-1", already_existed=False)
EXPECTED_NAMES = {
    "accord_provisioner_calls",
    "accord_provisioner_call_duration_seconds",
    "accord_provisioner_retries",
    "accord_provisioner_rate_limit_wait_seconds",
    "accord_provisioner_gave_up",
    "accord_circuit_open",
}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def command(operation: Operation = "create", target: str = "crm") -> Envelope:
    data = ProvisionRequested(
        user_id="e-1",
        target=target,
        operation=operation,
        saga_id="saga-1",
        step_id=f"saga-1:{target}",
        profile=Profile(user_name="ada"),
    )
    return new_event(data, source="accord/orchestrator")


async def provision(
    event: Envelope,
    connector: ScriptedConnector,
    metrics: ProvisionerMetrics,
    guard: TargetGuard,
    **kwargs: Any,
) -> list[Envelope] | GaveUp:
    data = event.data
    assert isinstance(data, ProvisionRequested)
    ports = Provisioning(
        source="accord/provisioner",
        connectors={connector.name: connector},
        ledger=FakeLedger(),
        guards={guard.name: guard},
        base_delay_s=0,
        metrics=metrics,
        **kwargs,
    )
    return await on_provision_requested(event, data, ports)


def value(metrics: ProvisionerMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def calls(metrics: ProvisionerMetrics, outcome: str, operation: str = "create") -> float | None:
    return value(
        metrics,
        "accord_provisioner_calls_total",
        target="crm",
        operation=operation,
        outcome=outcome,
    )


def timed(metrics: ProvisionerMetrics, operation: str = "create") -> float | None:
    return value(
        metrics, "accord_provisioner_call_duration_seconds_count", target="crm", operation=operation
    )


def test_each_declared_target_has_its_series_at_zero_from_the_start() -> None:
    metrics = ProvisionerMetrics(["crm", "ldap-hr"])

    for target in ("crm", "ldap-hr"):
        assert value(metrics, "accord_circuit_open", target=target) == 0
        assert value(metrics, "accord_provisioner_retries_total", target=target) == 0
        assert value(metrics, "accord_provisioner_gave_up_total", target=target) == 0
        assert (
            value(metrics, "accord_provisioner_rate_limit_wait_seconds_total", target=target) == 0
        )


async def test_a_call_is_counted_with_its_operation_and_outcome_and_timed() -> None:
    clock = Clock()
    metrics = ProvisionerMetrics(["crm"])
    connector = ScriptedConnector("crm", AccountRef("acc-1", already_existed=True))

    async def slow_disable(user_id: str, user_name: str) -> str | None:
        clock.now += 0.3  # the target takes 300 ms
        return "acc-1"

    connector.disable_account = slow_disable  # type: ignore[method-assign]
    guard = TargetGuard("crm", clock=clock, observer=metrics)

    result = await provision(command("disable"), connector, metrics, guard)

    assert isinstance(result, list)
    assert calls(metrics, "ok", "disable") == 1
    assert calls(metrics, "ok", "create") is None
    assert timed(metrics, "disable") == 1
    assert value(
        metrics, "accord_provisioner_call_duration_seconds_sum", target="crm", operation="disable"
    ) == pytest.approx(0.3)
    bucket = "accord_provisioner_call_duration_seconds_bucket"
    assert value(metrics, bucket, target="crm", operation="disable", le="0.25") == 0
    assert value(metrics, bucket, target="crm", operation="disable", le="0.5") == 1


async def test_a_refusal_is_counted_as_rejected_and_is_no_give_up() -> None:
    metrics = ProvisionerMetrics(["crm"])
    connector = ScriptedConnector("crm", TargetRejected("crm: POST /Users -> 400"))
    guard = TargetGuard("crm", observer=metrics)

    result = await provision(command(), connector, metrics, guard)

    assert isinstance(result, list)  # failed for good, not given up
    assert calls(metrics, "rejected") == 1
    assert calls(metrics, "ok") is None
    assert timed(metrics) == 1  # it reached the target
    assert value(metrics, "accord_provisioner_gave_up_total", target="crm") == 0
    assert value(metrics, "accord_provisioner_retries_total", target="crm") == 0


async def test_another_exception_is_counted_as_error() -> None:
    metrics = ProvisionerMetrics(["crm"])
    guard = TargetGuard("crm", observer=metrics)

    async def broken() -> None:
        raise ValueError("a bug in a connector")

    with pytest.raises(ValueError, match="a bug"):
        await guard.call(broken, operation="update")

    assert calls(metrics, "error", "update") == 1


async def test_retries_are_counted_until_success() -> None:
    metrics = ProvisionerMetrics(["crm"])
    down = TargetUnavailable("crm: 503")
    connector = ScriptedConnector("crm", down, down, CREATED)
    guard = TargetGuard("crm", attempts=5, observer=metrics)

    result = await provision(command(), connector, metrics, guard)

    assert isinstance(result, list)
    assert len(connector.calls) == 3
    assert value(metrics, "accord_provisioner_retries_total", target="crm") == 2
    assert calls(metrics, "unavailable") == 2
    assert calls(metrics, "ok") == 1
    assert timed(metrics) == 3
    assert value(metrics, "accord_provisioner_gave_up_total", target="crm") == 0


async def test_exhausted_attempts_count_a_give_up_and_no_retry_after_the_last() -> None:
    metrics = ProvisionerMetrics(["crm"])
    connector = ScriptedConnector("crm", TargetUnavailable("crm: 503"))
    guard = TargetGuard("crm", attempts=3, observer=metrics)

    result = await provision(command(), connector, metrics, guard)

    assert isinstance(result, GaveUp)
    assert calls(metrics, "unavailable") == 3
    assert value(metrics, "accord_provisioner_retries_total", target="crm") == 2
    assert value(metrics, "accord_provisioner_gave_up_total", target="crm") == 1


async def test_an_open_circuit_shows_and_closes_after_a_successful_trial() -> None:
    clock = Clock()
    metrics = ProvisionerMetrics()
    guard = TargetGuard(
        "crm",
        attempts=1,
        breaker=CircuitBreaker(threshold=2, cooldown_s=30),
        clock=clock,
        observer=metrics,
    )
    # Wired as bootstrap does: the runtime's page includes the provisioner's, and reads the
    # breakers at each scrape.
    page = RuntimeMetrics()
    page.include(metrics.registry)
    page.on_scrape("circuits", metrics.circuits({"crm": guard}))

    async def circuit_open() -> float | None:
        await page.refresh()
        return page.registry.get_sample_value("accord_circuit_open", {"target": "crm"})

    assert await circuit_open() == 0
    down = TargetUnavailable("crm: 503")
    connector = ScriptedConnector("crm", down, down, CREATED)
    for _ in range(2):
        assert isinstance(await provision(command(), connector, metrics, guard), GaveUp)
    assert await circuit_open() == 1

    # Refused without calling the target: counted, not timed, and the command gives up.
    assert isinstance(await provision(command(), connector, metrics, guard), GaveUp)
    assert len(connector.calls) == 2
    assert calls(metrics, "circuit_open") == 1
    assert timed(metrics) == 2
    assert value(metrics, "accord_provisioner_gave_up_total", target="crm") == 3

    clock.now = 31  # the cooldown is over: half-open is not closed yet
    assert await circuit_open() == 1
    assert isinstance(await provision(command(), connector, metrics, guard), list)
    assert calls(metrics, "ok") == 1
    assert await circuit_open() == 0


async def test_a_refused_call_through_the_guard_alone_is_circuit_open() -> None:
    metrics = ProvisionerMetrics(["crm"])
    guard = TargetGuard("crm", breaker=CircuitBreaker(threshold=1, cooldown_s=30), clock=Clock())

    async def down() -> None:
        raise TargetUnavailable("crm: 503")

    guard.observer = metrics
    with pytest.raises(TargetUnavailable):
        await guard.call(down, operation="delete")
    with pytest.raises(CircuitOpen):
        await guard.call(down, operation="delete")

    assert calls(metrics, "unavailable", "delete") == 1
    assert calls(metrics, "circuit_open", "delete") == 1
    assert timed(metrics, "delete") == 1


async def test_the_wait_for_a_targets_rate_limit_is_counted() -> None:
    clock = Clock()

    async def sleep(seconds: float) -> None:  # time passes only when the guard waits
        clock.now += seconds

    metrics = ProvisionerMetrics(["okta"])
    guard = TargetGuard("okta", rate_per_s=10, clock=clock, sleep=sleep, observer=metrics)

    async def call() -> None:
        return None

    for _ in range(10):  # the burst: no wait
        await guard.call(call)
    wait = "accord_provisioner_rate_limit_wait_seconds_total"
    assert value(metrics, wait, target="okta") == 0
    for _ in range(5):  # then 10 a second
        await guard.call(call)

    assert value(metrics, wait, target="okta") == pytest.approx(0.5)


async def test_the_provisioners_page_has_its_metrics_and_bounded_labels(tmp_path: Path) -> None:
    targets = tmp_path / "targets.yaml"
    targets.write_text(
        "targets:\n"
        "  - name: scim-demo\n    kind: scim\n    url: http://127.0.0.1:8080/v2\n"
        "  - name: hr-app\n    kind: scim\n    url: http://127.0.0.1:8081/v2\n"
    )
    service = definition(ProvisionerSettings(targets_file=targets))
    runtime = cast(Runtime, SimpleNamespace(metrics=RuntimeMetrics()))

    serve_metrics = service.on_start[0]
    await serve_metrics(runtime)
    await runtime.metrics.refresh()
    page = generate_latest(runtime.metrics.registry).decode()

    assert runtime.metrics.metric_names() >= EXPECTED_NAMES
    assert 'accord_circuit_open{target="hr-app"} 0.0' in page
    assert 'accord_provisioner_retries_total{target="scim-demo"} 0.0' in page
    assert unbounded_labels(page) == []


async def test_every_outcome_and_operation_keeps_the_page_bounded() -> None:
    metrics = ProvisionerMetrics(["crm"])
    for operation in get_args(Operation):
        for outcome in ("ok", "rejected", "unavailable", "error"):
            metrics.called("crm", operation, outcome, 0.01)
        metrics.called("crm", operation, "circuit_open", None)
    page = RuntimeMetrics()
    page.include(metrics.registry)

    assert unbounded_labels(generate_latest(page.registry).decode()) == []
