"""The `max-free` phase: `max` with the provisioners pointed at a near-free SCIM target.

scim2-server is a real SCIM implementation and costs a good share of the machine; the
difference between `max-2x` and `max-free` is what the target took, and `max-free` is the
engine's own ceiling on this machine. The platform's provisioner is stopped for the phase
and started again afterwards as it was (the smoke test runs on the shared end-to-end
platform), and the joiners of these phases are checked in the free target, not in
scim2-server.
"""

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
from benchlib.phases import Bench, Publish, run_phase
from benchlib.services import start_instance
from benchlib.target import accounts_of_run

FREE_TARGET = Path(__file__).resolve().parent / "free_target.py"
LABEL = "free-target"
PROVISIONERS = ("provisioner", "provisioner-2")
"""The watched labels of the provisioner's two instances (the phase replaces both)."""


async def start_free_target(platform: Platform) -> tuple[ManagedProcess, str]:
    """The free target as its own process, ready; and its SCIM base URL."""
    port = free_port()
    process = ManagedProcess(
        LABEL,
        [sys.executable, str(FREE_TARGET), "--port", str(port)],
        env=platform.service_env(),
        log_path=platform.config.home / "logs" / f"{LABEL}.log",
    )
    await process.start()
    base_url = f"http://127.0.0.1:{port}/v2"
    async with httpx.AsyncClient(timeout=2) as client:

        async def probe() -> None:
            (await client.get(f"{base_url}/ServiceProviderConfig")).raise_for_status()

        await wait_until_ready(process, probe, timeout=30, what=LABEL)
    return process, base_url


def retargeted(targets_yaml: str, old_url: str, new_url: str) -> str:
    """The platform's targets file with the demo SCIM target's URL replaced."""
    if old_url not in targets_yaml:
        raise ValueError(f"{old_url} is not in the targets file")
    return targets_yaml.replace(old_url, new_url)


async def run_free_phases(
    platform: Platform,
    bench: Bench,
    extra: dict[str, ManagedProcess],
    *,
    warm_up: int,
    burst: int,
    publish: Publish,
    drain_s: float,
    settle_s: float,
) -> dict[str, Any]:
    """warm-up-free and max-free with every provisioner instance pointed at the free target
    (`extra`: the second instances by label; its provisioner-2 is replaced, and stays the
    caller's to stop). Returns the phases, the free target's check and the peak memory of
    every watched process before the free ones stop (free target included); the platform's
    provisioner runs as before when it returns (also on failure)."""
    target, base_url = await start_free_target(platform)
    bench.watched.add(LABEL, target.pid or 0)
    targets_file = platform.config.home / "targets-free.yaml"
    targets_file.write_text(
        retargeted(platform.targets_file.read_text(), f"{platform.scim.base_url}/v2", base_url)
    )
    env = {"ACCORD_TARGETS_FILE": str(targets_file)}
    free_first: ManagedProcess | None = None
    names_before = set(bench.user_names)
    try:
        bench.say(f"max-free: restarting both provisioners against the free target {base_url}")
        await asyncio.gather(
            platform.stop_service("provisioner"), extra[PROVISIONERS[1]].stop(timeout=30)
        )
        free_first, extra[PROVISIONERS[1]] = await asyncio.gather(
            *(_provisioner(platform, label, env) for label in PROVISIONERS)
        )
        bench.watched.add(PROVISIONERS[0], free_first.pid or 0)
        bench.watched.add(PROVISIONERS[1], extra[PROVISIONERS[1]].pid or 0)
        await asyncio.sleep(settle_s)
        phases = {
            "warm-up-free": await run_phase(
                bench, "warm-up-free", "free target, after the restart", warm_up, publish, drain_s
            ),
            "max-free": await run_phase(
                bench,
                "max-free",
                "all at once, 2 instances of each service, free SCIM target",
                burst,
                publish,
                drain_s,
            ),
        }
        bench.say("checking the free target: one account per joiner of its phases")
        check = await accounts_of_run(
            base_url, "free", f"bench.{bench.run}.", bench.user_names - names_before
        )
        bench.say(f"  free target: {check}")
        # Before the free processes go: their peaks are read from the live processes.
        return {"phases": phases, "check": check, "peak_memory_mib": bench.watched.peak_memory()}
    finally:
        # Those joiners are in the free target only: scim2-server's check leaves them out.
        bench.user_names.intersection_update(names_before)
        if free_first is not None:
            await free_first.stop(timeout=30)
        await platform.start_service("provisioner")
        bench.watched.add(PROVISIONERS[0], platform.services["provisioner"].pid or 0)
        await target.stop(timeout=10)
        bench.watched.forget(LABEL)


async def _provisioner(platform: Platform, label: str, env: dict[str, str]) -> ManagedProcess:
    return await start_instance(platform, "provisioner", f"{label}-free", env)
