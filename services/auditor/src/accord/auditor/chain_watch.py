"""The auditor's periodic verification of its chain: the records appended since the last
round, every ACCORD_AUDIT_VERIFY_INTERVAL_S (domain.watching decides, this reads).

The last verified record (id and hash) is kept in memory. After a start the first rounds
walk from the latest signed checkpoint in the database (its signature verified, against
the auditor's own signing key when it has one), else from the chain's first record; each
round reads at most ROUND_RECORDS records in one read-only snapshot, and a round that
stopped short of the head is followed by the next after CATCH_UP_S, so a large log is
caught up without holding a transaction or the event loop for long. A round that cannot
read the log (the database down) is counted as `error` and tried again next interval: the
service goes on. `accord audit verify` remains the full check: it walks every record and
holds the checkpoints kept outside the database against them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from accord.auditor.adapters import log_store
from accord.auditor.chain_metrics import ChainMetrics
from accord.auditor.domain.chain import canonical_time
from accord.auditor.domain.checkpoints import Checkpoint, load_private_key, signature_valid
from accord.auditor.domain.watching import Outcome, Position, RoundCheck, before_chain
from accord.runtime.service import Runtime

log = logging.getLogger(__name__)

#: Records one round verifies at most (about a fifth of a second of hashing).
ROUND_RECORDS = 10_000
#: Rows read at a time (the event loop runs other work between reads).
FETCH_ROWS = 1_000
#: The pause before the next round while the rounds catch up with the head.
CATCH_UP_S = 1.0


class ChainWatch:
    """Verifies the chain a round at a time, from the last verified record."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        metrics: ChainMetrics,
        *,
        signing_key_file: Path | None = None,
        limit: int = ROUND_RECORDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pool = pool
        self.metrics = metrics
        self.signing_key_file = signing_key_file
        self.limit = limit
        self.clock = clock
        self.position: Position | None = None
        """The last verified record; None until the first round has read where to start."""

    async def round(self) -> Outcome | None:
        """One round, counted; None when the log could not be read (counted as `error`)."""
        try:
            outcome = await self._walk()
        except Exception as error:  # a database outage, a key file gone: next round again
            log.warning(
                "audit chain not verified; trying again next round",
                extra={"error": type(error).__name__},
            )
            self.metrics.errored()
            return None
        self.metrics.verified(outcome, self.clock())
        if outcome.first_break is not None:
            log.error(
                "audit chain verification FAILED: run accord audit verify",
                extra={
                    "record_id": outcome.first_break.record_id,
                    "reason": outcome.first_break.reason,
                },
            )
        return outcome

    async def every(self, seconds: float, stop: asyncio.Event) -> None:
        """A round now, then every `seconds` (sooner while catching up) until stop."""
        while not stop.is_set():
            outcome = await self.round()
            pause = CATCH_UP_S if outcome is not None and outcome.behind else seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)

    async def _walk(self) -> Outcome:
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            head = await log_store.head(conn)
            chained_from = head["chained_from"]
            start = self.position or await self._start(conn, chained_from)
            stored = None
            if start.record_id >= chained_from:
                stored = await log_store.hash_at(conn, start.record_id)
            check = RoundCheck(
                start,
                chained_from=chained_from,
                head_id=head["record_id"],
                head_hash=head["hash"],
                stored_hash=stored,
                limit=self.limit,
            )
            async for rows in log_store.chained_rows(
                conn, after=start.record_id, until=check.until, batch=FETCH_ROWS
            ):
                check.feed(rows)
                if check.broken:
                    break
            outcome = check.end()
        self.position = outcome.position
        return outcome

    async def _start(self, conn: asyncpg.Connection, chained_from: int) -> Position:
        """The latest signed checkpoint whose signature verifies, else before the chain."""
        latest = await latest_checkpoint(conn)
        if latest is None:
            return before_chain(chained_from)
        if not signature_valid(latest, await self._trusted_key()):
            log.warning(
                "the latest audit checkpoint's signature does not verify: verifying the whole"
                " chain (accord audit verify checks the checkpoints)",
                extra={"record_id": latest.record_id, "key_id": latest.key_id},
            )
            return before_chain(chained_from)
        return Position(latest.record_id, latest.hash)

    async def _trusted_key(self) -> Ed25519PublicKey | None:
        """The auditor's own signing key's public half; None: the checkpoint's own key."""
        if self.signing_key_file is None:
            return None
        pem = await asyncio.to_thread(self.signing_key_file.read_bytes)
        return load_private_key(pem).public_key()


async def latest_checkpoint(conn: asyncpg.Connection) -> Checkpoint | None:
    """The newest checkpoint kept in the database, with its signature and key."""
    row = await conn.fetchrow(
        "SELECT record_id, hash, created_at, key_id, signature, public_key"
        " FROM audit_checkpoints ORDER BY record_id DESC LIMIT 1"
    )
    if row is None:
        return None
    return Checkpoint(
        record_id=row["record_id"],
        hash=row["hash"],
        created_at=canonical_time(row["created_at"]),
        key_id=row["key_id"],
        signature=row["signature"],
        public_key=row["public_key"],
    )


def hook(
    seconds: float, metrics: ChainMetrics, signing_key_file: Path | None
) -> Callable[[Runtime], Coroutine[Any, Any, None]]:
    """The auditor's background task verifying its chain every `seconds` (0: never)."""

    async def verify_chain(runtime: Runtime) -> None:
        if seconds <= 0:
            log.info("ACCORD_AUDIT_VERIFY_INTERVAL_S=0: no periodic verification of the chain")
            await runtime.stopping.wait()  # a background task that returns stops the service
            return
        watch = ChainWatch(runtime.pool, metrics, signing_key_file=signing_key_file)
        await watch.every(seconds, runtime.stopping)

    return verify_chain
