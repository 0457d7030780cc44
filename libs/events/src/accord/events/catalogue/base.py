"""The base of every event payload: frozen, strict, versioned, self-describing.

Two ways in, one contract. Events read from Kafka are validated strictly, as JSON, against
exactly what the published JSON Schemas say (`Registry.parse`): a string is taken as it is,
`"yes"` is no boolean and `"1"` no integer. Events built in Python (a handler, an HTTP API)
are validated leniently: strings are stripped and values coerced, so what a person typed
becomes a value that the strict reading accepts.
"""

from __future__ import annotations

import functools
import zoneinfo
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
)

from accord.events import timestamps


def _strip_in_python(value: Any, info: ValidationInfo) -> Any:
    """Strip a string given in Python; one read from JSON is taken as it is, as the schema
    says (a pattern that refuses a leading space must refuse it). Only blanks stay as they
    are: stripped to nothing they would be refused although the schema takes them (HTTP
    bodies, which FastAPI validates in Python mode, must accept what the OpenAPI says)."""
    if info.mode == "python" and isinstance(value, str):
        return value.strip() or value
    return value


_STRIP = BeforeValidator(_strip_in_python)

#: Identifiers of identities, groups, requests and sagas: printable, no spaces, bounded.
Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@+-]*$"),
    _STRIP,
]
#: A Cedar entity type name: identifiers joined by "::" (User, Acme::Document).
CedarType = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z_][A-Za-z0-9_]*)*$"
    ),
    _STRIP,
]
#: No NUL characters: PostgreSQL text and jsonb cannot hold them, so no consumer could.
_NO_NUL = r"^[^\x00]*$"
#: A short human-entered text (names, titles, reasons).
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=_NO_NUL), _STRIP]
#: A longer free text (justifications, descriptions).
LongText = Annotated[str, StringConstraints(max_length=2048, pattern=_NO_NUL), _STRIP]
#: An e-mail address; full RFC 5322 validation is the target system's job.
Email = Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$"), _STRIP]


def _integral(value: Any) -> Any:
    # JSON Schema counts 2.0 as an integer (it is the same JSON number as 2).
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: Reads an int the JSON Schema way: `2.0` is one, `"2"` and `true` are not. Bounds go before
#: it (`Annotated[int, Field(ge=0), INTEGRAL]`): after it, they would hold but be missing from the
#: JSON Schema of an optional field.
INTEGRAL = BeforeValidator(_integral)
#: A whole number (bounds in `Field` are fine where the field is not optional).
Integer = Annotated[int, INTEGRAL]
#: A whole number of zero or more.
Count = Annotated[int, Field(ge=0), INTEGRAL]


def _rfc3339(value: Any) -> Any:
    if isinstance(value, str):
        return timestamps.parse(value)
    return value


#: A point in time with an offset. As text, RFC 3339 only (JSON Schema's `date-time`);
#: written back with an offset RFC 3339 can express.
Timestamp = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc3339),
    AfterValidator(timestamps.whole_minute_offset),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": timestamps.PATTERN}),
]


def _date_or_date_time(value: str) -> str:
    timestamps.parse_date_or_date_time(value)  # refuses with the reason
    return value


#: A date attribute (a hire date, a leave date): a day `2025-03-01` (that day where the
#: person works) or an RFC 3339 date-time with its offset (one instant everywhere). Kept as
#: the text it came as, so a day stays a day and an instant keeps the offset it was given in;
#: `timestamps.parse_date_or_date_time` reads it.
DateOrTimestamp = Annotated[
    str,
    StringConstraints(max_length=64),
    _STRIP,
    AfterValidator(_date_or_date_time),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": 64,
            "anyOf": [
                {"format": "date", "pattern": timestamps.DATE_ATTRIBUTE_PATTERNS[0]},
                {"format": "date-time", "pattern": timestamps.DATE_ATTRIBUTE_PATTERNS[1]},
            ],
        }
    ),
]

#: The JSON Schema `format` of a time zone name: not one of JSON Schema's own, so editors
#: check the pattern only; the consumers check the name against the tz database.
TIME_ZONE_FORMAT = "iana-time-zone"
#: Names in the tz database's directory that are not zones a person works in.
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


@functools.cache
def time_zone_names() -> frozenset[str]:
    """The IANA time zone names this process knows (the system's tz database, else the
    `tzdata` package): read once, it scans the database's directory."""
    return frozenset(zoneinfo.available_timezones() - _NOT_ZONES)


def _time_zone(value: str) -> str:
    if value not in time_zone_names():
        raise ValueError(f"not an IANA time zone name such as Europe/Paris: {value[:64]!r}")
    return value


#: An IANA time zone name (`Europe/Paris`, `America/New_York`, `UTC`), as zoneinfo knows it.
TimeZoneName = Annotated[
    str,
    StringConstraints(max_length=64),
    _STRIP,
    AfterValidator(_time_zone),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": 64,
            "pattern": r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$",
            "format": TIME_ZONE_FORMAT,
        }
    ),
]


class ValueObject(BaseModel):
    """Frozen, strict, documented: the shape of everything inside an event."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class EventData(ValueObject):
    """Payload of one event type; subclasses set the class variables."""

    event_type: ClassVar[str]
    """The CloudEvents `type`, also the topic name."""
    schema_version: ClassVar[int] = 1
    """Bumped on every change of shape; older versions are upcast on read."""
    subject_field: ClassVar[str]
    """The field whose value is the CloudEvents subject and the Kafka key."""
    identity_event: ClassVar[bool] = False
    """Identity events carry a per-subject sequence and are applied in its order."""

    def event_subject(self) -> str:
        """The subject id: the Kafka key that keeps one subject's events in order."""
        return str(getattr(self, self.subject_field))


def fields_doc(model: type[BaseModel]) -> dict[str, str | None]:
    """Field descriptions, used by tests that insist every field is documented."""
    return {name: info.description for name, info in model.model_fields.items()}


__all__ = [
    "INTEGRAL",
    "Count",
    "DateOrTimestamp",
    "Email",
    "EventData",
    "Field",
    "Identifier",
    "Integer",
    "ShortText",
    "TimeZoneName",
    "Timestamp",
    "ValueObject",
    "fields_doc",
]
