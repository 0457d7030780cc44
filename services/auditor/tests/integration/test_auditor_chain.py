"""The audit log on a real PostgreSQL: chained appends, the writer role, tampering, verify."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from accord.auditor.adapters import log_store
from accord.auditor.adapters.log_store import Filters
from accord.auditor.checkpointing import take_checkpoint
from accord.auditor.domain.checkpoints import new_private_key_pem
from accord.auditor.domain.normalise import AuditEntry
from accord.auditor.fakes import audit_entry as entry
from accord.auditor.verify import verify_log
from accord.stack.testing import run_accord as accord

pytestmark = pytest.mark.integration
SCHEMA = "auditor"


async def append(
    pool: asyncpg.Pool, entries: list[AuditEntry], *, as_writer: bool = True
) -> list[int]:
    async with pool.acquire() as conn, conn.transaction():
        stored = await log_store.append_many(conn, entries, as_writer=as_writer)
    return [s.record_id for s in stored]


async def test_appends_are_chained_gap_free_and_idempotent(pool: asyncpg.Pool) -> None:
    assert await log_store.writer_role_usable(pool)
    first = await append(pool, [entry(1), entry(2), entry(2)])
    again = await append(pool, [entry(2), entry(3)])

    assert (first, again) == ([1, 2], [3])
    rows = await pool.fetch("SELECT record_id, prev_hash, hash FROM audit_log ORDER BY record_id")
    assert [r["prev_hash"] for r in rows[1:]] == [r["hash"] for r in rows[:-1]]
    assert rows[0]["prev_hash"] == "0" * 64
    head = await log_store.head(pool)
    assert (head["record_id"], head["hash"]) == (3, rows[-1]["hash"])
    report = await verify_log(pool)
    assert report.ok
    assert report.checked == 3


async def test_concurrent_writers_keep_one_unbroken_chain(pool: asyncpg.Pool) -> None:
    batches = [[entry(b * 100 + i) for i in range(20)] for b in range(8)]
    await asyncio.gather(*(append(pool, batch) for batch in batches))

    report = await verify_log(pool)
    assert report.ok, report.first_break
    assert report.checked == 160
    assert await pool.fetchval("SELECT count(DISTINCT record_id) FROM audit_log") == 160


async def test_the_writer_role_may_insert_and_read_but_never_change_or_remove(
    pool: asyncpg.Pool,
) -> None:
    await append(pool, [entry(1)])
    for statement in (
        "UPDATE audit_log SET subject = 'x'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "DELETE FROM audit_checkpoints",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await as_writer(pool, statement)


async def as_writer(pool: asyncpg.Pool, statement: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"SET LOCAL ROLE {log_store.WRITER_ROLE}")
        await conn.execute(statement)


async def test_a_record_changed_by_a_superuser_is_named_by_verify(
    pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    await append(pool, [entry(n) for n in range(1, 8)])
    code, out, err = await accord(capsys, "audit", "verify")
    assert code == 0, err
    assert out.startswith("chain OK: 7 records (1..7)")

    async with pool.acquire() as conn, conn.transaction():
        # A superuser can switch triggers off; the chain still tells.
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(
            "UPDATE audit_log SET payload = $1 WHERE record_id = 4",
            json.dumps({"user_id": "u-4", "display_name": "someone else"}),
        )

    code, out, err = await accord(capsys, "audit", "verify")
    assert code == 1
    assert out.splitlines()[0] == (
        "chain BROKEN at record 4: its content does not match its hash "
        "(3 records before it verified)"
    )
    code, out, _ = await accord(capsys, "audit", "verify", "--json")
    report = json.loads(out)
    assert (code, report["ok"], report["first_break"]["record_id"]) == (1, False, 4)


async def test_a_removed_record_and_a_removed_tail_are_found(pool: asyncpg.Pool) -> None:
    await append(pool, [entry(n) for n in range(1, 6)])
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute("DELETE FROM audit_log WHERE record_id = 3")
    report = await verify_log(pool)
    assert report.first_break is not None
    assert (report.first_break.record_id, report.first_break.reason) == (
        4,
        "record(s) 3 missing before it",
    )


async def test_checkpoints_catch_a_rewritten_tail(
    pool: asyncpg.Pool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "signing.pem"
    code, out, err = await accord(capsys, "audit", "keygen", "--out", str(key))
    assert code == 0, err
    assert key.stat().st_mode & 0o777 == 0o600
    await append(pool, [entry(n) for n in range(1, 6)])
    outside = tmp_path / "checkpoints"
    code, out, err = await accord(
        capsys, "audit", "checkpoint", "--key", str(key), "--out", str(outside)
    )
    assert code == 0, err
    assert out.startswith("checkpoint at record 5: ")
    assert (await take_checkpoint(pool, key, None, as_writer=True)) is None  # nothing new

    # Someone with the owner's rights removes the last two records and fixes the head, so the
    # chain itself looks whole; the checkpoint kept outside the database does not agree.
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute("DELETE FROM audit_log WHERE record_id > 3")
        await conn.execute("DELETE FROM audit_checkpoints")
        await conn.execute(
            "UPDATE audit_chain_head SET record_id = 3,"
            " hash = (SELECT hash FROM audit_log WHERE record_id = 3)"
        )
    assert (await verify_log(pool)).ok  # without the outside copy, nothing to see

    code, out, _ = await accord(
        capsys,
        "audit",
        "verify",
        "--checkpoint-dir",
        str(outside),
        "--public-key",
        f"{key}.pub",
    )
    assert code == 1
    assert "checkpoint at record 5" in out
    assert "the log ends at record 3: records after it were removed" in out


async def test_a_checkpoint_folder_not_made_yet_holds_no_checkpoints(
    pool: asyncpg.Pool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The auditor makes its checkpoint folder with its first checkpoint, minutes after it
    starts: until then, verifying against the folder finds none, which is no error."""
    await append(pool, [entry(n) for n in range(1, 4)])
    not_yet = tmp_path / "audit-checkpoints"

    code, out, err = await accord(capsys, "audit", "verify", "--checkpoint-dir", str(not_yet))

    assert (code, err) == (0, "")
    assert out.splitlines()[1:] == ["no checkpoints to check (see accord audit checkpoint)"]
    code, _, err = await accord(capsys, "audit", "verify", "--checkpoint-dir", f"{not_yet}/x/y")
    assert (code, err) == (0, "")


async def test_a_forged_checkpoint_is_refused_against_the_trusted_key(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    trusted, forger = tmp_path / "trusted.pem", tmp_path / "forger.pem"
    trusted.write_bytes(new_private_key_pem())
    forger.write_bytes(new_private_key_pem())
    await append(pool, [entry(1)])
    forged = await take_checkpoint(pool, forger, tmp_path, as_writer=True)
    assert forged is not None

    from accord.auditor.domain.checkpoints import load_private_key

    public = load_private_key(trusted.read_bytes()).public_key()
    report = await verify_log(pool, trusted_key=public)
    assert [c.problem for c in report.checkpoints] == [
        f"signed by key {forged.key_id}, not the trusted key"
    ]


async def test_queries_filter_and_page_in_log_order(pool: asyncpg.Pool) -> None:
    await append(pool, [entry(n) for n in range(1, 26)])
    await append(pool, [entry(99, outcome="failure", target="ldap", actor="urn:accord/prov")])

    page = await log_store.query(pool, Filters(correlation_id="corr-1"), limit=4)
    assert [r["subject"] for r in page] == ["u-10", "u-11", "u-12", "u-13"]
    rest = await log_store.query(
        pool, Filters(correlation_id="corr-1"), after=page[-1]["record_id"], limit=100
    )
    assert len(page) + len(rest) == 10
    failed = await log_store.query(
        pool, Filters(outcome="failure", target="ldap", actor="urn:accord/prov")
    )
    assert [r["subject"] for r in failed] == ["u-99"]
    assert failed[0]["payload"]["display_name"] == "Zoë \u00e9\u4e16"
    until = await log_store.query(
        pool, Filters(until=datetime(2026, 11, 26, 9, 0, 3, tzinfo=UTC)), limit=100
    )
    assert {r["subject"] for r in until} == {"u-1", "u-2"}


async def test_without_audit_tables_the_cli_says_so(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", fresh_database)
    code, out, err = await accord(capsys, "audit", "verify")
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "accord: error: no audit tables in this database: has the auditor run?"
    ]
