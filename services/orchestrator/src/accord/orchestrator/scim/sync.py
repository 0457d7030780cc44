"""Keeps the identity registry in step with the inbound SCIM server.

Called by the SCIM storage inside the transaction of each write: the SCIM resource, the
registry entry, the identity event, the saga it starts and the saga's commands all commit
together (the events through the outbox), or none of them do. The events take the same
path as events from Kafka, so when the orchestrator later consumes its own event, the
registry already holds that sequence and skips it.

With the workflow engine on (`engine`), each identity event goes through the same wrapper
the Kafka routes use (`handlers.workflows.with_workflows`): in the write's transaction and
under the identity's lock, the engine sees the identity before and after the event, starts
the runs it triggers (a department changed over SCIM starts the mover workflow) and plans
the timers of its dates (hireDate and leaveDate of Accord's lifecycle extension). When the
orchestrator later consumes its own event, the registry skips it, so nothing starts twice.
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
from accord.orchestrator.adapters.workflow_effects import engine_stores
from accord.orchestrator.domain.scim_profile import UnusableValue, profile_of
from accord.orchestrator.domain.workflow import WorkflowSettings
from accord.orchestrator.handlers import on_user_created, on_user_status, on_user_updated
from accord.orchestrator.handlers.identity import UserStatusChanged
from accord.orchestrator.handlers.workflows import (
    IdentityHandler,
    SagaTasks,
    WorkflowPorts,
    with_workflows,
)
from accord.orchestrator.ports import OrchestratorPorts
from accord.orchestrator.workflows.engine import Engine
from accord.runtime import outbox

_VERSION = re.compile(r"(\d+)")
_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$")


@dataclass(frozen=True)
class RegistrySync:
    """The SCIM storage's change hook."""

    workflows: WorkflowSettings
    schema: str
    source: str
    engine: Engine | None = None
    """The workflow engine when it is on (ACCORD_WORKFLOWS_DIR): identity events drive it."""

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

        handle = _IdentityHandlers(ports, conn, self.engine)

        async def apply(data: UserCreated | UserUpdated | UserStatusChanged) -> None:
            nonlocal sequence
            sequence += 1
            event = new_event(data, source=self.source, sequence=sequence)
            emitted.append(event)
            emitted.extend(await handle(event, data))

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


@dataclass(frozen=True)
class _IdentityHandlers:
    """The identity handlers a SCIM write's events go to: as the Kafka routes have them,
    wrapped with the workflow engine when it is on."""

    ports: OrchestratorPorts
    conn: asyncpg.Connection
    engine: Engine | None

    async def __call__(
        self, event: Envelope, data: UserCreated | UserUpdated | UserStatusChanged
    ) -> list[Envelope]:
        handler = _handler_for(data)
        if self.engine is None:
            return await handler(event, data, self.ports)
        ports = WorkflowPorts(
            self.ports, engine_stores(self.conn, SagaTasks(self.ports)), self.engine
        )
        return await with_workflows(handler)(event, data, ports)


def _handler_for(data: UserCreated | UserUpdated | UserStatusChanged) -> IdentityHandler[Any]:
    if isinstance(data, UserCreated):
        return on_user_created
    if isinstance(data, UserUpdated):
        return on_user_updated
    return on_user_status


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
