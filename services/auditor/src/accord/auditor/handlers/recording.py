"""Recording every event, and announcing each record on audit.recorded.

The auditor takes each partition's records as one batch: one transaction normalises them,
skips those already recorded (by topic and event id), chains and stores the rest, and
enqueues their audit.recorded events. There is no inbox: a redelivered batch is recorded
again, and the log skips what it holds, so nothing is recorded or announced twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from accord.auditor.domain.chaining import Stored, chain, key_of
from accord.auditor.domain.normalise import AuditEntry, from_dead_letter, from_envelope
from accord.auditor.ports import RecordingPorts
from accord.events import AuditRecorded, Envelope, new_event
from accord.runtime.records import Record
from accord.runtime.routes import BatchHandler, BatchItem, HandlerContext
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


async def record_batch(items: Sequence[BatchItem], ports: RecordingPorts) -> list[Envelope]:
    """Record a partition's batch; the audit.recorded events of the new records."""
    causes = {}
    entries = []
    for record, event in items:
        entry = entry_of(record, event, ports.redact)
        entries.append(entry)
        if event is not None:
            causes[key_of(entry)] = event
    state = await ports.log.chain_state([key_of(e) for e in entries])
    stored = chain(state, entries, ports.clock)
    await ports.log.append(stored)
    ports.chained(len(stored))
    return [announcement(s, ports.source, causes.get(key_of(s.entry))) for s in stored]


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


def batch_route(ports: Callable[[HandlerContext], RecordingPorts]) -> BatchHandler:
    """record_batch as the runtime runs it: its ports built from each batch's context (so
    they join the batch's transaction)."""

    async def handle(items: Sequence[BatchItem], ctx: HandlerContext) -> list[Envelope]:
        return await record_batch(items, ports(ctx))

    return handle
