"""Authz HTTP API: access requests, the policies in force, and principals."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from accord.authz import access
from accord.authz.adapters import approvals, requests, store
from accord.authz.adapters.requests import PostgresRequests
from accord.authz.policy_holder import PolicyHolder
from accord.authz.views import StageView, Timestamp
from accord.events import AccessRequested, Resource, new_event
from accord.events.catalogue.base import Identifier, LongText
from accord.runtime.app_deps import Mounted
from accord.runtime.outbox import enqueue
from accord.runtime.params import Id
from accord.runtime.security.api import may_see, own_or, require
from accord.runtime.security.roles import Caller, Permission
from accord.runtime.service import Runtime

_IDEMPOTENCY = uuid.UUID("0b4f7f1e-3a53-4d1f-a6a5-4f0c9f1d2e77")
#: An access request's status: `pending` (waiting for its principal to be known), the
#: decision (`permit`, `deny`, `approval_required`), then how a chain ended (`approved`,
#: `denied`, `expired`).
Status = Literal["pending", "permit", "deny", "approval_required", "approved", "denied", "expired"]


class NewAccessRequest(BaseModel):
    """What a caller may say when asking for access; the rest is Accord's to set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    application: Identifier
    entitlement: Identifier
    principal_id: Identifier | None = Field(
        default=None, description="Who gets the access; default: the caller"
    )
    justification: LongText | None = None
    duration_seconds: int | None = Field(default=None, gt=0, le=366 * 24 * 3600)


class RequestSummary(BaseModel):
    """An access request and where it stands."""

    request_id: str
    requester_id: str
    principal_id: str
    application: str
    entitlement: str
    justification: str | None
    duration_seconds: int | None
    status: Status
    reasons: list[str]
    """The deciding policies' @ids (and why a chain cannot be completed, if so)."""
    created_at: Timestamp
    decided_at: Timestamp | None


class RequestView(RequestSummary):
    """An access request with its approval chain (empty when it needs none)."""

    approvals: list[StageView]


class RequestPage(BaseModel):
    """Requests in id order; `next_after` is the cursor of the next page."""

    items: list[RequestSummary]
    next_after: str | None


class PolicyStatus(BaseModel):
    """The policies in force and the last refused reload."""

    version: str
    """sha256 of the policy folder's files."""
    loaded_at: str
    """When this version came into force (ISO 8601)."""
    policies: list[str]
    """The @ids of the policies in force."""
    last_error: str | None
    """Why the last reload was refused (file, line and reason), if one was."""


class PrincipalView(BaseModel):
    """The attributes policies see for a user."""

    user_id: str
    attributes: dict[str, Any]


@dataclass(frozen=True)
class ApiDeps:
    """What authz's routes work with, set by `configure` on the app they are mounted on."""

    runtime: Runtime
    holder: PolicyHolder
    settings: access.ApprovalSettings


_deps = Mounted[ApiDeps]("authz_api")


router = APIRouter(prefix="/v1", tags=["authz"])
# A system's credential (SCIM client, application) has no requests or principal: 403.
_access_reader = own_or(Permission.ACCESS_READ)
_principal_reader = own_or(Permission.PRINCIPALS_READ)
_requester = require(Permission.ACCESS_REQUEST)


def configure(
    app: FastAPI, runtime: Runtime, holder: PolicyHolder, settings: access.ApprovalSettings
) -> None:
    """Mount authz's routes."""
    _deps.mount(app, ApiDeps(runtime, holder, settings), router)


@router.post(
    "/access-requests",
    status_code=202,
    summary="Ask for an entitlement: decided at once (its status says how), or `pending`"
    " while its principal is not known yet",
    responses={
        200: {"description": "The earlier request made with this Idempotency-Key"},
        409: {"description": "The Idempotency-Key belongs to another caller's request"},
    },
)
async def create_request(
    body: NewAccessRequest,
    response: Response,
    caller: Caller = Depends(_requester),
    deps: ApiDeps = Depends(_deps),
    idempotency_key: Annotated[
        str | None, Header(max_length=128, pattern=r"^[\x21-\x7e]+$")
    ] = None,
) -> RequestView:
    principal = body.principal_id or caller.subject
    if principal != caller.subject and not caller.may(Permission.ACCESS_REQUEST_OTHERS):
        raise HTTPException(403, "asking for someone else needs access:request-others")
    if idempotency_key:
        # The same key from the same caller names the same request: retries are safe.
        seed = f"{caller.subject}\n{idempotency_key}"
        request_id = f"req-{uuid.uuid5(_IDEMPOTENCY, seed).hex}"
    else:
        request_id = f"req-{uuid.uuid4().hex}"
    request = AccessRequested(
        request_id=request_id,
        requester_id=caller.subject,
        principal_id=principal,
        resource=Resource(application=body.application, entitlement=body.entitlement),
        justification=body.justification,
        duration_seconds=body.duration_seconds,
    )
    async with deps.runtime.pool.acquire() as conn, conn.transaction():
        created = await PostgresRequests(conn).insert(request)
        if created:
            # Decided here, as the access.requested consumer would (it finds the request
            # decided and does nothing), so the answer says what happened.
            event = new_event(request, source=deps.runtime.source, correlation_id=request_id)
            current = deps.holder.current
            decided = await access.decide_request(
                conn,
                event,
                policies=current.policies,
                catalogue=current.catalogue,
                settings=deps.settings,
                source=deps.runtime.source,
            )
            await enqueue(conn, deps.runtime.schema, [event, *decided])
    entry = await requests.get(deps.runtime.pool, request_id)
    if entry is None or entry["requester_id"] != caller.subject:
        raise HTTPException(409, "this idempotency key was used for another request")
    response.headers["Location"] = f"/v1/access-requests/{request_id}"
    if not created:
        response.status_code = 200
    return await _view(deps, entry)


@router.get("/access-requests", summary="Access requests: everyone's, or the caller's own")
async def list_requests(
    caller: Caller = Depends(_access_reader),
    deps: ApiDeps = Depends(_deps),
    status: Status | None = None,
    after: Annotated[Id | None, Query(description="Cursor: the last request_id seen")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> RequestPage:
    involving = None if caller.may(Permission.ACCESS_READ) else caller.subject
    items = await requests.search(
        deps.runtime.pool, involving=involving, status=status, after_id=after, limit=limit
    )
    next_after = items[-1]["request_id"] if len(items) == limit else None
    return RequestPage.model_validate({"items": items, "next_after": next_after})


@router.get("/access-requests/{request_id}", summary="One access request")
async def get_request(
    request_id: Id, caller: Caller = Depends(_access_reader), deps: ApiDeps = Depends(_deps)
) -> RequestView:
    entry = await requests.get(deps.runtime.pool, request_id)
    if entry is None or not may_see(
        caller, Permission.ACCESS_READ, entry["requester_id"], entry["principal_id"]
    ):
        raise HTTPException(404, "no such access request")
    return await _view(deps, entry)


async def _view(deps: ApiDeps, entry: dict[str, Any]) -> RequestView:
    """The request with its approval chain."""
    chain = await approvals.chain(deps.runtime.pool, entry["request_id"])
    return RequestView.model_validate({**entry, "approvals": chain})


@router.get(
    "/policies",
    summary="The policies in force (by @id), their version, and the last refused reload",
    dependencies=[Depends(require(Permission.POLICIES_READ))],
)
async def list_policies(deps: ApiDeps = Depends(_deps)) -> PolicyStatus:
    status = deps.holder.status()
    return PolicyStatus.model_validate({**status, "policies": sorted(status["policies"])})


@router.post(
    "/policies/reload",
    summary="Read the policy folder again now (a bad set is refused, the last good stays)",
    dependencies=[Depends(require(Permission.POLICIES_MANAGE))],
    responses={422: {"description": "Refused: file, line and reason"}},
)
async def reload_policies(deps: ApiDeps = Depends(_deps)) -> PolicyStatus:
    if not deps.holder.reload():
        raise HTTPException(422, deps.holder.last_error or "the policy folder was refused")
    return PolicyStatus.model_validate(deps.holder.status())


@router.get("/principals/{user_id}", summary="The attributes policies see for a user")
async def get_principal(
    user_id: Id, caller: Caller = Depends(_principal_reader), deps: ApiDeps = Depends(_deps)
) -> PrincipalView:
    attrs: dict[str, Any] = {}
    if may_see(caller, Permission.PRINCIPALS_READ, user_id):
        async with deps.runtime.pool.acquire() as conn:
            attrs = await store.principal_attrs(conn, user_id)
    if not attrs:
        raise HTTPException(404, "no such principal")
    return PrincipalView(user_id=user_id, attributes=attrs)
