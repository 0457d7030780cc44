"""Read API of the orchestrator: identities and sagas."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException

from accord.orchestrator.adapters import store
from accord.runtime.params import Id
from accord.runtime.security.api import authenticated, may_see
from accord.runtime.security.roles import Caller, Permission
from accord.runtime.service import Runtime


def configure(app: FastAPI, runtime: Runtime) -> None:
    """Mount the orchestrator's routes."""
    router = APIRouter(prefix="/v1", tags=["orchestrator"])
    caller_dependency = authenticated()

    @router.get("/identities/{user_id}", summary="One identity of the registry")
    async def get_identity(
        user_id: Id, caller: Caller = Depends(caller_dependency)
    ) -> dict[str, Any]:
        # Another person's identity is "not found": its existence is not the caller's business.
        entry = None
        if may_see(caller, Permission.IDENTITIES_READ, user_id):
            async with runtime.pool.acquire() as conn:
                entry = await store.get_identity(conn, user_id)
        if entry is None:
            raise HTTPException(404, f"identity {user_id} not found")
        return entry

    @router.get("/sagas/{saga_id}", summary="One saga and its state")
    async def get_saga(saga_id: Id, caller: Caller = Depends(caller_dependency)) -> dict[str, Any]:
        entry = await store.get_saga(runtime.pool, saga_id)
        if entry is None or not may_see(caller, Permission.SAGAS_READ, entry["subject_id"]):
            raise HTTPException(404, f"saga {saga_id} not found")
        return entry

    app.include_router(router)
