"""Prometheus metrics of the audit chain: records appended to it, and the auditor's periodic
verification of it (the AccordAuditVerifyFailed alert reads accord_audit_verify_failures_total).

Registered on the auditor's own registry (AuditorMetrics.registry), which the runtime's
GET /metrics page includes. The one label, `outcome`, takes three values.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from accord.auditor.domain.watching import Outcome

#: Outcomes of a verification round: the chain verified, it did not, it could not be checked.
OK, FAILED, ERROR = "ok", "failed", "error"


class ChainMetrics:
    """The chain's metrics and what feeds them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter(
            "accord_audit_verify_runs",
            "Verification rounds of the audit chain by outcome (ok, failed, error)",
            ["outcome"],
            registry=registry,
        )
        for outcome in (OK, FAILED, ERROR):
            self.runs.labels(outcome)  # every outcome present, at 0, from the start
        self.failures = Counter(
            "accord_audit_verify_failures",
            "Verification rounds that found the audit chain broken",
            registry=registry,
        )
        self.verified_records = Counter(
            "accord_audit_verified_records",
            "Audit records verified by the periodic verification",
            registry=registry,
        )
        self.last_verify = Gauge(
            "accord_audit_last_verify_timestamp_seconds",
            "Unix time of the last completed verification round (ok or failed)",
            registry=registry,
        )
        self.chained = Counter(
            "accord_audit_records_chained",
            "Records appended to the audit chain by the batch handler",
            registry=registry,
        )

    def verified(self, outcome: Outcome, at: float) -> None:
        """A round completed at unix time `at`."""
        self.runs.labels(OK if outcome.ok else FAILED).inc()
        if not outcome.ok:
            self.failures.inc()
        if outcome.checked:
            self.verified_records.inc(outcome.checked)
        self.last_verify.set(at)

    def errored(self) -> None:
        """A round could not read the log."""
        self.runs.labels(ERROR).inc()

    def records_chained(self, count: int) -> None:
        """The batch handler appended `count` records (its transaction commits next)."""
        if count:
            self.chained.inc(count)
