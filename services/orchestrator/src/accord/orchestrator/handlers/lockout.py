"""Authentication risk: a lockout disables every account of its identity until an approved
unlock enables them again."""

from __future__ import annotations

from dataclasses import replace

from accord.events import Envelope, IdentityLocked, IdentityUnlocked
from accord.orchestrator.handlers.engine import UnknownIdentity, start
from accord.orchestrator.ports import OrchestratorPorts


async def on_identity_locked(
    event: Envelope, data: IdentityLocked, ports: OrchestratorPorts
) -> list[Envelope]:
    """A lockout disables every account of the identity, and nothing enables one while
    it lasts. Like a leaver, the lockout saga retries by itself until it is done."""
    registry = ports.registry
    await registry.lock(data.user_id)
    if await registry.lockout_ended(data.user_id, data.lockout_id):
        return []  # its identity.unlocked (another topic) was consumed first
    if not await registry.set_locked(data.user_id, data.lockout_id):
        # authn knows it, so its user.created is on its way here: retried, and
        # dead-lettered for a replay if it never comes (a lockout is never dropped).
        raise UnknownIdentity(f"{event.type} for {data.user_id}, unknown to the registry")
    return await start(event, ports, "lockout", operation="disable")


async def on_identity_unlocked(
    event: Envelope, data: IdentityUnlocked, ports: OrchestratorPorts
) -> list[Envelope]:
    """An approved unlock enables the accounts again, unless the source system has
    deactivated or removed the identity meanwhile."""
    registry = ports.registry
    await registry.lock(data.user_id)
    # Remembered, so that its identity.locked consumed after it changes nothing.
    await registry.end_lockout(data.user_id, data.lockout_id)
    entry = await registry.identity(data.user_id)
    if entry is None or entry.locked_by != data.lockout_id:
        return []  # unknown, or another lockout holds it
    await registry.set_locked(data.user_id, None)
    if entry.status != "active":
        return []
    return await start(event, ports, "unlock", identity=replace(entry, locked_by=None))
