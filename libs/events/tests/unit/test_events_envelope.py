"""The CloudEvents envelope and its Kafka binary binding: new_event, to_kafka, from_kafka."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from accord.events import (
    REGISTRY,
    Envelope,
    InvalidEvent,
    KafkaRecord,
    UnknownEventType,
    UserCreated,
    from_kafka,
    new_event,
    to_kafka,
)

ALL_TYPES = [spec.type for spec in REGISTRY]
IDENTITY_TYPES = [spec.type for spec in REGISTRY if spec.model.identity_event]
OTHER_TYPES = [spec.type for spec in REGISTRY if not spec.model.identity_event]

Headers = list[tuple[str, bytes]]


def _header(record: KafkaRecord, name: str) -> bytes | None:
    values = [value for key, value in record.headers if key == name]
    assert len(values) <= 1, f"header {name} appears {len(values)} times"
    return values[0] if values else None


def _replace(headers: Any, name: str, value: bytes | None) -> Headers:
    """The headers with one header replaced (value None: removed)."""
    out = [(key, raw) for key, raw in headers if key != name]
    if value is not None:
        out.append((name, value))
    return out


def _decode(record: KafkaRecord, **changes: Any) -> Envelope:
    """from_kafka of a record, with topic/key/value/headers optionally swapped."""
    return from_kafka(
        changes.get("topic", record.topic),
        changes.get("key", record.key),
        changes.get("value", record.value),
        changes.get("headers", list(record.headers)),
    )


# --- new_event -----------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_new_event_takes_subject_type_and_schema_from_the_data(
    make_event: Callable[[str], Any], event_type: str
) -> None:
    data = make_event(event_type)
    spec = REGISTRY.spec(event_type)
    envelope = new_event(data, source="urn:test", sequence=1)
    assert envelope.type == event_type
    assert envelope.subject == getattr(data, spec.model.subject_field)
    assert envelope.dataschema == spec.dataschema
    assert envelope.data is data
    assert envelope.specversion == "1.0"
    assert envelope.datacontenttype == "application/json"
    assert envelope.time.tzinfo is not None


def test_new_event_without_cause_starts_a_new_flow(make_event: Callable[[str], Any]) -> None:
    envelope = new_event(make_event("access.requested"), source="urn:test")
    assert envelope.subject == "req-1"
    assert envelope.correlationid == envelope.id
    assert envelope.causationid is None
    assert envelope.sequence is None


def test_new_event_keeps_the_correlation_of_its_cause(make_event: Callable[[str], Any]) -> None:
    cause = new_event(make_event("access.requested"), source="urn:portal", correlation_id="flow-7")
    effect = new_event(make_event("access.decided"), source="accord/authz", causation=cause)
    assert effect.correlationid == "flow-7"
    assert effect.causationid == cause.id
    assert effect.id != cause.id


def test_new_event_explicit_correlation_wins_over_the_cause(
    make_event: Callable[[str], Any],
) -> None:
    cause = new_event(make_event("access.requested"), source="urn:portal")
    effect = new_event(
        make_event("access.decided"), source="urn:x", causation=cause, correlation_id="other"
    )
    assert effect.correlationid == "other"
    assert effect.causationid == cause.id


def test_new_event_uses_given_id_time_and_sequence(make_event: Callable[[str], Any]) -> None:
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    envelope = new_event(
        make_event("user.created"), source="urn:hr", event_id="evt-1", time=when, sequence=0
    )
    assert (envelope.id, envelope.time, envelope.sequence) == ("evt-1", when, 0)
    assert envelope.correlationid == "evt-1"


@pytest.mark.parametrize("event_type", IDENTITY_TYPES)
def test_identity_event_without_sequence_is_refused(
    make_event: Callable[[str], Any], event_type: str
) -> None:
    with pytest.raises(InvalidEvent, match="sequence"):
        new_event(make_event(event_type), source="urn:hr")


@pytest.mark.parametrize("event_type", OTHER_TYPES)
def test_other_events_need_no_sequence(make_event: Callable[[str], Any], event_type: str) -> None:
    assert new_event(make_event(event_type), source="urn:x").sequence is None


def test_new_event_refuses_a_payload_of_another_class(samples: Any) -> None:
    class NotQuiteUserCreated(UserCreated):
        """A subclass that claims the user.created type."""

        event_type: ClassVar[str] = "user.created"

    data = NotQuiteUserCreated.model_validate(samples("user.created"))
    with pytest.raises(InvalidEvent, match="UserCreated"):
        new_event(data, source="urn:x", sequence=1)


def test_new_event_refuses_a_time_without_time_zone(make_event: Callable[[str], Any]) -> None:
    with pytest.raises((InvalidEvent, ValidationError)):
        new_event(make_event("user.created"), source="urn:x", sequence=1, time=datetime(2024, 1, 1))


# --- to_kafka ------------------------------------------------------------------------------


def test_to_kafka_uses_the_binary_content_mode(make_envelope: Callable[..., Envelope]) -> None:
    envelope = make_envelope("user.created", correlation_id="flow-1")
    record = to_kafka(envelope)
    assert record.topic == "user.created"
    assert record.key == b"e-1001"
    assert json.loads(record.value) == envelope.data.model_dump(mode="json")
    assert _header(record, "content-type") == b"application/json"
    expected = {
        "ce_specversion": b"1.0",
        "ce_id": envelope.id.encode(),
        "ce_source": b"urn:test:unit",
        "ce_type": b"user.created",
        "ce_time": b"2024-05-01T10:30:15.123456+00:00",
        "ce_subject": b"e-1001",
        "ce_dataschema": b"urn:accord:events:user.created:v1",
        "ce_correlationid": b"flow-1",
        "ce_sequence": b"42",
    }
    for name, value in expected.items():
        assert _header(record, name) == value, name
    assert _header(record, "ce_causationid") is None
    assert all(isinstance(value, bytes) for _, value in record.headers)


def test_to_kafka_writes_the_optional_extensions(make_envelope: Callable[..., Envelope]) -> None:
    cause = make_envelope("access.requested")
    envelope = make_envelope("access.decided", causation=cause).model_copy(
        update={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    )
    record = to_kafka(envelope)
    assert _header(record, "ce_causationid") == cause.id.encode()
    assert _header(record, "ce_traceparent") == envelope.traceparent.encode()  # type: ignore[union-attr]
    assert _header(record, "ce_sequence") is None


# --- round trip ----------------------------------------------------------------------------


def _full_envelope(make_envelope: Callable[..., Envelope], event_type: str) -> Envelope:
    cause = make_envelope("access.requested", correlation_id="flow-9")
    return make_envelope(event_type, causation=cause, event_id=f"evt-{event_type}").model_copy(
        update={
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "tracestate": "vendor=value",
        }
    )


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_round_trip_through_kafka(make_envelope: Callable[..., Envelope], event_type: str) -> None:
    envelope = _full_envelope(make_envelope, event_type)
    record = to_kafka(envelope)
    decoded = from_kafka(record.topic, record.key, record.value, record.headers)
    assert decoded == envelope
    assert decoded.correlationid == "flow-9"
    assert type(decoded.data) is REGISTRY.spec(event_type).model


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_round_trip_of_a_minimal_envelope(
    make_envelope: Callable[..., Envelope], event_type: str
) -> None:
    envelope = make_envelope(event_type)
    record = to_kafka(envelope)
    assert from_kafka(record.topic, record.key, record.value, list(record.headers)) == envelope


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_the_same_record_is_accepted_from_the_dlq(
    make_envelope: Callable[..., Envelope], event_type: str
) -> None:
    envelope = _full_envelope(make_envelope, event_type)
    record = to_kafka(envelope)
    dead_letter_headers = [*record.headers, ("accord-error", b"boom"), ("accord-attempts", b"3")]
    decoded = _decode(record, topic=f"{record.topic}.dlq", headers=dead_letter_headers)
    assert decoded == envelope


def test_from_kafka_accepts_a_record_without_optional_headers(
    make_envelope: Callable[..., Envelope],
) -> None:
    record = to_kafka(make_envelope("access.requested"))
    headers = _replace(_replace(record.headers, "ce_dataschema", None), "ce_correlationid", None)
    decoded = _decode(record, headers=headers)
    assert decoded.correlationid == decoded.id
    assert decoded.dataschema == "urn:accord:events:access.requested:v1"


def test_from_kafka_ignores_headers_without_a_value(
    make_envelope: Callable[..., Envelope],
) -> None:
    record = to_kafka(make_envelope("access.requested"))
    assert _decode(record, headers=[*record.headers, ("ce_causationid", None)]).causationid is None


def test_sequence_zero_is_accepted(make_envelope: Callable[..., Envelope]) -> None:
    record = to_kafka(make_envelope("user.deleted", sequence=0))
    assert _decode(record).sequence == 0


# --- from_kafka refusals -------------------------------------------------------------------


@pytest.fixture
def user_record(make_envelope: Callable[..., Envelope]) -> KafkaRecord:
    return to_kafka(make_envelope("user.created", sequence=5))


@pytest.mark.parametrize(
    ("header", "value", "message"),
    [
        ("ce_specversion", None, "ce_specversion"),
        ("ce_specversion", b"0.3", "ce_specversion"),
        ("ce_id", None, "id"),
        ("ce_id", b"", "id"),
        ("ce_source", None, "source"),
        ("ce_type", None, "type"),
        ("ce_subject", None, "subject"),
        ("ce_time", None, "time"),
        ("ce_type", b"user.exploded", "unknown event type"),
        ("ce_type", b"group.created", "do not belong on topic"),
        ("ce_sequence", None, "ce_sequence"),
        ("ce_sequence", b"-1", "negative"),
        ("ce_sequence", b"one", "not a whole number"),
        ("ce_sequence", b"1.5", "not a whole number"),
        ("ce_sequence", b"", "not a whole number"),
        ("ce_time", b"2024-05-01T10:30:15", "RFC 3339"),
        ("ce_time", b"2024-05-01", "RFC 3339"),
        ("ce_time", b"yesterday", "RFC 3339"),
        ("ce_subject", b"e-9999", "does not match"),
        ("ce_dataschema", b"urn:accord:events:group.created:v1", "dataschema names"),
        ("ce_dataschema", b"https://example.org/schema.json", "not an Accord event schema"),
        ("ce_dataschema", b"urn:accord:events:user.created:vX", "no version"),
        ("ce_dataschema", b"urn:accord:events:user.created:v2", "newer"),
        ("ce_id", b"\xff\xfe", "not UTF-8"),
    ],
)
def test_from_kafka_refuses_a_broken_header(
    user_record: KafkaRecord, header: str, value: bytes | None, message: str
) -> None:
    headers = _replace(user_record.headers, header, value)
    with pytest.raises(InvalidEvent, match=message):
        _decode(user_record, headers=headers)


def test_missing_attributes_are_all_named(user_record: KafkaRecord) -> None:
    headers = _replace(_replace(user_record.headers, "ce_id", None), "ce_source", None)
    with pytest.raises(InvalidEvent, match="missing CloudEvents attributes: id, source"):
        _decode(user_record, headers=headers)


def test_unknown_type_is_an_unknown_event_type(user_record: KafkaRecord) -> None:
    headers = _replace(user_record.headers, "ce_type", b"user.exploded")
    with pytest.raises(UnknownEventType, match=r"user\.exploded"):
        _decode(user_record, headers=headers)


@pytest.mark.parametrize("topic", ["group.created", "group.created.dlq", "user.created.retry"])
def test_from_kafka_refuses_the_wrong_topic(user_record: KafkaRecord, topic: str) -> None:
    with pytest.raises(InvalidEvent, match=f"do not belong on topic '{topic}'"):
        _decode(user_record, topic=topic)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"{not json", "Invalid JSON"),
        (b"", "Invalid JSON"),
        (b"[1, 2]", "invalid"),
        (b"\xff\xfe", "invalid"),
        (None, "has no value"),
    ],
)
def test_from_kafka_refuses_a_value_that_is_not_a_json_object(
    user_record: KafkaRecord, value: bytes | None, message: str
) -> None:
    with pytest.raises(InvalidEvent, match=message):
        _decode(user_record, value=value)


REQUIRED_FIELDS = [
    (spec.type, name)
    for spec in REGISTRY
    for name, info in spec.model.model_fields.items()
    if info.is_required()
]


@pytest.mark.parametrize(
    ("event_type", "field"), REQUIRED_FIELDS, ids=[f"{t}-{f}" for t, f in REQUIRED_FIELDS]
)
def test_from_kafka_names_the_missing_field(
    make_envelope: Callable[..., Envelope],
    samples: Callable[[str], dict[str, Any]],
    event_type: str,
    field: str,
) -> None:
    record = to_kafka(make_envelope(event_type))
    data = samples(event_type)
    del data[field]
    with pytest.raises(InvalidEvent, match=rf"{event_type} data is invalid: .*\b{field}: Field"):
        _decode(record, value=json.dumps(data).encode())


def test_from_kafka_names_the_invalid_nested_field(
    make_envelope: Callable[..., Envelope], samples: Callable[[str], dict[str, Any]]
) -> None:
    record = to_kafka(make_envelope("access.requested"))
    data = samples("access.requested")
    data["resource"]["entitlement"] = "has spaces"
    with pytest.raises(InvalidEvent, match=r"resource\.entitlement: String should match"):
        _decode(record, value=json.dumps(data).encode())


def test_from_kafka_never_echoes_the_invalid_value(
    make_envelope: Callable[..., Envelope], samples: Callable[[str], dict[str, Any]]
) -> None:
    record = to_kafka(make_envelope("user.created"))
    data = samples("user.created")
    data["email"] = "s3cr3t-not-an-email"
    with pytest.raises(InvalidEvent) as caught:
        _decode(record, value=json.dumps(data).encode())
    assert "email" in caught.value.reason
    assert "s3cr3t" not in str(caught.value)


def test_from_kafka_refuses_data_with_an_extra_field(
    user_record: KafkaRecord, samples: Callable[[str], dict[str, Any]]
) -> None:
    data = {**samples("user.created"), "password": "hunter2"}
    with pytest.raises(InvalidEvent, match="password: Extra inputs are not permitted"):
        _decode(user_record, value=json.dumps(data).encode())


def test_from_kafka_refuses_a_key_that_is_not_the_subject(user_record: KafkaRecord) -> None:
    with pytest.raises(InvalidEvent, match="record key does not match ce_subject"):
        _decode(user_record, key=b"e-9999")


def test_from_kafka_refuses_data_about_another_subject(
    user_record: KafkaRecord, samples: Callable[[str], dict[str, Any]]
) -> None:
    data = {**samples("user.created"), "user_id": "e-9999"}
    with pytest.raises(InvalidEvent, match="does not match the data's user_id"):
        _decode(user_record, value=json.dumps(data).encode())


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("ce_id", b"x" * 129),
        ("ce_source", b"s" * 257),
        ("ce_correlationid", b"c" * 129),
    ],
)
def test_from_kafka_refuses_oversized_attributes_with_invalid_event(
    user_record: KafkaRecord, header: str, value: bytes
) -> None:
    with pytest.raises(InvalidEvent, match=header.removeprefix("ce_")):
        _decode(user_record, headers=_replace(user_record.headers, header, value))


@pytest.mark.parametrize("value", [b"1_000", b" 7 ", b"+3"])
def test_from_kafka_refuses_a_sequence_that_is_not_plain_digits(
    user_record: KafkaRecord, value: bytes
) -> None:
    with pytest.raises(InvalidEvent, match="ce_sequence"):
        _decode(user_record, headers=_replace(user_record.headers, "ce_sequence", value))


# --- data is read strictly, as the published schema says ---------------------------------


def test_strings_are_read_as_they_are(
    user_record: KafkaRecord, samples: Callable[[str], dict[str, Any]]
) -> None:
    """No stripping on the way in: the schema accepts " Ada ", so it stays " Ada "."""
    data = {**samples("user.created"), "given_name": " Ada ", "title": " "}
    decoded = _decode(user_record, value=json.dumps(data).encode())
    assert (decoded.data.given_name, decoded.data.title) == (" Ada ", " ")  # type: ignore[attr-defined]


@pytest.mark.parametrize(("field", "value"), [("active", "yes"), ("active", 1)])
def test_a_boolean_must_be_a_json_boolean(
    user_record: KafkaRecord, samples: Callable[[str], dict[str, Any]], field: str, value: Any
) -> None:
    data = {**samples("user.created"), field: value}
    with pytest.raises(InvalidEvent, match=f"{field}: Input should be a valid boolean"):
        _decode(user_record, value=json.dumps(data).encode())


# --- the contract's edges: RFC 3339 times, the key, the sequence's range ---------------------


@pytest.mark.parametrize(
    "value",
    [
        b"20250101T000000+0000",  # ISO 8601 basic format
        b"20250101T000000Z",
        b"2025-01-01T00:00:00",  # no offset
        b"2025-01-01 00:00:00Z",  # a space for the T
        b"2025-01-01T00:00Z",  # no seconds
        b"2025-01-01T00:00:00+0530",  # offset without a colon
        b"2025-01-01T00:00:00+05",
        b"2025-W01-1T00:00:00Z",  # ISO week date
        b"2025-02-29T00:00:00Z",  # no such day
        b"2016-12-31T22:59:60Z",  # a leap second only at 23:59:60 UTC
        b"1735689600",
    ],
)
def test_ce_time_is_rfc_3339_only(user_record: KafkaRecord, value: bytes) -> None:
    headers = _replace(user_record.headers, "ce_time", value)
    with pytest.raises(InvalidEvent, match=r"ce_time .*not an RFC 3339 date-time"):
        _decode(user_record, headers=headers)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"2025-01-01T10:30:00Z", datetime(2025, 1, 1, 10, 30, tzinfo=UTC)),
        (b"2025-01-01t10:30:00.5z", datetime(2025, 1, 1, 10, 30, 0, 500_000, tzinfo=UTC)),
        (b"2025-01-01T12:30:00.123456789+02:00", datetime(2025, 1, 1, 10, 30, 0, 123456, UTC)),
        (b"2016-12-31T18:59:60-05:00", datetime(2016, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)),
    ],
)
def test_ce_time_reads_every_rfc_3339_form(
    user_record: KafkaRecord, value: bytes, expected: datetime
) -> None:
    assert _decode(user_record, headers=_replace(user_record.headers, "ce_time", value)).time == (
        expected
    )


def test_a_record_without_a_key_is_refused_with_the_reason(user_record: KafkaRecord) -> None:
    with pytest.raises(InvalidEvent, match="record has no key: the key must be ce_subject"):
        _decode(user_record, key=None)


MAX_SEQUENCE = 2**63 - 1


@pytest.mark.parametrize("value", [b"9223372036854775808", b"99999999999999999999", b"1" * 5000])
def test_a_sequence_beyond_a_bigint_names_the_limit(user_record: KafkaRecord, value: bytes) -> None:
    headers = _replace(user_record.headers, "ce_sequence", value)
    with pytest.raises(InvalidEvent, match=rf"out of range.* 0 to {MAX_SEQUENCE}\b"):
        _decode(user_record, headers=headers)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(b"9223372036854775807", MAX_SEQUENCE), (b"0009223372036854775807", MAX_SEQUENCE)],
)
def test_the_largest_sequence_is_accepted(
    user_record: KafkaRecord, value: bytes, expected: int
) -> None:
    assert _decode(
        user_record, headers=_replace(user_record.headers, "ce_sequence", value)
    ).sequence == (expected)


def test_a_sequence_that_is_no_number_names_the_range_too(user_record: KafkaRecord) -> None:
    headers = _replace(user_record.headers, "ce_sequence", b"1e3")
    with pytest.raises(InvalidEvent, match=rf"not a whole number.* 0 to {MAX_SEQUENCE}\b"):
        _decode(user_record, headers=headers)


def test_new_event_refuses_a_sequence_beyond_a_bigint(make_event: Callable[[str], Any]) -> None:
    with pytest.raises(InvalidEvent, match="sequence"):
        new_event(make_event("user.created"), source="urn:hr", sequence=MAX_SEQUENCE + 1)


@pytest.mark.parametrize("value", [b"text/plain", b"application/xml", b""])
def test_data_that_is_said_not_to_be_json_is_refused(
    user_record: KafkaRecord, value: bytes
) -> None:
    headers = _replace(user_record.headers, "content-type", value)
    with pytest.raises(InvalidEvent, match="content-type"):
        _decode(user_record, headers=headers)


def test_an_empty_correlation_id_is_refused(user_record: KafkaRecord) -> None:
    headers = _replace(user_record.headers, "ce_correlationid", b"")
    with pytest.raises(InvalidEvent, match="correlationid"):
        _decode(user_record, headers=headers)
