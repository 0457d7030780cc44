"""What the port contract tests share: a connection whose transaction is rolled back after
the test, so the PostgreSQL side of each case starts from the migrated, empty tables; and,
for the tests that drive the engine's loops on PostgreSQL, the handlers' ports and an idle
effect runner."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from accord.orchestrator.adapters.postgres import postgres_ports
from accord.orchestrator.domain.birthright import everyone
from accord.orchestrator.domain.workflow import WorkflowSettings
from accord.orchestrator.ports import OrchestratorPorts


@contextlib.asynccontextmanager
async def rolled_back(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the pool inside a transaction that is rolled back on leaving."""
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            yield conn
        finally:
            await transaction.rollback()


def ports_on(conn: asyncpg.Connection) -> OrchestratorPorts:
    """The handlers' ports on a connection (the engine's loops start task sagas on them)."""
    return postgres_ports(conn, "urn:test", WorkflowSettings(birthright=everyone([])))


class IdleRunner:
    """An effect runner for the loop tests: every Kafka command goes out with nothing to
    send (its task completes at once) and every I/O effect succeeds with no outputs."""

    def envelopes(self, command: Any, run: Any, identity: Any, cause: Any) -> Any:
        return []

    async def perform(self, command: Any, run: Any, identity: Any) -> Any:
        return {}
