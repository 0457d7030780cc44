"""What authz's HTTP API answers with: the rows of its tables as response models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, PlainSerializer

from accord.events.catalogue import Provisioning

#: A time as the API has always written it: ISO 8601 with its offset (`+00:00`).
Timestamp = Annotated[
    datetime, PlainSerializer(lambda value: value.isoformat(), return_type=str, when_used="json")
]


class StageView(BaseModel):
    """One stage of an access request's approval chain."""

    request_id: str
    stage: int
    name: str
    """manager, application_owner, group:<id> or user:<id>."""
    approvers: list[str]
    escalation: list[str]
    """Who the stage goes to when it is overdue."""
    status: str
    """waiting, pending, approved, denied, expired or skipped."""
    escalated: bool
    due_at: Timestamp | None
    decided_by: str | None
    comment: str | None
    decided_at: Timestamp | None


class PendingApproval(StageView):
    """A stage waiting for a decision, with its request."""

    requester_id: str
    principal_id: str
    application: str
    entitlement: str
    justification: str | None
    duration_seconds: int | None
    created_at: Timestamp


class WorkflowApprovalView(BaseModel):
    """An approval a lifecycle workflow's run asked for, about an identity."""

    approval_id: str
    """The run's idempotency key for the ask (run:task:attempt)."""
    user_id: str
    """The identity it is about (who may never decide it)."""
    workflow_id: str
    run_id: str
    task_id: str
    asked: list[str]
    """The approvers as the workflow named them: manager, group:<id>, user:<id>."""
    approvers: list[str]
    """Who they resolved to: any one of them decides."""
    reason: str | None
    """What is asked and why, as the workflow words it."""
    escalation: bool
    """The escalation of an earlier ask that timed out."""
    expires_at: Timestamp
    """From then on the run no longer waits: a decision is refused."""
    status: str
    """pending, approved or rejected."""
    decided_by: str | None
    comment: str | None
    decided_at: Timestamp | None
    created_at: Timestamp


class GrantView(BaseModel):
    """A grant: who holds which entitlement, from when until when."""

    grant_id: str
    request_id: str
    principal_id: str
    application: str
    entitlement: str
    provisioning: list[Provisioning]
    granted_at: Timestamp
    expires_at: Timestamp | None
    revoked_at: Timestamp | None
    revoke_reason: str | None
