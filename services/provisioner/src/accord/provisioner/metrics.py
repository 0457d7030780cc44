"""The provisioner's own Prometheus metrics: how its targets answer.

Served on the service's page with the runtime's (`runtime.metrics.include`), in a registry
of their own so the tests of one service do not see another's. Every label value is bounded:
`target` is a declared target's name, `operation` one of ProvisionRequested's operations,
`outcome` one of OUTCOMES. The series of each declared target exist (at 0) from the start,
so `increase()` and the alerts see the first retry or the first opened circuit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from accord.provisioner.domain.breaker import BreakerState
from accord.provisioner.guard import TargetGuard

#: Outcomes of a call through a target's guard.
OK, REJECTED, UNAVAILABLE, CIRCUIT_OPEN, ERROR = (
    "ok",
    "rejected",
    "unavailable",
    "circuit_open",
    "error",
)
OUTCOMES = frozenset({OK, REJECTED, UNAVAILABLE, CIRCUIT_OPEN, ERROR})

#: An HTTP or LDAP call: a few milliseconds on a LAN, seconds for a slow SaaS, 10 s = timeout.
CALL_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ProvisionerMetrics:
    """Connector calls, retries, rate-limit waits, give-ups and circuits, by target."""

    def __init__(self, targets: Iterable[str] = ()) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.calls = Counter(
            "accord_provisioner_calls",
            "Connector calls through a target's guard, by target, operation and outcome"
            " (ok, rejected, unavailable, circuit_open, error)",
            ["target", "operation", "outcome"],
            registry=reg,
        )
        self.call_duration = Histogram(
            "accord_provisioner_call_duration_seconds",
            "Time of the connector calls that reached the target, by target and operation",
            ["target", "operation"],
            buckets=CALL_BUCKETS_S,
            registry=reg,
        )
        self.retries = Counter(
            "accord_provisioner_retries",
            "Retries of a command after its target was unavailable (each backoff)",
            ["target"],
            registry=reg,
        )
        self.rate_limit_wait = Counter(
            "accord_provisioner_rate_limit_wait_seconds",
            "Seconds calls waited for their target's rate limit",
            ["target"],
            registry=reg,
        )
        self.gave_up = Counter(
            "accord_provisioner_gave_up",
            "Commands that gave up on their target (attempts exhausted or circuit open)",
            ["target"],
            registry=reg,
        )
        self.circuit_open = Gauge(
            "accord_circuit_open",
            "1 while the target's circuit breaker is not closed (open or half-open), else 0",
            ["target"],
            registry=reg,
        )
        for target in targets:
            self.declare(target)

    def declare(self, target: str) -> None:
        """Create a target's per-target series at 0."""
        for metric in (self.retries, self.rate_limit_wait, self.gave_up, self.circuit_open):
            metric.labels(target)

    def called(self, target: str, operation: str, outcome: str, seconds: float | None) -> None:
        """One call through a target's guard; `seconds` is None if it never reached the
        target (refused by the open circuit)."""
        self.calls.labels(target, operation, outcome).inc()
        if seconds is not None:
            self.call_duration.labels(target, operation).observe(max(0.0, seconds))

    def waited(self, target: str, seconds: float) -> None:
        """A call waited this long for its target's rate limit."""
        self.rate_limit_wait.labels(target).inc(max(0.0, seconds))

    def retried(self, target: str) -> None:
        """A command backs off before trying its target again."""
        self.retries.labels(target).inc()

    def gave_up_on(self, target: str) -> None:
        """A command gave up on its target for now (it waits in the DLQ)."""
        self.gave_up.labels(target).inc()

    def circuits(self, guards: Mapping[str, TargetGuard]) -> Callable[[], Awaitable[None]]:
        """A scrape-time refresh (`runtime.metrics.on_scrape`) of accord_circuit_open from
        each guard's breaker; the breaker opens and half-opens with time, not on events."""
        for name in guards:
            self.declare(name)

        async def refresh() -> None:
            for name, guard in guards.items():
                closed = guard.breaker_state() is BreakerState.CLOSED
                self.circuit_open.labels(name).set(0 if closed else 1)

        return refresh
