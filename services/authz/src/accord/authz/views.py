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
