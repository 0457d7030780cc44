"""What an identity event says of a principal, as authz's projection records it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PrincipalFacts:
    """One identity event's facts; an older `sequence` than the recorded one changes nothing."""

    sequence: int
    active: bool
    department: str | None = None
    manager_id: str | None = None
    user_name: str | None = None
    deleted: bool = False
    keep: frozenset[str] = frozenset()
    """Facts (`department`, `manager_id`, `user_name`, `active`) the event does not set, which
    stay as they are: PROFILE_FACTS for a status event, those a partial user.updated does
    not list. A principal seen first takes them all, unset."""


#: The profile facts of a principal (what a status event keeps).
PROFILE_FACTS = frozenset({"department", "manager_id", "user_name"})
