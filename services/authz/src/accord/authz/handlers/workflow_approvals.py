"""Approvals lifecycle workflows ask for (issue 22): from approval.requested to
approval.decided.

The orchestrator's run asks (approval.requested); authz resolves who may decide (as the
access approval chain does: the identity's manager from authz's directory, a group's
members, named users; never the identity itself), records the approval pending, and an
approver decides it through the approvals API or `accord approvals`. The decision goes back
to the run as approval.decided, through the outbox in the deciding transaction.

The announcement is the approval.requested event itself (the audit log records it, and the
approvals API and CLI list the approval to the people it resolved to): access.approval_requested
does not fit, since it is a stage of an access request and must name an entitlement.

An ask that resolves to nobody is rejected at once (approval.decided, approved false,
decided by `authz`, with the reason) rather than left to time out: the run learns it now.
A redelivered request finds its row (approval_id is the run's idempotency key) and does
nothing. Authz never expires an approval (the run's wake-up does); it refuses a decision
at or after expires_at (TooLate).
"""

from __future__ import annotations

import logging

from accord.authz.domain import workflow_approvals as rules
from accord.authz.handlers.access import Emit
from accord.authz.ports import AuthzPorts, NewWorkflowApproval, Row, Stores
from accord.events import ApprovalDecided, ApprovalRequested, Envelope

log = logging.getLogger(__name__)

__all__ = ["decide_workflow_approval", "on_approval_requested", "resolve_approvers"]


async def on_approval_requested(
    event: Envelope, data: ApprovalRequested, ports: AuthzPorts
) -> list[Envelope]:
    """Record a workflow's approval with its approvers resolved; reject it at once when
    they resolve to nobody; nothing on a redelivery."""
    stores = ports.stores
    approvers = await resolve_approvers(stores, data.approvers, subject=data.user_id)
    created = await stores.workflow_approvals.insert(
        NewWorkflowApproval(
            approval_id=data.approval_id,
            user_id=data.user_id,
            workflow_id=data.workflow_id,
            run_id=data.run_id,
            task_id=data.task_id,
            asked=data.approvers,
            approvers=approvers,
            reason=data.reason,
            escalation=data.escalation,
            expires_at=data.expires_at,
            correlation_id=event.correlationid,
        )
    )
    if not created:
        log.info("workflow approval known already", extra={"approval_id": data.approval_id})
        return []
    if approvers:
        return []
    row = await stores.workflow_approvals.decide(
        data.approval_id, "rejected", by=rules.SYSTEM_DECIDER, comment=rules.NO_APPROVER
    )
    assert row is not None
    return [Emit(ports.source, event.correlationid, event)(decided(row))]


async def resolve_approvers(
    stores: Stores, asked: tuple[str, ...], *, subject: str
) -> tuple[str, ...]:
    """Who the named approvers are now, in authz's directory."""
    manager = None
    if "manager" in asked:
        manager = (await stores.directory.managers(subject)).get(subject)
    groups = {
        ref.removeprefix("group:"): await stores.directory.members(ref.removeprefix("group:"))
        for ref in asked
        if ref.startswith("group:")
    }
    return rules.resolve(asked, subject=subject, manager=manager, group_members=groups)


async def decide_workflow_approval(
    stores: Stores,
    approval_id: str,
    *,
    approver_id: str,
    approve: bool,
    comment: str | None,
    admin: bool,
    source: str,
) -> list[Envelope]:
    """An approver's (or an admin's) decision on a pending workflow approval.

    Raises ApprovalNotFound; NotInvolved when the caller is neither an approver, an admin
    nor the identity it is about (to them it does not exist); NotPending or TooLate (the run
    no longer waits); NotAnApprover (the identity itself included). Messages name no id.
    """
    row = await stores.workflow_approvals.locked(approval_id)
    if row is None:
        raise rules.ApprovalNotFound("no such workflow approval")
    involved = admin or approver_id == row["user_id"] or approver_id in row["approvers"]
    if not involved:
        raise rules.NotInvolved("no such workflow approval among those you may decide")
    rules.check_open(row["status"], row["expires_at"], stores.clock())
    rules.check_decider(
        approver_id, subject=row["user_id"], approvers=row["approvers"], admin=admin
    )
    decided_row = await stores.workflow_approvals.decide(
        approval_id, "approved" if approve else "rejected", by=approver_id, comment=comment
    )
    assert decided_row is not None  # locked and pending above
    return [Emit(source, row["correlation_id"])(decided(decided_row))]


def decided(row: Row) -> ApprovalDecided:
    """The approval.decided of a decided row (the comment, cut short, as its reason)."""
    comment = (row["comment"] or "").strip()
    return ApprovalDecided(
        approval_id=row["approval_id"],
        user_id=row["user_id"],
        run_id=row["run_id"],
        task_id=row["task_id"],
        approved=row["status"] == "approved",
        decided_by=row["decided_by"][:256],
        decided_at=row["decided_at"],
        reason=comment[:256] or None,
    )
