"""Authz HTTP API for approvals (access requests' and workflows'), grants (who has what) and
separation-of-duties violations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query
from pydantic import BaseModel, ConfigDict

from accord.authz import access, sod
from accord.authz.adapters import approvals, grants, workflow_approvals
from accord.authz.domain import workflow_approvals as workflow_rules
from accord.authz.domain.approvals import ApprovalSettings, NotAnApprover
from accord.authz.ports import Rules
from accord.authz.views import GrantView, PendingApproval, StageView, WorkflowApprovalView
from accord.events.catalogue.base import LongText, ShortText
from accord.runtime.app_deps import Mounted
from accord.runtime.outbox import enqueue
from accord.runtime.params import Id, Rfc3339, parse_rfc3339
from accord.runtime.security.api import own_or, own_unless_allowed, require
from accord.runtime.security.roles import Caller, Permission, Role
from accord.runtime.service import Runtime


class Verdict(BaseModel):
    """An approver's comment on their decision."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    comment: LongText | None = None


class Revocation(BaseModel):
    """Why a grant is ended."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: ShortText


class ApprovalPage(BaseModel):
    """Pending stages in request id order; `next_after` is the cursor of the next page."""

    items: list[PendingApproval]
    next_after: str | None


class Answered(BaseModel):
    """The request's chain once the answer is in."""

    request_id: str
    approvals: list[StageView]


class WorkflowApprovalPage(BaseModel):
    """Pending workflow approvals in approval id order; `next_after` is the next page's
    cursor."""

    items: list[WorkflowApprovalView]
    next_after: str | None


class GrantPage(BaseModel):
    """Grants in grant id order; `next_after` is the cursor of the next page."""

    items: list[GrantView]
    next_after: str | None


class Revoked(BaseModel):
    """The grant ended."""

    grant_id: str
    revoked: bool


class Violation(BaseModel):
    """An identity holding an entitlement a separation-of-duties policy forbids with the
    others it holds."""

    principal_id: str
    application: str
    entitlement: str
    policy: str
    """The @sod policy's @id."""
    description: str
    held: list[str]
    """Every entitlement the identity holds (application/entitlement)."""


class Violations(BaseModel):
    """Every violation found now."""

    items: list[Violation]


@dataclass(frozen=True)
class AccessDeps:
    """What these routes work with, set by `configure` on the app they are mounted on."""

    runtime: Runtime
    rules: Rules
    settings: ApprovalSettings


_deps = Mounted[AccessDeps]("authz_access_api")


def configure(app: FastAPI, runtime: Runtime, rules: Rules, settings: ApprovalSettings) -> None:
    """Mount the approval, grant and SoD routes."""
    _deps.mount(app, AccessDeps(runtime, rules, settings), router)


router = APIRouter(prefix="/v1", tags=["authz"])
# A system's credential (SCIM client, application) holds no entitlements: 403.
_entitlement_reader = own_or(Permission.ACCESS_READ)
_approver = require(Permission.ACCESS_APPROVE)
_ANSWERED: dict[int | str, dict[str, Any]] = {
    403: {"description": "Not an approver of the current stage, or one's own request"},
    404: {
        "description": "No such access request, or none of the caller's: neither theirs"
        " nor naming them as an approver"
    },
    409: {"description": "The request is not waiting for an approval"},
}


@router.get("/approvals", summary="Approval stages waiting: the caller's, or everyone's")
async def list_approvals(
    caller: Caller = Depends(_approver),
    deps: AccessDeps = Depends(_deps),
    approver: Annotated[Id | None, Query(description="Only this approver's")] = None,
    after: Annotated[Id | None, Query(description="Cursor: the last request_id seen")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ApprovalPage:
    approver = own_unless_allowed(caller, Permission.ACCESS_READ, approver, "approvals")
    items = await approvals.pending(deps.runtime.pool, approver=approver, after=after, limit=limit)
    next_after = items[-1]["request_id"] if len(items) == limit else None
    return ApprovalPage.model_validate({"items": items, "next_after": next_after})


async def _answer(
    request_id: str, caller: Caller, verdict: Verdict, deps: AccessDeps, *, approve: bool
) -> Answered:
    runtime = deps.runtime
    _, catalogue = deps.rules()
    try:
        async with runtime.pool.acquire() as conn, conn.transaction():
            events = await access.decide_stage(
                conn,
                request_id,
                approver_id=caller.subject,
                approve=approve,
                comment=verdict.comment,
                catalogue=catalogue,
                settings=deps.settings,
                source=runtime.source,
            )
            await enqueue(conn, runtime.schema, events)
    except access.RequestNotFound:
        # Unknown, or not the caller's business: the same answer (no id repeated).
        raise HTTPException(404, "no such access request among those you may decide") from None
    except access.NotWaiting as error:
        raise HTTPException(409, str(error)) from None
    except NotAnApprover as error:
        raise HTTPException(403, str(error)) from None
    chain = await approvals.chain(runtime.pool, request_id)
    return Answered.model_validate({"request_id": request_id, "approvals": chain})


@router.post(
    "/access-requests/{request_id}/approve",
    summary="Approve the current stage",
    responses=_ANSWERED,
)
async def approve(
    request_id: Id,
    verdict: Verdict,
    caller: Caller = Depends(_approver),
    deps: AccessDeps = Depends(_deps),
) -> Answered:
    return await _answer(request_id, caller, verdict, deps, approve=True)


@router.post(
    "/access-requests/{request_id}/deny",
    summary="Deny the current stage",
    responses=_ANSWERED,
)
async def deny(
    request_id: Id,
    verdict: Verdict,
    caller: Caller = Depends(_approver),
    deps: AccessDeps = Depends(_deps),
) -> Answered:
    return await _answer(request_id, caller, verdict, deps, approve=False)


_WORKFLOW_DECIDED: dict[int | str, dict[str, Any]] = {
    403: {"description": "Not an approver of it, or an approval about oneself"},
    404: {
        "description": "No such workflow approval, or none of the caller's: neither about"
        " them nor naming them as an approver"
    },
    409: {"description": "Decided already, or expired: the run no longer waits for it"},
}


@router.get(
    "/workflow-approvals",
    summary="Approvals lifecycle workflows wait for: the caller's, or everyone's",
)
async def list_workflow_approvals(
    caller: Caller = Depends(_approver),
    deps: AccessDeps = Depends(_deps),
    approver: Annotated[Id | None, Query(description="Only this approver's")] = None,
    after: Annotated[Id | None, Query(description="Cursor: the last approval_id seen")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> WorkflowApprovalPage:
    approver = own_unless_allowed(caller, Permission.ACCESS_READ, approver, "approvals")
    items = await workflow_approvals.pending(
        deps.runtime.pool, approver=approver, after=after, limit=limit
    )
    next_after = items[-1]["approval_id"] if len(items) == limit else None
    return WorkflowApprovalPage.model_validate({"items": items, "next_after": next_after})


async def _decide_workflow(
    approval_id: str, caller: Caller, verdict: Verdict, deps: AccessDeps, *, approve: bool
) -> WorkflowApprovalView:
    runtime = deps.runtime
    try:
        async with runtime.pool.acquire() as conn, conn.transaction():
            events = await access.decide_workflow_approval(
                conn,
                approval_id,
                approver_id=caller.subject,
                approve=approve,
                comment=verdict.comment,
                admin=Role.ADMIN in caller.roles,
                source=runtime.source,
            )
            await enqueue(conn, runtime.schema, events)
    except workflow_rules.ApprovalNotFound:
        raise HTTPException(404, "no such workflow approval among those you may decide") from None
    except (workflow_rules.NotPending, workflow_rules.TooLate) as error:
        raise HTTPException(409, str(error)) from None
    except NotAnApprover as error:
        raise HTTPException(403, str(error)) from None
    row = await workflow_approvals.get(runtime.pool, approval_id)
    return WorkflowApprovalView.model_validate(row)


@router.post(
    "/workflow-approvals/{approval_id}/approve",
    summary="Approve what a workflow run waits for (an approver of it, or an admin)",
    responses=_WORKFLOW_DECIDED,
)
async def approve_workflow(
    approval_id: Id,
    verdict: Verdict,
    caller: Caller = Depends(_approver),
    deps: AccessDeps = Depends(_deps),
) -> WorkflowApprovalView:
    return await _decide_workflow(approval_id, caller, verdict, deps, approve=True)


@router.post(
    "/workflow-approvals/{approval_id}/reject",
    summary="Reject what a workflow run waits for (an approver of it, or an admin)",
    responses=_WORKFLOW_DECIDED,
)
async def reject_workflow(
    approval_id: Id,
    verdict: Verdict,
    caller: Caller = Depends(_approver),
    deps: AccessDeps = Depends(_deps),
) -> WorkflowApprovalView:
    return await _decide_workflow(approval_id, caller, verdict, deps, approve=False)


@router.get("/entitlements", summary="Who holds what, now or at any past time")
async def list_entitlements(
    caller: Caller = Depends(_entitlement_reader),
    deps: AccessDeps = Depends(_deps),
    principal_id: Id | None = None,
    application: Id | None = None,
    as_of: Rfc3339 | None = None,
    after: Annotated[Id | None, Query(description="Cursor: the last grant_id seen")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> GrantPage:
    principal_id = own_unless_allowed(caller, Permission.ACCESS_READ, principal_id, "entitlements")
    items = await grants.search(
        deps.runtime.pool,
        principal_id=principal_id,
        application=application,
        as_of=parse_rfc3339(as_of, "as_of"),
        after=after,
        limit=limit,
    )
    next_after = items[-1]["grant_id"] if len(items) == limit else None
    return GrantPage.model_validate({"items": items, "next_after": next_after})


@router.post(
    "/grants/{grant_id}/revoke",
    summary="End a grant now (its group memberships are taken away)",
    dependencies=[Depends(require(Permission.ACCESS_REVOKE))],
    responses={409: {"description": "No live grant of that id (unknown or ended)"}},
)
async def revoke_grant(
    grant_id: Id, body: Revocation, deps: AccessDeps = Depends(_deps)
) -> Revoked:
    runtime = deps.runtime
    async with runtime.pool.acquire() as conn, conn.transaction():
        events = await access.revoke(conn, grant_id, body.reason, source=runtime.source)
        if not events:
            raise HTTPException(409, "no live grant of that id (unknown or ended)")
        await enqueue(conn, runtime.schema, events)
    return Revoked(grant_id=grant_id, revoked=True)


@router.get(
    "/sod/violations",
    summary="Identities holding a toxic combination of entitlements now",
    dependencies=[Depends(require(Permission.ACCESS_READ))],
)
async def sod_violations(deps: AccessDeps = Depends(_deps)) -> Violations:
    policies, catalogue = deps.rules()
    async with deps.runtime.pool.acquire() as conn:
        found = await sod.violations(conn, policies, catalogue)
    return Violations.model_validate({"items": found})
