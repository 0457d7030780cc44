"""A SIGKILLed orchestrator loses nothing and duplicates nothing."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from typing import Any

import httpx
import pytest

from accord.events import Envelope, Publisher, UserCreated
from accord.stack.platform import Platform

from .conftest import api_client, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

JOINERS = 100


async def target_accounts(platform: Platform, prefix: str) -> Counter[str]:
    """How many accounts the demo target holds per userName starting with prefix."""
    async with httpx.AsyncClient(
        base_url=f"{platform.scim.base_url}/v2",
        headers={"Authorization": f"Bearer {platform.scim.bearer_token}"},
        timeout=10,
    ) as client:
        response = await client.get(
            "/Users", params={"filter": f'userName sw "{prefix}"', "count": "1000"}
        )
        response.raise_for_status()
        resources: list[dict[str, Any]] = response.json().get("Resources", [])
    return Counter(r["userName"] for r in resources)


async def joiner_sagas(platform: Platform, user_ids: set[str]) -> dict[str, str]:
    """Status of the joiner saga of each of these identities."""
    found: dict[str, str] = {}
    async with api_client(platform, "orchestrator") as client:
        cursor = None
        while True:
            params = {"saga_type": "joiner", "limit": "500"}
            if cursor is not None:
                params["cursor"] = str(cursor)
            page = (await client.get("/v1/sagas", params=params)).json()
            for saga in page["items"]:
                if saga["subject_id"] in user_ids:
                    assert saga["subject_id"] not in found, "two joiner sagas for one identity"
                    found[saga["subject_id"]] = saga["status"]
            cursor = page["next_cursor"]
            if cursor is None:
                return found


async def test_sigkill_in_the_middle_of_100_joiners(
    platform: Platform, kafka_bootstrap: str, unique: str
) -> None:
    prefix = f"crash{unique}."
    users = [
        UserCreated(user_id=f"c-{unique}-{i}", user_name=f"{prefix}{i}") for i in range(JOINERS)
    ]
    published: list[Envelope] = []

    async def publish_all() -> None:
        async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as pub:
            for user in users:
                published.append(await pub.publish(user, sequence=1))
                await asyncio.sleep(0.01)

    publishing = asyncio.create_task(publish_all())
    await asyncio.sleep(0.5)  # some joiners are in flight, most are still to come
    status = await platform.kill_service("orchestrator")
    assert status == -signal.SIGKILL
    await publishing
    await platform.start_service("orchestrator")

    ids = {u.user_id for u in users}

    async def all_completed() -> dict[str, str] | None:
        sagas = await joiner_sagas(platform, ids)
        done = len(sagas) == JOINERS and set(sagas.values()) == {"completed"}
        return sagas if done else None

    await eventually(all_completed, timeout=90, what=f"{JOINERS} completed joiner sagas")
    accounts = await eventually(
        lambda: _all(target_accounts(platform, prefix)), what="every account in the target"
    )
    assert sorted(accounts) == sorted(u.user_name for u in users)
    assert set(accounts.values()) == {1}, "a user has more than one account"
    assert len(published) == JOINERS


async def _all(counting: Any) -> Counter[str] | None:
    accounts: Counter[str] = await counting
    return accounts if len(accounts) == JOINERS else None
