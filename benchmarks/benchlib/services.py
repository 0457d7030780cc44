"""What the benchmark does to the platform's services: profile them, add a provisioner."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import httpx

from accord.stack.network import free_port
from accord.stack.platform import Platform
from accord.stack.process import ManagedProcess
from accord.stack.readiness import wait_until_ready
from benchlib import profiling
from benchlib.phases import Bench, Publish, run_phase

PROFILED = ("provisioner", "orchestrator", "auditor")
MEASURED = ("orchestrator", "provisioner", "authz", "auditor", "authn")
"""The services the benchmarks start and measure: the five of every figure recorded so far
(docs/benchmarks.md). The platform's sixth, the sources service, is left out: it takes no
part in a joiner's flow, but it projects every user.* event, so starting it would shift the
CPU, memory and throughput figures against the earlier runs. Measure it on purpose."""


async def profiled_phase(
    platform: Platform,
    bench: Bench,
    *,
    rate: float,
    seconds: int,
    publish: Publish,
    drain_s: float,
    folder: Path,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A fixed-rate phase while py-spy samples the services for `seconds`; returns the
    phase's summary and the top frames of each service (written next to the results)."""
    bench.say(f"profile: {rate:.0f} joiners/s with py-spy on {', '.join(PROFILED)}")
    outputs = {name: folder / f"profile-{name}.txt" for name in PROFILED}
    spies = [
        asyncio.create_task(
            profiling.record(platform.services[name].pid or 0, seconds, outputs[name])
        )
        for name in PROFILED
    ]
    await asyncio.sleep(0.5)  # py-spy attaches before the load starts
    phase = await run_phase(
        bench,
        "profile",
        f"fixed rate {rate:.0f}/s under py-spy",
        int(rate * (seconds + 1)),
        publish,
        drain_s,
    )
    tops: dict[str, Any] = {}
    for name, spy in zip(PROFILED, spies, strict=True):
        error = await spy
        if error is not None:
            tops[name] = {"error": error}
            bench.say(f"  profile of {name}: {error}")
            continue
        tops[name] = profiling.write_top(outputs[name], folder / f"profile-{name}-top.txt", name)
        bench.say(f"  profile of {name}: {tops[name]['samples']} samples")
    return phase, tops


async def start_second_provisioner(platform: Platform) -> ManagedProcess:
    """Another provisioner process like the platform's, same environment, its own port."""
    port = free_port()
    env = {**platform.service_env(), "ACCORD_PROVISIONER_PORT": str(port)}
    process = ManagedProcess(
        "provisioner-2",
        [sys.executable, "-m", "accord.provisioner"],
        env=env,
        log_path=platform.config.home / "logs" / "provisioner-2.log",
    )
    await process.start()
    # One client for every probe: a new httpx client builds an SSL context each time, which
    # costs enough CPU to slow the start it waits for.
    async with httpx.AsyncClient(timeout=2) as client:

        async def probe() -> None:
            response = await client.get(f"http://127.0.0.1:{port}/readyz")
            response.raise_for_status()

        await wait_until_ready(process, probe, timeout=60, what="provisioner-2")
    return process
