"""A request_entitlement task's access request id and authz's answers to it
(workflows/access_requests.py): which answers end the task's wait, and how."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from accord.events import AccessApprovalDecided, AccessDecided, AccessGranted, Resource
from accord.orchestrator.workflows import runs
from accord.orchestrator.workflows.access_requests import RequestOf, decision, request_of

RUN = "wfr-0b9c8f0e-1d2a-4c3b-8e7f-6a5b4c3d2e1f"
REQUEST = f"{RUN}:payroll_access:2"
ASKED = RequestOf(RUN, "payroll_access", 2)
RESOURCE = Resource(application="payroll", entitlement="viewer")


@pytest.mark.parametrize(
    ("value", "found"),
    [
        (REQUEST, ASKED),
        ("req-1", None),  # a person's request through the API
        (f"{RUN}:payroll_access", None),
        (f"{RUN}:payroll_access:0", None),
        (f"{RUN}:Payroll:1", None),
        (":payroll_access:1", None),
    ],
)
def test_a_request_id_names_the_run_task_and_attempt_or_nothing(
    value: str, found: RequestOf | None
) -> None:
    assert request_of(value) == found


def test_the_grant_completes_the_task_with_the_grant() -> None:
    until = datetime(2027, 3, 1, tzinfo=UTC)
    granted = AccessGranted(
        request_id=REQUEST, grant_id="grant-9", principal_id="u1", resource=RESOURCE,
        expires_at=until,
    )  # fmt: skip
    assert decision(granted, ASKED) == runs.AccessDecision(
        "payroll_access",
        2,
        granted=True,
        outputs={"granted": True, "grant_id": "grant-9", "expires_at": until.isoformat()},
    )


def test_a_grant_held_already_completes_the_task_as_a_new_one_would() -> None:
    """authz answers a request for an entitlement held with that grant (reaffirmed): the
    task has its access, so it completes, naming the grant held and its expiry."""
    until = datetime(2027, 1, 1, tzinfo=UTC)
    held = AccessGranted(
        request_id=REQUEST, grant_id="grant-req-1", principal_id="u1", resource=RESOURCE,
        expires_at=until, reaffirmed=True,
    )  # fmt: skip
    assert decision(held, ASKED) == runs.AccessDecision(
        "payroll_access",
        2,
        granted=True,
        outputs={"granted": True, "grant_id": "grant-req-1", "expires_at": until.isoformat()},
    )


def decided(verdict: str) -> AccessDecided:
    return AccessDecided.model_validate(
        {
            "request_id": REQUEST,
            "principal_id": "u1",
            "resource": RESOURCE,
            "decision": verdict,
            "reasons": ["finance-only"] if verdict == "deny" else [],
        }
    )


def stage(outcome: str, approver: str | None) -> AccessApprovalDecided:
    return AccessApprovalDecided.model_validate(
        {
            "request_id": REQUEST,
            "principal_id": "u1",
            "stage": 2,
            "outcome": outcome,
            "approver_id": approver,
        }
    )


def test_a_deny_by_policy_refuses_with_its_reasons() -> None:
    refused = decision(decided("deny"), ASKED)
    assert refused is not None
    assert (refused.granted, refused.attempt) == (False, 2)
    assert refused.reason == "denied by policy (finance-only)"
    assert refused.outputs == {
        "granted": False, "decision": "denied", "by": "policy", "reasons": ["finance-only"],
    }  # fmt: skip


def test_a_denied_or_expired_stage_refuses_and_says_by_whom() -> None:
    denied = decision(stage("denied", "u-boss"), ASKED)
    expired = decision(stage("expired", None), ASKED)
    assert denied is not None
    assert expired is not None
    assert denied.reason == "denied by u-boss at approval stage 2"
    assert (denied.outputs["decision"], denied.outputs["by"]) == ("denied", "u-boss")
    assert expired.reason == "approval stage 2 expired undecided"
    assert (expired.outputs["decision"], expired.outputs["by"]) == ("expired", None)


@pytest.mark.parametrize(
    "answer",
    [decided("permit"), decided("approval_required"), stage("approved", "u-boss")],
    ids=["permit", "approval_required", "stage_approved"],
)
def test_answers_that_decide_nothing_yet_are_none(
    answer: AccessDecided | AccessApprovalDecided,
) -> None:
    assert decision(answer, ASKED) is None
