"""RFC 3339 date-times: the one time format of the contract (`ce_time` and every time field).

JSON Schema's `date-time` format is RFC 3339's `date-time` production, which is narrower than
what Python (`datetime.fromisoformat`) or pydantic read: no ISO basic format
(`20250101T000000+0000`), no missing offset, no space for the `T`, no missing seconds, no
Unix timestamps. Reading only this keeps the consumers equal to the published schemas.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone

#: The RFC 3339 date-time shape, as a JSON Schema `pattern` (checked again by `parse`, which
#: also rejects impossible dates, hours and offsets).
PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
#: What the format looks like, for error messages.
SHAPE = "YYYY-MM-DDTHH:MM:SS[.fraction] with Z or an offset +HH:MM / -HH:MM"

_DATE_TIME = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})[Tt]"
    r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]+))?"
    r"(?:[Zz]|(?P<sign>[+-])(?P<offset_hours>[0-9]{2}):(?P<offset_minutes>[0-9]{2}))"
)


def parse(text: str) -> datetime:
    """An aware datetime from an RFC 3339 date-time; ValueError saying why otherwise.

    Fractions beyond microseconds are cut (Python keeps no more); a leap second, valid only
    at 23:59:60 UTC, is read as the last microsecond before it.
    """
    found = _DATE_TIME.fullmatch(text)
    if found is None:
        raise ValueError(f"not an RFC 3339 date-time ({SHAPE})")
    hours, minutes = int(found["offset_hours"] or 0), int(found["offset_minutes"] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError("not an RFC 3339 date-time: the offset is out of range")
    offset = timedelta(hours=hours, minutes=minutes)
    second = int(found["second"])
    leap = second == 60
    try:
        parsed = datetime(
            int(found["year"]),
            int(found["month"]),
            int(found["day"]),
            int(found["hour"]),
            int(found["minute"]),
            59 if leap else second,
            999_999 if leap else int((found["fraction"] or "0")[:6].ljust(6, "0")),
            tzinfo=timezone(-offset if found["sign"] == "-" else offset),
        )
    except ValueError:
        raise ValueError("not an RFC 3339 date-time: no such date or time of day") from None
    if leap and _utc_minute(parsed) != (23, 59):
        raise ValueError("not an RFC 3339 date-time: a leap second comes only at 23:59:60 UTC")
    return parsed


def _utc_minute(moment: datetime) -> tuple[int, int]:
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01 with a positive offset: before year 1 in UTC
        return (-1, -1)
    return (utc.hour, utc.minute)


def whole_minute_offset(moment: datetime) -> datetime:
    """The same instant with an offset RFC 3339 can write (whole minutes): UTC if it had
    seconds in its offset (a historical local mean time, say)."""
    offset = moment.utcoffset()
    if offset is not None and offset % timedelta(minutes=1):
        return moment.astimezone(UTC)
    return moment


#: A calendar date, `YYYY-MM-DD` (RFC 3339 `full-date`, JSON Schema's `date`), as a pattern.
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_DATE = re.compile(DATE_PATTERN)
_YEAR_FROM_1000 = "^[1-9][0-9]{3}"
#: A date attribute's two forms, as patterns: years from 1000 (RFC 3339 allows 0000, which
#: Python cannot hold, and no hire or leave date is that old).
DATE_ATTRIBUTE_PATTERNS = (
    _YEAR_FROM_1000 + DATE_PATTERN.removeprefix("^[0-9]{4}"),
    _YEAR_FROM_1000 + PATTERN.removeprefix("^[0-9]{4}"),
)
#: What a date attribute may look like, for error messages.
DATE_OR_DATE_TIME_SHAPE = f"YYYY-MM-DD, or {SHAPE}"


def parse_date(text: str) -> date:
    """A calendar date from `YYYY-MM-DD`; ValueError saying why otherwise.

    Only the extended form: `date.fromisoformat` would also take `20250101` and `2025-W01-1`,
    which JSON Schema's `date` refuses.
    """
    if _DATE.fullmatch(text) is None:
        raise ValueError("not a date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError("not a date: no such day") from None


def parse_date_or_date_time(text: str) -> date | datetime:
    """A date attribute's value (hire date, leave date): a day or an instant.

    A day (`2025-03-01`) means that day wherever the person is, so it is read as a `date`,
    without a time zone: the workflow engine places it in the identity's time zone. An
    instant must carry its offset (RFC 3339), so it means one moment everywhere. Years
    before 1000 are refused, as `DATE_ATTRIBUTE_PATTERNS` do.
    """
    if "T" in text or "t" in text:
        try:
            value: date | datetime = parse(text)
        except ValueError as error:
            raise ValueError(f"{error}; or a date YYYY-MM-DD") from None
    elif _DATE.fullmatch(text) is None:
        raise ValueError(f"not a date or an RFC 3339 date-time ({DATE_OR_DATE_TIME_SHAPE})")
    elif text.startswith("0000"):  # RFC 3339's year 0, which Python has no date for
        raise ValueError("not a date attribute: the year is before 1000")
    else:
        value = parse_date(text)
    if value.year < 1000:
        raise ValueError("not a date attribute: the year is before 1000")
    return value
