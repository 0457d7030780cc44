"""The connector contract against a real SCIM 2.0 service provider (scim2-server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr

from accord.provisioner.adapters.scim import ScimConnector
from accord.provisioner.testing import Account, ConnectorContract, Harness
from accord.stack.network import free_port
from accord.stack.scim_target import ScimTarget

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def scim_target() -> AsyncIterator[ScimTarget]:
    async with ScimTarget() as started:
        yield started


class TestScimConnectorContract(ConnectorContract):
    """scim2-server."""

    @pytest_asyncio.fixture(loop_scope="session")
    async def harness(self, scim_target: ScimTarget) -> AsyncIterator[Harness]:
        async for ready in scim_harness(scim_target):
            yield ready


async def scim_harness(target: ScimTarget) -> AsyncIterator[Harness]:
    url = f"{target.base_url}/v2"
    connector = ScimConnector("contract-scim", url, SecretStr(target.bearer_token))
    headers = {"Authorization": f"Bearer {target.bearer_token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as admin:

        async def accounts(user_name: str) -> list[Account]:
            listing = (await admin.get("/Users", params={"count": "1000"})).json()
            return [
                Account(u["id"], u["userName"], u.get("active", True), u.get("title"))
                for u in listing.get("Resources", [])
                if u["userName"] == user_name
            ]

        async def plant(user_name: str, owner: str | None) -> None:
            body: dict[str, Any] = {"userName": user_name}
            if owner:
                body["externalId"] = owner
            (await admin.post("/Users", json=body)).raise_for_status()

        async def retitle(user_name: str, title: str) -> None:
            (account,) = await accounts(user_name)
            patch = {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "title", "value": title}],
            }
            (await admin.patch(f"/Users/{account.account_id}", json=patch)).raise_for_status()

        def unreachable() -> ScimConnector:
            url = f"http://127.0.0.1:{free_port('127.0.0.1')}/v2"  # nothing listens there
            return ScimConnector("dead-scim", url, SecretStr("x"), timeout_s=2)

        yield Harness(connector, accounts, plant, retitle, unreachable)
    await connector.close()
