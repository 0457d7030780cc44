"""Runs the stream aggregates inside the auditor's event loop, restarting them after a crash.

faust runs as a background task of the auditor: its Kafka consumer has a thread of its own,
the agents share the auditor's loop, and no signal handler is installed (the auditor owns
SIGTERM and stops faust through `stopping`). A failing faust never stops audit recording:
it is logged and started again, with back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from accord.auditor.aggregates.app import AggregatesConfig, StreamAggregates
from accord.auditor.domain.aggregates import Policy
from accord.auditor.metrics import AuditorMetrics
from accord.auditor.settings import AuditorSettings
from accord.runtime.service import Runtime

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 60.0


def config_from(settings: AuditorSettings) -> AggregatesConfig:
    """The aggregates' configuration from the auditor's settings."""
    return AggregatesConfig(
        policy=Policy(
            grace_s=settings.audit_aggregates_grace_s,
            horizon_s=settings.audit_aggregates_horizon_s,
        ),
        session_timeout_s=settings.session_timeout_ms / 1000,
        replication=settings.topic_replication,
    )


async def run(
    build: Callable[[], StreamAggregates],
    stopping: asyncio.Event,
    *,
    retry_s: float = 5.0,
) -> None:
    """Serve a StreamAggregates from `build` until `stopping`; build anew after a failure."""
    delay = retry_s
    while not stopping.is_set():
        try:
            aggregates = build()
            await aggregates.serve(stopping)
        except Exception:
            log.exception("stream aggregates failed; starting again", extra={"in_s": delay})
        if stopping.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), delay)
        delay = min(delay * 2, MAX_BACKOFF_S)


def hook(
    settings: AuditorSettings, metrics: AuditorMetrics
) -> Callable[[Runtime], Coroutine[Any, Any, None]]:
    """The auditor's background task that runs the aggregates until the service stops."""
    config = config_from(settings)
    if settings.log_level.upper() != "DEBUG":
        # faust and mode narrate every start, rebalance and stop at INFO; the aggregates log
        # what matters (taken over, window published) themselves.
        for name in ("faust", "mode"):
            logging.getLogger(name).setLevel(logging.WARNING)

    async def stream_aggregates(runtime: Runtime) -> None:
        await run(lambda: StreamAggregates(config, metrics), runtime.stopping)

    return stream_aggregates
