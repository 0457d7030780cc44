"""The auditor's normalised record of every event, and the per-minute figures drawn from it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, StringConstraints, field_validator

from accord.events import topics
from accord.events.catalogue.base import (
    Count,
    EventData,
    Integer,
    ShortText,
    Timestamp,
    ValueObject,
)

Outcome = Literal["success", "failure", "pending", "info"]
#: A minute in UTC, RFC 3339: `2024-05-01T12:00:00Z`.
UtcMinute = Annotated[
    str, StringConstraints(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:00Z$")
]


class AuditRecorded(EventData):
    """One event, as stored in the audit log."""

    event_type: ClassVar[str] = topics.AUDIT_RECORDED
    subject_field: ClassVar[str] = "source_event_id"

    record_id: Integer = Field(ge=1)
    """Position in the audit log."""
    source_event_id: ShortText
    """CloudEvents id of the recorded event."""
    source_topic: ShortText
    """Topic the event was read from (DLQs included)."""
    event_type_recorded: ShortText
    """CloudEvents type of the recorded event."""
    occurred_at: Timestamp
    """CloudEvents time of the recorded event."""
    actor: ShortText
    """Who caused it: the CloudEvents source (service or source system)."""
    subject: ShortText
    """Whom it is about (user, group, request)."""
    target: ShortText | None = None
    """Target system, for provisioning events."""
    outcome: Outcome
    """success, failure, pending or info."""
    correlation_id: ShortText
    """The saga / request the event belongs to."""
    trace_id: str | None = None
    """OpenTelemetry trace id, when the event carried one."""
    payload: dict[str, Any] = Field(default_factory=dict)
    """The event data, with configured fields redacted."""


class EventCount(ValueObject):
    """How many records of one event type had one outcome."""

    event_type: ShortText
    """CloudEvents type of the recorded events (`other` for types the auditor does not know)."""
    outcome: Outcome
    """success, failure, pending or info."""
    count: Integer = Field(ge=1)
    """Records of that type and outcome."""


class LatencyStats(ValueObject):
    """Joiner provisioning latency: from the joiner's user.created to its accounts provisioned."""

    joiners: Integer = Field(default=0, ge=0)
    """Joiners measured."""
    samples: Integer = Field(default=0, ge=0)
    """Latencies the percentiles come from: every one, or a uniform sample of them when there
    were more than the aggregator keeps per window."""
    p50_ms: Count | None = None
    """Median, in milliseconds (nearest rank); none when no joiner was measured."""
    p90_ms: Count | None = None
    """90th percentile, in milliseconds."""
    p99_ms: Count | None = None
    """99th percentile, in milliseconds."""
    max_ms: Count | None = None
    """Slowest joiner, in milliseconds (exact, sampled or not)."""


class TargetStats(ValueObject):
    """Provisioning figures of one target system in one window."""

    target: ShortText
    """Target system (`other` beyond the number of targets a window keeps apart)."""
    requested: Integer = Field(default=0, ge=0)
    """provision.requested records for the target."""
    attempts: Integer = Field(default=0, ge=0)
    """Provisioning outcomes: account.provisioned plus account.provision_failed records."""
    failures: Integer = Field(default=0, ge=0)
    """account.provision_failed records."""
    failure_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    """failures / attempts; 0 without attempts."""
    latency: LatencyStats = Field(default_factory=LatencyStats)
    """Joiner published -> account on this target provisioned (failed sagas included)."""


class AuditMetrics(EventData):
    """Aggregates of one closed one-minute window of the audit log (stream aggregates)."""

    event_type: ClassVar[str] = topics.AUDIT_METRICS
    subject_field: ClassVar[str] = "window_start"

    window_start: UtcMinute = Field(json_schema_extra={"format": "date-time"})
    """Start of the window, a minute in UTC (`2024-05-01T12:00:00Z`); also the record key."""
    window_seconds: Integer = Field(default=60, ge=1)
    """Length of the window."""
    records: Integer = Field(ge=0)
    """Audit records counted in the window (late ones included)."""
    late_records: Integer = Field(default=0, ge=0)
    """Records of an already published window that arrived during this one and are counted here."""
    counts: tuple[EventCount, ...] = ()
    """Records by event type and outcome."""
    targets: tuple[TargetStats, ...] = ()
    """Provisioning figures per target system."""
    latency: LatencyStats = Field(default_factory=LatencyStats)
    """Joiners whose every account was provisioned (saga completed) in the window."""

    @field_validator("window_start")
    @classmethod
    def _a_real_time(cls, value: str) -> str:
        datetime.fromisoformat(value)  # a ValueError (month 13) fails validation
        return value
