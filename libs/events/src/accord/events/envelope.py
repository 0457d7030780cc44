"""CloudEvents 1.0 envelope and its Kafka protocol binding (binary content mode).

Attributes travel as `ce_*` headers, the JSON data is the record value and the subject is
the record key, so one subject's events land on one partition, in order. A record without a
key is refused: it would land on any partition, out of order with its subject's others.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError

from accord.events import timestamps
from accord.events.catalogue import EventData
from accord.events.catalogue.base import Timestamp
from accord.events.errors import InvalidEvent, describe_validation_error
from accord.events.registry import REGISTRY, Registry, parse_dataschema

CONTENT_TYPE: Literal["application/json"] = "application/json"
Headers = tuple[tuple[str, bytes], ...]
#: The largest sequence: consumers keep sequences in PostgreSQL `bigint` columns.
MAX_SEQUENCE = 2**63 - 1
_SEQUENCE_RANGE = f"a sequence is a decimal whole number from 0 to {MAX_SEQUENCE}"


class Envelope(BaseModel):
    """One event: CloudEvents context attributes plus Accord's extensions, and the data."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    id: str = Field(default_factory=lambda: str(uuid.uuid4()), min_length=1, max_length=128)
    """Unique per event; consumers deduplicate on it."""
    source: str = Field(min_length=1, max_length=256)
    """URI-reference of the producer, e.g. `accord/orchestrator` or `urn:hr:workday`."""
    type: str
    """Event type, e.g. `user.created`; also the topic name."""
    specversion: Literal["1.0"] = "1.0"
    """CloudEvents version."""
    time: Timestamp = Field(default_factory=lambda: datetime.now(UTC))
    """When the event happened."""
    subject: str
    """The id of the identity, group, request the event is about; the Kafka key."""
    dataschema: str
    """Schema URN with version, e.g. `urn:accord:events:user.created:v1`."""
    datacontenttype: Literal["application/json"] = CONTENT_TYPE
    """Always JSON."""
    correlationid: str = Field(min_length=1, max_length=128)
    """The flow (saga, request) the event belongs to; kept by every event it causes."""
    causationid: str | None = None
    """The id of the event that caused this one."""
    sequence: int | None = Field(default=None, ge=0, le=MAX_SEQUENCE)
    """Per-subject sequence of identity events; consumers apply them in this order."""
    traceparent: str | None = None
    """W3C trace context (CloudEvents distributed tracing extension)."""
    tracestate: str | None = None
    """W3C trace state."""
    data: SerializeAsAny[EventData]
    """The payload, validated against the type's model."""


def new_event(
    data: EventData,
    *,
    source: str,
    causation: Envelope | None = None,
    correlation_id: str | None = None,
    sequence: int | None = None,
    event_id: str | None = None,
    time: datetime | None = None,
    registry: Registry = REGISTRY,
) -> Envelope:
    """Wrap data in an envelope; an event caused by another keeps its correlation id."""
    spec = registry.spec(data.event_type)
    if spec.model is not type(data):
        raise InvalidEvent(f"{data.event_type} needs a {spec.model.__name__} payload")
    if spec.model.identity_event and sequence is None:
        raise InvalidEvent(f"{data.event_type} is an identity event and needs a sequence")
    new_id = event_id or str(uuid.uuid4())
    if causation is not None:
        correlation = correlation_id or causation.correlationid
        causation_id: str | None = causation.id
    else:
        correlation = correlation_id or new_id
        causation_id = None
    return _envelope(
        id=new_id,
        source=source,
        type=data.event_type,
        time=time or datetime.now(UTC),
        subject=data.event_subject(),
        dataschema=spec.dataschema,
        correlationid=correlation,
        causationid=causation_id,
        sequence=sequence,
        data=data,
    )


def _envelope(**attributes: object) -> Envelope:
    try:
        return Envelope.model_validate(attributes)
    except ValidationError as error:
        raise InvalidEvent(
            f"invalid event attributes: {describe_validation_error(error)}"
        ) from None


@dataclass(frozen=True)
class KafkaRecord:
    """A Kafka record in the CloudEvents binary content mode."""

    topic: str
    key: bytes
    value: bytes
    headers: Headers


_DIGITS = re.compile(r"[0-9]+")
_OPTIONAL = ("causationid", "sequence", "traceparent", "tracestate")


def to_kafka(envelope: Envelope, *, registry: Registry = REGISTRY) -> KafkaRecord:
    """Encode an envelope for its type's topic."""
    headers: list[tuple[str, bytes]] = [
        ("ce_specversion", b"1.0"),
        ("ce_id", envelope.id.encode()),
        ("ce_source", envelope.source.encode()),
        ("ce_type", envelope.type.encode()),
        ("ce_time", envelope.time.isoformat().encode()),
        ("ce_subject", envelope.subject.encode()),
        ("ce_dataschema", envelope.dataschema.encode()),
        ("ce_correlationid", envelope.correlationid.encode()),
        ("content-type", CONTENT_TYPE.encode()),
    ]
    for name in _OPTIONAL:
        value = getattr(envelope, name)
        if value is not None:
            headers.append((f"ce_{name}", str(value).encode()))
    return KafkaRecord(
        topic=registry.spec(envelope.type).topic,
        key=envelope.subject.encode(),
        value=envelope.data.model_dump_json().encode(),
        headers=tuple(headers),
    )


def from_kafka(
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: Headers | list[tuple[str, bytes]],
    *,
    registry: Registry = REGISTRY,
) -> Envelope:
    """Decode and validate a record; any breach of the contract raises InvalidEvent."""
    attrs = _ce_headers(headers)
    content_type = _content_type(headers)
    if content_type not in (None, CONTENT_TYPE):
        raise InvalidEvent(f"content-type {content_type[:40]!r} is not {CONTENT_TYPE}")
    if attrs.get("specversion") != "1.0":
        raise InvalidEvent("not a CloudEvents 1.0 record: ce_specversion header missing or not 1.0")
    missing = [a for a in ("id", "source", "type", "subject", "time") if not attrs.get(a)]
    if missing:
        raise InvalidEvent("missing CloudEvents attributes: " + ", ".join(missing))
    event_type = attrs["type"]
    spec = registry.spec(event_type)
    if topic not in (spec.topic, spec.dlq):
        raise InvalidEvent(f"{event_type} events do not belong on topic {topic!r}")
    schema_type, version = parse_dataschema(attrs.get("dataschema") or spec.dataschema)
    if schema_type != event_type:
        raise InvalidEvent(f"dataschema names {schema_type!r} but the type is {event_type!r}")
    if value is None:
        raise InvalidEvent(f"{event_type} record has no value")
    data = registry.parse(event_type, version, value)
    if data.event_subject() != attrs["subject"]:
        raise InvalidEvent(
            f"ce_subject {attrs['subject']!r} does not match the data's {data.subject_field}"
        )
    if key is None:
        raise InvalidEvent("record has no key: the key must be ce_subject")
    if key.decode(errors="replace") != attrs["subject"]:
        raise InvalidEvent("record key does not match ce_subject")
    sequence = _sequence(attrs.get("sequence"))
    if spec.model.identity_event and sequence is None:
        raise InvalidEvent(f"{event_type} is an identity event and needs a ce_sequence header")
    try:
        time = timestamps.parse(attrs["time"])
    except ValueError as error:
        raise InvalidEvent(f"ce_time {attrs['time'][:40]!r} is {error}") from None
    return _envelope(
        id=attrs["id"],
        source=attrs["source"],
        type=event_type,
        time=time,
        subject=attrs["subject"],
        dataschema=spec.dataschema,
        correlationid=attrs.get("correlationid", attrs["id"]),
        causationid=attrs.get("causationid"),
        sequence=sequence,
        traceparent=attrs.get("traceparent"),
        tracestate=attrs.get("tracestate"),
        data=data,
    )


def _ce_headers(headers: Headers | list[tuple[str, bytes]]) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for name, raw in headers:
        if name.startswith("ce_") and raw is not None:
            try:
                attrs[name[3:]] = raw.decode()
            except UnicodeDecodeError:
                raise InvalidEvent(f"header {name} is not UTF-8") from None
    return attrs


def _content_type(headers: Headers | list[tuple[str, bytes]]) -> str | None:
    for name, raw in headers:
        if name == "content-type" and raw is not None:
            return raw.decode(errors="replace")
    return None


def _sequence(value: str | None) -> int | None:
    if value is None:
        return None
    if value.startswith("-") and _DIGITS.fullmatch(value[1:]):
        raise InvalidEvent(f"ce_sequence must not be negative: {_SEQUENCE_RANGE}")
    if not _DIGITS.fullmatch(value):
        raise InvalidEvent(f"ce_sequence {value[:40]!r} is not a whole number: {_SEQUENCE_RANGE}")
    digits = value.lstrip("0") or "0"
    # Length first: int() of thousands of digits is slow, and refused above 4300.
    if len(digits) > len(str(MAX_SEQUENCE)) or int(digits) > MAX_SEQUENCE:
        raise InvalidEvent(f"ce_sequence {value[:40]!r} is out of range: {_SEQUENCE_RANGE}")
    return int(digits)
