"""Turns any event (or dead letter) into one normalised audit entry."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from accord.events.envelope import Envelope
from accord.events.topics import is_dlq

REDACTED = "[redacted]"
MAX_RAW = 4096
MAX_PARSE = 1024 * 1024
_UNPARSED = object()

#: Outcome of each event type; anything not listed is informational.
#: Workflow events (issue 22) are about an identity, not a target system: their target
#: stays None (a workflow or task id there would count a failed run as a target's failure
#: on the dashboard), their actor is the engine that ran them (the event's source). A
#: cancelled run or a skipped task neither succeeded nor failed: informational.
#: A workflow's asks are requests awaiting an answer, as access.requested and
#: provision.requested: approval.requested (authz answers approval.decided) and
#: session.revoke_requested (authn answers session.revoked) are pending. approval.decided is
#: the final word on an ask, as access.decided is on a request: approved is a success,
#: rejected (by an approver, or by authz when the ask named nobody) a failure (outcome_of).
OUTCOMES: dict[str, str] = {
    "account.provisioned": "success",
    "saga.completed": "success",
    "access.granted": "success",
    "workflow.run_completed": "success",
    "workflow.task_completed": "success",
    "account.provision_failed": "failure",
    "saga.failed": "failure",
    "workflow.run_failed": "failure",
    "workflow.task_failed": "failure",
    "access.requested": "pending",
    "approval.requested": "pending",
    "session.revoke_requested": "pending",
    "provision.requested": "pending",
    "saga.started": "pending",
    "workflow.run_started": "pending",
    "workflow.task_waiting": "pending",
    "workflow.run_cancelled": "info",
    "workflow.task_skipped": "info",
}


@dataclass(frozen=True)
class AuditEntry:
    """One row of the audit log."""

    source_event_id: str
    source_topic: str
    event_type: str
    occurred_at: datetime
    actor: str
    subject: str
    target: str | None
    outcome: str
    correlation_id: str
    trace_id: str | None
    payload: dict[str, Any]


def outcome_of(envelope: Envelope) -> str:
    """success, failure, pending or info."""
    if envelope.type == "access.decided":
        decision = getattr(envelope.data, "decision", None)
        return {"permit": "success", "deny": "failure"}.get(str(decision), "pending")
    if envelope.type == "approval.decided":
        approved = getattr(envelope.data, "approved", None)
        if approved is None:
            return "pending"
        return "success" if approved else "failure"
    return OUTCOMES.get(envelope.type, "info")


def from_envelope(
    envelope: Envelope, topic: str, trace_id: str | None, redact: Iterable[str] = ()
) -> AuditEntry:
    """The audit entry of a valid event."""
    payload = envelope.data.model_dump(mode="json")
    return AuditEntry(
        source_event_id=envelope.id,
        source_topic=topic,
        event_type=envelope.type,
        occurred_at=envelope.time,
        actor=envelope.source,
        subject=envelope.subject,
        target=payload.get("target") if isinstance(payload.get("target"), str) else None,
        outcome="failure" if is_dlq(topic) else outcome_of(envelope),
        correlation_id=envelope.correlationid,
        trace_id=trace_id,
        payload=redacted(payload, set(redact)),
    )


def from_dead_letter(
    topic: str,
    partition: int,
    offset: int,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]],
    received_at: datetime | None = None,
    redact: Iterable[str] = (),
) -> AuditEntry:
    """The audit entry of a dead letter, which may not even be decodable."""
    attrs = {k: v.decode(errors="replace") for k, v in headers if v is not None}
    event_id = attrs.get("ce_id") or f"{topic}:{partition}:{offset}"
    payload: dict[str, Any] = {
        "error": attrs.get("accord-error", "unknown"),
        "error_type": attrs.get("accord-error-type", "unknown"),
        "original_topic": attrs.get("accord-original-topic", topic.removesuffix(".dlq")),
    }
    payload.update(_dead_letter_body(value or b"", set(redact)))
    time = parse_time(attrs.get("ce_time")) or received_at or datetime.now(UTC)
    return AuditEntry(
        source_event_id=event_id,
        source_topic=topic,
        event_type=attrs.get("ce_type", "unknown"),
        occurred_at=time,
        actor=attrs.get("ce_source", "unknown"),
        subject=attrs.get("ce_subject", "unknown"),
        target=None,
        outcome="failure",
        correlation_id=attrs.get("ce_correlationid") or event_id,
        trace_id=_trace_id(attrs.get("traceparent") or attrs.get("ce_traceparent")),
        payload=payload,
    )


def _dead_letter_body(value: bytes, fields: set[str]) -> dict[str, Any]:
    """What of a dead letter's value to keep: redacted first, truncated after."""
    decoded: Any = _UNPARSED
    if len(value) <= MAX_PARSE:
        with contextlib.suppress(ValueError):
            decoded = json.loads(value)
    if decoded is not _UNPARSED:
        data = redacted(decoded, fields)
        text = json.dumps(data)
        if len(text) <= MAX_RAW:
            return {"data": data}
        return {"data_truncated": text[:MAX_RAW], "size": len(value)}
    if fields:
        # Unparseable, so its fields cannot be redacted: keep only its fingerprint.
        return {"raw_sha256": hashlib.sha256(value).hexdigest(), "size": len(value)}
    return {"raw": value[:MAX_RAW].decode(errors="replace"), "size": len(value)}


def redacted(value: Any, fields: set[str]) -> Any:
    """A copy with every key in fields replaced by a marker, at any depth."""
    if not fields:
        return value
    if isinstance(value, Mapping):
        return {k: REDACTED if k in fields else redacted(v, fields) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(v, fields) for v in value]
    return value


def parse_time(text: str | None) -> datetime | None:
    """An ISO 8601 time with an offset; None for anything else."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def _trace_id(traceparent: str | None) -> str | None:
    if not traceparent:
        return None
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None
