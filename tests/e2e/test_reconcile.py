"""Reconciliation: out-of-band changes in a real target are found, reported and repaired."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from accord.events import Publisher, UserCreated, UserDeleted
from accord.stack.platform import Platform

from .conftest import (
    accord_cli,
    api_client,
    audit_events,
    eventually,
    no_account,
    target_account,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def demo_target(platform: Platform) -> httpx.AsyncClient:
    """The demo scim2-server, as an administrator changing it behind Accord's back."""
    return httpx.AsyncClient(
        base_url=f"{platform.scim.base_url}/v2",
        headers={"Authorization": f"Bearer {platform.scim.bearer_token}"},
        timeout=5,
    )


async def reconcile(platform: Platform, *options: str) -> dict[str, Any]:
    status, out, err = await accord_cli(platform, "reconcile", "scim-demo", "--json", *options)
    assert status == 0, err
    summary: dict[str, Any] = json.loads(out)
    return summary


async def findings(platform: Platform, run_id: str) -> list[dict[str, Any]]:
    """The run's events in the audit log, once its completion and every finding it counts
    are there (they travel on other topics than the completion: any may be recorded first)."""

    async def probe() -> list[dict[str, Any]] | None:
        records = await audit_events(platform, correlation_id=run_id)
        types = [r["event_type"] for r in records]
        done = [r["payload"] for r in records if r["event_type"] == "reconciliation.completed"]
        if not done:
            return None
        counted = done[0]
        drifts = counted["drifted"] + counted["missing"]
        if types.count("account.orphan_detected") < counted["orphans"]:
            return None
        return records if types.count("account.drift_detected") >= drifts else None

    return await eventually(probe, what=f"the events of {run_id}")


async def test_reconcile_finds_an_orphan_and_drift_and_fix_repairs_the_drift(
    platform: Platform, kafka_bootstrap: str, unique: str
) -> None:
    user_id, user_name = f"e-{unique}", f"drift.{unique}"
    async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as publisher:
        await publisher.publish(
            UserCreated(user_id=user_id, user_name=user_name, title="Analyst"), sequence=1
        )
    account = await target_account(platform, user_name, title="Analyst")
    orphan_name = f"orphan.{uuid.uuid4().hex[:8]}"
    async with demo_target(platform) as admin:
        # Out of band: someone creates an account by hand and edits Accord's one.
        planted = await admin.post("/Users", json={"userName": orphan_name})
        planted.raise_for_status()
        orphan_id = planted.json()["id"]
        edited = await admin.patch(
            f"/Users/{account['id']}",
            json={
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "title", "value": "Boss"}],
            },
        )
        edited.raise_for_status()

    found = await reconcile(platform)

    assert found["drifted"] >= 1
    assert found["orphans"] >= 1
    assert found["repaired"] == 0
    records = await findings(platform, found["run_id"])
    drift = [
        r["payload"]
        for r in records
        if r["event_type"] == "account.drift_detected" and r["payload"]["user_id"] == user_id
    ]
    assert drift == [
        {
            "user_id": user_id,
            "target": "scim-demo",
            "run_id": found["run_id"],
            "kind": "attributes",
            "account_id": account["id"],
            "differences": [{"field": "title", "expected": "Analyst", "actual": "Boss"}],
            "repair_requested": False,
        }
    ]
    orphans = [
        r["payload"]
        for r in records
        if r["event_type"] == "account.orphan_detected" and r["payload"]["account_id"] == orphan_id
    ]
    assert [(o["user_name"], o["reason"]) for o in orphans] == [(orphan_name, "unlinked")]
    # Nothing was changed without --fix.
    await target_account(platform, user_name, title="Boss")

    fixed = await reconcile(platform, "--fix")

    assert fixed["repaired"] >= 1
    repaired = await target_account(platform, user_name, title="Analyst")
    assert repaired["id"] == account["id"]
    records = await findings(platform, fixed["run_id"])
    assert [
        (r["event_type"], r["payload"]["operation"])
        for r in records
        if r["event_type"].startswith("account.provision") and r["payload"]["user_id"] == user_id
    ] == [("account.provisioned", "update")]
    # Orphans nobody asked Accord to delete are reported, never deleted.
    async with demo_target(platform) as admin:
        assert (await admin.get(f"/Users/{orphan_id}")).status_code == 200
    again = await reconcile(platform)
    records = await findings(platform, again["run_id"])
    assert not [r for r in records if r["payload"].get("user_id") == user_id]


async def test_fix_deletes_an_account_held_for_an_identity_that_left(
    platform: Platform, kafka_bootstrap: str, unique: str
) -> None:
    """An account for a deleted identity (restored from a backup, say) is `not_entitled`:
    reported, and removed by --fix, since Accord's last word for it was a deletion."""
    user_id, user_name = f"e-{unique}", f"left.{unique}"
    async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as publisher:
        await publisher.publish(UserCreated(user_id=user_id, user_name=user_name), sequence=1)
        await target_account(platform, user_name)
        await publisher.publish(UserDeleted(user_id=user_id, reason="left"), sequence=2)
    await no_account(platform, user_name)  # deleted once the 2 s retention is over
    async with demo_target(platform) as admin:
        restored = await admin.post(
            "/Users", json={"userName": user_name, "externalId": user_id, "active": True}
        )
        restored.raise_for_status()

    found = await reconcile(platform)
    records = await findings(platform, found["run_id"])
    assert [
        r["payload"]["reason"]
        for r in records
        if r["event_type"] == "account.orphan_detected" and r["payload"]["owner"] == user_id
    ] == ["not_entitled"]
    await target_account(platform, user_name)  # reported only, without --fix

    fixed = await reconcile(platform, "--fix")

    await no_account(platform, user_name)
    records = await findings(platform, fixed["run_id"])
    assert [
        (r["event_type"], r["payload"]["operation"])
        for r in records
        if r["event_type"].startswith("account.provision") and r["payload"]["user_id"] == user_id
    ] == [("account.provisioned", "delete")]


async def test_reconcile_of_an_unknown_target_is_one_readable_line(platform: Platform) -> None:
    status, out, err = await accord_cli(platform, "reconcile", "no-such-target")

    assert status == 1
    assert out == ""
    assert err.startswith("accord: error: no target named 'no-such-target'")
    assert len(err.strip().splitlines()) == 1


async def test_the_provisioner_api_shows_target_health_and_reconciliation_runs(
    platform: Platform,
) -> None:
    summary = await reconcile(platform)

    async with api_client(platform, "provisioner") as client:
        health = (await client.get("/v1/targets/scim-demo/health")).json()
        unknown = await client.get("/v1/targets/no-such-target/health")
        runs = (await client.get("/v1/reconciliations", params={"target": "scim-demo"})).json()

    assert health == {"name": "scim-demo", "healthy": True, "error": None}
    assert unknown.status_code == 404
    assert runs[0]["run_id"] == summary["run_id"]
    assert (runs[0]["status"], runs[0]["trigger"], runs[0]["fix"]) == ("completed", "cli", False)
    assert runs[0]["summary"]["accounts"] == summary["accounts"]
