"""Identity events from the source system (Kafka or the inbound SCIM server): keep the
registry and start the joiner, mover, reactivation and leaver sagas the workflows in force
run on the event (`settings.selection`: the shipped workflow files, or a team's copies).

Events of an identity that does not exist yet are parked, and applied when its
user.created arrives; stale and duplicate events change nothing. A user.updated is merged
into the profile the registry holds (`accord.events.apply_update`): a full snapshot replaces
it, a partial one (`changed`) changes the fields it lists only, so the mover sees what the
profile was and what it is now.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from accord.events import (
    REGISTRY,
    Envelope,
    Profile,
    UserCreated,
    UserDeactivated,
    UserDeleted,
    UserReactivated,
    UserUpdated,
    apply_update,
)
from accord.orchestrator.domain import account_saga as saga
from accord.orchestrator.domain import workflow
from accord.orchestrator.domain.identity import Verdict, judge
from accord.orchestrator.handlers.engine import start
from accord.orchestrator.ports import (
    OrchestratorPorts,
    ParkedEvent,
    ProfileChange,
    Timer,
    UserNameTaken,
)
from accord.runtime.errors import PermanentError

log = logging.getLogger(__name__)

UserStatusChanged = UserDeactivated | UserReactivated | UserDeleted


async def on_user_created(
    event: Envelope, data: UserCreated, ports: OrchestratorPorts
) -> list[Envelope]:
    """Record a joiner, apply what arrived for it early, and start its joiner saga."""
    registry = ports.registry
    sequence = event.sequence or 0
    await registry.lock(data.user_id)
    current = await registry.version(data.user_id)
    if judge(current, sequence, creates=True) is Verdict.STALE:
        log.info("stale or duplicate user.created ignored", extra={"user_id": data.user_id})
        return []
    written = await _save_profile(ports, data.user_id, data.profile(), sequence, event.source)
    if current is not None:
        # A re-announced identity is an update, not a second joiner.
        return []
    for parked in await registry.take_parked(data.user_id):
        if parked.sequence <= sequence:
            continue  # older than the creation: already reflected in it
        # Parsed in the version it was parked in: upcast if the schema moved on meanwhile.
        early = REGISTRY.parse(parked.event_type, parked.version, parked.data)
        sequence = parked.sequence
        if isinstance(early, UserUpdated):
            profile = _merged(written.profile, early)
            written = await _save_profile(
                ports, data.user_id, profile, sequence, parked.source, status_event=False
            )
        else:
            status = workflow.STATUS_OF[type(early)]
            await registry.set_status(data.user_id, status, sequence)
            written = written.with_status(status)
        log.info("applied an early event", extra={"type": parked.event_type, "seq": sequence})
    # Planned on the registry as the early events left it: nothing for one who left. A new
    # identity holds no lockout (a lockout waits for its identity), so what was written here
    # is what the registry holds: planned on it without reading it back.
    if not ports.settings.selection.starts("joiner", event.type, written):
        return []
    return await start(event, ports, "joiner", identity=written)


async def on_user_updated(
    event: Envelope, data: UserUpdated, ports: OrchestratorPorts
) -> list[Envelope]:
    """Merge a newer profile in; a mover's accounts follow its birthright and attributes."""
    if await _parked_or_stale(event, ports) is not Verdict.APPLY:
        return []
    entry = await ports.registry.identity(data.user_id)
    assert entry is not None
    sequence = event.sequence or 0
    profile = _merged(entry.profile, data)
    written = await _save_profile(
        ports,
        data.user_id,
        profile,
        sequence,
        event.source,
        status_event=False,
        locked_by=entry.locked_by,
    )
    if entry.status == "deleted":
        # A leaver's accounts are going away: keep the attributes, not the status.
        await ports.registry.set_status(data.user_id, "deleted", sequence)
        return []
    if not ports.settings.selection.starts("mover", event.type, written, previous=entry):
        return []
    return await start(event, ports, "mover", identity=written)


async def on_user_status(
    event: Envelope, data: UserStatusChanged, ports: OrchestratorPorts
) -> list[Envelope]:
    """Deactivation disables every account, reactivation enables them, deletion disables
    them at once and deletes them after the retention period."""
    if await _parked_or_stale(event, ports) is not Verdict.APPLY:
        return []
    status = workflow.STATUS_OF[type(data)]
    user_id = event.subject
    try:
        await ports.registry.set_status(user_id, status, event.sequence or 0)
    except UserNameTaken as error:
        raise PermanentError(str(error)) from None
    saga_type: saga.SagaType = "reactivation" if status == "active" else "leaver"
    if not await _selected(ports, saga_type, event):
        return []
    if status == "active":
        return await start(event, ports, "reactivation")
    operation: saga.Operation = "disable"
    retention = ports.settings.leaver_retention
    if status == "deleted" and retention <= timedelta(0):
        operation = "delete"
    elif status == "deleted":
        timer = Timer(
            f"{event.id}:deletion", "account_deletion", user_id, None, event.correlationid
        )
        await ports.sagas.add_timer(timer, ports.clock() + retention)
    return await start(event, ports, "leaver", operation=operation)


async def _selected(ports: OrchestratorPorts, saga_type: saga.SagaType, event: Envelope) -> bool:
    """Whether the workflows in force start the saga of a status event (the identity is
    read only when a scope or a filter needs it)."""
    selection = ports.settings.selection
    identity = None
    if selection.needs_identity(saga_type, event.type):
        identity = await ports.registry.identity(event.subject)
    return selection.starts(saga_type, event.type, identity)


async def _parked_or_stale(event: Envelope, ports: OrchestratorPorts) -> Verdict:
    """Judge an identity change; park it when its identity does not exist yet."""
    user_id = event.subject
    sequence = event.sequence or 0
    await ports.registry.lock(user_id)
    current = await ports.registry.version(user_id)
    deletes = isinstance(event.data, UserDeleted)
    verdict = judge(current, sequence, creates=False, deletes=deletes)
    if verdict is Verdict.UNKNOWN_SUBJECT:
        parked = ParkedEvent(
            event_id=event.id,
            sequence=sequence,
            event_type=event.type,
            version=REGISTRY.spec(event.type).version,
            data=event.data.model_dump(mode="json"),
            source=event.source,
        )
        await ports.registry.park(user_id, parked)
        log.info("event parked until its identity exists", extra={"type": event.type})
    return verdict


def _merged(current: Profile, data: UserUpdated) -> Profile:
    """The profile a user.updated leaves; one the contract refuses (a partial update that
    brings the attributes beyond their limit) is a permanent error."""
    try:
        return apply_update(current, data)
    except ValueError as error:
        raise PermanentError(f"user.updated cannot be applied: {error}") from None


async def _save_profile(
    ports: OrchestratorPorts,
    user_id: str,
    profile: Profile,
    sequence: int,
    source: str,
    *,
    status_event: bool = True,
    locked_by: str | None = None,
) -> workflow.Identity:
    """Write the profile an identity event leaves; returns the entry as written
    (`locked_by`: the lockout the entry holds, which a profile leaves as it is)."""
    change = ProfileChange(
        user_id=user_id,
        user_name=profile.user_name,
        profile=profile.model_dump(mode="json"),
        status=workflow.status_of(profile.active),
        sequence=sequence,
        source=source,
        status_event=status_event,
    )
    try:
        await ports.registry.save_profile(change)
    except UserNameTaken as error:
        raise PermanentError(str(error)) from None
    return workflow.Identity(user_id, change.status, profile, locked_by)
