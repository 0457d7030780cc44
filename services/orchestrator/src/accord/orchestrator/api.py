"""HTTP API of the orchestrator: identities, and sagas (list, show, retry, cancel)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from accord.orchestrator import sagas
from accord.orchestrator.adapters import store
from accord.orchestrator.domain import account_saga as saga
from accord.orchestrator.handlers import Workflows
from accord.runtime.params import Cursor, Id
from accord.runtime.security.api import may_see, own_or, require
from accord.runtime.security.roles import Caller, Permission
from accord.runtime.service import Runtime


class CancelBody(BaseModel):
    """Why a saga is given up, for the audit log."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=200)


def configure(app: FastAPI, runtime: Runtime, workflows: Workflows) -> None:
    """Mount the orchestrator's routes."""
    router = APIRouter(prefix="/v1", tags=["orchestrator"])
    # A system's credential (SCIM client, application) has no identity or sagas: 403.
    identity_reader = own_or(Permission.IDENTITIES_READ)
    saga_reader = own_or(Permission.SAGAS_READ)
    operator = require(Permission.SAGAS_OPERATE)

    @router.get("/identities/{user_id}", summary="One identity of the registry")
    async def get_identity(
        user_id: Id, caller: Caller = Depends(identity_reader)
    ) -> dict[str, Any]:
        # Another person's identity is "not found": its existence is not the caller's business.
        entry = None
        if may_see(caller, Permission.IDENTITIES_READ, user_id):
            async with runtime.pool.acquire() as conn:
                entry = await store.get_identity(conn, user_id)
        if entry is None:
            raise HTTPException(404, "no such identity")
        return entry

    @router.get("/sagas", summary="Sagas, newest first: everyone's, or the caller's own")
    async def list_sagas(
        caller: Caller = Depends(saga_reader),
        status: saga.Status | None = None,
        saga_type: saga.SagaType | None = None,
        subject_id: Id | None = None,
        cursor: Annotated[Cursor | None, Query(description="next_cursor of the last page")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        if not caller.may(Permission.SAGAS_READ):
            if subject_id not in (None, caller.subject):
                return {"items": [], "next_cursor": None}
            subject_id = caller.subject
        where = store.SagaFilter(status=status, saga_type=saga_type, subject_id=subject_id)
        items = await store.list_sagas(runtime.pool, where, limit=limit, before=cursor)
        next_cursor = items[-1]["seq"] if len(items) == limit else None
        return {"items": items, "next_cursor": next_cursor}

    @router.get("/sagas/{saga_id}", summary="One saga: its steps, attempts, errors and timings")
    async def get_saga(saga_id: Id, caller: Caller = Depends(saga_reader)) -> dict[str, Any]:
        entry = await store.get_saga(runtime.pool, saga_id)
        if entry is None or not may_see(caller, Permission.SAGAS_READ, entry["subject_id"]):
            raise HTTPException(404, "no such saga")
        return entry

    async def act(saga_id: str, action: saga.RetryRequested | saga.CancelRequested) -> Any:
        try:
            return await sagas.operate(
                runtime.pool,
                schema=runtime.schema,
                source=runtime.source,
                workflows=workflows,
                saga_id=saga_id,
                action=action,
            )
        except sagas.SagaNotFound:
            raise HTTPException(404, "no such saga") from None
        except sagas.SagaConflict as error:
            raise HTTPException(409, f"the saga {error.reason}") from None

    @router.post(
        "/sagas/{saga_id}/retry",
        summary="Run a failed saga's unfinished steps again",
        dependencies=[Depends(operator)],
    )
    async def retry_saga(saga_id: Id) -> dict[str, Any]:
        result: dict[str, Any] = await act(saga_id, saga.RetryRequested())
        return result

    @router.post(
        "/sagas/{saga_id}/cancel",
        summary="Give a running or failed saga up",
        dependencies=[Depends(operator)],
    )
    async def cancel_saga(saga_id: Id, body: CancelBody) -> dict[str, Any]:
        result: dict[str, Any] = await act(saga_id, saga.CancelRequested(body.reason))
        return result

    app.include_router(router)
