"""The identity registry's rules: applying events in per-subject sequence order, and which
attributes an update changed."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from accord.events.catalogue import Profile

#: The prefix of a free-form source attribute's name (`attributes.location`), as workflow
#: triggers name it.
ATTRIBUTES_PREFIX = "attributes."


class Verdict(StrEnum):
    """What to do with an identity event, given what the registry holds."""

    APPLY = "apply"
    """Newer than the registry's state: apply it."""
    STALE = "stale"
    """Same or older sequence: a duplicate or a late event; already reflected, skip it."""
    UNKNOWN_SUBJECT = "unknown_subject"
    """About an identity the registry has never seen (and the event cannot create it)."""


@dataclass(frozen=True)
class IdentityVersion:
    """The part of a registry entry that ordering decisions need."""

    sequence: int
    status: str
    status_sequence: int | None = None
    """The sequence of the last status event (created, deactivated, reactivated, deleted);
    None: the same as `sequence`."""


def judge(
    current: IdentityVersion | None, sequence: int, *, creates: bool, deletes: bool = False
) -> Verdict:
    """Apply an event only if it is newer than the state; only creations may be first.

    A deletion only needs to be newer than the last status event: a newer update consumed
    first (another topic) never makes it stale, since an update never undoes a deletion.
    """
    if current is None:
        return Verdict.APPLY if creates else Verdict.UNKNOWN_SUBJECT
    held = current.sequence
    if deletes and current.status_sequence is not None:
        held = current.status_sequence
    if sequence <= held:
        return Verdict.STALE
    return Verdict.APPLY


def changed_attributes(before: Profile | None, after: Profile) -> frozenset[str]:
    """The names of the attributes an update changed, as a mover trigger names them.

    Every profile field is compared (a field added to Profile is compared without a list
    to keep up to date: department, manager_id, hire_date, leave_date, employee_type,
    time_zone...); a free-form source attribute is named `attributes.<name>`. Date
    attributes compare as the text they came as: `2025-03-03` and `2025-03-03T00:00:00Z`
    differ, since a day and an instant trigger at different times. With nothing before (a
    joiner), every attribute that has a value changed.
    """
    old = before.model_dump(exclude={"attributes"}) if before else {}
    new = after.model_dump(exclude={"attributes"})
    names = {name for name, value in new.items() if old.get(name) != value}
    if before is None:
        names = {name for name in names if new[name] is not None}
    old_attributes = before.attributes if before else {}
    keys = old_attributes.keys() | after.attributes.keys()
    names.update(
        ATTRIBUTES_PREFIX + key
        for key in keys
        if old_attributes.get(key) != after.attributes.get(key)
    )
    return frozenset(names)
