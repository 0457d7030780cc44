"""Time-based triggers' timing: ISO 8601 offsets (durations.Duration), and when "a date plus
an offset" is, in the identity's zone, across daylight saving changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.orchestrator.workflows.definitions import DateTrigger
from accord.orchestrator.workflows.durations import Duration, DurationError, parse_duration
from accord.orchestrator.workflows.timing import (
    InvalidDateValue,
    UnknownZone,
    check_zone,
    fire_time,
    zone_for,
)

PARIS = "Europe/Paris"
NEW_YORK = "America/New_York"
#: Daylight saving changes in 2027: (zone, spring forward, fall back); both at 02:00 local.
DST_DAYS = [
    (PARIS, date(2027, 3, 28), date(2027, 10, 31)),
    (NEW_YORK, date(2027, 3, 14), date(2027, 11, 7)),
]
#: The wall-clock hour that happens twice when clocks fall back.
REPEATED_HOUR = {PARIS: 2, NEW_YORK: 1}
ZONES = [PARIS, NEW_YORK, "UTC", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Chatham"]

days = st.dates(min_value=date(2000, 1, 1), max_value=date(2040, 12, 31))


def local(moment: datetime, zone: str) -> datetime:
    assert moment.tzinfo is UTC
    return moment.astimezone(ZoneInfo(zone))


def duration(days: int = 0, time: timedelta = timedelta(0)) -> Duration:
    """A trigger's offset: calendar days and a wall-clock time part (one sign)."""
    return Duration(days=days, seconds=int(time.total_seconds()))


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        ("-P7D", duration(days=-7)),
        ("PT8H", duration(time=timedelta(hours=8))),
        ("P1DT8H30M", duration(days=1, time=timedelta(hours=8, minutes=30))),
        ("-PT30M", duration(time=timedelta(minutes=-30))),
        ("P2W", duration(days=14)),
        ("PT1M", duration(time=timedelta(minutes=1))),
        ("-P1DT8H", duration(days=-1, time=timedelta(hours=-8))),
        ("PT0S", duration()),
        ("P0D", duration()),
    ],
)
def test_a_trigger_offset_keeps_days_and_wall_clock_time_apart(text: str, offset: Duration) -> None:
    assert parse_duration(text) == offset


@pytest.mark.parametrize("text", ["P1M", "P1Y", "-P1Y2M", "P1MT8H"])
def test_years_and_months_are_refused_because_they_have_no_fixed_length(text: str) -> None:
    with pytest.raises(DurationError, match="not a fixed length"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["", "P", "PT", "7D", "p7d", "P1DT", "PT8", "8 hours", "+P1D"])
def test_text_that_is_not_an_iso_duration_is_refused(text: str) -> None:
    with pytest.raises(DurationError, match="not an ISO 8601 duration"):
        parse_duration(text)


def test_an_offset_has_one_sign() -> None:
    with pytest.raises(DurationError, match="same sign"):
        duration(days=-1, time=timedelta(hours=8))
    with pytest.raises(DurationError, match="same sign"):
        duration(days=1, time=timedelta(hours=-8))


offsets = st.builds(
    lambda sign, d, s: Duration(days=sign * d, seconds=sign * s),
    st.sampled_from([1, -1]),
    st.integers(0, 1000),
    st.integers(0, 10 * 86_400),
)


@given(offsets)
def test_an_offset_prints_as_iso_text_that_parses_back_to_it(offset: Duration) -> None:
    assert parse_duration(str(offset)) == offset


def test_a_date_is_midnight_in_the_zone_where_the_person_works() -> None:
    assert fire_time("2027-03-01", duration(), PARIS) == datetime(2027, 2, 28, 23, tzinfo=UTC)
    assert fire_time("2027-03-01", duration(), NEW_YORK) == datetime(2027, 3, 1, 5, tzinfo=UTC)


def test_a_datetime_with_an_offset_is_that_instant_read_in_the_zone() -> None:
    at = fire_time("2027-03-01T09:00:00+01:00", parse_duration("P1D"), NEW_YORK)
    # 09:00 in Paris is 03:00 in New York; a day later at the same New York wall time.
    assert at == datetime(2027, 3, 2, 8, tzinfo=UTC)
    at = fire_time("2027-03-01T09:00:00Z", duration(), PARIS)
    assert at == datetime(2027, 3, 1, 9, tzinfo=UTC)


def test_a_datetime_without_an_offset_is_a_wall_time_in_the_zone() -> None:
    at = fire_time("2027-07-01T09:00:00", duration(), PARIS)
    assert at == datetime(2027, 7, 1, 7, tzinfo=UTC)


@pytest.mark.parametrize(("zone", "spring", "autumn"), DST_DAYS)
def test_eight_oclock_on_the_hire_date_is_eight_oclock_on_dst_days(
    zone: str, spring: date, autumn: date
) -> None:
    for day in (spring, autumn, spring - timedelta(days=1), autumn + timedelta(days=1)):
        at = local(fire_time(day.isoformat(), parse_duration("PT8H"), zone), zone)
        assert (at.date(), at.hour, at.minute) == (day, 8, 0)
    # The two DST days are 23 and 25 hours long, so 08:00 is 7 and 9 hours after midnight.
    spring_midnight = fire_time(spring.isoformat(), duration(), zone)
    autumn_midnight = fire_time(autumn.isoformat(), duration(), zone)
    assert fire_time(spring.isoformat(), parse_duration("PT8H"), zone) - spring_midnight == (
        timedelta(hours=7)
    )
    assert fire_time(autumn.isoformat(), parse_duration("PT8H"), zone) - autumn_midnight == (
        timedelta(hours=9)
    )


@pytest.mark.parametrize(("zone", "spring", "autumn"), DST_DAYS)
def test_a_day_across_a_dst_change_is_still_midnight_to_midnight(
    zone: str, spring: date, autumn: date
) -> None:
    for day in (spring, autumn):
        at = local(fire_time(day.isoformat(), parse_duration("P1D"), zone), zone)
        assert (at.date(), at.hour) == (day + timedelta(days=1), 0)


@pytest.mark.parametrize(("zone", "spring", "_autumn"), DST_DAYS)
def test_a_wall_time_in_the_spring_gap_moves_forward_by_the_gap(
    zone: str, spring: date, _autumn: date
) -> None:
    at = local(fire_time(spring.isoformat(), parse_duration("PT2H30M"), zone), zone)
    assert (at.date(), at.hour, at.minute) == (spring, 3, 30)
    assert fire_time(spring.isoformat(), parse_duration("PT2H30M"), zone) == fire_time(
        spring.isoformat(), parse_duration("PT3H30M"), zone
    )


@pytest.mark.parametrize(("zone", "_spring", "autumn"), DST_DAYS)
def test_an_ambiguous_wall_time_is_its_first_occurrence(
    zone: str, _spring: date, autumn: date
) -> None:
    hour = REPEATED_HOUR[zone]
    at = fire_time(autumn.isoformat(), duration(time=timedelta(hours=hour, minutes=30)), zone)
    first = datetime.combine(autumn, time(hour, 30), tzinfo=ZoneInfo(zone))
    second = first.replace(fold=1)
    assert at == first.astimezone(UTC)
    assert second.astimezone(UTC) - at == timedelta(hours=1)
    assert local(at, zone).dst() == timedelta(hours=1)  # still summer time


def test_a_zero_offset_keeps_the_instant_of_a_repeated_hour() -> None:
    second = "2027-10-31T02:30:00+01:00"  # the second 02:30 in Paris (CET)
    assert fire_time(second, duration(), PARIS) == datetime(2027, 10, 31, 1, 30, tzinfo=UTC)


def test_negative_offsets_go_back_in_days_and_wall_clock() -> None:
    at = local(fire_time("2027-03-01", parse_duration("-P7D"), PARIS), PARIS)
    assert (at.date(), at.hour) == (date(2027, 2, 22), 0)
    at = local(fire_time("2027-03-01", parse_duration("-PT30M"), PARIS), PARIS)
    assert (at.date(), at.hour, at.minute) == (date(2027, 2, 28), 23, 30)
    at = local(fire_time("2027-03-01", parse_duration("-P1DT8H"), PARIS), PARIS)
    assert (at.date(), at.hour) == (date(2027, 2, 27), 16)


def test_an_unknown_zone_is_a_clear_error() -> None:
    with pytest.raises(UnknownZone, match="Europe/Pariss"):
        fire_time("2027-03-01", duration(), "Europe/Pariss")
    for name in ["", "../etc/passwd", "/etc/localtime", "Europe", "localtime", "posixrules"]:
        with pytest.raises(UnknownZone):
            check_zone(name)


@pytest.mark.parametrize("value", ["", "tomorrow", "2027-02-30", "01/03/2027", "2027-03-01T25:00"])
def test_a_value_that_is_not_an_iso_date_is_a_clear_error(value: str) -> None:
    with pytest.raises(InvalidDateValue, match="ISO date"):
        fire_time(value, duration(), PARIS)


@pytest.mark.parametrize(
    ("identity", "zone"),
    [
        ({"time_zone": "Asia/Tokyo"}, "Asia/Tokyo"),
        ({"time_zone": "Mars/Olympus_Mons"}, PARIS),
        ({"time_zone": ""}, PARIS),
        ({"time_zone": 7}, PARIS),
        ({}, PARIS),
    ],
)
def test_the_identitys_own_zone_wins_when_it_is_a_real_zone(
    identity: dict[str, object], zone: str
) -> None:
    assert zone_for(identity, PARIS) == zone


@given(
    day=days,
    n=st.integers(0, 400),
    minutes=st.integers(0, 24 * 60 - 1),
    sign=st.sampled_from([1, -1]),
    zone=st.sampled_from(ZONES),
)
def test_n_days_after_a_date_is_that_many_calendar_days_later(
    day: date, n: int, minutes: int, sign: int, zone: str
) -> None:
    shift, clock = sign * n, timedelta(minutes=sign * minutes)
    assert fire_time(day.isoformat(), duration(days=shift, time=clock), zone) == fire_time(
        (day + timedelta(days=shift)).isoformat(), duration(time=clock), zone
    )
    assert fire_time(day.isoformat(), duration(days=shift), zone) == fire_time(
        (day + timedelta(days=shift)).isoformat(), duration(), zone
    )


@given(
    day=days,
    hour=st.integers(0, 23).filter(lambda hour: hour != 2),  # 02:xx is the spring gap
    minute=st.integers(0, 59),
    zone=st.sampled_from([PARIS, NEW_YORK]),
)
def test_a_wall_time_on_a_date_is_that_local_time_on_every_day(
    day: date, hour: int, minute: int, zone: str
) -> None:
    offset = duration(time=timedelta(hours=hour, minutes=minute))
    at = local(fire_time(day.isoformat(), offset, zone), zone)
    assert (at.date(), at.hour, at.minute) == (day, hour, minute)


@given(day=days, minutes=st.integers(1, 24 * 60), zone=st.sampled_from([PARIS, NEW_YORK]))
def test_a_negative_offset_under_a_day_falls_on_the_previous_day(
    day: date, minutes: int, zone: str
) -> None:
    at = local(fire_time(day.isoformat(), duration(time=timedelta(minutes=-minutes)), zone), zone)
    assert at.date() == day - timedelta(days=1)
    assert at < local(fire_time(day.isoformat(), duration(), zone), zone)


def test_a_loaded_date_trigger_offset_is_what_fire_time_takes() -> None:
    trigger = DateTrigger.model_validate({"at": "hire_date", "offset": "-P6DT16H"})
    at = local(fire_time("2027-03-01", trigger.offset, PARIS), PARIS)
    assert (at.date(), at.hour) == (date(2027, 2, 22), 8)  # 7 days before, at 08:00
