"""The orchestrator's saga metrics, driven by the real handlers on the fake ports: the
engine counts each status a saga reaches, and the scrape-time gauges read the saga census."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from prometheus_client import generate_latest

from accord.events import UserCreated, UserDeactivated
from accord.orchestrator.domain import account_saga as saga
from accord.orchestrator.fakes import FakeWorld
from accord.orchestrator.handlers import on_operator, on_user_created, on_user_status
from accord.orchestrator.metrics import STATUSES, WORKFLOWS, OrchestratorMetrics
from accord.orchestrator.ports import SagaCount
from accord.runtime.metrics import RuntimeMetrics, unbounded_labels

from .handler_kit import answer, event, joined, requests
from .handler_kit import world as make_world

AGE = "accord_saga_failed_oldest_age_seconds"


def watching(w: FakeWorld) -> OrchestratorMetrics:
    """The metrics over the world's sagas, ages on its clock."""
    return OrchestratorMetrics(w.sagas.census, w.clock)


class Transitions:
    """What the process-wide transitions counter gained since the test began."""

    def __init__(self, metrics: OrchestratorMetrics) -> None:
        self.registry = metrics.registry
        self.start = {key: self._now(*key) for key in self._keys()}

    def _keys(self) -> Iterator[tuple[str, str]]:
        return ((w, s) for w in WORKFLOWS for s in STATUSES)

    def _now(self, workflow: str, status: str) -> float:
        labels = {"workflow": workflow, "status": status}
        value = self.registry.get_sample_value("accord_saga_transitions_total", labels)
        return value or 0.0

    def gained(self) -> dict[tuple[str, str], float]:
        """The (workflow, status) pairs counted since, with how many."""
        moved = {key: self._now(*key) - start for key, start in self.start.items()}
        return {key: n for key, n in moved.items() if n}


def sagas(metrics: OrchestratorMetrics, workflow: str, status: str) -> float | None:
    labels = {"workflow": workflow, "status": status}
    return metrics.registry.get_sample_value("accord_sagas", labels)


def age(metrics: OrchestratorMetrics, workflow: str) -> float | None:
    return metrics.registry.get_sample_value(AGE, {"workflow": workflow})


async def refused_joiner(w: FakeWorld, user: str = "u-1") -> str:
    """A joiner every target refused for good; returns its saga id."""
    created = UserCreated(user_id=user, user_name=user)
    started = await on_user_created(event(created, 1), created, w.ports)
    await answer(w, started, reason="refused", retryable=False)
    return requests(started)[0].saga_id


async def test_a_joiner_counts_running_then_completed_and_the_census_shows_it() -> None:
    w = make_world()
    metrics = watching(w)
    counted = Transitions(metrics)

    await joined(w, "u-1")
    await metrics.refresh()

    assert counted.gained() == {("joiner", "running"): 1, ("joiner", "completed"): 1}
    assert sagas(metrics, "joiner", "completed") == 1
    assert sagas(metrics, "joiner", "running") == 0
    assert sagas(metrics, "leaver", "queued") == 0  # every known series, at 0
    assert age(metrics, "joiner") == 0


async def test_a_saga_queued_behind_another_counts_queued_then_running() -> None:
    w = make_world()
    metrics = watching(w)
    counted = Transitions(metrics)
    created = UserCreated(user_id="u-1", user_name="u-1")
    started = await on_user_created(event(created, 1), created, w.ports)
    off = UserDeactivated(user_id="u-1")

    await on_user_status(event(off, 2), off, w.ports)  # the joiner holds the identity
    await metrics.refresh()

    assert counted.gained() == {("joiner", "running"): 1, ("leaver", "queued"): 1}
    assert (sagas(metrics, "joiner", "running"), sagas(metrics, "leaver", "queued")) == (1, 1)

    await answer(w, started)  # the joiner completes, the leaver begins
    await metrics.refresh()

    assert counted.gained() == {
        ("joiner", "running"): 1,
        ("joiner", "completed"): 1,
        ("leaver", "queued"): 1,
        ("leaver", "running"): 1,
    }
    assert sagas(metrics, "leaver", "queued") == 0
    assert sagas(metrics, "leaver", "running") == 1


async def test_the_oldest_failed_saga_ages_from_its_failure_and_reads_0_once_retried() -> None:
    w = make_world()
    metrics = watching(w)
    counted = Transitions(metrics)
    w.clock.advance(timedelta(minutes=5))  # started 5 minutes before it failed
    first = await refused_joiner(w, "u-1")
    w.clock.advance(timedelta(minutes=10))
    await refused_joiner(w, "u-2")
    w.clock.advance(timedelta(minutes=35))

    await metrics.refresh()

    assert counted.gained() == {("joiner", "running"): 2, ("joiner", "failed"): 2}
    assert sagas(metrics, "joiner", "failed") == 2
    assert age(metrics, "joiner") == 45 * 60  # the first one failed 45 minutes ago
    assert age(metrics, "leaver") == 0

    await answer(w, await on_operator(first, saga.RetryRequested(), w.ports))
    await metrics.refresh()

    assert age(metrics, "joiner") == 35 * 60  # the other one is the oldest now
    assert counted.gained()[("joiner", "completed")] == 1


async def test_a_cancelled_saga_leaves_the_failed_age_series_at_0() -> None:
    w = make_world()
    metrics = watching(w)
    counted = Transitions(metrics)
    saga_id = await refused_joiner(w)
    w.clock.advance(timedelta(hours=1))
    await metrics.refresh()
    assert age(metrics, "joiner") == 3600

    await on_operator(saga_id, saga.CancelRequested("given up"), w.ports)
    await metrics.refresh()

    assert age(metrics, "joiner") == 0  # the series stays: the alert resolves
    assert sagas(metrics, "joiner", "failed") == 0
    assert sagas(metrics, "joiner", "cancelled") == 1
    assert counted.gained()[("joiner", "cancelled")] == 1


async def test_a_failed_task_saga_is_counted_but_raises_no_failed_age() -> None:
    """A workflow task saga's failure is its run's: the run retries with a new saga or
    fails; the old saga waits for nobody, so the retry-budget alert must not fire on it."""
    w = make_world()
    metrics = watching(w)
    now = w.clock()
    failed = saga.SagaState(
        "task-1", "u-1", "workflow_task", "failed", now, (), intent=saga.TaskIntent("create")
    )
    await w.sagas.insert(failed, "corr")
    w.clock.advance(timedelta(hours=2))

    await metrics.refresh()

    assert sagas(metrics, "workflow_task", "failed") == 1
    assert age(metrics, "workflow_task") == 0


async def test_a_census_that_fails_keeps_the_gauges_as_they_were() -> None:
    w = make_world()
    await joined(w, "u-1")
    healthy = watching(w)
    await healthy.refresh()
    answers = [await w.sagas.census()]

    async def census() -> list[SagaCount]:
        if not answers:
            raise TimeoutError("the database is slow")
        return answers.pop()

    metrics = OrchestratorMetrics(census, w.clock)
    runtime = RuntimeMetrics()
    metrics.serve(runtime)
    await runtime.refresh()
    assert sagas(metrics, "joiner", "completed") == 1

    await runtime.refresh()  # the census raises; the runtime's refresh swallows it

    assert sagas(metrics, "joiner", "completed") == 1


async def test_the_page_serves_the_saga_metrics_with_bounded_labels() -> None:
    w = make_world()
    await refused_joiner(w)
    await joined(w, "u-2")
    runtime = RuntimeMetrics()
    watching(w).serve(runtime)
    other = RuntimeMetrics()
    watching(w).serve(other)  # a second orchestrator in the process serves the counter too

    await runtime.refresh()
    page = generate_latest(runtime.registry).decode()

    assert {"accord_sagas", AGE, "accord_saga_transitions"} <= runtime.metric_names()
    assert "accord_saga_transitions" in other.metric_names()
    assert 'accord_sagas{status="failed",workflow="joiner"} 1.0' in page
    assert unbounded_labels(page) == []
