"""What the benchmark does to the platform's services: profile them, start more instances."""

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


async def start_instance(
    platform: Platform, service: str, label: str, extra_env: dict[str, str] | None = None
) -> ManagedProcess:
    """Another process of `service` like the platform's (same environment, so the same
    consumer groups), on a port of its own, ready; `extra_env` on top (another targets file)."""
    port = free_port()
    env = {
        **platform.service_env(),
        f"ACCORD_{service.upper()}_PORT": str(port),
        **(extra_env or {}),
    }
    process = ManagedProcess(
        label,
        [sys.executable, "-m", f"accord.{service}"],
        env=env,
        log_path=platform.config.home / "logs" / f"{label}.log",
    )
    await process.start()
    # One client for every probe: a new httpx client builds an SSL context each time, which
    # costs enough CPU to slow the start it waits for.
    async with httpx.AsyncClient(timeout=2) as client:

        async def probe() -> None:
            response = await client.get(f"http://127.0.0.1:{port}/readyz")
            response.raise_for_status()

        await wait_until_ready(process, probe, timeout=60, what=label)
    return process


async def start_second_instances(
    platform: Platform, services: tuple[str, ...]
) -> dict[str, ManagedProcess]:
    """A second instance of each service, started together, by label (`<service>-2`)."""
    labels = [f"{name}-2" for name in services]
    started = await asyncio.gather(
        *(
            start_instance(platform, name, label)
            for name, label in zip(services, labels, strict=True)
        ),
        return_exceptions=True,
    )
    processes = {
        label: p for label, p in zip(labels, started, strict=True) if isinstance(p, ManagedProcess)
    }
    failed = [error for error in started if isinstance(error, BaseException)]
    if failed:
        await asyncio.gather(*(p.stop(timeout=30) for p in processes.values()))
        raise failed[0]
    return processes
