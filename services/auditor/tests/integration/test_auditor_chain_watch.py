"""The auditor's periodic verification on a real PostgreSQL: rounds verify what was appended,
a changed record fails and is counted, a database outage is an error, a checkpoint is the
starting point after a restart."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from accord.auditor.adapters import log_store
from accord.auditor.chain_metrics import ChainMetrics
from accord.auditor.chain_watch import ChainWatch
from accord.auditor.checkpointing import take_checkpoint
from accord.auditor.domain.checkpoints import new_private_key_pem
from accord.auditor.fakes import audit_entry as entry
from accord.runtime import db

pytestmark = pytest.mark.integration
SCHEMA = "auditor"


async def append(pool: asyncpg.Pool, numbers: range) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await log_store.append_many(conn, [entry(n) for n in numbers], as_writer=True)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


async def test_rounds_count_verified_records_a_changed_record_and_an_outage(
    pool: asyncpg.Pool, fresh_database: str, postgres_server: str
) -> None:
    registry = CollectorRegistry()
    watched = await db.create_pool(fresh_database, SCHEMA, max_size=1)
    watch = ChainWatch(watched, ChainMetrics(registry), clock=lambda: 1_700_000_000.0)
    try:
        await append(pool, range(1, 6))
        first = await watch.round()
        await append(pool, range(6, 9))
        async with pool.acquire() as conn, conn.transaction():
            # A superuser can switch the append-only triggers off; the chain still tells.
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(
                "UPDATE audit_log SET payload = $1 WHERE record_id = 7",
                json.dumps({"user_id": "u-7", "display_name": "someone else"}),
            )
        second = await watch.round()

        assert first is not None
        assert first.ok
        assert first.checked == 5
        assert second is not None
        assert second.first_break is not None
        assert (second.first_break.record_id, second.checked) == (7, 1)
        assert value(registry, "accord_audit_verify_runs_total", outcome="ok") == 1
        assert value(registry, "accord_audit_verify_runs_total", outcome="failed") == 1
        assert value(registry, "accord_audit_verify_failures_total") == 1
        assert value(registry, "accord_audit_verified_records_total") == 6
        assert value(registry, "accord_audit_last_verify_timestamp_seconds") == 1_700_000_000.0

        # The database goes away: the watch's connection is dropped and no new one is let in.
        name = await pool.fetchval("SELECT current_database()")
        pid = await watched.fetchval("SELECT pg_backend_pid()")
        admin = await asyncpg.connect(postgres_server)  # another database of the server
        try:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
            down = await watch.round()
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await admin.close()
        back = await watch.round()  # the same watch, reconnected: still broken at record 7

        assert down is None
        assert value(registry, "accord_audit_verify_runs_total", outcome="error") == 1
        assert back is not None
        assert back.first_break == second.first_break
        assert value(registry, "accord_audit_verify_failures_total") == 2
        assert value(registry, "accord_audit_verify_runs_total", outcome="ok") == 1
    finally:
        await watched.close()


async def test_after_a_restart_the_first_round_starts_at_the_latest_checkpoint(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    key = tmp_path / "signing.pem"
    key.write_bytes(new_private_key_pem())
    await append(pool, range(1, 8))
    checkpoint = await take_checkpoint(pool, key, None, as_writer=True)
    assert checkpoint is not None
    assert checkpoint.record_id == 7
    await append(pool, range(8, 11))

    registry = CollectorRegistry()
    watch = ChainWatch(pool, ChainMetrics(registry), signing_key_file=key)
    outcome = await watch.round()

    assert outcome is not None
    assert outcome.ok
    assert (outcome.checked, outcome.position.record_id) == (3, 10)
    assert value(registry, "accord_audit_verified_records_total") == 3


async def test_a_checkpoint_not_signed_by_the_auditors_key_is_not_a_starting_point(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    ours, forger = tmp_path / "ours.pem", tmp_path / "forger.pem"
    ours.write_bytes(new_private_key_pem())
    forger.write_bytes(new_private_key_pem())
    await append(pool, range(1, 5))
    assert await take_checkpoint(pool, forger, None, as_writer=True) is not None

    watch = ChainWatch(pool, ChainMetrics(CollectorRegistry()), signing_key_file=ours)
    outcome = await watch.round()

    assert outcome is not None
    assert outcome.ok
    assert outcome.checked == 4  # the whole chain, from its first record


async def test_a_large_log_is_verified_a_bounded_round_at_a_time(pool: asyncpg.Pool) -> None:
    await append(pool, range(1, 26))
    watch = ChainWatch(pool, ChainMetrics(CollectorRegistry()), limit=10)

    outcomes = [await watch.round() for _ in range(3)]

    assert [(o.checked, o.behind) for o in outcomes if o is not None] == [
        (10, True),
        (10, True),
        (5, False),
    ]
