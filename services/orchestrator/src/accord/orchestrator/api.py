"""Read API of the orchestrator: identities and sagas."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException

from accord.orchestrator.adapters import store
from accord.runtime.service import Runtime


def configure(app: FastAPI, runtime: Runtime) -> None:
    """Mount the orchestrator's routes."""
    router = APIRouter(prefix="/v1")

    @router.get("/identities/{user_id}", summary="One identity of the registry")
    async def get_identity(user_id: str) -> dict[str, Any]:
        async with runtime.pool.acquire() as conn:
            entry = await store.get_identity(conn, user_id)
        if entry is None:
            raise HTTPException(404, f"identity {user_id} not found")
        return entry

    @router.get("/sagas/{saga_id}", summary="One saga and its state")
    async def get_saga(saga_id: str) -> dict[str, Any]:
        entry = await store.get_saga(runtime.pool, saga_id)
        if entry is None:
            raise HTTPException(404, f"saga {saga_id} not found")
        return entry

    app.include_router(router)
