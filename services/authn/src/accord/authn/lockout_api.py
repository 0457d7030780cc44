"""Lockouts and the requests that end them: list, lock by hand, ask for an unlock or a
factor reset (both approved in authz like any access request), pending enrolments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict

from accord.authn import approvals
from accord.authn.adapters import enrolments, identities, lockouts
from accord.authn.domain.lockout import MFA_RESET, UNLOCK
from accord.authn.handlers import lockout
from accord.authn.ports import PortsOf
from accord.events.catalogue.base import Identifier, LongText, ShortText
from accord.runtime.app_deps import Mounted
from accord.runtime.outbox import enqueue
from accord.runtime.params import Id, Rfc3339, parse_rfc3339
from accord.runtime.problems import documented
from accord.runtime.security.api import may_see, own_or, require
from accord.runtime.security.roles import Caller, Permission
from accord.runtime.service import Runtime

IdempotencyKey = Annotated[str | None, Header(max_length=128, pattern=r"^[\x21-\x7e]+$")]


class ManualLock(BaseModel):
    """Lock an identity now: its sessions end and its accounts are disabled."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: Identifier
    reason: ShortText


class ApprovalAsk(BaseModel):
    """Ask for an unlock or a factor reset; an approver decides, as for any access."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: Identifier
    justification: LongText | None = None


_OUT = ConfigDict(frozen=True)


class LockoutView(BaseModel):
    """A lockout: open until an approved unlock request ends it."""

    model_config = _OUT
    lockout_id: str
    user_id: str
    reason: str
    failures: int
    locked_at: datetime
    unlocked_at: datetime | None
    unlock_request_id: str | None
    open: bool

    @classmethod
    def of(cls, row: dict[str, Any]) -> LockoutView:
        """The view of a `lockouts` row."""
        return cls(**row, open=row["unlocked_at"] is None)


class LockoutPage(BaseModel):
    """Lockouts, newest first; `next_before` pages on when there may be more."""

    model_config = _OUT
    items: list[LockoutView]
    next_before: datetime | None


class RequestFiled(BaseModel):
    """An unlock or factor-reset request filed with authz (approved there)."""

    model_config = _OUT
    request_id: str
    kind: Literal["unlock", "mfa-reset"]
    user_id: str


class PendingEnrolment(BaseModel):
    """An identity the joiner saga asked to enrol a factor."""

    model_config = _OUT
    user_id: str
    factors: list[str]
    requested_at: datetime
    saga_id: str | None
    enrolled_at: datetime | None


class EnrolmentPage(BaseModel):
    """Pending enrolments by user_id; `next_after` pages on when there may be more."""

    model_config = _OUT
    items: list[PendingEnrolment]
    next_after: str | None


@dataclass(frozen=True)
class LockoutDeps:
    """What the lockout routes work with, set by `configure` on the app they are mounted on."""

    runtime: Runtime
    ports_of: PortsOf


_deps = Mounted[LockoutDeps]("authn_lockouts")


def configure(app: FastAPI, runtime: Runtime, ports_of: PortsOf) -> None:
    """Mount the lockout routes."""
    _deps.mount(app, LockoutDeps(runtime, ports_of), router)


router = APIRouter(prefix="/v1", tags=["lockouts"])
_manage = require(Permission.LOCKOUTS_MANAGE)
# For oneself, or for anyone with access:request-others; a system's credential: 403.
_asker = own_or(Permission.ACCESS_REQUEST_OTHERS)


@router.get("/lockouts", summary="Lockouts, newest first", dependencies=[Depends(_manage)])
async def list_lockouts(
    deps: LockoutDeps = Depends(_deps),
    user_id: Annotated[Identifier | None, Query()] = None,
    open_only: Annotated[bool, Query(alias="open")] = False,
    before: Annotated[Rfc3339 | None, Query(description="Cursor: next_before")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> LockoutPage:
    cursor = parse_rfc3339(before, "before")
    async with deps.runtime.pool.acquire() as conn:
        rows = await lockouts.list_lockouts(
            conn, user_id=user_id, open_only=open_only, before=cursor, limit=limit
        )
    last: datetime | None = rows[-1]["locked_at"] if len(rows) == limit else None
    return LockoutPage(items=[LockoutView.of(r) for r in rows], next_before=last)


@router.get(
    "/lockouts/{lockout_id}",
    summary="One lockout",
    dependencies=[Depends(_manage)],
    responses={404: documented("No such lockout")},
)
async def get_lockout(lockout_id: Id, deps: LockoutDeps = Depends(_deps)) -> LockoutView:
    async with deps.runtime.pool.acquire() as conn:
        row = await lockouts.get_lockout(conn, lockout_id)
    if row is None:
        raise HTTPException(404, "no such lockout")
    return LockoutView.of(row)


@router.post(
    "/lockouts",
    status_code=201,
    summary="Lock an identity now (sessions revoked everywhere, accounts disabled)",
    responses={
        200: {
            "model": LockoutView,
            "description": "The identity was locked already: its open lockout",
        },
        404: documented("Authn knows no such identity"),
    },
)
async def lock(
    body: ManualLock,
    response: Response,
    caller: Caller = Depends(_manage),
    deps: LockoutDeps = Depends(_deps),
) -> LockoutView:
    runtime = deps.runtime
    async with runtime.pool.acquire() as conn, conn.transaction():
        if await identities.status_of(conn, body.user_id) is None:
            raise HTTPException(404, "authn knows no such identity")
        reason = f"{body.reason} (locked by {caller.subject})"
        ports = deps.ports_of(conn, runtime.source)
        events = await lockout.lock(ports, body.user_id, reason[:256], cause=None)
        await enqueue(conn, runtime.schema, events)
        row = await lockouts.open_lockout(conn, body.user_id)
    assert row is not None
    if not events:
        response.status_code = 200
    response.headers["Location"] = f"/v1/lockouts/{row['lockout_id']}"
    return LockoutView.of(dict(row))


async def _ask(
    kind: Literal["unlock", "mfa-reset"],
    body: ApprovalAsk,
    caller: Caller,
    key: str | None,
    response: Response,
    deps: LockoutDeps,
) -> RequestFiled:
    runtime = deps.runtime
    if not may_see(caller, Permission.ACCESS_REQUEST_OTHERS, body.user_id):
        raise HTTPException(403, "asking for someone else needs access:request-others")
    request_id = approvals.request_id_for(kind, body.user_id, caller.subject, key)
    async with runtime.pool.acquire() as conn, conn.transaction():
        try:
            created, events = await approvals.file_request(
                deps.ports_of(conn, runtime.source),
                kind=kind,
                user_id=body.user_id,
                requester_id=caller.subject,
                justification=body.justification,
                request_id=request_id,
            )
        except approvals.NothingToUnlock as error:
            raise HTTPException(409, str(error)) from None
        await enqueue(conn, runtime.schema, events)
    if not created:
        response.status_code = 200
    response.headers["Location"] = f"/v1/access-requests/{request_id}"
    return RequestFiled(request_id=request_id, kind=kind, user_id=body.user_id)


_ASKED: dict[int | str, dict[str, Any]] = {
    200: {
        "model": RequestFiled,
        "description": "The earlier request made with this Idempotency-Key",
    },
    403: documented("For someone else without access:request-others"),
}


def _asking_for(kind: Literal["unlock", "mfa-reset"], name: str) -> None:
    """The route that files `kind` requests (POST /v1/<kind>-requests), named `name`."""

    async def ask(
        body: ApprovalAsk,
        response: Response,
        caller: Caller = Depends(_asker),
        deps: LockoutDeps = Depends(_deps),
        idempotency_key: IdempotencyKey = None,
    ) -> RequestFiled:
        return await _ask(kind, body, caller, idempotency_key, response, deps)

    summary, responses = _ASKING[kind]
    router.post(
        f"/{kind}-requests", status_code=202, summary=summary, responses=responses, name=name
    )(ask)


_ASKING: dict[str, tuple[str, dict[int | str, dict[str, Any]]]] = {
    UNLOCK: (
        "Ask for a locked identity to be unlocked (approved in authz)",
        {**_ASKED, 409: documented("The identity is not locked")},
    ),
    MFA_RESET: (
        "Ask for every factor of an identity to be removed (approved in authz)",
        _ASKED,
    ),
}
_asking_for(UNLOCK, "unlock_request")
_asking_for(MFA_RESET, "reset_request")


@router.get(
    "/enrolments",
    summary="Identities the joiner saga asked to enrol a factor that have not yet",
    dependencies=[Depends(require(Permission.MFA_MANAGE))],
)
async def pending_enrolments(
    deps: LockoutDeps = Depends(_deps),
    after: Annotated[Identifier | None, Query(description="Cursor: next_after")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> EnrolmentPage:
    async with deps.runtime.pool.acquire() as conn:
        rows = await enrolments.pending(conn, after=after, limit=limit)
    next_after = rows[-1]["user_id"] if len(rows) == limit else None
    return EnrolmentPage(items=[PendingEnrolment(**r) for r in rows], next_after=next_after)
