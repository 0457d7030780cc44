"""The workflow engine: starts runs from identity events, timers and operators, and moves them
on with results, wake-ups and I/O outcomes, durably (issue 22, v0).

Every decision is the pure state machine's (`runs.advance`) or the matcher's
(`matching.runs_for_event`, `runs_for_timer`, `runs_on_demand`, `timers.plan_timers`);
this module is the orchestration around them, on ports bound to one transaction
(`EngineStores`): read a run, advance it, carry out its commands, save it with its revision.
Nothing here opens a transaction or reads a clock of its own: the identity handlers
(`handlers/workflows.py`) call it inside the event's transaction, the loops
(`workflows/loops.py`) inside theirs, and the unit tests on the in-memory fakes.

How the commands of a step are carried out, in order, in the run's transaction:

- `Announce` becomes its `workflow.*` event through the outbox (caused by the triggering
  event when there is one, else correlated with the run's trigger). `task_started` has no
  event (the run's and the task's other events say enough): it is dropped.
- `ScheduleWakeup` / `CancelWakeups` go to the `WakeupStore`; a cancel also drops the
  task's queued I/O effects (a cancelled run performs nothing more).
- An account task's effect (`Provision`: create, update, enable, disable, delete
  accounts; `ChangeGroup`: add or remove a group membership) starts a saga of type
  ``workflow_task`` through `TaskSagas`, in the run's transaction: the saga machine is the
  one executor of account work, for the account sagas and the runs alike. It queues behind
  the identity's saga in flight (a leaver's, a joiner's), is planned from the accounts as
  they are when it begins (`domain.plans.task_steps`), counts its creates as in doubt until
  they are answered, times its steps out and can be retried or cancelled with
  `accord sagas`. The task waits (``waiting_for`` kind ``account_saga``, a
  `workflow.task_waiting` says so) until the saga ends: `saga.completed` (outputs:
  ``targets``, those whose step reached its goal) succeeds it, `saga.failed` fails it with
  the saga's reason and retryable flag, and the task's retry policy retries it with a new
  saga (its id comes from the run, task and attempt, so a repeated handling starts none).
  A saga with nothing to do completes at once and so does its task.
- Any other `Effect` goes to the `EffectRunner`. Kafka commands (`envelopes` answers a
  list: mfa.enrolment_requested, access.requested, session.revoke_requested, an approval
  request) go to the outbox with the run and complete the task at once: the engine feeds
  `TaskSucceeded` right away (for an approval or an entitlement request that is the
  acknowledgement that the ask was made; the decision comes later).
- An I/O effect (`envelopes` answers None: mail, extension call, access pass) is queued
  (`EffectQueue`, durable in the run's transaction) for the effect loop, which performs it
  outside any transaction and records `TaskSucceeded` / `TaskFailed` in a new one.

One run per identity is active: a new run queues behind the active one (the store decides
it); a leaver first cancels the identity's active and queued joiner, mover and custom runs
(`runs.must_cancel_for`); when a run ends, the identity's next queued run begins. Every
handling takes the identity's registry lock first, as the identity handlers and the sagas
do, so one identity's runs are decided one at a time; a stale revision (`Conflict`) is
raised as a `RetryableError` so the runtime (or the loop) does the whole handling again.

A run keeps the version it started with, across restarts: the transaction that starts a
run keeps its version's definition (`VersionStore`, the workflow_versions table), and the
engine remembers the definition of every version it has seen loaded or read back. A run
whose version is in neither (started before versions were kept, or kept by a release whose
definition models read it no longer) goes on with the current definition of its workflow
when its tasks are the same ones (ids and kinds, in order); else it fails with a reason
that says so.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from accord.events import (
    AccountProvisioned,
    AccountProvisionFailed,
    Envelope,
    EventData,
    SagaCompleted,
    SagaFailed,
    new_event,
    topics,
)
from accord.events.catalogue.approval import ApprovalDecided
from accord.events.catalogue.workflow import (
    MAX_OUTPUTS,
    WorkflowRunCancelled,
    WorkflowRunCompleted,
    WorkflowRunFailed,
    WorkflowRunStarted,
    WorkflowTaskCompleted,
    WorkflowTaskFailed,
    WorkflowTaskSkipped,
    WorkflowTaskWaiting,
)
from accord.orchestrator.domain.account_saga import (
    Operation,
    SagaState,
    Step,
    TaskIntent,
    retries_now,
)
from accord.orchestrator.domain.identity import changed_attributes
from accord.orchestrator.domain.workflow import Identity, saga_id_of
from accord.orchestrator.ports import RegistryStore
from accord.orchestrator.workflows import access_requests, matching, runs
from accord.orchestrator.workflows.callback_api import CallbackState
from accord.orchestrator.workflows.definitions import Workflow
from accord.orchestrator.workflows.effect_queue import EffectQueue, QueuedEffect
from accord.orchestrator.workflows.effects import EffectFailed, EffectRunner
from accord.orchestrator.workflows.expressions import compile_condition, identity_context
from accord.orchestrator.workflows.loader import WorkflowSet
from accord.orchestrator.workflows.operations import (
    NotRetryable,
    RunFinished,
    RunNotFound,
    UnknownIdentity,
)
from accord.orchestrator.workflows.ports import (
    Conflict,
    RunStore,
    TaskSaga,
    TaskSagas,
    TimerStore,
    VersionStore,
    WakeupStore,
)
from accord.orchestrator.workflows.run_model import Run, RunStatus, TaskRun, TaskStatus, Wakeup
from accord.orchestrator.workflows.schedules import ScheduleStore
from accord.orchestrator.workflows.timers import Timer, date_attribute, plan_timers
from accord.runtime.errors import RetryableError

__all__ = [
    "RUN_PREFIX",
    "EffectFailed",
    "EffectRunner",
    "Engine",
    "EngineStores",
    "identity_view",
    "is_run_id",
]

log = logging.getLogger(__name__)

#: Every run id starts so: a provisioning result's saga_id tells a run from a saga.
RUN_PREFIX = "wfr-"
_NAMESPACE = uuid.UUID("0b9c6f1e-3a47-4c1d-9d55-7a1f2e8b6c22")
_OUTPUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SHORT = 256
#: Workflow versions the engine keeps in memory: those in force and those runs read back.
KNOWN_VERSIONS = 1024


# --- ports and helpers -------------------------------------------------------------------------


class CallbackMarks(Protocol):
    """The awaited callbacks' states (adapters.workflow_callbacks; the callback API reads
    them): a callback delivered, or a wait that ended without one."""

    async def mark(self, run_id: str, task_id: str, state: CallbackState) -> bool: ...


@dataclass(frozen=True)
class EngineStores:
    """What the engine works with, bound to one transaction."""

    registry: RegistryStore
    runs: RunStore
    wakeups: WakeupStore
    timers: TimerStore
    effects: EffectQueue
    versions: VersionStore
    sagas: TaskSagas
    callbacks: CallbackMarks | None = None
    """None where no callback can be awaited (the unit tests' stores)."""
    schedules: ScheduleStore | None = None
    """The cron schedules' states: only the schedule loop needs them (None elsewhere)."""


def is_run_id(value: str) -> bool:
    """Whether a saga_id names a workflow run (else it is a saga's): only provisioning
    requests made before account tasks ran as sagas carry one (see `on_provision_result`)."""
    return value.startswith(RUN_PREFIX)


def task_saga_id(command: runs.Effect) -> str:
    """The saga of one attempt of an account task: one per run, task and attempt, so a
    handling done again starts no second saga and a retry starts a new one."""
    return str(uuid.uuid5(_NAMESPACE, f"saga\x00{command.idempotency_key}"))


def run_id_for(cause: str, workflow_id: str, version: str) -> str:
    """The run a cause (an event id, a timer id) starts for a workflow version: one per
    cause, so a redelivered event starts no second run."""
    return RUN_PREFIX + str(uuid.uuid5(_NAMESPACE, f"{cause}\x00{workflow_id}\x00{version}"))


def identity_view(entry: Identity) -> dict[str, Any]:
    """A registry entry as the workflows read it: the profile, with `id`, `user_id` and the
    registry's `status` (a deleted identity has left: its timers are cancelled)."""
    profile = entry.profile.model_dump(mode="json")
    return {**profile, "id": entry.user_id, "user_id": entry.user_id, "status": entry.status}


def holds(text: str, context: Mapping[str, Any]) -> bool:
    """A task's `when` condition, in CEL."""
    return compile_condition(text).holds(context)


def _short(text: str) -> str:
    cleaned = " ".join(text.replace("\x00", " ").split()) or "-"
    return cleaned[:_SHORT]


@dataclass
class _Handling:
    """One handling's state: the transaction's stores, what caused it, the events so far."""

    stores: EngineStores
    cause: Envelope | None
    now: datetime
    events: list[Envelope]


class Engine:
    """The workflow engine on ports (see the module docstring)."""

    def __init__(
        self,
        workflows: Callable[[], WorkflowSet],
        runner: EffectRunner,
        *,
        source: str,
        clock: Callable[[], datetime],
        conditions: runs.Conditions = holds,
    ) -> None:
        self._workflows = workflows
        self.runner = runner
        self.source = source
        self.clock = clock
        self.conditions = conditions
        self._known: OrderedDict[tuple[str, str], Workflow] = OrderedDict()

    # --- the workflow set ---------------------------------------------------------------------

    def current(self) -> WorkflowSet:
        """The set in force, remembered by version for the runs that keep it."""
        workflows = self._workflows()
        for loaded in workflows:
            self._remember((loaded.id, loaded.version), loaded.definition)
        return workflows

    def _remember(self, key: tuple[str, str], definition: Workflow) -> None:
        """Keep a version's definition in memory, the most recently used first to stay: at
        most KNOWN_VERSIONS (an old run's version is read back from the store again)."""
        self._known[key] = definition
        self._known.move_to_end(key)
        while len(self._known) > KNOWN_VERSIONS:
            self._known.popitem(last=False)

    async def definition_of(self, run: Run, versions: VersionStore) -> Workflow | None:
        """The definition a run was started with, or a same-shaped current one; else None.

        Memory first, then the kept versions: read when a run is handled rather than all
        preloaded at start, since a run is always handled in a transaction that has the
        store at hand, and a run started by another orchestrator with a version this one
        never loaded is found the same way. A version's definition never changes (the
        version is its content hash), so what was read back is remembered (the
        KNOWN_VERSIONS most recently used; an older one is read back again).
        """
        workflows = self.current()
        key = (run.workflow_id, run.version)
        known = self._known.get(key)
        if known is not None:
            self._known.move_to_end(key)
        else:
            known = await versions.definition(*key)
            if known is not None:
                self._remember(key, known)
        if known is not None:
            return known
        loaded = workflows.workflows.get(run.workflow_id)
        if loaded is None:
            return None
        shape = [(task.id, task.task) for task in loaded.definition.tasks]
        if shape != [(task.task_id, task.kind) for task in run.tasks]:
            return None
        log.warning(
            "run goes on with the current version of its workflow",
            extra={"run_id": run.run_id, "version": run.version, "current": loaded.version},
        )
        return loaded.definition

    # --- identity events ----------------------------------------------------------------------

    async def on_identity_event(
        self,
        stores: EngineStores,
        event: Envelope,
        before: Identity | None,
        after: Identity | None,
    ) -> list[Envelope]:
        """An identity event the registry applied: start the runs it triggers and bring the
        identity's timers in line. The caller holds the identity's lock."""
        now = self.clock()
        work = _Handling(stores, event, now, [])
        identity_id = event.subject
        workflows = self.current()
        view_before = identity_view(before) if before is not None else None
        view_after = identity_view(after) if after is not None else None
        changed = (
            changed_attributes(before.profile if before else None, after.profile)
            if after is not None
            else frozenset()
        )
        event_type = event.type
        if event_type == topics.USER_CREATED and before is not None:
            # A re-announced identity is an update, not a second joiner (as for the sagas).
            event_type = topics.USER_UPDATED
        change = matching.IdentityChange(
            event_type=event_type,
            identity_id=identity_id,
            before=view_before,
            after=view_after,
            changed=changed,
            event_id=event.id,
            at=now,
        )
        matches = matching.runs_for_event(workflows, change, now)
        for skipped in matches.skipped:
            log.info(
                "workflow skipped",
                extra={"workflow_id": skipped.workflow_id, "reason": skipped.reason},
            )
        for planned in matches.runs:
            definition = workflows[planned.workflow_id].definition
            if definition.account_saga is not None and not definition.runs_after_saga:
                # An account saga alone: its identity handler starts it (handlers/identity),
                # no run. A leaver's still supersedes what it replaces (a pre-hire wait).
                if definition.category == "leaver":
                    await self._supersede(work, identity_id, definition.category)
                    await self._promote(work, identity_id)
                continue
            trigger = {
                "kind": "event",
                "event": event_type,
                "event_id": event.id,
                "summary": planned.trigger,
                "correlation_id": event.correlationid,
            }
            await self._start(work, workflows, planned, event.id, trigger)
        await self._plan_timers(work, workflows, view_before, view_after)
        return work.events

    async def _plan_timers(
        self,
        work: _Handling,
        workflows: WorkflowSet,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
    ) -> None:
        triggers = matching.time_triggers(workflows)
        if not triggers:
            # No time trigger in force: nothing to plan, and nothing of an older set's to
            # move (a set change cancels the timers it no longer plans, `cancel_stale`; one
            # that fires meanwhile finds no workflow and is skipped). No read per event.
            return
        identity_id = str((after or before or {}).get("id"))
        existing = await work.stores.timers.for_identity(identity_id)
        plan = plan_timers(triggers, before, after, existing, work.now)
        if plan.schedule:
            await work.stores.timers.upsert(plan.schedule)
        if plan.cancel:
            await work.stores.timers.cancel(plan.cancel)
        for skipped in plan.skipped:
            log.info(
                "time trigger skipped",
                extra={"workflow_id": skipped.key.workflow_id, "reason": skipped.reason},
            )
        if plan.fire_now:
            await work.stores.timers.upsert([timer.fired() for timer in plan.fire_now])
            for timer in plan.fire_now:
                await self._fire(work, workflows, timer, after or {})

    # --- timers -------------------------------------------------------------------------------

    async def on_timer(self, stores: EngineStores, timer: Timer) -> list[Envelope]:
        """A claimed (fired) timer: start its run if its workflow, version, date and scope
        still hold for the identity as it is now."""
        identity_id = timer.key.identity_id
        await stores.registry.lock(identity_id)
        entry = await stores.registry.identity(identity_id)
        work = _Handling(stores, None, self.clock(), [])
        if entry is None:
            log.info("timer of an unknown identity dropped", extra={"timer_id": timer.timer_id})
            return []
        await self._fire(work, self.current(), timer, identity_view(entry))
        return work.events

    async def _fire(
        self,
        work: _Handling,
        workflows: WorkflowSet,
        timer: Timer,
        identity: Mapping[str, Any],
    ) -> None:
        matches = matching.runs_for_timer(workflows, timer, identity, work.now)
        for skipped in matches.skipped:
            log.info("timer skipped", extra={"timer_id": timer.timer_id, "reason": skipped.reason})
            await work.stores.timers.mark(timer.timer_id, "skipped")
        for planned in matches.runs:
            trigger = {
                "kind": "timer",
                "timer_id": timer.timer_id,
                "attribute": timer.key.attribute,
                "date_value": timer.key.date_value,
                "summary": planned.trigger,
                "correlation_id": timer.timer_id,
            }
            if work.cause is not None:
                trigger["correlation_id"] = work.cause.correlationid
            await self._start(work, workflows, planned, timer.timer_id, trigger)

    # --- starting runs ------------------------------------------------------------------------

    async def _start(
        self,
        work: _Handling,
        workflows: WorkflowSet,
        planned: matching.PlannedRun,
        cause_id: str,
        trigger: Mapping[str, Any],
        run_id: str | None = None,
    ) -> Run | None:
        """Start (or queue) one planned run; a leaver first cancels what it supersedes."""
        stores = work.stores
        loaded = workflows.workflows[planned.workflow_id]
        run_id = run_id or run_id_for(cause_id, planned.workflow_id, planned.version)
        if await stores.runs.get(run_id) is not None:
            return None  # started by an earlier delivery of the same cause
        definition = loaded.definition
        # In the run's transaction: a run is never stored without its version kept.
        await stores.versions.record(definition, loaded.version, work.now)
        await self._supersede(work, planned.identity_id, definition.category)
        fresh = runs.new_run(
            definition, loaded.version, planned.identity_id, trigger, run_id, work.now
        )
        stored = await stores.runs.start(fresh)
        log.info(
            "workflow run started" if stored.status.active else "workflow run queued",
            extra={"run_id": run_id, "workflow_id": planned.workflow_id},
        )
        if stored.status is RunStatus.RUNNING:
            return await self._drive(work, stored, runs.Begin())
        # Queued: behind the active run, or behind older queued runs whose turn has come
        # (the active one was just superseded).
        await self._promote(work, planned.identity_id)
        return stored

    async def _supersede(self, work: _Handling, identity_id: str, category: str) -> None:
        """Cancel the identity's active and queued runs a new run of `category` replaces."""
        stores = work.stores
        victims: list[Run] = []
        active = await stores.runs.active_for(identity_id)
        if active is not None:
            victims.append(active)
        page = await stores.runs.runs(identity_id=identity_id, status=RunStatus.QUEUED, limit=100)
        victims.extend(page.runs)
        for victim in victims:
            if runs.must_cancel_for(category, victim):
                await self._drive(work, victim, runs.Cancel(runs.SUPERSEDED), promote=False)

    async def _promote(self, work: _Handling, identity_id: str) -> None:
        """Begin the identity's next queued runs until one holds its active slot."""
        while (queued := await work.stores.runs.next_queued(identity_id)) is not None:
            begun = await self._drive(work, queued, runs.Begin(), promote=False)
            if begun.status.active:
                return

    # --- advancing a run ----------------------------------------------------------------------

    async def _drive(
        self, work: _Handling, run: Run, event: runs.Event, *, promote: bool = True
    ) -> Run:
        """Apply `event` and what follows from it at once, carry out the commands, save the
        run (guarded by its revision); when it ended, begin the identity's next run."""
        definition = await self.definition_of(run, work.stores.versions)
        if definition is None:
            ended = self._orphaned(work, run)
        else:
            ended = await self._advance(work, run, definition, event)
        if ended is run:
            return run
        try:
            saved = await work.stores.runs.save(ended, run.revision)
        except Conflict as error:
            raise RetryableError(f"workflow run {run.run_id} changed meanwhile: {error}") from error
        await self._close_callbacks(work.stores, run, saved)
        if promote and saved.status.terminal and not run.status.terminal:
            await self._promote(work, run.identity_id)
        return saved

    async def _advance(
        self, work: _Handling, run: Run, definition: Workflow, event: runs.Event
    ) -> Run:
        identity = await self._identity(work.stores, run.identity_id)
        context = identity_context(identity, now=work.now)
        pending: deque[runs.Event] = deque([event])
        current = run
        while pending:
            step = runs.advance(
                current, definition, pending.popleft(), work.now, self.conditions, context
            )
            if step.ignored is not None:
                log.info(
                    "workflow event ignored", extra={"run_id": run.run_id, "reason": step.ignored}
                )
                continue
            current = step.run
            current, follow = await self._execute(work, current, step.commands, identity)
            pending.extend(follow)
        return current

    def _orphaned(self, work: _Handling, run: Run) -> Run:
        """A run whose definition is gone: fail it, saying why (see the module docstring)."""
        if run.status.terminal:
            return run
        reason = f"workflow {run.workflow_id} version {run.version} is no longer loaded"
        log.error("workflow run failed: %s", reason, extra={"run_id": run.run_id})
        tasks = tuple(
            task
            if task.status.terminal
            else replace(task, status=TaskStatus.CANCELLED, waiting_for=None)
            for task in run.tasks
        )
        failed = replace(run, status=RunStatus.FAILED, tasks=tasks, updated_at=work.now)
        work.events.append(
            self._event(WorkflowRunFailed(**self._common(run), reason=reason), run, work.cause)
        )
        return failed

    async def _execute(
        self,
        work: _Handling,
        run: Run,
        commands: Sequence[runs.Command],
        identity: Mapping[str, Any],
    ) -> tuple[Run, list[runs.Event]]:
        """Carry out one step's commands in order; the events that follow at once."""
        stores = work.stores
        follow: list[runs.Event] = []
        for command in commands:
            if isinstance(command, runs.Announce):
                announced = self._announcement(run, command)
                if announced is not None:
                    work.events.append(self._event(announced, run, work.cause))
            elif isinstance(command, runs.ScheduleWakeup):
                await stores.wakeups.schedule([command.wakeup])
            elif isinstance(command, runs.CancelWakeups):
                await stores.wakeups.cancel(command.run_id, command.task_id)
                await stores.effects.cancel(command.run_id, command.task_id)
            elif isinstance(command, runs.Effect):
                run, more = await self._effect(work, run, command, identity)
                follow += more
        return run, follow

    async def _effect(
        self, work: _Handling, run: Run, command: runs.Effect, identity: Mapping[str, Any]
    ) -> tuple[Run, list[runs.Event]]:
        if isinstance(command, runs.Provision | runs.ChangeGroup):
            return await self._account_task(work, run, command)
        if isinstance(command, runs.AwaitAccountSaga):
            return await self._await_account_saga(work, run, command)
        stores = work.stores
        envelopes = self.runner.envelopes(command, run, identity, work.cause)
        if envelopes is None:
            await stores.effects.enqueue(command, run.identity_id, work.now)
            return run, []
        work.events.extend(envelopes)
        return run, [runs.TaskSucceeded(str(command.task_id), {}, attempt=command.attempt)]

    async def _account_task(
        self, work: _Handling, run: Run, command: runs.Provision | runs.ChangeGroup
    ) -> tuple[Run, list[runs.Event]]:
        """Start the task's saga; the task waits for its end (or completes now, when the
        saga had nothing to do)."""
        saga_id = task_saga_id(command)
        emitted = await work.stores.sagas.start(
            _task_saga(command, saga_id, run.identity_id), work.cause, run.run_id
        )
        work.events.extend(emitted)
        return await self._answer_or_wait(work, run, command, saga_id)

    async def _await_account_saga(
        self, work: _Handling, run: Run, command: runs.AwaitAccountSaga
    ) -> tuple[Run, list[runs.Event]]:
        """An account_saga task: the saga the run's event started (the identity handler
        did, before the run) answers it; one that ended already, or none (nothing to do),
        answers at once."""
        saga_id = saga_id_of(str(run.trigger.get("event_id", "")))
        return await self._answer_or_wait(work, run, command, saga_id)

    async def _answer_or_wait(
        self, work: _Handling, run: Run, command: runs.Effect, saga_id: str
    ) -> tuple[Run, list[runs.Event]]:
        """The task's answer if its saga ended already (or never started: nothing to do),
        else the task waits for the saga's end (`on_task_saga_ended`), and says so."""
        task_id = str(command.task_id)
        state = await work.stores.sagas.state(saga_id)
        outcome = _saga_outcome(state, task_id, command.attempt)
        if outcome is not None:
            return run, [outcome]
        run = _with_task(run, task_id, waiting_for={"kind": "account_saga", "saga_id": saga_id})
        task = run.task(task_id)
        assert task is not None
        waiting = WorkflowTaskWaiting(
            **self._common(run), task_id=task_id, kind=task.kind, waiting_for="provisioning"
        )
        work.events.append(self._event(waiting, run, work.cause))
        return run, []

    def _awaits_account_sagas(self) -> bool:
        """Whether a workflow in force runs tasks after its account saga (so the end of an
        account saga may answer a run's task)."""
        return any(loaded.definition.runs_after_saga for loaded in self.current())

    # --- task sagas ---------------------------------------------------------------------------

    async def on_task_saga_ended(
        self, stores: EngineStores, event: Envelope, data: SagaCompleted | SagaFailed
    ) -> list[Envelope]:
        """A workflow task saga ended: its task succeeds (completed) or fails with the
        saga's reason and retryable flag. Only the identity's active run can wait for one;
        the end of a saga no task waits for (a cancelled run's, an earlier attempt's, a
        failed saga healed later) is ignored and logged."""
        if data.saga_type != "workflow_task" and not self._awaits_account_sagas():
            return []
        if isinstance(data, SagaFailed) and data.retrying:
            return []  # a round failed; the saga goes on by itself (a leaver's outage)
        await stores.registry.lock(data.subject_id)
        run = await stores.runs.active_for(data.subject_id)
        task = _saga_task(run, data.saga_id) if run is not None else None
        if run is None or task is None:
            log.info(
                "end of a task saga no task waits for ignored",
                extra={"saga_id": data.saga_id, "event_type": event.type},
            )
            return []
        work = _Handling(stores, event, self.clock(), [])
        answer: runs.Event
        if isinstance(data, SagaCompleted):
            outputs = {"targets": list(data.targets)}
            answer = runs.TaskSucceeded(task.task_id, outputs, attempt=task.attempts)
        else:
            answer = runs.TaskFailed(
                task.task_id, data.reason, retryable=data.retryable, attempt=task.attempts
            )
        await self._drive(work, run, answer)
        return work.events

    # --- provisioning results -----------------------------------------------------------------

    async def on_provision_result(
        self,
        stores: EngineStores,
        event: Envelope,
        data: AccountProvisioned | AccountProvisionFailed,
    ) -> list[Envelope]:
        """A provisioning result for a run (its saga_id is the run id): strike its target off
        the waiting task; the task succeeds once every target answered, fails at the first
        failure. A result of no current step (a duplicate, an earlier attempt's) is ignored.

        Kept for the runs that asked before account tasks ran as sagas (an upgrade with
        runs in flight): nothing asks so any more, so it can go once no run waits with
        ``waiting_for`` kind ``provisioning``."""
        run = await stores.runs.get(data.saga_id)
        if run is None:
            log.info("result for an unknown workflow run", extra={"run_id": data.saga_id})
            return []
        await stores.registry.lock(run.identity_id)
        run = await stores.runs.get(data.saga_id)
        assert run is not None
        work = _Handling(stores, event, self.clock(), [])
        found = _provisioning_task(run, data.step_id)
        if found is None:
            log.info(
                "provisioning result of no waiting step ignored",
                extra={"run_id": run.run_id, "step_id": data.step_id},
            )
            return []
        task_id, waiting = found
        if data.target not in waiting["pending"]:
            log.info("duplicate provisioning result ignored", extra={"run_id": run.run_id})
            return []
        task = run.task(task_id)
        assert task is not None
        if isinstance(data, AccountProvisionFailed):
            failed = runs.TaskFailed(
                task_id,
                f"{data.target}: {data.reason}",
                retryable=data.retryable,
                attempt=task.attempts,
            )
            await self._drive(work, run, failed)
            return work.events
        pending = [target for target in waiting["pending"] if target != data.target]
        accounts = {**waiting.get("accounts", {}), data.target: data.account_id}
        if pending:
            updated = _with_task(
                run, task_id, waiting_for={**waiting, "pending": pending, "accounts": accounts}
            )
            try:
                await stores.runs.save(replace(updated, updated_at=work.now), run.revision)
            except Conflict as error:
                raise RetryableError(f"workflow run {run.run_id} changed meanwhile") from error
            return work.events
        outputs = {"targets": sorted(waiting["steps"].values()), "accounts": accounts}
        await self._drive(work, run, runs.TaskSucceeded(task_id, outputs, attempt=task.attempts))
        return work.events

    # --- wake-ups and I/O effects -------------------------------------------------------------

    async def on_wakeup(self, stores: EngineStores, wakeup: Wakeup) -> list[Envelope]:
        """A claimed wake-up: the waiting task's wait, timeout or retry backoff ended."""
        run = await self._locked_run(stores, wakeup.run_id)
        if run is None:
            return []
        work = _Handling(stores, None, self.clock(), [])
        await self._drive(work, run, runs.Woken(wakeup.task_id, wakeup.purpose))
        return work.events

    async def on_callback(
        self, stores: EngineStores, run_id: str, task_id: str, outputs: Mapping[str, Any]
    ) -> tuple[bool, list[Envelope]]:
        """A verified extension callback: the waiting task completes with its outputs.
        False when the task no longer waits for one (timed out, cancelled, run ended)."""
        run = await self._locked_run(stores, run_id)
        task = run.task(task_id) if run is not None else None
        if run is None or task is None or not _awaits_callback(task):
            return False, []
        if stores.callbacks is not None and not await stores.callbacks.mark(
            run_id, task_id, CallbackState.DELIVERED
        ):
            return False, []
        work = _Handling(stores, None, self.clock(), [])
        await self._drive(work, run, runs.CallbackReceived(task_id, dict(outputs)))
        return True, work.events

    async def on_approval_decided(
        self, stores: EngineStores, event: Envelope, data: ApprovalDecided
    ) -> list[Envelope]:
        """authz's decision on a task's approval: the task goes on (approved) or follows its
        `on_reject`. Only the decision on the task's current ask counts: an ask before an
        escalation is a different approval id, still open in authz, and ignored here."""
        run = await self._locked_run(stores, data.run_id)
        task = run.task(data.task_id) if run is not None else None
        current = f"{data.run_id}:{data.task_id}:{task.attempts}" if task is not None else None
        if run is None or data.approval_id != current:
            log.info(
                "approval decision of no current ask ignored",
                extra={"run_id": data.run_id, "approval_id": data.approval_id},
            )
            return []
        work = _Handling(stores, event, self.clock(), [])
        decided = runs.ApprovalDecision(data.task_id, data.approved, data.decided_by)
        await self._drive(work, run, decided)
        return work.events

    async def on_access_decision(
        self, stores: EngineStores, event: Envelope, data: access_requests.Answer
    ) -> list[Envelope]:
        """authz's answer on a request_entitlement task's access request (the request id
        names the run, task and attempt): the grant completes the task, a refusal fails
        it. An answer that decides nothing yet (a permit before its grant, an approved
        stage), or of no waiting task, is ignored and logged."""
        asked = access_requests.request_of(data.request_id)
        run = await self._locked_run(stores, asked.run_id) if asked is not None else None
        if asked is None or run is None or run.identity_id != data.principal_id:
            log.info(
                "access decision of no workflow task ignored",
                extra={"request_id": data.request_id, "event_type": event.type},
            )
            return []
        decision = access_requests.decision(data, asked)
        if decision is None:
            log.info(
                "access request not decided yet",
                extra={"run_id": run.run_id, "request_id": data.request_id},
            )
            return []
        work = _Handling(stores, event, self.clock(), [])
        await self._drive(work, run, decision)
        return work.events

    async def _close_callbacks(self, stores: EngineStores, before: Run, after: Run) -> None:
        """Tasks that stopped waiting for a callback without one: their callbacks are
        refused from now on (409)."""
        if stores.callbacks is None:
            return
        for task in before.tasks:
            now = after.task(task.task_id)
            if _awaits_callback(task) and (now is None or not _awaits_callback(now)):
                await stores.callbacks.mark(after.run_id, task.task_id, CallbackState.CLOSED)

    async def effect_subject(
        self, stores: EngineStores, effect: QueuedEffect
    ) -> tuple[Run, Mapping[str, Any]] | None:
        """The run and identity a claimed effect is performed for, or None when it is no
        longer wanted (the run ended or moved on): then it is dropped."""
        run = await stores.runs.get(effect.command.run_id)
        task = run.task(str(effect.command.task_id)) if run is not None else None
        if (
            run is None
            or task is None
            or task.attempts != effect.command.attempt
            or task.status not in (TaskStatus.RUNNING, TaskStatus.WAITING)
        ):
            await stores.effects.done(effect.effect_id)
            return None
        return run, await self._identity(stores, run.identity_id)

    async def effect_done(
        self,
        stores: EngineStores,
        effect: QueuedEffect,
        outcome: Mapping[str, Any] | EffectFailed,
    ) -> list[Envelope]:
        """Record a performed effect's outcome (a new transaction); nothing if another
        claimer recorded it first or the run dropped it meanwhile."""
        command = effect.command
        await stores.registry.lock(effect.identity_id)
        if not await stores.effects.done(effect.effect_id):
            return []
        run = await stores.runs.get(command.run_id)
        if run is None:
            return []
        task_id = str(command.task_id)
        event: runs.Event
        if isinstance(outcome, EffectFailed):
            event = runs.TaskFailed(
                task_id,
                _short(outcome.reason),
                retryable=outcome.retryable,
                retry_after_s=outcome.retry_after_s,
                attempt=command.attempt,
            )
        else:
            event = runs.TaskSucceeded(task_id, dict(outcome), attempt=command.attempt)
        work = _Handling(stores, None, self.clock(), [])
        await self._drive(work, run, event)
        return work.events

    # --- operators (EngineOperations, inside a transaction: see loops.Operations) -------------

    async def cancel(
        self, stores: EngineStores, run_id: str, reason: str
    ) -> tuple[Run, list[Envelope]]:
        """An operator's cancel of a queued, running or waiting run."""
        run = await self._locked_run(stores, run_id)
        if run is None:
            raise RunNotFound(run_id)
        if run.status.terminal:
            raise RunFinished(f"run {run_id} is {run.status}")
        work = _Handling(stores, None, self.clock(), [])
        saved = await self._drive(work, run, runs.Cancel(reason))
        return saved, work.events

    async def retry(self, stores: EngineStores, run_id: str) -> tuple[Run, list[Envelope]]:
        """Run a failed run's failed task again, then the tasks after it.

        The failed task is put back as if its retry backoff just ended, so the state
        machine starts its next attempt (a new idempotency key) as for any retry; the tasks
        the failure cancelled are pending again. Refused while another run of the identity
        is active (the one-run-at-a-time rule)."""
        run = await self._locked_run(stores, run_id)
        if run is None:
            raise RunNotFound(run_id)
        if run.status is not RunStatus.FAILED:
            raise NotRetryable(f"run {run_id} is {run.status}, not failed")
        failed = [task for task in run.tasks if task.status is TaskStatus.FAILED]
        if not failed:
            raise NotRetryable(f"run {run_id} has no failed task")
        active = await stores.runs.active_for(run.identity_id)
        if active is not None:
            raise NotRetryable(f"run {active.run_id} of the identity is active: retry it later")
        now = self.clock()
        target = failed[-1]
        tasks = []
        for task in run.tasks:
            if task.task_id == target.task_id:
                task = replace(
                    task,
                    status=TaskStatus.WAITING,
                    finished_at=None,
                    waiting_for={"kind": "retry", "until": now.isoformat(), "reason": "retried"},
                )
            elif task.position > target.position and task.status is TaskStatus.CANCELLED:
                task = replace(task, status=TaskStatus.PENDING, finished_at=None, error=None)
            tasks.append(task)
        reopened = replace(run, status=RunStatus.WAITING, tasks=tuple(tasks), updated_at=now)
        try:
            stored = await stores.runs.save(reopened, run.revision)
        except Conflict as error:
            raise NotRetryable(f"run {run_id} could not be reopened: {error}") from error
        work = _Handling(stores, None, now, [])
        saved = await self._drive(work, stored, runs.Woken(target.task_id, "retry"))
        return saved, work.events

    async def start_on_demand(
        self,
        stores: EngineStores,
        workflow_id: str,
        identity_ids: Sequence[str],
        requested_by: str,
    ) -> tuple[list[str], list[Envelope]]:
        """Start a workflow for identities (those in its scope); the run ids.

        :raises UnknownWorkflow: no such workflow, or a disabled one.
        :raises UnknownIdentity: an identity is not in the registry (nothing starts).
        """
        workflows = self.current()
        profiles: dict[str, Mapping[str, Any]] = {}
        for identity_id in dict.fromkeys(identity_ids):
            await stores.registry.lock(identity_id)
            entry = await stores.registry.identity(identity_id)
            if entry is None:
                raise UnknownIdentity(identity_id)
            profiles[identity_id] = identity_view(entry)
        now = self.clock()
        matches = matching.runs_on_demand(workflows, workflow_id, profiles, now)
        work = _Handling(stores, None, now, [])
        started: list[str] = []
        for planned in matches.runs:
            run_id = RUN_PREFIX + str(uuid.uuid4())
            trigger = {
                "kind": "on_demand",
                "by": requested_by,
                "summary": f"on demand by {requested_by}",
                "correlation_id": run_id,
            }
            await self._start(work, workflows, planned, run_id, trigger, run_id=run_id)
            started.append(run_id)
        return started, work.events

    # --- schedules and timers over the registry (the loops page through it) -----------------

    async def start_scheduled(
        self,
        stores: EngineStores,
        workflow_id: str,
        slot: datetime,
        identity_ids: Sequence[str],
    ) -> list[Envelope]:
        """A cron workflow's schedule time `slot`, for a page of identities: a run for each
        one in its scope, through the same start as any run (one run at a time per
        identity). Its run id comes from (workflow, version, slot, identity): the same page
        handled twice starts nothing twice. Nothing when the workflow is gone or disabled."""
        workflows = self.current()
        now = self.clock()
        work = _Handling(stores, None, now, [])
        for identity_id in identity_ids:
            await stores.registry.lock(identity_id)
            entry = await stores.registry.identity(identity_id)
            if entry is None or entry.status == "deleted":
                continue
            profiles = {identity_id: identity_view(entry)}
            try:
                matches = matching.runs_on_demand(workflows, workflow_id, profiles, now)
            except matching.UnknownWorkflow:
                log.info("scheduled workflow no longer runs", extra={"workflow_id": workflow_id})
                return work.events
            for planned in matches.runs:
                cause = f"schedule\x00{slot.isoformat()}\x00{identity_id}"
                run_id = run_id_for(cause, planned.workflow_id, planned.version)
                trigger = {
                    "kind": "schedule",
                    "slot": slot.isoformat(),
                    "summary": planned.trigger,
                    "correlation_id": run_id,
                }
                await self._start(work, workflows, planned, cause, trigger, run_id=run_id)
        return work.events

    async def replan_timers(
        self, stores: EngineStores, identity_ids: Sequence[str]
    ) -> list[Envelope]:
        """Bring a page of identities' timers in line with the workflow set in force (after
        a reload, or at start): `plan_timers` with the identity as it is, before and after,
        for those with a date attribute a time trigger names. Idempotent: a timer planned
        already is planned again as it is; a past time fires within its catch-up, as for
        an event."""
        workflows = self.current()
        attributes = {trigger.attribute for trigger in matching.time_triggers(workflows)}
        if not attributes:
            return []
        work = _Handling(stores, None, self.clock(), [])
        for identity_id in identity_ids:
            await stores.registry.lock(identity_id)
            entry = await stores.registry.identity(identity_id)
            if entry is None:
                continue
            view = identity_view(entry)
            if all(date_attribute(view, name) is None for name in attributes):
                continue
            await self._plan_timers(work, workflows, view, view)
        return work.events

    # --- reading ------------------------------------------------------------------------------

    async def _locked_run(self, stores: EngineStores, run_id: str) -> Run | None:
        """The run, read again after its identity's lock (so nothing moves it meanwhile)."""
        run = await stores.runs.get(run_id)
        if run is None:
            return None
        await stores.registry.lock(run.identity_id)
        return await stores.runs.get(run_id)

    async def _identity(self, stores: EngineStores, identity_id: str) -> dict[str, Any]:
        entry = await stores.registry.identity(identity_id)
        if entry is None:
            return {"id": identity_id, "user_id": identity_id}
        return identity_view(entry)

    # --- events -------------------------------------------------------------------------------

    def _common(self, run: Run) -> dict[str, Any]:
        return {
            "run_id": run.run_id,
            "workflow_id": run.workflow_id,
            "version": run.version,
            "identity_id": run.identity_id,
            "category": run.category,
        }

    def _announcement(self, run: Run, command: runs.Announce) -> EventData | None:
        """The workflow.* event of an announcement (None for task_started: no event)."""
        common = self._common(run)
        details = command.details
        kind = command.kind
        if kind == "run_started":
            summary = run.trigger.get("summary") or run.trigger.get("kind") or "started"
            return WorkflowRunStarted(**common, trigger=_short(str(summary)))
        if kind == "run_completed":
            return WorkflowRunCompleted(**common)
        if kind == "run_failed":
            reason = f"{details.get('task_id')}: {details.get('reason')}"
            return WorkflowRunFailed(**common, reason=_short(reason))
        if kind == "run_cancelled":
            return WorkflowRunCancelled(**common, reason=_short(str(details.get("reason"))))
        if kind == "task_started" or command.task_id is None:
            return None
        task = run.task(command.task_id)
        task_kind = task.kind if task is not None else "task"
        common = {**common, "task_id": command.task_id, "kind": task_kind}
        if kind == "task_completed":
            names = [
                str(name)
                for name in (details.get("outputs") or {})
                if _OUTPUT_NAME.match(str(name)) and len(str(name)) <= 64
            ]
            return WorkflowTaskCompleted(**common, output_keys=tuple(sorted(names)[:MAX_OUTPUTS]))
        if kind == "task_failed":
            return WorkflowTaskFailed(**common, reason=_short(str(details.get("reason"))))
        if kind == "task_skipped":
            return WorkflowTaskSkipped(
                **common, reason=_short(f"when is false: {details.get('when')}")
            )
        return WorkflowTaskWaiting(
            **common, waiting_for=details.get("kind", "timer"), until=details.get("until")
        )

    def _event(self, data: EventData, run: Run, cause: Envelope | None) -> Envelope:
        if cause is not None:
            return new_event(data, source=self.source, causation=cause)
        correlation = str(run.trigger.get("correlation_id") or run.run_id)
        return new_event(data, source=self.source, correlation_id=correlation)


def _awaits_callback(task: TaskRun) -> bool:
    waiting = task.waiting_for or {}
    return task.status is TaskStatus.WAITING and waiting.get("kind") == "callback"


def _with_task(run: Run, task_id: str, **changes: Any) -> Run:
    return replace(
        run,
        tasks=tuple(
            replace(task, **changes) if task.task_id == task_id else task for task in run.tasks
        ),
    )


def _task_saga(
    command: runs.Provision | runs.ChangeGroup, saga_id: str, identity_id: str
) -> TaskSaga:
    """The saga of an account task's attempt."""
    if isinstance(command, runs.ChangeGroup):
        operation: Operation = "add_member" if command.action == "add" else "remove_member"
        step = Step(command.target, operation, group=command.group)
        return TaskSaga(saga_id, identity_id, TaskIntent(operation), (step,))
    targets = None if command.targets == "all" else tuple(command.targets)
    intent = TaskIntent(command.operation, targets, disabled=command.disabled)
    return TaskSaga(saga_id, identity_id, intent)


def _saga_outcome(state: SagaState | None, task_id: str, attempt: int) -> runs.Event | None:
    """An account_saga task's answer from its saga as it is now; None: wait for its end."""
    if state is None:
        return runs.TaskSucceeded(task_id, {"targets": []}, attempt=attempt)
    if state.status == "completed":
        return runs.TaskSucceeded(
            task_id, {"targets": list(state.targets("done"))}, attempt=attempt
        )
    if state.status == "cancelled" or (state.status == "failed" and not retries_now(state)):
        failed = ", ".join(state.targets("failed")) or "no target"
        reason = f"the {state.saga_type} saga {state.status} (failed in {failed})"
        return runs.TaskFailed(task_id, reason, retryable=False, attempt=attempt)
    return None


def _saga_task(run: Run, saga_id: str) -> TaskRun | None:
    """The run's task that waits for this task saga."""
    for task in run.tasks:
        waiting = task.waiting_for or {}
        if waiting.get("kind") == "account_saga" and waiting.get("saga_id") == saga_id:
            return task
    return None


def _provisioning_task(run: Run, step_id: str) -> tuple[str, Mapping[str, Any]] | None:
    """The running task that waits for this provisioning step's result, with its wait."""
    for task in run.tasks:
        waiting = task.waiting_for or {}
        if (
            task.status is TaskStatus.RUNNING
            and waiting.get("kind") == "provisioning"
            and step_id in (waiting.get("steps") or {})
        ):
            return task.task_id, waiting
    return None
