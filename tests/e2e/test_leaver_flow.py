"""Leavers: deactivation disables every account, deletion removes them."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from accord.events import Publisher, UserCreated, UserDeactivated, UserDeleted
from accord.stack.platform import Platform

from .conftest import api_client, audit_events, eventually, no_account, scim_users

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


async def saga_outcome(platform: Platform, correlation_id: str) -> list[dict[str, Any]] | None:
    records = await audit_events(platform, correlation_id=correlation_id)
    types = {r["event_type"] for r in records}
    return records if {"saga.started", "saga.completed"} <= types else None


async def test_deactivation_disables_and_deletion_removes_the_account(
    platform: Platform, kafka_bootstrap: str, unique: str
) -> None:
    user_name = f"leaver.{unique}"
    async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as publisher:
        joined = await publisher.publish(
            UserCreated(user_id=f"e-{unique}", user_name=user_name), sequence=1
        )
        await eventually(
            lambda: saga_outcome(platform, joined.correlationid), what="the joiner saga"
        )
        account = (await scim_users(platform, user_name))[0]
        assert account["active"] is True

        left = await publisher.publish(
            UserDeactivated(user_id=f"e-{unique}", reason="leave of absence"), sequence=2
        )
        records = await eventually(
            lambda: saga_outcome(platform, left.correlationid), what="the leaver saga"
        )
        started = next(r for r in records if r["event_type"] == "saga.started")
        assert started["payload"]["saga_type"] == "leaver"
        assert started["payload"]["targets"] == ["scim-demo"]
        requested = [r for r in records if r["event_type"] == "provision.requested"]
        assert [r["payload"]["operation"] for r in requested] == ["disable"]
        disabled = await scim_users(platform, user_name)
        assert disabled[0]["id"] == account["id"]
        assert disabled[0]["active"] is False

        deleted = await publisher.publish(
            UserDeleted(user_id=f"e-{unique}", reason="left the company"), sequence=3
        )

        # Disabled at once (it already is), deleted once the retention period (2 s) is over.
        await no_account(platform, user_name)

        async def both_sagas_audited() -> list[dict[str, Any]] | None:
            # The account goes from the target before the second saga's completion reaches
            # the audit log (provisioner -> orchestrator -> auditor).
            records = await audit_events(platform, correlation_id=deleted.correlationid)
            done = [r for r in records if r["event_type"] == "saga.completed"]
            return records if len(done) >= 2 else None

        records = await eventually(both_sagas_audited, what="both leaver sagas in the audit log")
        operations = [
            r["payload"]["operation"] for r in records if r["event_type"] == "provision.requested"
        ]
        assert operations == ["disable", "delete"]
        completed = [r for r in records if r["event_type"] == "saga.completed"]
        assert len(completed) == 2


async def test_a_deactivated_identity_without_accounts_starts_no_saga(
    platform: Platform, kafka_bootstrap: str, unique: str
) -> None:
    # Contractors get no birthright account (accord up's rules), so nothing to disable.
    async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as publisher:
        joined = await publisher.publish(
            UserCreated(
                user_id=f"e-{unique}", user_name=f"temp.{unique}", department="Contractors"
            ),
            sequence=1,
        )
        await eventually(
            lambda: saga_outcome(platform, joined.correlationid), what="the empty joiner saga"
        )
        left = await publisher.publish(UserDeactivated(user_id=f"e-{unique}"), sequence=2)

    async def inactive() -> bool:
        async with api_client(platform, "orchestrator") as client:
            entry = (await client.get(f"/v1/identities/e-{unique}")).json()
        return bool(entry.get("status") == "inactive")

    await eventually(inactive, what="the deactivation applied")
    # The saga would have been written in the same transaction as the status.
    conn = await asyncpg.connect(platform.database_url)
    try:
        leavers = await conn.fetchval(
            "SELECT count(*) FROM orchestrator.sagas WHERE subject_id = $1 AND saga_type = $2",
            f"e-{unique}",
            "leaver",
        )
    finally:
        await conn.close()
    assert leavers == 0
    assert left.type == "user.deactivated"
