"""The orchestrator's ports on PostgreSQL: today's statements of `store`, bound to the
connection of the handler's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from accord.events import Profile
from accord.orchestrator.adapters import store
from accord.orchestrator.domain.account_saga import SagaState
from accord.orchestrator.domain.identity import IdentityVersion
from accord.orchestrator.domain.workflow import Accounts, Identity, WorkflowSettings
from accord.orchestrator.ports import (
    OrchestratorPorts,
    ParkedEvent,
    ProfileChange,
    SagaCount,
    Timer,
)


def identity_of(entry: dict[str, Any]) -> Identity:
    """A registry row (as `store.get_identity` returns it) as the workflows see it."""
    return Identity(
        user_id=entry["user_id"],
        status=entry["status"],
        profile=Profile.model_validate(entry["profile"]),
        locked_by=entry["locked_by"],
    )


@dataclass(frozen=True)
class PostgresRegistry:
    """The identity registry in the orchestrator's tables."""

    conn: asyncpg.Connection

    async def lock(self, user_id: str) -> None:
        await store.lock_identity(self.conn, user_id)

    async def version(self, user_id: str) -> IdentityVersion | None:
        return await store.identity_version(self.conn, user_id)

    async def identity(self, user_id: str) -> Identity | None:
        entry = await store.get_identity(self.conn, user_id)
        return identity_of(entry) if entry is not None else None

    async def identity_ids(self, after: str | None, limit: int) -> list[str]:
        rows = await self.conn.fetch(
            "SELECT user_id FROM identities WHERE status <> 'deleted'"
            " AND ($1::text IS NULL OR user_id > $1) ORDER BY user_id LIMIT $2",
            after,
            limit,
        )
        return [row["user_id"] for row in rows]

    async def accounts(self, user_id: str) -> Accounts:
        held = await store.account_targets(self.conn, user_id)
        maybe = await store.account_targets(self.conn, user_id, requested=True)
        return Accounts(held=tuple(held), maybe=tuple(maybe))

    async def save_profile(self, change: ProfileChange) -> None:
        await store.upsert_identity(
            self.conn,
            user_id=change.user_id,
            user_name=change.user_name,
            profile=change.profile,
            status=change.status,
            sequence=change.sequence,
            source=change.source,
            status_event=change.status_event,
        )

    async def set_status(self, user_id: str, status: str, sequence: int) -> None:
        await store.set_identity_status(self.conn, user_id, status, sequence)

    async def set_locked(self, user_id: str, lockout_id: str | None) -> bool:
        return await store.set_locked(self.conn, user_id, lockout_id)

    async def end_lockout(self, user_id: str, lockout_id: str) -> None:
        await store.end_lockout(self.conn, user_id, lockout_id)

    async def lockout_ended(self, user_id: str, lockout_id: str) -> bool:
        return await store.lockout_ended(self.conn, user_id, lockout_id)

    async def park(self, user_id: str, event: ParkedEvent) -> None:
        await store.park(
            self.conn,
            user_id,
            event.sequence,
            event.event_id,
            event.event_type,
            event.version,
            event.data,
            event.source,
        )

    async def take_parked(self, user_id: str) -> list[ParkedEvent]:
        return await store.take_parked(self.conn, user_id)

    async def record_account(
        self, user_id: str, target: str, account_id: str, operation: str
    ) -> None:
        await store.record_account(self.conn, user_id, target, account_id, operation)

    async def record_requested(self, user_id: str, targets: Sequence[str]) -> None:
        await store.record_requested(self.conn, user_id, targets)


@dataclass(frozen=True)
class PostgresSagas:
    """The sagas and their timers in the orchestrator's tables."""

    conn: asyncpg.Connection

    async def insert(self, state: SagaState, correlation_id: str) -> bool:
        return await store.insert_saga(self.conn, state, correlation_id)

    async def load(self, saga_id: str) -> SagaState | None:
        return await store.load_saga(self.conn, saga_id)

    async def save(self, state: SagaState) -> None:
        await store.save_saga(self.conn, state)

    async def status(self, saga_id: str) -> str | None:
        return await store.saga_status(self.conn, saga_id)

    async def subject(self, saga_id: str) -> str | None:
        return await store.saga_subject(self.conn, saga_id)

    async def correlation(self, saga_id: str) -> str | None:
        return await store.saga_correlation(self.conn, saga_id)

    async def busy(self, user_id: str) -> bool:
        return await store.busy(self.conn, user_id)

    async def holder(self, user_id: str) -> str | None:
        return await store.holder(self.conn, user_id)

    async def next_queued(self, user_id: str) -> SagaState | None:
        return await store.next_queued(self.conn, user_id)

    async def census(self) -> list[SagaCount]:
        return await store.saga_census(self.conn)

    async def add_timer(self, timer: Timer, due_at: datetime) -> None:
        await store.add_timer(self.conn, timer, due_at)

    async def drop_timers(self, saga_id: str, kind: str) -> None:
        await store.drop_timers(self.conn, saga_id, kind)


async def saga_census(pool: asyncpg.Pool, *, timeout_s: float) -> list[SagaCount]:
    """The saga census at scrape time, on a connection of its own in a read-only transaction:
    waiting for a connection and the query itself are bounded by `timeout_s`, so a slow
    database costs one scrape's saga gauges (they keep their last values), nothing more."""
    async with pool.acquire(timeout=timeout_s) as conn, conn.transaction(readonly=True):
        await conn.execute(f"SET LOCAL statement_timeout = {max(1, int(timeout_s * 1000))}")
        return await PostgresSagas(conn).census()


def postgres_ports(
    conn: asyncpg.Connection, source: str, settings: WorkflowSettings
) -> OrchestratorPorts:
    """The handlers' ports inside the transaction open on `conn`."""
    return OrchestratorPorts(
        registry=PostgresRegistry(conn),
        sagas=PostgresSagas(conn),
        source=source,
        settings=settings,
        clock=store.now_utc,
    )
