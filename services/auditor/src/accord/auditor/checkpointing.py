"""Periodic signed checkpoints of the chain head: in the database and as files outside it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from accord.auditor.adapters import log_store
from accord.auditor.domain.checkpoints import Checkpoint, load_private_key, sign

log = logging.getLogger(__name__)


async def take_checkpoint(
    pool: asyncpg.Pool, key_file: Path, out_dir: Path | None, *, as_writer: bool
) -> Checkpoint | None:
    """Sign the current head (None when it is already checkpointed or the log is empty)."""
    key = load_private_key(await asyncio.to_thread(key_file.read_bytes))
    head = await log_store.head(pool)
    latest = await log_store.latest_checkpoint(pool)
    if head["record_id"] < head["chained_from"] or (
        latest is not None and latest["record_id"] >= head["record_id"]
    ):
        return None
    checkpoint = sign(key, head["record_id"], head["hash"], datetime.now(UTC))
    await log_store.insert_checkpoint(pool, checkpoint, as_writer=as_writer)
    if out_dir is not None:
        await asyncio.to_thread(write_file, out_dir, checkpoint)
    return checkpoint


def write_file(out_dir: Path, checkpoint: Checkpoint) -> Path:
    """Write checkpoint-<record_id>.json atomically; returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"checkpoint-{checkpoint.record_id:012d}.json"
    partial = path.with_suffix(".json.partial")
    partial.write_text(checkpoint.to_json())
    os.replace(partial, path)
    return path


async def every(
    pool: asyncpg.Pool,
    key_file: Path,
    out_dir: Path | None,
    seconds: float,
    stop: asyncio.Event,
    *,
    as_writer: bool,
) -> None:
    """Checkpoint every `seconds` until stop; a failure is logged and tried next time."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
        if stop.is_set():
            return
        try:
            made = await take_checkpoint(pool, key_file, out_dir, as_writer=as_writer)
        except (OSError, ValueError, asyncpg.PostgresError) as error:
            log.warning("checkpoint not taken", extra={"error": f"{type(error).__name__}"})
            continue
        if made is not None:
            log.info(
                "audit chain checkpoint",
                extra={"record_id": made.record_id, "key_id": made.key_id},
            )
