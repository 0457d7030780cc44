"""ISO 8601 durations for workflow definitions: a small strict parser, negatives included.

Workflow files write offsets, timeouts and waits as ISO 8601 durations (``-P7D``,
``PT8H``, ``P1DT2H30M``, ``P2W``). Pydantic's own ``timedelta`` parsing accepts them
but reads ``P1M`` as 30 days and ``P1Y`` as 365 days; a month or a year is no fixed
length, so a definition that says ``P1M`` would silently mean something else on the
31st. This parser refuses them with that reason (write ``P30D``), refuses fractions
(write a smaller unit) and keeps the day part apart from the time part: "the day
before the hire date" (``-P1D``) is a calendar day in the identity's time zone, while
``-PT24H`` is 24 hours, which differ across a daylight-saving change.

:class:`Duration` is a pydantic-ready value: models take it as a field type, it
validates from the ISO text, serialises to its canonical text (so equal durations
give equal JSON, whatever way they were written) and publishes a JSON Schema pattern.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

__all__ = ["JSON_PATTERN", "Duration", "DurationError", "parse_duration"]

_DURATION = re.compile(
    r"^(?P<sign>-)?P(?:(?P<weeks>\d+)W|(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?)$"
)
_MONTHS_OR_YEARS = re.compile(r"^-?P(?:\d+(?:[.,]\d+)?[YWD])*\d+(?:[.,]\d+)?[YM]")
_FRACTION = re.compile(r"\d[.,]\d")
_MAX_DIGITS = 9

#: What the JSON Schema says a duration looks like (ECMA-262, as editors read it).
JSON_PATTERN = r"^-?P(?!$)(\d+W|(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?)$"


class DurationError(ValueError):
    """A text that is not a duration this parser accepts; the message says why."""


@dataclass(frozen=True, slots=True, order=True)
class Duration:
    """A signed duration of whole calendar days plus a whole-second time part.

    ``days`` and ``seconds`` carry the same sign. :meth:`as_timedelta` is the
    fixed-length reading; a scheduler that counts days in a time zone uses ``days``
    and ``seconds`` separately.
    """

    days: int = 0
    seconds: int = 0

    def __post_init__(self) -> None:
        if self.days * self.seconds < 0:
            raise DurationError("days and seconds of a duration must have the same sign")

    @property
    def negative(self) -> bool:
        """Whether this duration points into the past (``-P7D``)."""
        return self.days < 0 or self.seconds < 0

    def as_timedelta(self) -> timedelta:
        """The fixed-length reading: a day counts as 24 hours."""
        return timedelta(days=self.days, seconds=self.seconds)

    def total_seconds(self) -> int:
        """The fixed-length reading in seconds."""
        return self.days * 86400 + self.seconds

    def __str__(self) -> str:
        """The canonical ISO 8601 text: ``-P1DT2H30M``, ``PT0S`` for zero."""
        days, seconds = abs(self.days), abs(self.seconds)
        if not days and not seconds:
            return "PT0S"
        text = "-P" if self.negative else "P"
        if days:
            text += f"{days}D"
        if seconds:
            hours, rest = divmod(seconds, 3600)
            minutes, secs = divmod(rest, 60)
            text += "T"
            text += f"{hours}H" if hours else ""
            text += f"{minutes}M" if minutes else ""
            text += f"{secs}S" if secs else ""
        return text

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _validate, serialization=core_schema.plain_serializer_function_ser_schema(str)
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "string",
            "pattern": JSON_PATTERN,
            "description": (
                "ISO 8601 duration, optionally negative: -P7D, PT8H, P1DT2H30M, P2W."
                " Whole numbers only; no years or months (not a fixed length)."
            ),
        }


def _validate(value: Any) -> Duration:
    if isinstance(value, Duration):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError(
            "duration",
            "a duration is ISO 8601 text such as PT8H, not {value}",
            {"value": repr(value)},
        )
    try:
        return parse_duration(value)
    except DurationError as error:
        raise PydanticCustomError("duration", "{reason}", {"reason": str(error)}) from error


def parse_duration(text: str) -> Duration:
    """Parse an ISO 8601 duration with an optional leading minus.

    Accepts weeks alone (``P2W``) or days and a time part (``P1DT2H30M``, ``PT90M``).

    :raises DurationError: for anything else, saying why (years or months,
        fractions, an empty or malformed duration).
    """
    stripped = text.strip()
    match = _DURATION.match(stripped)
    if match is None or stripped in ("P", "-P") or stripped.endswith("T"):
        raise DurationError(_why_not(stripped))
    parts = {
        name: int(value) for name, value in match.groupdict(default="0").items() if name != "sign"
    }
    if any(len(str(value)) > _MAX_DIGITS for value in parts.values()):
        raise DurationError(f"{stripped!r}: a number in this duration is too large")
    days = parts["weeks"] * 7 + parts["days"]
    seconds = parts["hours"] * 3600 + parts["minutes"] * 60 + parts["seconds"]
    sign = -1 if match.group("sign") else 1
    return Duration(sign * days, sign * seconds)


def _why_not(text: str) -> str:
    if _MONTHS_OR_YEARS.match(text):
        return (
            f"{text!r}: years and months are not a fixed length; write days instead (P30D, P365D)"
        )
    if _FRACTION.search(text):
        return f"{text!r}: fractions are not supported; use a smaller unit (PT90M, not PT1.5H)"
    return f"{text!r} is not an ISO 8601 duration such as P7D, -P7D, PT8H, P1DT2H30M or P2W"
