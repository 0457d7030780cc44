"""Reports over the audit log: what the log says happened, not what a service holds now.

Every query reads `audit_log` only, so a report stays true to the tamper-evident record
(and works for any past time) even when a service's own tables were changed or lost.
Every query that reads an event's payload also asks `source_topic = event_type`: topics are
named by event type (`accord.events.topics.topic_for`), and a dead letter keeps its
event's type but comes from `<topic>.dlq` with an error report as its payload, which no
report may read as the event.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from accord.auditor.adapters import dashboard_queries
from accord.events import topics

#: How far back a report over a time span looks when not told.
DEFAULT_SPAN = timedelta(hours=24)
#: The most rows a report lists (its totals still count everything).
MAX_ROWS = 10_000


def _rows(rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        item = dict(row)
        for key, value in item.items():
            if key.endswith("payload") and isinstance(value, str):
                item[key] = json.loads(value)
        out.append(item)
    return out


async def access_as_of(
    pool: asyncpg.Pool,
    as_of: datetime,
    *,
    principal_id: str | None = None,
    application: str | None = None,
) -> list[dict[str, Any]]:
    """Who held what at `as_of`: each grant's last event before then was access.granted,
    and it had not expired."""
    rows = await pool.fetch(
        "WITH latest AS (SELECT DISTINCT ON (payload->>'grant_id') event_type, occurred_at,"
        " payload->>'grant_id' AS grant_id, payload->>'principal_id' AS principal_id,"
        " payload->'resource'->>'application' AS application,"
        " payload->'resource'->>'entitlement' AS entitlement,"
        " (payload->>'expires_at')::timestamptz AS expires_at, correlation_id"
        " FROM audit_log WHERE event_type IN ($2, $3) AND source_topic = event_type"
        " AND occurred_at <= $1"
        " ORDER BY payload->>'grant_id', occurred_at DESC, record_id DESC)"
        " SELECT grant_id, principal_id, application, entitlement, occurred_at AS granted_at,"
        " expires_at, correlation_id FROM latest"
        " WHERE event_type = $2 AND (expires_at IS NULL OR expires_at > $1)"
        " AND ($4::text IS NULL OR principal_id = $4) AND ($5::text IS NULL OR application = $5)"
        " ORDER BY principal_id, application, entitlement LIMIT $6",
        as_of,
        topics.ACCESS_GRANTED,
        topics.ACCESS_REVOKED,
        principal_id,
        application,
        MAX_ROWS,
    )
    return _rows(rows)


async def provisioning_latency(
    pool: asyncpg.Pool, since: datetime, until: datetime
) -> dict[str, Any]:
    """Joiner published -> saga completed overall, and -> account created per target (ms)."""
    span = dashboard_queries.Window(since, until, [])
    return {
        "joiner": await dashboard_queries.joiner_latency(pool, span),
        "targets": await dashboard_queries.target_latency(pool, span),
    }


async def failures(pool: asyncpg.Pool, since: datetime, until: datetime) -> dict[str, Any]:
    """Failed operations by event type and target, and the dead letters, newest first."""
    by_kind = await pool.fetch(
        "SELECT event_type, target, count(*) AS count, max(occurred_at) AS last_at"
        " FROM audit_log WHERE outcome = 'failure' AND source_topic NOT LIKE '%.dlq'"
        " AND occurred_at >= $1 AND occurred_at < $2"
        " GROUP BY event_type, target ORDER BY count DESC, event_type LIMIT $3",
        since,
        until,
        MAX_ROWS,
    )
    dead = await pool.fetch(
        "SELECT record_id, source_topic, event_type, occurred_at, subject, correlation_id,"
        " payload->>'error' AS error, payload->>'error_type' AS error_type"
        " FROM audit_log WHERE source_topic LIKE '%.dlq'"
        " AND occurred_at >= $1 AND occurred_at < $2 ORDER BY record_id DESC LIMIT $3",
        since,
        until,
        MAX_ROWS,
    )
    return {"failures": _rows(by_kind), "dead_letters": _rows(dead)}


async def drift(pool: asyncpg.Pool, since: datetime, until: datetime) -> dict[str, Any]:
    """Drifted and orphan accounts found by reconciliation, and each target's last run."""
    found = await pool.fetch(
        "SELECT record_id, event_type, occurred_at, payload->>'target' AS target,"
        " payload->>'run_id' AS run_id, payload->>'user_id' AS user_id,"
        " payload->>'account_id' AS account_id, payload->>'kind' AS kind,"
        " payload->>'user_name' AS user_name, payload->>'owner' AS owner"
        " FROM audit_log WHERE event_type IN ($3, $4) AND source_topic = event_type"
        " AND occurred_at >= $1 AND occurred_at < $2 ORDER BY record_id DESC LIMIT $5",
        since,
        until,
        topics.ACCOUNT_DRIFT_DETECTED,
        topics.ACCOUNT_ORPHAN_DETECTED,
        MAX_ROWS,
    )
    runs = await pool.fetch(
        "SELECT DISTINCT ON (payload->>'target') payload->>'target' AS target,"
        " occurred_at, payload AS run_payload FROM audit_log"
        " WHERE event_type = $1 AND source_topic = event_type"
        " ORDER BY payload->>'target', occurred_at DESC, record_id DESC",
        topics.RECONCILIATION_COMPLETED,
    )
    items = _rows(found)
    return {
        "drifted": [i for i in items if i["event_type"] == topics.ACCOUNT_DRIFT_DETECTED],
        "orphans": [i for i in items if i["event_type"] == topics.ACCOUNT_ORPHAN_DETECTED],
        "last_runs": _rows(runs),
    }


async def sod(pool: asyncpg.Pool, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Access decisions that named a separation-of-duties policy (ids starting with "sod",
    the convention of the shipped policies): denied, or routed to approval."""
    rows = await pool.fetch(
        "SELECT record_id, occurred_at, payload->>'request_id' AS request_id,"
        " payload->>'principal_id' AS principal_id,"
        " payload->'resource'->>'application' AS application,"
        " payload->'resource'->>'entitlement' AS entitlement,"
        " payload->>'decision' AS decision, payload->'reasons' AS reasons_payload"
        " FROM audit_log WHERE event_type = $3 AND source_topic = event_type"
        " AND occurred_at >= $1 AND occurred_at < $2"
        " AND EXISTS (SELECT FROM json_array_elements_text(payload->'reasons') AS r(reason)"
        " WHERE reason LIKE 'sod%') ORDER BY record_id DESC LIMIT $4",
        since,
        until,
        topics.ACCESS_DECIDED,
        MAX_ROWS,
    )
    items = _rows(rows)
    for item in items:
        item["reasons"] = item.pop("reasons_payload")
    return items


async def sagas(pool: asyncpg.Pool, since: datetime, until: datetime) -> dict[str, Any]:
    """Saga outcomes by type: completed, failed, and durations; the latest failures."""
    outcomes = await pool.fetch(
        "SELECT payload->>'saga_type' AS saga_type,"
        " count(*) FILTER (WHERE event_type = $3) AS completed,"
        " count(*) FILTER (WHERE event_type = $4) AS failed,"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY (payload->>'duration_ms')::float8)"
        " FILTER (WHERE event_type = $3) AS p50_ms,"
        " percentile_cont(0.99) WITHIN GROUP (ORDER BY (payload->>'duration_ms')::float8)"
        " FILTER (WHERE event_type = $3) AS p99_ms"
        " FROM audit_log WHERE event_type IN ($3, $4) AND source_topic = event_type"
        " AND occurred_at >= $1 AND occurred_at < $2 GROUP BY 1 ORDER BY 1",
        since,
        until,
        topics.SAGA_COMPLETED,
        topics.SAGA_FAILED,
    )
    failed = await pool.fetch(
        "SELECT record_id, occurred_at, payload->>'saga_id' AS saga_id,"
        " payload->>'saga_type' AS saga_type, subject, payload->>'reason' AS reason,"
        " correlation_id FROM audit_log WHERE event_type = $3 AND source_topic = event_type"
        " AND occurred_at >= $1 AND occurred_at < $2 ORDER BY record_id DESC LIMIT 100",
        since,
        until,
        topics.SAGA_FAILED,
    )
    return {"by_type": _rows(outcomes), "latest_failures": _rows(failed)}


#: The reports over a time span, by name (the CLI's and the API's); `access` is as of a time.
SPAN_REPORTS: dict[str, Callable[[asyncpg.Pool, datetime, datetime], Awaitable[Any]]] = {
    "provisioning-latency": provisioning_latency,
    "failures": failures,
    "drift": drift,
    "sod": sod,
    "sagas": sagas,
}
