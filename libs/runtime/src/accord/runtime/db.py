"""PostgreSQL: one schema per service, a pool whose search_path is that schema, migrations."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

log = logging.getLogger(__name__)

RUNTIME_MIGRATIONS = "accord.runtime.migrations"


@dataclass(frozen=True)
class Migration:
    """One SQL file, applied once, in name order."""

    name: str
    sql: str


def load_migrations(package: str) -> list[Migration]:
    """The *.sql files of a package, sorted by name."""
    files = sorted(
        (f for f in resources.files(package).iterdir() if f.name.endswith(".sql")),
        key=lambda f: f.name,
    )
    return [Migration(f.name, f.read_text()) for f in files]


def advisory_key(name: str) -> int:
    """A stable 64-bit advisory lock key for a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,39}")


def _quote_ident(name: str) -> str:
    # Lower case only: PostgreSQL folds unquoted names, and search_path settings are unquoted.
    # At most 40 characters, so the outbox NOTIFY channel name stays under PostgreSQL's 63.
    if not _SCHEMA_NAME.fullmatch(name):
        raise ValueError(
            f"unsafe schema name {name!r}: use [a-z_][a-z0-9_]*, at most 40 characters"
        )
    return f'"{name}"'


async def keep_session(conn: asyncpg.Connection) -> None:
    """The pools' reset on release: nothing beyond asyncpg's own, which rolls back a
    transaction left open and drops the connection's listeners.

    asyncpg's default reset sends `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL` on every release: a round trip and four statements per transaction, a fifth
    of every statement the platform ran per joiner (issue 24). Pooled connections keep no
    session state to reset: settings are SET LOCAL; a listener (authn's delivery loop) and a
    session advisory lock (sources runs, reconciliations) are removed or released by their
    holders in `finally`; a connection that breaks takes its locks with it.
    """


async def create_pool(dsn: str, schema: str, *, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections see the service's schema first."""
    _quote_ident(schema)
    pool = await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=max_size,
        command_timeout=30,
        server_settings={"search_path": f"{schema},public", "application_name": f"accord-{schema}"},
        reset=keep_session,
    )
    assert pool is not None
    return pool


async def migrate(
    dsn: str, schema: str, packages: list[str], *, runtime_tables: bool = True
) -> list[str]:
    """Create the schema and apply pending migrations of each package; returns those applied."""
    applied: list[str] = []
    quoted = _quote_ident(schema)
    conn = await asyncpg.connect(dsn)
    try:
        lock = advisory_key(f"migrate:{schema}")
        # Two replicas starting at once must not both migrate.
        await conn.execute("SELECT pg_advisory_lock($1)", lock)
        try:
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
            await conn.execute(f"SET search_path = {quoted}")
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " package text NOT NULL, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (package, name))"
            )
            done = {
                (r["package"], r["name"])
                for r in await conn.fetch("SELECT package, name FROM schema_migrations")
            }
            for package in [RUNTIME_MIGRATIONS, *packages] if runtime_tables else packages:
                for migration in load_migrations(package):
                    if (package, migration.name) in done:
                        continue
                    async with conn.transaction():
                        await conn.execute(migration.sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (package, name) VALUES ($1, $2)",
                            package,
                            migration.name,
                        )
                    applied.append(f"{package}/{migration.name}")
                    log.info(
                        "applied migration", extra={"migration": migration.name, "schema": schema}
                    )
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", lock)
    finally:
        await conn.close()
    return applied
