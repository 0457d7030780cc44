"""The database schema each service's migrations produce, checked in beside the service.

`services/<name>/schema.sql` is what a reviewer reads to see a service's tables, indexes,
constraints, functions and triggers as they are after every migration, and a test fails
when the migrations produce anything else (`python -m accord.stack.db_schemas` rewrites the
files after a new migration; `--check` compares). The dump is PostgreSQL's own (`pg_dump
--schema-only` of the embedded server's version), without owners, privileges and the
lines that change from run to run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

import asyncpg

from accord.runtime import db
from accord.stack.postgres import EmbeddedPostgres, pg_bin_dir

SERVICES = ("orchestrator", "provisioner", "authz", "auditor", "authn", "sources")
ROOT = Path(__file__).resolve().parents[5]
_VOLATILE = ("--", "SET ", "SELECT pg_catalog.set_config", "\\")


def schema_file(service: str, root: Path = ROOT) -> Path:
    """Where a service's schema is checked in."""
    return root / "services" / service / "schema.sql"


def normalise(dump: str) -> str:
    """pg_dump's output without comments, session settings, psql meta-commands (pg_dump 18
    writes a random `\\restrict` key) and runs of blank lines."""
    lines: list[str] = []
    for line in dump.splitlines():
        line = line.rstrip()
        if line.startswith(_VOLATILE):
            continue
        if not line and (not lines or not lines[-1]):
            continue
        lines.append(line)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"


async def dump(dsn: str, schema: str) -> str:
    """The normalised schema-only dump of one schema of a database."""
    process = await asyncio.create_subprocess_exec(
        str(pg_bin_dir() / "pg_dump"),
        "--schema-only",
        "--no-owner",
        "--no-privileges",
        f"--schema={schema}",
        dsn,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"pg_dump failed: {err.decode(errors='replace').strip()}")
    return normalise(out.decode())


async def migrated(server_dsn: str, service: str) -> str:
    """The schema a service's migrations make in a new database of the server (dropped after)."""
    name = f"accord_schema_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base, _, _ = server_dsn.rpartition("/")
        dsn = f"{base}/{name}"
        await db.migrate(dsn, service, [f"accord.{service}.migrations"])
        return await dump(dsn, service)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.close()


async def _run(check: bool, root: Path) -> int:
    with tempfile.TemporaryDirectory(prefix="accord-schemas-") as folder:
        server = EmbeddedPostgres(Path(folder) / "data")
        await server.start()
        try:
            stale = []
            for service in SERVICES:
                text = await migrated(server.dsn, service)
                path = schema_file(service, root)
                if path.exists() and path.read_text() == text:
                    continue
                stale.append(str(path.relative_to(root)))
                if not check:
                    path.write_text(text)
        finally:
            await server.stop()
    if check and stale:
        print(
            "accord: error: the migrations make another schema than "
            f"{', '.join(stale)} (run `make db-schemas`)",
            file=sys.stderr,
        )
        return 1
    print(("stale: " if check else "wrote: ") + (", ".join(stale) or "nothing"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or --check) every service's schema.sql from its migrations."""
    parser = argparse.ArgumentParser(prog="python -m accord.stack.db_schemas", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a file differs")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository root")
    args = parser.parse_args(argv)
    return asyncio.run(_run(args.check, args.root))


if __name__ == "__main__":
    raise SystemExit(main())
