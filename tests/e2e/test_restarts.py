"""A stopped service loses nothing: events published meanwhile are handled once it is back."""

from __future__ import annotations

import pytest

from accord.events import Publisher, UserCreated
from accord.stack.platform import Platform

from .conftest import audit_events, eventually, scim_users

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


async def test_provisioner_stopped_with_sigterm_catches_up_after_restart(
    platform: Platform, kafka_bootstrap: str, unique: str
) -> None:
    await platform.stop_service("provisioner")
    assert platform.services["provisioner"].returncode == 0, "SIGTERM should stop it cleanly"
    user = UserCreated(user_id=f"e-{unique}", user_name=f"grace.{unique}", given_name="Grace")
    async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as publisher:
        envelope = await publisher.publish(user, sequence=1)

    async def requested() -> bool:
        records = await audit_events(platform, correlation_id=envelope.correlationid)
        return any(r["event_type"] == "provision.requested" for r in records)

    await eventually(requested, what="the orchestrator to request provisioning")
    assert await scim_users(platform, user.user_name) == []

    await platform.start_service("provisioner")
    accounts = await eventually(
        lambda: scim_users(platform, user.user_name), what="the account after the restart"
    )
    assert len(accounts) == 1

    async def completed() -> bool:
        records = await audit_events(platform, correlation_id=envelope.correlationid)
        return any(r["event_type"] == "saga.completed" for r in records)

    await eventually(completed, what="the saga to complete")
