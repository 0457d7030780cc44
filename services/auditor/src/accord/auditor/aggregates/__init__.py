"""Stream aggregates of the audit topic (faust-streaming): per-minute counts, failure rates
per target and joiner provisioning latency, published on audit.metrics and as Prometheus
metrics. Switched by ACCORD_AUDIT_AGGREGATES (on by default)."""

from accord.auditor.aggregates.app import AggregatesConfig, StreamAggregates
from accord.auditor.aggregates.runner import config_from, hook, run

__all__ = ["AggregatesConfig", "StreamAggregates", "config_from", "hook", "run"]
