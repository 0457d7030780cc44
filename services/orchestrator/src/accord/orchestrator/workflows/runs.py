"""The run state machine: how a workflow run advances, waits, retries and is cancelled (pure).

`advance(run, definition, event, now, conditions, context)` turns a run and one event into
the next run and the commands the engine's effect layer must carry out. Nothing here does
I/O or reads a clock: the caller passes the time, the workflow definition of the run's
version and a condition evaluator, so every rule is a table test and the engine (store,
effect layer, wake-up poller) stays a thin loop around this function.

The rules
=========

- Tasks run strictly in order, one at a time. ``Begin`` (the run got the identity's active
  slot) starts the first task whose ``when`` holds.
- ``when`` is evaluated by ``conditions(text, context)`` with ``vars`` (the outputs of the
  tasks completed so far, by task id) and ``now`` set by this module. A task that was
  skipped, or failed with ``continue_on_error``, leaves no ``vars.<task id>``: the condition
  is evaluated with what exists, and an evaluation error (the evaluator raising, as reading
  an absent key does in CEL) counts as false, so the task is skipped. A completed task
  always has ``vars.<task id>`` (possibly empty), so ``has(vars.x)`` tells it completed.
- A task's effect (provisioning, groups, entitlements, MFA, access pass, sessions, mail,
  extension call) is requested with a command and the task is ``running`` until the engine
  answers ``TaskSucceeded`` or ``TaskFailed``. Success merges the outputs into
  ``vars[task_id]``.
- Failure: a retryable failure with attempts left (``retry.max_attempts``, counting the
  first; no ``retry`` means one attempt) waits for a ``retry`` wake-up after a backoff of
  ``backoff * 2 ** (attempt - 1)``, capped at :data:`MAX_BACKOFF` (one hour) unless the
  configured backoff is itself longer (then the backoff), and never earlier than a
  ``retry_after_s`` the failure carried (itself capped at :data:`MAX_RETRY_AFTER`, a day).
  Otherwise the task fails: with ``continue_on_error`` the run goes on, else the run fails
  and its remaining tasks are cancelled.
- ``wait``: a duration from now, or until a date attribute plus an offset in the identity's
  zone (:func:`timing.fire_time` with :func:`timing.zone_for` over ``context["identity"]``).
  A time already past completes the wait at once; an absent or unreadable date fails the
  task (not retryable; ``continue_on_error`` applies).
- ``approval``: ``AskApproval`` and an ``approval_timeout`` wake-up. Approved: completed
  (``vars.<id>`` = approved, decision, by). Rejected: ``on_reject: continue`` completes the
  task (approved false), ``stop`` fails the task and the run (``continue_on_error`` does not
  override an explicit ``on_reject``). Timeout: ``reject`` is a rejection with decision
  ``timed_out``; ``continue`` completes with decision ``timed_out``; ``escalate`` asks
  ``escalate_to`` once more for the same timeout, and a second timeout is a rejection.
  An escalation is a new attempt of the task (a new ask, so a new idempotency key; it
  counts against ``retry.max_attempts`` too). ``TaskSucceeded`` for an approval only
  acknowledges that the ask was made (once); ``TaskFailed`` before that acknowledgement
  means the ask could not be made: retried (at the same stage) or failed as any task.
- ``call_extension`` with ``wait_for_callback``: the call and a ``callback_timeout``
  wake-up are requested together and the task waits at once, so a callback that comes
  before the engine reported the call's answer is not lost. ``TaskSucceeded`` for the call
  is an acknowledgement (its outputs kept); ``TaskFailed`` fails or retries the call;
  ``CallbackReceived`` completes the task with the callback's outputs over the call's.
  Timeout: failed, or completed without outputs if the definition has ``on_timeout:
  continue`` (read with ``getattr``: the current definition has no such field, so fail).
- ``request_entitlement``: ``RequestEntitlement`` and, with a ``timeout``, an
  ``access_timeout`` wake-up; the task waits for authz's answer (kind
  ``access_decision``) at once, as a callback task does. ``TaskSucceeded`` acknowledges
  that the request was sent; ``TaskFailed`` before that fails or retries it.
  ``AccessDecision`` of the current attempt: granted completes the task with its outputs
  (the grant), refused fails it (not retryable; ``continue_on_error`` applies). Timeout:
  failed. Without a timeout the task waits as long as authz takes.
- Wake-ups: a ``Woken`` is taken only by a task waiting for that purpose and only once its
  time has come (``now >= waiting_for["until"]``): a duplicate or an early wake-up of an
  earlier stage is ignored.
- ``Cancel(reason)``: pending tasks are cancelled; a running or waiting task is cancelled
  with ``CancelWakeups``; the run is cancelled with the reason. A leaver run ignores a
  cancel whose reason is :data:`SUPERSEDED` (another trigger replacing it): only an
  operator's cancel stops a leaver, since a leaver must end with the accounts removed.
- Events that do not apply (a result for a task that is not running, a duplicate result, a
  result of an earlier attempt, a wake-up for a task no longer waiting, a callback after
  the timeout, anything after the run ended) leave the run unchanged with no commands;
  ``Step.ignored`` says why, for the log.

Commands carry ``run_id``, ``task_id`` and ``attempt``; ``idempotency_key`` is
``run_id:task_id:attempt`` (``-`` for the run itself). Each attempt requests exactly one
effect, so one key never names two different effects; an effect layer may execute a
command twice after a crash and the target recognises the repetition by the key. The
engine should give results back with the command's ``attempt`` so a late answer of an
earlier attempt is not taken for the current one's.

``must_cancel_for`` says when a new trigger cancels an identity's active run: a leaver
cancels an active joiner, mover or custom run; anything else queues behind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from accord.orchestrator.workflows import definitions as d
from accord.orchestrator.workflows import timing
from accord.orchestrator.workflows.durations import Duration
from accord.orchestrator.workflows.run_model import (
    Run,
    RunStatus,
    TaskRun,
    TaskStatus,
    Wakeup,
    WakeupPurpose,
)

__all__ = [
    "MAX_BACKOFF",
    "MAX_RETRY_AFTER",
    "SUPERSEDED",
    "AccessDecision",
    "Announce",
    "ApprovalDecision",
    "AskApproval",
    "AwaitAccountSaga",
    "Begin",
    "CallExtension",
    "CallbackReceived",
    "Cancel",
    "CancelWakeups",
    "ChangeGroup",
    "Command",
    "Conditions",
    "Event",
    "IssueAccessPass",
    "Provision",
    "RequestEntitlement",
    "RequireMfa",
    "RevokeEntitlements",
    "RevokeSessions",
    "ScheduleWakeup",
    "SendMail",
    "Step",
    "TaskFailed",
    "TaskSucceeded",
    "Woken",
    "advance",
    "backoff_delay",
    "must_cancel_for",
    "new_run",
]

#: The reason of a cancel issued because another trigger replaced the run; a leaver ignores it.
SUPERSEDED = "superseded"
#: The longest doubling backoff between retries, unless the configured backoff is longer.
MAX_BACKOFF = timedelta(hours=1)
#: The longest Retry-After a failure may impose.
MAX_RETRY_AFTER = timedelta(days=1)

#: ``conditions(expression_text, context) -> bool``; raising counts as false.
Conditions = Callable[[str, Mapping[str, Any]], bool]


# Events --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Begin:
    """The run got the identity's active slot: start its first task."""


@dataclass(frozen=True)
class TaskSucceeded:
    """A task's requested effect succeeded. ``attempt``: the command's, when known."""

    task_id: str
    outputs: Mapping[str, Any] = field(default_factory=dict)
    attempt: int | None = None


@dataclass(frozen=True)
class TaskFailed:
    """A task's requested effect failed; ``retryable`` for a transient failure."""

    task_id: str
    reason: str
    retryable: bool
    retry_after_s: float | None = None
    attempt: int | None = None


@dataclass(frozen=True)
class Woken:
    """A wake-up of the task came due."""

    task_id: str
    purpose: WakeupPurpose


@dataclass(frozen=True)
class CallbackReceived:
    """A custom extension called back for the task."""

    task_id: str
    outputs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ApprovalDecision:
    """A human decided the task's approval."""

    task_id: str
    approved: bool
    by: str


@dataclass(frozen=True)
class AccessDecision:
    """authz's final answer on the access request of the task's ``attempt``: granted (the
    outputs say which grant) or refused (``reason`` says by whom)."""

    task_id: str
    attempt: int
    granted: bool
    outputs: Mapping[str, Any] = field(default_factory=dict)
    reason: str = ""


@dataclass(frozen=True)
class Cancel:
    """Stop the run: an operator's cancel, or a trigger that no longer holds."""

    reason: str


Event = (
    Begin
    | TaskSucceeded
    | TaskFailed
    | Woken
    | CallbackReceived
    | ApprovalDecision
    | AccessDecision
    | Cancel
)


# Commands ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Command:
    """Something the engine's effect layer does for a run; ``task_id`` None: the run itself."""

    run_id: str
    task_id: str | None
    attempt: int

    @property
    def idempotency_key(self) -> str:
        """``run_id:task_id:attempt``: equal for a repetition of the same request."""
        return f"{self.run_id}:{self.task_id or '-'}:{self.attempt}"


@dataclass(frozen=True, kw_only=True)
class Effect(Command):
    """A command that changes the world outside the run; answered by a task result."""


@dataclass(frozen=True, kw_only=True)
class Provision(Effect):
    operation: Literal["create", "update", "enable", "disable", "delete"]
    targets: Literal["all"] | tuple[str, ...]
    disabled: bool = False


@dataclass(frozen=True, kw_only=True)
class AwaitAccountSaga(Effect):
    """An account_saga task: wait for the saga the run's triggering event started (the
    identity handler starts it, in the same transaction, before the run)."""

    saga: str


@dataclass(frozen=True, kw_only=True)
class ChangeGroup(Effect):
    action: Literal["add", "remove"]
    target: str
    group: str


@dataclass(frozen=True, kw_only=True)
class RequestEntitlement(Effect):
    entitlement: str
    justification: str


@dataclass(frozen=True, kw_only=True)
class RevokeEntitlements(Effect):
    entitlements: Literal["all"] | tuple[str, ...]
    unless_allowed: bool = False


@dataclass(frozen=True, kw_only=True)
class AskApproval(Effect):
    approvers: tuple[str, ...]
    reason: str | None
    timeout: timedelta
    escalation: bool = False


@dataclass(frozen=True, kw_only=True)
class RequireMfa(Effect):
    pass


@dataclass(frozen=True, kw_only=True)
class IssueAccessPass(Effect):
    lifetime: timedelta
    one_time: bool
    deliver_to: Literal["manager", "identity"]


@dataclass(frozen=True, kw_only=True)
class RevokeSessions(Effect):
    pass


@dataclass(frozen=True, kw_only=True)
class SendMail(Effect):
    to: tuple[str, ...]
    template: str | None = None
    subject: str | None = None
    body: str | None = None


@dataclass(frozen=True, kw_only=True)
class CallExtension(Effect):
    url: str
    secret_env: str
    wait_for_callback: bool
    timeout: timedelta | None


@dataclass(frozen=True, kw_only=True)
class ScheduleWakeup(Command):
    """Wake the task at ``wakeup.fire_at`` (upsert by run, task and purpose)."""

    wakeup: Wakeup


@dataclass(frozen=True, kw_only=True)
class CancelWakeups(Command):
    """Drop the task's scheduled wake-ups."""


AnnounceKind = Literal[
    "run_started",
    "run_completed",
    "run_failed",
    "run_cancelled",
    "task_started",
    "task_completed",
    "task_failed",
    "task_skipped",
    "task_waiting",
]


@dataclass(frozen=True, kw_only=True)
class Announce(Command):
    """An event for the audit log and the dashboard."""

    kind: AnnounceKind
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """The outcome of one event: the next run, the commands in order, or why it was ignored."""

    run: Run
    commands: tuple[Command, ...] = ()
    ignored: str | None = None


# Public functions ----------------------------------------------------------------------


def new_run(
    definition: d.Workflow,
    version: str,
    identity_id: str,
    trigger: Mapping[str, Any],
    run_id: str,
    now: datetime,
) -> Run:
    """A queued run of ``definition`` with every task pending, in the definition's order."""
    return Run(
        run_id=run_id,
        workflow_id=definition.id,
        version=version,
        identity_id=identity_id,
        category=definition.category,
        trigger=dict(trigger),
        status=RunStatus.QUEUED,
        created_at=now,
        updated_at=now,
        tasks=tuple(
            TaskRun(task_id=task.id, position=index, kind=task.task, status=TaskStatus.PENDING)
            for index, task in enumerate(definition.tasks)
        ),
    )


def must_cancel_for(new_category: str, active_run: Run) -> bool:
    """Whether a new trigger of ``new_category`` cancels the identity's ``active_run``.

    A leaver cancels an unfinished joiner, mover or custom run (a leaver while a joiner
    waits); everything else queues behind the active run, a joiner behind a leaver too.
    """
    if active_run.status.terminal:
        return False
    return new_category == "leaver" and active_run.category != "leaver"


def backoff_delay(retry: d.Retry, attempt: int, retry_after_s: float | None = None) -> timedelta:
    """How long to wait before the attempt after ``attempt`` (1-based): doubling, capped."""
    base = retry.backoff.as_timedelta()
    cap = max(MAX_BACKOFF, base)
    delay = min(base * (1 << min(max(attempt - 1, 0), 30)), cap)
    if retry_after_s is not None and retry_after_s > 0:
        delay = max(delay, min(timedelta(seconds=retry_after_s), MAX_RETRY_AFTER))
    return delay


def advance(
    run: Run,
    definition: d.Workflow,
    event: Event,
    now: datetime,
    conditions: Conditions,
    context: Mapping[str, Any],
) -> Step:
    """Apply ``event`` to ``run``: the next run and what to do (see the module docstring)."""
    if run.status.terminal:
        return Step(run, ignored=f"the run is {run.status}")
    if definition.id != run.workflow_id or len(definition.tasks) != len(run.tasks):
        raise ValueError("the definition is not the one this run was started with")
    machine = _Machine(run, definition, now, conditions, context)
    ignored = machine.apply(event)
    if ignored is not None:
        return Step(run, ignored=ignored)
    return Step(machine.result(), tuple(machine.commands))


# The machine ---------------------------------------------------------------------------

_WAIT_KIND: Mapping[str, str] = {
    "retry": "retry",
    "wait": "timer",
    "approval_timeout": "approval",
    "callback_timeout": "callback",
    "access_timeout": "access_decision",
}
#: The waits whose task's effect is acknowledged by a ``TaskSucceeded`` (the ask, the call,
#: the request was made) before the answer that ends them comes.
_ACKNOWLEDGED: tuple[str, ...] = ("approval", "callback", "access_decision")


class _Machine:
    """One step's working state: the tasks and vars being changed, the commands so far."""

    def __init__(
        self,
        run: Run,
        definition: d.Workflow,
        now: datetime,
        conditions: Conditions,
        context: Mapping[str, Any],
    ) -> None:
        self.run = run
        self.definition = definition
        self.now = now
        self.conditions = conditions
        self.context = context
        self.tasks = list(run.tasks)
        self.vars: dict[str, Any] = {key: value for key, value in run.vars.items()}
        self.status = run.status
        self.cancel_reason = run.cancel_reason
        self.commands: list[Command] = []

    # Dispatch ---------------------------------------------------------------------------

    def apply(self, event: Event) -> str | None:
        """Apply the event; a reason when it does not apply."""
        if isinstance(event, Cancel):
            return self._cancel(event)
        if isinstance(event, Begin):
            return self._begin()
        if self.status is RunStatus.QUEUED:
            return "the run has not begun"
        index = self._index(event.task_id)
        if index is None:
            return f"the run has no task {event.task_id!r}"
        task = self.tasks[index]
        if task.status.terminal:
            return f"task {task.task_id} is {task.status}"
        if task.status is TaskStatus.PENDING:
            return f"task {task.task_id} has not started"
        if isinstance(event, TaskSucceeded):
            return self._succeeded(index, event)
        if isinstance(event, TaskFailed):
            return self._failed_event(index, event)
        if isinstance(event, Woken):
            return self._woken(index, event)
        if isinstance(event, CallbackReceived):
            return self._callback(index, event)
        if isinstance(event, AccessDecision):
            return self._access_decided(index, event)
        return self._decided(index, event)

    def result(self) -> Run:
        return replace(
            self.run,
            status=self.status,
            updated_at=self.now,
            vars=self.vars,
            tasks=tuple(self.tasks),
            cancel_reason=self.cancel_reason,
        )

    # Run-level events -------------------------------------------------------------------

    def _begin(self) -> str | None:
        if any(task.status is not TaskStatus.PENDING for task in self.tasks):
            return "the run has already begun"
        self.status = RunStatus.RUNNING
        self._announce(None, 0, "run_started", {"workflow_id": self.run.workflow_id})
        self._next(0)
        return None

    def _cancel(self, event: Cancel) -> str | None:
        if self.run.category == "leaver" and event.reason == SUPERSEDED:
            return "a leaver run is not superseded: only an operator's cancel stops it"
        for index, task in enumerate(self.tasks):
            if task.status is TaskStatus.PENDING:
                self.tasks[index] = replace(task, status=TaskStatus.CANCELLED)
            elif task.status in (TaskStatus.RUNNING, TaskStatus.WAITING):
                self.tasks[index] = replace(
                    task,
                    status=TaskStatus.CANCELLED,
                    finished_at=self.now,
                    waiting_for=None,
                    error=f"cancelled: {event.reason}",
                )
                self.commands.append(
                    CancelWakeups(
                        run_id=self.run.run_id, task_id=task.task_id, attempt=task.attempts
                    )
                )
        self.status = RunStatus.CANCELLED
        self.cancel_reason = event.reason
        self._announce(None, 0, "run_cancelled", {"reason": event.reason})
        return None

    # Task results -----------------------------------------------------------------------

    def _succeeded(self, index: int, event: TaskSucceeded) -> str | None:
        task = self.tasks[index]
        if event.attempt is not None and event.attempt != task.attempts:
            return f"a result of attempt {event.attempt}; task {task.task_id} is at {task.attempts}"
        if task.status is TaskStatus.RUNNING:
            self._complete(index, event.outputs)
            self._next(index + 1)
            return None
        waiting = task.waiting_for or {}
        if waiting.get("kind") in _ACKNOWLEDGED and not waiting.get("acknowledged"):
            # The ask or the call was made; the decision or the callback is still to come.
            self.tasks[index] = replace(
                task,
                waiting_for={**waiting, "acknowledged": True},
                outputs={**task.outputs, **event.outputs},
            )
            return None
        return f"task {task.task_id} is not running (waiting for {waiting.get('kind')})"

    def _failed_event(self, index: int, event: TaskFailed) -> str | None:
        task = self.tasks[index]
        if event.attempt is not None and event.attempt != task.attempts:
            return f"a result of attempt {event.attempt}; task {task.task_id} is at {task.attempts}"
        waiting = task.waiting_for or {}
        if task.status is TaskStatus.WAITING and (
            waiting.get("kind") not in _ACKNOWLEDGED or waiting.get("acknowledged")
        ):
            return f"task {task.task_id} is not running (waiting for {waiting.get('kind')})"
        if task.status is TaskStatus.WAITING:
            self._cancel_wakeups(task)
        self._fail(index, event.reason, event.retryable, event.retry_after_s, waiting.get("stage"))
        return None

    def _woken(self, index: int, event: Woken) -> str | None:
        task = self.tasks[index]
        waiting = task.waiting_for or {}
        if (
            task.status is not TaskStatus.WAITING
            or waiting.get("kind") != _WAIT_KIND[event.purpose]
        ):
            return f"task {task.task_id} is not waiting for a {event.purpose} wake-up"
        until = waiting.get("until")
        if isinstance(until, str) and self.now < datetime.fromisoformat(until):
            return f"a {event.purpose} wake-up before its time ({until})"
        if event.purpose == "retry":
            if not self._start(index, stage=waiting.get("stage")):
                self._next(index + 1)
            return None
        if event.purpose == "wait":
            self._complete(index, {})
            self._next(index + 1)
            return None
        if event.purpose == "callback_timeout":
            self._callback_timeout(index)
            return None
        if event.purpose == "access_timeout":
            self._fail(index, "no access decision before the timeout", retryable=False)
            return None
        self._approval_timeout(index)
        return None

    def _callback(self, index: int, event: CallbackReceived) -> str | None:
        task = self.tasks[index]
        waiting = task.waiting_for or {}
        if task.status is not TaskStatus.WAITING or waiting.get("kind") != "callback":
            return f"task {task.task_id} is not waiting for a callback"
        self._cancel_wakeups(task)
        self._complete(index, {**task.outputs, **event.outputs})
        self._next(index + 1)
        return None

    def _access_decided(self, index: int, event: AccessDecision) -> str | None:
        task = self.tasks[index]
        waiting = task.waiting_for or {}
        if task.status is not TaskStatus.WAITING or waiting.get("kind") != "access_decision":
            return f"task {task.task_id} is not waiting for an access decision"
        if event.attempt != task.attempts:
            return (
                f"a decision on the request of attempt {event.attempt}; "
                f"task {task.task_id} is at {task.attempts}"
            )
        self._cancel_wakeups(task)
        outputs = {**task.outputs, **event.outputs}
        if event.granted:
            self._complete(index, outputs)
            self._next(index + 1)
        else:
            self.tasks[index] = replace(task, outputs=outputs)
            self._fail(index, event.reason or "access refused", retryable=False)
        return None

    def _decided(self, index: int, event: ApprovalDecision) -> str | None:
        task = self.tasks[index]
        waiting = task.waiting_for or {}
        if task.status is not TaskStatus.WAITING or waiting.get("kind") != "approval":
            return f"task {task.task_id} is not waiting for an approval"
        self._cancel_wakeups(task)
        decision = "approved" if event.approved else "rejected"
        outputs = {"approved": event.approved, "decision": decision, "by": event.by}
        if event.approved:
            self._complete(index, outputs)
            self._next(index + 1)
        else:
            self._rejected(index, outputs, f"rejected by {event.by}")
        return None

    # Timeouts ---------------------------------------------------------------------------

    def _callback_timeout(self, index: int) -> None:
        spec = self._spec(index)
        if getattr(spec, "on_timeout", "fail") == "continue":
            self._complete(index, {})
            self._next(index + 1)
            return
        self._fail(index, "no callback before the deadline", retryable=False)

    def _approval_timeout(self, index: int) -> None:
        spec = self._spec(index)
        assert isinstance(spec, d.Approval)
        task = self.tasks[index]
        stage = (task.waiting_for or {}).get("stage", 1)
        outputs = {"approved": False, "decision": "timed_out", "by": None}
        if spec.on_timeout == "continue":
            self._complete(index, outputs)
            self._next(index + 1)
        elif spec.on_timeout == "escalate" and stage == 1:
            self._start(index, stage=2)
        else:
            self._rejected(index, outputs, "no decision before the timeout")

    def _rejected(self, index: int, outputs: Mapping[str, Any], reason: str) -> None:
        spec = self._spec(index)
        assert isinstance(spec, d.Approval)
        if spec.on_reject == "continue":
            self._complete(index, outputs)
            self._next(index + 1)
            return
        task = self.tasks[index]
        self.tasks[index] = replace(task, outputs=dict(outputs))
        self._fail(index, reason, retryable=False, final=True)

    # Moving on --------------------------------------------------------------------------

    def _next(self, start: int) -> None:
        """Start the first task from ``start`` whose condition holds; else the run ends."""
        for index in range(start, len(self.tasks)):
            spec = self._spec(index)
            if spec.when is not None and not self._holds(spec.when):
                self.tasks[index] = replace(
                    self.tasks[index], status=TaskStatus.SKIPPED, finished_at=self.now
                )
                self._announce(spec.id, 0, "task_skipped", {"when": spec.when})
                continue
            if self._start(index):
                return
        self.status = RunStatus.COMPLETED
        self._announce(None, 0, "run_completed", {})

    def _holds(self, expression: str) -> bool:
        context = {**self.context, "vars": _plain(self.vars), "now": self.now}
        try:
            return bool(self.conditions(expression, context))
        except Exception:  # an evaluation error counts as false (module docstring)
            return False

    def _start(self, index: int, stage: int | None = None) -> bool:
        """Start an attempt of the task; False when it finished at once (so go on)."""
        spec = self._spec(index)
        task = self.tasks[index]
        attempt = task.attempts + 1
        task = replace(
            task,
            status=TaskStatus.RUNNING,
            attempts=attempt,
            started_at=task.started_at or self.now,
            waiting_for=None,
        )
        self.tasks[index] = task
        self._announce(spec.id, attempt, "task_started", {"kind": spec.task, "attempt": attempt})
        keys = {"run_id": self.run.run_id, "task_id": spec.id, "attempt": attempt}
        if isinstance(spec, d.Wait):
            return self._start_wait(index, spec, attempt)
        if isinstance(spec, d.Approval):
            stage = stage or 1
            approvers = spec.escalate_to if stage == 2 else spec.approvers
            timeout = spec.timeout.as_timedelta()
            self.commands.append(
                AskApproval(
                    **keys,
                    approvers=_names(approvers),
                    reason=spec.reason,
                    timeout=timeout,
                    escalation=stage == 2,
                )
            )
            self._wait(index, "approval_timeout", self.now + timeout, {"stage": stage})
            return True
        if isinstance(spec, d.CallExtension):
            deadline = spec.timeout.as_timedelta() if spec.timeout is not None else None
            self.commands.append(
                CallExtension(
                    **keys,
                    url=spec.url,
                    secret_env=spec.secret_env,
                    wait_for_callback=spec.wait_for_callback,
                    timeout=deadline,
                )
            )
            if spec.wait_for_callback and deadline is not None:
                self._wait(index, "callback_timeout", self.now + deadline, {})
            else:
                self.status = RunStatus.RUNNING
            return True
        if isinstance(spec, d.RequestEntitlement):
            self.commands.append(_effect(spec, keys))
            limit = spec.timeout.as_timedelta() if spec.timeout is not None else None
            self._wait(index, "access_timeout", self.now + limit if limit else None, {})
            return True
        self.commands.append(_effect(spec, keys))
        self.status = RunStatus.RUNNING
        return True

    def _start_wait(self, index: int, spec: d.Wait, attempt: int) -> bool:
        try:
            fire_at = self._wait_until(spec)
        except (timing.TimingError, KeyError, TypeError, ValueError) as error:
            # _fail went on (continue_on_error) or ended the run: nothing more to start here.
            self._fail(index, f"cannot tell when the wait ends: {error}", retryable=False)
            return True
        if fire_at <= self.now:
            self._complete(index, {})
            return False
        self._wait(index, "wait", fire_at, {})
        return True

    def _wait_until(self, spec: d.Wait) -> datetime:
        if spec.duration is not None:
            return self.now + spec.duration.as_timedelta()
        identity = self.context.get("identity") or {}
        assert spec.until is not None
        if spec.until.startswith("attributes."):
            value = (identity.get("attributes") or {})[spec.until.removeprefix("attributes.")]
        else:
            value = identity[spec.until]
        zone = timing.zone_for(identity, self.definition.time_zone)
        return timing.fire_time(value, spec.offset or Duration(), zone)

    def _wait(
        self,
        index: int,
        purpose: WakeupPurpose,
        fire_at: datetime | None,
        extra: Mapping[str, Any],
    ) -> None:
        """The task waits; until ``fire_at`` (a wake-up of ``purpose``), or, None, until
        the answer it waits for comes, however long that takes."""
        task = self.tasks[index]
        waiting: dict[str, Any] = {"kind": _WAIT_KIND[purpose], **extra}
        if fire_at is not None:
            waiting["until"] = fire_at.isoformat()
        self.tasks[index] = replace(task, status=TaskStatus.WAITING, waiting_for=waiting)
        self.status = RunStatus.WAITING
        if fire_at is not None:
            wakeup = Wakeup(self.run.run_id, task.task_id, purpose, fire_at)
            self.commands.append(
                ScheduleWakeup(
                    run_id=self.run.run_id,
                    task_id=task.task_id,
                    attempt=task.attempts,
                    wakeup=wakeup,
                )
            )
        self._announce(task.task_id, task.attempts, "task_waiting", waiting)

    def _complete(self, index: int, outputs: Mapping[str, Any]) -> None:
        task = self.tasks[index]
        merged = dict(outputs)
        self.tasks[index] = replace(
            task,
            status=TaskStatus.COMPLETED,
            finished_at=self.now,
            waiting_for=None,
            outputs=merged,
            error=None,
        )
        self.vars[task.task_id] = {**(self.vars.get(task.task_id) or {}), **merged}
        self.status = RunStatus.RUNNING
        self._announce(task.task_id, task.attempts, "task_completed", {"outputs": merged})

    def _fail(
        self,
        index: int,
        reason: str,
        retryable: bool,
        retry_after_s: float | None = None,
        stage: int | None = None,
        final: bool = False,
    ) -> None:
        """A failed attempt: retry after a backoff, go on, or fail the run."""
        spec = self._spec(index)
        task = self.tasks[index]
        if retryable and spec.retry is not None and task.attempts < spec.retry.max_attempts:
            fire_at = self.now + backoff_delay(spec.retry, task.attempts, retry_after_s)
            self.tasks[index] = replace(task, error=reason)
            extra: dict[str, Any] = {"reason": reason}
            if stage is not None:
                extra["stage"] = stage
            self._wait(index, "retry", fire_at, extra)
            return
        self.tasks[index] = replace(
            task, status=TaskStatus.FAILED, finished_at=self.now, waiting_for=None, error=reason
        )
        self._announce(
            task.task_id,
            task.attempts,
            "task_failed",
            {"reason": reason, "attempts": task.attempts},
        )
        if spec.continue_on_error and not final:
            self.status = RunStatus.RUNNING
            self._next(index + 1)
            return
        for later in range(index + 1, len(self.tasks)):
            if self.tasks[later].status is TaskStatus.PENDING:
                self.tasks[later] = replace(self.tasks[later], status=TaskStatus.CANCELLED)
        self.status = RunStatus.FAILED
        self._announce(None, 0, "run_failed", {"task_id": task.task_id, "reason": reason})

    # Helpers ----------------------------------------------------------------------------

    def _cancel_wakeups(self, task: TaskRun) -> None:
        self.commands.append(
            CancelWakeups(run_id=self.run.run_id, task_id=task.task_id, attempt=task.attempts)
        )

    def _announce(
        self, task_id: str | None, attempt: int, kind: AnnounceKind, details: Mapping[str, Any]
    ) -> None:
        self.commands.append(
            Announce(
                run_id=self.run.run_id,
                task_id=task_id,
                attempt=attempt,
                kind=kind,
                details=dict(details),
            )
        )

    def _index(self, task_id: str) -> int | None:
        for index, task in enumerate(self.tasks):
            if task.task_id == task_id:
                return index
        return None

    def _spec(self, index: int) -> Any:
        return self.definition.tasks[index]


def _names(value: str | tuple[str, ...] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _plain(value: Any) -> Any:
    """Mappings and sequences as dicts and lists (what the condition evaluator expects)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


_PROVISION: Mapping[type, Literal["create", "update", "enable", "disable", "delete"]] = {
    d.CreateAccounts: "create",
    d.UpdateAccounts: "update",
    d.EnableAccounts: "enable",
    d.DisableAccounts: "disable",
    d.DeleteAccounts: "delete",
}


def _effect(spec: Any, keys: Mapping[str, Any]) -> Effect:
    """The one effect command of a task kind that only acts (no waiting of its own)."""
    operation = _PROVISION.get(type(spec))
    if operation is not None:
        return Provision(
            **keys,
            operation=operation,
            targets=spec.targets,
            disabled=getattr(spec, "disabled", False),
        )
    if isinstance(spec, d.AccountSaga):
        return AwaitAccountSaga(**keys, saga=spec.saga)
    if isinstance(spec, d.AddGroup | d.RemoveGroup):
        action: Literal["add", "remove"] = "add" if isinstance(spec, d.AddGroup) else "remove"
        return ChangeGroup(**keys, action=action, target=spec.target, group=spec.group)
    if isinstance(spec, d.RequestEntitlement):
        return RequestEntitlement(
            **keys, entitlement=spec.entitlement, justification=spec.justification
        )
    if isinstance(spec, d.RevokeEntitlement):
        return RevokeEntitlements(
            **keys, entitlements=spec.entitlements, unless_allowed=spec.unless_allowed
        )
    if isinstance(spec, d.RequireMfaEnrolment):
        return RequireMfa(**keys)
    if isinstance(spec, d.TemporaryAccessPass):
        return IssueAccessPass(
            **keys,
            lifetime=spec.lifetime.as_timedelta(),
            one_time=spec.one_time,
            deliver_to=spec.deliver_to,
        )
    if isinstance(spec, d.RevokeSessions):
        return RevokeSessions(**keys)
    if isinstance(spec, d.SendEmail):
        return SendMail(
            **keys,
            to=spec.recipients,
            template=spec.template,
            subject=spec.subject,
            body=spec.body,
        )
    raise TypeError(f"no effect for task kind {getattr(spec, 'task', spec)!r}")
