"""Consumer spans continue the trace their event carries, one by one or a batch at a time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from accord.events import Envelope, UserCreated, new_event
from accord.events.publisher import new_traceparent
from accord.runtime import tracing


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """The spans the runtime's tracer ends, from a provider of the test's own."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "tracer", lambda: provider.get_tracer("test"))
    monkeypatch.setattr(tracing, "_recording", True)
    yield exporter
    provider.shutdown()


def _event(n: int) -> Envelope:
    user = UserCreated(user_id=f"u-{n}", user_name=f"user.{n}")
    event = new_event(user, source="urn:test", sequence=1)
    return event.model_copy(update={"traceparent": new_traceparent()})


def _ids(envelope: Envelope) -> tuple[int, int]:
    _, trace_id, span_id, _ = (envelope.traceparent or "").split("-")
    return int(trace_id, 16), int(span_id, 16)


def test_a_consumer_span_continues_the_event_s_trace(exported: InMemorySpanExporter) -> None:
    event = _event(1)
    with tracing.consume_span(event, "user.created", "g"):
        stamped = tracing.with_current_trace(_event(2))
    [span] = exported.get_finished_spans()
    assert (span.context.trace_id, span.parent.span_id if span.parent else 0) == _ids(event)
    assert span.kind is SpanKind.CONSUMER
    # What the handler emits is stamped with the consumer span as parent.
    assert _ids(stamped) == (span.context.trace_id, span.context.span_id)


def test_a_batch_gets_a_span_per_event_each_in_its_own_trace(
    exported: InMemorySpanExporter,
) -> None:
    events = [_event(n) for n in range(3)]
    with tracing.batch_spans(events, "user.created", "accord-auditor") as spans:
        assert len(spans) == 3
        assert exported.get_finished_spans() == ()
    finished = exported.get_finished_spans()
    assert [(s.context.trace_id, s.parent.span_id if s.parent else 0) for s in finished] == [
        _ids(e) for e in events
    ]
    for span, event in zip(finished, events, strict=True):
        assert span.name == "user.created process"
        assert span.kind is SpanKind.CONSUMER
        assert span.attributes is not None
        assert span.attributes["messaging.message.id"] == event.id
        assert span.attributes["messaging.consumer.group.name"] == "accord-auditor"
        assert span.attributes["messaging.batch.message_count"] == 3


def test_a_failed_batch_marks_every_span(exported: InMemorySpanExporter) -> None:
    events = [_event(n) for n in range(2)]
    with pytest.raises(RuntimeError), tracing.batch_spans(events, "user.created", "g"):
        raise RuntimeError("database gone")
    finished = exported.get_finished_spans()
    assert len(finished) == 2
    assert {s.status.status_code for s in finished} == {StatusCode.ERROR}


@pytest.fixture
def unrecorded(
    exported: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> InMemorySpanExporter:
    """As when setup_tracing found no exporter."""
    monkeypatch.setattr(tracing, "_recording", False)
    return exported


def test_with_no_exporter_the_event_s_trace_context_is_passed_on_as_it_came(
    unrecorded: InMemorySpanExporter,
) -> None:
    event = _event(1).model_copy(update={"tracestate": "vendor=x"})
    unsampled = _event(2)
    unsampled = unsampled.model_copy(
        update={"traceparent": (unsampled.traceparent or "")[:-2] + "00"}
    )
    for consumed in (event, unsampled):
        with tracing.consume_span(consumed, "user.created", "g"):
            assert tracing.current_trace_id() == (consumed.traceparent or "").split("-")[1]
            stamped = tracing.with_current_trace(_event(3))
        # The same trace, parent span and sampled flag: no span was made to point at.
        assert (stamped.traceparent, stamped.tracestate) == (
            consumed.traceparent,
            consumed.tracestate,
        )
    assert unrecorded.get_finished_spans() == ()
    assert tracing.current_trace_id() is None


def test_with_no_exporter_an_event_without_a_trace_still_starts_one(
    unrecorded: InMemorySpanExporter,
) -> None:
    untraced = _event(1).model_copy(update={"traceparent": None})
    with tracing.consume_span(untraced, "user.created", "g"):
        stamped = tracing.with_current_trace(_event(2))
    assert stamped.traceparent is not None
    [span] = unrecorded.get_finished_spans()
    assert _ids(stamped) == (span.context.trace_id, span.context.span_id)


def test_with_no_exporter_a_batch_makes_no_spans(unrecorded: InMemorySpanExporter) -> None:
    events = [_event(n) for n in range(3)]
    with tracing.batch_spans(events, "user.created", "accord-auditor") as spans:
        assert spans == []
    with pytest.raises(RuntimeError), tracing.batch_spans(events, "user.created", "g"):
        raise RuntimeError("database gone")
    assert unrecorded.get_finished_spans() == ()
