"""What the `accord` subcommands that work on Accord's database share.

Failures are raised as the `accord` command's CliError: it prints them as one line and
exits with their code.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

import asyncpg

from accord.events.cli import EXIT_USAGE, CliError


def run_on_database(
    work: Callable[[asyncpg.Pool], Awaitable[int]],
    *,
    schema: str | None = None,
    prepare: Callable[[str], Awaitable[object]] | None = None,
    no_tables: str | None = None,
) -> int:
    """Run work on a small pool on DATABASE_URL (seeing `schema` first, when given).

    `prepare` runs on the DSN before the pool opens (e.g. migrations). A missing
    DATABASE_URL is a usage error (exit 2); an unreachable database a failure (exit 1);
    with `no_tables`, a missing table fails with that message (the service never ran).
    """
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        raise CliError("DATABASE_URL is not set", EXIT_USAGE)

    async def run() -> int:
        if prepare is not None:
            await prepare(dsn)
        settings = {"search_path": schema} if schema else None
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, server_settings=settings)
        assert pool is not None
        try:
            return await work(pool)
        except asyncpg.UndefinedTableError:
            if no_tables is None:
                raise
            raise CliError(no_tables) from None
        finally:
            await pool.close()

    try:
        return asyncio.run(run())
    except (OSError, asyncpg.PostgresError) as error:
        raise CliError(f"database unavailable: {type(error).__name__}") from None
