"""Auditor handlers: record every event, and announce each record on audit.recorded."""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka.structs import ConsumerRecord

from accord.auditor.adapters import log_store
from accord.auditor.domain.normalise import AuditEntry, from_dead_letter, from_envelope
from accord.events import AuditRecorded, Envelope, new_event
from accord.runtime.consumer import HandlerContext
from accord.runtime.tracing import trace_id_of


async def handle_event(
    event: Envelope, ctx: HandlerContext, *, redact: Iterable[str] = ()
) -> list[Envelope]:
    """Record a valid event."""
    entry = from_envelope(event, ctx.topic, trace_id_of(event.traceparent), redact)
    return await _record(ctx, entry, cause=event)


async def handle_dead_letter(
    record: ConsumerRecord[bytes, bytes], ctx: HandlerContext, *, redact: Iterable[str] = ()
) -> list[Envelope]:
    """Record a dead letter, decodable or not."""
    entry = from_dead_letter(
        record.topic,
        record.partition,
        record.offset,
        record.value,
        list(record.headers),
        redact=redact,
    )
    return await _record(ctx, entry, cause=None)


async def _record(
    ctx: HandlerContext, entry: AuditEntry, *, cause: Envelope | None
) -> list[Envelope]:
    record_id = await log_store.append(ctx.conn, entry)
    if record_id is None:
        return []
    announced = AuditRecorded(
        record_id=record_id,
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
    return [
        new_event(
            announced,
            source=ctx.source,
            causation=cause,
            correlation_id=entry.correlation_id,
        )
    ]
