"""Authn's view of an identity, kept from the user.* events in whatever order they arrive.

The events of one identity travel on five topics (user.created, user.updated,
user.deactivated, user.reactivated, user.deleted) and Kafka orders none of them against
another: one SCIM write that sets `active` false and changes a name publishes
user.deactivated (sequence n+1) and user.updated (n+2), and either may be consumed first. So
the view is three facts, each with the sequence of the event that last set it, and an event
sets a fact only when it is newer than that event; the same events then end in the same
view in any order:

- the profile (user name, e-mail): user.created and user.updated;
- whether it is active: user.created, user.updated, user.deactivated, user.reactivated;
- a partial user.updated (`changed`) sets the facts it lists only: the user name or the
  e-mail alone keeps the other as it is (or takes the one the event carries while authn
  knows no profile yet), and `active` only when listed;
- whether it is deleted: user.deleted sets it, user.created and user.reactivated clear it.
  An update never does either: a source that corrects a leaver's attributes after the
  deletion leaves a leaver, whichever of the two is consumed first.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from accord.events.catalogue import (
    EventData,
    UserCreated,
    UserDeactivated,
    UserDeleted,
    UserReactivated,
    UserUpdated,
)

Status = Literal["active", "inactive", "deleted"]

NEVER = -1
"""The sequence of a fact no event has set yet (events without a sequence carry 0)."""


@dataclass(frozen=True)
class Change:
    """What one identity event says; None: the event says nothing of that fact."""

    sequence: int
    profile: tuple[str | None, str | None] | None = None
    """The user name and e-mail."""
    active: bool | None = None
    deleted: bool | None = None
    keep: frozenset[str] = frozenset()
    """Of the profile, `user_name` or `email`: kept as the view has it (a partial update
    that does not list it), unless the view has no profile yet."""


@dataclass(frozen=True)
class View:
    """An identity as authn holds it: each fact with the sequence that set it."""

    user_name: str | None = None
    email: str | None = None
    profile_sequence: int = NEVER
    active: bool = False
    active_sequence: int = NEVER
    deleted: bool = False
    deleted_sequence: int = NEVER

    @property
    def status(self) -> Status:
        """Deleted, else active or inactive."""
        if self.deleted:
            return "deleted"
        return "active" if self.active else "inactive"

    @property
    def sequence(self) -> int:
        """The newest sequence applied to any fact."""
        return max(self.profile_sequence, self.active_sequence, self.deleted_sequence)


def change_of(data: EventData, sequence: int) -> Change:
    """The facts an identity event sets."""
    if isinstance(data, UserCreated):
        return Change(sequence, (data.user_name, data.email), data.active, deleted=False)
    if isinstance(data, UserUpdated):
        keep = frozenset(name for name in ("user_name", "email") if not data.sets(name))
        profile = (data.user_name, data.email) if len(keep) < 2 else None
        active = data.active if data.sets("active") else None
        return Change(sequence, profile, active, keep=keep)
    if isinstance(data, UserReactivated):
        return Change(sequence, active=True, deleted=False)
    if isinstance(data, UserDeactivated):
        return Change(sequence, active=False)
    if isinstance(data, UserDeleted):
        return Change(sequence, deleted=True)
    raise TypeError(f"not an identity event: {type(data).__name__}")


def apply(view: View | None, change: Change) -> View | None:
    """The view after the change; None when the change is older than every fact it sets (a
    duplicate or a late event)."""
    before = view or View()
    after = before
    n = change.sequence
    if change.profile is not None and n > before.profile_sequence:
        user_name, email = change.profile
        if before.profile_sequence != NEVER:
            user_name = before.user_name if "user_name" in change.keep else user_name
            email = before.email if "email" in change.keep else email
        after = replace(after, user_name=user_name, email=email, profile_sequence=n)
    if change.active is not None and n > before.active_sequence:
        after = replace(after, active=change.active, active_sequence=n)
    if change.deleted is not None and n > before.deleted_sequence:
        after = replace(after, deleted=change.deleted, deleted_sequence=n)
    if view is not None and after == before:
        return None
    return after


#: What a status event about an identity authn has not seen yet says it was before.
_UNSEEN_WAS: dict[type[EventData], Status] = {
    UserDeactivated: "active",
    UserDeleted: "active",
    UserReactivated: "inactive",
}


@dataclass(frozen=True)
class Consequence:
    """What one applied identity event sets off, decided by what its status did (not by the
    event's type)."""

    first_known: bool = False
    """Seen for the first time (and not as deleted): failures consumed before it may lock."""
    enable: bool = False
    """Back to active: enabled again, unless locked."""
    disable: Literal["deactivated", "leaver"] | None = None
    """Became inactive or deleted: sessions end everywhere (a leaver loses its factors)."""


def consequence_of(before: View | None, after: View, data: EventData) -> Consequence:
    """What the change from `before` to `after` (by the event `data`) sets off."""
    first_known = before is None and after.status != "deleted"
    was = before.status if before else _UNSEEN_WAS.get(type(data))
    if after.status == was:
        return Consequence(first_known)
    if after.status == "active":
        return Consequence(first_known, enable=was is not None)
    if after.status == "inactive" and was != "active":
        return Consequence(first_known)  # a joiner created inactive, a leaver back as one
    leaver = after.status == "deleted"
    return Consequence(first_known, disable="leaver" if leaver else "deactivated")
