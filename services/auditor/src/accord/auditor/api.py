"""Query API of the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Query

from accord.auditor.adapters import log_store
from accord.runtime.service import Runtime


def configure(app: FastAPI, runtime: Runtime) -> None:
    """Mount the auditor's routes."""
    router = APIRouter(prefix="/v1")

    @router.get("/audit/events", summary="Audit records, filtered, in log order")
    async def list_events(
        correlation_id: str | None = None,
        subject: str | None = None,
        event_type: str | None = Query(default=None, alias="type"),
        outcome: Literal["success", "failure", "pending", "info"] | None = None,
        since: datetime | None = None,
        after: int = Query(default=0, ge=0, description="Cursor: the last record_id seen"),
        limit: int = Query(default=100, ge=1, le=1000),
    ) -> dict[str, Any]:
        items = await log_store.query(
            runtime.pool,
            correlation_id=correlation_id,
            subject=subject,
            event_type=event_type,
            outcome=outcome,
            since=since,
            after=after,
            limit=limit,
        )
        next_cursor = items[-1]["record_id"] if len(items) == limit else None
        return {"items": items, "next_after": next_cursor}

    app.include_router(router)
