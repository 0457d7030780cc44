"""Normalising events and dead letters into audit entries: outcomes, ids, redaction."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Literal

import pytest

from accord.auditor.domain.normalise import (
    MAX_RAW,
    OUTCOMES,
    REDACTED,
    from_dead_letter,
    from_envelope,
    outcome_of,
    redacted,
)
from accord.events import (
    AccessDecided,
    AccessGranted,
    AccessRequested,
    AccountProvisioned,
    AccountProvisionFailed,
    Envelope,
    EventData,
    Profile,
    ProvisionRequested,
    Resource,
    SagaCompleted,
    SagaFailed,
    SagaStarted,
    UserCreated,
    UserDeactivated,
    new_event,
    to_kafka,
)

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
RESOURCE = Resource(application="payroll", entitlement="viewer")
COMMON = {"user_id": "e-1", "target": "scim-demo", "saga_id": "s-1", "step_id": "s-1:scim-demo"}


def envelope(data: EventData, **kwargs: object) -> Envelope:
    if data.identity_event:
        kwargs.setdefault("sequence", 1)
    return new_event(data, source="accord/test", **kwargs)  # type: ignore[arg-type]


def decided(decision: Literal["permit", "deny", "approval_required"]) -> AccessDecided:
    return AccessDecided(
        request_id="r-1",
        principal_id="e-1",
        resource=RESOURCE,
        decision=decision,
    )


# --- outcomes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "outcome"),
    [
        pytest.param(decided("permit"), "success", id="access.decided-permit"),
        pytest.param(decided("deny"), "failure", id="access.decided-deny"),
        pytest.param(decided("approval_required"), "pending", id="access.decided-approval"),
        pytest.param(
            AccountProvisioned(**COMMON, operation="create", account_id="a-1"),
            "success",
            id="account.provisioned",
        ),
        pytest.param(
            AccountProvisionFailed(**COMMON, operation="create", reason="x", retryable=False),
            "failure",
            id="account.provision_failed",
        ),
        pytest.param(
            SagaCompleted(saga_id="s", saga_type="joiner", subject_id="e-1", duration_ms=5),
            "success",
            id="saga.completed",
        ),
        pytest.param(
            SagaFailed(saga_id="s", saga_type="joiner", subject_id="e-1", reason="x"),
            "failure",
            id="saga.failed",
        ),
        pytest.param(
            SagaStarted(saga_id="s", saga_type="joiner", subject_id="e-1"),
            "pending",
            id="saga.started",
        ),
        pytest.param(
            ProvisionRequested(**COMMON, operation="create", profile=Profile(user_name="ada")),
            "pending",
            id="provision.requested",
        ),
        pytest.param(
            AccessRequested(
                request_id="r", requester_id="e-1", principal_id="e-1", resource=RESOURCE
            ),
            "pending",
            id="access.requested",
        ),
        pytest.param(
            AccessGranted(request_id="r", grant_id="g", principal_id="e-1", resource=RESOURCE),
            "success",
            id="access.granted",
        ),
        pytest.param(UserCreated(user_id="e-1", user_name="ada"), "info", id="user.created"),
        pytest.param(UserDeactivated(user_id="e-1"), "info", id="user.deactivated"),
    ],
)
def test_outcome_of(data: EventData, outcome: str) -> None:
    event = envelope(data)
    assert outcome_of(event) == outcome
    assert from_envelope(event, event.type, None).outcome == outcome


def test_outcomes_use_only_the_four_values() -> None:
    assert set(OUTCOMES.values()) <= {"success", "failure", "pending", "info"}


# --- from_envelope ---------------------------------------------------------------------------


def test_from_envelope_keeps_ids_times_and_the_trace_id() -> None:
    cause = envelope(UserCreated(user_id="e-1", user_name="ada"), correlation_id="corr-1")
    data = AccountProvisioned(**COMMON, operation="create", account_id="a-1")
    event = new_event(data, source="accord/provisioner", causation=cause)

    entry = from_envelope(event, "account.provisioned", TRACE_ID)

    assert entry.source_event_id == event.id
    assert entry.source_topic == "account.provisioned"
    assert entry.event_type == "account.provisioned"
    assert entry.occurred_at == event.time
    assert entry.actor == "accord/provisioner"
    assert entry.subject == "e-1"
    assert entry.target == "scim-demo"
    assert entry.outcome == "success"
    assert entry.correlation_id == "corr-1"
    assert entry.trace_id == TRACE_ID
    assert entry.payload == data.model_dump(mode="json")


def test_from_envelope_without_a_trace_and_without_a_target() -> None:
    event = envelope(decided("permit"), correlation_id="corr-2")

    entry = from_envelope(event, "access.decided", None)

    assert entry.trace_id is None
    assert entry.target is None
    assert entry.correlation_id == "corr-2"
    assert entry.subject == "r-1"


@pytest.mark.parametrize(
    "data",
    [
        AccountProvisioned(**COMMON, operation="create", account_id="a-1"),
        decided("permit"),
        UserCreated(user_id="e-1", user_name="ada"),
    ],
    ids=lambda d: d.event_type,
)
def test_an_event_read_from_a_dead_letter_topic_is_a_failure(data: EventData) -> None:
    event = envelope(data)

    entry = from_envelope(event, f"{event.type}.dlq", None)

    assert entry.outcome == "failure"
    assert entry.source_topic == f"{event.type}.dlq"


def test_from_envelope_payload_is_json_ready() -> None:
    data = UserCreated(user_id="e-1", user_name="ada", attributes={"site": "Leeds"})
    entry = from_envelope(envelope(data), "user.created", None)
    json.dumps(entry.payload)


# --- redaction -------------------------------------------------------------------------------


def test_from_envelope_redacts_at_any_depth() -> None:
    profile = Profile(
        user_name="ada",
        given_name="Ada",
        email="ada@example.org",
        attributes={"email": "private@example.org", "site": "Leeds"},
    )
    data = ProvisionRequested(**COMMON, operation="create", profile=profile)

    entry = from_envelope(envelope(data), "provision.requested", None, redact=["email"])

    assert entry.payload["profile"]["email"] == REDACTED
    assert entry.payload["profile"]["attributes"] == {"email": REDACTED, "site": "Leeds"}
    assert entry.payload["profile"]["given_name"] == "Ada"
    assert entry.payload["user_id"] == "e-1"
    assert "example.org" not in json.dumps(entry.payload)


def test_redaction_covers_keys_whose_values_are_containers() -> None:
    data = ProvisionRequested(**COMMON, operation="create", profile=Profile(user_name="ada"))

    entry = from_envelope(envelope(data), "provision.requested", None, redact=("profile",))

    assert entry.payload["profile"] == REDACTED
    assert entry.payload["target"] == "scim-demo"


def test_redacted_walks_lists_and_nested_mappings() -> None:
    value = {
        "people": [
            {"name": "Ada", "ssn": "123"},
            [{"ssn": "456"}, "ssn"],
            {"deep": {"deeper": {"ssn": "789", "keep": 1}}},
        ],
        "ssn": {"not": "kept"},
        "other": None,
    }

    result = redacted(value, {"ssn"})

    assert result == {
        "people": [
            {"name": "Ada", "ssn": REDACTED},
            [{"ssn": REDACTED}, "ssn"],  # a string equal to the key is a value, not a key
            {"deep": {"deeper": {"ssn": REDACTED, "keep": 1}}},
        ],
        "ssn": REDACTED,
        "other": None,
    }
    assert value["people"][0] == {"name": "Ada", "ssn": "123"}  # type: ignore[index]


def test_redacted_without_fields_returns_the_value() -> None:
    value = {"ssn": "123"}
    assert redacted(value, set()) is value


# --- dead letters ----------------------------------------------------------------------------


def test_a_dead_letter_of_garbage_bytes_without_headers() -> None:
    received = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

    entry = from_dead_letter(
        "user.created.dlq", 2, 41, b"\xff\xfe not json {", [], received_at=received
    )

    assert entry.source_event_id == "user.created.dlq:2:41"
    assert entry.correlation_id == "user.created.dlq:2:41"
    assert entry.source_topic == "user.created.dlq"
    assert entry.event_type == "unknown"
    assert entry.actor == "unknown"
    assert entry.subject == "unknown"
    assert entry.target is None
    assert entry.outcome == "failure"
    assert entry.trace_id is None
    assert entry.occurred_at == received
    assert entry.payload["error"] == "unknown"
    assert entry.payload["error_type"] == "unknown"
    assert entry.payload["original_topic"] == "user.created"
    assert "data" not in entry.payload
    assert entry.payload["raw"].endswith(" not json {")
    json.dumps(entry.payload)


def test_a_dead_letter_without_a_value() -> None:
    entry = from_dead_letter("user.created.dlq", 0, 7, None, [])

    assert entry.outcome == "failure"
    assert entry.payload["raw"] == ""
    assert entry.occurred_at.tzinfo is not None


def test_a_dead_letter_of_an_oversized_value_keeps_a_bounded_raw_text() -> None:
    entry = from_dead_letter("user.created.dlq", 0, 7, b"x" * (MAX_RAW * 3), [])

    assert len(entry.payload["raw"]) == MAX_RAW


def test_a_dead_letter_of_an_event_with_accord_error_headers() -> None:
    cause = envelope(UserCreated(user_id="e-1", user_name="ada"), correlation_id="corr-7")
    data = AccountProvisioned(**COMMON, operation="create", account_id="a-1")
    event = new_event(data, source="accord/provisioner", causation=cause)
    record = to_kafka(event)
    headers = [
        *record.headers,
        ("traceparent", TRACEPARENT.encode()),
        ("accord-error", b"handler failed: boom"),
        ("accord-error-type", b"PermanentError"),
        ("accord-consumer", b"orchestrator"),
        ("accord-original-topic", b"account.provisioned"),
    ]

    entry = from_dead_letter("account.provisioned.dlq", 1, 9, record.value, headers)

    assert entry.source_event_id == event.id
    assert entry.source_topic == "account.provisioned.dlq"
    assert entry.event_type == "account.provisioned"
    assert entry.actor == "accord/provisioner"
    assert entry.subject == "e-1"
    assert entry.correlation_id == "corr-7"
    assert entry.trace_id == TRACE_ID
    assert entry.occurred_at == event.time
    assert entry.outcome == "failure"
    assert entry.payload["error"] == "handler failed: boom"
    assert entry.payload["error_type"] == "PermanentError"
    assert entry.payload["original_topic"] == "account.provisioned"
    assert entry.payload["data"] == data.model_dump(mode="json")
    assert "raw" not in entry.payload


def test_a_dead_letter_redacts_its_json_data_at_any_depth() -> None:
    value = json.dumps(
        {"user_id": "e-1", "email": "a@x.org", "profile": {"email": "b@x.org", "k": [{"email": 1}]}}
    ).encode()

    entry = from_dead_letter("user.created.dlq", 0, 1, value, [], redact=["email"])

    assert entry.payload["data"] == {
        "user_id": "e-1",
        "email": REDACTED,
        "profile": {"email": REDACTED, "k": [{"email": REDACTED}]},
    }


@pytest.mark.parametrize("value", [b"42", b'"text"', b"null"])
def test_a_dead_letter_of_a_json_scalar_keeps_it_as_data(value: bytes) -> None:
    entry = from_dead_letter("user.created.dlq", 0, 1, value, [])
    assert entry.payload["data"] == json.loads(value)


def test_a_dead_letter_header_that_is_not_utf8_does_not_break_it() -> None:
    headers = [("ce_id", b"id-\xff"), ("ce_type", b"user.created"), ("accord-error", b"\xfe")]

    entry = from_dead_letter("user.created.dlq", 0, 1, b"{}", headers)

    assert entry.source_event_id.startswith("id-")
    assert entry.event_type == "user.created"
    assert entry.payload["data"] == {}


@pytest.mark.parametrize(
    "ce_time", [b"yesterday", b"2025-03-01T12:00:00"], ids=["unparseable", "naive"]
)
def test_a_dead_letter_with_a_bad_time_falls_back_to_the_receive_time(ce_time: bytes) -> None:
    received = datetime(2025, 3, 1, 13, 0, tzinfo=UTC)

    entry = from_dead_letter(
        "user.created.dlq", 0, 1, b"{}", [("ce_time", ce_time)], received_at=received
    )

    assert entry.occurred_at == received


@pytest.mark.parametrize("traceparent", [b"garbage", b"00-abc-01"], ids=["one-part", "three"])
def test_a_dead_letter_with_a_malformed_traceparent_has_no_trace_id(traceparent: bytes) -> None:
    entry = from_dead_letter("x.dlq", 0, 1, b"{}", [("traceparent", traceparent)])
    assert entry.trace_id is None


def test_a_dead_letter_reads_the_cloudevents_traceparent_header_too() -> None:
    entry = from_dead_letter("x.dlq", 0, 1, b"{}", [("ce_traceparent", TRACEPARENT.encode())])
    assert entry.trace_id == TRACE_ID


def test_a_dead_letter_of_a_json_array_is_redacted_too() -> None:
    value = json.dumps([{"user_id": "e-1", "email": "ada@example.org"}]).encode()

    entry = from_dead_letter("user.created.dlq", 0, 1, value, [], redact=["email"])

    assert "ada@example.org" not in json.dumps(entry.payload)


def test_a_large_dead_letter_never_stores_a_redacted_field_in_clear() -> None:
    padding = {f"attr{i}": "v" * 60 for i in range(64)}
    value = json.dumps(
        {"user_id": "e-1", "email": "ada@example.org", "attributes": padding}
    ).encode()
    assert len(value) > MAX_RAW

    entry = from_dead_letter("user.created.dlq", 0, 1, value, [], redact=["email"])

    assert "ada@example.org" not in json.dumps(entry.payload)
