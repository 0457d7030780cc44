"""OpenTelemetry: one trace follows an identity flow across services through Kafka headers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from accord.events import Envelope

_PROPAGATOR = TraceContextTextMapPropagator()


def setup_tracing(service: str) -> TracerProvider:
    """Install the SDK tracer provider; export to the console with ACCORD_TRACE_CONSOLE=1.

    Spans are always created, so trace ids propagate (and land in logs and the audit log)
    even where no exporter is configured.
    """
    provider = TracerProvider(resource=Resource.create({"service.name": f"accord-{service}"}))
    if os.environ.get("ACCORD_TRACE_CONSOLE") == "1":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def tracer() -> trace.Tracer:
    """The runtime's tracer."""
    return trace.get_tracer("accord.runtime")


def with_current_trace(envelope: Envelope) -> Envelope:
    """The envelope stamped with the current span's trace context."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    if "traceparent" not in carrier:
        return envelope
    return envelope.model_copy(
        update={"traceparent": carrier["traceparent"], "tracestate": carrier.get("tracestate")}
    )


@contextmanager
def consume_span(envelope: Envelope, topic: str, group: str) -> Iterator[Span]:
    """A consumer span that continues the producer's trace, made current."""
    carrier = {"traceparent": envelope.traceparent or ""}
    if envelope.tracestate:
        carrier["tracestate"] = envelope.tracestate
    parent = _PROPAGATOR.extract(carrier)
    token = context.attach(parent)
    try:
        with tracer().start_as_current_span(
            f"{topic} process",
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": topic,
                "messaging.consumer.group.name": group,
                "messaging.message.id": envelope.id,
                "accord.correlation_id": envelope.correlationid,
            },
        ) as span:
            yield span
    finally:
        context.detach(token)


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id inside a W3C traceparent header."""
    if not traceparent:
        return None
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


def current_trace_id() -> str | None:
    """The current span's trace id as hex, if any."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None
