"""Identity events: keep the principal projection in step, end a leaver's grants, and
decide the access requests that waited for the principal (their access.requested was
consumed before its user.created, another topic)."""

from __future__ import annotations

from accord.authz.domain.principals import PROFILE_FACTS, PrincipalFacts
from accord.authz.handlers.access import decide_waiting, revoke_all
from accord.authz.ports import AuthzPorts
from accord.events import (
    Envelope,
    UserCreated,
    UserDeactivated,
    UserDeleted,
    UserReactivated,
    UserUpdated,
)

#: What authz keeps of a profile, by its field names.
_FACTS = ("department", "manager_id", "user_name", "active")


async def on_user_profile(
    event: Envelope, data: UserCreated | UserUpdated, ports: AuthzPorts
) -> list[Envelope]:
    """user.created / user.updated: the principal's profile and status (a partial update:
    the facts it lists, the others stay)."""
    keep: frozenset[str] = frozenset()
    if isinstance(data, UserUpdated):
        keep = frozenset(name for name in _FACTS if not data.sets(name))
    facts = PrincipalFacts(
        sequence=event.sequence or 0,
        active=data.active,
        department=data.department,
        manager_id=data.manager_id,
        user_name=data.user_name,
        keep=keep,
    )
    await _project(data.user_id, facts, ports)
    return await _decide_waiting(data.user_id, ports)


async def on_user_status(
    event: Envelope, data: UserDeactivated | UserReactivated, ports: AuthzPorts
) -> list[Envelope]:
    """user.deactivated / user.reactivated: the status only (the profile stays)."""
    active = isinstance(data, UserReactivated)
    facts = PrincipalFacts(sequence=event.sequence or 0, active=active, keep=PROFILE_FACTS)
    await _project(data.user_id, facts, ports)
    return await _decide_waiting(data.user_id, ports)


async def on_user_deleted(event: Envelope, data: UserDeleted, ports: AuthzPorts) -> list[Envelope]:
    """user.deleted: the principal is gone, and loses every grant it holds."""
    facts = PrincipalFacts(
        sequence=event.sequence or 0, active=False, deleted=True, keep=PROFILE_FACTS
    )
    await _project(data.user_id, facts, ports)
    revoked = await revoke_all(ports.stores, data.user_id, "leaver", source=ports.source)
    return revoked + await _decide_waiting(data.user_id, ports)


async def _project(user_id: str, facts: PrincipalFacts, ports: AuthzPorts) -> None:
    """Record the facts under the principal's lock, which an access request of the same
    principal takes too (the two come from two topics)."""
    await ports.stores.principals.lock(user_id)
    await ports.stores.principals.upsert(user_id, facts)


async def _decide_waiting(user_id: str, ports: AuthzPorts) -> list[Envelope]:
    policies, catalogue = ports.rules()
    return await decide_waiting(
        ports.stores,
        user_id,
        policies=policies,
        catalogue=catalogue,
        settings=ports.settings,
        source=ports.source,
    )
