"""Orchestrator handlers: keep the identity registry and drive the joiner saga."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from accord.events import (
    REGISTRY,
    AccountProvisioned,
    AccountProvisionFailed,
    Envelope,
    EventData,
    Profile,
    ProvisionRequested,
    SagaCompleted,
    SagaFailed,
    SagaStarted,
    UserCreated,
    UserDeactivated,
    UserDeleted,
    UserReactivated,
    UserUpdated,
    new_event,
)
from accord.orchestrator.adapters import store
from accord.orchestrator.domain import joiner
from accord.orchestrator.domain.birthright import Birthright
from accord.orchestrator.domain.identity import Verdict, judge
from accord.runtime.consumer import HandlerContext
from accord.runtime.errors import PermanentError

log = logging.getLogger(__name__)

_SAGA_NAMESPACE = uuid.UUID("5d1c5f0e-8f5a-4c53-9a52-6f1c0e6a1a01")
#: What a leaver does to each account, by the identity's new status.
_LEAVER_OPERATION: dict[str, joiner.Operation] = {"inactive": "disable", "deleted": "delete"}
_STATUS_OF: dict[type[EventData], str] = {
    UserDeactivated: "inactive",
    UserReactivated: "active",
    UserDeleted: "deleted",
}


async def handle_user_created(
    event: Envelope, ctx: HandlerContext, *, birthright: Birthright
) -> list[Envelope]:
    """Record a joiner, apply what arrived for it early, and start its joiner saga."""
    data = event.data
    assert isinstance(data, UserCreated)
    sequence = event.sequence or 0
    await store.lock_identity(ctx.conn, data.user_id)
    current = await store.identity_version(ctx.conn, data.user_id)
    verdict = judge(current, sequence, creates=True)
    if verdict is Verdict.STALE:
        log.info("stale or duplicate user.created ignored", extra={"user_id": data.user_id})
        return []
    await _save_profile(ctx, data, sequence, event.source)
    if current is not None:
        # A re-announced identity is an update, not a second joiner.
        return []
    profile, status = data.profile(), "active" if data.active else "inactive"
    for parked in await store.take_parked(ctx.conn, data.user_id):
        if parked.sequence <= sequence:
            continue  # older than the creation: already reflected in it
        # Parsed in the version it was parked in: upcast if the schema moved on meanwhile.
        early = REGISTRY.parse(parked.event_type, parked.version, parked.data)
        sequence = parked.sequence
        if isinstance(early, UserUpdated):
            await _save_profile(ctx, early, sequence, parked.source)
            profile, status = early.profile(), "active" if early.active else "inactive"
        else:
            status = _STATUS_OF[type(early)]
            await store.set_identity_status(ctx.conn, data.user_id, status, sequence)
        log.info("applied an early event", extra={"type": parked.event_type, "seq": sequence})
    if status == "deleted":
        return []  # left before it joined: nothing to provision
    profile = profile.model_copy(update={"active": status == "active"})
    targets = birthright.targets_for(profile)
    return await _start_saga(event, ctx, data.user_id, targets, profile, "joiner", "create")


async def handle_user_updated(event: Envelope, ctx: HandlerContext) -> list[Envelope]:
    """Apply a newer profile to the registry (or keep it until the identity exists)."""
    data = event.data
    assert isinstance(data, UserUpdated)
    if await _parked_or_stale(event, ctx) is Verdict.APPLY:
        await _save_profile(ctx, data, event.sequence or 0, event.source)
    return []


async def handle_user_status(event: Envelope, ctx: HandlerContext) -> list[Envelope]:
    """Apply deactivation, reactivation or deletion; a leaver's accounts go with it."""
    if await _parked_or_stale(event, ctx) is not Verdict.APPLY:
        return []
    status = _STATUS_OF[type(event.data)]
    user_id = event.subject
    await store.set_identity_status(ctx.conn, user_id, status, event.sequence or 0)
    operation = _LEAVER_OPERATION.get(status)
    if operation is None:
        return []
    targets = await store.account_targets(ctx.conn, user_id)
    if not targets:
        return []
    entry = await store.get_identity(ctx.conn, user_id)
    assert entry is not None
    profile = Profile.model_validate(entry["profile"])
    return await _start_saga(event, ctx, user_id, targets, profile, "leaver", operation)


async def _start_saga(
    cause: Envelope,
    ctx: HandlerContext,
    user_id: str,
    targets: list[str],
    profile: Profile,
    saga_type: joiner.SagaType,
    operation: joiner.Operation,
) -> list[Envelope]:
    """Record a new account saga and the events that announce and drive it."""
    saga_id = str(uuid.uuid5(_SAGA_NAMESPACE, cause.id))
    state, commands = joiner.start(
        saga_id, user_id, targets, store.now_utc(), saga_type=saga_type, operation=operation
    )
    await store.insert_saga(ctx.conn, state, cause.correlationid)
    started = SagaStarted(
        saga_id=saga_id,
        saga_type=saga_type,
        subject_id=user_id,
        targets=tuple(sorted(set(targets))),
    )
    emitted = [new_event(started, source=ctx.source, causation=cause)]
    emitted += _commands_to_events(commands, state, cause, ctx.source, profile)
    return emitted


async def _parked_or_stale(event: Envelope, ctx: HandlerContext) -> Verdict:
    """Judge an identity change; park it when its identity does not exist yet."""
    user_id = event.subject
    sequence = event.sequence or 0
    await store.lock_identity(ctx.conn, user_id)
    verdict = judge(await store.identity_version(ctx.conn, user_id), sequence, creates=False)
    if verdict is Verdict.UNKNOWN_SUBJECT:
        await store.park(
            ctx.conn,
            user_id,
            sequence,
            event.id,
            event.type,
            REGISTRY.spec(event.type).version,
            event.data.model_dump(mode="json"),
            event.source,
        )
        log.info("event parked until its identity exists", extra={"type": event.type})
    return verdict


async def handle_account_result(event: Envelope, ctx: HandlerContext) -> list[Envelope]:
    """Feed a provisioning result to the saga that asked for it."""
    data = event.data
    assert isinstance(data, AccountProvisioned | AccountProvisionFailed)
    if isinstance(data, AccountProvisioned):
        await store.record_account(
            ctx.conn, data.user_id, data.target, data.account_id, data.operation
        )
    state = await store.load_saga(ctx.conn, data.saga_id)
    if state is None:
        log.info(
            "result for a saga this orchestrator does not know", extra={"saga_id": data.saga_id}
        )
        return []
    result: joiner.SagaEvent
    if isinstance(data, AccountProvisioned):
        result = joiner.Provisioned(data.target)
    else:
        result = joiner.ProvisionFailed(data.target, data.reason)
    new_state, commands = joiner.decide(state, result, store.now_utc())
    if new_state == state:
        return []
    await store.save_saga(ctx.conn, new_state)
    return _commands_to_events(commands, new_state, event, ctx.source, None)


def _commands_to_events(
    commands: Sequence[joiner.Command],
    state: joiner.JoinerState,
    cause: Envelope,
    source: str,
    profile: Profile | None,
) -> list[Envelope]:
    events: list[Envelope] = []
    for command in commands:
        data: EventData
        if isinstance(command, joiner.ProvisionAccount):
            assert profile is not None, "only a saga's start sends commands"
            data = ProvisionRequested(
                user_id=state.user_id,
                target=command.target,
                operation=command.operation,
                saga_id=state.saga_id,
                step_id=command.step_id,
                profile=profile,
            )
        elif isinstance(command, joiner.CompleteSaga):
            data = SagaCompleted(
                saga_id=state.saga_id,
                saga_type=state.saga_type,
                subject_id=state.user_id,
                duration_ms=command.duration_ms,
            )
        else:
            data = SagaFailed(
                saga_id=state.saga_id,
                saga_type=state.saga_type,
                subject_id=state.user_id,
                reason=command.reason[:256],
                failed_targets=command.failed_targets,
            )
        events.append(new_event(data, source=source, causation=cause))
    return events


async def _save_profile(
    ctx: HandlerContext, data: UserCreated | UserUpdated, sequence: int, source: str
) -> None:
    try:
        await store.upsert_identity(
            ctx.conn,
            user_id=data.user_id,
            user_name=data.user_name,
            profile=data.profile().model_dump(mode="json"),
            status="active" if data.active else "inactive",
            sequence=sequence,
            source=source,
        )
    except store.UserNameTaken as error:
        raise PermanentError(str(error)) from None
