"""Latency from an inbound SCIM POST /Users to the account in the target.

Starts the whole platform on its real parts (Apache Kafka, one KRaft node, unless
ACCORD_BROKER=tansu; embedded PostgreSQL, scim2-server), creates users one after another
over SCIM as an identity provider would, and reads when each account was provisioned from
the audit log (the provisioner's account.provisioned event time). Prints p50/p90/p99/max.
Usage: python benchmarks/scim_to_account.py [N]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import httpx
from benchlib import brokers
from benchlib.services import MEASURED

from accord.runtime.security.roles import Role
from accord.stack.platform import Platform, PlatformConfig


async def main(count: int) -> None:
    kind = brokers.prepare(None).name
    with tempfile.TemporaryDirectory(prefix="accord-bench-") as home:
        config = PlatformConfig.ephemeral(Path(home), broker=kind, services=MEASURED)
        platform = Platform(config)
        await platform.start()
        try:
            await measure(platform, count)
        finally:
            await platform.stop()


async def measure(platform: Platform, count: int) -> None:
    token = await platform.issue_token("bench-idp", {Role.SCIM_CLIENT})
    base = platform.endpoints()["orchestrator"]
    run = uuid.uuid4().hex[:8]
    posted: dict[str, float] = {}
    async with httpx.AsyncClient(
        base_url=f"{base}/scim/v2", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ) as idp:
        for i in range(count):
            sent = time.time()
            response = await idp.post("/Users", json={"userName": f"bench.{run}.{i}"})
            response.raise_for_status()
            posted[response.json()["id"]] = sent
            await asyncio.sleep(0.05)  # a steady trickle, as an IdP's provisioning sends
    latencies = await provisioned_after(platform, posted)
    report(latencies, count)


async def provisioned_after(platform: Platform, posted: dict[str, float]) -> list[float]:
    """Seconds from each POST to its account.provisioned event, once all are in the log."""
    deadline = time.monotonic() + 120
    async with httpx.AsyncClient(
        base_url=platform.endpoints()["auditor"],
        headers={"Authorization": f"Bearer {platform.admin_token}"},
        timeout=10,
    ) as auditor:
        while True:
            found: dict[str, float] = {}
            after = 0
            while True:
                page = (
                    await auditor.get(
                        "/v1/audit/events",
                        params={"type": "account.provisioned", "after": after, "limit": 1000},
                    )
                ).json()
                for record in page["items"]:
                    subject = record["subject"]
                    if subject in posted and subject not in found:
                        found[subject] = datetime.fromisoformat(record["occurred_at"]).timestamp()
                if not page["items"] or page.get("next_after") is None:
                    break
                after = page["next_after"]
            if len(found) == len(posted) or time.monotonic() > deadline:
                # In the order the users were created, so warm-up shows as such.
                return [found[s] - posted[s] for s in posted if s in found]
            await asyncio.sleep(0.5)


def report(latencies: list[float], count: int) -> None:
    ms = sorted(x * 1000 for x in latencies)
    q = statistics.quantiles(ms, n=100, method="inclusive")
    print(f"SCIM POST /Users -> account in target, {len(ms)}/{count} users")
    print(f"  p50 {q[49]:.0f} ms  p90 {q[89]:.0f} ms  p99 {q[98]:.0f} ms  max {ms[-1]:.0f} ms")
    slow = [(i, round(x * 1000)) for i, x in enumerate(latencies) if x * 1000 > 2 * q[49]]
    print(f"  slower than twice the median (user #, ms): {slow}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100))
