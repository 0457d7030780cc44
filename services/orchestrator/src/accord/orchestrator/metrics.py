"""The orchestrator's own Prometheus metrics: its sagas by workflow and status.

Served on the runtime's GET /metrics page (bootstrap includes this registry in
`runtime.metrics`, see accord.runtime.metrics):

- `accord_sagas{workflow, status}`: sagas in the table, read at scrape time.
- `accord_saga_failed_oldest_age_seconds{workflow}`: how long the longest-failed saga of a
  workflow has been failed, read at scrape time; 0 when none is (the alert
  AccordSagaFailedPastRetryBudget resolves rather than losing its series). Always 0 for
  ``workflow_task``: a failed task saga is its run's failure, and the run retries it
  with a new saga or fails (``workflow.run_failed``); nobody waits on the old saga.
- `accord_saga_transitions_total{workflow, status}`: sagas reaching a status, counted by the
  saga engine (accord.orchestrator.handlers.engine) as it writes the change, inside the
  handler's transaction: a transaction rolled back and retried counts twice.

The gauges come from one aggregate query (`SagaStore.census`), bounded by a timeout: a
scrape never reads saga rows, and a slow database leaves the gauges at their last values.
Every known workflow and status has its series (0 when empty), so the label values are the
saga types and statuses of the domain: bounded.

The transitions counter is the process's (the engine counts without a handle on the
running service: consumer, timers, operator API and inbound SCIM all reach it); every
`OrchestratorMetrics` registry serves it. The gauges are each instance's own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Gauge

from accord.orchestrator.domain.account_saga import SagaState, SagaType, Status
from accord.orchestrator.ports import SagaCount
from accord.runtime.metrics import RuntimeMetrics

#: The label values: the domain's workflows and statuses.
WORKFLOWS: tuple[str, ...] = get_args(SagaType)
STATUSES: tuple[str, ...] = get_args(Status)
FAILED = "failed"
#: The saga type whose failures belong to a workflow run, not to an operator's queue.
HANDED_TO_RUNS: SagaType = "workflow_task"

Census = Callable[[], Awaitable[Sequence[SagaCount]]]

SAGA_TRANSITIONS = Counter(
    "accord_saga_transitions",
    "Sagas reaching a status (queued, running, compensating, completed, failed, cancelled),"
    " by workflow; counted by the saga engine when it writes the change, before its"
    " transaction commits (a rolled-back, retried handler counts twice)",
    ["workflow", "status"],
    registry=None,
)


def saga_reached(state: SagaState, before: str | None = None) -> None:
    """Count a saga written in its status, unless it was in that status already."""
    if state.status != before:
        SAGA_TRANSITIONS.labels(state.saga_type, state.status).inc()


class OrchestratorMetrics:
    """The orchestrator's metrics in a registry of its own; the saga gauges are read from
    `census` at each scrape, ages measured on `clock`."""

    def __init__(self, census: Census, clock: Callable[[], datetime] | None = None) -> None:
        self._census = census
        self._clock = clock or (lambda: datetime.now(UTC))
        self.registry = CollectorRegistry()
        self.registry.register(SAGA_TRANSITIONS)
        self.sagas = Gauge(
            "accord_sagas",
            "Sagas by workflow and status, at scrape (0 for a status no saga of the"
            " workflow is in)",
            ["workflow", "status"],
            registry=self.registry,
        )
        self.failed_oldest_age = Gauge(
            "accord_saga_failed_oldest_age_seconds",
            "Seconds since the longest-failed saga of the workflow failed (its row's last"
            " change: when it failed, or when a late result healed a step while others stay"
            " failed), at scrape; 0 when no saga of the workflow is failed",
            ["workflow"],
            registry=self.registry,
        )
        for workflow in WORKFLOWS:
            self.failed_oldest_age.labels(workflow).set(0)
            for status in STATUSES:
                self.sagas.labels(workflow, status).set(0)

    def serve(self, runtime: RuntimeMetrics) -> None:
        """On the runtime's page, the gauges refreshed at each scrape."""
        runtime.include(self.registry)
        runtime.on_scrape("sagas", self.refresh)

    async def refresh(self) -> None:
        """Read the census and set the gauges; a workflow or status now empty reads 0. A
        census that raises leaves every gauge as it was (the runtime's refresh logs none)."""
        counts = await self._census()
        now = self._clock()
        found = {(c.workflow, c.status): c for c in counts}
        workflows = dict.fromkeys([*WORKFLOWS, *(c.workflow for c in counts)])
        statuses = dict.fromkeys([*STATUSES, *(c.status for c in counts)])
        for workflow in workflows:
            for status in statuses:
                count = found.get((workflow, status))
                self.sagas.labels(workflow, status).set(count.sagas if count else 0)
            failed = found.get((workflow, FAILED))
            if workflow == HANDED_TO_RUNS:
                failed = None  # its run decides what follows (module docstring)
            age = (now - failed.oldest_change).total_seconds() if failed else 0.0
            self.failed_oldest_age.labels(workflow).set(max(0.0, age))
