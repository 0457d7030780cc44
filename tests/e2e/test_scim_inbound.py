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

from .conftest import api_client, audit_events, eventually, no_account, target_account

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


#: Planted in rejected input: no error body may repeat it.
PLANTED = "zzPlanted7Q"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


@pytest.mark.parametrize(
    "attributes",
    [
        {"userName": "nul\x00name"},
        {"displayName": "Ada\x00"},
        {"name": {"givenName": "A\x00da", "familyName": "Lovelace"}},
        {"externalId": "00u\x00"},
        {ENTERPRISE: {"department": "Engi\x00neering"}},
        {"nickName": "\x00"},
    ],
    ids=["userName", "displayName", "givenName", "externalId", "department", "nickName"],
)
async def test_a_nul_in_any_user_value_is_invalid_value(
    platform: Platform, idp: httpx.AsyncClient, unique: str, attributes: dict[str, Any]
) -> None:
    user_name = f"nul.{unique}"
    created = await idp.post("/Users", json=new_user(user_name, **attributes))
    assert_scim_error(created, 400, "invalidValue")

    # The same values by PUT and by PATCH, on a user that exists.
    user = (await idp.post("/Users", json=new_user(user_name))).json()
    replaced = await idp.put(f"/Users/{user['id']}", json=new_user(user_name, **attributes))
    assert_scim_error(replaced, 400, "invalidValue")
    patched = await idp.patch(
        f"/Users/{user['id']}",
        json={"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": attributes}]},
    )
    assert_scim_error(patched, 400, "invalidValue")
    assert (await idp.get(f"/Users/{user['id']}")).json()["meta"] == user["meta"]


async def test_a_nul_in_a_group_name_or_a_path_is_a_scim_400(
    idp: httpx.AsyncClient, unique: str
) -> None:
    group = await idp.post("/Groups", json={"schemas": [GROUP], "displayName": f"g\x00{unique}"})
    assert_scim_error(group, 400, "invalidValue")
    # scim2-server repeats the URL in a Location header: with a NUL in it, no answer came.
    for path in ("/Users/a%00b", "/Groups/a%00b", "/Users/a%0d%0aX-Injected:%201"):
        assert_scim_error(await idp.get(path), 400, "invalidPath")
        assert_scim_error(await idp.delete(path), 400, "invalidPath")
    searched = await idp.get("/Users", params={"filter": 'userName eq "a\x00"'})
    assert_scim_error(searched, 400, "invalidValue")
    # A NUL written as the filter's own escape reaches the storage: it matches nobody.
    for attribute in ("userName", "externalId", "displayName"):
        escaped = await idp.get("/Users", params={"filter": f'{attribute} eq "a\\u0000"'})
        assert escaped.status_code == 200, escaped.text
        assert escaped.json()["totalResults"] == 0


async def test_a_manager_without_ref_is_taken_and_answered_with_ref(
    platform: Platform, idp: httpx.AsyncClient, unique: str
) -> None:
    boss = await idp.post("/Users", json=new_user(f"boss.{unique}"))
    assert boss.status_code == 201, boss.text
    boss_id = boss.json()["id"]
    # Entra ID and Okta send the manager's id only (RFC 7643 4.3: value and $ref RECOMMENDED).
    report = await idp.post(
        "/Users",
        json=new_user(
            f"report.{unique}", **{ENTERPRISE: {"department": "Eng", "manager": {"value": boss_id}}}
        ),
    )
    assert report.status_code == 201, report.text
    answered = report.json()[ENTERPRISE]["manager"]
    assert answered == {"value": boss_id, "$ref": boss.json()["meta"]["location"]}
    fetched = await idp.get(f"/Users/{report.json()['id']}")
    assert fetched.json()[ENTERPRISE]["manager"] == answered

    # The same by PATCH, as Okta sends a manager change.
    other = (await idp.post("/Users", json=new_user(f"other.{unique}"))).json()
    patched = await idp.patch(
        f"/Users/{report.json()['id']}",
        json={
            "schemas": [PATCH_OP],
            "Operations": [
                {"op": "replace", "path": f"{ENTERPRISE}:manager", "value": {"value": other["id"]}}
            ],
        },
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()[ENTERPRISE]["manager"]["$ref"] == other["meta"]["location"]

    async def registered_manager(expected: str) -> str | None:
        async with api_client(platform, "orchestrator") as client:
            response = await client.get(f"/v1/identities/{report.json()['id']}")
        manager = response.json()["profile"].get("manager_id") if response.is_success else None
        return manager if manager == expected else None

    await eventually(lambda: registered_manager(other["id"]), what="the new manager registered")

    # Entra ID's PATCH of the manager path carries the bare id.
    entra = await idp.patch(
        f"/Users/{report.json()['id']}",
        json={
            "schemas": [PATCH_OP],
            "Operations": [{"op": "Add", "path": f"{ENTERPRISE}:manager", "value": boss_id}],
        },
    )
    assert entra.status_code == 200, entra.text
    assert entra.json()[ENTERPRISE]["manager"] == answered
    await eventually(lambda: registered_manager(boss_id), what="the first manager again")


async def test_error_details_never_repeat_the_request(idp: httpx.AsyncClient, unique: str) -> None:
    taken = await idp.post("/Users", json=new_user(f"{PLANTED}.{unique}"))
    assert taken.status_code == 201, taken.text
    answers = [
        await idp.get(f"/Users/{PLANTED}"),
        await idp.delete(f"/Groups/{PLANTED}"),
        await idp.get(f"/{PLANTED}"),
        await idp.post("/Users", json={**new_user(f"x.{unique}"), PLANTED: "x"}),
        await idp.post("/Users", json=new_user(f"{PLANTED}.{unique}".upper())),
        await idp.get("/Users", params={"filter": f'{PLANTED} eq "x"'}),
        await idp.get("/Users", params={"filter": f"userName eq {PLANTED}"}),
        await idp.get("/Users", params={"sortBy": PLANTED}),
        await idp.patch(
            f"/Users/{taken.json()['id']}",
            json={"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": PLANTED}]},
        ),
    ]
    for answer in answers:
        assert answer.status_code >= 400, answer.text
        assert answer.json()["schemas"] == [ERROR]
        assert PLANTED.lower() not in answer.text.lower(), answer.text


def assert_scim_error(response: httpx.Response, status: int, scim_type: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == SCIM_JSON
    body = response.json()
    assert body["schemas"] == [ERROR]
    assert (body["status"], body["scimType"]) == (str(status), scim_type)
    assert "\x00" not in response.text
    assert "location" not in response.headers
