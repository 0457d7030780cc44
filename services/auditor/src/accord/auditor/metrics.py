"""Prometheus metrics of the audit stream, fed by the stream aggregates, and GET /metrics.

The metrics live in a registry of their own (not prometheus-client's global one), so two
auditors in one process (tests) never share counters. The running auditor serves them on
the runtime's GET /metrics page, with the runtime's metrics (bootstrap includes this
registry in accord.runtime.metrics'); `mount` serves them alone. Scrape them with an API
token that holds audit:read (the auditor role), e.g. `authorization: {credentials_file: ...}`
in the Prometheus scrape config; deploy/grafana has a dashboard built on these names.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

from accord.auditor.domain.aggregates import (
    OTHER,
    PROVISION_FAILED,
    PROVISIONED,
    Observation,
    Step,
)
from accord.runtime.app_deps import Mounted
from accord.runtime.security.api import require
from accord.runtime.security.roles import Permission

#: Joiner provisioning takes a second or two when all is well, minutes when a target is slow.
LATENCY_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
#: Distinct target label values kept; further targets are counted as `other`.
MAX_TARGET_LABELS = 200


class AuditorMetrics:
    """The auditor's metrics and what feeds them."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        reg = self.registry
        self.records = Counter(
            "accord_audit_records",
            "Audit records by recorded event type and outcome",
            ["event_type", "outcome"],
            registry=reg,
        )
        self.provisioning_attempts = Counter(
            "accord_audit_provisioning_attempts",
            "Provisioning outcomes (account.provisioned + account.provision_failed) by target",
            ["target"],
            registry=reg,
        )
        self.provisioning_failures = Counter(
            "accord_audit_provisioning_failures",
            "account.provision_failed records by target",
            ["target"],
            registry=reg,
        )
        self.joiner_latency = Histogram(
            "accord_audit_joiner_latency_seconds",
            "Joiner published (user.created) to all accounts provisioned (saga completed)",
            buckets=LATENCY_BUCKETS_S,
            registry=reg,
        )
        self.joiner_target_latency = Histogram(
            "accord_audit_joiner_target_latency_seconds",
            "Joiner published (user.created) to its account on the target provisioned",
            ["target"],
            buckets=LATENCY_BUCKETS_S,
            registry=reg,
        )
        self.late_records = Counter(
            "accord_audit_late_records",
            "Records that arrived after their window was published",
            registry=reg,
        )
        self.windows = Counter(
            "accord_audit_metrics_windows",
            "audit.metrics events published (closed one-minute windows)",
            registry=reg,
        )
        self.joiners_evicted = Counter(
            "accord_audit_joiners_evicted",
            "Joiners forgotten unmeasured (no news within the horizon, or over the cap)",
            registry=reg,
        )
        self.joiners_pending = Gauge(
            "accord_audit_joiners_pending",
            "Joiners tracked, waiting for their accounts",
            registry=reg,
        )
        self.invalid_records = Counter(
            "accord_audit_aggregates_invalid_records",
            "audit.recorded records the stream aggregates could not read (skipped)",
            registry=reg,
        )
        self._targets: set[str] = set()

    def observed(self, observation: Observation) -> None:
        """One audit record counted."""
        self.records.labels(observation.event_type, observation.outcome).inc()
        if observation.target is None:
            return
        if observation.event_type in (PROVISIONED, PROVISION_FAILED):
            target = self._target(observation.target)
            self.provisioning_attempts.labels(target).inc()
            if observation.event_type == PROVISION_FAILED:
                self.provisioning_failures.labels(target).inc()

    def stepped(self, step: Step, pending: int) -> None:
        """A late record, joiners measured and evicted."""
        if step.late:
            self.late_records.inc()
        for measurement in step.measured:
            if measurement.total_ms is not None:
                self.joiner_latency.observe(measurement.total_ms / 1000)
            for target, ms in measurement.targets.items():
                self.joiner_target_latency.labels(self._target(target)).observe(ms / 1000)
        if step.evicted:
            self.joiners_evicted.inc(step.evicted)
        self.joiners_pending.set(pending)

    def published(self, windows: int) -> None:
        """audit.metrics events sent."""
        self.windows.inc(windows)

    def metric_names(self) -> set[str]:
        """Every sample name the registry exposes (`_total`, `_bucket`, ... included)."""
        names = set()
        for family in self.registry.collect():
            suffixes = {
                "counter": ("_total", "_created"),
                "histogram": ("_bucket", "_count", "_sum", "_created"),
            }.get(family.type, ("",))
            names |= {family.name + suffix for suffix in suffixes}
        return names

    def _target(self, target: str) -> str:
        """A bounded label: a broken source cannot make the series count grow forever."""
        if target in self._targets:
            return target
        if len(self._targets) >= MAX_TARGET_LABELS:
            return OTHER
        self._targets.add(target)
        return target


router = APIRouter(tags=["metrics"])


_metrics = Mounted[AuditorMetrics]("auditor_metrics")


def mount(app: FastAPI, metrics: AuditorMetrics) -> None:
    """GET /metrics of these metrics alone: the Prometheus text exposition format
    (OpenMetrics when asked for)."""
    _metrics.mount(app, metrics, router)


@router.get(
    "/metrics",
    summary="Prometheus metrics of the audit stream",
    response_class=Response,
    dependencies=[Depends(require(Permission.AUDIT_READ))],
    responses={
        200: {
            "description": "The metrics, in the Prometheus text format by default",
            "content": {
                "text/plain": {"schema": {"type": "string"}},
                "application/openmetrics-text": {"schema": {"type": "string"}},
            },
        }
    },
)
async def prometheus_metrics(
    request: Request, metrics: AuditorMetrics = Depends(_metrics)
) -> Response:
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(metrics.registry), media_type=content_type)
