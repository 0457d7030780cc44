"""When a time-based trigger fires: a date attribute, an ISO 8601 offset, a time zone.

A workflow says "7 days before the hire date" (`-P7D`) or "on the hire date at 08:00"
(`PT8H`). People read a date as a day where the person works, so a date attribute is a day
in the identity's time zone (its `time_zone` attribute, else the workflow's zone), and the
offset is calendar and wall-clock arithmetic in that zone, not a count of elapsed seconds:
"at 08:00" must be 08:00 on the day clocks change too.

The rules, in order (`fire_time`):

1. The start: a date (`2027-03-01`) is local midnight of that day in the zone; a datetime
   with an offset (`2027-03-01T09:00:00+01:00`, or `Z`) is that instant, read as the zone's
   wall time; a datetime without an offset is already a wall time in the zone.
2. The offset's days (weeks are 7 days) move the calendar day and keep the wall time, so
   `P1D` from midnight is the next midnight even when that day has 23 or 25 hours.
3. The offset's time part (hours, minutes, seconds) is added to the wall clock, so `PT8H`
   from midnight is 08:00 local on a day of 23 hours too. A negative offset subtracts both
   parts, so `-PT30M` from a date is 23:30 on the previous day, and "7 days before, at
   08:00" is `-P6DT16H` (ISO 8601 has no duration with two signs).
4. The wall time is made an instant: a wall time that does not exist (the spring-forward
   gap) moves forward by the length of the gap (02:30 in a 02:00 -> 03:00 gap is 03:30); an
   ambiguous one (fall back: 02:30 happens twice) is its first occurrence (summer time).
   These are Python's `fold=0` semantics (PEP 495), which `_instant` relies on and the tests
   pin down.
5. An offset of zero returns the start instant unchanged (for a datetime in the repeated
   hour of a fall-back night this keeps the occurrence it named; rule 4 would pick the first).

The offset is a `durations.Duration`, parsed by `durations.parse_duration` like every
duration of a workflow file: it keeps days apart from the time part for exactly this
reason. Years and months are refused there: they have no fixed length (P1M from 31
January?), and a trigger that fires on a different day depending on the month surprises
people; write days.

Zones come from the IANA database through `zoneinfo`: the system's /usr/share/zoneinfo
(Debian's tzdata package, in the python:*-slim-bookworm images too), else the `tzdata`
Python package when it is installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from accord.orchestrator.workflows.durations import Duration

#: The identity attribute that names where the person works (an IANA zone name).
TIME_ZONE_ATTRIBUTE = "time_zone"
#: Files of the zone database that are not zones a person works in (`localtime` is the
#: host's own zone, which must not decide when someone's timer fires).
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


class TimingError(ValueError):
    """A trigger's date value or zone cannot be turned into a time."""


class InvalidDateValue(TimingError):
    """The date attribute's value is neither an ISO date nor an ISO datetime."""


class UnknownZone(TimingError):
    """The name is not a zone of the IANA time zone database."""


def check_zone(name: str) -> ZoneInfo:
    """The IANA zone called `name`, or UnknownZone (a typo, a path, an empty name)."""
    if not isinstance(name, str) or not name or name in _NOT_ZONES:
        raise UnknownZone(f"{name!r} is not an IANA time zone name such as Europe/Paris")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as error:
        raise UnknownZone(
            f"{name!r} is not a time zone of the IANA database (such as Europe/Paris or UTC)"
        ) from error


def zone_for(identity: Mapping[str, object], workflow_zone: str) -> str:
    """Where a date of this identity is read: its `time_zone` if a valid IANA zone, else the
    workflow's. A bad `time_zone` value (a typo in the HR feed) falls back rather than
    stopping the identity's timers; the workflow's zone is checked when it is used."""
    own = identity.get(TIME_ZONE_ATTRIBUTE)
    if isinstance(own, str) and own:
        try:
            check_zone(own)
        except UnknownZone:
            return workflow_zone
        return own
    return workflow_zone


def fire_time(date_value: str | date, offset: Duration, zone: str) -> datetime:
    """When a trigger on `date_value` with `offset` fires, as an aware UTC datetime.

    `offset` is the trigger's `durations.Duration` (the definitions' own type: one parser
    for every duration of a workflow file); its `days` move the calendar and its
    `seconds` the wall clock. `zone` is where the date is read (`zone_for`). The rules
    (DST gaps and repeated hours included) are in the module docstring.
    """
    where = check_zone(zone)
    start = _start(date_value, where)
    if not offset.days and not offset.seconds:
        return start.astimezone(UTC)
    wall = start.replace(tzinfo=None) + timedelta(days=offset.days, seconds=offset.seconds)
    return _instant(wall, where)


def _start(value: str | date, zone: ZoneInfo) -> datetime:
    """The date attribute's value as an aware datetime in `zone` (rule 1)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        return _at_midnight(value, zone)
    elif isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:  # YYYY-MM-DD: a day, not an instant
                return _at_midnight(date.fromisoformat(text), zone)
            moment = datetime.fromisoformat(text)
        except ValueError as error:
            raise InvalidDateValue(
                f"{value!r} is neither an ISO date (2027-03-01) nor an ISO datetime "
                "(2027-03-01T09:00:00+01:00)"
            ) from error
    else:
        raise InvalidDateValue(f"a date attribute is ISO 8601 text, not {type(value).__name__}")
    if moment.tzinfo is None:
        return _instant(moment, zone).astimezone(zone)
    return moment.astimezone(zone)


def _at_midnight(day: date, zone: ZoneInfo) -> datetime:
    # A few zones skip midnight itself (a DST change at 00:00): rule 4 moves it forward too.
    return _instant(datetime(day.year, day.month, day.day), zone).astimezone(zone)


def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """A naive wall time in `zone` as a UTC instant (rule 4).

    With fold=0 zoneinfo reads a wall time in a gap with the offset from before the gap,
    which lands it the gap's length later, and an ambiguous one as its first occurrence.
    """
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
