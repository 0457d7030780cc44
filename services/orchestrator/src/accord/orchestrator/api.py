"""HTTP API of the orchestrator: identities, and sagas (list, show, retry, cancel)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from accord.orchestrator import sagas
from accord.orchestrator.adapters import store
from accord.orchestrator.domain import account_saga as saga
from accord.orchestrator.domain.workflow import WorkflowSettings
from accord.runtime.app_deps import Mounted
from accord.runtime.params import Cursor, Id
from accord.runtime.problems import documented
from accord.runtime.security.api import may_see, own_or, require
from accord.runtime.security.roles import Caller, Permission
from accord.runtime.service import Runtime


class CancelBody(BaseModel):
    """Why a saga is given up, for the audit log."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=200)


class IdentityEntry(BaseModel):
    """One identity of the registry."""

    user_id: str
    user_name: str
    profile: dict[str, Any]
    status: saga.IdentityStatus
    sequence: int
    updated_at: datetime
    locked_by: str | None


class SagaEntry(BaseModel):
    """One saga: its steps (attempts, errors, timings) as it keeps them."""

    saga_id: str
    saga_type: saga.SagaType
    subject_id: str
    correlation_id: str
    status: saga.Status
    version: int
    started_at: datetime
    updated_at: datetime
    steps: list[dict[str, Any]]
    on_failure: saga.OnFailure
    failures: int


class ListedSaga(SagaEntry):
    """A saga of a listing, with its place in it."""

    seq: int


class SagaPage(BaseModel):
    """A page of sagas, newest first; next_cursor asks for the next page."""

    items: list[ListedSaga]
    next_cursor: int | None


@dataclass(frozen=True)
class ApiDeps:
    """What the orchestrator's routes work with, set by `configure` on the app."""

    runtime: Runtime
    workflows: WorkflowSettings


_deps = Mounted[ApiDeps]("orchestrator_api")


router = APIRouter(prefix="/v1", tags=["orchestrator"])
# A system's credential (SCIM client, application) has no identity or sagas: 403.
_identity_reader = own_or(Permission.IDENTITIES_READ)
_saga_reader = own_or(Permission.SAGAS_READ)
_operator = require(Permission.SAGAS_OPERATE)


def configure(app: FastAPI, runtime: Runtime, workflows: WorkflowSettings) -> None:
    """Mount the orchestrator's routes."""
    _deps.mount(app, ApiDeps(runtime, workflows), router)


@router.get("/identities/{user_id}", summary="One identity of the registry")
async def get_identity(
    user_id: Id, caller: Caller = Depends(_identity_reader), deps: ApiDeps = Depends(_deps)
) -> IdentityEntry:
    # Another person's identity is "not found": its existence is not the caller's business.
    entry = None
    if may_see(caller, Permission.IDENTITIES_READ, user_id):
        async with deps.runtime.pool.acquire() as conn:
            entry = await store.get_identity(conn, user_id)
    if entry is None:
        raise HTTPException(404, "no such identity")
    return IdentityEntry.model_validate(entry)


@router.get("/sagas", summary="Sagas, newest first: everyone's, or the caller's own")
async def list_sagas(
    caller: Caller = Depends(_saga_reader),
    deps: ApiDeps = Depends(_deps),
    status: saga.Status | None = None,
    saga_type: saga.SagaType | None = None,
    subject_id: Id | None = None,
    cursor: Annotated[Cursor | None, Query(description="next_cursor of the last page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> SagaPage:
    if not caller.may(Permission.SAGAS_READ):
        if subject_id not in (None, caller.subject):
            return SagaPage(items=[], next_cursor=None)
        subject_id = caller.subject
    where = store.SagaFilter(status=status, saga_type=saga_type, subject_id=subject_id)
    items = await store.list_sagas(deps.runtime.pool, where, limit=limit, before=cursor)
    next_cursor = items[-1]["seq"] if len(items) == limit else None
    listed = [ListedSaga.model_validate(item) for item in items]
    return SagaPage(items=listed, next_cursor=next_cursor)


@router.get("/sagas/{saga_id}", summary="One saga: its steps, attempts, errors and timings")
async def get_saga(
    saga_id: Id, caller: Caller = Depends(_saga_reader), deps: ApiDeps = Depends(_deps)
) -> SagaEntry:
    entry = await store.get_saga(deps.runtime.pool, saga_id)
    if entry is None or not may_see(caller, Permission.SAGAS_READ, entry["subject_id"]):
        raise HTTPException(404, "no such saga")
    return SagaEntry.model_validate(entry)


@router.post(
    "/sagas/{saga_id}/retry",
    summary="Run a failed saga's unfinished steps again",
    dependencies=[Depends(_operator)],
    responses={
        409: documented("The saga is not failed, or another saga of the same identity is in flight")
    },
)
async def retry_saga(saga_id: Id, deps: ApiDeps = Depends(_deps)) -> SagaEntry:
    return await _act(deps, saga_id, saga.RetryRequested())


@router.post(
    "/sagas/{saga_id}/cancel",
    summary="Give a running or failed saga up",
    dependencies=[Depends(_operator)],
    responses={409: documented("The saga has ended already (completed or cancelled)")},
)
async def cancel_saga(saga_id: Id, body: CancelBody, deps: ApiDeps = Depends(_deps)) -> SagaEntry:
    return await _act(deps, saga_id, saga.CancelRequested(body.reason))


async def _act(
    deps: ApiDeps, saga_id: str, action: saga.RetryRequested | saga.CancelRequested
) -> SagaEntry:
    try:
        entry = await sagas.operate(
            deps.runtime.pool,
            schema=deps.runtime.schema,
            source=deps.runtime.source,
            workflows=deps.workflows,
            saga_id=saga_id,
            action=action,
        )
    except sagas.SagaNotFound:
        raise HTTPException(404, "no such saga") from None
    except sagas.SagaConflict as error:
        raise HTTPException(409, f"the saga {error.reason}") from None
    return SagaEntry.model_validate(entry)
