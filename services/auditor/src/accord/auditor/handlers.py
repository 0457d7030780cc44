"""Auditor handlers: record every event, and announce each record on audit.recorded.

The auditor takes each partition's records as one batch: one transaction normalises them,
skips those already recorded (by topic and event id), chains and stores the rest, and
enqueues their audit.recorded events.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from accord.auditor.adapters import log_store
from accord.auditor.adapters.log_store import Stored
from accord.auditor.domain.normalise import AuditEntry, from_dead_letter, from_envelope
from accord.events import AuditRecorded, Envelope, new_event
from accord.runtime.consumer import BatchItem, HandlerContext
from accord.runtime.records import Record
from accord.runtime.tracing import trace_id_of


def entry_of(record: Record, event: Envelope | None, redact: Iterable[str] = ()) -> AuditEntry:
    """The audit entry of a consumed record: a valid event, or a dead letter (read raw)."""
    if event is not None:
        return from_envelope(event, record.topic, trace_id_of(event.traceparent), redact)
    return from_dead_letter(
        record.topic,
        record.partition,
        record.offset,
        record.value,
        list(record.headers),
        redact=redact,
    )


async def record_batch(
    items: Sequence[BatchItem],
    ctx: HandlerContext,
    *,
    redact: Iterable[str] = (),
    as_writer: bool = False,
) -> list[Envelope]:
    """Record a partition's batch; the audit.recorded events of the new records."""
    fields = list(redact)
    causes = {}
    entries = []
    for record, event in items:
        entry = entry_of(record, event, fields)
        entries.append(entry)
        if event is not None:
            causes[(entry.source_topic, entry.source_event_id)] = event
    stored = await log_store.append_many(ctx.conn, entries, as_writer=as_writer)
    return [
        announcement(s, ctx.source, causes.get((s.entry.source_topic, s.entry.source_event_id)))
        for s in stored
    ]


def announcement(stored: Stored, source: str, cause: Envelope | None) -> Envelope:
    """The audit.recorded event of a stored record."""
    entry = stored.entry
    announced = AuditRecorded(
        record_id=stored.record_id,
        source_event_id=entry.source_event_id[:256],
        source_topic=entry.source_topic,
        event_type_recorded=entry.event_type[:256],
        occurred_at=entry.occurred_at,
        actor=entry.actor[:256],
        subject=entry.subject[:256],
        target=entry.target,
        outcome=entry.outcome,
        correlation_id=entry.correlation_id[:256],
        trace_id=entry.trace_id,
        payload=entry.payload,
    )
    return new_event(announced, source=source, causation=cause, correlation_id=entry.correlation_id)
