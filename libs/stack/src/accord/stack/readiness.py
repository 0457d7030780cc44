"""Poll a readiness probe while watching that the child process has not died."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from accord.stack.errors import StartupError
from accord.stack.process import ManagedProcess

Probe = Callable[[], Awaitable[None]]


async def _attempt(process: ManagedProcess, probe: Probe, limit: float) -> BaseException | None:
    """Run `probe` once; return None if it passed, else why not."""
    probe_task = asyncio.ensure_future(probe())
    # Racing the probe against the exit reports a crashed child at once, not after the
    # probe's own network timeout.
    exit_task = asyncio.ensure_future(process.wait())
    try:
        await asyncio.wait(
            {probe_task, exit_task}, timeout=limit, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        probe_task.cancel()
        exit_task.cancel()
        await asyncio.gather(probe_task, exit_task, return_exceptions=True)
    if not probe_task.cancelled():
        return probe_task.exception()
    return TimeoutError("the probe did not finish")


async def wait_until_ready(
    process: ManagedProcess,
    probe: Probe,
    *,
    timeout: float,  # noqa: ASYNC109 - also bounds how long the process is watched
    what: str,
    interval: float = 0.05,
) -> None:
    """Retry `probe` until it returns without raising; StartupError on exit or timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last_error: BaseException | None = None
    while True:
        if not process.running:
            raise StartupError(f"{what} exited before it was ready: {process.describe_exit()}")
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise StartupError(
                f"{what} was not ready within {timeout:.1f} s (last probe error: {last_error!r}):"
                f" {process.describe_exit()}"
            )
        error = await _attempt(process, probe, remaining)
        if error is None:
            return
        # Until the deadline any failure only means "not yet"; the last one explains a timeout.
        last_error = error
        if process.running:
            await asyncio.sleep(interval)


async def start_and_wait(
    process: ManagedProcess,
    probe: Probe,
    *,
    timeout: float,  # noqa: ASYNC109 - passed on to wait_until_ready
    what: str,
) -> float:
    """Start `process`, wait until `probe` passes, stop it again on failure; return seconds."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    await process.start()
    try:
        await wait_until_ready(process, probe, timeout=timeout, what=what)
    except BaseException:
        # Also on cancellation: a half-started child must not linger.
        await process.stop(timeout=5.0)
        raise
    return loop.time() - started
