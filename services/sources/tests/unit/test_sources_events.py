"""The changes as identity events: profiles (user.updated lists what it changes, so the
fields a source does not map are kept), status events, growing sequences."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from accord.events import (
    REGISTRY,
    Envelope,
    Profile,
    UserCreated,
    UserDeactivated,
    UserDeleted,
    UserReactivated,
    UserUpdated,
    apply_update,
    to_kafka,
)
from accord.sources.diff import Change, ChangeKind
from accord.sources.events import Sequences, identity_events

FIELDS = ("attributes.site", "department", "email", "hire_date", "user_name")
VALUES = ("Lyon", "Research", "ada@example.org", "2025-03-01", "ada.lovelace")
NOW = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)


def _events(changes: list[Change], last: dict[str, int] | None = None) -> list[Envelope]:
    sequences = Sequences(last)
    return list(
        identity_events(
            changes, fields=FIELDS, source_name="hr", sequences=sequences, run_id="run-1", time=NOW
        )
    )


def test_a_creation_carries_the_profile_with_the_given_user_name() -> None:
    created = Change(ChangeKind.CREATED, "1", "hr:1", "ada.lovelace2", True, VALUES, FIELDS)
    (event,) = _events([created])
    assert isinstance(event.data, UserCreated)
    assert (event.source, event.subject, event.sequence) == ("urn:accord:source:hr", "hr:1", 1)
    assert event.correlationid == "run-1"
    assert event.data.user_name == "ada.lovelace2"  # the run's, suffix included
    assert event.data.department == "Research"
    assert event.data.attributes == {"site": "Lyon"}
    assert event.data.title is None  # not mapped by this source
    # what a consumer reads back is what was built
    record = to_kafka(event)
    assert REGISTRY.parse(event.type, 1, event.data.model_dump(mode="json")) == event.data
    assert record.key == b"hr:1"


def test_an_update_lists_its_changed_fields_and_sequences_grow_per_user() -> None:
    changes = [
        Change(ChangeKind.REACTIVATED, "1", "hr:1", "ada.lovelace", True),
        Change(ChangeKind.UPDATED, "1", "hr:1", "ada.lovelace", True, VALUES, ("department",)),
        Change(ChangeKind.DEACTIVATED, "2", "hr:2", "alan.turing", False),
        Change(ChangeKind.DELETED, "3", "hr:3", "grace.hopper", False),
    ]
    events = _events(changes, last={"hr:1": 41, "hr:3": 2})
    assert [type(e.data) for e in events] == [
        UserReactivated,
        UserUpdated,
        UserDeactivated,
        UserDeleted,
    ]
    assert [(e.subject, e.sequence) for e in events] == [
        ("hr:1", 42),
        ("hr:1", 43),
        ("hr:2", 1),
        ("hr:3", 3),
    ]
    update = events[1].data
    assert isinstance(update, UserUpdated)
    assert (update.email, update.hire_date, update.active) == (
        "ada@example.org",
        "2025-03-01",
        True,
    )
    assert update.changed == ["department"]  # the others keep what the registry holds
    assert isinstance(events[3].data, UserDeleted)
    assert events[3].data.reason == "gone from source hr"


def test_sequences_remember_what_was_given() -> None:
    sequences = Sequences({"a": 5})
    assert [sequences.next("a"), sequences.next("b"), sequences.next("a")] == [6, 1, 7]
    assert sequences.last == {"a": 7, "b": 1}


@pytest.mark.parametrize("kind", [ChangeKind.CREATED, ChangeKind.UPDATED])
def test_an_inactive_row_is_an_inactive_profile(kind: ChangeKind) -> None:
    (event,) = _events([Change(kind, "1", "hr:1", "ada", False, VALUES, FIELDS)])
    assert isinstance(event.data, UserCreated | UserUpdated)
    assert event.data.active is False


def test_a_link_lists_every_mapped_profile_field_and_the_status_not_user_id() -> None:
    fields = ("attributes.site", "department")
    mapped = (*fields, "user_id")  # the user_id mapping is no profile field
    link = Change(
        ChangeKind.UPDATED, "1", "e-77", "ada", True, ("Lyon", "Research"), mapped, linked=True
    )
    (event,) = list(
        identity_events(
            [link], fields=fields, source_name="hr", sequences=Sequences(), run_id="run-1"
        )
    )
    assert isinstance(event.data, UserUpdated)
    assert event.data.changed == ["attributes.site", "department", "active"]
    # an identity created over SCIM keeps what this source does not map
    current = Profile(user_name="ada", title="Analyst", email="ada@example.org")
    merged = apply_update(current, event.data)
    assert (merged.title, merged.email, merged.department) == (
        "Analyst",
        "ada@example.org",
        "Research",
    )
    assert merged.attributes == {"site": "Lyon"}


def test_a_changed_field_keeps_the_fields_the_source_does_not_map() -> None:
    moved = Change(ChangeKind.UPDATED, "1", "hr:1", "ada.lovelace", True, VALUES, ("department",))
    (event,) = _events([moved])
    assert isinstance(event.data, UserUpdated)
    current = Profile(user_name="ada.lovelace", department="Eng", title="Lead", email="a@b.c")
    merged = apply_update(current, event.data)
    assert merged == current.model_copy(update={"department": "Research"})
    # read back from Kafka, the partial update is the same
    parsed = REGISTRY.parse(event.type, 1, event.data.model_dump(mode="json"))
    assert parsed == event.data
