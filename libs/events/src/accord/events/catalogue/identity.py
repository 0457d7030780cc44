"""Identity events: users and groups, as published by source systems and the registry."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, Field, WithJsonSchema

from accord.events import topics
from accord.events.catalogue.base import (
    DateOrTimestamp,
    Email,
    EventData,
    Identifier,
    LongText,
    ShortText,
    TimeZoneName,
    ValueObject,
)


class UserEvent(EventData):
    """Common shape of events about one user."""

    subject_field: ClassVar[str] = "user_id"
    identity_event: ClassVar[bool] = True

    user_id: Identifier
    """Stable identity id, assigned by the source system of record (e.g. an HR worker id)."""


class Profile(ValueObject):
    """A user's profile: what target attribute mappings draw from."""

    user_name: ShortText
    """Login name, unique across the organisation; becomes SCIM userName / LDAP uid."""
    given_name: ShortText | None = None
    """First name."""
    family_name: ShortText | None = None
    """Last name."""
    display_name: ShortText | None = None
    """Name to show people; targets derive one from given and family name when absent."""
    email: Email | None = None
    """Work e-mail address."""
    title: ShortText | None = None
    """Job title."""
    department: ShortText | None = None
    """Department name (SCIM enterprise extension `department`)."""
    employee_number: ShortText | None = None
    """HR employee number (SCIM enterprise extension `employeeNumber`)."""
    cost_center: ShortText | None = None
    """Cost centre (SCIM enterprise extension `costCenter`)."""
    manager_id: Identifier | None = None
    """user_id of the manager, if any."""
    active: bool = True
    """False for an identity that exists but must not sign in yet (or any more)."""
    employee_type: ShortText | None = None
    """Kind of worker: employee, contractor, intern... (SCIM `userType`); workflows scope on it."""
    hire_date: DateOrTimestamp | None = None
    """First working day (`2025-03-01`: that day in `time_zone`) or instant (RFC 3339 with an
    offset); kept as sent. Time-based joiner workflows run relative to it."""
    leave_date: DateOrTimestamp | None = None
    """Last working day or instant, in the same forms as `hire_date`; time-based leaver
    workflows run relative to it."""
    time_zone: TimeZoneName | None = None
    """IANA time zone where the person works (`Europe/Paris`; SCIM `timezone`): a date
    attribute's day begins there."""
    attributes: dict[ShortText, LongText] = Field(default_factory=dict, max_length=64)
    """Further source attributes, available to target attribute mappings."""


class UserSnapshot(UserEvent, Profile):
    """A user's full profile as the source system knows it now (state, not a diff)."""

    def profile(self) -> Profile:
        """The profile part, without the event's own fields."""
        return Profile.model_validate(self.model_dump(include=set(Profile.model_fields)))


class UserCreated(UserSnapshot):
    """A new identity appeared in a source system: the joiner."""

    event_type: ClassVar[str] = topics.USER_CREATED


#: How `UserUpdated.changed` names one custom attribute: `attributes.<name>`.
ATTRIBUTE_PREFIX = "attributes."
_FIELD_NAMES = tuple(sorted(Profile.model_fields))
#: The longest attribute name (a ShortText key of `Profile.attributes`).
_ATTRIBUTE_NAME_MAX = 256


def _profile_field_name(value: str) -> str:
    """A profile field's name, or `attributes.<name>`: what the JSON Schema pattern says."""
    if value in Profile.model_fields:
        return value
    name = value.removeprefix(ATTRIBUTE_PREFIX)
    if name != value and 1 <= len(name) <= _ATTRIBUTE_NAME_MAX and "\x00" not in name:
        return value
    raise ValueError(
        f"{value[:64]!r} is not a profile field: one of {', '.join(_FIELD_NAMES)},"
        " or attributes.<name>"
    )


#: A profile field named in `UserUpdated.changed`.
ProfileFieldName = Annotated[
    str,
    AfterValidator(_profile_field_name),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^(?:" + "|".join(_FIELD_NAMES) + r"|attributes\.[^\x00]{1,"
            f"{_ATTRIBUTE_NAME_MAX}}})$",
        }
    ),
]


class UserUpdated(UserSnapshot):
    """An identity's attributes changed (the mover): the whole profile, or `changed` ones."""

    event_type: ClassVar[str] = topics.USER_UPDATED

    changed: Annotated[list[ProfileFieldName], Field(min_length=1, max_length=128)] | None = None
    """The profile fields this event changes: `department`, `active`... and
    `attributes.<name>` for one custom attribute (`attributes` for all of them). Every other
    field keeps the value the consumer holds, whatever the event carries for it; that goes
    for `user_name` too, which the event must carry and which changes only when listed. A
    listed field the event leaves unset is cleared (an attribute removed). Absent: the event
    is a full snapshot and replaces the whole profile. A source that maps some fields only
    lists them, so it never wipes the others."""

    def sets(self, name: str) -> bool:
        """Whether this event sets a profile field (`attributes.<name>`: one attribute): a
        snapshot sets every field, a partial update those it lists."""
        if self.changed is None or name in self.changed:
            return True
        return name.startswith(ATTRIBUTE_PREFIX) and "attributes" in self.changed


def apply_update(current: Profile, update: UserUpdated) -> Profile:
    """The profile after a user.updated: the one rule every consumer applies.

    A full snapshot (no `changed`) replaces `current`; a partial update takes the fields it
    lists from the event and keeps the others from `current`, attribute by attribute for
    `attributes.<name>`. Raises ValueError (a pydantic ValidationError) when the merged
    profile breaks the contract (more than 64 attributes): a permanent error.
    """
    if update.changed is None:
        return update.profile()
    values: dict[str, Any] = current.model_dump()
    attributes = dict(current.attributes)
    for name in update.changed:
        if name == "attributes":
            attributes = dict(update.attributes)
        elif name.startswith(ATTRIBUTE_PREFIX):
            key = name.removeprefix(ATTRIBUTE_PREFIX)
            if key in update.attributes:
                attributes[key] = update.attributes[key]
            else:
                attributes.pop(key, None)
        else:
            values[name] = getattr(update, name)
    values["attributes"] = attributes
    return Profile.model_validate(values)


class UserDeactivated(UserEvent):
    """An identity must lose access but keep its accounts (suspension, leave)."""

    event_type: ClassVar[str] = topics.USER_DEACTIVATED

    reason: ShortText | None = None
    """Why, for the audit log."""


class UserReactivated(UserEvent):
    """A deactivated identity is back."""

    event_type: ClassVar[str] = topics.USER_REACTIVATED

    reason: ShortText | None = None
    """Why, for the audit log."""


class UserDeleted(UserEvent):
    """An identity left the organisation: the leaver."""

    event_type: ClassVar[str] = topics.USER_DELETED

    reason: ShortText | None = None
    """Why, for the audit log."""


class GroupEvent(EventData):
    """Common shape of events about one group."""

    subject_field: ClassVar[str] = "group_id"
    identity_event: ClassVar[bool] = True

    group_id: Identifier
    """Stable group id, assigned by the source system."""


class GroupSnapshot(GroupEvent):
    """A group's attributes as the source system knows them now."""

    display_name: ShortText
    """Group name, unique across the organisation."""
    description: LongText | None = None
    """What the group is for."""


class GroupCreated(GroupSnapshot):
    """A new group appeared."""

    event_type: ClassVar[str] = topics.GROUP_CREATED


class GroupUpdated(GroupSnapshot):
    """A group's attributes changed."""

    event_type: ClassVar[str] = topics.GROUP_UPDATED


class GroupDeleted(GroupEvent):
    """A group was removed."""

    event_type: ClassVar[str] = topics.GROUP_DELETED


class GroupMembersChanged(GroupEvent):
    """Users joined or left a group."""

    event_type: ClassVar[str] = topics.GROUP_MEMBERS_CHANGED

    added: tuple[Identifier, ...] = Field(default=(), max_length=10_000)
    """user_ids that joined."""
    removed: tuple[Identifier, ...] = Field(default=(), max_length=10_000)
    """user_ids that left."""
