"""The base of every event payload: frozen, strict, versioned, self-describing."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

#: Identifiers of identities, groups, requests and sagas: printable, no spaces, bounded.
Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@+-]*$"),
]
#: A Cedar entity type name: identifiers joined by "::" (User, Acme::Document).
CedarType = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z_][A-Za-z0-9_]*)*$"
    ),
]
#: No NUL characters: PostgreSQL text and jsonb cannot hold them, so no consumer could.
_NO_NUL = r"^[^\x00]*$"
#: A short human-entered text (names, titles, reasons).
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=_NO_NUL)]
#: A longer free text (justifications, descriptions).
LongText = Annotated[str, StringConstraints(max_length=2048, pattern=_NO_NUL)]
#: An e-mail address; full RFC 5322 validation is the target system's job.
Email = Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]


class ValueObject(BaseModel):
    """Frozen, strict, documented: the shape of everything inside an event."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", str_strip_whitespace=True, use_attribute_docstrings=True
    )


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


__all__ = ["Email", "EventData", "Field", "Identifier", "ShortText", "ValueObject", "fields_doc"]
