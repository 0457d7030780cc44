"""The auditor's normalised record of every event, for dashboards and reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field

from accord.events import topics
from accord.events.catalogue.base import EventData, ShortText

Outcome = Literal["success", "failure", "pending", "info"]


class AuditRecorded(EventData):
    """One event, as stored in the audit log."""

    event_type: ClassVar[str] = topics.AUDIT_RECORDED
    subject_field: ClassVar[str] = "source_event_id"

    record_id: int = Field(ge=1)
    """Position in the audit log."""
    source_event_id: ShortText
    """CloudEvents id of the recorded event."""
    source_topic: ShortText
    """Topic the event was read from (DLQs included)."""
    event_type_recorded: ShortText
    """CloudEvents type of the recorded event."""
    occurred_at: datetime
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
