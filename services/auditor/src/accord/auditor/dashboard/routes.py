"""The dashboard's data: activity, failures, provisioning latency and pending approvals."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from accord.auditor.adapters import dashboard_queries
from accord.auditor.web import Pool
from accord.events.catalogue.audit import Outcome
from accord.runtime.security.api import require
from accord.runtime.security.roles import Permission

Minutes = Annotated[
    int, Query(ge=1, le=1440, description="How many minutes back, the current one included")
]


class Span(BaseModel):
    """The minutes a chart covers, on the database's clock."""

    since: datetime
    """Start of the first minute."""
    until: datetime
    """End of the current minute (exclusive)."""
    minutes: list[datetime]
    """The start of every minute in the span, oldest first."""


class ActivityCount(BaseModel):
    """Records of one type and outcome in one minute (by the time the events occurred)."""

    minute: datetime
    event_type: str
    outcome: Outcome
    count: int


class Activity(Span):
    """Records per minute, by type and outcome; minutes with none are not listed."""

    items: list[ActivityCount]


class MinuteCount(BaseModel):
    """A count in one minute."""

    minute: datetime
    count: int


class TargetFailures(BaseModel):
    """Failures about one target system (target None: about none, e.g. a dead letter)."""

    target: str | None
    count: int
    last_at: datetime
    last_event_type: str


class Failures(Span):
    """Failed records per minute, and per target over the whole span."""

    per_minute: list[MinuteCount]
    per_target: list[TargetFailures]


class LatencyStats(BaseModel):
    """Percentiles of a duration, in milliseconds; None when nothing was measured."""

    count: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None


class TargetLatency(LatencyStats):
    """From user.created to the account's creation in one target."""

    target: str


class Latency(BaseModel):
    """Provisioning latency of the joiners whose flow finished in the span."""

    since: datetime
    until: datetime
    joiner: LatencyStats
    """From user.created to the joiner saga's saga.completed (same correlation id)."""
    per_target: list[TargetLatency]
    """From user.created to account.provisioned (operation create) in each target."""


class PendingApproval(BaseModel):
    """An approval stage that waits for one of its approvers."""

    request_id: str
    correlation_id: str
    record_id: int
    """The audit record that asked for the stage (its latest escalation, if any)."""
    requested_at: datetime
    stage: int | None
    stages: int | None
    stage_name: str | None
    principal_id: str | None
    application: str | None
    entitlement: str | None
    approvers: list[str]
    due_at: datetime | None
    escalated: bool
    overdue: bool
    """Past its due time."""


class Approvals(BaseModel):
    """Pending approvals, the longest waiting first."""

    count: int = Field(ge=0)
    """How many are pending in all (items may hold fewer)."""
    items: list[PendingApproval]


router = APIRouter(
    prefix="/v1/dashboard",
    tags=["dashboard"],
    dependencies=[Depends(require(Permission.AUDIT_READ))],
)
"""The /v1/dashboard routes; each needs audit:read."""


@router.get("/activity", summary="Records per minute by type and outcome")
async def activity(pool: Pool, minutes: Minutes = 60) -> Activity:
    span = await dashboard_queries.window(pool, minutes)
    items = await dashboard_queries.activity(pool, span)
    return Activity(
        since=span.start,
        until=span.end,
        minutes=span.minutes,
        items=[ActivityCount.model_validate(i) for i in items],
    )


@router.get("/failures", summary="Failures per minute and per target")
async def failures(pool: Pool, minutes: Minutes = 60) -> Failures:
    span = await dashboard_queries.window(pool, minutes)
    per_minute = await dashboard_queries.failures_per_minute(pool, span)
    per_target = await dashboard_queries.failures_per_target(pool, span)
    return Failures(
        since=span.start,
        until=span.end,
        minutes=span.minutes,
        per_minute=[MinuteCount.model_validate(m) for m in per_minute],
        per_target=[TargetFailures.model_validate(t) for t in per_target],
    )


@router.get("/latency", summary="Provisioning latency percentiles of joiners")
async def latency(pool: Pool, minutes: Minutes = 60) -> Latency:
    span = await dashboard_queries.window(pool, minutes)
    joiner = await dashboard_queries.joiner_latency(pool, span)
    per_target = await dashboard_queries.target_latency(pool, span)
    return Latency(
        since=span.start,
        until=span.end,
        joiner=LatencyStats.model_validate(joiner),
        per_target=[TargetLatency.model_validate(t) for t in per_target],
    )


@router.get("/approvals", summary="Approval stages waiting for a decision")
async def approvals(
    pool: Pool,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Approvals:
    total, items = await dashboard_queries.pending_approvals(pool, limit)
    now = datetime.now(UTC)
    return Approvals(
        count=total,
        items=[
            PendingApproval(**item, overdue=item["due_at"] is not None and item["due_at"] < now)
            for item in items
        ],
    )
