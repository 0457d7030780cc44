"""What the `accord` subcommands that work on Accord's database share.

Failures are raised as the `accord` command's CliError: it prints them as one line and
exits with their code.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import asyncpg

from accord.events.cli import EXIT_USAGE, CliError

_SCHEMES = ("postgresql", "postgres")


def run_on_database(
    work: Callable[[asyncpg.Pool], Awaitable[int]],
    *,
    schema: str | None = None,
    prepare: Callable[[str], Awaitable[object]] | None = None,
    no_tables: str | None = None,
) -> int:
    """Run work on a small pool on DATABASE_URL (seeing `schema` first, when given).

    `prepare` runs on the DSN before the pool opens (e.g. migrations). A missing or
    malformed DATABASE_URL is a usage error (exit 2); an unreachable database, or one that
    refuses, a failure (exit 1) with PostgreSQL's own message; with `no_tables`, a missing
    table fails with that message (the service never ran).
    """
    dsn = database_url()

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
    except BrokenPipeError:
        raise  # whoever read the output stopped reading: not the database's doing
    except DATABASE_ERRORS as error:
        raise database_failure(error) from None


#: What connecting to the database or working on it raises when it is not as it should be.
DATABASE_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def database_failure(error: BaseException) -> CliError:
    """One of DATABASE_ERRORS as the line the command prints."""
    if isinstance(error, asyncpg.PostgresError):
        # The server's own words: 'database "x" does not exist', 'password authentication
        # failed for user "y"', 'permission denied for table z'.
        return CliError(f"PostgreSQL: {error}")
    if isinstance(error, asyncpg.exceptions.ClientConfigurationError):
        return CliError(f"DATABASE_URL: {error}", EXIT_USAGE)
    return CliError(f"database unavailable: {str(error) or type(error).__name__}")


def database_url() -> str:
    """DATABASE_URL, if it is a PostgreSQL URL (it is never repeated: it may hold a password)."""
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        raise CliError("DATABASE_URL is not set", EXIT_USAGE)
    try:
        parts = urlsplit(dsn)
        parts.port  # noqa: B018 - reading it checks it
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in _SCHEMES:
        raise CliError(
            "DATABASE_URL is not a PostgreSQL URL (postgresql://USER@HOST:PORT/DATABASE)",
            EXIT_USAGE,
        )
    return dsn
