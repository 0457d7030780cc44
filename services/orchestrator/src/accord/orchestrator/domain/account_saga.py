"""Account sagas: joiner, mover, reactivation and leaver as one fan-out workflow.

A saga brings an identity's accounts in several targets to a goal, one step per target:
- joiner: create the birthright accounts; a target that fails permanently either keeps the
  others and fails the saga for a retry, or rolls them back (delete what was created);
- mover: update kept accounts, create added ones, delete removed ones; never rolls back;
- reactivation: enable every account;
- leaver: disable (deactivation) or delete (after the retention period) every account; never
  compensates and retries by itself, with backoff, until every target has answered yes;
- access grant / revoke: add the identity's account to (or remove it from) the groups that
  carry an entitlement, one step per target and group; never compensates;
- workflow task: the account work of one task of a lifecycle workflow run (create, update,
  enable, disable or delete accounts, add or remove a group membership), planned from the
  task's `TaskIntent` when it begins; never compensates and never retries by itself (the
  task's retry policy does, with a new saga per attempt).

A round that failed only for transient reasons (the target was down, throttling, or did not
answer in time) retries by itself, with the same backoff, for `transient_rounds` rounds; a
permanent refusal waits for an operator. A late success for a failed step (a dead letter
replayed after the target recovered) heals it: the saga completes once no step is failed.

One identity runs one saga at a time: a saga that arrives while another holds the identity
waits queued, and its steps are planned when it begins, from the accounts as they are by then
(a mover right behind its joiner sees the joiner's accounts). A saga holds its identity while
it runs or compensates, and while it is failed but will retry by itself (a leaver arriving
during a joiner's outage must not run before that joiner's retry). An access saga's steps come
from its grant, so they are known, and kept, while it waits.

A retry (the saga's own timer or an operator) re-plans against the identity as it is then: a
step whose goal no longer holds is dropped, never run (no account is created for an identity
deleted meanwhile, no account enabled for one deactivated or locked). A retry that leaves
nothing to run cancels the saga: it was superseded.

Pure: decide(state, event, now) -> (new state, commands). The database guards the same
status machine (see migrations), so a bug here cannot reopen a finished saga.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from accord.events.catalogue.saga import SagaType as SagaType  # the workflows, re-exported

Status = Literal["queued", "running", "compensating", "completed", "failed", "cancelled"]
Operation = Literal[
    "create", "update", "enable", "disable", "delete", "add_member", "remove_member"
]
StepStatus = Literal["pending", "done", "failed", "compensating", "compensated", "dropped"]
OnFailure = Literal["keep", "rollback"]
IdentityStatus = Literal["active", "inactive", "deleted"]

#: Allowed status transitions. A failed saga may be retried or cancelled; completed and
#: cancelled sagas never change again.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    "queued": frozenset({"running", "completed", "cancelled"}),
    "running": frozenset({"running", "compensating", "completed", "failed", "cancelled"}),
    "compensating": frozenset({"compensating", "failed"}),
    "failed": frozenset({"failed", "running", "completed", "cancelled"}),
    "completed": frozenset(),
    "cancelled": frozenset(),
}
TERMINAL: frozenset[Status] = frozenset({"completed", "cancelled"})
#: Operations on a group membership rather than on the account itself: their steps name a group.
MEMBERSHIP_OPERATIONS: frozenset[Operation] = frozenset({"add_member", "remove_member"})
#: Workflows that carry out access grants: their steps come from the grant, not the registry.
ACCESS_SAGAS: frozenset[SagaType] = frozenset({"access_grant", "access_revoke"})

#: Forward operations and the operation that undoes each (None: nothing to undo).
COMPENSATIONS: dict[Operation, Operation | None] = {
    "create": "delete",
    "update": None,
    "enable": None,
    "disable": None,  # leavers never compensate
    "delete": None,
    "add_member": None,  # access sagas never compensate: a failure waits for an operator
    "remove_member": None,
}

#: Identity states in which an operation may still run when a retry re-plans a step.
ALLOWED_WHEN: dict[Operation, frozenset[IdentityStatus]] = {
    "create": frozenset({"active", "inactive"}),  # an inactive identity's account is disabled
    "update": frozenset({"active", "inactive"}),
    "enable": frozenset({"active"}),
    "add_member": frozenset({"active", "inactive"}),
    "disable": frozenset({"active", "inactive", "deleted"}),
    "delete": frozenset({"active", "inactive", "deleted"}),
    "remove_member": frozenset({"active", "inactive", "deleted"}),
}


@dataclass(frozen=True)
class IdentityNow:
    """The identity as a retry finds it: what decides whether a step still makes sense."""

    status: IdentityStatus = "active"
    locked: bool = False
    wanted: frozenset[str] | None = None
    """The targets its birthright gives it now (None: not known, no step is judged by it)."""


def allows(identity: IdentityNow, step: Step) -> bool:
    """Whether the identity, as it is now, still wants the step: no account created,
    updated or enabled for an identity that is gone or outside the target's birthright,
    none enabled while locked, none deleted that its birthright wants again (unless the
    identity is deleted). Disabling and removing memberships are always fine."""
    if identity.status not in ALLOWED_WHEN[step.operation]:
        return False
    if step.operation == "enable" and identity.locked:
        return False
    if identity.wanted is None or step.group is not None:
        return True
    if step.operation in ("create", "update", "enable"):
        return step.target in identity.wanted
    if step.operation == "delete" and identity.status != "deleted":
        return step.target not in identity.wanted
    return True


@dataclass(frozen=True)
class Backoff:
    """Delays between a self-retrying saga's attempts: base * 2^n, at most cap."""

    base_s: float = 30.0
    cap_s: float = 900.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after the given number of failed rounds (1 = first failure)."""
        return float(min(self.cap_s, self.base_s * 2 ** max(0, failures - 1)))


@dataclass(frozen=True)
class Step:
    """One target's part of a saga (one target and group's, for a membership)."""

    target: str
    operation: Operation
    status: StepStatus = "pending"
    attempts: int = 1
    error: str | None = None
    retryable: bool = False
    """The step failed for a transient reason (down, throttled, no answer in time)."""
    finished_at: datetime | None = None
    group: str | None = None
    """add_member / remove_member: the group in the target; None for account operations."""

    def __post_init__(self) -> None:
        if (self.group is not None) != (self.operation in MEMBERSHIP_OPERATIONS):
            raise ValueError("a step names a group for add_member/remove_member, and only there")

    @property
    def key(self) -> tuple[str, str | None]:
        """What tells a saga's steps apart: the target, and the group of a membership."""
        return (self.target, self.group)

    @property
    def label(self) -> str:
        """The step as failure reasons name it."""
        return self.target if self.group is None else f"{self.target} group {self.group}"


#: A saga's plan: an operation per target, or the steps themselves (memberships, where one
#: target may hold several groups).
Plan = Mapping[str, Operation] | Iterable[Step]


@dataclass(frozen=True)
class TaskIntent:
    """What a workflow task asks of an identity's accounts; its saga's steps are planned
    from it when the saga begins (`domain.plans.task_steps`), as the other sagas' are from
    the identity, so a task queued behind a joiner sees the joiner's accounts."""

    operation: Operation
    targets: tuple[str, ...] | None = None
    """The named targets; None: all of them (a create: the birthright's targets; the other
    operations: wherever the identity holds an account)."""
    disabled: bool = False
    """A create makes the accounts disabled (pre-hire: enabled by a later task)."""


@dataclass(frozen=True)
class SagaState:
    """One saga instance."""

    saga_id: str
    user_id: str
    saga_type: SagaType
    status: Status
    started_at: datetime
    steps: tuple[Step, ...]
    on_failure: OnFailure = "keep"
    retries_itself: bool = False
    """Retry every failed round, whatever the reasons (leavers)."""
    transient_rounds: int = 0
    """Failed rounds retried by themselves when every failure was transient."""
    failures: int = 0
    """Rounds that ended failed; drives the backoff of a self-retrying saga."""
    version: int = 0
    operation: Operation | None = None
    """A queued leaver's operation (disable or delete), planned when it begins."""
    intent: TaskIntent | None = None
    """A workflow task saga's intent (None for every other saga)."""

    def step(self, target: str, group: str | None = None) -> Step | None:
        """The step of a target (and group, for a membership), if the saga has one."""
        return next((s for s in self.steps if s.key == (target, group)), None)

    def targets(self, *statuses: StepStatus) -> tuple[str, ...]:
        """Targets with a step in one of the statuses (all targets when none given), once each."""
        found = (s.target for s in self.steps if not statuses or s.status in statuses)
        return tuple(dict.fromkeys(found))


# --- commands -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProvisionAccount:
    """Command: bring the identity's account in a target to the operation's result."""

    target: str
    step_id: str
    operation: Operation = "create"
    group: str | None = None
    """add_member / remove_member: the group in the target."""


@dataclass(frozen=True)
class CompleteSaga:
    """Command: announce success."""

    duration_ms: int


@dataclass(frozen=True)
class FailSaga:
    """Command: announce failure (after compensation, where the saga has any)."""

    reason: str
    failed_targets: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScheduleRetry:
    """Command: run the saga's failed steps again later (a durable timer; see Backoff)."""

    failures: int
    """Failed rounds so far: the backoff grows with them."""


Command = ProvisionAccount | CompleteSaga | FailSaga | ScheduleRetry


# --- events ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Provisioned:
    """Event: a target did what a step asked."""

    target: str
    operation: Operation = "create"
    group: str | None = None
    """The group of a membership step."""


@dataclass(frozen=True)
class ProvisionFailed:
    """Event: a target could not do what a step asked."""

    target: str
    reason: str
    operation: Operation = "create"
    retryable: bool = False
    """Transient (the target may say yes later) rather than a refusal."""
    group: str | None = None
    """The group of a membership step."""


@dataclass(frozen=True)
class TimedOut:
    """Event: a round's steps got no answer in time (a durable timer fired).

    It names the round it was set for, so a timer of an earlier round never cuts a later
    one short.
    """

    round: int
    status: Status
    after_s: float


@dataclass(frozen=True)
class RetryRequested:
    """Event: an operator or the saga's own timer asks to run the failed steps again."""

    identity: IdentityNow = IdentityNow()
    """The identity as it is now: the retry drops the steps it no longer wants."""


@dataclass(frozen=True)
class CancelRequested:
    """Event: an operator gives the saga up."""

    reason: str


SagaEvent = Provisioned | ProvisionFailed | TimedOut | RetryRequested | CancelRequested


class InvalidTransition(ValueError):
    """A status change the saga does not allow."""


# --- decisions ------------------------------------------------------------------------------


def start(
    saga_id: str,
    user_id: str,
    steps: Plan,
    now: datetime,
    *,
    saga_type: SagaType,
    on_failure: OnFailure = "keep",
    retries_itself: bool = False,
    transient_rounds: int = 0,
    intent: TaskIntent | None = None,
) -> tuple[SagaState, list[Command]]:
    """A new saga and its first commands: one per step, in target (then group) order."""
    state = SagaState(
        saga_id,
        user_id,
        saga_type,
        "running",
        now,
        _fresh(steps),
        on_failure=on_failure,
        retries_itself=retries_itself,
        transient_rounds=transient_rounds,
        intent=intent,
    )
    if not state.steps:
        return _move(state, "completed"), [CompleteSaga(0)]
    return state, [_provision(state.saga_id, step) for step in state.steps]


def _fresh(plan: Plan) -> tuple[Step, ...]:
    """A plan's steps, pending and at their first attempt, once each, in a stable order."""
    if isinstance(plan, Mapping):
        steps = [Step(target, operation) for target, operation in plan.items()]
    else:
        steps = [Step(s.target, s.operation, group=s.group) for s in plan]
    unique = {s.key: s for s in steps}
    return tuple(sorted(unique.values(), key=lambda s: (s.target, s.group or "")))


def queue(
    saga_id: str,
    user_id: str,
    saga_type: SagaType,
    now: datetime,
    *,
    operation: Operation | None = None,
    steps: Iterable[Step] = (),
    intent: TaskIntent | None = None,
) -> SagaState:
    """A saga that waits for the identity's saga in flight; planned when it begins, unless
    its steps are known already (an access saga's memberships, kept until then)."""
    return SagaState(
        saga_id,
        user_id,
        saga_type,
        "queued",
        now,
        _fresh(steps),
        operation=operation,
        intent=intent,
    )


def begin(
    state: SagaState,
    steps: Plan,
    now: datetime,
    *,
    on_failure: OnFailure = "keep",
    retries_itself: bool = False,
    transient_rounds: int = 0,
) -> tuple[SagaState, list[Command]]:
    """A queued saga's turn: its steps, planned now, and their commands."""
    if state.status != "queued":
        raise InvalidTransition(f"only a queued saga can begin, not a {state.status} one")
    fresh, commands = start(
        state.saga_id,
        state.user_id,
        steps,
        now,
        saga_type=state.saga_type,
        on_failure=on_failure,
        retries_itself=retries_itself,
        transient_rounds=transient_rounds,
        intent=state.intent,
    )
    _move(state, fresh.status)  # queued -> running, or completed when there is nothing to do
    return replace(fresh, version=state.version, operation=state.operation), commands


def decide(state: SagaState, event: SagaEvent, now: datetime) -> tuple[SagaState, list[Command]]:
    """Apply an event; events a saga cannot use (late, duplicate, unknown) change nothing."""
    if isinstance(event, RetryRequested):
        return _retry(state, event.identity)
    if isinstance(event, CancelRequested):
        return _cancel(state, event)
    if isinstance(event, TimedOut):
        return _time_out(state, event, now)
    step = state.step(event.target, event.group)
    if step is None:
        return state, []
    if _heals(state, step, event):
        return _heal(state, step, now)
    if state.status == "running" and step.status == "pending" and step.operation == event.operation:
        outcome: StepStatus = "done" if isinstance(event, Provisioned) else "failed"
    elif (
        state.status == "compensating"
        and step.status == "compensating"
        and COMPENSATIONS[step.operation] == event.operation
    ):
        outcome = "compensated" if isinstance(event, Provisioned) else "failed"
    else:
        return state, []
    error = event.reason if isinstance(event, ProvisionFailed) else None
    retryable = isinstance(event, ProvisionFailed) and event.retryable
    if outcome == "failed" and state.status == "compensating":
        error = f"compensation failed: {error}"
    finished = replace(step, status=outcome, error=error, retryable=retryable, finished_at=now)
    return _settle(_with_step(state, finished), now)


def _heals(state: SagaState, step: Step, event: SagaEvent) -> bool:
    """A late success for a failed step of a failed saga that rolled nothing back."""
    return (
        isinstance(event, Provisioned)
        and state.status == "failed"
        and step.status == "failed"
        and step.operation == event.operation
        and not state.targets("compensated")
    )


def _heal(state: SagaState, step: Step, now: datetime) -> tuple[SagaState, list[Command]]:
    state = _with_step(state, replace(step, status="done", error=None, finished_at=now))
    if state.targets("failed"):
        return _move(state, "failed"), []
    return _complete(state, now)


def step_id(
    saga_id: str, target: str, *, compensation: bool = False, group: str | None = None
) -> str:
    """Stable id of a saga's step in a target, so a retried step is recognisable.

    A membership step adds a digest of its group: group names are free text (spaces, DNs),
    step ids are identifiers.
    """
    base = f"{saga_id}:{target}"
    if group is not None:
        base = f"{base}:{_digest(group)}"
    return f"{base}:undo" if compensation else base


def _digest(group: str) -> str:
    return hashlib.sha256(group.encode()).hexdigest()[:16]


def _settle(state: SagaState, now: datetime) -> tuple[SagaState, list[Command]]:
    """Move on once no step is in flight any more."""
    if state.status == "compensating":
        if state.targets("compensating"):
            return state, []
        rolled_back = ", ".join(state.targets("compensated")) or "nothing"
        return _fail(state, f"{_reasons(state)}; rolled back: {rolled_back}")
    if state.targets("pending"):
        return state, []
    failed = state.targets("failed")
    if not failed:
        return _complete(state, now)
    undo = [s for s in state.steps if s.status == "done" and COMPENSATIONS[s.operation] is not None]
    if state.on_failure == "rollback" and undo:
        for s in undo:
            state = _with_step(state, replace(s, status="compensating", finished_at=None))
        commands: list[Command] = [
            ProvisionAccount(s.target, step_id(state.saga_id, s.target, compensation=True), op)
            for s in undo
            if (op := COMPENSATIONS[s.operation]) is not None
        ]
        return _move(state, "compensating"), commands
    return _fail(state, f"provisioning failed in {_reasons(state)}")


def _complete(state: SagaState, now: datetime) -> tuple[SagaState, list[Command]]:
    duration = max(0, int((now - state.started_at).total_seconds() * 1000))
    return _move(state, "completed"), [CompleteSaga(duration)]


def _fail(state: SagaState, reason: str) -> tuple[SagaState, list[Command]]:
    """End a round failed; the saga schedules its next round when it retries by itself."""
    state = replace(_move(state, "failed"), failures=state.failures + 1)
    commands: list[Command] = [FailSaga(reason, state.targets("failed"))]
    if retries_now(state):
        commands.append(ScheduleRetry(state.failures))
    return state, commands


def retries_now(state: SagaState) -> bool:
    """Whether a failed saga retries by itself: a leaver always; others after transient
    failures only, for `transient_rounds` rounds."""
    if state.retries_itself:
        return True
    failed = [s for s in state.steps if s.status == "failed"]
    transient = bool(failed) and all(s.retryable for s in failed)
    return transient and state.failures <= state.transient_rounds


def round_of(state: SagaState) -> int:
    """Which round a saga is in: a step timeout is set for one round."""
    return state.failures


def _time_out(state: SagaState, event: TimedOut, now: datetime) -> tuple[SagaState, list[Command]]:
    """Steps still waiting when their round's timer fires fail, and the saga moves on."""
    if event.round != round_of(state) or event.status != state.status:
        return state, []
    waiting: StepStatus = "compensating" if state.status == "compensating" else "pending"
    late = [s for s in state.steps if s.status == waiting]
    if state.status not in ("running", "compensating") or not late:
        return state, []
    for s in late:
        error = f"no answer within {event.after_s:.0f} s"
        if waiting == "compensating":
            error = f"compensation failed: {error}"
        late_step = replace(s, status="failed", error=error, retryable=True, finished_at=now)
        state = _with_step(state, late_step)
    return _settle(state, now)


def _retry(state: SagaState, identity: IdentityNow) -> tuple[SagaState, list[Command]]:
    """Run every step that did not reach its goal again, if the identity still wants it;
    only a failed saga can retry. Nothing left to run: the saga is superseded, cancelled."""
    if state.status != "failed":
        return state, []
    again = [s for s in state.steps if s.status in ("failed", "compensated")]
    wanted = [s for s in again if allows(identity, s)]
    if not wanted:
        reason = f"superseded: the identity is {_describe(identity)}"
        return _cancel(state, CancelRequested(reason))
    state = _move(state, "running")
    for s in again:
        if s not in wanted:
            dropped = f"not retried: the identity is {_describe(identity)}"
            state = _with_step(state, replace(s, status="dropped", error=dropped))
            continue
        state = _with_step(
            state,
            replace(
                s,
                status="pending",
                attempts=s.attempts + 1,
                error=None,
                retryable=False,
                finished_at=None,
            ),
        )
    return state, [_provision(state.saga_id, s) for s in state.steps if s.status == "pending"]


def _describe(identity: IdentityNow) -> str:
    return f"{identity.status} and locked" if identity.locked else identity.status


def holds_identity(state: SagaState) -> bool:
    """Whether the saga keeps its identity's other sagas waiting: while it runs or
    compensates, and while it is failed but will retry by itself."""
    if state.status in ("running", "compensating"):
        return True
    return state.status == "failed" and retries_now(state)


def _cancel(state: SagaState, event: CancelRequested) -> tuple[SagaState, list[Command]]:
    if "cancelled" not in TRANSITIONS[state.status]:
        return state, []
    unfinished = state.targets("pending", "failed", "compensating")
    return _move(state, "cancelled"), [FailSaga(f"cancelled: {event.reason}", unfinished)]


def _provision(saga_id: str, step: Step) -> ProvisionAccount:
    return ProvisionAccount(
        step.target,
        step_id(saga_id, step.target, group=step.group),
        step.operation,
        group=step.group,
    )


def _reasons(state: SagaState) -> str:
    return "; ".join(f"{s.label}: {s.error}" for s in state.steps if s.status == "failed")


def _with_step(state: SagaState, step: Step) -> SagaState:
    steps = tuple(step if s.key == step.key else s for s in state.steps)
    return replace(state, steps=steps)


def _move(state: SagaState, status: Status) -> SagaState:
    if status not in TRANSITIONS[state.status]:
        raise InvalidTransition(f"{state.saga_type} saga cannot go from {state.status} to {status}")
    return replace(state, status=status)
