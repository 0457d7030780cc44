"""Workflow approvals (issue 22): a lifecycle workflow's run asks people to approve a step
about an identity, and authz answers with their decision.

Not access events: an access approval is a stage of an access request's chain, keyed by the
request and always about an entitlement (`access.approval_*` carry a `resource`); a
workflow's approval is about an identity (approve this contractor's extension, this
leaver's early cut-off) and has no resource. So the area is its own, with its own topics.

Keyed by the identity (`user_id` is the subject) so a run's approval events stay in order
with the identity's other events and the workflow events of the run that asked. They are
not identity events: they carry no per-subject sequence.

`approval_id` is the asking run's idempotency key for that ask (run:task:attempt): the same
on a redelivery or a repeated ask, a new one for an escalation (a new attempt). Authz keeps
one approval per id, so a duplicate request neither records nor announces twice.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, StringConstraints

from accord.events import topics
from accord.events.catalogue.base import EventData, Identifier, ShortText, Timestamp

#: Who may approve, as a workflow names them: the identity's `manager` (from authz's
#: directory), every member of a group (`group:<group id>`) or one person
#: (`user:<user_id>`). Authz resolves them to people when the request comes.
ApproverRef = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=134,
        pattern=r"^(manager|(group|user):[A-Za-z0-9][A-Za-z0-9._:@+-]*)$",
    ),
]
#: At most as many approver references as one ask may name.
MAX_APPROVERS = 16


class ApprovalEvent(EventData):
    """Common shape of approval events: one ask of one workflow run about one identity."""

    subject_field: ClassVar[str] = "user_id"

    approval_id: Identifier
    """The ask: the run's idempotency key for it (run:task:attempt), stable across
    redeliveries; an escalation is a new ask with a new id."""
    user_id: Identifier
    """The identity the approval is about; it may never approve it itself."""
    run_id: Identifier
    """The workflow run that asked."""
    task_id: Identifier
    """The run's approval task, by its id in the workflow."""


class ApprovalRequested(ApprovalEvent):
    """A workflow run asks people to approve a step about an identity."""

    event_type: ClassVar[str] = topics.APPROVAL_REQUESTED

    workflow_id: Identifier
    """The workflow the run runs (its definition's id: contractor-end-date, leaver...)."""
    approvers: tuple[ApproverRef, ...] = Field(min_length=1, max_length=MAX_APPROVERS)
    """Who may decide: `manager`, `group:<id>`, `user:<id>`; any one of them decides."""
    reason: ShortText | None = None
    """What is asked and why, in short, as the workflow words it (shown to the approvers)."""
    expires_at: Timestamp
    """When the run stops waiting (its timeout): a decision after it is refused."""
    escalation: bool = False
    """True when this ask is the escalation of an earlier one that timed out."""


class ApprovalDecided(ApprovalEvent):
    """An approval asked by a workflow run was decided."""

    event_type: ClassVar[str] = topics.APPROVAL_DECIDED

    approved: bool
    """The decision: true approves, false rejects."""
    decided_by: ShortText
    """Who decided: the approver's user_id (or subject); `authz` when authz rejected the
    ask itself because it named nobody who could decide."""
    decided_at: Timestamp
    """When."""
    reason: ShortText | None = None
    """Why, when authz rejected the ask itself (no approver resolved); else the approver's
    comment, if any."""
