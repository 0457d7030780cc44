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
    keep_profile: bool = False
    """A status event (deactivated, reactivated, deleted): the department, manager and user
    name stay as they are."""
