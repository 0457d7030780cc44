"""The identity registry's rule for applying events in per-subject sequence order."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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
