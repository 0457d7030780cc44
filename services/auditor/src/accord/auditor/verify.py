"""Verifying the audit log: the whole hash chain, its head, and signed checkpoints."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from accord.auditor.adapters import log_store
from accord.auditor.domain.chain import GENESIS, Break, Verification
from accord.auditor.domain.checkpoints import Checkpoint, key_id, signature_valid

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class CheckpointResult:
    """One checkpoint held against the log."""

    source: str
    record_id: int
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass
class Report:
    """What verify found."""

    head_id: int
    chained_from: int
    checked: int
    seconds: float
    first_break: Break | None
    checkpoints: list[CheckpointResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.first_break is None and all(c.ok for c in self.checkpoints)


async def verify_log(
    pool: asyncpg.Pool,
    *,
    checkpoints: Sequence[tuple[str, Checkpoint]] = (),
    trusted_key: Ed25519PublicKey | None = None,
    progress: Progress | None = None,
) -> Report:
    """Walk the chain from its first record to the head, then hold the checkpoints (the
    database's and the given ones) against it. One consistent snapshot throughout."""
    started = time.perf_counter()
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        head = await log_store.head(conn)
        walk = Verification()
        walk.start_after(head["chained_from"] - 1, GENESIS)
        async for rows in log_store.chained_rows(
            conn, after=head["chained_from"] - 1, until=head["record_id"]
        ):
            walk.feed(rows)
            if progress is not None:
                progress(walk.last_id, head["record_id"])
            if walk.first_break is not None:
                break
        walk.against_head(head["record_id"], head["hash"])
        stored = [("database", c) for c in await log_store.stored_checkpoints(conn)]
        results = [
            await _check(conn, source, checkpoint, head["record_id"], trusted_key)
            for source, checkpoint in [*stored, *checkpoints]
        ]
    return Report(
        head_id=head["record_id"],
        chained_from=head["chained_from"],
        checked=walk.checked,
        seconds=time.perf_counter() - started,
        first_break=walk.first_break,
        checkpoints=results,
    )


async def _check(
    conn: asyncpg.Connection,
    source: str,
    checkpoint: Checkpoint,
    head_id: int,
    trusted: Ed25519PublicKey | None,
) -> CheckpointResult:
    def result(problem: str | None) -> CheckpointResult:
        return CheckpointResult(source, checkpoint.record_id, problem)

    if trusted is not None and checkpoint.key_id != key_id(trusted):
        return result(f"signed by key {checkpoint.key_id}, not the trusted key")
    if not signature_valid(checkpoint, trusted):
        return result("its signature does not verify")
    if checkpoint.record_id > head_id:
        return result(f"the log ends at record {head_id}: records after it were removed")
    stored = await log_store.hash_at(conn, checkpoint.record_id)
    if stored != checkpoint.hash:
        return result(f"record {checkpoint.record_id} no longer has the checkpointed hash")
    return result(None)
