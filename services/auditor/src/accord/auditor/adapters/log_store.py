"""The audit log table."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from accord.auditor.domain.normalise import AuditEntry
from accord.runtime.sql import Conditions


async def append(conn: asyncpg.Connection, entry: AuditEntry) -> int | None:
    """Append an entry; returns its record id, or None if it was already recorded."""
    record_id: int | None = await conn.fetchval(
        "INSERT INTO audit_log (source_event_id, source_topic, event_type, occurred_at, actor,"
        " subject, target, outcome, correlation_id, trace_id, payload)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        " ON CONFLICT (source_topic, source_event_id) DO NOTHING RETURNING record_id",
        entry.source_event_id,
        entry.source_topic,
        entry.event_type,
        entry.occurred_at,
        entry.actor,
        entry.subject,
        entry.target,
        entry.outcome,
        entry.correlation_id,
        entry.trace_id,
        storable_json(entry.payload),
    )
    return record_id


def storable_json(payload: dict[str, Any]) -> str:
    """JSON that jsonb accepts: it refuses the NUL character, which a dead letter may hold."""
    return json.dumps(payload).replace("\\u0000", "\\ufffd")


async def query(
    pool: asyncpg.Pool,
    *,
    correlation_id: str | None = None,
    subject: str | None = None,
    event_type: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    after: int = 0,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Entries matching every given filter, in log order, after a record id (cursor)."""
    conditions = Conditions()
    conditions.add("record_id > {0}", after)
    conditions.add("correlation_id = {0}", correlation_id)
    conditions.add("subject = {0}", subject)
    conditions.add("event_type = {0}", event_type)
    conditions.add("outcome = {0}", outcome)
    conditions.add("occurred_at >= {0}", since)
    limit_at = conditions.placeholder(limit)
    sql = (
        "SELECT record_id, source_event_id, source_topic, event_type, occurred_at, recorded_at,"  # noqa: S608
        " actor, subject, target, outcome, correlation_id, trace_id, payload FROM audit_log"
        f" WHERE {conditions.where} ORDER BY record_id LIMIT {limit_at}"
    )
    rows = await pool.fetch(sql, *conditions.args)
    result = []
    for row in rows:
        entry = dict(row)
        entry["payload"] = json.loads(entry["payload"])
        result.append(entry)
    return result
