"""Movers follow their birthright and attributes; reactivation re-enables; timers survive."""

from __future__ import annotations

import asyncio

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

from .conftest import no_account, scim_users, target_account

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


async def test_a_mover_keeps_updates_loses_and_regains_birthright_accounts(
    platform: Platform, kafka_bootstrap: str, unique: str
) -> None:
    # accord up's rules: everyone but Contractors gets an account in scim-demo.
    user_id, user_name = f"m-{unique}", f"mover.{unique}"
    base = {"user_id": user_id, "user_name": user_name, "department": "Engineering"}
    async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as hr:
        await hr.publish(UserCreated(**base, title="Engineer"), sequence=1)
        first = await target_account(platform, user_name, title="Engineer")

        await hr.publish(UserUpdated(**base, title="Staff Engineer"), sequence=2)
        promoted = await target_account(platform, user_name, title="Staff Engineer")
        assert promoted["id"] == first["id"]

        contractor = {**base, "department": "Contractors"}
        await hr.publish(UserUpdated(**contractor, title="Consultant"), sequence=3)
        await no_account(platform, user_name)

        await hr.publish(UserUpdated(**base, title="Engineer again"), sequence=4)
        back = await target_account(platform, user_name, title="Engineer again", active=True)
        assert back["id"] != first["id"]


async def test_reactivation_enables_the_disabled_account(
    platform: Platform, kafka_bootstrap: str, unique: str
) -> None:
    user_id, user_name = f"r-{unique}", f"back.{unique}"
    async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as hr:
        await hr.publish(UserCreated(user_id=user_id, user_name=user_name), sequence=1)
        account = await target_account(platform, user_name, active=True)
        await hr.publish(UserDeactivated(user_id=user_id, reason="sabbatical"), sequence=2)
        await target_account(platform, user_name, active=False)
        await hr.publish(UserReactivated(user_id=user_id, reason="back"), sequence=3)
        enabled = await target_account(platform, user_name, active=True)
    assert enabled["id"] == account["id"]


async def test_a_retention_timer_fires_after_a_restart(
    platform: Platform, kafka_bootstrap: str, unique: str
) -> None:
    user_id, user_name = f"t-{unique}", f"timer.{unique}"
    async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as hr:
        await hr.publish(UserCreated(user_id=user_id, user_name=user_name), sequence=1)
        await target_account(platform, user_name, active=True)
        await hr.publish(UserDeleted(user_id=user_id), sequence=2)
        await target_account(platform, user_name, active=False)  # disabled at once
    await platform.stop_service("orchestrator")
    await asyncio.sleep(3)  # the 2 s retention runs out while the orchestrator is down
    assert len(await scim_users(platform, user_name)) == 1
    await platform.start_service("orchestrator")
    await no_account(platform, user_name)
