"""The identity projection: user.created, user.updated, user.deactivated, user.reactivated
and user.deleted keep authn's view of an identity, and what its status did (not the event's
type) decides what follows."""

from __future__ import annotations

from accord.authn.domain import identity
from accord.authn.handlers import lockout
from accord.authn.ports import Ports
from accord.events import (
    Envelope,
    UserCreated,
    UserDeactivated,
    UserDeleted,
    UserReactivated,
    UserUpdated,
)

IdentityEvent = UserCreated | UserUpdated | UserDeactivated | UserReactivated | UserDeleted
IDENTITY_EVENTS = (UserCreated, UserUpdated, UserDeactivated, UserReactivated, UserDeleted)


async def on_identity_event(event: Envelope, data: IdentityEvent, ports: Ports) -> list[Envelope]:
    """Keep the projection. One that becomes inactive or deleted loses its sessions
    everywhere at once (a leaver its factors too), one that comes back is enabled again
    unless locked. One seen for the first time is locked if the failures consumed before it
    make a run."""
    user_id = event.subject
    # Its events on the other user.* topics may be handled at this very moment.
    await ports.lockouts.serialise(user_id)
    change = identity.change_of(data, event.sequence or 0)
    applied = await ports.identities.apply(user_id, change)
    if applied is None:
        return []  # a duplicate, or older than what it would change
    before, after = applied
    then = identity.consequence_of(before, after, data)
    events: list[Envelope] = []
    if then.first_known:
        events += await lockout.first_known(ports, user_id, event)
    if then.enable and await ports.lockouts.open_lockout(user_id) is None:
        await ports.signals.send(user_id, "account-enabled", "reactivated", txn=event.id)
    if then.disable is None:
        return events
    reason = then.disable
    await ports.signals.send(user_id, "account-disabled", reason, txn=event.id)
    events += await lockout.revoke_sessions(ports, user_id, reason, cause=event)
    if reason == "leaver":
        events += await ports.factors.remove_all(user_id, "leaver")
    return events
