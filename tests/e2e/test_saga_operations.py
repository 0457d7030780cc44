"""Operators see failed sagas with their reasons, retry them and cancel them (API and CLI)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from accord.events import Publisher, UserCreated
from accord.runtime.security.roles import Role
from accord.stack.platform import Platform

from .conftest import accord_cli, api_client, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def target(platform: Platform) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"{platform.scim.base_url}/v2",
        headers={"Authorization": f"Bearer {platform.scim.bearer_token}"},
        timeout=10,
    )


async def saga_of(platform: Platform, user_id: str, status: str) -> dict[str, Any] | None:
    async with api_client(platform, "orchestrator") as client:
        page = (await client.get("/v1/sagas", params={"subject_id": user_id})).json()
    found = [s for s in page["items"] if s["saga_type"] == "joiner" and s["status"] == status]
    return found[0] if found else None


async def test_a_failed_joiner_is_shown_retried_and_completes(
    platform: Platform, kafka_bootstrap: str, unique: str
) -> None:
    user_name = f"taken.{unique}"
    # Someone else's account already holds the userName: the provisioner must refuse it.
    async with target(platform) as scim:
        squatter = await scim.post(
            "/Users", json={"userName": user_name, "externalId": f"other-{unique}"}
        )
        assert squatter.status_code == 201
    user_id = f"e-{unique}"
    async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as publisher:
        await publisher.publish(UserCreated(user_id=user_id, user_name=user_name), sequence=1)

    failed = await eventually(
        lambda: saga_of(platform, user_id, "failed"), what="the joiner saga to fail"
    )
    (step,) = failed["steps"]
    assert step["status"] == "failed"
    assert "belongs to another identity" in step["error"]
    assert step["attempts"] == 1

    code, out, err = await accord_cli(platform, "sagas", "show", failed["saga_id"])
    assert code == 0, err
    assert json.loads(out)["status"] == "failed"
    code, out, _ = await accord_cli(platform, "sagas", "list", "--status", "failed", "--json")
    assert code == 0
    assert failed["saga_id"] in out

    reader = await platform.issue_token("auditor-2", {Role.AUDITOR})
    async with api_client(platform, "orchestrator", reader) as client:
        denied = await client.post(f"/v1/sagas/{failed['saga_id']}/retry")
    assert denied.status_code == 403

    async with target(platform) as scim:
        assert (await scim.delete(f"/Users/{squatter.json()['id']}")).status_code == 204
    async with api_client(platform, "orchestrator") as client:
        retried = await client.post(f"/v1/sagas/{failed['saga_id']}/retry")
        assert retried.status_code == 200, retried.text
        assert retried.json()["status"] == "running"

    completed = await eventually(
        lambda: saga_of(platform, user_id, "completed"), what="the retried saga to complete"
    )
    assert completed["steps"][0]["attempts"] == 2
    async with api_client(platform, "orchestrator") as client:
        again = await client.post(f"/v1/sagas/{failed['saga_id']}/retry")
        cancel = await client.post(
            f"/v1/sagas/{failed['saga_id']}/cancel", json={"reason": "too late"}
        )
    assert again.status_code == 409
    assert cancel.status_code == 409
    code, _, err = await accord_cli(platform, "sagas", "cancel", failed["saga_id"], "--reason", "x")
    assert code == 1
    assert "completed and cannot be cancelled" in err


async def test_an_operator_cancels_a_failed_saga(
    platform: Platform, kafka_bootstrap: str, unique: str
) -> None:
    user_name = f"blocked.{unique}"
    async with target(platform) as scim:
        await scim.post("/Users", json={"userName": user_name, "externalId": f"x-{unique}"})
    user_id = f"e-{unique}"
    async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as publisher:
        await publisher.publish(UserCreated(user_id=user_id, user_name=user_name), sequence=1)
    failed = await eventually(
        lambda: saga_of(platform, user_id, "failed"), what="the joiner saga to fail"
    )
    code, out, err = await accord_cli(
        platform, "sagas", "cancel", failed["saga_id"], "--reason", "duplicate person"
    )
    assert code == 0, err
    assert "cancelled" in out
    async with api_client(platform, "orchestrator") as client:
        shown = (await client.get(f"/v1/sagas/{failed['saga_id']}")).json()
    assert shown["status"] == "cancelled"
