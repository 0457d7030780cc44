"""The run state machine (workflows/runs.py): every task kind through the shipped examples and
hand-written workflows, retries, waits, approvals, callbacks, cancels, ignored events, and
hypothesis-driven interleavings of duplicates, late wake-ups, cancels and callbacks."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.orchestrator.workflows import definitions as d
from accord.orchestrator.workflows import runs as r
from accord.orchestrator.workflows.expressions import compile_condition, identity_context
from accord.orchestrator.workflows.loader import Checks, load_files, load_folder
from accord.orchestrator.workflows.run_model import Run, RunStatus, TaskStatus
from accord.orchestrator.workflows.schema import SCHEMA_PATH

EXAMPLES = load_folder(SCHEMA_PATH.parent / "examples", Checks(lambda text: None))
NOW = datetime(2027, 2, 22, 0, 0, tzinfo=UTC)
PROFILE = {
    "user_id": "u1",
    "user_name": "ada",
    "employee_type": "employee",
    "hire_date": "2027-03-01",
    "time_zone": "Europe/Paris",
    "manager_id": "m1",
    "department": "research",
}


def conditions(text: str, context: Mapping[str, Any]) -> bool:
    return compile_condition(text).holds(context)


def context(profile: Mapping[str, Any] = PROFILE) -> dict[str, Any]:
    return identity_context(profile, now=NOW)


def workflow(tasks: str, category: str = "custom") -> d.Workflow:
    text = (
        f"id: sample\ncategory: {category}\ndescription: A sample.\n"
        "trigger: {event: user.created}\ntasks:\n" + textwrap.indent(textwrap.dedent(tasks), "  ")
    )
    return load_files({"sample.yaml": text}, Checks(lambda text: None))["sample"].definition


class Driver:
    """Feeds events to advance() and keeps the run, the time and every step's commands."""

    def __init__(
        self, definition: d.Workflow, profile: Mapping[str, Any] = PROFILE, now: datetime = NOW
    ) -> None:
        self.definition = definition
        self.now = now
        self.context = identity_context(profile, now=now)
        self.run = r.new_run(definition, "v1", "u1", {"kind": "event"}, "run-1", now)
        self.last: r.Step | None = None

    def send(self, event: r.Event, at: datetime | None = None) -> r.Step:
        if at is not None:
            self.now = at
        step = r.advance(self.run, self.definition, event, self.now, conditions, self.context)
        self.run = step.run
        self.last = step
        return step

    def status(self) -> dict[str, str]:
        return {task.task_id: str(task.status) for task in self.run.tasks}


def effects(step: r.Step) -> list[Any]:
    return [c for c in step.commands if isinstance(c, r.Effect)]


def kinds(step: r.Step) -> list[str]:
    return [c.kind for c in step.commands if isinstance(c, r.Announce)]


def wakeups(step: r.Step) -> list[r.ScheduleWakeup]:
    return [c for c in step.commands if isinstance(c, r.ScheduleWakeup)]


# The shipped examples -------------------------------------------------------------------------


def test_new_run_is_queued_with_every_task_pending_in_order() -> None:
    definition = EXAMPLES["leaver"].definition
    run = r.new_run(definition, "abc", "u1", {"kind": "event"}, "run-1", NOW)
    assert run.status is RunStatus.QUEUED
    assert run.category == "leaver"
    assert [(t.task_id, t.position, t.status) for t in run.tasks] == [
        (task.id, index, TaskStatus.PENDING) for index, task in enumerate(definition.tasks)
    ]


def test_pre_hire_creates_disabled_waits_for_0800_in_the_identity_zone_then_enables() -> None:
    run = Driver(EXAMPLES["pre-hire"].definition)
    step = run.send(r.Begin())
    assert kinds(step) == ["run_started", "task_started"]
    (create,) = effects(step)
    assert create == r.Provision(
        run_id="run-1", task_id="create_accounts", attempt=1, operation="create",
        targets="all", disabled=True,
    )  # fmt: skip
    assert create.idempotency_key == "run-1:create_accounts:1"
    assert run.run.status is RunStatus.RUNNING

    step = run.send(r.TaskSucceeded("create_accounts", {"accounts": 2}, attempt=1))
    (wake,) = wakeups(step)
    # 08:00 on 1 March in Paris (CET, UTC+1) is 07:00 UTC.
    assert wake.wakeup.fire_at == datetime(2027, 3, 1, 7, 0, tzinfo=UTC)
    assert wake.wakeup.purpose == "wait"
    assert run.run.status.value == "waiting"
    assert run.run.vars["create_accounts"] == {"accounts": 2}

    early = run.send(r.Woken("first_day", "wait"), at=datetime(2027, 3, 1, 6, 59, tzinfo=UTC))
    assert early.ignored
    assert "before its time" in early.ignored
    assert early.commands == ()

    step = run.send(r.Woken("first_day", "wait"), at=datetime(2027, 3, 1, 7, 0, tzinfo=UTC))
    assert [type(c).__name__ for c in effects(step)] == ["Provision"]
    assert effects(step)[0].operation == "enable"

    step = run.send(r.TaskSucceeded("enable_accounts"))
    (mail,) = effects(step)
    assert isinstance(mail, r.SendMail)
    assert mail.to == ("manager",)
    assert mail.subject

    # The welcome mail may fail: continue_on_error, the run completes.
    step = run.send(r.TaskFailed("welcome_manager", "smtp said 550", retryable=False))
    assert kinds(step) == ["task_failed", "run_completed"]
    assert run.run.status.value == "completed"
    assert run.status()["welcome_manager"] == "failed"
    assert "welcome_manager" not in run.run.vars


def test_pre_hire_retries_with_a_doubling_backoff_then_fails_the_run() -> None:
    run = Driver(EXAMPLES["pre-hire"].definition)
    run.send(r.Begin())
    delays = []
    for attempt in range(1, 5):
        step = run.send(r.TaskFailed("create_accounts", "ldap down", retryable=True))
        (wake,) = wakeups(step)
        delays.append(wake.wakeup.fire_at - run.now)
        assert run.run.task("create_accounts").status is TaskStatus.WAITING  # type: ignore[union-attr]
        # A late answer of this attempt is not taken for the next one.
        step = run.send(r.Woken("create_accounts", "retry"), at=wake.wakeup.fire_at)
        (again,) = effects(step)
        assert again.attempt == attempt + 1
        stale = run.send(r.TaskSucceeded("create_accounts", attempt=attempt))
        assert stale.ignored
        assert "attempt" in stale.ignored
    assert delays == [timedelta(minutes=m) for m in (1, 2, 4, 8)]
    step = run.send(r.TaskFailed("create_accounts", "ldap down", retryable=True, attempt=5))
    assert kinds(step) == ["task_failed", "run_failed"]
    assert run.status() == {
        "create_accounts": "failed",
        "first_day": "cancelled",
        "enable_accounts": "cancelled",
        "welcome_manager": "cancelled",
    }


def test_a_permanent_failure_is_not_retried() -> None:
    run = Driver(EXAMPLES["pre-hire"].definition)
    run.send(r.Begin())
    step = run.send(r.TaskFailed("create_accounts", "schema violation", retryable=False))
    assert wakeups(step) == []
    assert run.run.status is RunStatus.FAILED


@pytest.mark.parametrize(
    ("decision", "revoked", "outputs"),
    [
        (r.ApprovalDecision("keep_access", True, "m2"), False, {"approved": True, "by": "m2"}),
        (r.ApprovalDecision("keep_access", False, "m2"), True, {"decision": "rejected"}),
        (r.Woken("keep_access", "approval_timeout"), True, {"decision": "timed_out"}),
    ],
)
def test_department_move_revokes_unless_the_new_manager_approves(
    decision: r.Event, revoked: bool, outputs: dict[str, Any]
) -> None:
    run = Driver(EXAMPLES["department-move"].definition)
    step = run.send(r.Begin())
    (ask,) = effects(step)
    assert isinstance(ask, r.AskApproval)
    assert ask.approvers == ("manager",)
    assert ask.timeout == timedelta(days=7)
    assert [w.wakeup.purpose for w in wakeups(step)] == ["approval_timeout"]
    assert run.send(r.TaskSucceeded("keep_access", attempt=1)).ignored is None  # acknowledged
    assert run.send(r.TaskSucceeded("keep_access", attempt=1)).ignored  # a duplicate

    step = run.send(decision, at=NOW + timedelta(days=7))
    assert outputs.items() <= run.run.vars["keep_access"].items()
    if revoked:
        (revoke,) = effects(step)
        assert revoke == r.RevokeEntitlements(
            run_id="run-1", task_id="revoke_not_allowed", attempt=1,
            entitlements="all", unless_allowed=True,
        )  # fmt: skip
        run.send(r.TaskSucceeded("revoke_not_allowed"))
    else:
        assert kinds(step)[-2:] == ["task_skipped", "run_completed"]
    assert run.run.status is RunStatus.COMPLETED
    if isinstance(decision, r.ApprovalDecision):
        assert any(isinstance(c, r.CancelWakeups) for c in step.commands)


def test_leaver_hands_the_mailbox_over_waits_for_the_callback_then_deletes() -> None:
    run = Driver(EXAMPLES["leaver"].definition)
    run.send(r.Begin())
    run.send(r.TaskSucceeded("disable_accounts"))
    step = run.send(r.TaskSucceeded("revoke_sessions"))
    assert isinstance(effects(step)[0], r.SendMail)
    step = run.send(r.TaskSucceeded("notify_manager"))
    (call,) = effects(step)
    assert isinstance(call, r.CallExtension)
    assert call.wait_for_callback
    assert call.timeout == timedelta(days=3)
    assert [w.wakeup.purpose for w in wakeups(step)] == ["callback_timeout"]
    assert run.run.task("mailbox_handover").status is TaskStatus.WAITING  # type: ignore[union-attr]

    # The extension is fast: its callback comes before the call's answer is reported.
    step = run.send(r.CallbackReceived("mailbox_handover", {"delegate": "m1"}))
    assert run.run.vars["mailbox_handover"] == {"delegate": "m1"}
    assert [w.wakeup.purpose for w in wakeups(step)] == ["wait"]
    late = run.send(r.TaskSucceeded("mailbox_handover", {"ticket": 1}))
    assert late.ignored
    assert late.commands == ()
    again = run.send(r.CallbackReceived("mailbox_handover", {"delegate": "x"}))
    assert again.ignored

    (wake,) = wakeups(step)
    assert wake.wakeup.fire_at == run.now + timedelta(days=90)
    step = run.send(r.Woken("retention", "wait"), at=wake.wakeup.fire_at)
    assert effects(step)[0].operation == "delete"
    run.send(r.TaskSucceeded("delete_accounts"))
    assert run.run.status is RunStatus.COMPLETED


def test_leaver_callback_timeout_fails_the_run_and_a_late_callback_is_ignored() -> None:
    run = Driver(EXAMPLES["leaver"].definition)
    run.send(r.Begin())
    for task in ("disable_accounts", "revoke_sessions", "notify_manager"):
        run.send(r.TaskSucceeded(task))
    run.send(r.TaskSucceeded("mailbox_handover", {"ticket": 7}, attempt=1))
    step = run.send(r.Woken("mailbox_handover", "callback_timeout"), at=NOW + timedelta(days=3))
    assert kinds(step) == ["task_failed", "run_failed"]
    assert run.status()["delete_accounts"] == "cancelled"
    late = run.send(r.CallbackReceived("mailbox_handover", {"delegate": "m1"}))
    assert late.ignored == "the run is failed"


def test_leaver_call_failure_is_retried_and_a_stale_timeout_is_ignored() -> None:
    run = Driver(EXAMPLES["leaver"].definition)
    run.send(r.Begin())
    for task in ("disable_accounts", "revoke_sessions", "notify_manager"):
        run.send(r.TaskSucceeded(task))
    step = run.send(r.TaskFailed("mailbox_handover", "503", retryable=True, retry_after_s=600))
    assert isinstance(step.commands[0], r.CancelWakeups)
    (wake,) = wakeups(step)
    assert wake.wakeup.purpose == "retry"
    assert wake.wakeup.fire_at == NOW + timedelta(minutes=10)  # Retry-After beats PT5M
    stale = run.send(r.Woken("mailbox_handover", "callback_timeout"), at=NOW + timedelta(days=3))
    assert stale.ignored
    step = run.send(r.Woken("mailbox_handover", "retry"))
    (call,) = effects(step)
    assert call.idempotency_key == "run-1:mailbox_handover:2"


def test_contractor_end_date_waits_30_days_before_deleting() -> None:
    run = Driver(EXAMPLES["contractor-end-date"].definition)
    run.send(r.Begin())
    run.send(r.TaskSucceeded("disable_accounts"))
    step = run.send(r.TaskSucceeded("revoke_sessions"))
    assert wakeups(step)[0].wakeup.fire_at == NOW + timedelta(days=30)
    step = run.send(r.Woken("retention", "wait"), at=NOW + timedelta(days=30))
    assert effects(step)[0].operation == "delete"


# Every task kind ------------------------------------------------------------------------------

KINDS = [
    ("{id: t, task: create_accounts, targets: [ldap]}",
     r.Provision(run_id="run-1", task_id="t", attempt=1, operation="create", targets=("ldap",))),
    ("{id: t, task: update_accounts}",
     r.Provision(run_id="run-1", task_id="t", attempt=1, operation="update", targets="all")),
    ("{id: t, task: enable_accounts}",
     r.Provision(run_id="run-1", task_id="t", attempt=1, operation="enable", targets="all")),
    ("{id: t, task: disable_accounts}",
     r.Provision(run_id="run-1", task_id="t", attempt=1, operation="disable", targets="all")),
    ("{id: t, task: delete_accounts, targets: [a, b]}",
     r.Provision(run_id="run-1", task_id="t", attempt=1, operation="delete", targets=("a", "b"))),
    ("{id: t, task: add_group, target: ldap, group: staff}",
     r.ChangeGroup(run_id="run-1", task_id="t", attempt=1, action="add", target="ldap",
                   group="staff")),
    ("{id: t, task: remove_group, target: ldap, group: staff}",
     r.ChangeGroup(run_id="run-1", task_id="t", attempt=1, action="remove", target="ldap",
                   group="staff")),
    ("{id: t, task: revoke_entitlement, entitlements: [payroll/viewer]}",
     r.RevokeEntitlements(run_id="run-1", task_id="t", attempt=1,
                          entitlements=("payroll/viewer",))),
    ("{id: t, task: require_mfa_enrolment}",
     r.RequireMfa(run_id="run-1", task_id="t", attempt=1)),
    ("{id: t, task: temporary_access_pass, lifetime: P1D, deliver_to: identity}",
     r.IssueAccessPass(run_id="run-1", task_id="t", attempt=1, lifetime=timedelta(days=1),
                       one_time=True, deliver_to="identity")),
    ("{id: t, task: revoke_sessions}",
     r.RevokeSessions(run_id="run-1", task_id="t", attempt=1)),
    ("{id: t, task: send_email, to: [identity, a@example.com], template: welcome}",
     r.SendMail(run_id="run-1", task_id="t", attempt=1, to=("identity", "a@example.com"),
                template="welcome")),
    ("{id: t, task: call_extension, url: 'https://x.example/h', secret_env: S}",
     r.CallExtension(run_id="run-1", task_id="t", attempt=1, url="https://x.example/h",
                     secret_env="S", wait_for_callback=False, timeout=None)),
]  # fmt: skip


@pytest.mark.parametrize(("task", "command"), KINDS, ids=[k[0].split()[3] for k in KINDS])
def test_each_acting_task_kind_requests_its_one_effect(task: str, command: r.Command) -> None:
    run = Driver(workflow(f"- {task}"))
    step = run.send(r.Begin())
    assert effects(step) == [command]
    assert run.run.task("t").status is TaskStatus.RUNNING  # type: ignore[union-attr]
    step = run.send(r.TaskSucceeded("t", {"n": 1}))
    assert kinds(step) == ["task_completed", "run_completed"]
    assert run.run.vars == {"t": {"n": 1}}


def test_an_extension_answer_becomes_vars_for_a_later_condition() -> None:
    run = Driver(
        workflow("""
        - {id: ask, task: call_extension, url: 'https://x.example/h', secret_env: S}
        - {id: big, task: revoke_sessions, when: 'vars.ask.size > 3'}
        - {id: small, task: require_mfa_enrolment, when: 'vars.ask.size <= 3'}
        """)
    )
    run.send(r.Begin())
    step = run.send(r.TaskSucceeded("ask", {"size": 2}))
    assert kinds(step) == ["task_completed", "task_skipped", "task_started"]
    assert isinstance(effects(step)[0], r.RequireMfa)
    assert run.status()["big"] == "skipped"


def test_a_condition_on_a_skipped_or_failed_task_is_false_and_skips() -> None:
    run = Driver(
        workflow("""
        - {id: one, task: revoke_sessions, when: 'identity.department == "sales"'}
        - {id: two, task: revoke_sessions, continue_on_error: true}
        - {id: three, task: require_mfa_enrolment, when: 'vars.one.x == 1 || vars.two.x == 1'}
        - {id: four, task: require_mfa_enrolment, when: '!has(vars.two)'}
        """)
    )
    step = run.send(r.Begin())
    assert kinds(step) == ["run_started", "task_skipped", "task_started"]
    step = run.send(r.TaskFailed("two", "boom", retryable=False))
    assert kinds(step) == ["task_failed", "task_skipped", "task_started"]
    assert effects(step)[0].task_id == "four"


def test_an_evaluator_that_raises_counts_as_false() -> None:
    definition = workflow("- {id: t, task: revoke_sessions, when: 'true'}")
    run = r.new_run(definition, "v1", "u1", {}, "run-1", NOW)

    def broken(text: str, context: Mapping[str, Any]) -> bool:
        raise RuntimeError("no such key")

    step = r.advance(run, definition, r.Begin(), NOW, broken, context())
    assert step.run.status is RunStatus.COMPLETED
    assert step.run.tasks[0].status is TaskStatus.SKIPPED


def test_conditions_see_vars_and_now() -> None:
    seen: list[Mapping[str, Any]] = []

    def spy(text: str, context: Mapping[str, Any]) -> bool:
        seen.append(context)
        return True

    definition = workflow("""
    - {id: a, task: revoke_sessions}
    - {id: b, task: revoke_sessions, when: 'true'}
    """)
    run = r.new_run(definition, "v1", "u1", {}, "run-1", NOW)
    run = r.advance(run, definition, r.Begin(), NOW, spy, context()).run
    later = NOW + timedelta(hours=1)
    r.advance(run, definition, r.TaskSucceeded("a", {"k": "v"}), later, spy, context())
    assert seen[0]["vars"] == {"a": {"k": "v"}}
    assert seen[0]["now"] == later
    assert seen[0]["identity"]["user_id"] == "u1"


def test_wait_until_a_date_already_past_completes_at_once() -> None:
    run = Driver(
        workflow("""
        - {id: w, task: wait, until: hire_date, offset: -P30D}
        - {id: t, task: revoke_sessions}
        """)
    )
    step = run.send(r.Begin())
    assert wakeups(step) == []
    assert kinds(step) == ["run_started", "task_started", "task_completed", "task_started"]


def test_wait_until_a_custom_attribute_uses_the_workflow_zone_without_an_identity_zone() -> None:
    profile = {"user_id": "u1", "attributes": {"contract_end": "2027-04-01"}}
    run = Driver(workflow("- {id: w, task: wait, until: attributes.contract_end}"), profile)
    (wake,) = wakeups(run.send(r.Begin()))
    assert wake.wakeup.fire_at == datetime(2027, 4, 1, tzinfo=UTC)


@pytest.mark.parametrize("on_error", [False, True])
def test_wait_until_an_absent_date_fails_the_task(on_error: bool) -> None:
    flag = ", continue_on_error: true" if on_error else ""
    run = Driver(
        workflow(f"""
        - {{id: w, task: wait, until: leave_date{flag}}}
        - {{id: t, task: revoke_sessions}}
        """)
    )
    step = run.send(r.Begin())
    assert run.run.task("w").status is TaskStatus.FAILED  # type: ignore[union-attr]
    assert "leave_date" in (run.run.task("w").error or "")  # type: ignore[union-attr]
    if on_error:
        assert isinstance(effects(step)[0], r.RevokeSessions)
    else:
        assert run.run.status is RunStatus.FAILED
        assert run.status()["t"] == "cancelled"


# Approvals ------------------------------------------------------------------------------------

ESCALATING = """
- id: ok
  task: approval
  approvers: [manager, group:hr]
  timeout: P2D
  on_timeout: escalate
  escalate_to: user:boss
- {id: after, task: revoke_sessions}
"""


def test_an_unanswered_approval_escalates_once_then_rejects() -> None:
    run = Driver(workflow(ESCALATING))
    step = run.send(r.Begin())
    (ask,) = effects(step)
    assert ask.approvers == ("manager", "group:hr")
    assert not ask.escalation
    step = run.send(r.Woken("ok", "approval_timeout"), at=NOW + timedelta(days=2))
    (ask2,) = effects(step)
    assert isinstance(ask2, r.AskApproval)
    assert ask2.approvers == ("user:boss",)
    assert ask2.escalation
    assert ask2.idempotency_key != ask.idempotency_key
    (wake,) = wakeups(step)
    assert wake.wakeup.fire_at == NOW + timedelta(days=4)
    # A duplicate of the first timeout, delivered again, is early for the second stage.
    assert run.send(r.Woken("ok", "approval_timeout")).ignored
    step = run.send(r.Woken("ok", "approval_timeout"), at=NOW + timedelta(days=4))
    assert kinds(step) == ["task_failed", "run_failed"]
    assert run.run.task("ok").outputs["decision"] == "timed_out"  # type: ignore[union-attr]


def test_the_escalated_approver_can_approve() -> None:
    run = Driver(workflow(ESCALATING))
    run.send(r.Begin())
    run.send(r.Woken("ok", "approval_timeout"), at=NOW + timedelta(days=2))
    step = run.send(r.ApprovalDecision("ok", True, "boss"))
    assert isinstance(effects(step)[0], r.RevokeSessions)
    assert run.run.vars["ok"] == {"approved": True, "decision": "approved", "by": "boss"}


def test_approval_rejected_with_on_reject_stop_fails_the_run() -> None:
    run = Driver(
        workflow("""
        - {id: ok, task: approval, approvers: manager, timeout: P1D, continue_on_error: true}
        - {id: after, task: revoke_sessions}
        """)
    )
    run.send(r.Begin())
    step = run.send(r.ApprovalDecision("ok", False, "m1"))
    assert kinds(step) == ["task_failed", "run_failed"]
    assert run.run.task("ok").error == "rejected by m1"  # type: ignore[union-attr]


def test_approval_timeout_continue_goes_on_with_timed_out() -> None:
    run = Driver(
        workflow("""
        - {id: ok, task: approval, approvers: manager, timeout: P1D, on_timeout: continue}
        - {id: after, task: revoke_sessions, when: 'vars.ok.decision == "timed_out"'}
        """)
    )
    run.send(r.Begin())
    step = run.send(r.Woken("ok", "approval_timeout"), at=NOW + timedelta(days=1))
    assert isinstance(effects(step)[0], r.RevokeSessions)


def test_asking_for_an_approval_can_fail_and_be_retried_at_its_stage() -> None:
    run = Driver(
        workflow("""
        - id: ok
          task: approval
          approvers: manager
          timeout: P1D
          on_timeout: escalate
          escalate_to: user:boss
          retry: {max_attempts: 3, backoff: PT1M}
        """)
    )
    run.send(r.Begin())
    run.send(r.Woken("ok", "approval_timeout"), at=NOW + timedelta(days=1))
    step = run.send(r.TaskFailed("ok", "authz down", retryable=True, attempt=2))
    assert [type(c).__name__ for c in step.commands][:2] == ["CancelWakeups", "ScheduleWakeup"]
    step = run.send(r.Woken("ok", "retry"), at=run.now + timedelta(minutes=10))
    (ask,) = effects(step)
    assert ask.approvers == ("user:boss",)
    assert ask.attempt == 3


def test_callback_timeout_with_on_timeout_continue_completes_without_outputs() -> None:
    definition = workflow("""
    - {id: x, task: call_extension, url: 'https://x.example/h', secret_env: S,
       wait_for_callback: true, timeout: PT1H}
    - {id: after, task: revoke_sessions, when: '!has(vars.x.ticket)'}
    """)
    # The definitions have no on_timeout for call_extension yet; the machine reads one if any.
    patched = definition.tasks[0].model_copy(update={"on_timeout": "continue"})
    definition = definition.model_copy(update={"tasks": (patched, definition.tasks[1])})
    run = Driver(definition)
    run.send(r.Begin())
    run.send(r.TaskSucceeded("x", {"ticket": 1}))
    step = run.send(r.Woken("x", "callback_timeout"), at=NOW + timedelta(hours=1))
    assert run.run.vars["x"] == {}
    assert isinstance(effects(step)[0], r.RevokeSessions)


# Entitlement requests -------------------------------------------------------------------------

ENTITLEMENT = """
- {id: grant, task: request_entitlement, entitlement: payroll/viewer, justification: job,
   timeout: P2D}
- {id: after, task: revoke_sessions}
"""
GRANTED = {"granted": True, "grant_id": "grant-1", "expires_at": None}
DENIED = {"granted": False, "decision": "denied", "by": "policy", "reasons": ["p1"]}


def test_an_entitlement_request_waits_for_authz_and_the_grant_completes_it() -> None:
    run = Driver(workflow(ENTITLEMENT))
    step = run.send(r.Begin())
    assert effects(step) == [
        r.RequestEntitlement(run_id="run-1", task_id="grant", attempt=1,
                             entitlement="payroll/viewer", justification="job")
    ]  # fmt: skip
    (wake,) = wakeups(step)
    assert (wake.wakeup.purpose, wake.wakeup.fire_at) == ("access_timeout", NOW + timedelta(days=2))
    assert kinds(step)[-1] == "task_waiting"
    assert run.run.task("grant").waiting_for == {  # type: ignore[union-attr]
        "kind": "access_decision",
        "until": (NOW + timedelta(days=2)).isoformat(),
    }
    assert run.run.status is RunStatus.WAITING
    step = run.send(r.TaskSucceeded("grant", attempt=1))  # the request went out
    assert step.commands == ()
    assert run.status()["grant"] == "waiting"

    step = run.send(r.AccessDecision("grant", 1, granted=True, outputs=GRANTED))
    assert step.commands[0] == r.CancelWakeups(run_id="run-1", task_id="grant", attempt=1)
    assert kinds(step) == ["task_completed", "task_started"]
    assert isinstance(effects(step)[0], r.RevokeSessions)
    assert run.run.vars["grant"] == GRANTED


@pytest.mark.parametrize("on_error", [False, True])
def test_a_refusal_fails_the_task_without_retry_and_continue_on_error_goes_on(
    on_error: bool,
) -> None:
    text = ENTITLEMENT.replace("timeout: P2D", "retry: {max_attempts: 3}")
    if on_error:
        text = text.replace("justification: job,", "justification: job, continue_on_error: true,")
    run = Driver(workflow(text))
    step = run.send(r.Begin())
    assert wakeups(step) == []  # no timeout: it waits as long as authz takes
    assert run.run.task("grant").waiting_for == {"kind": "access_decision"}  # type: ignore[union-attr]
    run.send(r.TaskSucceeded("grant", attempt=1))

    refused = r.AccessDecision("grant", 1, granted=False, outputs=DENIED, reason="denied (p1)")
    step = run.send(refused)
    grant = run.run.task("grant")
    assert grant is not None
    assert (grant.status, grant.error, grant.attempts) == (TaskStatus.FAILED, "denied (p1)", 1)
    assert grant.outputs == DENIED
    assert "grant" not in run.run.vars
    if on_error:
        assert isinstance(effects(step)[0], r.RevokeSessions)
    else:
        assert run.run.status is RunStatus.FAILED
        assert run.status()["after"] == "cancelled"


def test_no_decision_before_the_timeout_fails_the_task_and_a_late_one_is_ignored() -> None:
    run = Driver(workflow(ENTITLEMENT))
    run.send(r.Begin())
    run.send(r.TaskSucceeded("grant", attempt=1))
    assert run.send(r.Woken("grant", "access_timeout"), at=NOW + timedelta(days=1)).ignored
    run.send(r.Woken("grant", "access_timeout"), at=NOW + timedelta(days=2))
    assert run.run.status is RunStatus.FAILED
    assert run.run.task("grant").error == "no access decision before the timeout"  # type: ignore[union-attr]
    late = run.send(r.AccessDecision("grant", 1, granted=True, outputs=GRANTED))
    assert late.ignored == "the run is failed"


def test_a_decision_on_another_attempts_request_is_ignored_and_a_send_failure_retries() -> None:
    run = Driver(workflow(ENTITLEMENT.replace("timeout: P2D", "retry: {max_attempts: 2}")))
    run.send(r.Begin())
    step = run.send(r.TaskFailed("grant", "outbox full", retryable=True, attempt=1))
    assert wakeups(step)[0].wakeup.purpose == "retry"
    step = run.send(r.Woken("grant", "retry"), at=NOW + timedelta(minutes=1))
    assert effects(step)[0].attempt == 2
    stale = run.send(r.AccessDecision("grant", 1, granted=True, outputs=GRANTED))
    assert stale.ignored == "a decision on the request of attempt 1; task grant is at 2"
    run.send(r.AccessDecision("grant", 2, granted=True, outputs=GRANTED))
    assert run.status()["grant"] == "completed"


def test_an_access_decision_for_a_task_not_waiting_for_one_is_ignored() -> None:
    run = Driver(workflow("- {id: t, task: revoke_sessions}"))
    run.send(r.Begin())
    step = run.send(r.AccessDecision("t", 1, granted=True))
    assert step.ignored == "task t is not waiting for an access decision"


# Cancel, leavers, ignored events --------------------------------------------------------------


def test_cancel_while_waiting_cancels_the_rest_and_ignores_later_results() -> None:
    run = Driver(EXAMPLES["pre-hire"].definition)
    run.send(r.Begin())
    run.send(r.TaskSucceeded("create_accounts"))
    step = run.send(r.Cancel("hire rescinded"))
    assert step.commands[0] == r.CancelWakeups(run_id="run-1", task_id="first_day", attempt=1)
    assert kinds(step) == ["run_cancelled"]
    assert run.run.status is RunStatus.CANCELLED
    assert run.run.cancel_reason == "hire rescinded"
    assert run.status() == {
        "create_accounts": "completed",
        "first_day": "cancelled",
        "enable_accounts": "cancelled",
        "welcome_manager": "cancelled",
    }
    for event in (r.Woken("first_day", "wait"), r.TaskSucceeded("create_accounts"), r.Begin()):
        late = run.send(event, at=NOW + timedelta(days=30))
        assert late.ignored == "the run is cancelled"
        assert late.run is run.run


def test_cancel_of_a_queued_run_cancels_every_task() -> None:
    run = Driver(EXAMPLES["pre-hire"].definition)
    step = run.send(r.Cancel(r.SUPERSEDED))
    assert not any(isinstance(c, r.CancelWakeups) for c in step.commands)
    assert set(run.status().values()) == {"cancelled"}


def test_a_leaver_is_not_superseded_but_an_operator_can_cancel_it() -> None:
    run = Driver(EXAMPLES["leaver"].definition)
    run.send(r.Begin())
    before = run.run
    step = run.send(r.Cancel(r.SUPERSEDED))
    assert step.ignored
    assert step.run is before
    assert step.commands == ()
    step = run.send(r.Cancel("operator: wrong person"))
    assert run.run.status is RunStatus.CANCELLED


@pytest.mark.parametrize(
    ("new", "active", "status", "cancels"),
    [
        ("leaver", "joiner", RunStatus.WAITING, True),
        ("leaver", "mover", RunStatus.RUNNING, True),
        ("leaver", "custom", RunStatus.QUEUED, True),
        ("leaver", "leaver", RunStatus.WAITING, False),
        ("leaver", "joiner", RunStatus.COMPLETED, False),
        ("joiner", "leaver", RunStatus.WAITING, False),
        ("mover", "joiner", RunStatus.WAITING, False),
        ("joiner", "joiner", RunStatus.RUNNING, False),
    ],
)
def test_must_cancel_for(new: str, active: str, status: RunStatus, cancels: bool) -> None:
    run = replace(r.new_run(EXAMPLES["pre-hire"].definition, "v", "u", {}, "x", NOW), status=status)
    assert r.must_cancel_for(new, replace(run, category=active)) is cancels


def test_a_due_wake_up_of_another_purpose_is_ignored() -> None:
    run = Driver(EXAMPLES["department-move"].definition)
    run.send(r.Begin())
    later = NOW + timedelta(days=8)
    for purpose in ("retry", "wait", "callback_timeout"):
        step = run.send(r.Woken("keep_access", purpose), at=later)
        assert step.ignored
        assert "not waiting for a" in step.ignored


def test_events_that_do_not_apply_are_ignored_with_a_reason() -> None:
    run = Driver(EXAMPLES["leaver"].definition)
    assert run.send(r.TaskSucceeded("disable_accounts")).ignored == "the run has not begun"
    run.send(r.Begin())
    cases: list[tuple[r.Event, str]] = [
        (r.Begin(), "already begun"),
        (r.TaskSucceeded("nope"), "no task"),
        (r.TaskSucceeded("revoke_sessions"), "has not started"),
        (r.Woken("disable_accounts", "retry"), "not waiting"),
        (r.CallbackReceived("disable_accounts", {}), "not waiting for a callback"),
        (r.ApprovalDecision("disable_accounts", True, "m"), "not waiting for an approval"),
    ]
    for event, reason in cases:
        step = run.send(event)
        assert step.ignored
        assert reason in step.ignored
        assert step.commands == ()
    run.send(r.TaskSucceeded("disable_accounts"))
    assert (
        run.send(r.TaskSucceeded("disable_accounts")).ignored
        == "task disable_accounts is completed"
    )


def test_backoff_doubles_and_is_capped() -> None:
    retry = d.Retry(max_attempts=20, backoff="PT10M")
    assert [r.backoff_delay(retry, n) for n in (1, 2, 3, 4, 5, 12)] == [
        timedelta(minutes=m) for m in (10, 20, 40, 60, 60, 60)
    ]
    long = d.Retry(max_attempts=3, backoff="PT2H")
    assert r.backoff_delay(long, 3) == timedelta(hours=2)
    assert r.backoff_delay(retry, 1, retry_after_s=3 * 86400) == timedelta(days=1)


def test_advance_refuses_another_workflow() -> None:
    run = r.new_run(EXAMPLES["leaver"].definition, "v1", "u1", {}, "run-1", NOW)
    with pytest.raises(ValueError, match="definition"):
        r.advance(run, EXAMPLES["pre-hire"].definition, r.Begin(), NOW, conditions, context())


# Any interleaving -----------------------------------------------------------------------------

HAND_WRITTEN = workflow("""
- {id: ask, task: approval, approvers: manager, timeout: PT1H, on_timeout: escalate,
   escalate_to: user:boss, on_reject: continue, retry: {max_attempts: 2, backoff: PT1M}}
- {id: hook, task: call_extension, url: 'https://x.example/h', secret_env: S,
   wait_for_callback: true, timeout: PT2H, retry: {max_attempts: 3, backoff: PT1M}}
- {id: maybe, task: revoke_sessions, when: 'has(vars.hook.ok)', continue_on_error: true}
- {id: pause, task: wait, duration: PT30M}
- {id: grant, task: request_entitlement, entitlement: wiki/editor, justification: j,
   timeout: PT3H, retry: {max_attempts: 2, backoff: PT5M}}
""")
DEFINITIONS = [loaded.definition for loaded in EXAMPLES] + [HAND_WRITTEN]


class World:
    """What the engine's effect layer and wake-up poller hold: requested effects awaiting an
    answer, scheduled wake-ups, approvals and callbacks that may come."""

    def __init__(self, definition: d.Workflow) -> None:
        self.driver = Driver(definition)
        self.effects: dict[str, r.Effect] = {}  # every effect ever requested, by key
        self.open: dict[str, r.Effect] = {}  # effects not answered yet
        self.wakeups: dict[tuple[str, str], datetime] = {}
        self.history: list[r.Event] = []
        self.begun = False

    def send(self, event: r.Event, at: datetime | None = None, claimed: bool = False) -> r.Step:
        before = self.driver.run
        step = self.driver.send(event, at)
        self.history.append(event)
        self.check(before, step)
        if isinstance(event, r.Woken) and not claimed:
            woken = (event.task_id, str(event.purpose))
            if woken not in self.wakeups:
                assert step.ignored, f"took a wake-up nobody scheduled: {event}"
            elif step.ignored is None:
                del self.wakeups[woken]  # the poller would have claimed it
        for command in step.commands:
            if isinstance(command, r.Effect):
                key = command.idempotency_key
                assert self.effects.get(key, command) == command, "one key, two effects"
                self.effects[key] = command
                self.open[key] = command
            elif isinstance(command, r.ScheduleWakeup):
                wake = command.wakeup
                self.wakeups[(wake.task_id, str(wake.purpose))] = wake.fire_at
            elif isinstance(command, r.CancelWakeups):
                for slot in [s for s in self.wakeups if s[0] == command.task_id]:
                    del self.wakeups[slot]
        return step

    def check(self, before: Run, step: r.Step) -> None:
        if step.ignored is not None:
            assert step.run is before
            assert step.commands == ()
        if before.status.terminal:
            assert step.ignored is not None
        for old, new in zip(before.tasks, step.run.tasks, strict=True):
            if old.status.terminal:
                assert new == old, f"{old.task_id} moved from {old.status} to {new.status}"
        for key, value in before.vars.items():
            assert step.run.vars[key] == value

    def answer(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.open)))
        effect = self.open.pop(key)
        assert effect.task_id is not None
        outcome = data.draw(st.sampled_from(["ok", "ok", "retryable", "permanent"]))
        if outcome == "ok":
            outputs = data.draw(st.sampled_from([{}, {"ok": True}]))
            self.send(r.TaskSucceeded(effect.task_id, outputs, attempt=effect.attempt))
        else:
            self.send(
                r.TaskFailed(effect.task_id, "x", outcome == "retryable", attempt=effect.attempt)
            )

    def wake(self, data: st.DataObject) -> None:
        slot = data.draw(st.sampled_from(sorted(self.wakeups)))
        fire_at = self.wakeups.pop(slot)  # claimed by the poller, whatever the run does with it
        at = max(self.driver.now, fire_at)
        self.send(r.Woken(slot[0], slot[1]), at=at, claimed=True)  # type: ignore[arg-type]

    def noise(self, data: st.DataObject) -> None:
        tasks = self.driver.run.tasks
        current = [t.task_id for t in tasks if t.status in (TaskStatus.RUNNING, TaskStatus.WAITING)]
        task_id = data.draw(st.sampled_from(current or [t.task_id for t in tasks]))
        if data.draw(st.booleans()):
            task_id = data.draw(st.sampled_from([t.task_id for t in tasks]))
        strategy: st.SearchStrategy[r.Event] = st.one_of(
            st.builds(r.Woken, st.just(task_id), st.sampled_from(sorted(r_purposes()))),
            st.builds(r.CallbackReceived, st.just(task_id), st.just({"ok": True})),
            st.builds(r.ApprovalDecision, st.just(task_id), st.booleans(), st.just("m")),
            st.builds(r.AccessDecision, st.just(task_id), st.integers(1, 3), st.booleans()),
            st.builds(r.TaskSucceeded, st.just(task_id)),
            st.builds(r.Cancel, st.sampled_from([r.SUPERSEDED, "operator"])),
            st.just(r.Begin()),
        )
        replay = data.draw(st.booleans())
        if self.history and replay:
            strategy = st.sampled_from(self.history)
        event = data.draw(strategy)
        self.send(event, at=self.driver.now + timedelta(minutes=data.draw(st.integers(0, 90))))

    def settle(self, data: st.DataObject) -> None:
        """Answer everything that was asked, in any order, until nothing is left."""
        for _ in range(500):
            if self.driver.run.status is RunStatus.QUEUED:
                self.send(r.Begin())
                continue
            choices = (["answer"] if self.open else []) + (["wake"] if self.wakeups else [])
            if not choices:
                return
            getattr(self, data.draw(st.sampled_from(choices)))(data)
        raise AssertionError("the run did not settle")


def r_purposes() -> set[str]:
    return {"retry", "wait", "approval_timeout", "callback_timeout", "access_timeout"}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), which=st.integers(0, len(DEFINITIONS) - 1))
def test_any_interleaving_is_safe_and_ends_in_a_terminal_state(
    data: st.DataObject, which: int
) -> None:
    world = World(DEFINITIONS[which])
    for _ in range(data.draw(st.integers(0, 30))):
        moves = ["noise"] + (["answer"] if world.open else []) + (["wake"] if world.wakeups else [])
        if world.driver.run.status is RunStatus.QUEUED:
            moves.append("begin")
        move = data.draw(st.sampled_from(moves))
        if move == "begin":
            world.send(r.Begin())
        else:
            getattr(world, move)(data)
    world.settle(data)
    run = world.driver.run
    assert run.status.terminal, run
    assert all(task.status.terminal for task in run.tasks)
    assert run.status is not RunStatus.CANCELLED or run.cancel_reason
