"""The auditor's tables in a fresh database; the `accord` CLI's DATABASE_URL points there."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from accord.stack.testing import migrated_pool

SCHEMA = "auditor"


@pytest_asyncio.fixture(loop_scope="session")
async def pool(fresh_database: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[asyncpg.Pool]:
    monkeypatch.setenv("DATABASE_URL", fresh_database)
    migrations = ["accord.auditor.migrations"]
    async with migrated_pool(fresh_database, SCHEMA, migrations, max_size=4) as created:
        yield created
