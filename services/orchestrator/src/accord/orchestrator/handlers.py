"""Orchestrator handlers: keep the identity registry and drive the joiner saga."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from accord.events import (
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
from accord.orchestrator.domain.identity import Verdict, judge
from accord.runtime.consumer import HandlerContext
from accord.runtime.errors import PermanentError

log = logging.getLogger(__name__)

_SAGA_NAMESPACE = uuid.UUID("5d1c5f0e-8f5a-4c53-9a52-6f1c0e6a1a01")
_STATUS_OF: dict[type[EventData], str] = {
    UserDeactivated: "inactive",
    UserReactivated: "active",
    UserDeleted: "deleted",
}


async def handle_user_created(
    event: Envelope, ctx: HandlerContext, *, targets: list[str]
) -> list[Envelope]:
    """Record a joiner in the registry and start its joiner saga."""
    data = event.data
    assert isinstance(data, UserCreated)
    sequence = event.sequence or 0
    current = await store.identity_version(ctx.conn, data.user_id)
    verdict = judge(current, sequence, creates=True)
    if verdict is Verdict.STALE:
        log.info("stale or duplicate user.created ignored", extra={"user_id": data.user_id})
        return []
    await _save_profile(ctx, data, sequence, event.source)
    if current is not None:
        # A re-announced identity is an update, not a second joiner.
        return []
    saga_id = str(uuid.uuid5(_SAGA_NAMESPACE, event.id))
    state, commands = joiner.start(saga_id, data.user_id, targets, store.now_utc())
    await store.insert_saga(ctx.conn, state, event.correlationid)
    started = SagaStarted(
        saga_id=saga_id,
        saga_type="joiner",
        subject_id=data.user_id,
        targets=tuple(sorted(set(targets))),
    )
    emitted = [new_event(started, source=ctx.source, causation=event)]
    emitted += _commands_to_events(commands, state, event, ctx.source, data.profile())
    return emitted


async def handle_user_updated(event: Envelope, ctx: HandlerContext) -> list[Envelope]:
    """Apply a newer profile to the registry."""
    data = event.data
    assert isinstance(data, UserUpdated)
    sequence = event.sequence or 0
    verdict = judge(await store.identity_version(ctx.conn, data.user_id), sequence, creates=False)
    if verdict is Verdict.UNKNOWN_SUBJECT:
        raise PermanentError(f"user.updated for unknown identity {data.user_id}")
    if verdict is Verdict.APPLY:
        await _save_profile(ctx, data, sequence, event.source)
    return []


async def handle_user_status(event: Envelope, ctx: HandlerContext) -> list[Envelope]:
    """Apply deactivation, reactivation or deletion to the registry."""
    data = event.data
    status = _STATUS_OF[type(data)]
    user_id = event.subject
    sequence = event.sequence or 0
    verdict = judge(await store.identity_version(ctx.conn, user_id), sequence, creates=False)
    if verdict is Verdict.UNKNOWN_SUBJECT:
        raise PermanentError(f"{event.type} for unknown identity {user_id}")
    if verdict is Verdict.APPLY:
        await store.set_identity_status(ctx.conn, user_id, status, sequence)
    return []


async def handle_account_result(event: Envelope, ctx: HandlerContext) -> list[Envelope]:
    """Feed a provisioning result to the saga that asked for it."""
    data = event.data
    assert isinstance(data, AccountProvisioned | AccountProvisionFailed)
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
            assert profile is not None, "only a saga's start provisions"
            data = ProvisionRequested(
                user_id=state.user_id,
                target=command.target,
                operation="create",
                saga_id=state.saga_id,
                step_id=command.step_id,
                profile=profile,
            )
        elif isinstance(command, joiner.CompleteSaga):
            data = SagaCompleted(
                saga_id=state.saga_id,
                saga_type="joiner",
                subject_id=state.user_id,
                duration_ms=command.duration_ms,
            )
        else:
            data = SagaFailed(
                saga_id=state.saga_id,
                saga_type="joiner",
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
