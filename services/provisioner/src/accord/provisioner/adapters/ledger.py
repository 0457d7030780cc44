"""The provisioner's ledger in its own schema: the last command per identity and target.

Each provision.requested is recorded in the transaction that commits its outcome. A command
older than the one recorded (a dead letter replayed late) is superseded: it must not undo
what a newer command did, such as recreating the account of someone who has left.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

from accord.events import Profile, ProvisionRequested
from accord.events.catalogue.provisioning import MEMBERSHIP_OPERATIONS
from accord.provisioner.domain.commands import state_after
from accord.provisioner.domain.reconcile import Desired

#: A connection (inside a transaction) or the pool (a statement of its own).
Executor: TypeAlias = asyncpg.Connection | asyncpg.Pool


class PostgresLedger:
    """The Ledger port on the provisioner's schema, through a connection or the pool."""

    def __init__(self, conn: Executor) -> None:
        self._conn = conn

    async def latest_command_at(self, command: ProvisionRequested) -> datetime | None:
        return await newer_command_at(self._conn, command)

    async def record_command(
        self, command: ProvisionRequested, *, commanded_at: datetime, command_id: str
    ) -> None:
        await record_command(self._conn, command, commanded_at=commanded_at, command_id=command_id)

    async def desired_of(self, target: str, user_ids: Sequence[str]) -> dict[str, Desired]:
        return await desired_of(self._conn, target, user_ids)

    def present_desired(self, target: str, *, batch: int = 500) -> AsyncIterator[Desired]:
        return present_desired(self._conn, target, batch=batch)


async def newer_command_at(conn: Executor, command: ProvisionRequested) -> datetime | None:
    """When the recorded command for this account (or membership) was issued, if any."""
    if command.operation in MEMBERSHIP_OPERATIONS:
        at: datetime | None = await conn.fetchval(
            "SELECT commanded_at FROM desired_memberships"
            " WHERE target = $1 AND user_id = $2 AND group_name = $3",
            command.target,
            command.user_id,
            command.group,
        )
        return at
    at = await conn.fetchval(
        "SELECT commanded_at FROM desired_accounts WHERE target = $1 AND user_id = $2",
        command.target,
        command.user_id,
    )
    return at


async def record_command(
    conn: Executor, command: ProvisionRequested, *, commanded_at: datetime, command_id: str
) -> None:
    """Remember what the command asks for, unless a newer command is recorded already."""
    if command.operation in MEMBERSHIP_OPERATIONS:
        await conn.execute(
            "INSERT INTO desired_memberships"
            " (target, user_id, group_name, member, commanded_at, command_id)"
            " VALUES ($1, $2, $3, $4, $5, $6)"
            " ON CONFLICT (target, user_id, group_name) DO UPDATE SET"
            " member = EXCLUDED.member, commanded_at = EXCLUDED.commanded_at,"
            " command_id = EXCLUDED.command_id"
            " WHERE desired_memberships.commanded_at <= EXCLUDED.commanded_at",
            command.target,
            command.user_id,
            command.group,
            command.operation == "add_member",
            commanded_at,
            command_id,
        )
        return
    await conn.execute(
        "INSERT INTO desired_accounts"
        " (target, user_id, user_name, profile, state, commanded_at, command_id)"
        " VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7)"
        " ON CONFLICT (target, user_id) DO UPDATE SET"
        " user_name = EXCLUDED.user_name, profile = EXCLUDED.profile, state = EXCLUDED.state,"
        " commanded_at = EXCLUDED.commanded_at, command_id = EXCLUDED.command_id,"
        " updated_at = now()"
        " WHERE desired_accounts.commanded_at <= EXCLUDED.commanded_at",
        command.target,
        command.user_id,
        command.profile.user_name,
        command.profile.model_dump_json(),
        state_after(command),
        commanded_at,
        command_id,
    )


async def desired_of(conn: Executor, target: str, user_ids: Sequence[str]) -> dict[str, Desired]:
    """The ledger's entries for these identities in the target."""
    rows = await conn.fetch(
        "SELECT user_id, profile, state FROM desired_accounts"
        " WHERE target = $1 AND user_id = ANY($2::text[])",
        target,
        list(user_ids),
    )
    return {row["user_id"]: _desired(row) for row in rows}


async def present_desired(
    conn: Executor, target: str, *, batch: int = 500
) -> AsyncIterator[Desired]:
    """Every identity that should have an account in the target, in user_id order."""
    after = ""
    while True:
        rows = await conn.fetch(
            "SELECT user_id, profile, state FROM desired_accounts"
            " WHERE target = $1 AND state <> 'absent' AND user_id > $2"
            " ORDER BY user_id LIMIT $3",
            target,
            after,
            batch,
        )
        for row in rows:
            yield _desired(row)
        if len(rows) < batch:
            return
        after = rows[-1]["user_id"]


def _desired(row: asyncpg.Record) -> Desired:
    profile = Profile.model_validate(json.loads(row["profile"]))
    return Desired(row["user_id"], profile, row["state"])


async def start_run(
    conn: asyncpg.Connection, run_id: str, target: str, *, trigger: str, fix: bool
) -> None:
    """Record a run as running."""
    await conn.execute(
        "INSERT INTO reconciliation_runs (run_id, target, trigger, fix, status)"
        " VALUES ($1, $2, $3, $4, 'running')",
        run_id,
        target,
        trigger,
        fix,
    )


async def finish_run(
    conn: asyncpg.Connection,
    run_id: str,
    *,
    summary: dict[str, Any],
    error: str | None = None,
) -> None:
    """Record a run's end: completed with its summary, or failed with the error."""
    await conn.execute(
        "UPDATE reconciliation_runs SET status = $2, finished_at = now(),"
        " summary = $3::jsonb, error = $4 WHERE run_id = $1",
        run_id,
        "failed" if error else "completed",
        json.dumps(summary),
        error,
    )


async def last_run_started(conn: asyncpg.Connection | asyncpg.Pool, target: str) -> datetime | None:
    """When the target's latest run began (scheduled or not)."""
    at: datetime | None = await conn.fetchval(
        "SELECT max(started_at) FROM reconciliation_runs WHERE target = $1", target
    )
    return at


async def runs(
    conn: asyncpg.Connection | asyncpg.Pool, target: str | None, *, limit: int
) -> list[dict[str, Any]]:
    """The latest runs, newest first."""
    rows = await conn.fetch(
        "SELECT run_id, target, trigger, fix, status, started_at, finished_at, summary, error"
        " FROM reconciliation_runs WHERE $1::text IS NULL OR target = $1"
        " ORDER BY started_at DESC LIMIT $2",
        target,
        limit,
    )
    return [
        {
            **dict(row),
            "started_at": row["started_at"].isoformat(),
            "finished_at": row["finished_at"].isoformat() if row["finished_at"] else None,
            "summary": json.loads(row["summary"]) if row["summary"] else None,
        }
        for row in rows
    ]
