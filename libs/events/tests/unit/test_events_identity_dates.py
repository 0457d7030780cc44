"""A profile's date attributes (hire and leave dates), employee type and time zone.

Dates come in two forms, a day or an instant with its offset, and stay in the form they came
in; anything else is refused with the reason, from Python and from Kafka alike.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from accord.events import REGISTRY, InvalidEvent, Profile, UserCreated, UserUpdated
from accord.events.timestamps import parse_date_or_date_time

from .conftest import SAMPLES


@pytest.mark.parametrize(
    "text",
    [
        "2025-03-03",
        "2024-02-29",
        "2025-03-03T08:00:00+01:00",
        "2025-03-03T07:00:00Z",
        "2025-03-03T08:00:00.250-05:30",
    ],
)
def test_a_day_or_an_instant_is_kept_exactly_as_sent(text: str) -> None:
    profile = Profile(user_name="ada", hire_date=text, leave_date=text)
    assert profile.hire_date == text
    assert profile.model_dump(mode="json")["leave_date"] == text
    assert Profile.model_validate_json(profile.model_dump_json(), strict=True) == profile


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2025-02-29", "no such day"),
        ("2025-13-01", "no such day"),
        ("03/03/2025", "not a date or an RFC 3339 date-time"),
        ("20250303", "not a date or an RFC 3339 date-time"),
        ("2025-W10-1", "not a date or an RFC 3339 date-time"),
        ("2025-03-03T08:00:00", "not an RFC 3339 date-time"),
        ("2025-03-03 08:00:00Z", "not a date or an RFC 3339 date-time"),
        ("2025-03-03T08:00Z", "not an RFC 3339 date-time"),
        ("0999-12-31", "before 1000"),
        ("", "not a date or an RFC 3339 date-time"),
    ],
)
def test_other_date_formats_are_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Profile(user_name="ada", hire_date=text)
    assert reason in str(refused.value)
    assert "hire_date" in str(refused.value)


def test_a_date_reads_as_a_day_and_a_date_time_as_an_instant() -> None:
    assert parse_date_or_date_time("2025-03-03") == date(2025, 3, 3)
    instant = parse_date_or_date_time("2025-03-03T08:00:00+01:00")
    assert isinstance(instant, datetime)
    assert instant == datetime(2025, 3, 3, 8, tzinfo=timezone(timedelta(hours=1)))


@pytest.mark.parametrize("zone", ["Europe/Paris", "America/Argentina/Buenos_Aires", "UTC"])
def test_iana_time_zones_are_accepted(zone: str) -> None:
    assert Profile(user_name="ada", time_zone=zone).time_zone == zone


@pytest.mark.parametrize(
    "zone", ["Europe/Atlantis", "europe/paris", "CET+1", "+01:00", "localtime", "Etc", "../etc"]
)
def test_unknown_time_zones_are_refused(zone: str) -> None:
    with pytest.raises(ValidationError, match="not an IANA time zone name"):
        Profile(user_name="ada", time_zone=zone)


def test_the_new_fields_are_optional_and_absent_by_default() -> None:
    """Events published before these fields existed are still valid, from Kafka too."""
    old = {"user_id": "e-1", "user_name": "ada", "active": True}
    event = REGISTRY.parse("user.created", 1, json.dumps(old).encode())
    assert isinstance(event, UserCreated)
    assert (event.employee_type, event.hire_date, event.leave_date, event.time_zone) == (
        None,
        None,
        None,
        None,
    )


def _updated(**changes: Any) -> bytes:
    return json.dumps({**SAMPLES["user.updated"], **changes}).encode()


def test_kafka_events_carry_the_fields_and_refuse_bad_values() -> None:
    event = REGISTRY.parse(
        "user.updated", 1, _updated(hire_date="2025-03-03", time_zone="Asia/Tokyo")
    )
    assert isinstance(event, UserUpdated)
    assert event.profile().hire_date == "2025-03-03"
    assert event.profile().time_zone == "Asia/Tokyo"
    assert event.profile().employee_type == "contractor"
    with pytest.raises(InvalidEvent, match="leave_date"):
        REGISTRY.parse("user.updated", 1, _updated(leave_date="2025-03-03T18:00:00"))
    with pytest.raises(InvalidEvent, match="time_zone"):
        REGISTRY.parse("user.updated", 1, _updated(time_zone="Europe/Paris "))
