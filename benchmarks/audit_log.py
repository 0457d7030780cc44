"""Audit records stored per second (chained, batched as the auditor does) and verify time.

Starts an embedded PostgreSQL, appends N records (default 100,000) in batches of 500 per
transaction (what the auditor's consumer does with one partition's fetch), then one record
per transaction for comparison, and times `verify_log` over the whole chain.
Usage: python benchmarks/audit_log.py [N]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from accord.auditor.adapters import log_store
from accord.auditor.domain.normalise import AuditEntry
from accord.auditor.verify import verify_log
from accord.runtime import db
from accord.stack.postgres import EmbeddedPostgres

BATCH = 500
SINGLES = 2_000


def entry(n: int, run: str) -> AuditEntry:
    user = f"u-{run}-{n}"
    return AuditEntry(
        source_event_id=f"evt-{run}-{n}",
        source_topic="account.provisioned",
        event_type="account.provisioned",
        occurred_at=datetime.now(UTC),
        actor="accord/provisioner",
        subject=user,
        target="scim-demo",
        outcome="success",
        correlation_id=f"corr-{run}-{n}",
        trace_id=uuid.uuid4().hex,
        payload={
            "user_id": user,
            "target": "scim-demo",
            "account_id": uuid.uuid4().hex,
            "operation": "create",
            "saga_id": f"saga-{run}-{n}",
            "step": "provision:scim-demo",
            "attempts": 1,
        },
    )


async def append(pool: asyncpg.Pool, entries: list[AuditEntry], *, as_writer: bool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await log_store.append_many(conn, entries, as_writer=as_writer)


async def main(count: int) -> None:
    with tempfile.TemporaryDirectory() as home:
        postgres = EmbeddedPostgres(Path(home) / "pg")
        await postgres.start()
        try:
            await measure(postgres.dsn, count)
        finally:
            await postgres.stop()


async def measure(
    dsn: str, count: int, *, singles: int = SINGLES, say: Callable[[str], None] = print
) -> dict[str, float | int]:
    """Store and verify on the database at `dsn` (its auditor schema is made if missing);
    prints each figure as it comes and returns them all (benchmarks/e2e.py uses both)."""
    await db.migrate(dsn, "auditor", ["accord.auditor.migrations"])
    pool = await db.create_pool(dsn, "auditor", max_size=4)
    try:
        writer = await log_store.writer_role_usable(pool)
        run = uuid.uuid4().hex[:6]
        entries = [entry(n, run) for n in range(count)]

        started = time.perf_counter()
        for i in range(0, count, BATCH):
            await append(pool, entries[i : i + BATCH], as_writer=writer)
        batched = time.perf_counter() - started
        say(f"stored, batches of {BATCH}:   {count / batched:8.0f} records/s ({count:,})")

        ones = [entry(n, f"{run}s") for n in range(singles)]
        started = time.perf_counter()
        for one in ones:
            await append(pool, [one], as_writer=writer)
        single = time.perf_counter() - started
        say(f"stored, one per transaction: {singles / single:8.0f} records/s ({singles:,})")

        started = time.perf_counter()
        again = [entry(n, run) for n in range(min(count, 10_000))]
        for i in range(0, len(again), BATCH):
            await append(pool, again[i : i + BATCH], as_writer=writer)
        replay = time.perf_counter() - started
        say(f"replayed (all duplicates):   {len(again) / replay:8.0f} records/s")

        report = await verify_log(pool)
        assert report.ok, report.first_break
        per_100k = report.seconds / report.checked * 100_000
        say(
            f"verify: {report.checked:,} records in {report.seconds:.2f} s"
            f" = {per_100k:.2f} s per 100,000"
        )
    finally:
        await pool.close()
    return {
        "records": count,
        "batch_size": BATCH,
        "stored_batched_per_s": round(count / batched),
        "stored_one_per_transaction_per_s": round(singles / single),
        "replayed_duplicates_per_s": round(len(again) / replay),
        "verify_records": report.checked,
        "verify_seconds": round(report.seconds, 3),
        "verify_seconds_per_100k": round(per_100k, 3),
    }


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
