"""The orchestrator's tables in a database of each test module's own, for the port contract
tests (the same cases on a fake and on PostgreSQL). A module that needs another pool
defines its own `pool`, which takes precedence."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest_asyncio

from accord.stack.testing import create_database, migrated_pool

MIGRATIONS = ["accord.orchestrator.migrations"]


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def pool(postgres_server: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the orchestrator's schema of a new database, migrated, for the module."""
    dsn = await create_database(postgres_server)
    async with migrated_pool(dsn, "orchestrator", MIGRATIONS) as made:
        yield made
