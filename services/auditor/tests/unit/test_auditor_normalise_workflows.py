"""Workflow run and task events (issue 22) as audit entries: outcome, actor, subject, target;
and the asks of workflow runs (approvals, session revocations) with their answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from accord.auditor.domain.normalise import OUTCOMES, from_envelope, outcome_of
from accord.events import (
    ApprovalDecided,
    ApprovalRequested,
    EventData,
    SessionRevoked,
    SessionRevokeRequested,
    UserCreated,
    WorkflowRunCancelled,
    WorkflowRunCompleted,
    WorkflowRunFailed,
    WorkflowRunStarted,
    WorkflowTaskCompleted,
    WorkflowTaskFailed,
    WorkflowTaskSkipped,
    WorkflowTaskWaiting,
    new_event,
    topics,
)

ORCHESTRATOR = "accord/orchestrator"
RUN: dict[str, Any] = {
    "run_id": "run-1",
    "workflow_id": "pre-hire",
    "version": "3f9a0c12b7de",
    "identity_id": "e-1",
    "category": "joiner",
}
TASK: dict[str, Any] = {**RUN, "task_id": "open_ticket", "kind": "call_extension"}
UNTIL = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

CASES = [
    pytest.param(WorkflowRunStarted(**RUN, trigger="user.created"), "pending", id="run_started"),
    pytest.param(WorkflowRunCompleted(**RUN), "success", id="run_completed"),
    pytest.param(WorkflowRunFailed(**RUN, reason="open_ticket failed"), "failure", id="run_failed"),
    pytest.param(WorkflowRunCancelled(**RUN, reason="hire rescinded"), "info", id="run_cancelled"),
    pytest.param(WorkflowTaskCompleted(**TASK, output_keys=("ticket_id",)), "success", id="done"),
    pytest.param(WorkflowTaskFailed(**TASK, reason="422"), "failure", id="task_failed"),
    pytest.param(WorkflowTaskSkipped(**TASK, reason="when: false"), "info", id="task_skipped"),
    pytest.param(
        WorkflowTaskWaiting(**TASK, waiting_for="approval", until=UNTIL), "pending", id="waiting"
    ),
]


@pytest.mark.parametrize(("data", "outcome"), CASES)
def test_a_workflow_event_lands_with_its_outcome_actor_and_subject(
    data: EventData, outcome: str
) -> None:
    event = new_event(data, source=ORCHESTRATOR)

    entry = from_envelope(event, event.type, None)

    assert outcome_of(event) == outcome
    assert entry.outcome == outcome
    assert entry.event_type == data.event_type
    assert entry.actor == ORCHESTRATOR  # the engine that ran it
    assert entry.subject == "e-1"  # the identity, so it shows on the identity's time line
    assert entry.target is None  # about an identity, not a target system
    assert entry.payload["workflow_id"] == "pre-hire"
    assert entry.payload["run_id"] == "run-1"


def test_every_workflow_event_type_has_an_outcome_of_its_own() -> None:
    # A new workflow event must be placed, not fall through to "info" unnoticed.
    assert set(topics.WORKFLOW_TOPICS) <= set(OUTCOMES)
    assert {case.values[0].event_type for case in CASES} == set(topics.WORKFLOW_TOPICS)


def test_a_run_keeps_the_flow_of_the_event_that_triggered_it() -> None:
    cause = new_event(
        UserCreated(user_id="e-1", user_name="ada"),
        source="urn:hr:workday",
        sequence=1,
        correlation_id="corr-9",
    )
    event = new_event(
        WorkflowRunStarted(**RUN, trigger="user.created"), source=ORCHESTRATOR, causation=cause
    )

    entry = from_envelope(event, event.type, None)

    assert entry.correlation_id == "corr-9"
    assert entry.payload["trigger"] == "user.created"


def test_a_completed_task_is_recorded_with_its_output_names_only() -> None:
    data = WorkflowTaskCompleted(**TASK, output_keys=("ticket_id", "approved"))

    entry = from_envelope(new_event(data, source=ORCHESTRATOR), data.event_type, None)

    assert entry.payload["output_keys"] == ["ticket_id", "approved"]
    assert set(entry.payload) == {*TASK, "output_keys"}
    json.dumps(entry.payload)


def test_a_waiting_task_says_what_it_waits_for_and_until_when() -> None:
    data = WorkflowTaskWaiting(**TASK, waiting_for="callback", until=UNTIL)

    entry = from_envelope(new_event(data, source=ORCHESTRATOR), data.event_type, None)

    assert entry.outcome == "pending"
    assert entry.payload["waiting_for"] == "callback"
    assert datetime.fromisoformat(entry.payload["until"]) == UNTIL


def test_a_dead_lettered_workflow_event_is_a_failure_whatever_its_type() -> None:
    event = new_event(WorkflowRunCompleted(**RUN), source=ORCHESTRATOR)

    entry = from_envelope(event, topics.dlq_for(event.type), None)

    assert entry.outcome == "failure"


ASK: dict[str, Any] = {
    "approval_id": "run-1:extend:1",
    "user_id": "e-1",
    "run_id": "run-1",
    "task_id": "extend",
}
AUTHZ = "accord/authz"
AUTHN = "accord/authn"

ASKS = [
    pytest.param(
        ApprovalRequested(
            **ASK,
            workflow_id="contractor-end-date",
            approvers=("manager",),
            reason="Extend the contract?",
            expires_at=UNTIL,
        ),
        ORCHESTRATOR,
        "pending",
        id="approval_requested",
    ),
    pytest.param(
        ApprovalDecided(**ASK, approved=True, decided_by="u-7", decided_at=UNTIL),
        AUTHZ,
        "success",
        id="approved",
    ),
    pytest.param(
        ApprovalDecided(**ASK, approved=False, decided_by="u-7", decided_at=UNTIL),
        AUTHZ,
        "failure",
        id="rejected",
    ),
    pytest.param(
        ApprovalDecided(
            **ASK,
            approved=False,
            decided_by="authz",
            decided_at=UNTIL,
            reason="no approver resolved",
        ),
        AUTHZ,
        "failure",
        id="rejected_by_authz",
    ),
    pytest.param(
        SessionRevokeRequested(
            user_id="e-1", request_id="run-1:sessions:1", reason="workflow leaver", run_id="run-1"
        ),
        ORCHESTRATOR,
        "pending",
        id="session_revoke_requested",
    ),
    pytest.param(
        SessionRevoked(user_id="e-1", reason="workflow leaver", streams=2),
        AUTHN,
        "info",
        id="session_revoked",
    ),
]


@pytest.mark.parametrize(("data", "source", "outcome"), ASKS)
def test_a_workflows_ask_and_its_answer_land_on_the_identity_with_their_outcome(
    data: EventData, source: str, outcome: str
) -> None:
    event = new_event(data, source=source)

    entry = from_envelope(event, event.type, None)

    assert outcome_of(event) == outcome
    assert entry.outcome == outcome
    assert entry.actor == source
    assert entry.subject == "e-1"  # on the identity's time line
    assert entry.target is None


def test_every_ask_of_a_workflow_run_has_an_outcome_of_its_own() -> None:
    for event_type in (topics.APPROVAL_REQUESTED, topics.SESSION_REVOKE_REQUESTED):
        assert OUTCOMES[event_type] == "pending"
