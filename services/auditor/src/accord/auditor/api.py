"""Query API of the audit log."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query

from accord.auditor.adapters import log_store
from accord.runtime.params import Cursor, Rfc3339, Text, parse_rfc3339
from accord.runtime.security.api import require
from accord.runtime.security.roles import Permission
from accord.runtime.service import Runtime


def configure(app: FastAPI, runtime: Runtime) -> None:
    """Mount the auditor's routes."""
    router = APIRouter(prefix="/v1")

    @router.get(
        "/audit/events",
        summary="Audit records, filtered, in log order",
        dependencies=[Depends(require(Permission.AUDIT_READ))],
    )
    async def list_events(
        correlation_id: Text | None = None,
        subject: Text | None = None,
        event_type: Annotated[Text | None, Query(alias="type")] = None,
        outcome: Literal["success", "failure", "pending", "info"] | None = None,
        since: Rfc3339 | None = None,
        after: Annotated[Cursor, Query(description="Cursor: the last record_id seen")] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        items = await log_store.query(
            runtime.pool,
            correlation_id=correlation_id,
            subject=subject,
            event_type=event_type,
            outcome=outcome,
            since=parse_rfc3339(since, "since"),
            after=after,
            limit=limit,
        )
        next_cursor = items[-1]["record_id"] if len(items) == limit else None
        return {"items": items, "next_after": next_cursor}

    app.include_router(router)
