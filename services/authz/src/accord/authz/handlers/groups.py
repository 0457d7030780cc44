"""Group events: keep the group projection (nested groups included) in step."""

from __future__ import annotations

from accord.authz.ports import AuthzPorts
from accord.events import Envelope, GroupCreated, GroupDeleted, GroupMembersChanged, GroupUpdated


async def on_group_upserted(
    event: Envelope, data: GroupCreated | GroupUpdated, ports: AuthzPorts
) -> list[Envelope]:
    """group.created / group.updated."""
    await ports.stores.groups.upsert(data.group_id, data.display_name, sequence=event.sequence or 0)
    return []


async def on_group_deleted(
    event: Envelope, data: GroupDeleted, ports: AuthzPorts
) -> list[Envelope]:
    """group.deleted: the group and its memberships go."""
    await ports.stores.groups.delete(data.group_id, sequence=event.sequence or 0)
    return []


async def on_members_changed(
    event: Envelope, data: GroupMembersChanged, ports: AuthzPorts
) -> list[Envelope]:
    """group.members_changed."""
    await ports.stores.groups.change_members(data.group_id, data.added, data.removed)
    return []
