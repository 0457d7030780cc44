"""Accord's SCIM lifecycle extension (hire and leave dates) and the core userType and
timezone, over HTTP against the SCIM server's protocol on a real PostgreSQL, with the
registry kept in step: what a client sends is what GET returns and what the profile holds.

The application is scim2-server's, with Accord's provider, service, storage and registry
hook: everything the orchestrator mounts but the authentication (its own tests cover it).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from scim2_server.applications.asgi import ASGIApplication

from accord.events import Profile
from accord.orchestrator.adapters.scim_storage import PostgresScimStorage
from accord.orchestrator.domain.birthright import everyone
from accord.orchestrator.domain.workflow import WorkflowSettings
from accord.orchestrator.scim.app import AccordScimService, provider
from accord.orchestrator.scim.sync import RegistrySync
from accord.runtime import db

pytestmark = pytest.mark.integration

SCHEMA = "orchestrator"
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
LIFECYCLE = "urn:accord:params:scim:schemas:extension:lifecycle:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@pytest_asyncio.fixture(loop_scope="session")
async def dsn(fresh_database: str) -> str:
    await db.migrate(fresh_database, SCHEMA, ["accord.orchestrator.migrations"])
    return fresh_database


@pytest_asyncio.fixture(loop_scope="session")
async def scim(dsn: str) -> AsyncIterator[httpx.AsyncClient]:
    @asynccontextmanager
    async def connect() -> AsyncIterator[asyncpg.Connection]:
        conn = await asyncpg.connect(dsn, server_settings={"search_path": SCHEMA})
        try:
            yield conn
        finally:
            await conn.close()

    described = provider()
    sync = RegistrySync(WorkflowSettings(birthright=everyone(["crm"])), SCHEMA, "urn:test:scim")
    storage = PostgresScimStorage(described, connect, on_change=sync)
    app = ASGIApplication(storage, described, AccordScimService(described))
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://scim.test/v2",
        headers={"Content-Type": "application/scim+json"},
    ) as client:
        yield client


async def registry_profile(dsn: str, user_id: str) -> Profile:
    conn = await asyncpg.connect(dsn, server_settings={"search_path": SCHEMA})
    try:
        raw = await conn.fetchval("SELECT profile FROM identities WHERE user_id = $1", user_id)
    finally:
        await conn.close()
    return Profile.model_validate(json.loads(raw) if isinstance(raw, str) else raw)


async def outbox_types(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn, server_settings={"search_path": SCHEMA})
    try:
        return [r["topic"] for r in await conn.fetch("SELECT topic FROM outbox ORDER BY 1")]
    finally:
        await conn.close()


def new_user(**lifecycle: Any) -> dict[str, Any]:
    return {
        "schemas": [CORE, LIFECYCLE],
        "userName": "ada",
        "userType": "Contractor",
        "timezone": "Europe/Paris",
        LIFECYCLE: lifecycle,
    }


async def test_the_extension_round_trips_and_reaches_the_profile(
    scim: httpx.AsyncClient, dsn: str
) -> None:
    hire, leave = "2025-03-03", "2026-02-27T18:00:00+01:00"
    created = await scim.post("/Users", json=new_user(hireDate=hire, leaveDate=leave))
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    assert created.json()[LIFECYCLE] == {"hireDate": hire, "leaveDate": leave}
    assert LIFECYCLE in created.json()["schemas"]

    fetched = (await scim.get(f"/Users/{user_id}")).json()
    assert fetched[LIFECYCLE] == {"hireDate": hire, "leaveDate": leave}  # a day stays a day
    assert (fetched["userType"], fetched["timezone"]) == ("Contractor", "Europe/Paris")
    profile = await registry_profile(dsn, user_id)
    assert (profile.hire_date, profile.leave_date) == (hire, leave)
    assert (profile.employee_type, profile.time_zone) == ("Contractor", "Europe/Paris")

    patch = {
        "schemas": [PATCH_OP],
        "Operations": [
            {"op": "replace", "path": f"{LIFECYCLE}:hireDate", "value": "2025-04-01"},
            {"op": "replace", "path": "timezone", "value": "Asia/Tokyo"},
            {"op": "remove", "path": f"{LIFECYCLE}:leaveDate"},
        ],
    }
    patched = await scim.patch(f"/Users/{user_id}", json=patch)
    assert patched.status_code == 200, patched.text
    assert patched.json()[LIFECYCLE] == {"hireDate": "2025-04-01"}
    fetched = (await scim.get(f"/Users/{user_id}")).json()
    assert fetched[LIFECYCLE] == {"hireDate": "2025-04-01"}
    profile = await registry_profile(dsn, user_id)
    assert (profile.hire_date, profile.leave_date, profile.time_zone) == (
        "2025-04-01",
        None,
        "Asia/Tokyo",
    )
    # The change is a user.updated, as any attribute's: workflows see it.
    assert (await outbox_types(dsn)).count("user.updated") == 1

    replaced = await scim.put(
        f"/Users/{user_id}", json=new_user(hireDate="2025-05-02T09:00:00-04:00")
    )
    assert replaced.status_code == 200, replaced.text
    profile = await registry_profile(dsn, user_id)
    assert profile.hire_date == "2025-05-02T09:00:00-04:00"


async def test_a_bad_date_is_refused_and_an_unknown_zone_left_out(
    scim: httpx.AsyncClient, dsn: str
) -> None:
    refused = await scim.post("/Users", json=new_user(hireDate="03/03/2025"))
    assert refused.status_code == 400, refused.text
    assert refused.json()["scimType"] in ("invalidValue", "invalidSyntax")

    windows_zone = {**new_user(hireDate="2025-03-03"), "timezone": "W. Europe Standard Time"}
    created = await scim.post("/Users", json=windows_zone)
    assert created.status_code == 201, created.text
    assert created.json()["timezone"] == "W. Europe Standard Time"  # the resource keeps it
    profile = await registry_profile(dsn, created.json()["id"])
    assert (profile.time_zone, profile.hire_date) == (None, "2025-03-03")

    user_id = created.json()["id"]
    bad_patch = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": f"{LIFECYCLE}:hireDate", "value": "soon"}],
    }
    patched = await scim.patch(f"/Users/{user_id}", json=bad_patch)
    assert patched.status_code == 400, patched.text
    assert (await registry_profile(dsn, user_id)).hire_date == "2025-03-03"


async def test_schemas_and_resource_types_list_the_extension(scim: httpx.AsyncClient) -> None:
    schema = (await scim.get(f"/Schemas/{LIFECYCLE}")).json()
    assert schema["id"] == LIFECYCLE
    attributes = {a["name"]: a for a in schema["attributes"]}
    assert {name: a["type"] for name, a in attributes.items()} == {
        "hireDate": "dateTime",
        "leaveDate": "dateTime",
    }
    assert not any(a["required"] for a in attributes.values())
    listed = (await scim.get("/Schemas")).json()["Resources"]
    assert LIFECYCLE in {s["id"] for s in listed}
    user_type = (await scim.get("/ResourceTypes/User")).json()
    assert {"schema": LIFECYCLE, "required": False} in user_type["schemaExtensions"]
