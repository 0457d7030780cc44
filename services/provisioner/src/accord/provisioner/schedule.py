"""Scheduled reconciliation: each target with `reconcile_every_s` is reconciled that often.

The schedule survives restarts (the next run is due `reconcile_every_s` after the latest
run started, whoever started it), and with several provisioner instances the advisory lock
lets one of them run it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg

from accord.provisioner.adapters import ledger
from accord.provisioner.reconcile import Reconciler, ReconciliationBusy, ReconciliationFailed
from accord.runtime.service import Runtime

log = logging.getLogger(__name__)


def seconds_until_due(last_started: datetime | None, every_s: float, now: datetime) -> float:
    """How long until the next run is due (0: now)."""
    if last_started is None:
        return 0.0
    return max(0.0, every_s - (now - last_started).total_seconds())


async def keep_reconciling(
    runtime: Runtime,
    reconciler: Callable[[], Reconciler],
    every_s: float,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """Reconcile one target every `every_s` seconds until the service stops."""
    while not runtime.stopping.is_set():
        work = reconciler()
        try:
            last = await ledger.last_run_started(runtime.pool, work.target)
            wait = seconds_until_due(last, every_s, clock())
            if wait == 0:
                summary = await work.run(fix=False, trigger="schedule")
                log.info(
                    "reconciliation completed",
                    extra={"target": work.target, "run_id": summary.run_id},
                )
                wait = every_s
        except ReconciliationBusy:
            wait = min(every_s, 60.0)
        except ReconciliationFailed as error:
            log.warning("scheduled reconciliation failed", extra={"error": str(error)})
            wait = every_s
        except (OSError, asyncpg.PostgresError) as error:
            log.warning("reconciliation schedule: database unavailable: %s", type(error).__name__)
            wait = min(every_s, 30.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.stopping.wait(), timeout=wait)
