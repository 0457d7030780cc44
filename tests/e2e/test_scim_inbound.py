"""The inbound SCIM server as identity providers use it, end to end to a real target.

The sequences are the ones Okta and Entra ID provisioning send (their documented request
shapes): look a user up by userName, create it, PATCH attributes, PATCH active false, manage
group members, delete. Each must reach the demo SCIM target through the sagas.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from accord.runtime.security.roles import Role
from accord.stack.platform import Platform

from .conftest import audit_events, eventually, no_account, target_account

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SCIM_JSON = "application/scim+json"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def scim_token(platform: Platform) -> str:
    return await platform.issue_token("okta", {Role.SCIM_CLIENT})


@pytest_asyncio.fixture(loop_scope="session")
async def idp(platform: Platform, scim_token: str) -> AsyncIterator[httpx.AsyncClient]:
    """A SCIM client as an identity provider holds it."""
    async with httpx.AsyncClient(
        base_url=f"{platform.endpoints()['orchestrator']}/scim/v2",
        headers={"Authorization": f"Bearer {scim_token}", "Content-Type": SCIM_JSON},
        timeout=10,
    ) as client:
        yield client


def new_user(user_name: str, **extra: Any) -> dict[str, Any]:
    return {
        "schemas": [CORE, ENTERPRISE],
        "userName": user_name,
        "externalId": f"00u{user_name}",
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "displayName": "Ada Lovelace",
        "emails": [{"primary": True, "value": _address(user_name), "type": "work"}],
        "active": True,
        ENTERPRISE: {"department": "Engineering", "employeeNumber": "1815"},
        **extra,
    }


def _address(user_name: str) -> str:
    return user_name if "@" in user_name else f"{user_name}@example.com"


async def test_okta_sequence_reaches_the_target(
    platform: Platform, idp: httpx.AsyncClient, unique: str
) -> None:
    user_name = f"okta.{unique}"
    # Okta first looks the user up by userName.
    lookup = await idp.get("/Users", params={"filter": f'userName eq "{user_name}"'})
    assert lookup.status_code == 200
    assert lookup.json()["totalResults"] == 0

    created = await idp.post("/Users", json=new_user(user_name))
    assert created.status_code == 201, created.text
    user = created.json()
    assert user["id"]
    assert "password" not in user
    assert created.headers["ETag"] == user["meta"]["version"]
    account = await target_account(platform, user_name, active=True)

    found = await idp.get("/Users", params={"filter": f'userName eq "{user_name.upper()}"'})
    assert [u["id"] for u in found.json()["Resources"]] == [user["id"]]

    # Okta's PATCH: op replace with a value object, no path.
    patched = await idp.patch(
        f"/Users/{user['id']}",
        json={
            "schemas": [PATCH_OP],
            "Operations": [
                {"op": "replace", "value": {"title": "Analyst", "displayName": "A. L."}}
            ],
        },
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["title"] == "Analyst"
    moved = await target_account(platform, user_name, title="Analyst", displayName="A. L.")
    assert moved["id"] == account["id"]

    deactivated = await idp.patch(
        f"/Users/{user['id']}",
        json={"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]},
    )
    assert deactivated.status_code == 200, deactivated.text
    await target_account(platform, user_name, active=False)

    registry = await audit_events(platform, subject=user["id"])
    types = [r["event_type"] for r in registry]
    assert {"user.created", "user.updated", "user.deactivated"} <= set(types)


async def test_entra_sequence_reaches_the_target(
    platform: Platform, idp: httpx.AsyncClient, unique: str
) -> None:
    user_name = f"entra.{unique}@example.com"
    created = await idp.post("/Users", json=new_user(user_name))
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    await target_account(platform, user_name, active=True)

    # Entra ID: capitalised ops, one operation per attribute, extension paths by URN.
    patched = await idp.patch(
        f"/Users/{user_id}",
        json={
            "schemas": [PATCH_OP],
            "Operations": [
                {"op": "Replace", "path": "title", "value": "Engineer"},
                {"op": "Replace", "path": f"{ENTERPRISE}:department", "value": "Research"},
                {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "x@example.org"},
            ],
        },
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body[ENTERPRISE]["department"] == "Research"
    assert body["emails"][0]["value"] == "x@example.org"
    await target_account(platform, user_name, title="Engineer")

    group = await idp.post(
        "/Groups",
        json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": unique},
    )
    assert group.status_code == 201, group.text
    group_id = group.json()["id"]
    added = await idp.patch(
        f"/Groups/{group_id}",
        json={
            "schemas": [PATCH_OP],
            "Operations": [{"op": "Add", "path": "members", "value": [{"value": user_id}]}],
        },
    )
    assert added.status_code in (200, 204), added.text
    removed = await idp.patch(
        f"/Groups/{group_id}",
        json={
            "schemas": [PATCH_OP],
            "Operations": [{"op": "Remove", "path": f'members[value eq "{user_id}"]'}],
        },
    )
    assert removed.status_code in (200, 204), removed.text
    listed = await idp.get(f"/Groups/{group_id}")
    assert listed.json().get("members") in (None, [])

    async def membership_events() -> list[dict[str, Any]] | None:
        records = await audit_events(platform, subject=group_id)
        changes = [r["payload"] for r in records if r["event_type"] == "group.members_changed"]
        return changes if len(changes) == 2 else None

    changes = await eventually(membership_events, what="two group.members_changed events")
    assert [c["added"] for c in changes] == [[user_id], []]
    assert [c["removed"] for c in changes] == [[], [user_id]]

    deleted = await idp.delete(f"/Users/{user_id}")
    assert deleted.status_code == 204
    assert (await idp.get(f"/Users/{user_id}")).status_code == 404

    await no_account(platform, user_name)  # after the retention period


async def test_protocol_errors_are_scim_errors(
    platform: Platform, idp: httpx.AsyncClient, unique: str
) -> None:
    base = f"{platform.endpoints()['orchestrator']}/scim/v2"
    async with httpx.AsyncClient(base_url=base, timeout=10) as anonymous:
        refused = await anonymous.get("/Users")
    assert refused.status_code == 401
    assert refused.json()["schemas"] == [ERROR]
    assert "Bearer" in refused.headers["WWW-Authenticate"]

    auditor = await platform.issue_token("auditor-1", {Role.AUDITOR})
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {auditor}"}, timeout=10
    ) as outsider:
        forbidden = await outsider.get("/Users")
    assert forbidden.status_code == 403
    assert forbidden.json()["schemas"] == [ERROR]

    user_name = f"dup.{unique}"
    first = await idp.post("/Users", json=new_user(user_name))
    assert first.status_code == 201
    again = await idp.post("/Users", json=new_user(user_name.upper()))
    assert again.status_code == 409
    assert again.json()["scimType"] == "uniqueness"

    user = first.json()
    stale = await idp.put(
        f"/Users/{user['id']}",
        json=new_user(user_name, title="x"),
        headers={"If-Match": 'W/"0"'},
    )
    assert stale.status_code == 412
    fresh = await idp.put(
        f"/Users/{user['id']}",
        json=new_user(user_name, title="x"),
        headers={"If-Match": user["meta"]["version"]},
    )
    assert fresh.status_code == 200, fresh.text

    bad_filter = await idp.get("/Users", params={"filter": 'nosuchattribute eq "x"'})
    assert bad_filter.status_code == 400
    assert bad_filter.json()["scimType"] == "invalidFilter"
    broken = await idp.get("/Users", params={"filter": 'userName eq "unterminated'})
    assert broken.status_code == 400
    assert broken.json()["scimType"] == "invalidFilter"

    missing = await idp.get("/Users/does-not-exist")
    assert missing.status_code == 404
    assert missing.json()["schemas"] == [ERROR]


async def test_listing_filters_sorts_pages_and_projects(
    idp: httpx.AsyncClient, unique: str
) -> None:
    names = [f"page{i}.{unique}" for i in (3, 1, 2)]
    for name in names:
        created = await idp.post("/Users", json=new_user(name, title=f"t{name[4]}"))
        assert created.status_code == 201, created.text
    query = {
        "filter": f'userName sw "page" and userName ew ".{unique}" and title pr',
        "sortBy": "userName",
        "sortOrder": "descending",
        "startIndex": "2",
        "count": "1",
        "attributes": "userName",
    }
    page = (await idp.get("/Users", params=query)).json()
    assert page["totalResults"] == 3
    assert page["startIndex"] == 2
    assert [u["userName"] for u in page["Resources"]] == [f"page2.{unique}"]
    assert "title" not in page["Resources"][0]

    searched = await idp.post(
        "/Users/.search",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": f'emails[type eq "work" and value co "page1.{unique}"]',
            "excludedAttributes": ["emails"],
        },
    )
    assert searched.status_code == 200, searched.text
    (only,) = searched.json()["Resources"]
    assert only["userName"] == f"page1.{unique}"
    assert "emails" not in only


async def test_a_deleted_users_name_can_be_given_again(idp: httpx.AsyncClient, unique: str) -> None:
    user_name = f"rehire.{unique}"
    first = await idp.post("/Users", json=new_user(user_name))
    assert first.status_code == 201, first.text
    assert (await idp.delete(f"/Users/{first.json()['id']}")).status_code == 204

    again = await idp.post("/Users", json=new_user(user_name))

    assert again.status_code == 201, again.text
    assert again.json()["id"] != first.json()["id"]
