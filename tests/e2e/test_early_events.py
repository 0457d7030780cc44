"""Identity events that arrive before their identity wait for it and are applied in order."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from accord.events import Publisher, UserCreated, UserDeactivated, UserDeleted, UserUpdated
from accord.stack.platform import Platform

from .conftest import api_client, audit_events, eventually, scim_users

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


async def identity(platform: Platform, user_id: str) -> dict[str, Any] | None:
    async with api_client(platform, "orchestrator") as client:
        response = await client.get(f"/v1/identities/{user_id}")
    return response.json() if response.status_code == 200 else None


async def test_an_update_and_a_deactivation_before_the_joiner_are_applied_after_it(
    platform: Platform, kafka_bootstrap: str, unique: str
) -> None:
    user_id = f"e-{unique}"
    async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as publisher:
        # Sequence 3 and 2 first, the creation (1) last: the worst order Kafka may deliver.
        await publisher.publish(UserDeactivated(user_id=user_id, reason="on leave"), sequence=3)
        await publisher.publish(
            UserUpdated(user_id=user_id, user_name=f"grace.{unique}", title="Admiral"), sequence=2
        )

        async def recorded_early() -> bool:
            records = await audit_events(platform, subject=user_id)
            return {"user.updated", "user.deactivated"} <= {r["event_type"] for r in records}

        await eventually(recorded_early, what="the early events to be consumed")
        assert await identity(platform, user_id) is None
        await publisher.publish(
            UserCreated(user_id=user_id, user_name=f"grace.{unique}", title="Captain"), sequence=1
        )

    async def applied() -> dict[str, Any] | None:
        entry = await identity(platform, user_id)
        return entry if entry and entry["sequence"] == 3 else None

    entry = await eventually(applied, what="the parked events applied")
    assert entry["profile"]["title"] == "Admiral"
    assert entry["status"] == "inactive"
    accounts = await eventually(
        lambda: scim_users(platform, f"grace.{unique}"), what="the joiner's account"
    )
    # Provisioned as the identity is now: promoted, and not active.
    assert accounts[0]["title"] == "Admiral"
    assert accounts[0]["active"] is False


async def test_a_leaver_before_the_joiner_gets_no_account(
    platform: Platform, kafka_bootstrap: str, unique: str
) -> None:
    user_id = f"e-{unique}"
    async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as publisher:
        await publisher.publish(
            UserDeleted(user_id=user_id, reason="contract cancelled"), sequence=2
        )

        async def parked() -> bool:
            records = await audit_events(platform, subject=user_id, type="user.deleted")
            return bool(records)

        await eventually(parked, what="the early deletion to be consumed")
        created = await publisher.publish(
            UserCreated(user_id=user_id, user_name=f"gone.{unique}"), sequence=1
        )

    async def deleted() -> dict[str, Any] | None:
        entry = await identity(platform, user_id)
        return entry if entry and entry["status"] == "deleted" else None

    await eventually(deleted, what="the deletion applied")
    records = await audit_events(platform, correlation_id=created.correlationid)
    assert "saga.started" not in {r["event_type"] for r in records}
    assert await scim_users(platform, f"gone.{unique}") == []


async def test_a_stale_update_after_a_newer_one_changes_nothing(
    platform: Platform, kafka_bootstrap: str, unique: str
) -> None:
    user_id = f"e-{unique}"
    async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as publisher:
        await publisher.publish(UserCreated(user_id=user_id, user_name=f"ada.{unique}"), sequence=1)
        await publisher.publish(
            UserUpdated(user_id=user_id, user_name=f"ada.{unique}", title="New"), sequence=5
        )

        async def newest() -> bool:
            entry = await identity(platform, user_id)
            return bool(entry and entry["sequence"] == 5)

        await eventually(newest, what="the newer update")
        late = await publisher.publish(
            UserUpdated(user_id=user_id, user_name=f"ada.{unique}", title="Old"), sequence=4
        )

    async def late_consumed() -> bool:
        # The orchestrator's inbox holds every event it has taken, applied or skipped.
        conn = await asyncpg.connect(platform.database_url)
        try:
            return bool(
                await conn.fetchval(
                    "SELECT count(*) FROM orchestrator.inbox WHERE event_id = $1", late.id
                )
            )
        finally:
            await conn.close()

    await eventually(late_consumed, what="the orchestrator to take the late update")
    entry = await identity(platform, user_id)
    assert entry is not None
    assert entry["profile"]["title"] == "New"
    assert entry["sequence"] == 5
