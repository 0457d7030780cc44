"""What the dashboard and the live stream read from the audit log.

Only `->` and `->>` touch the payload, so the queries hold whether it is json or jsonb.
Dead letters carry the type of the event they failed to deliver: every query that reads a
payload's fields also asks for the event's own topic, so a dead letter's payload (an error
report) is never taken for the event's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from accord.auditor.domain.normalise import parse_time
from accord.events import REGISTRY, topics

PERCENTILES = (0.5, 0.9, 0.99)
MAX_TARGETS = 50


def _topic(event_type: str) -> str:
    return REGISTRY.spec(event_type).topic


@dataclass(frozen=True)
class Window:
    """Whole minutes ending with the current one, on the database's clock."""

    start: datetime
    end: datetime
    """Exclusive: the start of the next minute."""
    minutes: list[datetime]


async def window(pool: asyncpg.Pool, minutes: int) -> Window:
    """The last `minutes` minutes, the current one included."""
    rows = await pool.fetch(
        "SELECT generate_series(date_trunc('minute', now()) - make_interval(mins => $1 - 1),"
        " date_trunc('minute', now()), interval '1 minute') AS minute",
        minutes,
    )
    starts: list[datetime] = [row["minute"] for row in rows]
    return Window(starts[0], starts[-1] + timedelta(minutes=1), starts)


# --- charts ----------------------------------------------------------------------------------


async def activity(pool: asyncpg.Pool, span: Window) -> list[dict[str, Any]]:
    """Records per minute, by event type and outcome (minutes without any are left out)."""
    rows = await pool.fetch(
        "SELECT date_trunc('minute', occurred_at) AS minute, event_type, outcome,"
        " count(*) AS count FROM audit_log WHERE occurred_at >= $1 AND occurred_at < $2"
        " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        span.start,
        span.end,
    )
    return [dict(row) for row in rows]


async def failures_per_minute(pool: asyncpg.Pool, span: Window) -> list[dict[str, Any]]:
    """Failed records per minute (minutes without any are left out)."""
    rows = await pool.fetch(
        "SELECT date_trunc('minute', occurred_at) AS minute, count(*) AS count FROM audit_log"
        " WHERE outcome = 'failure' AND occurred_at >= $1 AND occurred_at < $2"
        " GROUP BY 1 ORDER BY 1",
        span.start,
        span.end,
    )
    return [dict(row) for row in rows]


async def failures_per_target(pool: asyncpg.Pool, span: Window) -> list[dict[str, Any]]:
    """Failed records per target (None: failures about no target), the most first."""
    rows = await pool.fetch(
        "SELECT target, count(*) AS count, max(occurred_at) AS last_at,"
        " (array_agg(event_type ORDER BY occurred_at DESC, record_id DESC))[1]"
        " AS last_event_type FROM audit_log"
        " WHERE outcome = 'failure' AND occurred_at >= $1 AND occurred_at < $2"
        " GROUP BY target ORDER BY count DESC, target NULLS LAST LIMIT $3",
        span.start,
        span.end,
        MAX_TARGETS,
    )
    return [dict(row) for row in rows]


def _stats(row: asyncpg.Record | None) -> dict[str, Any]:
    count = row["count"] if row is not None else 0
    if not count:
        return {"count": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}
    assert row is not None
    p50, p90, p99 = row["percentiles"]
    return {"count": count, "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": row["max_ms"]}


#: The joiners' starts: each flow's first user.created, for the flows that finished.
_STARTS = (
    " started AS (SELECT s.correlation_id, min(s.occurred_at) AS began FROM audit_log s"
    " WHERE s.event_type = $3 AND s.source_topic = $4"
    " AND s.correlation_id IN (SELECT correlation_id FROM done) GROUP BY s.correlation_id),"
    " latencies AS (SELECT done.*, greatest(extract(epoch FROM finished - began) * 1000, 0)"
    " AS ms FROM done JOIN started USING (correlation_id))"
)
_STATS = (
    "count(*) AS count, percentile_cont($5::float8[]) WITHIN GROUP (ORDER BY ms)"
    " AS percentiles, max(ms) AS max_ms"
)


async def joiner_latency(pool: asyncpg.Pool, span: Window) -> dict[str, Any]:
    """From a joiner's user.created to its saga.completed, for sagas completed in the span."""
    # Only the constants above are interpolated; every value is a bind parameter.
    row = await pool.fetchrow(
        "WITH done AS (SELECT correlation_id, min(occurred_at) AS finished FROM audit_log"  # noqa: S608
        " WHERE event_type = $6 AND source_topic = $7 AND payload->>'saga_type' = 'joiner'"
        " AND occurred_at >= $1 AND occurred_at < $2 GROUP BY correlation_id),"
        f"{_STARTS} SELECT {_STATS} FROM latencies",
        span.start,
        span.end,
        topics.USER_CREATED,
        _topic(topics.USER_CREATED),
        list(PERCENTILES),
        topics.SAGA_COMPLETED,
        _topic(topics.SAGA_COMPLETED),
    )
    return _stats(row)


async def target_latency(pool: asyncpg.Pool, span: Window) -> list[dict[str, Any]]:
    """From a joiner's user.created to its account's creation, per target."""
    rows = await pool.fetch(
        "WITH done AS (SELECT correlation_id, target, min(occurred_at) AS finished"  # noqa: S608
        " FROM audit_log WHERE event_type = $6 AND source_topic = $7 AND target IS NOT NULL"
        " AND payload->>'operation' = 'create' AND occurred_at >= $1 AND occurred_at < $2"
        f" GROUP BY correlation_id, target),{_STARTS}"
        f" SELECT target, {_STATS} FROM latencies GROUP BY target ORDER BY target LIMIT $8",
        span.start,
        span.end,
        topics.USER_CREATED,
        _topic(topics.USER_CREATED),
        list(PERCENTILES),
        topics.ACCOUNT_PROVISIONED,
        _topic(topics.ACCOUNT_PROVISIONED),
        MAX_TARGETS,
    )
    return [{"target": row["target"], **_stats(row)} for row in rows]


# --- approvals -------------------------------------------------------------------------------


async def pending_approvals(pool: asyncpg.Pool, limit: int) -> tuple[int, list[dict[str, Any]]]:
    """Approval stages asked for and not decided yet, the longest waiting first; and how many.

    A stage is pending while no access.approval_decided names its request and stage (a
    decision is final: a stage never opens again). An escalation asks for the same stage
    again: only its latest request counts. Access events have the request id as subject.
    """
    rows = await pool.fetch(
        "SELECT r.record_id, r.subject AS request_id, r.correlation_id,"
        " r.occurred_at AS requested_at, r.payload->>'stage' AS stage,"
        " r.payload->>'stages' AS stages, r.payload->>'stage_name' AS stage_name,"
        " r.payload->>'principal_id' AS principal_id,"
        " r.payload->'resource'->>'application' AS application,"
        " r.payload->'resource'->>'entitlement' AS entitlement,"
        " r.payload->'approvers' AS approvers, r.payload->>'due_at' AS due_at,"
        " r.payload->>'escalated' AS escalated, count(*) OVER () AS total"
        " FROM audit_log r WHERE r.event_type = $1 AND r.source_topic = $2"
        " AND NOT EXISTS (SELECT FROM audit_log d WHERE d.subject = r.subject"
        "   AND d.event_type = $3 AND d.source_topic = $4"
        "   AND d.payload->>'stage' = r.payload->>'stage')"
        " AND NOT EXISTS (SELECT FROM audit_log n WHERE n.subject = r.subject"
        "   AND n.event_type = $1 AND n.source_topic = $2"
        "   AND n.payload->>'stage' = r.payload->>'stage' AND n.record_id > r.record_id)"
        " ORDER BY r.occurred_at, r.record_id LIMIT $5",
        topics.ACCESS_APPROVAL_REQUESTED,
        _topic(topics.ACCESS_APPROVAL_REQUESTED),
        topics.ACCESS_APPROVAL_DECIDED,
        _topic(topics.ACCESS_APPROVAL_DECIDED),
        limit,
    )
    total = rows[0]["total"] if rows else 0
    return total, [_approval(row) for row in rows]


def _approval(row: asyncpg.Record) -> dict[str, Any]:
    approvers = json.loads(row["approvers"]) if row["approvers"] else []
    return {
        "request_id": row["request_id"],
        "correlation_id": row["correlation_id"],
        "record_id": row["record_id"],
        "requested_at": row["requested_at"],
        "stage": _int(row["stage"]),
        "stages": _int(row["stages"]),
        "stage_name": row["stage_name"],
        "principal_id": row["principal_id"],
        "application": row["application"],
        "entitlement": row["entitlement"],
        "approvers": [a for a in approvers if isinstance(a, str)]
        if isinstance(approvers, list)
        else [],
        "due_at": parse_time(row["due_at"]),
        "escalated": row["escalated"] == "true",
    }


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() and len(text) < 10 else None
