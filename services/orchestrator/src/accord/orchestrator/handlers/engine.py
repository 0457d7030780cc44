"""How the handlers drive sagas: start or queue one, apply an event to one, begin the next
in an identity's queue, and turn a saga's commands into events (and timers).

Every function runs inside the caller's transaction, on the ports bound to it, after the
caller took the identity's lock (each identity handler takes it first). Each status a saga
is written in is counted where it is written (accord.orchestrator.metrics).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from accord.events import (
    Envelope,
    EventData,
    MfaEnrolmentRequested,
    Profile,
    ProvisionRequested,
    SagaCompleted,
    SagaFailed,
    SagaStarted,
    new_event,
)
from accord.orchestrator.domain import account_saga as saga
from accord.orchestrator.domain import workflow
from accord.orchestrator.metrics import saga_reached
from accord.orchestrator.ports import OrchestratorPorts, Timer

log = logging.getLogger(__name__)

#: Sagas recorded even when they have nothing to do (completed at once): a joiner's record
#: is its history, a workflow task's run waits for its end.
_ALWAYS_RECORDED: frozenset[saga.SagaType] = frozenset({"joiner", "workflow_task"})


class UnknownIdentity(Exception):
    """An access or lockout event for an identity the registry does not hold (yet).

    Not permanent: its user.created may be on its way (Kafka does not order topics), so the
    consumer tries again a few times before it dead-letters the event for a replay.
    """


@dataclass(frozen=True)
class Origin:
    """What the events of one piece of work descend from: a cause, else a correlation id."""

    source: str
    cause: Envelope | None
    correlation: str | None = None

    def correlation_id(self) -> str:
        if self.cause is not None:
            return self.cause.correlationid
        assert self.correlation is not None, "work without a cause carries its correlation"
        return self.correlation

    def event(self, data: EventData) -> Envelope:
        if self.cause is not None:
            return new_event(data, source=self.source, causation=self.cause)
        return new_event(data, source=self.source, correlation_id=self.correlation_id())


async def start(
    cause: Envelope,
    ports: OrchestratorPorts,
    saga_type: saga.SagaType,
    *,
    operation: saga.Operation | None = None,
    identity: workflow.Identity | None = None,
) -> list[Envelope]:
    """Start (or queue) the saga an identity event causes: one per event.

    `identity`: the registry entry as the caller just wrote it, so that planning need not
    read it back (None: read it).
    """
    saga_id = workflow.saga_id_of(cause.id)
    origin = Origin(ports.source, cause)
    return await begin(
        ports, origin, saga_id, cause.subject, saga_type, operation=operation, identity=identity
    )


async def begin(
    ports: OrchestratorPorts,
    origin: Origin,
    saga_id: str,
    user_id: str,
    saga_type: saga.SagaType,
    *,
    operation: saga.Operation | None = None,
    memberships: tuple[saga.Step, ...] = (),
    identity: workflow.Identity | None = None,
    intent: saga.TaskIntent | None = None,
) -> list[Envelope]:
    """Start a saga now, or queue it behind the identity's saga in flight.

    A joiner and a workflow task always leave a record (completed at once when there is
    nothing to do: a task's run waits for its saga's end); the others start no saga then.
    """
    now = ports.clock()
    if await ports.sagas.busy(user_id):
        queued = saga.queue(
            saga_id, user_id, saga_type, now, operation=operation, steps=memberships, intent=intent
        )
        if not await ports.sagas.insert(queued, origin.correlation_id()):
            return []
        saga_reached(queued)
        log.info("saga queued behind another", extra={"saga_id": saga_id})
        if saga_type in workflow.TAKES_ACCESS:
            return await _hurry_holder(ports, user_id)
        return []
    plan = await _plan(ports, user_id, saga_type, operation, memberships, identity, intent)
    if plan is None or (not plan.steps and saga_type not in _ALWAYS_RECORDED):
        return []  # nothing to do: no saga
    options = workflow.options(ports.settings, saga_type)
    state, commands = saga.start(
        saga_id, user_id, plan.steps, now, saga_type=saga_type, intent=intent, **options
    )
    if not await ports.sagas.insert(state, origin.correlation_id()):
        return []  # started already by an earlier delivery of the same cause
    saga_reached(state)
    return await _announce(ports, state, commands, origin, plan.profile)


async def advance(
    ports: OrchestratorPorts,
    saga_id: str,
    saga_event: saga.SagaEvent,
    *,
    cause: Envelope | None = None,
) -> list[Envelope]:
    """Apply one event to a saga and return the events its commands become.

    The identity's lock comes first, as in every identity handler, so that a saga's move
    and its identity's other sagas are decided one at a time. A retry is re-planned
    against the identity as it is now.
    """
    user_id = await ports.sagas.subject(saga_id)
    if user_id is None:
        log.info("event for a saga this orchestrator does not know", extra={"saga": saga_id})
        return []
    await ports.registry.lock(user_id)
    state = await ports.sagas.load(saga_id)
    assert state is not None, "sagas are never deleted"
    return await advance_loaded(ports, state, saga_event, cause=cause)


async def advance_loaded(
    ports: OrchestratorPorts,
    state: saga.SagaState,
    saga_event: saga.SagaEvent,
    *,
    cause: Envelope | None = None,
) -> list[Envelope]:
    """`advance` for a saga the caller has loaded (locked) after its identity's lock."""
    saga_id, user_id = state.saga_id, state.user_id
    if isinstance(saga_event, saga.RetryRequested):
        identity = await ports.registry.identity(user_id)
        now = workflow.identity_now(ports.settings, identity, state.saga_type)
        saga_event = saga.RetryRequested(now)
    new_state, commands = saga.decide(state, saga_event, ports.clock())
    if new_state == state:
        return []
    await ports.sagas.save(new_state)
    saga_reached(new_state, before=state.status)
    if not new_state.targets("pending", "compensating"):
        await ports.sagas.drop_timers(saga_id, "saga_timeout")  # the round is over
    if state.status == "failed" and new_state.status != "failed":
        await ports.sagas.drop_timers(saga_id, "saga_retry")  # retried or ended
    correlation = None if cause else await ports.sagas.correlation(saga_id)
    origin = Origin(ports.source, cause, correlation)
    events = await _carry_out(ports, commands, new_state, origin)
    if saga.holds_identity(state) and not saga.holds_identity(new_state):
        events += await _next_in_queue(ports, new_state.user_id)
    return events


async def _hurry_holder(ports: OrchestratorPorts, user_id: str) -> list[Envelope]:
    """A saga that takes access away does not wait out a failed holder's backoff: the
    holder's retry comes now, re-planned (a joiner of an identity deleted meanwhile is
    superseded at once, and the leaver begins)."""
    holder = await ports.sagas.holder(user_id)
    if holder is None:
        return []
    state = await ports.sagas.load(holder)
    if state is None or state.status != "failed":
        return []  # running: its results move the queue on
    # Loaded (locked) under the identity's lock the caller holds: advanced as it is.
    return await advance_loaded(ports, state, saga.RetryRequested())


async def _next_in_queue(ports: OrchestratorPorts, user_id: str) -> list[Envelope]:
    """Begin the identity's next queued saga, planned on the accounts as they are now."""
    await ports.registry.lock(user_id)
    events: list[Envelope] = []
    while (queued := await ports.sagas.next_queued(user_id)) is not None:
        plan = await _plan(
            ports, user_id, queued.saga_type, queued.operation, queued.steps, intent=queued.intent
        )
        options = workflow.options(ports.settings, queued.saga_type)
        state, commands = saga.begin(queued, plan.steps if plan else {}, ports.clock(), **options)
        await ports.sagas.save(state)
        saga_reached(state, before=queued.status)
        origin = Origin(ports.source, None, await ports.sagas.correlation(state.saga_id))
        profile = plan.profile if plan else None
        events += await _announce(ports, state, commands, origin, profile)
        if saga.holds_identity(state):
            break
    return events


async def _plan(
    ports: OrchestratorPorts,
    user_id: str,
    saga_type: saga.SagaType,
    operation: saga.Operation | None,
    memberships: tuple[saga.Step, ...] = (),
    identity: workflow.Identity | None = None,
    intent: saga.TaskIntent | None = None,
) -> workflow.Plan | None:
    """Load what the plan needs (the entry unless the caller knows it, the accounts only
    when the plan looks at them), then plan."""
    if identity is None:
        identity = await ports.registry.identity(user_id)
    accounts = workflow.Accounts()
    if workflow.needs_accounts(identity, saga_type):
        accounts = await ports.registry.accounts(user_id)
    return workflow.plan(
        ports.settings, identity, accounts, saga_type, operation, memberships, intent
    )


async def _announce(
    ports: OrchestratorPorts,
    state: saga.SagaState,
    commands: Sequence[saga.Command],
    origin: Origin,
    profile: Profile | None,
) -> list[Envelope]:
    started = SagaStarted(
        saga_id=state.saga_id,
        saga_type=state.saga_type,
        subject_id=state.user_id,
        targets=state.targets(),
    )
    return [origin.event(started), *await _carry_out(ports, commands, state, origin, profile)]


async def _carry_out(
    ports: OrchestratorPorts,
    commands: Sequence[saga.Command],
    state: saga.SagaState,
    origin: Origin,
    profile: Profile | None = None,
) -> list[Envelope]:
    events: list[Envelope] = []
    provisions = [c for c in commands if isinstance(c, saga.ProvisionAccount)]
    creates = [c.target for c in provisions if c.operation == "create"]
    if creates:
        # Until a result proves otherwise, a leaver must treat these accounts as there.
        await ports.registry.record_requested(state.user_id, creates)
    for command in commands:
        if isinstance(command, saga.ProvisionAccount):
            if profile is None:
                profile = workflow.task_profile(await _profile(ports, state.user_id), state.intent)
            events.append(origin.event(_request(state, command, profile)))
        elif isinstance(command, saga.CompleteSaga):
            events += [origin.event(data) for data in _completed(ports, state, command)]
        elif isinstance(command, saga.FailSaga):
            failed = SagaFailed(
                saga_id=state.saga_id,
                saga_type=state.saga_type,
                subject_id=state.user_id,
                reason=command.reason[:256],
                failed_targets=command.failed_targets,
                retryable=_transient(state),
                retrying=saga.retries_now(state),
            )
            events.append(origin.event(failed))
        else:
            await _retry_later(ports, state, command, origin)
    if provisions:
        await _guard_round(ports, state, origin)
    return events


def _request(
    state: saga.SagaState, command: saga.ProvisionAccount, profile: Profile
) -> ProvisionRequested:
    return ProvisionRequested(
        user_id=state.user_id,
        target=command.target,
        operation=command.operation,
        saga_id=state.saga_id,
        step_id=command.step_id,
        group=command.group,
        profile=profile,
    )


def _completed(
    ports: OrchestratorPorts, state: saga.SagaState, command: saga.CompleteSaga
) -> list[EventData]:
    done: list[EventData] = [
        SagaCompleted(
            saga_id=state.saga_id,
            saga_type=state.saga_type,
            subject_id=state.user_id,
            duration_ms=command.duration_ms,
            targets=state.targets("done"),
        )
    ]
    factors = ports.settings.mfa_enrolment
    if state.saga_type == "joiner" and factors:
        # The joiner's last step: ask the new identity to enrol a second factor.
        done.append(
            MfaEnrolmentRequested(user_id=state.user_id, factors=factors, saga_id=state.saga_id)
        )
    return done


def _transient(state: saga.SagaState) -> bool:
    """Whether every failed step of a saga failed for a transient reason (a cancelled saga:
    no, an operator gave it up)."""
    failed = [s for s in state.steps if s.status == "failed"]
    return state.status == "failed" and bool(failed) and all(s.retryable for s in failed)


async def _retry_later(
    ports: OrchestratorPorts, state: saga.SagaState, command: saga.ScheduleRetry, origin: Origin
) -> None:
    delay = ports.settings.backoff.delay(command.failures)
    timer = Timer(
        f"{state.saga_id}:retry:{command.failures}",
        "saga_retry",
        state.user_id,
        state.saga_id,
        origin.correlation_id(),
    )
    await ports.sagas.add_timer(timer, ports.clock() + timedelta(seconds=delay))
    log.info("saga retries later", extra={"saga_id": state.saga_id, "delay_s": delay})


async def _guard_round(ports: OrchestratorPorts, state: saga.SagaState, origin: Origin) -> None:
    """Time the round's steps out unless every one of them answers in time."""
    round_ = saga.round_of(state)
    timer = Timer(
        f"{state.saga_id}:timeout:{round_}:{state.status}",
        "saga_timeout",
        state.user_id,
        state.saga_id,
        origin.correlation_id(),
        {"round": round_, "status": state.status},
    )
    await ports.sagas.add_timer(timer, ports.clock() + ports.settings.step_timeout)


async def _profile(ports: OrchestratorPorts, user_id: str) -> Profile:
    identity = await ports.registry.identity(user_id)
    assert identity is not None, "sagas only run for identities in the registry"
    return identity.effective_profile()
