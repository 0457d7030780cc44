"""Orchestrator handlers: keep the identity registry and drive the account and access sagas.

Every change of an identity, from Kafka or from the inbound SCIM server, goes through
these methods inside one database transaction: the registry, the saga and the events it
causes (written to the outbox) commit together.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg

from accord.events import (
    REGISTRY,
    AccessGranted,
    AccessRevoked,
    AccountProvisioned,
    AccountProvisionFailed,
    Envelope,
    EventData,
    IdentityLocked,
    IdentityUnlocked,
    MfaEnrolmentRequested,
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
from accord.events.catalogue.authn import Factor
from accord.orchestrator.adapters import store
from accord.orchestrator.domain import account_saga as saga
from accord.orchestrator.domain.birthright import Birthright
from accord.orchestrator.domain.identity import Verdict, judge
from accord.orchestrator.domain.plans import (
    comeback_steps,
    every_account,
    memberships,
    mover_steps,
)
from accord.runtime.consumer import HandlerContext
from accord.runtime.errors import PermanentError

log = logging.getLogger(__name__)

_SAGA_NAMESPACE = uuid.UUID("5d1c5f0e-8f5a-4c53-9a52-6f1c0e6a1a01")
_STATUS_OF: dict[type[EventData], str] = {
    UserDeactivated: "inactive",
    UserReactivated: "active",
    UserDeleted: "deleted",
}
#: The workflow of each access event, and the operation of its membership steps.
_ACCESS_WORKFLOWS: dict[type[EventData], tuple[saga.SagaType, saga.Operation]] = {
    AccessGranted: ("access_grant", "add_member"),
    AccessRevoked: ("access_revoke", "remove_member"),
}


class UnknownIdentity(Exception):
    """An access or lockout event for an identity the registry does not hold (yet).

    Not permanent: its user.created may be on its way (Kafka does not order topics), so the
    consumer tries again a few times before it dead-letters the event for a replay.
    """


@dataclass(frozen=True)
class WorkflowSettings:
    """How the workflows behave; from the orchestrator's settings."""

    birthright: Birthright
    joiner_on_failure: saga.OnFailure = "keep"
    leaver_retention: timedelta = timedelta(days=30)
    """A deleted identity's accounts are disabled at once and deleted after this long."""
    backoff: saga.Backoff = field(default_factory=saga.Backoff)
    """Delays of a saga's own retries."""
    transient_rounds: int = 5
    """Rounds a saga other than a leaver retries by itself after transient failures only."""
    step_timeout: timedelta = timedelta(minutes=10)
    """A round's steps that get no answer within this fail (and a leaver retries them)."""
    mfa_enrolment: tuple[Factor, ...] = ()
    """Factors a completed joiner is asked to enrol (mfa.enrolment_requested); none: off."""


class Workflows:
    """The orchestrator's event handlers, with their configuration."""

    def __init__(self, settings: WorkflowSettings) -> None:
        self.settings = settings

    # --- identity events ------------------------------------------------------------------

    async def user_created(self, event: Envelope, ctx: HandlerContext) -> list[Envelope]:
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
        await _save_profile(ctx.conn, data, sequence, event.source)
        if current is not None:
            # A re-announced identity is an update, not a second joiner.
            return []
        for parked in await store.take_parked(ctx.conn, data.user_id):
            if parked.sequence <= sequence:
                continue  # older than the creation: already reflected in it
            # Parsed in the version it was parked in: upcast if the schema moved on meanwhile.
            early = REGISTRY.parse(parked.event_type, parked.version, parked.data)
            sequence = parked.sequence
            if isinstance(early, UserUpdated):
                await _save_profile(ctx.conn, early, sequence, parked.source, status_event=False)
            else:
                status = _STATUS_OF[type(early)]
                await store.set_identity_status(ctx.conn, data.user_id, status, sequence)
            log.info("applied an early event", extra={"type": parked.event_type, "seq": sequence})
        # Planned on the registry as the early events left it: nothing for one who left.
        return await self._start(event, ctx, "joiner")

    async def user_updated(self, event: Envelope, ctx: HandlerContext) -> list[Envelope]:
        """Apply a newer profile; a mover's accounts follow its birthright and attributes."""
        data = event.data
        assert isinstance(data, UserUpdated)
        if await self._parked_or_stale(event, ctx) is not Verdict.APPLY:
            return []
        entry = await store.get_identity(ctx.conn, data.user_id)
        assert entry is not None
        await _save_profile(ctx.conn, data, event.sequence or 0, event.source, status_event=False)
        if entry["status"] == "deleted":
            # A leaver's accounts are going away: keep the attributes, not the status.
            await store.set_identity_status(ctx.conn, data.user_id, "deleted", event.sequence or 0)
            return []
        return await self._start(event, ctx, "mover")

    async def user_status(self, event: Envelope, ctx: HandlerContext) -> list[Envelope]:
        """Deactivation disables every account, reactivation enables them, deletion disables
        them at once and deletes them after the retention period."""
        if await self._parked_or_stale(event, ctx) is not Verdict.APPLY:
            return []
        status = _STATUS_OF[type(event.data)]
        user_id = event.subject
        try:
            await store.set_identity_status(ctx.conn, user_id, status, event.sequence or 0)
        except store.UserNameTaken as error:
            raise PermanentError(str(error)) from None
        if status == "active":
            return await self._start(event, ctx, "reactivation")
        operation: saga.Operation = "disable"
        retention = self.settings.leaver_retention
        if status == "deleted" and retention <= timedelta(0):
            operation = "delete"
        elif status == "deleted":
            timer = store.Timer(
                f"{event.id}:deletion", "account_deletion", user_id, None, event.correlationid
            )
            await store.add_timer(ctx.conn, timer, store.now_utc() + retention)
        return await self._start(event, ctx, "leaver", operation=operation)

    # --- authentication risk ----------------------------------------------------------------

    async def identity_locked(self, event: Envelope, ctx: HandlerContext) -> list[Envelope]:
        """A lockout disables every account of the identity, and nothing enables one while
        it lasts. Like a leaver, the lockout saga retries by itself until it is done."""
        data = event.data
        assert isinstance(data, IdentityLocked)
        await store.lock_identity(ctx.conn, data.user_id)
        if await store.lockout_ended(ctx.conn, data.user_id, data.lockout_id):
            return []  # its identity.unlocked (another topic) was consumed first
        if not await store.set_locked(ctx.conn, data.user_id, data.lockout_id):
            # authn knows it, so its user.created is on its way here: retried, and
            # dead-lettered for a replay if it never comes (a lockout is never dropped).
            raise UnknownIdentity(f"{event.type} for {data.user_id}, unknown to the registry")
        return await self._start(event, ctx, "lockout", operation="disable")

    async def identity_unlocked(self, event: Envelope, ctx: HandlerContext) -> list[Envelope]:
        """An approved unlock enables the accounts again, unless the source system has
        deactivated or removed the identity meanwhile."""
        data = event.data
        assert isinstance(data, IdentityUnlocked)
        await store.lock_identity(ctx.conn, data.user_id)
        # Remembered, so that its identity.locked consumed after it changes nothing.
        await store.end_lockout(ctx.conn, data.user_id, data.lockout_id)
        entry = await store.get_identity(ctx.conn, data.user_id)
        if entry is None or entry["locked_by"] != data.lockout_id:
            return []  # unknown, or another lockout holds it
        await store.set_locked(ctx.conn, data.user_id, None)
        if entry["status"] != "active":
            return []
        return await self._start(event, ctx, "unlock")

    # --- access events --------------------------------------------------------------------

    async def access_changed(self, event: Envelope, ctx: HandlerContext) -> list[Envelope]:
        """A grant adds the principal to the groups that carry it, a revocation removes it.

        One saga per grant and event type (a redelivery starts none), queued behind the
        identity's saga in flight (a grant behind its joiner finds the accounts). An
        entitlement that lives in Accord only has nothing to provision: no saga.
        """
        data = event.data
        assert isinstance(data, AccessGranted | AccessRevoked)
        saga_type, operation = _ACCESS_WORKFLOWS[type(data)]
        steps = memberships(((p.target, p.group) for p in data.provisioning), operation)
        if not steps:
            return []
        user_id = data.principal_id
        await store.lock_identity(ctx.conn, user_id)
        if await store.get_identity(ctx.conn, user_id) is None:
            raise UnknownIdentity(f"{event.type} for {user_id}, unknown to the registry")
        revocation = access_saga_id(AccessRevoked, data.grant_id)
        if isinstance(data, AccessGranted) and await store.saga_status(ctx.conn, revocation):
            log.info("grant revoked already: not provisioned", extra={"grant": data.grant_id})
            return []
        events: list[Envelope] = []
        if isinstance(data, AccessRevoked):
            events += await self._withdraw_grant(ctx, data.grant_id, event)
        origin = _Origin(ctx.source, event)
        saga_id = access_saga_id(type(data), data.grant_id)
        return events + await self._begin(
            ctx.conn, origin, saga_id, user_id, saga_type, memberships=steps
        )

    async def _withdraw_grant(
        self, ctx: HandlerContext, grant_id: str, cause: Envelope
    ) -> list[Envelope]:
        """A revoked grant's saga that waits or failed must never add its groups: cancel it.

        One in flight finishes first; the revocation queues behind it.
        """
        saga_id = access_saga_id(AccessGranted, grant_id)
        state = await store.load_saga(ctx.conn, saga_id)
        if state is None or state.status not in ("queued", "failed"):
            return []
        return await self.advance(ctx, saga_id, saga.CancelRequested("access revoked"), cause=cause)

    # --- provisioning results, operators and timers ---------------------------------------

    async def account_result(self, event: Envelope, ctx: HandlerContext) -> list[Envelope]:
        """Feed a provisioning result to the saga that asked for it.

        An account result also keeps the registry's accounts; a membership result (it names
        a group) concerns the group, not the account.
        """
        data = event.data
        assert isinstance(data, AccountProvisioned | AccountProvisionFailed)
        if isinstance(data, AccountProvisioned):
            if data.group is None:
                await store.record_account(
                    ctx.conn, data.user_id, data.target, data.account_id, data.operation
                )
            result: saga.SagaEvent = saga.Provisioned(data.target, data.operation, data.group)
        else:
            result = saga.ProvisionFailed(
                data.target,
                data.reason,
                data.operation,
                retryable=data.retryable,
                group=data.group,
            )
        return await self.advance(ctx, data.saga_id, result, cause=event)

    async def advance(
        self,
        ctx: HandlerContext,
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
        user_id = await store.saga_subject(ctx.conn, saga_id)
        if user_id is None:
            log.info("event for a saga this orchestrator does not know", extra={"saga": saga_id})
            return []
        await store.lock_identity(ctx.conn, user_id)
        state = await store.load_saga(ctx.conn, saga_id)
        assert state is not None, "sagas are never deleted"
        if isinstance(saga_event, saga.RetryRequested):
            saga_event = saga.RetryRequested(await self._identity_now(ctx.conn, user_id))
        new_state, commands = saga.decide(state, saga_event, store.now_utc())
        if new_state == state:
            return []
        await store.save_saga(ctx.conn, new_state)
        if not new_state.targets("pending", "compensating"):
            await store.drop_timers(ctx.conn, saga_id, "saga_timeout")  # the round is over
        if state.status == "failed" and new_state.status != "failed":
            await store.drop_timers(ctx.conn, saga_id, "saga_retry")  # retried or ended
        correlation = None if cause else await store.saga_correlation(ctx.conn, saga_id)
        origin = _Origin(ctx.source, cause, correlation)
        events = await self._carry_out(ctx.conn, commands, new_state, origin)
        if saga.holds_identity(state) and not saga.holds_identity(new_state):
            events += await self._next_in_queue(ctx.conn, new_state.user_id, ctx.source)
        return events

    async def fire(self, ctx: HandlerContext, timer: store.Timer) -> list[Envelope]:
        """Carry out a due timer."""
        if timer.kind == "saga_retry":
            assert timer.saga_id is not None
            return await self.advance(ctx, timer.saga_id, saga.RetryRequested())
        if timer.kind == "saga_timeout":
            assert timer.saga_id is not None
            timed_out = saga.TimedOut(
                round=int(timer.payload["round"]),
                status=timer.payload["status"],
                after_s=self.settings.step_timeout.total_seconds(),
            )
            return await self.advance(ctx, timer.saga_id, timed_out)
        await store.lock_identity(ctx.conn, timer.subject_id)
        entry = await store.get_identity(ctx.conn, timer.subject_id)
        if entry is None or entry["status"] != "deleted":
            return []  # came back within the retention period: keep the accounts
        saga_id = str(uuid.uuid5(_SAGA_NAMESPACE, timer.timer_id))
        origin = _Origin(ctx.source, None, timer.correlation_id)
        return await self._begin(
            ctx.conn, origin, saga_id, timer.subject_id, "leaver", operation="delete"
        )

    # --- internals ------------------------------------------------------------------------

    async def _start(
        self,
        cause: Envelope,
        ctx: HandlerContext,
        saga_type: saga.SagaType,
        *,
        operation: saga.Operation | None = None,
    ) -> list[Envelope]:
        saga_id = str(uuid.uuid5(_SAGA_NAMESPACE, cause.id))
        origin = _Origin(ctx.source, cause)
        return await self._begin(
            ctx.conn, origin, saga_id, cause.subject, saga_type, operation=operation
        )

    async def _begin(
        self,
        conn: asyncpg.Connection,
        origin: _Origin,
        saga_id: str,
        user_id: str,
        saga_type: saga.SagaType,
        *,
        operation: saga.Operation | None = None,
        memberships: tuple[saga.Step, ...] = (),
    ) -> list[Envelope]:
        """Start a saga now, or queue it behind the identity's saga in flight.

        The caller holds the identity's lock (every identity handler takes it first).
        """
        now = store.now_utc()
        if await store.busy(conn, user_id):
            queued = saga.queue(
                saga_id, user_id, saga_type, now, operation=operation, steps=memberships
            )
            if not await store.insert_saga(conn, queued, origin.correlation_id()):
                return []
            log.info("saga queued behind another", extra={"saga_id": saga_id})
            if saga_type in _TAKES_ACCESS:
                return await self._hurry_holder(conn, user_id, origin.source)
            return []
        plan = await self._plan(conn, user_id, saga_type, operation, memberships)
        if plan is None or (not plan.steps and saga_type != "joiner"):
            return []  # nothing to do: no saga (a joiner always leaves a record)
        state, commands = saga.start(
            saga_id, user_id, plan.steps, now, saga_type=saga_type, **self._options(saga_type)
        )
        if not await store.insert_saga(conn, state, origin.correlation_id()):
            return []  # started already by an earlier delivery of the same cause
        return await self._announce(conn, state, commands, origin, plan.profile)

    async def _hurry_holder(
        self, conn: asyncpg.Connection, user_id: str, source: str
    ) -> list[Envelope]:
        """A saga that takes access away does not wait out a failed holder's backoff: the
        holder's retry comes now, re-planned (a joiner of an identity deleted meanwhile is
        superseded at once, and the leaver begins)."""
        holder = await store.holder(conn, user_id)
        if holder is None:
            return []
        state = await store.load_saga(conn, holder)
        if state is None or state.status != "failed":
            return []  # running: its results move the queue on
        ctx = HandlerContext(conn=conn, source=source, topic="orchestrator")
        return await self.advance(ctx, holder, saga.RetryRequested())

    async def _next_in_queue(
        self, conn: asyncpg.Connection, user_id: str, source: str
    ) -> list[Envelope]:
        """Begin the identity's next queued saga, planned on the accounts as they are now."""
        await store.lock_identity(conn, user_id)
        events: list[Envelope] = []
        while (queued := await store.next_queued(conn, user_id)) is not None:
            plan = await self._plan(conn, user_id, queued.saga_type, queued.operation, queued.steps)
            state, commands = saga.begin(
                queued,
                plan.steps if plan else {},
                store.now_utc(),
                **self._options(queued.saga_type),
            )
            await store.save_saga(conn, state)
            origin = _Origin(source, None, await store.saga_correlation(conn, state.saga_id))
            events += await self._announce(
                conn, state, commands, origin, plan.profile if plan else None
            )
            if saga.holds_identity(state):
                break
        return events

    async def _announce(
        self,
        conn: asyncpg.Connection,
        state: saga.SagaState,
        commands: Sequence[saga.Command],
        origin: _Origin,
        profile: Profile | None,
    ) -> list[Envelope]:
        started = SagaStarted(
            saga_id=state.saga_id,
            saga_type=state.saga_type,
            subject_id=state.user_id,
            targets=state.targets(),
        )
        return [
            origin.event(started),
            *await self._carry_out(conn, commands, state, origin, profile),
        ]

    async def _plan(
        self,
        conn: asyncpg.Connection,
        user_id: str,
        saga_type: saga.SagaType,
        operation: saga.Operation | None,
        memberships: tuple[saga.Step, ...] = (),
    ) -> _Plan | None:
        """The steps a saga needs, from the registry and the accounts as they are now (an
        access saga's memberships come from its grant); None: no saga for a gone identity."""
        entry = await store.get_identity(conn, user_id)
        if entry is None:
            return None
        profile = Profile.model_validate(entry["profile"])
        if saga_type in ("joiner", "mover", "access_grant") and entry["status"] == "deleted":
            return None
        locked = entry["locked_by"] is not None
        if locked:
            # Whatever the source says, a locked identity's accounts stay disabled.
            profile = profile.model_copy(update={"active": False})
            if saga_type in ("reactivation", "unlock"):
                return _Plan(profile, {})
        if saga_type in saga.ACCESS_SAGAS:
            return _Plan(profile, memberships)
        steps: dict[str, saga.Operation]
        if saga_type == "joiner":
            steps = dict.fromkeys(self.settings.birthright.targets_for(profile), "create")
            return _Plan(profile, steps)
        held = await store.account_targets(conn, user_id)
        if saga_type == "mover":
            wanted = self.settings.birthright.targets_for(profile) if profile.active else held
            in_doubt = set(await store.account_targets(conn, user_id, requested=True))
            steps = mover_steps(wanted, held, active=profile.active, in_doubt=in_doubt)
        elif saga_type in ("reactivation", "unlock"):
            # Back: the accounts follow the birthright as it is now, enabled.
            wanted = self.settings.birthright.targets_for(profile)
            in_doubt = set(await store.account_targets(conn, user_id, requested=True))
            steps = comeback_steps(wanted, held, in_doubt=in_doubt)
        else:
            # Taking access away: accounts whose creation is still in doubt too.
            maybe = await store.account_targets(conn, user_id, requested=True)
            steps = every_account(maybe, operation or "disable")
        return _Plan(profile, steps)

    async def _identity_now(self, conn: asyncpg.Connection, user_id: str) -> saga.IdentityNow:
        """The identity as a retry must see it: status, lock, the targets it should have."""
        entry = await store.get_identity(conn, user_id)
        if entry is None or entry["status"] == "deleted":
            return saga.IdentityNow("deleted", wanted=frozenset())
        profile = Profile.model_validate(entry["profile"])
        return saga.IdentityNow(
            entry["status"],
            locked=entry["locked_by"] is not None,
            wanted=frozenset(self.settings.birthright.targets_for(profile)),
        )

    def _options(self, saga_type: saga.SagaType) -> dict[str, Any]:
        """How a workflow fails: leavers retry by themselves, the others (access sagas too)
        after transient failures only; joiners roll back or keep as configured."""
        if saga_type in ("leaver", "lockout"):
            return {"retries_itself": True}
        options: dict[str, Any] = {"transient_rounds": self.settings.transient_rounds}
        if saga_type == "joiner":
            options["on_failure"] = self.settings.joiner_on_failure
        return options

    async def _carry_out(
        self,
        conn: asyncpg.Connection,
        commands: Sequence[saga.Command],
        state: saga.SagaState,
        origin: _Origin,
        profile: Profile | None = None,
    ) -> list[Envelope]:
        events: list[Envelope] = []
        for command in commands:
            data: EventData
            if isinstance(command, saga.ProvisionAccount):
                if command.operation == "create":
                    await store.record_requested(conn, state.user_id, command.target)
                if profile is None:
                    profile = await _profile(conn, state.user_id)
                data = ProvisionRequested(
                    user_id=state.user_id,
                    target=command.target,
                    operation=command.operation,
                    saga_id=state.saga_id,
                    step_id=command.step_id,
                    group=command.group,
                    profile=profile,
                )
            elif isinstance(command, saga.CompleteSaga):
                data = SagaCompleted(
                    saga_id=state.saga_id,
                    saga_type=state.saga_type,
                    subject_id=state.user_id,
                    duration_ms=command.duration_ms,
                )
                if state.saga_type == "joiner" and self.settings.mfa_enrolment:
                    # The joiner's last step: ask the new identity to enrol a second factor.
                    enrol = MfaEnrolmentRequested(
                        user_id=state.user_id,
                        factors=self.settings.mfa_enrolment,
                        saga_id=state.saga_id,
                    )
                    events += [origin.event(data), origin.event(enrol)]
                    continue
            elif isinstance(command, saga.FailSaga):
                data = SagaFailed(
                    saga_id=state.saga_id,
                    saga_type=state.saga_type,
                    subject_id=state.user_id,
                    reason=command.reason[:256],
                    failed_targets=command.failed_targets,
                )
            else:
                delay = self.settings.backoff.delay(command.failures)
                timer = store.Timer(
                    f"{state.saga_id}:retry:{command.failures}",
                    "saga_retry",
                    state.user_id,
                    state.saga_id,
                    origin.correlation_id(),
                )
                await store.add_timer(conn, timer, store.now_utc() + timedelta(seconds=delay))
                log.info("saga retries later", extra={"saga_id": state.saga_id, "delay_s": delay})
                continue
            events.append(origin.event(data))
        if any(isinstance(c, saga.ProvisionAccount) for c in commands):
            await self._guard_round(conn, state, origin)
        return events

    async def _guard_round(
        self, conn: asyncpg.Connection, state: saga.SagaState, origin: _Origin
    ) -> None:
        """Time the round's steps out unless every one of them answers in time."""
        round_ = saga.round_of(state)
        timer = store.Timer(
            f"{state.saga_id}:timeout:{round_}:{state.status}",
            "saga_timeout",
            state.user_id,
            state.saga_id,
            origin.correlation_id(),
            {"round": round_, "status": state.status},
        )
        await store.add_timer(conn, timer, store.now_utc() + self.settings.step_timeout)

    async def _parked_or_stale(self, event: Envelope, ctx: HandlerContext) -> Verdict:
        """Judge an identity change; park it when its identity does not exist yet."""
        user_id = event.subject
        sequence = event.sequence or 0
        await store.lock_identity(ctx.conn, user_id)
        current = await store.identity_version(ctx.conn, user_id)
        deletes = isinstance(event.data, UserDeleted)
        verdict = judge(current, sequence, creates=False, deletes=deletes)
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


#: Workflows that take access away: they do not wait out a failed saga's backoff.
_TAKES_ACCESS: frozenset[saga.SagaType] = frozenset({"leaver", "lockout"})


@dataclass(frozen=True)
class _Plan:
    """What a saga will do, planned when it begins."""

    profile: Profile
    steps: saga.Plan


@dataclass(frozen=True)
class _Origin:
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


def access_saga_id(event_type: type[EventData], grant_id: str) -> str:
    """The saga of a grant (or of its revocation): one per grant and event type, so a grant
    re-announced under another event id starts no second saga."""
    return str(uuid.uuid5(_SAGA_NAMESPACE, f"{event_type.event_type}:{grant_id}"))


def _status(active: bool) -> str:
    return "active" if active else "inactive"


async def _profile(conn: asyncpg.Connection, user_id: str) -> Profile:
    entry = await store.get_identity(conn, user_id)
    assert entry is not None, "sagas only run for identities in the registry"
    profile = Profile.model_validate(entry["profile"])
    if entry["locked_by"] is not None:
        return profile.model_copy(update={"active": False})
    return profile


async def _save_profile(
    conn: asyncpg.Connection,
    data: UserCreated | UserUpdated,
    sequence: int,
    source: str,
    *,
    status_event: bool = True,
) -> None:
    try:
        await store.upsert_identity(
            conn,
            user_id=data.user_id,
            user_name=data.user_name,
            profile=data.profile().model_dump(mode="json"),
            status=_status(data.active),
            sequence=sequence,
            source=source,
            status_event=status_event,
        )
    except store.UserNameTaken as error:
        raise PermanentError(str(error)) from None
