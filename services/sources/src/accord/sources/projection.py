"""The sources service's projection of the identities Accord has, fed by every user.* event
(from SCIM, from source systems on Kafka, and from this service's own runs).

A run matches new rows against it (correlation by employee number or e-mail), avoids the
user names it holds, and continues each identity's sequence from the last one it saw. It is
applied a partition's batch at a time in one transaction; an event not newer than what the
projection has changes nothing, so a redelivered batch is harmless.
"""

from __future__ import annotations

from collections.abc import Sequence

from accord.events import (
    Envelope,
    UserCreated,
    UserDeactivated,
    UserDeleted,
    UserReactivated,
    UserUpdated,
)
from accord.events.topics import USER_TOPICS
from accord.runtime.routes import BatchItem, HandlerContext
from accord.sources import store
from accord.sources.store import IdentityFacts

#: The event types the projection reads.
PROJECTED = USER_TOPICS
_PROFILE_FIELDS = frozenset({"user_name", "employee_number", "email"})
_STATUS = {UserDeleted: "deleted", UserDeactivated: "inactive", UserReactivated: "active"}


def facts_of(event: Envelope) -> IdentityFacts | None:
    """What the projection keeps of an identity event; None for any other event."""
    data = event.data
    sequence = event.sequence or 0
    if isinstance(data, UserCreated | UserUpdated):
        if isinstance(data, UserCreated):
            sets = {*_PROFILE_FIELDS, "status"}
        else:
            sets = {name for name in (*_PROFILE_FIELDS, "active") if data.sets(name)}
        return IdentityFacts(
            data.user_id,
            sequence,
            data.user_name,
            data.employee_number,
            data.email,
            "active" if data.active else "inactive",
            frozenset(sets),
        )
    if isinstance(data, UserDeleted | UserDeactivated | UserReactivated):
        status = _STATUS[type(data)]
        return IdentityFacts(data.user_id, sequence, status=status, sets=frozenset({"status"}))
    return None


async def project_batch(items: Sequence[BatchItem], ctx: HandlerContext) -> list[Envelope]:
    """Apply one partition's identity events in order (dead letters are not read)."""
    facts = [found for _, event in items if event is not None and (found := facts_of(event))]
    await store.project(ctx.conn, facts)
    return []
