"""The provisioner's ledger in its own schema: the last command per identity and target.

Each provision.requested is recorded in the transaction that commits its outcome. A command
older than the one recorded (a dead letter replayed late) is superseded: it must not undo
what a newer command did, such as recreating the account of someone who has left.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from accord.events import Envelope, Profile, ProvisionRequested
from accord.events.catalogue.provisioning import MEMBERSHIP_OPERATIONS
from accord.provisioner.domain.reconcile import Desired, DesiredState

#: The account state each operation asks for.
STATE_AFTER: dict[str, DesiredState] = {
    "create": "active",
    "update": "active",
    "enable": "active",
    "disable": "disabled",
    "delete": "absent",
}


def state_after(command: ProvisionRequested) -> DesiredState:
    """The account state a command asks for; an update of an inactive profile disables."""
    state = STATE_AFTER[command.operation]
    if state == "active" and not command.profile.active:
        return "disabled"
    return state


async def newer_command_at(
    conn: asyncpg.Connection | asyncpg.Pool, command: ProvisionRequested
) -> datetime | None:
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


async def record_command(conn: asyncpg.Connection, envelope: Envelope) -> None:
    """Remember what the command asks for, unless a newer command is recorded already."""
    command = envelope.data
    assert isinstance(command, ProvisionRequested)
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
            envelope.time,
            envelope.id,
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
        envelope.time,
        envelope.id,
    )


async def desired_of(
    conn: asyncpg.Connection, target: str, user_ids: Sequence[str]
) -> dict[str, Desired]:
    """The ledger's entries for these identities in the target."""
    rows = await conn.fetch(
        "SELECT user_id, profile, state FROM desired_accounts"
        " WHERE target = $1 AND user_id = ANY($2::text[])",
        target,
        list(user_ids),
    )
    return {row["user_id"]: _desired(row) for row in rows}


async def present_desired(
    conn: asyncpg.Connection, target: str, *, batch: int = 500
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
