"""Background housekeeping: failed sign-ins older than any lockout window are dropped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

import asyncpg

from accord.authn.adapters import lockouts
from accord.authn.domain.lockout import LockoutPolicy
from accord.runtime.service import Hook, Runtime

log = logging.getLogger(__name__)

EVERY_S = 60.0


def pruner(policy: LockoutPolicy, every_s: float = EVERY_S) -> Hook:
    """A background hook that forgets failures outside the window, once a minute."""

    async def prune_sign_in_failures(runtime: Runtime) -> None:
        while not runtime.stopping.is_set():
            try:
                async with runtime.pool.acquire() as conn:
                    dropped = await lockouts.prune_failures(
                        conn, policy.window_start(datetime.now(UTC))
                    )
                if dropped:
                    log.info("old failed sign-ins dropped", extra={"count": dropped})
            except (OSError, asyncpg.PostgresError) as error:
                log.warning("pruning failed sign-ins failed", extra={"error": str(error)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(runtime.stopping.wait(), every_s)

    return prune_sign_in_failures
