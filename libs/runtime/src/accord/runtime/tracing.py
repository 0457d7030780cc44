"""OpenTelemetry: one trace follows an identity flow across services through Kafka headers.

Spans go to any OpenTelemetry backend over OTLP/HTTP (protobuf) when the standard variables
ask for it: OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or
OTEL_TRACES_EXPORTER=otlp (then to the exporter's default, http://localhost:4318). The
exporter reads the other OTEL_EXPORTER_OTLP_* variables itself (headers, timeout,
compression, certificates); the SDK reads OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG,
and OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) renames the service.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from opentelemetry import context, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from accord.events import Envelope
from accord.runtime.instrumentation import instrument_libraries

log = logging.getLogger(__name__)

_PROPAGATOR = TraceContextTextMapPropagator()
#: The one OTLP protocol built in.
HTTP_PROTOBUF = "http/protobuf"
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_PROTOCOLS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
_KNOWN_EXPORTERS = {"otlp", "console", "none"}


#: Whether consumer spans are SDK spans (True) or the events' own trace context passed on
#: (False: setup_tracing found no exporter). True until setup_tracing says otherwise, so that
#: a test's own tracer provider sees every span.
_recording = True


def setup_tracing(service: str) -> TracerProvider:
    """Install the SDK tracer provider and the exporters the environment asks for.

    Trace ids always propagate (and land in logs and the audit log). When spans go
    somewhere, every consumed event gets a consumer span, and SQL (asyncpg) and outbound
    HTTP (httpx) are instrumented too, once per process (accord.runtime.instrumentation).
    With no exporter, a consumed event's trace context is passed on as it came (its
    trace id, parent span and sampled flag): spans nobody records cost CPU for nothing
    (measured: 8 % of the auditor's, a span per record of a batch), and the next service
    that exports attaches its spans to the last span recorded upstream. The caller shuts
    the provider down on leaving, which flushes the spans still batched.
    """
    global _recording
    provider = TracerProvider(resource=service_resource(service))
    exporters = span_exporters()
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _recording = bool(exporters)
    if exporters:
        instrument_libraries()
    return provider


def service_resource(service: str) -> Resource:
    """The service's Resource: accord-<service> unless the environment names it."""
    if OTELResourceDetector().detect().attributes.get(SERVICE_NAME):
        return Resource.create()
    return Resource.create({SERVICE_NAME: f"accord-{service}"})


def span_exporters() -> list[SpanExporter]:
    """The exporters the environment asks for: OTLP/HTTP and/or the console."""
    wanted = _traces_exporters()
    exporters: list[SpanExporter] = []
    if "otlp" in wanted:
        protocol = _otlp_protocol()
        if protocol == HTTP_PROTOBUF:
            exporters.append(OTLPSpanExporter())
        else:
            log.warning(
                "OTLP protocol %r is not built in, only %s: no spans are exported over OTLP",
                protocol,
                HTTP_PROTOBUF,
            )
    if "console" in wanted or os.environ.get("ACCORD_TRACE_CONSOLE") == "1":
        exporters.append(ConsoleSpanExporter())
    return exporters


def _traces_exporters() -> set[str]:
    """OTEL_TRACES_EXPORTER's names; unset, otlp if an OTLP endpoint is set, else none."""
    raw = os.environ.get("OTEL_TRACES_EXPORTER", "")
    names = {name.strip().lower() for name in raw.split(",") if name.strip()}
    if not names:
        return {"otlp"} if any(os.environ.get(name) for name in _ENDPOINTS) else set()
    unknown = names - _KNOWN_EXPORTERS
    if unknown:
        log.warning("OTEL_TRACES_EXPORTER names unknown exporters, ignored: %s", sorted(unknown))
    return set() if "none" in names else names & _KNOWN_EXPORTERS


def _otlp_protocol() -> str:
    for name in _PROTOCOLS:
        value = os.environ.get(name, "").strip().lower()
        if value:
            return value
    return HTTP_PROTOBUF


def recording() -> bool:
    """Whether consumed events get spans of their own (an exporter is configured)."""
    return _recording


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
    """A consumer span that continues the producer's trace, made current.

    With no exporter, the event's own trace context is made current instead (what the
    handler emits carries it on); an event without one still starts a trace of its own.
    """
    parent = _PROPAGATOR.extract(_carrier(envelope))
    if not _recording:
        carried = trace.get_current_span(parent)
        if carried.get_span_context().is_valid:
            token = context.attach(parent)
            try:
                yield carried
            finally:
                context.detach(token)
            return
    token = context.attach(parent)
    try:
        with tracer().start_as_current_span(
            f"{topic} process",
            kind=SpanKind.CONSUMER,
            attributes=_attributes(envelope, topic, group),
        ) as span:
            yield span
    finally:
        context.detach(token)


@contextmanager
def batch_spans(envelopes: Sequence[Envelope], topic: str, group: str) -> Iterator[list[Span]]:
    """A consumer span per event of a batch, each continuing its own event's trace.

    None is made current (a batch holds several traces); they end together when the
    batch's handling does, marked with the error if it raised. With no exporter there are
    none: a batch handler emits nothing that continues its events' traces.
    """
    if not _recording:
        yield []
        return
    spans = [
        tracer().start_span(
            f"{topic} process",
            context=_PROPAGATOR.extract(_carrier(envelope)),
            kind=SpanKind.CONSUMER,
            attributes={
                **_attributes(envelope, topic, group),
                "messaging.batch.message_count": len(envelopes),
            },
        )
        for envelope in envelopes
    ]
    try:
        yield spans
    except BaseException as error:
        for span in spans:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        raise
    finally:
        for span in spans:
            span.end()


def _carrier(envelope: Envelope) -> dict[str, str]:
    carrier = {"traceparent": envelope.traceparent or ""}
    if envelope.tracestate:
        carrier["tracestate"] = envelope.tracestate
    return carrier


def _attributes(envelope: Envelope, topic: str, group: str) -> dict[str, AttributeValue]:
    return {
        "messaging.system": "kafka",
        "messaging.destination.name": topic,
        "messaging.consumer.group.name": group,
        "messaging.message.id": envelope.id,
        "accord.correlation_id": envelope.correlationid,
    }


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
