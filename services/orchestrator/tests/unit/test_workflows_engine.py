"""The workflow engine (workflows/engine.py) and its loops (workflows/loops.py) on the in-memory
fakes: identity events start runs through the real identity handlers (handlers/workflows.py),
runs queue and take turns, a leaver supersedes a joiner, account tasks run as sagas on the
real saga machine (in memory) and their ends answer the tasks, wake-ups, timers and I/O
effects move runs on."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from accord.events import (
    AccessApprovalDecided,
    AccessDecided,
    AccessGranted,
    AccessRequested,
    ApprovalDecided,
    ApprovalRequested,
    Envelope,
    EventData,
    MfaEnrolmentRequested,
    ProvisionRequested,
    Resource,
    SagaCompleted,
    SagaFailed,
    SagaStarted,
    UserCreated,
    UserDeleted,
    UserUpdated,
    new_event,
)
from accord.events.catalogue import Provisioning
from accord.orchestrator.domain.account_saga import CancelRequested, RetryRequested
from accord.orchestrator.domain.birthright import everyone
from accord.orchestrator.domain.workflow import WorkflowSettings, access_saga_id, saga_id_of
from accord.orchestrator.fakes import FakeWorld
from accord.orchestrator.handlers import on_user_created, on_user_status, on_user_updated
from accord.orchestrator.handlers.operators import on_operator
from accord.orchestrator.handlers.workflows import (
    WorkflowPorts,
    on_access_changed_with_workflows,
    on_access_decided,
    on_account_result_with_workflows,
    on_approval_decided,
    on_task_saga_ended,
    with_workflows,
)
from accord.orchestrator.testing import answer_of
from accord.orchestrator.workflows import access_requests, loops, runs
from accord.orchestrator.workflows import engine as engine_module
from accord.orchestrator.workflows.callback_api import CallbackState
from accord.orchestrator.workflows.effect_fakes import InMemoryCallbacks
from accord.orchestrator.workflows.engine import EffectFailed, Engine
from accord.orchestrator.workflows.fakes import FakeRuns, FakeTimers, FakeVersions
from accord.orchestrator.workflows.operations import NotRetryable, RunFinished
from accord.orchestrator.workflows.run_model import Run, RunStatus, TaskStatus
from accord.orchestrator.workflows.shipped import with_shipped

from .engine_kit import FakeUnit, fake_stores, workflow_set

SOURCE = "urn:test:orchestrator"

JOINER = """
id: joiner
category: joiner
description: Accounts, a wait, a welcome mail.
trigger: {event: user.created}
tasks:
  - id: create_accounts
    task: create_accounts
    targets: all
  - id: settle
    task: wait
    duration: PT1H
  - id: welcome
    task: send_email
    to: identity
    subject: Welcome
    body: Hello {display_name}
    retry: {max_attempts: 3, backoff: PT1M}
"""

MOVER = """
id: mover
category: mover
description: A department move asks for MFA.
trigger: {event: user.updated, changed: [department]}
tasks:
  - id: mfa
    task: require_mfa_enrolment
"""

LEAVER = """
id: leaver
category: leaver
description: Disable everything.
trigger: {event: user.deleted}
tasks:
  - id: disable_accounts
    task: disable_accounts
"""

CONTRACT_END = """
id: contract-end
category: leaver
description: A contractor's accounts are disabled at the leave date.
trigger: {at: leave_date}
scope: identity.employee_type == "contractor"
tasks:
  - id: disable_accounts
    task: disable_accounts
"""


@dataclass
class Runner:
    """A fake EffectRunner: approvals, entitlements and MFA are Kafka commands, the rest I/O
    (account tasks never come here: the engine starts their sagas)."""

    performed: list[runs.Effect] = field(default_factory=list)
    failures: dict[str, EffectFailed] = field(default_factory=dict)
    outputs: dict[str, Mapping[str, Any]] = field(default_factory=dict)

    def envelopes(
        self,
        command: runs.Effect,
        run: Run,
        identity: Mapping[str, Any],
        cause: Envelope | None,
    ) -> list[Envelope] | None:
        data: list[EventData]
        if isinstance(command, runs.AskApproval):
            data = [
                ApprovalRequested(
                    approval_id=command.idempotency_key,
                    user_id=run.identity_id,
                    workflow_id=run.workflow_id,
                    run_id=run.run_id,
                    task_id=str(command.task_id),
                    approvers=tuple(command.approvers),
                    expires_at=run.updated_at + timedelta(days=7),
                    escalation=command.escalation,
                )
            ]
        elif isinstance(command, runs.RequestEntitlement):
            application, _, entitlement = command.entitlement.partition("/")
            data = [
                AccessRequested(
                    request_id=access_requests.request_id(command),
                    requester_id=f"workflow:{run.workflow_id}",
                    principal_id=run.identity_id,
                    resource=Resource(application=application, entitlement=entitlement),
                )
            ]
        elif isinstance(command, runs.RequireMfa):
            data = [
                MfaEnrolmentRequested(
                    user_id=run.identity_id, factors=("totp",), saga_id=run.run_id
                )
            ]
        else:
            return None
        return [_emit(item, cause) for item in data]

    async def perform(
        self, command: runs.Effect, run: Run, identity: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        self.performed.append(command)
        failure = self.failures.pop(str(command.task_id), None)
        if failure is not None:
            raise failure
        return self.outputs.get(str(command.task_id), {"message_id": f"<{run.run_id}>"})


def _emit(data: EventData, cause: Envelope | None) -> Envelope:
    if cause is not None:
        return new_event(data, source=SOURCE, causation=cause)
    return new_event(data, source=SOURCE)


class NoAccountSagas:
    """A saga selection that starts no account saga (the shipped joiner, leaver, ...), so
    that a test sees the engine's runs alone; `Harness(account_sagas=True)` has them all."""

    def needs_identity(self, saga_type: str, event_type: str) -> bool:
        return False

    def starts(self, saga_type: str, event_type: str, identity: Any, previous: Any = None) -> bool:
        return False


class Harness:
    """The orchestrator's fake ports, the engine's fake stores, the engine and its runner."""

    def __init__(self, *texts: str, account_sagas: bool = False) -> None:
        settings = WorkflowSettings(birthright=everyone(["crm", "wiki"]))
        if not account_sagas:
            settings = replace(settings, selection=NoAccountSagas())
        self.world = FakeWorld(settings)
        self.account_sagas = account_sagas
        self.runner = Runner()
        self.stores = fake_stores(self.world)
        self.restart(*texts)
        self.emitted: list[Envelope] = []
        self.sequence = 0

    def restart(self, *texts: str) -> None:
        """A new engine, with nothing in memory, on the same stores and these workflows (and
        the shipped ones, with the account sagas)."""
        self.workflows = workflow_set(*texts)
        if self.account_sagas:
            self.workflows = with_shipped(self.workflows)
        self.engine = Engine(
            lambda: self.workflows, self.runner, source=SOURCE, clock=self.world.clock
        )

    @property
    def ports(self) -> WorkflowPorts:
        return WorkflowPorts(self.world.ports, self.stores, self.engine)

    @property
    def runs(self) -> FakeRuns:
        assert isinstance(self.stores.runs, FakeRuns)
        return self.stores.runs

    def all_runs(self) -> list[Run]:
        return [row.run for row in sorted(self.runs.rows.values(), key=lambda row: row.seq)]

    def run_of(self, workflow_id: str) -> Run:
        (run,) = [run for run in self.all_runs() if run.workflow_id == workflow_id]
        return run

    @contextlib.asynccontextmanager
    async def transaction(self) -> Any:
        yield FakeUnit(self.stores, self.emitted)

    async def deliver(self, data: EventData) -> list[Envelope]:
        """An identity event through its handler wrapped with the engine."""
        self.sequence += 1
        event = new_event(data, source="urn:test:hr", sequence=self.sequence)
        handler: Any
        if isinstance(data, UserCreated):
            handler = with_workflows(on_user_created)
        elif isinstance(data, UserUpdated):
            handler = with_workflows(on_user_updated)
        else:
            handler = with_workflows(on_user_status)
        events: list[Envelope] = await handler(event, data, self.ports)
        self.emitted += events
        return events + await self.saga_ends(events)

    async def answer(self, request: Envelope, **failure: Any) -> list[Envelope]:
        """The provisioner's answer to a provision.requested (of a task saga or any saga),
        and what the saga ends it causes bring back to the engine."""
        assert isinstance(request.data, ProvisionRequested)
        data = answer_of(request.data, **failure)
        result = new_event(data, source="urn:test:provisioner", causation=request)
        events = await on_account_result_with_workflows(result, data, self.ports)
        self.emitted += events
        return events + await self.saga_ends(events)

    async def saga_ends(self, events: list[Envelope]) -> list[Envelope]:
        """The saga.completed / saga.failed among events read back by the orchestrator (as
        its Kafka route does), and what those cause, in turn."""
        more: list[Envelope] = []
        for event in events:
            if isinstance(event.data, SagaCompleted | SagaFailed):
                answered = await on_task_saga_ended(event, event.data, self.ports)
                self.emitted += answered
                more += answered + await self.saga_ends(answered)
        return more

    def saga_type(self, saga_id: str) -> str | None:
        row = self.world.sagas.rows.get(saga_id)
        return row.state.saga_type if row is not None else None

    def requests(self, events: list[Envelope]) -> list[Envelope]:
        """The provision.requested of workflow task sagas among events."""
        return [
            e
            for e in events
            if isinstance(e.data, ProvisionRequested)
            and self.saga_type(e.data.saga_id) == "workflow_task"
        ]


def workflow_types(events: list[Envelope]) -> list[str]:
    return [e.type for e in events if e.type.startswith("workflow.")]


def joiner(user: str = "u1", **profile: Any) -> UserCreated:
    profile.setdefault("display_name", "Ada Lovelace")
    return UserCreated(user_id=user, user_name=user, **profile)


# --- identity events start runs ---------------------------------------------------------------


async def test_an_identity_event_starts_a_matching_run_and_announces_it() -> None:
    h = Harness(JOINER)
    events = await h.deliver(joiner())

    run = h.run_of("joiner")
    assert run.status is RunStatus.RUNNING
    assert run.identity_id == "u1"
    assert run.trigger["event"] == "user.created"
    assert workflow_types(events) == ["workflow.run_started", "workflow.task_waiting"]
    started = next(e for e in events if e.type == "workflow.run_started")
    assert started.data.run_id == run.run_id  # type: ignore[union-attr]
    assert started.causationid is not None  # caused by the user.created
    requests = h.requests(events)
    assert sorted(r.data.target for r in requests) == ["crm", "wiki"]  # type: ignore[union-attr]
    task = run.task("create_accounts")
    assert task is not None
    assert task.waiting_for is not None
    assert task.waiting_for["kind"] == "account_saga"
    # The task's account work is a saga, the one executor of account work: its requests
    # carry its saga id, and its start is announced as every saga's is.
    (saga_started,) = [e for e in events if isinstance(e.data, SagaStarted)]
    assert saga_started.data.saga_type == "workflow_task"  # type: ignore[union-attr]
    assert saga_started.data.saga_id == task.waiting_for["saga_id"]  # type: ignore[union-attr]
    assert {r.data.saga_id for r in requests} == {task.waiting_for["saga_id"]}  # type: ignore[union-attr]
    assert saga_started.causationid == started.causationid  # caused by the user.created too


async def test_a_redelivered_event_starts_no_second_run_and_a_stale_one_nothing() -> None:
    h = Harness(JOINER)
    created = joiner()
    event = new_event(created, source="urn:test:hr", sequence=1)
    handler = with_workflows(on_user_created)
    await handler(event, created, h.ports)
    again = await handler(event, created, h.ports)
    assert workflow_types(again) == []
    assert len(h.all_runs()) == 1


async def test_a_re_announced_identity_is_an_update_not_a_second_joiner() -> None:
    h = Harness(JOINER, MOVER)
    await h.deliver(joiner(department="Sales"))
    await h.deliver(joiner(department="Research"))  # user.created again, a newer sequence

    assert [run.workflow_id for run in h.all_runs()] == ["joiner", "mover"]
    assert h.run_of("mover").trigger["event"] == "user.updated"


async def test_the_engine_sees_a_partial_update_merged_into_the_registry() -> None:
    h = Harness(MOVER)
    await h.deliver(joiner(department="Sales", title="Analyst"))
    # An HR export that maps the title only: its department (None) is not listed.
    titled = UserUpdated(user_id="u1", user_name="u1", title="Lead", changed=["title"])
    assert workflow_types(await h.deliver(titled)) == []
    moved = UserUpdated(user_id="u1", user_name="u1", department="Research", changed=["department"])
    assert workflow_types(await h.deliver(moved))[0] == "workflow.run_started"

    assert [run.workflow_id for run in h.all_runs()] == ["mover"]
    entry = await h.world.registry.identity("u1")
    assert entry is not None
    profile = entry.profile
    assert (profile.department, profile.title, profile.display_name) == (
        "Research",
        "Lead",
        "Ada Lovelace",
    )


async def test_a_second_run_queues_and_begins_when_the_first_ends() -> None:
    h = Harness(JOINER, MOVER)
    created = await h.deliver(joiner(department="Sales"))
    moved = await h.deliver(
        UserUpdated(user_id="u1", user_name="u1", display_name="Ada", department="Research")
    )
    assert workflow_types(moved) == []
    assert h.run_of("mover").status is RunStatus.QUEUED

    for request in h.requests(created):
        await h.answer(request)
    h.world.clock.advance(timedelta(hours=1))
    await loops.wake_due(h.engine, h.transaction)
    await loops.perform_due(h.engine, h.transaction)

    assert h.run_of("joiner").status is RunStatus.COMPLETED
    mover = h.run_of("mover")
    assert mover.status is RunStatus.COMPLETED  # began, asked for MFA, done at once
    kinds = workflow_types(h.emitted)
    assert kinds.index("workflow.run_completed") < len(kinds) - 1
    mfa = [e for e in h.emitted if isinstance(e.data, MfaEnrolmentRequested)]
    assert [e.data.saga_id for e in mfa] == [mover.run_id]  # type: ignore[union-attr]


async def test_a_leaver_cancels_the_active_joiner_run_and_starts() -> None:
    h = Harness(JOINER, LEAVER)
    created = await h.deliver(joiner())
    for request in h.requests(created):
        await h.answer(request)
    assert h.run_of("joiner").status is RunStatus.WAITING  # the one-hour wait

    left = await h.deliver(UserDeleted(user_id="u1"))

    joiner_run = h.run_of("joiner")
    assert joiner_run.status is RunStatus.CANCELLED
    assert joiner_run.cancel_reason == runs.SUPERSEDED
    assert h.stores.wakeups.due == {}  # type: ignore[attr-defined]
    leaver = h.run_of("leaver")
    assert leaver.status is RunStatus.RUNNING
    assert workflow_types(left)[:2] == ["workflow.run_cancelled", "workflow.run_started"]
    disables = h.requests(left)
    assert sorted((r.data.target, r.data.operation) for r in disables) == [  # type: ignore[union-attr]
        ("crm", "disable"),
        ("wiki", "disable"),
    ]


# --- provisioning results -------------------------------------------------------------------


async def test_provisioning_over_two_targets_completes_once_both_answered() -> None:
    h = Harness(JOINER)
    crm, wiki = sorted(h.requests(await h.deliver(joiner())), key=lambda e: e.data.target)  # type: ignore[union-attr]

    first = await h.answer(crm)
    assert workflow_types(first) == []
    task = h.run_of("joiner").task("create_accounts")
    assert task is not None
    assert task.status is TaskStatus.RUNNING
    assert task.waiting_for is not None  # its saga waits for wiki

    second = await h.answer(wiki)
    # The saga ends; read back, its end completes the task, and the run goes on.
    assert [e.type for e in second] == [
        "saga.completed",
        "workflow.task_completed",
        "workflow.task_waiting",
    ]
    run = h.run_of("joiner")
    assert run.vars["create_accounts"]["targets"] == ["crm", "wiki"]
    settle = run.task("settle")
    assert settle is not None
    assert settle.status is TaskStatus.WAITING
    # The registry keeps the accounts the run's results report, as for a saga's.
    assert set((await h.world.registry.accounts("u1")).held) == {"crm", "wiki"}


async def test_a_duplicate_result_is_ignored() -> None:
    h = Harness(JOINER)
    crm, _wiki = sorted(h.requests(await h.deliver(joiner())), key=lambda e: e.data.target)  # type: ignore[union-attr]
    await h.answer(crm)
    revision = h.run_of("joiner").revision

    again = await h.answer(crm)

    assert again == []
    assert h.run_of("joiner").revision == revision
    task = h.run_of("joiner").task("create_accounts")
    assert task is not None
    assert task.status is TaskStatus.RUNNING


async def test_a_failed_target_fails_the_task_with_its_reason() -> None:
    h = Harness(JOINER)
    crm, wiki = sorted(h.requests(await h.deliver(joiner())), key=lambda e: e.data.target)  # type: ignore[union-attr]
    # The saga settles every step before it ends: the task fails once wiki answered too.
    assert workflow_types(await h.answer(crm, reason="refused", retryable=False)) == []
    failed = await h.answer(wiki)
    assert workflow_types(failed) == ["workflow.task_failed", "workflow.run_failed"]
    run = h.run_of("joiner")
    assert run.status is RunStatus.FAILED
    task = run.task("create_accounts")
    assert task is not None
    assert task.error == "provisioning failed in crm: refused"
    # A repeated answer changes nothing.
    assert await h.answer(wiki) == []
    # The account the saga did create is kept (a task saga never rolls back).
    assert list((await h.world.registry.accounts("u1")).held) == ["wiki"]


# --- account tasks share the saga machine with the account sagas -------------------------------

PRE_HIRE = """
id: pre-hire
category: joiner
description: Accounts created disabled, for the hire date.
trigger: {event: user.created}
tasks:
  - id: create_disabled
    task: create_accounts
    targets: all
    disabled: true
"""

FLAKY = """
id: flaky
category: custom
description: One named target, retried once after a transient failure.
trigger: {event: user.created}
tasks:
  - id: crm_account
    task: create_accounts
    targets: [crm]
    retry: {max_attempts: 2, backoff: PT1M}
"""


async def test_a_task_saga_queues_behind_the_joiner_saga_and_begins_when_it_ends() -> None:
    h = Harness(PRE_HIRE, account_sagas=True)
    created = await h.deliver(joiner())

    # The shipped joiner saga holds the identity; the task's saga waits its turn.
    assert h.requests(created) == []
    waiting = h.run_of("pre-hire").task("create_disabled")
    assert waiting is not None
    assert waiting.waiting_for is not None
    task_saga = h.world.sagas.rows[waiting.waiting_for["saga_id"]].state
    assert task_saga.status == "queued"

    joiner_requests = [e for e in created if isinstance(e.data, ProvisionRequested)]
    begun: list[Envelope] = []
    for request in joiner_requests:
        begun += await h.answer(request)

    # Its turn: planned now, on the birthright, with the disabled profile the task asked for.
    requests = h.requests(begun)
    assert sorted(r.data.target for r in requests) == ["crm", "wiki"]  # type: ignore[union-attr]
    assert {r.data.profile.active for r in requests} == {False}  # type: ignore[union-attr]
    for request in requests:
        await h.answer(request)
    assert h.run_of("pre-hire").status is RunStatus.COMPLETED


async def test_a_leaver_behind_a_queued_create_task_leaves_no_account_behind() -> None:
    h = Harness(PRE_HIRE, account_sagas=True)
    created = await h.deliver(joiner())
    left = await h.deliver(UserDeleted(user_id="u1"))

    # The run is superseded; its saga stays queued, the leaver saga behind it.
    assert h.run_of("pre-hire").status is RunStatus.CANCELLED
    assert h.requests(left) == []
    after: list[Envelope] = []
    for request in [e for e in created if isinstance(e.data, ProvisionRequested)]:
        after += await h.answer(request)

    # The task saga's turn comes for an identity that left: it creates nothing; then the
    # leaver disables every account the joiner made.
    states = {row.state.saga_type: row.state for row in h.world.sagas.rows.values()}
    assert states["workflow_task"].status == "completed"
    assert states["workflow_task"].steps == ()
    disables = [e.data for e in after if isinstance(e.data, ProvisionRequested)]
    assert sorted((d.target, d.operation) for d in disables) == [
        ("crm", "disable"),
        ("wiki", "disable"),
    ]
    # The cancelled run took no answer from its saga's end.
    assert h.run_of("pre-hire").status is RunStatus.CANCELLED


async def test_a_transient_saga_failure_is_retried_by_the_task_policy_with_a_new_saga() -> None:
    h = Harness(FLAKY)
    (first,) = h.requests(await h.deliver(joiner()))
    failed = await h.answer(first, reason="target down", retryable=True)
    assert workflow_types(failed) == ["workflow.task_waiting"]  # for its retry's backoff
    assert h.run_of("flaky").status is RunStatus.WAITING

    h.world.clock.advance(timedelta(minutes=1))
    await loops.wake_due(h.engine, h.transaction)
    (second,) = h.requests(h.emitted)[-1:]
    assert second.data.saga_id != first.data.saga_id  # type: ignore[union-attr]
    await h.answer(second)
    run = h.run_of("flaky")
    assert run.status is RunStatus.COMPLETED
    task = run.task("crm_account")
    assert task is not None
    assert task.attempts == 2


async def test_an_operator_who_cancels_a_task_saga_fails_its_task_for_good() -> None:
    h = Harness(FLAKY)
    (request,) = h.requests(await h.deliver(joiner()))
    saga_id = request.data.saga_id  # type: ignore[union-attr]

    cancelled = await on_operator(saga_id, CancelRequested("wrong target"), h.world.ports)
    answered = await h.saga_ends(cancelled)

    assert workflow_types(answered) == ["workflow.task_failed", "workflow.run_failed"]
    task = h.run_of("flaky").task("crm_account")
    assert task is not None
    assert task.attempts == 1  # an operator's cancel is no transient failure: not retried
    assert task.error == "cancelled: wrong target"
    # The provisioner's late answer to the cancelled saga changes nothing.
    assert await h.answer(request) == []


async def test_a_refusal_is_not_retried() -> None:
    h = Harness(FLAKY)
    (first,) = h.requests(await h.deliver(joiner()))
    failed = await h.answer(first, reason="no such department", retryable=False)
    assert workflow_types(failed) == ["workflow.task_failed", "workflow.run_failed"]


# --- tasks after a shipped account saga ---------------------------------------------------------

JOINER_THEN_MFA = """
id: accord-joiner
category: joiner
description: The joiner saga, then MFA enrolment once the accounts exist.
trigger: {event: user.created}
tasks:
  - {id: accounts, task: account_saga, saga: joiner}
  - {id: mfa, task: require_mfa_enrolment}
"""

LEAVER_THEN_SESSIONS = """
id: accord-leaver
category: leaver
description: The leaver saga, then every session revoked.
trigger: {event: user.deleted}
tasks:
  - {id: accounts, task: account_saga, saga: leaver}
  - {id: sessions, task: revoke_sessions}
"""


def saga_requests(events: list[Envelope], saga_type: str, h: Harness) -> list[Envelope]:
    return [
        e
        for e in events
        if isinstance(e.data, ProvisionRequested) and h.saga_type(e.data.saga_id) == saga_type
    ]


async def test_tasks_after_the_joiner_saga_run_once_its_accounts_exist() -> None:
    h = Harness(JOINER_THEN_MFA, account_sagas=True)
    created = await h.deliver(joiner())

    run = h.run_of("accord-joiner")
    task = run.task("accounts")
    assert task is not None
    assert task.waiting_for is not None
    assert task.waiting_for["saga_id"] == saga_id_of(created[0].causationid or "")
    assert not any(isinstance(e.data, MfaEnrolmentRequested) for e in h.emitted)

    answered: list[Envelope] = []
    for request in saga_requests(created, "joiner", h):
        answered += await h.answer(request)

    run = h.run_of("accord-joiner")
    assert run.status is RunStatus.COMPLETED
    assert run.vars["accounts"]["targets"] == ["crm", "wiki"]
    mfa = [e for e in answered if isinstance(e.data, MfaEnrolmentRequested)]
    assert [e.data.saga_id for e in mfa] == [run.run_id]  # type: ignore[union-attr]


async def test_a_leaver_round_that_fails_is_not_the_end_its_run_waits_for() -> None:
    h = Harness(LEAVER_THEN_SESSIONS, account_sagas=True)
    for request in saga_requests(await h.deliver(joiner()), "joiner", h):
        await h.answer(request)
    left = await h.deliver(UserDeleted(user_id="u1"))
    crm, wiki = sorted(saga_requests(left, "leaver", h), key=lambda e: e.data.target)  # type: ignore[union-attr]

    await h.answer(crm, reason="target down", retryable=True)
    failed_round = await h.answer(wiki)

    # The leaver saga failed a round and retries by itself: its run still waits.
    assert [e.type for e in failed_round] == ["saga.failed"]
    assert failed_round[0].data.retrying  # type: ignore[union-attr]
    waiting = h.run_of("accord-leaver").task("accounts")
    assert waiting is not None
    assert waiting.status is TaskStatus.RUNNING
    assert waiting.waiting_for is not None
    retried = await on_operator(crm.data.saga_id, RetryRequested(), h.world.ports)  # type: ignore[union-attr]
    (again,) = saga_requests(retried, "leaver", h)
    done = await h.answer(again)

    assert "workflow.task_completed" in workflow_types(done)  # the saga's end, read back
    await loops.perform_due(h.engine, h.transaction)
    assert h.run_of("accord-leaver").status is RunStatus.COMPLETED
    assert [type(command) for command in h.runner.performed] == [runs.RevokeSessions]


# --- a run keeps its version across restarts -------------------------------------------------

#: The joiner edited: no settle wait any more, so its tasks are not the same as before.
JOINER_EDITED = JOINER.replace(
    """  - id: settle
    task: wait
    duration: PT1H
""",
    "",
)


async def test_a_run_goes_on_with_its_version_after_a_restart_with_an_edited_workflow() -> None:
    h = Harness(JOINER)
    requests = h.requests(await h.deliver(joiner()))
    started = h.run_of("joiner")

    h.restart(JOINER_EDITED)
    assert h.workflows["joiner"].version != started.version
    for request in requests:
        await h.answer(request)

    run = h.run_of("joiner")
    assert run.status is RunStatus.WAITING
    assert run.version == started.version
    settle = run.task("settle")  # the old version's wait, which the edited one has not
    assert settle is not None
    assert settle.status is TaskStatus.WAITING


async def test_a_version_forgotten_from_memory_is_read_back_from_the_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine_module, "KNOWN_VERSIONS", 1)
    h = Harness(JOINER)
    requests = h.requests(await h.deliver(joiner()))
    started = h.run_of("joiner")

    # The same engine loads the edited set: the run's version is pushed out of memory.
    h.workflows = workflow_set(JOINER_EDITED)
    h.engine.current()
    assert list(h.engine._known) == [("joiner", h.workflows["joiner"].version)]
    for request in requests:
        await h.answer(request)

    run = h.run_of("joiner")
    assert run.version == started.version
    settle = run.task("settle")  # the old version's wait: read back from the version store
    assert settle is not None
    assert settle.status is TaskStatus.WAITING


async def test_a_run_whose_version_was_not_kept_fails_when_its_workflow_changed_shape() -> None:
    h = Harness(JOINER)
    requests = h.requests(await h.deliver(joiner()))

    h.stores = replace(h.stores, versions=FakeVersions())  # as before versions were kept
    h.restart(JOINER_EDITED)
    events = [event for request in requests for event in await h.answer(request)]

    assert workflow_types(events) == ["workflow.run_failed"]
    run = h.run_of("joiner")
    assert run.status is RunStatus.FAILED
    failed = next(e for e in events if e.type == "workflow.run_failed")
    assert "is no longer loaded" in failed.data.reason  # type: ignore[union-attr]


async def test_a_kept_version_is_found_only_as_the_version_it_was_kept_as() -> None:
    (loaded,) = workflow_set(JOINER)
    versions = FakeVersions()
    await versions.record(loaded.definition, loaded.version, datetime(2026, 1, 5, tzinfo=UTC))
    assert await versions.definition("joiner", loaded.version) == loaded.definition
    # What a release whose definition models read otherwise would make of it: not found.
    text, seen = versions.kept[("joiner", loaded.version)]
    assert '"PT1H"' in text
    versions.kept[("joiner", loaded.version)] = (text.replace('"PT1H"', '"PT2H"'), seen)
    assert await versions.definition("joiner", loaded.version) is None
    versions.kept[("joiner", loaded.version)] = ('{"id": "joiner"}', seen)
    assert await versions.definition("joiner", loaded.version) is None


# --- wake-ups, timers, effects --------------------------------------------------------------


async def test_a_wakeup_ends_a_wait_and_queues_the_next_tasks_effect() -> None:
    h = Harness(JOINER)
    for request in h.requests(await h.deliver(joiner())):
        await h.answer(request)

    assert await loops.wake_due(h.engine, h.transaction) == 0  # not yet
    h.world.clock.advance(timedelta(minutes=59))
    assert await loops.wake_due(h.engine, h.transaction) == 0
    h.world.clock.advance(timedelta(minutes=1))
    assert await loops.wake_due(h.engine, h.transaction) == 1

    run = h.run_of("joiner")
    settle = run.task("settle")
    assert settle is not None
    assert settle.status is TaskStatus.COMPLETED
    welcome = run.task("welcome")
    assert welcome is not None
    assert welcome.status is TaskStatus.RUNNING
    (queued,) = h.stores.effects.queued.values()  # type: ignore[attr-defined]
    assert isinstance(queued.command, runs.SendMail)
    assert queued.effect_id == f"{run.run_id}:welcome:1"


async def test_the_effect_loop_performs_an_io_effect_and_records_its_outputs() -> None:
    h = Harness(JOINER)
    for request in h.requests(await h.deliver(joiner())):
        await h.answer(request)
    h.world.clock.advance(timedelta(hours=1))
    await loops.wake_due(h.engine, h.transaction)
    h.runner.outputs["welcome"] = {"message_id": "<m-1@accord>"}

    assert await loops.perform_due(h.engine, h.transaction) == 1

    (performed,) = h.runner.performed
    assert isinstance(performed, runs.SendMail)
    assert performed.to == ("identity",)
    run = h.run_of("joiner")
    assert run.status is RunStatus.COMPLETED
    assert run.vars["welcome"] == {"message_id": "<m-1@accord>"}
    assert h.stores.effects.queued == {}  # type: ignore[attr-defined]
    completed = [e for e in h.emitted if e.type == "workflow.task_completed"]
    assert completed[-1].data.output_keys == ("message_id",)  # type: ignore[union-attr]
    assert workflow_types(h.emitted)[-1] == "workflow.run_completed"


async def test_a_retryable_perform_failure_schedules_a_retry_that_performs_again() -> None:
    h = Harness(JOINER)
    for request in h.requests(await h.deliver(joiner())):
        await h.answer(request)
    h.world.clock.advance(timedelta(hours=1))
    await loops.wake_due(h.engine, h.transaction)
    h.runner.failures["welcome"] = EffectFailed("smtp down", retryable=True, retry_after_s=120)

    await loops.perform_due(h.engine, h.transaction)

    welcome = h.run_of("joiner").task("welcome")
    assert welcome is not None
    assert welcome.status is TaskStatus.WAITING
    assert welcome.waiting_for is not None
    assert welcome.waiting_for["kind"] == "retry"
    (wakeup,) = h.stores.wakeups.due.values()  # type: ignore[attr-defined]
    assert wakeup.purpose == "retry"
    assert wakeup.fire_at == h.world.clock.now + timedelta(seconds=120)  # Retry-After wins

    h.world.clock.advance(timedelta(seconds=120))
    await loops.wake_due(h.engine, h.transaction)
    await loops.perform_due(h.engine, h.transaction)
    assert [c.idempotency_key.rsplit(":", 1)[1] for c in h.runner.performed] == ["1", "2"]
    assert h.run_of("joiner").status is RunStatus.COMPLETED


async def test_an_effect_of_a_cancelled_run_is_not_performed() -> None:
    h = Harness(JOINER)
    for request in h.requests(await h.deliver(joiner())):
        await h.answer(request)
    h.world.clock.advance(timedelta(hours=1))
    await loops.wake_due(h.engine, h.transaction)
    ops = loops.Operations(h.engine, h.transaction)

    cancelled = await ops.cancel(h.run_of("joiner").run_id, "operator said so")

    assert cancelled.status is RunStatus.CANCELLED
    assert await loops.perform_due(h.engine, h.transaction) == 0
    assert h.runner.performed == []
    with pytest.raises(RunFinished):
        await ops.cancel(cancelled.run_id, "again")


async def test_a_timer_fires_a_run_only_while_the_identity_is_in_scope() -> None:
    h = Harness(CONTRACT_END)
    await h.deliver(joiner("c1", employee_type="contractor", leave_date="2026-02-01"))
    await h.deliver(joiner("e1", employee_type="contractor", leave_date="2026-02-01"))
    assert len(h.stores.timers.timers) == 2  # type: ignore[attr-defined]
    # e1 became an employee since: still timed, no longer in scope.
    await h.deliver(
        UserUpdated(user_id="e1", user_name="e1", employee_type="employee", leave_date="2026-02-01")
    )
    assert h.all_runs() == []

    h.world.clock.advance(timedelta(days=40))
    assert await loops.fire_due(h.engine, h.transaction) == 2

    (run,) = h.all_runs()
    assert (run.workflow_id, run.identity_id) == ("contract-end", "c1")
    assert run.trigger["kind"] == "timer"
    states = {t.key.identity_id: t.state for t in h.stores.timers.timers.values()}  # type: ignore[attr-defined]
    assert states == {"c1": "fired", "e1": "skipped"}
    assert await loops.fire_due(h.engine, h.transaction) == 0  # once


async def test_a_date_already_due_fires_at_once_and_a_removed_date_cancels() -> None:
    h = Harness(CONTRACT_END)
    events = await h.deliver(
        joiner("c1", employee_type="contractor", leave_date=h.world.clock.now.date().isoformat())
    )
    assert "workflow.run_started" in workflow_types(events)  # midnight today: within catch-up
    await h.deliver(joiner("c2", employee_type="contractor", leave_date="2026-03-01"))
    await h.deliver(UserUpdated(user_id="c2", user_name="c2", employee_type="contractor"))
    timers = {t.key.identity_id: t.state for t in h.stores.timers.timers.values()}  # type: ignore[attr-defined]
    assert timers == {"c1": "fired", "c2": "cancelled"}


CUSTOM_END = """
id: custom-end
category: leaver
description: A contractor's accounts are disabled on the custom contract end date, at 18:00.
trigger: {at: attributes.contract_end, offset: PT18H}
scope: identity.employee_type == "contractor"
tasks:
  - id: disable_accounts
    task: disable_accounts
"""


async def test_a_custom_date_attribute_plans_moves_cancels_and_fires_its_timer_once() -> None:
    h = Harness(CUSTOM_END)
    timers = h.stores.timers
    assert isinstance(timers, FakeTimers)

    def states() -> dict[tuple[str, str], str]:
        return {(t.key.identity_id, t.key.date_value): t.state for t in timers.timers.values()}

    def contractor(user: str, **attributes: str) -> dict[str, Any]:
        return {
            "user_id": user,
            "user_name": user,
            "employee_type": "contractor",
            "attributes": attributes,
        }

    await h.deliver(UserCreated(**contractor("c1", contract_end="2026-02-01", site="Lyon")))
    await h.deliver(UserCreated(**contractor("c2", contract_end="2026-02-01T09:00:00Z")))
    await h.deliver(UserCreated(**contractor("c3", contract_end="end of the month")))
    assert states() == {
        ("c1", "2026-02-01"): "scheduled",
        ("c2", "2026-02-01T09:00:00Z"): "scheduled",
    }
    (c1,) = [t for t in timers.timers.values() if t.key.identity_id == "c1"]
    assert c1.fire_at == datetime(2026, 2, 1, 18, tzinfo=UTC)

    # Moved for c1, removed for c2, another custom attribute changed: same timer for c1.
    await h.deliver(UserUpdated(**contractor("c1", contract_end="2026-02-08", site="Lyon")))
    await h.deliver(UserUpdated(**contractor("c2")))
    await h.deliver(UserUpdated(**contractor("c1", contract_end="2026-02-08", site="Paris")))
    assert states() == {
        ("c1", "2026-02-01"): "cancelled",
        ("c1", "2026-02-08"): "scheduled",
        ("c2", "2026-02-01T09:00:00Z"): "cancelled",
    }

    h.world.clock.advance(timedelta(days=60))
    assert await loops.fire_due(h.engine, h.transaction) == 1
    (run,) = h.all_runs()
    assert (run.workflow_id, run.identity_id) == ("custom-end", "c1")
    assert (run.trigger["attribute"], run.trigger["date_value"]) == (
        "attributes.contract_end",
        "2026-02-08",
    )
    await h.deliver(UserUpdated(**contractor("c1", contract_end="2026-02-08", site="Nice")))
    assert await loops.fire_due(h.engine, h.transaction) == 0  # fired once
    assert states()[("c1", "2026-02-08")] == "fired"


# --- operators ----------------------------------------------------------------------------------


async def test_retry_runs_the_failed_task_again_then_the_rest() -> None:
    h = Harness(JOINER)
    crm, wiki = sorted(h.requests(await h.deliver(joiner())), key=lambda e: e.data.target)  # type: ignore[union-attr]
    await h.answer(crm, reason="refused", retryable=False)
    await h.answer(wiki)
    ops = loops.Operations(h.engine, h.transaction)
    before = len(h.emitted)

    retried = await ops.retry(h.run_of("joiner").run_id)

    assert retried.status is RunStatus.RUNNING
    task = retried.task("create_accounts")
    assert task is not None
    assert task.attempts == 2
    again = h.requests(h.emitted[before:])
    # The second attempt is a saga of its own (a new id, so the first one's late answers
    # are not its answers), planned again: the create_accounts of both birthright targets.
    assert {r.data.saga_id for r in again} != {crm.data.saga_id}  # type: ignore[union-attr]
    assert sorted(r.data.target for r in again) == ["crm", "wiki"]  # type: ignore[union-attr]
    for request in again:
        await h.answer(request)
    assert h.run_of("joiner").status is RunStatus.WAITING
    with pytest.raises(NotRetryable):
        await ops.retry(retried.run_id)


async def test_start_on_demand_starts_a_run_per_identity_in_scope() -> None:
    h = Harness(CONTRACT_END)
    await h.deliver(joiner("c1", employee_type="contractor"))
    await h.deliver(joiner("e1", employee_type="employee"))
    ops = loops.Operations(h.engine, h.transaction)

    started = await ops.start_on_demand("contract-end", ["c1", "e1"], "admin")

    assert len(started) == 1
    run = h.runs.rows[started[0]].run
    assert run.identity_id == "c1"
    assert run.trigger["kind"] == "on_demand"
    # c1 holds no account (no account saga ran): its disable saga had nothing to do,
    # completed at once, and so did its task and the run.
    assert run.status is RunStatus.COMPLETED
    (saga,) = [row.state for row in h.world.sagas.rows.values()]
    assert (saga.saga_type, saga.status, saga.steps) == ("workflow_task", "completed", ())


HANDOVER = """
id: handover
category: custom
description: A custom extension hands the mailbox over and calls back.
trigger: {event: user.created}
tasks:
  - id: handover
    task: call_extension
    url: https://hooks.example.com/handover
    secret_env: HOOK_SECRET
    wait_for_callback: true
    timeout: PT1H
"""


async def waiting_for_callback(h: Harness, marks: InMemoryCallbacks) -> Run:
    """A handover run whose extension was called: its task waits for the callback."""
    await h.deliver(joiner())
    assert await loops.perform_due(h.engine, h.transaction) == 1
    run = h.run_of("handover")
    await marks.register(run.run_id, "handover", token="tok", secret_env="HOOK_SECRET")
    return run


def with_callbacks(h: Harness) -> InMemoryCallbacks:
    marks = InMemoryCallbacks(environ={"HOOK_SECRET": "s"})
    h.stores = replace(h.stores, callbacks=marks)
    return marks


async def test_a_callback_completes_the_waiting_task_once() -> None:
    h = Harness(HANDOVER)
    marks = with_callbacks(h)
    run = await waiting_for_callback(h, marks)
    delivery = loops.CallbackDelivery(h.engine, h.transaction)

    assert await delivery.deliver(run.run_id, "handover", {"mailbox": "moved"})
    assert not await delivery.deliver(run.run_id, "handover", {"mailbox": "again"})

    done = h.run_of("handover")
    assert done.status is RunStatus.COMPLETED
    assert done.vars["handover"]["mailbox"] == "moved"
    awaited = await marks.lookup(run.run_id, "handover")
    assert awaited is not None
    assert awaited.state is CallbackState.DELIVERED


async def test_after_the_timeout_the_callback_is_closed_and_refused() -> None:
    h = Harness(HANDOVER)
    marks = with_callbacks(h)
    run = await waiting_for_callback(h, marks)
    h.world.clock.advance(timedelta(hours=1))

    assert await loops.wake_due(h.engine, h.transaction) == 1

    assert h.run_of("handover").status is RunStatus.FAILED
    awaited = await marks.lookup(run.run_id, "handover")
    assert awaited is not None
    assert awaited.state is CallbackState.CLOSED
    delivery = loops.CallbackDelivery(h.engine, h.transaction)
    assert not await delivery.deliver(run.run_id, "handover", {"mailbox": "late"})
    assert not await delivery.deliver("wfr-unknown", "handover", {})


APPROVE = """
id: access-check
category: custom
description: The manager approves, then MFA is asked.
trigger: {event: user.created}
tasks:
  - id: ok
    task: approval
    approvers: [manager]
    timeout: P7D
    on_timeout: reject
  - id: mfa
    task: require_mfa_enrolment
"""


def decision(asked: ApprovalRequested, approval_id: str, *, approved: bool) -> ApprovalDecided:
    return ApprovalDecided(
        approval_id=approval_id,
        user_id=asked.user_id,
        run_id=asked.run_id,
        task_id=asked.task_id,
        approved=approved,
        decided_by="u-boss",
        decided_at=datetime(2027, 3, 1, tzinfo=UTC),
    )


async def decide(h: Harness, data: ApprovalDecided) -> list[Envelope]:
    event = new_event(data, source="accord/authz")
    return await on_approval_decided(event, data, h.ports)


async def test_the_decision_on_the_current_ask_moves_the_run_on_and_no_other_does() -> None:
    h = Harness(APPROVE)
    (asked,) = [e.data for e in await h.deliver(joiner()) if isinstance(e.data, ApprovalRequested)]
    run = h.run_of("access-check")
    ok = run.task("ok")
    assert ok is not None
    assert ok.status is TaskStatus.WAITING
    assert asked.approval_id == f"{run.run_id}:ok:1"

    assert await decide(h, decision(asked, f"{run.run_id}:ok:7", approved=True)) == []
    assert h.run_of("access-check").task("ok") == ok  # an ask it no longer waits for

    events = await decide(h, decision(asked, asked.approval_id, approved=True))

    done = h.run_of("access-check")
    assert done.vars["ok"]["approved"] is True
    assert any(isinstance(e.data, MfaEnrolmentRequested) for e in events)
    assert await decide(h, decision(asked, asked.approval_id, approved=False)) == []


async def test_a_rejection_fails_the_run_as_on_reject_stop_says() -> None:
    h = Harness(APPROVE)
    (asked,) = [e.data for e in await h.deliver(joiner()) if isinstance(e.data, ApprovalRequested)]

    await decide(h, decision(asked, asked.approval_id, approved=False))

    run = h.run_of("access-check")
    assert run.status is RunStatus.FAILED
    mfa = run.task("mfa")
    assert mfa is not None
    assert mfa.status is TaskStatus.CANCELLED


ENTITLE = """
id: payroll-access
category: custom
description: Payroll access through authz, then MFA.
trigger: {event: user.created}
tasks:
  - id: payroll
    task: request_entitlement
    entitlement: payroll/viewer
    justification: Payroll clerk
    timeout: P3D
  - id: mfa
    task: require_mfa_enrolment
"""
PAYROLL = Resource(application="payroll", entitlement="viewer")


async def requested(h: Harness) -> AccessRequested:
    (asked,) = [e.data for e in await h.deliver(joiner()) if isinstance(e.data, AccessRequested)]
    return asked


async def from_authz(
    h: Harness, data: AccessGranted | AccessDecided | AccessApprovalDecided
) -> list[Envelope]:
    event = new_event(data, source="accord/authz")
    if isinstance(data, AccessGranted):
        return await on_access_changed_with_workflows(event, data, h.ports)
    return await on_access_decided(event, data, h.ports)


def granted(asked: AccessRequested, **fields: Any) -> AccessGranted:
    return AccessGranted(
        request_id=asked.request_id,
        grant_id=f"grant-{asked.request_id}",
        principal_id=asked.principal_id,
        resource=PAYROLL,
        **fields,
    )


async def test_the_request_waits_for_authz_and_its_grant_completes_the_task() -> None:
    h = Harness(ENTITLE)
    asked = await requested(h)
    run = h.run_of("payroll-access")
    assert asked.request_id == f"{run.run_id}:payroll:1"
    payroll = run.task("payroll")
    assert payroll is not None
    assert payroll.status is TaskStatus.WAITING
    assert (payroll.waiting_for or {})["kind"] == "access_decision"
    assert "workflow.task_waiting" in workflow_types(h.emitted)
    assert [w.purpose for w in h.stores.wakeups.due.values()] == ["access_timeout"]  # type: ignore[attr-defined]

    # authz's permit and an approved stage decide nothing yet: the grant follows.
    permit = AccessDecided(
        request_id=asked.request_id, principal_id="u1", resource=PAYROLL, decision="permit"
    )
    assert await from_authz(h, permit) == []
    assert h.run_of("payroll-access") == run

    line = Provisioning(target="crm", group="payroll-viewers")
    events = await from_authz(h, granted(asked, provisioning=(line,)))

    done = h.run_of("payroll-access")
    assert done.vars["payroll"] == {
        "granted": True, "grant_id": f"grant-{asked.request_id}", "expires_at": None,
    }  # fmt: skip
    assert any(isinstance(e.data, MfaEnrolmentRequested) for e in events)
    # The grant's access saga runs as for any grant: it adds the group membership.
    saga = access_saga_id(AccessGranted, f"grant-{asked.request_id}")
    assert await h.world.sagas.status(saga) is not None
    assert await from_authz(h, granted(asked)) == []  # a redelivery moves nothing


async def test_a_denied_stage_fails_the_run_and_a_grant_of_no_task_is_only_a_grant() -> None:
    h = Harness(ENTITLE)
    asked = await requested(h)
    stage = AccessApprovalDecided(
        request_id=asked.request_id, principal_id="u1", stage=1, outcome="denied",
        approver_id="u-boss",
    )  # fmt: skip

    events = await from_authz(h, stage)

    run = h.run_of("payroll-access")
    assert run.status is RunStatus.FAILED
    payroll = run.task("payroll")
    assert payroll is not None
    assert payroll.error == "denied by u-boss at approval stage 1"
    assert workflow_types(events) == ["workflow.task_failed", "workflow.run_failed"]
    # A person's own request (no workflow task) is a grant and nothing else.
    other = AccessGranted(
        request_id="req-7", grant_id="grant-req-7", principal_id="u1", resource=PAYROLL
    )
    assert await from_authz(h, other) == []


async def test_an_answer_for_another_identity_or_an_unknown_run_is_ignored() -> None:
    h = Harness(ENTITLE)
    asked = await requested(h)
    run = h.run_of("payroll-access")
    deny = AccessDecided(
        request_id=asked.request_id, principal_id="u2", resource=PAYROLL, decision="deny"
    )
    assert await from_authz(h, deny) == []
    unknown = deny.model_copy(update={"request_id": "wfr-nope:payroll:1", "principal_id": "u1"})
    assert await from_authz(h, unknown) == []
    assert h.run_of("payroll-access") == run


async def test_no_decision_before_the_timeout_fails_the_task_on_its_wakeup() -> None:
    h = Harness(ENTITLE)
    await requested(h)
    h.world.clock.advance(timedelta(days=3) - timedelta(seconds=1))
    assert await loops.wake_due(h.engine, h.transaction) == 0
    h.world.clock.advance(timedelta(seconds=1))
    assert await loops.wake_due(h.engine, h.transaction) == 1

    run = h.run_of("payroll-access")
    assert run.status is RunStatus.FAILED
    assert run.task("payroll").error == "no access decision before the timeout"  # type: ignore[union-attr]
