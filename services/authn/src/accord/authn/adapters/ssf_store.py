"""Shared Signals tables: streams, their subjects, the SET queue and received jtis."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from accord.authn.domain.set_tokens import CONTROL
from accord.authn.domain.streams import PUSH, Status, StreamConfig

#: Most SETs handed to one receiver per poll.
MAX_POLL = 500


class StreamConflict(Exception):
    """The receiver has a push stream to that endpoint already."""


@dataclass(frozen=True)
class Stream:
    """A stream as stored: who owns it, its configuration and status."""

    owner: str
    config: StreamConfig
    status: Status
    reason: str | None

    def status_view(self) -> dict[str, Any]:
        """The SSF status object (§8.1.2)."""
        shown: dict[str, Any] = {"stream_id": self.config.stream_id, "status": self.status}
        if self.reason:
            shown["reason"] = self.reason
        return shown


@dataclass(frozen=True)
class QueuedSet:
    """One signed SET for one stream."""

    jti: str
    stream_id: str
    user_id: str | None
    event_uri: str
    token: str


@dataclass(frozen=True)
class PushJob:
    """A SET claimed for one push attempt."""

    jti: str
    stream_id: str
    token: str
    attempts: int
    endpoint_url: str
    authorization: str | None

    def __repr__(self) -> str:  # the authorization header stays out of logs and tracebacks
        return f"PushJob(jti={self.jti!r}, stream_id={self.stream_id!r})"


def channel_name(schema: str) -> str:
    """The NOTIFY channel that wakes the push delivery loop."""
    return f"accord_ssf_{schema}"


def _stream(row: asyncpg.Record) -> Stream:
    return Stream(
        owner=row["owner"],
        config=StreamConfig.from_stored(json.loads(row["config"])),
        status=row["status"],
        reason=row["status_reason"],
    )


_COLUMNS = "owner, config, status, status_reason"


async def insert_stream(conn: asyncpg.Connection, owner: str, config: StreamConfig) -> None:
    """Store a new stream, enabled."""
    try:
        await conn.execute(
            "INSERT INTO ssf_streams (stream_id, owner, config) VALUES ($1, $2, $3::jsonb)",
            config.stream_id,
            owner,
            json.dumps(config.stored()),
        )
    except asyncpg.UniqueViolationError:
        raise StreamConflict("a push stream to this endpoint exists already") from None


async def get_stream(
    conn: asyncpg.Connection, stream_id: str, *, for_update: bool = False
) -> Stream | None:
    """One stream, None if unknown; `for_update` locks it for the transaction."""
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM ssf_streams WHERE stream_id = $1{lock}",  # noqa: S608
        stream_id,
    )
    return _stream(row) if row else None


async def list_streams(
    conn: asyncpg.Connection, owner: str | None, limit: int = 500
) -> list[Stream]:
    """Streams of one owner (all when None), oldest first."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM ssf_streams"  # noqa: S608
        " WHERE $1::text IS NULL OR owner = $1 ORDER BY created_at, stream_id LIMIT $2",
        owner,
        limit,
    )
    return [_stream(r) for r in rows]


async def save_config(conn: asyncpg.Connection, config: StreamConfig) -> None:
    """Replace a stream's configuration."""
    try:
        await conn.execute(
            "UPDATE ssf_streams SET config = $2::jsonb, updated_at = now() WHERE stream_id = $1",
            config.stream_id,
            json.dumps(config.stored()),
        )
    except asyncpg.UniqueViolationError:
        raise StreamConflict("a push stream to this endpoint exists already") from None


async def delete_stream(conn: asyncpg.Connection, stream_id: str) -> bool:
    """Delete a stream with its subjects and queued SETs; False if unknown."""
    result: str = await conn.execute("DELETE FROM ssf_streams WHERE stream_id = $1", stream_id)
    return result != "DELETE 0"


async def set_status(
    conn: asyncpg.Connection, stream_id: str, status: Status, reason: str | None
) -> None:
    """Change a stream's status. Disabled streams hold nothing: their waiting SETs fail."""
    await conn.execute(
        "UPDATE ssf_streams SET status = $2, status_reason = $3, updated_at = now()"
        " WHERE stream_id = $1",
        stream_id,
        status,
        reason,
    )
    if status == "disabled":
        await conn.execute(
            "UPDATE ssf_set_queue SET status = 'failed', last_error = 'stream disabled'"
            " WHERE stream_id = $1 AND status IN ('pending', 'delivered')"
            " AND NOT event_uri = ANY($2::text[])",
            stream_id,
            list(CONTROL),
        )


async def requeue_handed_out(conn: asyncpg.Connection, stream_id: str) -> None:
    """A poll stream turned push: SETs handed out but not acknowledged are pushed."""
    await conn.execute(
        "UPDATE ssf_set_queue SET status = 'pending', next_attempt_at = now()"
        " WHERE stream_id = $1 AND status = 'delivered'",
        stream_id,
    )


async def set_subject(
    conn: asyncpg.Connection, stream_id: str, kind: str, value: str, *, included: bool
) -> None:
    """Add (included) or remove (excluded) a subject. Under default_subjects ALL every
    subject is in a stream unless removed: adding one undoes its removal, nothing more."""
    await conn.execute(
        "INSERT INTO ssf_stream_subjects (stream_id, kind, value, included)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (stream_id, kind, value)"
        " DO UPDATE SET included = EXCLUDED.included, changed_at = now()",
        stream_id,
        kind,
        value,
        included,
    )


async def streams_covering(
    conn: asyncpg.Connection, event_uri: str, user_id: str, email: str | None
) -> list[Stream]:
    """Enabled or paused streams delivering this event type that cover the identity: every
    one from which it was not removed (default_subjects ALL)."""
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS} FROM ssf_streams s
        WHERE s.status IN ('enabled', 'paused')
          AND s.config -> 'events_delivered' ? $1
          AND NOT EXISTS (
              SELECT 1 FROM ssf_stream_subjects x
              WHERE x.stream_id = s.stream_id AND NOT x.included
                AND ((x.kind = 'user_id' AND x.value = $2)
                     OR (x.kind = 'email' AND x.value = lower($3))))
        ORDER BY s.created_at, s.stream_id
        """,  # noqa: S608
        event_uri,
        user_id,
        email,
    )
    return [_stream(r) for r in rows]


async def queue_sets(conn: asyncpg.Connection, schema: str, sets: Sequence[QueuedSet]) -> None:
    """Queue signed SETs and wake the push loop when the transaction commits."""
    if not sets:
        return
    await conn.executemany(
        "INSERT INTO ssf_set_queue (jti, stream_id, user_id, event_uri, token)"
        " VALUES ($1, $2, $3, $4, $5)",
        [(s.jti, s.stream_id, s.user_id, s.event_uri, s.token) for s in sets],
    )
    await notify(conn, schema)


async def notify(conn: asyncpg.Connection, schema: str) -> None:
    """Wake the push delivery loop (at commit)."""
    await conn.execute("SELECT pg_notify($1, '')", channel_name(schema))


async def claim_push(conn: asyncpg.Connection, *, limit: int, lease_s: float) -> list[PushJob]:
    """Due SETs of push streams, leased for one attempt (another instance skips them)."""
    rows = await conn.fetch(
        """
        WITH picked AS (
            SELECT q.jti FROM ssf_set_queue q JOIN ssf_streams s USING (stream_id)
            WHERE q.status = 'pending' AND q.next_attempt_at <= now()
              AND s.config #>> '{delivery,method}' = $3
              AND (s.status = 'enabled' OR q.event_uri = ANY($4::text[]))
            ORDER BY q.next_attempt_at, q.created_at
            LIMIT $1 FOR UPDATE OF q SKIP LOCKED
        )
        UPDATE ssf_set_queue q
        SET attempts = q.attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
        FROM picked, ssf_streams s
        WHERE q.jti = picked.jti AND s.stream_id = q.stream_id
        RETURNING q.jti, q.stream_id, q.token, q.attempts,
                  s.config #>> '{delivery,endpoint_url}' AS endpoint_url,
                  s.config #>> '{delivery,authorization_header}' AS authorization
        """,
        limit,
        lease_s,
        PUSH,
        list(CONTROL),
    )
    return [PushJob(**dict(r)) for r in rows]


async def mark_delivered(conn: asyncpg.Connection, jti: str) -> None:
    """The receiver took the pushed SET: done (a poll would not hand it out again either)."""
    await conn.execute(
        "UPDATE ssf_set_queue SET status = 'delivered', delivered_at = now(), last_error = NULL,"
        " next_attempt_at = 'infinity' WHERE jti = $1 AND status = 'pending'",
        jti,
    )


async def mark_failed(conn: asyncpg.Connection, jti: str, error: str) -> None:
    """The SET will not be delivered (refused by the receiver, or out of attempts)."""
    await conn.execute(
        "UPDATE ssf_set_queue SET status = 'failed', last_error = $2"
        " WHERE jti = $1 AND status IN ('pending', 'delivered')",
        jti,
        error[:1000],
    )


async def mark_retry(conn: asyncpg.Connection, jti: str, error: str, delay_s: float) -> None:
    """Try the SET again after a delay."""
    await conn.execute(
        "UPDATE ssf_set_queue SET last_error = $2,"
        " next_attempt_at = now() + make_interval(secs => $3)"
        " WHERE jti = $1 AND status = 'pending'",
        jti,
        error[:1000],
        delay_s,
    )


async def acknowledge(conn: asyncpg.Connection, stream_id: str, jtis: Sequence[str]) -> int:
    """Poll acknowledgements (RFC 8936 `ack`); unknown jtis are ignored."""
    result: str = await conn.execute(
        "UPDATE ssf_set_queue SET status = 'acknowledged', last_error = NULL"
        " WHERE stream_id = $1 AND jti = ANY($2::text[]) AND status IN ('pending', 'delivered')",
        stream_id,
        list(jtis),
    )
    return int(result.split()[-1])


async def record_errors(conn: asyncpg.Connection, stream_id: str, errors: Mapping[str, str]) -> int:
    """Poll error reports (RFC 8936 `setErrs`): those SETs failed for good."""
    result: str = await conn.execute(
        "UPDATE ssf_set_queue q SET status = 'failed', last_error = e.error"
        " FROM unnest($2::text[], $3::text[]) AS e(jti, error)"
        " WHERE q.stream_id = $1 AND q.jti = e.jti AND q.status IN ('pending', 'delivered')",
        stream_id,
        list(errors),
        [e[:1000] for e in errors.values()],
    )
    return int(result.split()[-1])


_OPEN = """
    stream_id = $1 AND next_attempt_at <= now() AND status IN ('pending', 'delivered')
    AND ($2 OR event_uri = ANY($3::text[]))
"""


async def hand_out(
    conn: asyncpg.Connection, stream: Stream, *, limit: int, redeliver_s: float
) -> tuple[dict[str, str], bool]:
    """Up to `limit` SETs for a poll, oldest first, and whether more are waiting. Handed
    out SETs wait `redeliver_s` for their ack before they are handed out again; a stream
    that is not enabled hands out only stream control events."""
    enabled = stream.status == "enabled"
    args = (stream.config.stream_id, enabled, list(CONTROL))
    rows = await conn.fetch(
        f"""
        WITH picked AS (
            SELECT jti FROM ssf_set_queue WHERE {_OPEN}
            ORDER BY created_at, jti LIMIT $4 FOR UPDATE SKIP LOCKED
        )
        UPDATE ssf_set_queue q
        SET status = 'delivered', attempts = q.attempts + 1, delivered_at = now(),
            next_attempt_at = now() + make_interval(secs => $5)
        FROM picked WHERE q.jti = picked.jti
        RETURNING q.jti, q.token, q.created_at
        """,  # noqa: S608
        *args,
        min(limit, MAX_POLL),
        redeliver_s,
    )
    handed = sorted(rows, key=lambda r: (r["created_at"], r["jti"]))
    more = await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM ssf_set_queue WHERE {_OPEN})", *args)  # noqa: S608
    return {r["jti"]: r["token"] for r in handed}, bool(more)


async def start_verification(conn: asyncpg.Connection, stream_id: str, min_interval_s: int) -> bool:
    """Record a verification request; False if the last one is too recent."""
    row = await conn.fetchval(
        "UPDATE ssf_streams SET last_verification_at = now() WHERE stream_id = $1"
        " AND (last_verification_at IS NULL"
        "      OR last_verification_at <= now() - make_interval(secs => $2))"
        " RETURNING 1",
        stream_id,
        float(min_interval_s),
    )
    return row is not None


async def remember_jti(conn: asyncpg.Connection, issuer: str, jti: str) -> bool:
    """Record a received SET; False when this issuer's jti was received before (a replay)."""
    row = await conn.fetchval(
        "INSERT INTO ssf_received_jtis (issuer, jti) VALUES ($1, $2)"
        " ON CONFLICT DO NOTHING RETURNING 1",
        issuer,
        jti,
    )
    return row is not None


async def purge(
    conn: asyncpg.Connection, *, received_older_than_s: float, closed_older_than_s: float
) -> int:
    """Forget received jtis too old to be accepted anyway, and long-finished SETs."""
    jtis: str = await conn.execute(
        "DELETE FROM ssf_received_jtis WHERE received_at < now() - make_interval(secs => $1)",
        received_older_than_s,
    )
    sets: str = await conn.execute(
        "DELETE FROM ssf_set_queue q USING ssf_streams s"
        " WHERE s.stream_id = q.stream_id AND q.created_at < now() - make_interval(secs => $1)"
        " AND (q.status IN ('acknowledged', 'failed')"
        "      OR (q.status = 'delivered' AND s.config #>> '{delivery,method}' = $2))",
        closed_older_than_s,
        PUSH,
    )
    return int(jtis.split()[-1]) + int(sets.split()[-1])
