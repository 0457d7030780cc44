"""Reports over the audit log, as JSON: access as of any time, latency, failures, drift,
separation of duties, saga outcomes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query
from pydantic import BaseModel, ConfigDict

from accord.auditor import web
from accord.auditor.adapters import report_queries
from accord.auditor.web import Pool
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


class Row(BaseModel):
    """A row of a report: exactly the columns its query reads."""

    model_config = ConfigDict(extra="forbid")


class HeldAccess(Row):
    """A grant in force at the report's time (fields from its access.granted event)."""

    grant_id: str | None
    principal_id: str | None
    application: str | None
    entitlement: str | None
    granted_at: datetime
    expires_at: datetime | None
    correlation_id: str


class AccessReport(BaseModel):
    """Who held what at one time."""

    as_of: datetime
    items: list[HeldAccess]


class SpanReport(BaseModel):
    """A report over the time span [since, until)."""

    since: datetime
    until: datetime


class ReportLatency(Row):
    """Percentiles of a duration, in milliseconds; None when nothing was measured."""

    count: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: Decimal | None
    """The longest, as the database computed it (a decimal)."""


class ReportTargetLatency(Row):
    """From user.created to the account's creation in one target."""

    target: str
    count: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: Decimal | None


class LatencyReport(SpanReport):
    """Joiner published -> saga completed overall, and -> account created per target."""

    joiner: ReportLatency
    targets: list[ReportTargetLatency]


class FailureCount(Row):
    """Failed operations of one event type about one target."""

    event_type: str
    target: str | None
    count: int
    last_at: datetime


class DeadLetter(Row):
    """A dead letter, with the error that sent it there."""

    record_id: int
    source_topic: str
    event_type: str
    occurred_at: datetime
    subject: str
    correlation_id: str
    error: str | None
    error_type: str | None


class FailuresReport(SpanReport):
    """Failed operations by event type and target, and the dead letters, newest first."""

    failures: list[FailureCount]
    dead_letters: list[DeadLetter]


class DriftFinding(Row):
    """A drifted or orphan account found by reconciliation."""

    record_id: int
    event_type: str
    occurred_at: datetime
    target: str | None
    run_id: str | None
    user_id: str | None
    account_id: str | None
    kind: str | None
    user_name: str | None
    owner: str | None


class ReconciliationRun(Row):
    """A target's last reconciliation run."""

    target: str | None
    occurred_at: datetime
    run_payload: Any
    """Its reconciliation.completed event's data."""


class DriftReport(SpanReport):
    """Drifted and orphan accounts found by reconciliation, and each target's last run."""

    drifted: list[DriftFinding]
    orphans: list[DriftFinding]
    last_runs: list[ReconciliationRun]


class SodDecision(Row):
    """An access decision that named a separation-of-duties policy."""

    record_id: int
    occurred_at: datetime
    request_id: str | None
    principal_id: str | None
    application: str | None
    entitlement: str | None
    decision: str | None
    reasons: Any
    """The decision's reasons (the policies that decided it)."""


class SodReport(SpanReport):
    """Requests refused or routed to approval by SoD policies, newest first."""

    items: list[SodDecision]


class SagaOutcomes(Row):
    """Completed and failed sagas of one type, and how long the completed ones took."""

    saga_type: str | None
    completed: int
    failed: int
    p50_ms: float | None
    p99_ms: float | None


class SagaFailure(Row):
    """A failed saga."""

    record_id: int
    occurred_at: datetime
    saga_id: str | None
    saga_type: str | None
    subject: str
    reason: str | None
    correlation_id: str


class SagasReport(SpanReport):
    """Saga outcomes by type, and the latest failures."""

    by_type: list[SagaOutcomes]
    latest_failures: list[SagaFailure]


router = APIRouter(
    prefix="/v1/reports",
    tags=["reports"],
    dependencies=[Depends(require(Permission.AUDIT_READ))],
)


def configure(app: FastAPI, runtime: Runtime) -> None:
    """Mount /v1/reports."""
    web.serve(app, runtime, router)


@router.get("/access", summary="Who held what, now or at any past time")
async def access(
    pool: Pool,
    as_of: Annotated[Rfc3339 | None, Query(description="Default: now")] = None,
    principal_id: Id | None = None,
    application: Id | None = None,
) -> AccessReport:
    moment = parse_rfc3339(as_of, "as_of") or datetime.now(UTC)
    items = await report_queries.access_as_of(
        pool, moment, principal_id=principal_id, application=application
    )
    return AccessReport(as_of=moment, items=[HeldAccess(**i) for i in items])


@router.get("/provisioning-latency", summary="Joiner to account, per target (ms)")
async def latency(span: Span, pool: Pool) -> LatencyReport:
    found = await report_queries.provisioning_latency(pool, *span)
    return LatencyReport(since=span[0], until=span[1], **found)


@router.get("/failures", summary="Failed operations and dead letters")
async def failures(span: Span, pool: Pool) -> FailuresReport:
    found = await report_queries.failures(pool, *span)
    return FailuresReport(since=span[0], until=span[1], **found)


@router.get("/drift", summary="Drifted and orphan accounts found by reconciliation")
async def drift(span: Span, pool: Pool) -> DriftReport:
    found = await report_queries.drift(pool, *span)
    return DriftReport(since=span[0], until=span[1], **found)


@router.get("/sod", summary="Requests refused or routed to approval by SoD policies")
async def sod(span: Span, pool: Pool) -> SodReport:
    items = await report_queries.sod(pool, *span)
    return SodReport(since=span[0], until=span[1], items=[SodDecision(**i) for i in items])


@router.get("/sagas", summary="Saga outcomes and durations by type")
async def sagas(span: Span, pool: Pool) -> SagasReport:
    found = await report_queries.sagas(pool, *span)
    return SagasReport(since=span[0], until=span[1], **found)
