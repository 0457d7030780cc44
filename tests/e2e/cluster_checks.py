"""What a fault test checks after a flow of many joiners, each read in a few requests: the
accounts in the demo target, the joiner sagas, the dead-letter topics."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from accord.events import topics
from accord.stack.platform import Platform
from accord.stack.scim_target import ScimTarget

from .conftest import api_client, scim_client

_PAGE = 500


async def accounts(target: ScimTarget, prefix: str) -> Counter[str]:
    """How many accounts a scim2-server holds per userName starting with `prefix`."""
    found: Counter[str] = Counter()
    async with scim_client(target, timeout=10) as client:
        start = 1
        while True:
            params: dict[str, str | int] = {
                "filter": f'userName sw "{prefix}"',
                "startIndex": start,
                "count": _PAGE,
            }
            response = await client.get("/Users", params=params)
            response.raise_for_status()
            page = response.json()
            resources: list[dict[str, Any]] = page.get("Resources", [])
            found.update(r["userName"] for r in resources)
            start += len(resources)
            if not resources or start > page["totalResults"]:
                return found


async def joiner_sagas(platform: Platform) -> dict[str, list[str]]:
    """The statuses of every joiner saga, by subject (one entry each, unless duplicated)."""
    found: dict[str, list[str]] = defaultdict(list)
    async with api_client(platform, "orchestrator") as client:
        cursor: int | None = None
        while True:
            params: dict[str, Any] = {"saga_type": "joiner", "limit": _PAGE}
            if cursor is not None:
                params["cursor"] = cursor
            response = await client.get("/v1/sagas", params=params)
            response.raise_for_status()
            page = response.json()
            for saga in page["items"]:
                found[saga["subject_id"]].append(saga["status"])
            cursor = page["next_cursor"]
            if cursor is None:
                return dict(found)


async def dead_letters(bootstrap_servers: str) -> dict[str, int]:
    """How many records every dead-letter topic of the broker holds (resolutions too)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics(
            [name for name in await admin.list_topics() if topics.is_dlq(name)]
        )
    finally:
        await admin.close()
    partitions = {
        t["topic"]: [TopicPartition(t["topic"], p["partition"]) for p in t["partitions"]]
        for t in described
    }
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None)
    await consumer.start()
    try:
        counts = {}
        for dlq, tps in sorted(partitions.items()):
            starts = await consumer.beginning_offsets(tps)
            ends = await consumer.end_offsets(tps)
            counts[dlq] = sum(ends[tp] - starts[tp] for tp in tps)
        return counts
    finally:
        await consumer.stop()
