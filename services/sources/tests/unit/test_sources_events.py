"""The changes as identity events: full profiles, status events, growing sequences."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from accord.events import (
    REGISTRY,
    Envelope,
    UserCreated,
    UserDeactivated,
    UserDeleted,
    UserReactivated,
    UserUpdated,
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


def test_an_update_carries_the_whole_profile_and_sequences_grow_per_user() -> None:
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
