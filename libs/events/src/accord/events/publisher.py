"""A small publisher for source systems: validate, wrap in CloudEvents, send, wait for the ack."""

from __future__ import annotations

import secrets
from types import TracebackType
from typing import Any, Self

from aiokafka import AIOKafkaProducer

from accord.events.brokers import broker_profile
from accord.events.catalogue import EventData
from accord.events.envelope import Envelope, new_event, to_kafka
from accord.events.kafka_config import client_config


class Publisher:
    """Publishes events to Accord's topics; use as `async with Publisher(source=...) as p`."""

    def __init__(
        self,
        *,
        source: str,
        bootstrap_servers: str | None = None,
        **producer_options: Any,
    ) -> None:
        config = client_config()
        if bootstrap_servers:
            config["bootstrap_servers"] = bootstrap_servers
        # acks=all: a publish returns only once the event is durable on the broker; and
        # idempotent where the broker allows: a retried send is written once.
        options: dict[str, Any] = {
            **broker_profile().producer_options(),
            "linger_ms": 2,
            "request_timeout_ms": 15000,
        }
        options.update(producer_options)
        self._producer = AIOKafkaProducer(**config, **options)
        self._source = source

    async def __aenter__(self) -> Self:
        try:
            await self._producer.start()
        except BaseException:
            await self._producer.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._producer.stop()

    async def publish(
        self,
        data: EventData,
        *,
        sequence: int | None = None,
        correlation_id: str | None = None,
        event_id: str | None = None,
    ) -> Envelope:
        """Publish one event and return its envelope once the broker has acknowledged it.

        The event carries the caller's trace context, or starts a trace of its own."""
        envelope = new_event(
            data,
            source=self._source,
            sequence=sequence,
            correlation_id=correlation_id,
            event_id=event_id,
        )
        envelope = _with_trace_context(envelope, start=True)
        await self.send(envelope)
        return envelope

    async def send(self, envelope: Envelope) -> None:
        """Send a ready envelope (e.g. to re-publish an event with its original id)."""
        record = to_kafka(_with_trace_context(envelope))
        await self._producer.send_and_wait(
            record.topic, value=record.value, key=record.key, headers=list(record.headers)
        )


def _with_trace_context(envelope: Envelope, *, start: bool = False) -> Envelope:
    """Stamp the caller's OpenTelemetry context, if it uses OpenTelemetry, so Accord's spans
    join the source system's trace; else, with start, a new trace, so that the first event
    of a flow has a trace id like every event it causes."""
    if envelope.traceparent is not None:
        return envelope
    carrier: dict[str, str] = {}
    try:
        from opentelemetry.propagate import inject
    except ImportError:
        pass
    else:
        inject(carrier)
    traceparent = carrier.get("traceparent") or (new_traceparent() if start else None)
    if traceparent is None:
        return envelope
    return envelope.model_copy(
        update={"traceparent": traceparent, "tracestate": carrier.get("tracestate")}
    )


def new_traceparent() -> str:
    """A W3C traceparent that starts a trace: random trace and parent ids, sampled."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
