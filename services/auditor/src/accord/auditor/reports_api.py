"""Reports over the audit log, as JSON: access as of any time, latency, failures, drift,
separation of duties, saga outcomes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query

from accord.auditor.adapters import report_queries
from accord.runtime.params import Id, Rfc3339, parse_rfc3339
from accord.runtime.security.api import require
from accord.runtime.security.roles import Permission
from accord.runtime.service import Runtime

DEFAULT_SPAN = report_queries.DEFAULT_SPAN


def span_dependency(
    since: Annotated[Rfc3339 | None, Query(description="Start (default: 24 h ago)")] = None,
    until: Annotated[Rfc3339 | None, Query(description="End, exclusive (default: now)")] = None,
) -> tuple[datetime, datetime]:
    """The report's time range (one that ends before it starts is empty, not an error)."""
    end = parse_rfc3339(until, "until") or datetime.now(UTC)
    start = parse_rfc3339(since, "since") or end - DEFAULT_SPAN
    return start, end


Span = Annotated[tuple[datetime, datetime], Depends(span_dependency)]


def configure(app: FastAPI, runtime: Runtime) -> None:
    """Mount /v1/reports."""
    router = APIRouter(
        prefix="/v1/reports",
        tags=["reports"],
        dependencies=[Depends(require(Permission.AUDIT_READ))],
    )

    @router.get("/access", summary="Who held what, now or at any past time")
    async def access(
        as_of: Annotated[Rfc3339 | None, Query(description="Default: now")] = None,
        principal_id: Id | None = None,
        application: Id | None = None,
    ) -> dict[str, Any]:
        moment = parse_rfc3339(as_of, "as_of") or datetime.now(UTC)
        items = await report_queries.access_as_of(
            runtime.pool, moment, principal_id=principal_id, application=application
        )
        return {"as_of": moment, "items": items}

    @router.get("/provisioning-latency", summary="Joiner to account, per target (ms)")
    async def latency(span: Span) -> dict[str, Any]:
        found = await report_queries.provisioning_latency(runtime.pool, *span)
        return {"since": span[0], "until": span[1], **found}

    @router.get("/failures", summary="Failed operations and dead letters")
    async def failures(span: Span) -> dict[str, Any]:
        found = await report_queries.failures(runtime.pool, *span)
        return {"since": span[0], "until": span[1], **found}

    @router.get("/drift", summary="Drifted and orphan accounts found by reconciliation")
    async def drift(span: Span) -> dict[str, Any]:
        found = await report_queries.drift(runtime.pool, *span)
        return {"since": span[0], "until": span[1], **found}

    @router.get("/sod", summary="Requests refused or routed to approval by SoD policies")
    async def sod(span: Span) -> dict[str, Any]:
        items = await report_queries.sod(runtime.pool, *span)
        return {"since": span[0], "until": span[1], "items": items}

    @router.get("/sagas", summary="Saga outcomes and durations by type")
    async def sagas(span: Span) -> dict[str, Any]:
        found = await report_queries.sagas(runtime.pool, *span)
        return {"since": span[0], "until": span[1], **found}

    app.include_router(router)
