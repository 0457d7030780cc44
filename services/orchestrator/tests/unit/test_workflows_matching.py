"""The matcher: which workflows an identity event, a timer, a request or the clock starts."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import pytest

from accord.orchestrator.workflows.loader import Checks, WorkflowSet, load_files
from accord.orchestrator.workflows.matching import (
    IdentityChange,
    UnknownWorkflow,
    runs_for_event,
    runs_for_timer,
    runs_on_demand,
    schedule_due,
    time_triggers,
)
from accord.orchestrator.workflows.timers import Timer, plan_timers

NOW = datetime(2027, 2, 1, 12, tzinfo=UTC)
CHECKS = Checks(expression=lambda text: None)

MOVER = """
id: mover
category: mover
description: d
trigger: {event: user.updated, changed: [department, manager_id]}
scope: identity.employee_type == "employee"
tasks:
  - {id: notify, task: send_email, to: manager, subject: s, body: b}
  - {id: revoke, task: revoke_entitlement, entitlements: all, when: "!vars.notify.sent"}
  - {id: sales_only, task: revoke_sessions, when: 'identity.department == "Sales"'}
  - {id: was_finance, task: revoke_sessions, when: 'previous.department == "Finance"'}
"""
ANY_UPDATE = """
id: any-update
category: custom
description: d
trigger: {event: user.updated}
tasks: [{id: push, task: update_accounts}]
"""
OFF = """
id: paused
category: custom
description: d
enabled: false
trigger: {event: user.updated}
tasks: [{id: push, task: update_accounts}]
"""
JOINER = """
id: joiner
category: joiner
description: d
trigger: {event: user.created}
scope: identity.cost_center.startsWith("CC")
tasks: [{id: create, task: create_accounts}]
"""
PRE_HIRE = """
id: pre-hire
category: joiner
description: d
trigger: {at: hire_date, offset: -P7D}
scope: identity.employee_type == "employee"
time_zone: Europe/Paris
tasks: [{id: create, task: create_accounts, disabled: true}]
"""
REPORT = """
id: report
category: custom
description: d
trigger: {schedule: "0 8 * * 1"}
time_zone: Europe/Paris
tasks: [{id: mail, task: send_email, to: a@example.com, subject: s, body: b}]
"""
ON_DEMAND = """
id: reset
category: custom
description: d
trigger: {on_demand: true}
scope: identity.department == "IT"
tasks: [{id: tap, task: temporary_access_pass}]
"""


def load(*texts: str) -> WorkflowSet:
    return load_files({f"w{index}.yaml": text for index, text in enumerate(texts)}, CHECKS)


WORKFLOWS = load(MOVER, ANY_UPDATE, OFF, JOINER, PRE_HIRE, REPORT, ON_DEMAND)
ADA = {"user_name": "ada", "employee_type": "employee", "department": "Sales"}


def update(
    before: Mapping[str, object], after: Mapping[str, object], *changed: str
) -> IdentityChange:
    return IdentityChange("user.updated", "u-1", before, after, frozenset(changed), "e-1", NOW)


def test_an_update_starts_the_workflows_on_user_updated_whose_changed_list_it_touches() -> None:
    moved = runs_for_event(
        WORKFLOWS, update({**ADA, "department": "Finance"}, ADA, "department"), NOW
    )
    assert moved.workflow_ids() == ["any-update", "mover"]
    retitled = runs_for_event(WORKFLOWS, update(ADA, {**ADA, "title": "Boss"}, "title"), NOW)
    assert retitled.workflow_ids() == ["any-update"]


def test_another_event_type_starts_only_its_own_workflows() -> None:
    created = IdentityChange(
        "user.created", "u-1", None, {**ADA, "cost_center": "CC-1"}, frozenset(), "e", NOW
    )
    assert runs_for_event(WORKFLOWS, created, NOW).workflow_ids() == ["joiner"]
    deleted = IdentityChange("user.deleted", "u-1", ADA, None, frozenset(), "e", NOW)
    assert runs_for_event(WORKFLOWS, deleted, NOW).runs == []


def test_a_disabled_workflow_never_starts() -> None:
    found = runs_for_event(WORKFLOWS, update(ADA, ADA, "title"), NOW)
    assert "paused" not in found.workflow_ids()
    assert "paused" not in [skip.workflow_id for skip in found.skipped]


def test_tasks_say_whether_they_would_run_and_why() -> None:
    before = {**ADA, "department": "Finance"}
    (run,) = [
        r
        for r in runs_for_event(WORKFLOWS, update(before, ADA, "department"), NOW).runs
        if r.workflow_id == "mover"
    ]
    assert run.identity_id == "u-1"
    assert run.version == WORKFLOWS["mover"].version
    assert run.trigger == "user.updated (changed: department, manager_id)"
    assert [(t.task_id, t.kind, t.would_run) for t in run.tasks] == [
        ("notify", "send_email", True),
        ("revoke", "revoke_entitlement", None),
        ("sales_only", "revoke_sessions", True),
        ("was_finance", "revoke_sessions", True),
    ]
    assert "run time" in run.tasks[1].reason
    assert run.running_tasks == ["notify", "sales_only", "was_finance"]


def test_a_scope_that_does_not_hold_is_a_skip() -> None:
    contractor = {**ADA, "employee_type": "contractor"}
    found = runs_for_event(WORKFLOWS, update(ADA, contractor, "department"), NOW)
    assert found.workflow_ids() == ["any-update"]
    assert [(s.workflow_id, s.reason) for s in found.skipped] == [("mover", "out of scope")]


def test_a_scope_that_cannot_be_evaluated_is_a_reported_skip_not_an_exception() -> None:
    created = IdentityChange("user.created", "u-1", None, ADA, frozenset(), "e", NOW)  # no CC
    found = runs_for_event(WORKFLOWS, created, NOW)
    assert found.runs == []
    (skip,) = found.skipped
    assert skip.workflow_id == "joiner"
    assert skip.reason.startswith("scope could not be evaluated")
    assert "cost_center" in skip.reason


def test_time_triggers_are_the_enabled_date_triggers_with_the_workflows_zone() -> None:
    (trigger,) = time_triggers(WORKFLOWS)
    assert (trigger.workflow_id, trigger.version, trigger.attribute, str(trigger.offset)) == (
        "pre-hire",
        WORKFLOWS["pre-hire"].version,
        "hire_date",
        "-P7D",
    )
    assert trigger.zone == "Europe/Paris"


def _timer(identity: Mapping[str, object]) -> Timer:
    plan = plan_timers(time_triggers(WORKFLOWS), None, {**identity, "id": "u-1"}, [], NOW)
    (timer,) = plan.schedule
    return timer


def test_a_timer_fires_its_workflow_when_the_scope_still_holds() -> None:
    hire = {**ADA, "hire_date": "2027-03-01"}
    timer = _timer(hire)
    assert timer.fire_at == datetime(2027, 2, 21, 23, tzinfo=UTC)
    found = runs_for_timer(WORKFLOWS, timer, hire, timer.fire_at)
    assert found.workflow_ids() == ["pre-hire"]
    assert found.runs[0].identity_id == "u-1"


def test_a_timer_of_an_identity_that_left_the_scope_fires_nothing_and_says_so() -> None:
    hire = {**ADA, "hire_date": "2027-03-01"}
    timer = _timer(hire)
    now_contractor = {**hire, "employee_type": "contractor"}
    found = runs_for_timer(WORKFLOWS, timer, now_contractor, NOW)
    assert found.runs == []
    assert [(s.workflow_id, s.reason) for s in found.skipped] == [("pre-hire", "out of scope")]


def test_a_timer_for_a_date_the_identity_no_longer_has_fires_nothing() -> None:
    hire = {**ADA, "hire_date": "2027-03-01"}
    timer = _timer(hire)
    found = runs_for_timer(WORKFLOWS, timer, {**hire, "hire_date": "2027-04-01"}, NOW)
    assert found.runs == []
    assert "2027-03-01" in found.skipped[0].reason


def test_a_timer_of_a_replaced_version_fires_nothing() -> None:
    hire = {**ADA, "hire_date": "2027-03-01"}
    timer = _timer(hire)
    edited = load(PRE_HIRE.replace("-P7D", "-P3D"))
    found = runs_for_timer(edited, timer, hire, NOW)
    assert found.runs == []
    assert "replaced" in found.skipped[0].reason


def test_on_demand_runs_the_workflow_for_each_identity_in_its_scope() -> None:
    people = {"u-1": {**ADA, "department": "IT"}, "u-2": ADA}
    found = runs_on_demand(WORKFLOWS, "reset", people, NOW)
    assert [(run.workflow_id, run.identity_id) for run in found.runs] == [("reset", "u-1")]
    assert [(s.identity_id, s.reason) for s in found.skipped] == [("u-2", "out of scope")]


def test_on_demand_refuses_an_unknown_or_disabled_workflow() -> None:
    with pytest.raises(UnknownWorkflow, match="no workflow 'nope'"):
        runs_on_demand(WORKFLOWS, "nope", {}, NOW)
    with pytest.raises(UnknownWorkflow, match="disabled"):
        runs_on_demand(WORKFLOWS, "paused", {}, NOW)


def test_a_schedule_is_due_once_one_of_its_times_passed_since_the_last_run() -> None:
    # Every Monday at 08:00 in Paris; 2027-02-01 is a Monday, 08:00 there is 07:00 UTC.
    last = {"report": datetime(2027, 1, 25, 7, 0, 1, tzinfo=UTC)}
    assert schedule_due(WORKFLOWS, last, datetime(2027, 2, 1, 6, 59, tzinfo=UTC)) == []
    assert schedule_due(WORKFLOWS, last, datetime(2027, 2, 1, 7, 0, tzinfo=UTC)) == ["report"]
    ran = {"report": datetime(2027, 2, 1, 7, 0, tzinfo=UTC)}
    assert schedule_due(WORKFLOWS, ran, datetime(2027, 2, 1, 12, tzinfo=UTC)) == []


def test_a_schedule_that_never_ran_is_not_due_until_the_caller_records_it() -> None:
    assert schedule_due(WORKFLOWS, {}, NOW) == []
