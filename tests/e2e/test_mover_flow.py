"""Movers follow their birthright and attributes; reactivation re-enables; timers survive."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from accord.events import (
    Publisher,
    UserCreated,
    UserDeactivated,
    UserDeleted,
    UserReactivated,
    UserUpdated,
)
from accord.stack.platform import Platform

from .conftest import eventually, scim_users

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


async def account_where(platform: Platform, user_name: str, **expected: Any) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        found = await scim_users(platform, user_name)
        assert len(found) <= 1, f"{len(found)} accounts for {user_name}"
        if found and all(found[0].get(k) == v for k, v in expected.items()):
            return found[0]
        return None

    return await eventually(probe, what=f"{user_name}'s account with {expected}")


async def no_account(platform: Platform, user_name: str) -> None:
    async def gone() -> bool:
        return await scim_users(platform, user_name) == []

    await eventually(gone, what=f"{user_name}'s account to go")


async def test_a_mover_keeps_updates_loses_and_regains_birthright_accounts(
    platform: Platform, kafka_bootstrap: str, unique: str
) -> None:
    # accord up's rules: everyone but Contractors gets an account in scim-demo.
    user_id, user_name = f"m-{unique}", f"mover.{unique}"
    base = {"user_id": user_id, "user_name": user_name, "department": "Engineering"}
    async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as hr:
        await hr.publish(UserCreated(**base, title="Engineer"), sequence=1)
        first = await account_where(platform, user_name, title="Engineer")

        await hr.publish(UserUpdated(**base, title="Staff Engineer"), sequence=2)
        promoted = await account_where(platform, user_name, title="Staff Engineer")
        assert promoted["id"] == first["id"]

        contractor = {**base, "department": "Contractors"}
        await hr.publish(UserUpdated(**contractor, title="Consultant"), sequence=3)
        await no_account(platform, user_name)

        await hr.publish(UserUpdated(**base, title="Engineer again"), sequence=4)
        back = await account_where(platform, user_name, title="Engineer again", active=True)
        assert back["id"] != first["id"]


async def test_reactivation_enables_the_disabled_account(
    platform: Platform, kafka_bootstrap: str, unique: str
) -> None:
    user_id, user_name = f"r-{unique}", f"back.{unique}"
    async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as hr:
        await hr.publish(UserCreated(user_id=user_id, user_name=user_name), sequence=1)
        account = await account_where(platform, user_name, active=True)
        await hr.publish(UserDeactivated(user_id=user_id, reason="sabbatical"), sequence=2)
        await account_where(platform, user_name, active=False)
        await hr.publish(UserReactivated(user_id=user_id, reason="back"), sequence=3)
        enabled = await account_where(platform, user_name, active=True)
    assert enabled["id"] == account["id"]


async def test_a_retention_timer_fires_after_a_restart(
    platform: Platform, kafka_bootstrap: str, unique: str
) -> None:
    user_id, user_name = f"t-{unique}", f"timer.{unique}"
    async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as hr:
        await hr.publish(UserCreated(user_id=user_id, user_name=user_name), sequence=1)
        await account_where(platform, user_name, active=True)
        await hr.publish(UserDeleted(user_id=user_id), sequence=2)
        await account_where(platform, user_name, active=False)  # disabled at once
    await platform.stop_service("orchestrator")
    await asyncio.sleep(3)  # the 2 s retention runs out while the orchestrator is down
    assert len(await scim_users(platform, user_name)) == 1
    await platform.start_service("orchestrator")
    await no_account(platform, user_name)
