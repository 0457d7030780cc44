"""A run's changes as identity events, each with its per-subject sequence.

user.updated is a partial update: its `changed` lists the profile fields the diff found
changed (every mapped field for a link), so the consumers merge it into the profile they
hold and a field this source does not map keeps its value; an identity created over SCIM or
Kafka and linked here, or one field changed, loses nothing the source does not know. The
registry derives the changed attributes that mover triggers see by comparing the merged
profile with the one it held. The event's profile is what this source maps (unmapped fields
unset, and ignored). `active` is listed for a link only: the source says the status of what
it links (its status events say the rest), and a plain update leaves the status to them.

Sequences: an identity's events are applied in sequence order, so each event gets the
user's last sequence plus one (the caller gives the last sequences it knows: the source's
own, or the registry's for a linked identity), and several events of one user in one run
follow each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime

from accord.events.catalogue import (
    EventData,
    Profile,
    UserCreated,
    UserDeactivated,
    UserDeleted,
    UserReactivated,
    UserUpdated,
)
from accord.events.catalogue.identity import ATTRIBUTE_PREFIX
from accord.events.envelope import Envelope, new_event
from accord.sources.diff import Change, ChangeKind
from accord.sources.mapping import to_profile


class Sequences:
    """The last sequence per user id, growing as events are made."""

    def __init__(self, last: Mapping[str, int] | None = None) -> None:
        self.last: dict[str, int] = dict(last or {})

    def next(self, user_id: str) -> int:
        """The sequence of the user's next event."""
        value = self.last.get(user_id, 0) + 1
        self.last[user_id] = value
        return value


def source_uri(source_name: str) -> str:
    """The CloudEvents `source` of a source's events."""
    return f"urn:accord:source:{source_name}"


def profile_fields(change: Change) -> list[str]:
    """What a user.updated lists as changed: the diff's changed fields that are profile fields
    (`attributes.<name>` as it is; a mapped `user_id` is none), and `active` for a link."""
    names = [
        name
        for name in change.changed
        if name in Profile.model_fields or name.startswith(ATTRIBUTE_PREFIX)
    ]
    if change.linked:
        names.append("active")
    return names


def event_data(change: Change, fields: tuple[str, ...], source_name: str) -> EventData:
    """The payload of one change."""
    if change.kind in (ChangeKind.CREATED, ChangeKind.UPDATED):
        values = dict(zip(fields, change.values or (), strict=True))
        profile = to_profile(values, user_name=change.user_name, active=change.active)
        if change.kind is ChangeKind.CREATED:
            return UserCreated(user_id=change.user_id, **dict(profile))
        return UserUpdated(user_id=change.user_id, **dict(profile), changed=profile_fields(change))
    reason = {
        ChangeKind.DEACTIVATED: f"inactive in source {source_name}",
        ChangeKind.REACTIVATED: f"active in source {source_name}",
        ChangeKind.DELETED: f"gone from source {source_name}",
    }[change.kind]
    status_model = {
        ChangeKind.DEACTIVATED: UserDeactivated,
        ChangeKind.REACTIVATED: UserReactivated,
        ChangeKind.DELETED: UserDeleted,
    }[change.kind]
    return status_model(user_id=change.user_id, reason=reason)


def identity_events(
    changes: Iterable[Change],
    *,
    fields: tuple[str, ...],
    source_name: str,
    sequences: Sequences,
    run_id: str,
    time: datetime | None = None,
) -> Iterator[Envelope]:
    """One envelope per change, in order, lazily (a first run of 100,000 creations need not
    hold them all). `run_id` becomes every event's correlation id, so the audit log groups a
    run's events."""
    source = source_uri(source_name)
    for change in changes:
        data = event_data(change, fields, source_name)
        yield new_event(
            data,
            source=source,
            sequence=sequences.next(change.user_id),
            correlation_id=run_id,
            time=time,
        )
