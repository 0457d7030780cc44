"""Identity events: users and groups, as published by source systems and the registry."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

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


class UserUpdated(UserSnapshot):
    """An identity's attributes changed (the mover); carries the whole new profile."""

    event_type: ClassVar[str] = topics.USER_UPDATED


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
