"""Keeps the identity registry in step with the inbound SCIM server.

Called by the SCIM storage inside the transaction of each write: the SCIM resource, the
registry entry, the identity event, the saga it starts and the saga's commands all commit
together (the events through the outbox), or none of them do. The events take the same
path as events from Kafka, so when the orchestrator later consumes its own event, the
registry already holds that sequence and skips it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import asyncpg
from scim2_models import InvalidValueException, UniquenessException

from accord.events import (
    Envelope,
    GroupCreated,
    GroupDeleted,
    GroupMembersChanged,
    GroupUpdated,
    Profile,
    UserCreated,
    UserDeactivated,
    UserDeleted,
    UserReactivated,
    UserUpdated,
    new_event,
)
from accord.orchestrator.adapters.postgres import postgres_ports
from accord.orchestrator.adapters.scim_storage import ResourceChange
from accord.orchestrator.domain.scim_profile import UnusableValue, profile_of
from accord.orchestrator.domain.workflow import WorkflowSettings
from accord.orchestrator.handlers import on_user_created, on_user_status, on_user_updated
from accord.orchestrator.handlers.identity import UserStatusChanged
from accord.runtime import outbox

_VERSION = re.compile(r"(\d+)")
_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$")


@dataclass(frozen=True)
class RegistrySync:
    """The SCIM storage's change hook."""

    workflows: WorkflowSettings
    schema: str
    source: str

    async def __call__(self, conn: asyncpg.Connection, change: ResourceChange) -> None:
        """Turn one SCIM write into identity events, applied and published."""
        if change.resource_type == "User":
            events = await self._user(conn, change)
        elif change.resource_type == "Group":
            events = _group_events(change, self.source)
        else:
            return
        await outbox.enqueue(conn, self.schema, events)

    async def _user(self, conn: asyncpg.Connection, change: ResourceChange) -> list[Envelope]:
        user_id = change.resource_id
        ports = postgres_ports(conn, self.source, self.workflows)
        await ports.registry.lock(user_id)
        current = await ports.registry.version(user_id)
        sequence = current.sequence if current else 0
        emitted: list[Envelope] = []

        async def apply(data: UserCreated | UserUpdated | UserStatusChanged) -> None:
            nonlocal sequence
            sequence += 1
            event = new_event(data, source=self.source, sequence=sequence)
            emitted.append(event)
            if isinstance(data, UserCreated):
                emitted.extend(await on_user_created(event, data, ports))
            elif isinstance(data, UserUpdated):
                emitted.extend(await on_user_updated(event, data, ports))
            else:
                emitted.extend(await on_user_status(event, data, ports))

        if change.after is None:
            await apply(UserDeleted(user_id=user_id, reason="deleted over SCIM"))
            return emitted
        after = _profile(change.after)
        await _ensure_user_name_free(conn, after.user_name, user_id)
        if change.before is None or current is None:
            await apply(UserCreated(user_id=user_id, **after.model_dump()))
            return emitted
        before = _profile(change.before)
        if before.active != after.active:
            status = UserReactivated if after.active else UserDeactivated
            await apply(status(user_id=user_id, reason="active set over SCIM"))
        if before.model_copy(update={"active": after.active}) != after:
            await apply(UserUpdated(user_id=user_id, **after.model_dump()))
        return emitted


def _profile(resource: dict[str, Any]) -> Profile:
    try:
        return profile_of(resource)
    except UnusableValue as error:
        raise InvalidValueException(detail=str(error)) from None


async def _ensure_user_name_free(conn: asyncpg.Connection, user_name: str, user_id: str) -> None:
    """userName is unique among living identities, whichever source an identity came from."""
    owner = await conn.fetchval(
        "SELECT user_id FROM identities WHERE lower(user_name) = lower($1) AND user_id <> $2"
        " AND status <> 'deleted'",
        user_name,
        user_id,
    )
    if owner is not None:
        raise UniquenessException(detail="userName is already taken")


def _group_events(change: ResourceChange, source: str) -> list[Envelope]:
    """Group events, sequenced by the group's SCIM version (two numbers per version)."""
    group_id = change.resource_id
    resource = change.after or change.before
    assert resource is not None
    sequence = 2 * _version(resource)
    if change.after is None:
        return [new_event(GroupDeleted(group_id=group_id), source=source, sequence=sequence + 2)]
    snapshot = {
        "group_id": group_id,
        "display_name": str(change.after.get("displayName") or group_id)[:256],
        "description": None,
    }
    kind = GroupCreated if change.before is None else GroupUpdated
    events = [new_event(kind(**snapshot), source=source, sequence=sequence)]
    added, removed = _member_changes(change.before, change.after)
    if added or removed:
        changed = GroupMembersChanged(group_id=group_id, added=added, removed=removed)
        events.append(new_event(changed, source=source, sequence=sequence + 1))
    return events


def _members(resource: dict[str, Any] | None) -> set[str]:
    members = (resource or {}).get("members") or []
    values = (m.get("value") for m in members if isinstance(m, dict))
    return {v for v in values if isinstance(v, str) and _IDENTIFIER.match(v)}


def _member_changes(
    before: dict[str, Any] | None, after: dict[str, Any]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    old, new = _members(before), _members(after)
    return tuple(sorted(new - old)), tuple(sorted(old - new))


def _version(resource: dict[str, Any]) -> int:
    match = _VERSION.search(str((resource.get("meta") or {}).get("version") or ""))
    return int(match.group(1)) if match else 0
