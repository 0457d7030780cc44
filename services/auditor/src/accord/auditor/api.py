"""Query API of the audit log: filtered pages, CSV and NDJSON exports, the chain head."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from accord.auditor import web
from accord.auditor.adapters import log_store
from accord.auditor.adapters.log_store import Filters
from accord.auditor.domain.export import CSV_HEADER, csv_line, ndjson_line
from accord.auditor.web import Pool
from accord.events.catalogue.audit import Outcome
from accord.runtime.params import Cursor, Id, Rfc3339, Text, parse_rfc3339
from accord.runtime.security.api import require
from accord.runtime.security.roles import Permission
from accord.runtime.service import Runtime

EXPORT_PAGE = 1000
STORY_LIMIT = 5000


def filters_dependency(
    correlation_id: Text | None = None,
    subject: Text | None = None,
    actor: Annotated[Text | None, Query(description="The CloudEvents source")] = None,
    event_type: Annotated[Text | None, Query(alias="type")] = None,
    outcome: Outcome | None = None,
    target: Text | None = None,
    since: Rfc3339 | None = None,
    until: Annotated[Rfc3339 | None, Query(description="Exclusive upper bound")] = None,
) -> Filters:
    """The filters every listing and export takes."""
    return Filters(
        correlation_id=correlation_id,
        subject=subject,
        actor=actor,
        event_type=event_type,
        outcome=outcome,
        target=target,
        since=parse_rfc3339(since, "since"),
        until=parse_rfc3339(until, "until"),
    )


class AuditRecord(BaseModel):
    """One record of the audit log."""

    record_id: int
    """Its place in the hash chain (1, 2, 3, ...): the cursor of listings."""
    source_event_id: str
    source_topic: str
    """The topic it was read from (`<topic>.dlq` for a dead letter)."""
    event_type: str
    occurred_at: datetime
    recorded_at: datetime
    actor: str
    """The event's CloudEvents source."""
    subject: str
    target: str | None
    outcome: Outcome
    correlation_id: str
    trace_id: str | None
    payload: dict[str, Any]
    """The event's data (redacted fields replaced), or a dead letter's error report."""
    hash: str | None
    """The record's chain hash (None for records older than the chain)."""


class AuditPage(BaseModel):
    """A page of records in log order."""

    items: list[AuditRecord]
    next_after: int | None
    """The cursor of the next page (`after`); None on the last page."""


class Story(BaseModel):
    """Every record of one correlation id, in the order things happened."""

    correlation_id: str
    events: list[AuditRecord]
    truncated: bool
    """More records than one story holds."""


class ChainHead(BaseModel):
    """The last chained record."""

    record_id: int
    hash: str


class StoredCheckpoint(BaseModel):
    """A signed checkpoint of the chain head, as the database keeps it."""

    record_id: int
    hash: str
    created_at: datetime
    key_id: str
    signature: str


class ChainStatus(BaseModel):
    """The hash chain's head and its latest signed checkpoint."""

    head: ChainHead
    chained_from: int
    """The first chained record (records before it predate the chain)."""
    latest_checkpoint: StoredCheckpoint | None


router = APIRouter(prefix="/v1", dependencies=[Depends(require(Permission.AUDIT_READ))])


def configure(app: FastAPI, runtime: Runtime) -> None:
    """Mount the auditor's routes."""
    web.serve(app, runtime, router)


@router.get("/audit/events", summary="Audit records, filtered, in log order")
async def list_events(
    pool: Pool,
    filters: Filters = Depends(filters_dependency),
    after: Annotated[Cursor, Query(description="Cursor: the last record_id seen")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    items = await log_store.query(pool, filters, after=after, limit=limit)
    next_cursor = items[-1]["record_id"] if len(items) == limit else None
    return AuditPage(items=[AuditRecord(**i) for i in items], next_after=next_cursor)


@router.get(
    "/audit/correlations/{correlation_id}",
    summary="A flow's whole story: every record of one correlation id, in time order",
)
async def story(correlation_id: Id, pool: Pool) -> Story:
    events = await log_store.story(pool, correlation_id, limit=STORY_LIMIT + 1)
    if not events:
        raise HTTPException(404, "no records with this correlation id")
    return Story(
        correlation_id=correlation_id,
        events=[AuditRecord(**e) for e in events[:STORY_LIMIT]],
        truncated=len(events) > STORY_LIMIT,
    )


@router.get(
    "/audit/export",
    summary="Every matching record, streamed as CSV or NDJSON",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The records in log order",
            "content": {"text/csv": {}, "application/x-ndjson": {}},
        }
    },
)
async def export(
    pool: Pool,
    filters: Filters = Depends(filters_dependency),
    format: Literal["csv", "ndjson"] = "ndjson",
) -> StreamingResponse:
    async def lines() -> AsyncIterator[str]:
        if format == "csv":
            yield CSV_HEADER
        async for page in log_store.pages(pool, filters, size=EXPORT_PAGE):
            for item in page:
                yield csv_line(item) if format == "csv" else ndjson_line(item)

    media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
    name = f"audit.{format}"
    return StreamingResponse(
        lines(),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/audit/chain", summary="The hash chain's head and its latest signed checkpoint")
async def chain(pool: Pool) -> ChainStatus:
    head = await log_store.head(pool)
    latest = await log_store.latest_checkpoint(pool)
    return ChainStatus(
        head=ChainHead(record_id=head["record_id"], hash=head["hash"]),
        chained_from=head["chained_from"],
        latest_checkpoint=StoredCheckpoint(**latest) if latest else None,
    )
