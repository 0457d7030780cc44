"""The base of every event payload: frozen, strict, versioned, self-describing.

Two ways in, one contract. Events read from Kafka are validated strictly, as JSON, against
exactly what the published JSON Schemas say (`Registry.parse`): a string is taken as it is,
`"yes"` is no boolean and `"1"` no integer. Events built in Python (a handler, an HTTP API)
are validated leniently: strings are stripped and values coerced, so what a person typed
becomes a value that the strict reading accepts.
"""

from __future__ import annotations

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
    "Email",
    "EventData",
    "Field",
    "Identifier",
    "Integer",
    "ShortText",
    "Timestamp",
    "ValueObject",
    "fields_doc",
]
