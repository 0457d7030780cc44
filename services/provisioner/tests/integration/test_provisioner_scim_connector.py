"""Contract of the SCIM connector against a real SCIM 2.0 service provider (scim2-server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr

from accord.events import Profile
from accord.provisioner.adapters.scim import ScimConnector
from accord.provisioner.ports import Connector, TargetRejected, TargetUnavailable
from accord.stack.network import free_port
from accord.stack.scim_target import ScimTarget

pytestmark = pytest.mark.integration

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def target() -> AsyncIterator[ScimTarget]:
    async with ScimTarget() as started:
        yield started


def scim_url(target: ScimTarget) -> str:
    return f"{target.base_url}/v2"


@pytest_asyncio.fixture(loop_scope="session")
async def connector(target: ScimTarget) -> AsyncIterator[ScimConnector]:
    scim = ScimConnector("scim-test", scim_url(target), SecretStr(target.bearer_token))
    try:
        yield scim
    finally:
        await scim.close()


@pytest_asyncio.fixture(loop_scope="session")
async def admin(target: ScimTarget) -> AsyncIterator[httpx.AsyncClient]:
    """A plain SCIM client to look at (and seed) the target behind the connector's back."""
    async with httpx.AsyncClient(
        base_url=scim_url(target),
        headers={"Authorization": f"Bearer {target.bearer_token}"},
        timeout=10.0,
    ) as client:
        yield client


async def users_named(admin: httpx.AsyncClient, user_name: str) -> list[dict[str, Any]]:
    """Every user whose userName is exactly this, by listing all users (no filter involved)."""
    response = await admin.get("/Users", params={"count": "1000"})
    response.raise_for_status()
    resources: list[dict[str, Any]] = response.json().get("Resources", [])
    return [u for u in resources if u.get("userName") == user_name]


def profile(user_name: str, **fields: Any) -> Profile:
    return Profile(user_name=user_name, **fields)


def test_the_connector_satisfies_the_port(connector: ScimConnector) -> None:
    port: Connector = connector
    assert port.name == "scim-test"


async def test_ensure_account_creates_a_user_visible_through_the_api(
    connector: ScimConnector, admin: httpx.AsyncClient, unique: str
) -> None:
    user_id = f"e-{unique}"
    wanted = profile(
        f"ada-{unique}",
        given_name="Ada",
        family_name="Lovelace",
        email=f"ada-{unique}@example.org",
        department="Research",
    )

    ref = await connector.ensure_account(user_id, wanted)

    assert ref.already_existed is False
    assert ref.account_id
    response = await admin.get(f"/Users/{ref.account_id}")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == ref.account_id
    assert body["userName"] == f"ada-{unique}"
    assert body["externalId"] == user_id
    assert body["displayName"] == "Ada Lovelace"
    assert body["name"]["givenName"] == "Ada"
    assert body["emails"][0]["value"] == f"ada-{unique}@example.org"
    assert CORE in body["schemas"]
    assert len(await users_named(admin, f"ada-{unique}")) == 1


async def test_a_new_account_costs_one_lookup_and_one_post(
    connector: ScimConnector, unique: str
) -> None:
    sent: list[str] = []

    async def note(request: httpx.Request) -> None:
        sent.append(f"{request.method} {request.url.params.get('filter', '')}".strip())

    connector._client.event_hooks["request"].append(note)

    ref = await connector.ensure_account(f"e-{unique}", profile(f"new-{unique}"))

    assert ref.already_existed is False
    assert sent == [f'GET externalId eq "e-{unique}"', "POST"]


@pytest.mark.parametrize(
    ("status", "body", "conflict"),
    [
        (409, {"scimType": "uniqueness"}, True),
        (409, {}, True),
        (400, {"scimType": "uniqueness"}, True),
        (400, {"scimType": "invalidValue"}, False),
        (400, None, False),
        (400, ["uniqueness"], False),
        (500, {"scimType": "uniqueness"}, False),
    ],
)
def test_a_uniqueness_conflict_is_a_409_or_a_400_saying_uniqueness(
    status: int, body: dict[str, str] | list[str] | None, conflict: bool
) -> None:
    response = (
        httpx.Response(status, json=body) if body is not None else httpx.Response(status, text="x")
    )

    assert ScimConnector._is_uniqueness_conflict(response) is conflict


async def test_ensure_account_twice_returns_the_same_account_without_a_duplicate(
    connector: ScimConnector, admin: httpx.AsyncClient, unique: str
) -> None:
    user_id = f"e-{unique}"
    wanted = profile(f"grace-{unique}", given_name="Grace")

    first = await connector.ensure_account(user_id, wanted)
    second = await connector.ensure_account(user_id, wanted)

    assert first.already_existed is False
    assert second.already_existed is True
    assert second.account_id == first.account_id
    assert len(await users_named(admin, f"grace-{unique}")) == 1


async def test_the_same_identity_is_found_by_external_id_after_a_rename(
    connector: ScimConnector, admin: httpx.AsyncClient, unique: str
) -> None:
    user_id = f"e-{unique}"
    first = await connector.ensure_account(user_id, profile(f"old-{unique}"))

    again = await connector.ensure_account(user_id, profile(f"new-{unique}"))

    assert again.already_existed is True
    assert again.account_id == first.account_id
    assert await users_named(admin, f"new-{unique}") == []


async def test_a_user_name_with_a_quote_and_a_backslash_round_trips(
    connector: ScimConnector, admin: httpx.AsyncClient, unique: str
) -> None:
    user_name = f'o"brien\\{unique}'
    user_id = f"e-{unique}"

    created = await connector.ensure_account(user_id, profile(user_name))
    found = await connector.find_account(user_id, user_name)
    again = await connector.ensure_account(user_id, profile(user_name))

    assert created.already_existed is False
    assert found == created.account_id
    assert again.account_id == created.account_id
    assert again.already_existed is True
    body = (await admin.get(f"/Users/{created.account_id}")).json()
    assert body["userName"] == user_name
    assert len(await users_named(admin, user_name)) == 1
    # The escaped literal matches exactly this name, not its neighbours.
    assert await connector.find_account(f"x-{unique}", f'o"brien{unique}') is None
    assert await connector.find_account(f"x-{unique}", f"o\\brien\\{unique}") is None


async def test_an_account_with_the_same_user_name_and_no_external_id_is_adopted(
    connector: ScimConnector, admin: httpx.AsyncClient, unique: str
) -> None:
    user_name = f"legacy-{unique}"
    seeded = await admin.post(
        "/Users",
        json={"schemas": [CORE], "userName": user_name},
        headers={"Content-Type": "application/scim+json"},
    )
    assert seeded.status_code == 201, seeded.text
    existing_id = seeded.json()["id"]
    assert "externalId" not in seeded.json()

    ref = await connector.ensure_account(f"e-{unique}", profile(user_name))

    assert ref.already_existed is True
    assert ref.account_id == existing_id
    assert len(await users_named(admin, user_name)) == 1


async def test_an_account_with_the_same_user_name_of_another_identity_is_not_adopted(
    connector: ScimConnector, admin: httpx.AsyncClient, unique: str
) -> None:
    user_name = f"taken-{unique}"
    seeded = await admin.post(
        "/Users",
        json={"schemas": [CORE], "userName": user_name, "externalId": f"e-other-{unique}"},
        headers={"Content-Type": "application/scim+json"},
    )
    assert seeded.status_code == 201, seeded.text
    others_id = seeded.json()["id"]

    try:
        ref = await connector.ensure_account(f"e-mine-{unique}", profile(user_name))
    except TargetRejected:
        return  # refusing is fine
    assert ref.account_id != others_id


async def test_concurrent_ensures_of_one_identity_make_one_account(
    connector: ScimConnector, admin: httpx.AsyncClient, unique: str
) -> None:
    user_id = f"e-{unique}"
    wanted = profile(f"twin-{unique}")

    refs = await asyncio.gather(*(connector.ensure_account(user_id, wanted) for _ in range(5)))

    assert len({ref.account_id for ref in refs}) == 1
    assert sum(not ref.already_existed for ref in refs) == 1
    assert len(await users_named(admin, f"twin-{unique}")) == 1


async def test_find_account_of_an_unknown_user_is_none(
    connector: ScimConnector, unique: str
) -> None:
    assert await connector.find_account(f"e-{unique}", f"nobody-{unique}") is None


async def test_find_account_by_external_id(connector: ScimConnector, unique: str) -> None:
    ref = await connector.ensure_account(f"e-{unique}", profile(f"finn-{unique}"))

    assert await connector.find_account(f"e-{unique}", f"someone-else-{unique}") == ref.account_id


async def test_a_wrong_bearer_token_is_a_rejection(target: ScimTarget, unique: str) -> None:
    scim = ScimConnector("scim-test", scim_url(target), SecretStr("not-the-token"))
    try:
        with pytest.raises(TargetRejected, match="401"):
            await scim.ensure_account(f"e-{unique}", profile(f"eve-{unique}"))
        with pytest.raises(TargetRejected, match="401"):
            await scim.find_account(f"e-{unique}", f"eve-{unique}")
    finally:
        await scim.close()


async def test_no_bearer_token_is_a_rejection(target: ScimTarget, unique: str) -> None:
    scim = ScimConnector("scim-test", scim_url(target), None)
    try:
        with pytest.raises(TargetRejected, match="401"):
            await scim.find_account(f"e-{unique}", f"eve-{unique}")
    finally:
        await scim.close()


async def test_the_error_never_contains_the_token(target: ScimTarget, unique: str) -> None:
    secret = f"wrong-token-{unique}"
    scim = ScimConnector("scim-test", scim_url(target), SecretStr(secret))
    try:
        with pytest.raises(TargetRejected) as caught:
            await scim.find_account(f"e-{unique}", f"eve-{unique}")
    finally:
        await scim.close()
    assert secret not in str(caught.value)


async def test_an_unreachable_target_is_unavailable(unique: str) -> None:
    port = free_port("127.0.0.1")  # nothing listens there
    scim = ScimConnector("scim-down", f"http://127.0.0.1:{port}/v2", SecretStr("x"), timeout_s=2)
    try:
        with pytest.raises(TargetUnavailable, match="scim-down") as caught:
            await scim.ensure_account(f"e-{unique}", profile(f"zed-{unique}"))
        assert caught.value.retry_after is None
        with pytest.raises(TargetUnavailable):
            await scim.find_account(f"e-{unique}", f"zed-{unique}")
    finally:
        await scim.close()


async def test_disable_sets_active_false_and_is_idempotent(
    connector: ScimConnector, admin: httpx.AsyncClient, unique: str
) -> None:
    user_id, user_name = f"e-{unique}", f"leaver-{unique}"
    created = await connector.ensure_account(user_id, profile(user_name))

    assert await connector.disable_account(user_id, user_name) == created.account_id
    assert await connector.disable_account(user_id, user_name) == created.account_id
    body = (await admin.get(f"/Users/{created.account_id}")).json()
    assert body["active"] is False


async def test_delete_removes_the_account_and_a_missing_one_is_already_done(
    connector: ScimConnector, admin: httpx.AsyncClient, unique: str
) -> None:
    user_id, user_name = f"e-{unique}", f"gone-{unique}"
    created = await connector.ensure_account(user_id, profile(user_name))

    assert await connector.delete_account(user_id, user_name) == created.account_id
    assert (await admin.get(f"/Users/{created.account_id}")).status_code == 404
    assert await connector.delete_account(user_id, user_name) is None
    assert await connector.disable_account(user_id, user_name) is None


async def test_delete_takes_the_user_out_of_its_groups_where_the_provider_can_filter_by_member(
    connector: ScimConnector,
    admin: httpx.AsyncClient,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    group = f"grp-{unique}"
    (kept, kept_name), (gone, gone_name) = (
        (f"e-{unique}", f"kept-{unique}"),
        (f"f-{unique}", f"g-{unique}"),
    )
    kept_id = (await connector.ensure_account(kept, profile(kept_name))).account_id
    for user_id, user_name in ((kept, kept_name), (gone, gone_name)):
        await connector.ensure_account(user_id, profile(user_name))
        await connector.add_member(user_id, user_name, group)

    await connector.delete_account(gone, gone_name)
    assert await connector.list_members(group) == [kept_id]

    # A provider that cannot filter groups by member (400) keeps its groups right itself.
    real_request = connector._request

    async def no_member_filter(method: str, path: str, **kwargs: Any) -> httpx.Response:
        if path == "/Groups" and "members[" in kwargs.get("params", {}).get("filter", ""):
            return httpx.Response(
                400, json={"scimType": "invalidFilter"}, request=httpx.Request(method, path)
            )
        return await real_request(method, path, **kwargs)

    monkeypatch.setattr(connector, "_request", no_member_filter)
    assert await connector.delete_account(kept, kept_name) == kept_id
    assert (await admin.get(f"/Users/{kept_id}")).status_code == 404


async def get_user(admin: httpx.AsyncClient, account_id: str) -> dict[str, Any]:
    response = await admin.get(f"/Users/{account_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_update_changes_the_attributes_in_the_target_and_keeps_one_account(
    connector: ScimConnector, admin: httpx.AsyncClient, unique: str
) -> None:
    user_id, user_name = f"e-{unique}", f"mover-{unique}"
    created = await connector.ensure_account(
        user_id,
        profile(
            user_name,
            given_name="Ada",
            family_name="Lovelace",
            title="Analyst",
            department="Research",
            email=f"ada-{unique}@example.org",
        ),
    )
    before = await get_user(admin, created.account_id)
    assert (before["title"], before[ENTERPRISE]["department"]) == ("Analyst", "Research")

    ref = await connector.update_account(
        user_id,
        profile(
            user_name,
            given_name="Ada",
            family_name="Lovelace",
            display_name="Countess Lovelace",
            title="Engineer",
            department="Engineering",
            cost_center="CC-7",
            email=f"ada.lovelace-{unique}@example.org",
        ),
    )

    assert ref.account_id == created.account_id
    assert ref.already_existed is True
    body = await get_user(admin, created.account_id)
    assert body["title"] == "Engineer"
    assert body["displayName"] == "Countess Lovelace"
    assert body[ENTERPRISE]["department"] == "Engineering"
    assert body[ENTERPRISE]["costCenter"] == "CC-7"
    assert [e["value"] for e in body["emails"]] == [f"ada.lovelace-{unique}@example.org"]
    assert body["externalId"] == user_id
    assert body["userName"] == user_name
    assert body["active"] is True
    assert len(await users_named(admin, user_name)) == 1


async def test_update_replaces_the_account_with_the_profile_including_active(
    connector: ScimConnector, admin: httpx.AsyncClient, unique: str
) -> None:
    user_id, user_name = f"e-{unique}", f"pending-{unique}"
    created = await connector.ensure_account(user_id, profile(user_name, title="Intern"))

    ref = await connector.update_account(user_id, profile(user_name, active=False))

    assert ref.account_id == created.account_id
    body = await get_user(admin, created.account_id)
    assert body["active"] is False
    assert "title" not in body  # the profile is the whole desired state: PUT drops the rest


async def test_update_renames_the_account_found_by_external_id(
    connector: ScimConnector, admin: httpx.AsyncClient, unique: str
) -> None:
    user_id = f"e-{unique}"
    created = await connector.ensure_account(user_id, profile(f"before-{unique}"))

    ref = await connector.update_account(user_id, profile(f"after-{unique}"))

    assert ref.account_id == created.account_id
    assert ref.already_existed is True
    assert (await get_user(admin, created.account_id))["userName"] == f"after-{unique}"
    assert await users_named(admin, f"before-{unique}") == []
    assert len(await users_named(admin, f"after-{unique}")) == 1


async def test_update_of_a_missing_account_creates_it(
    connector: ScimConnector, admin: httpx.AsyncClient, unique: str
) -> None:
    user_id, user_name = f"e-{unique}", f"lost-{unique}"

    ref = await connector.update_account(
        user_id, profile(user_name, title="Engineer", department="Engineering")
    )

    assert ref.already_existed is False
    body = await get_user(admin, ref.account_id)
    assert body["userName"] == user_name
    assert body["externalId"] == user_id
    assert body["title"] == "Engineer"
    assert body[ENTERPRISE]["department"] == "Engineering"
    assert len(await users_named(admin, user_name)) == 1


async def test_update_of_an_account_deleted_after_the_lookup_creates_it(
    connector: ScimConnector,
    admin: httpx.AsyncClient,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user_id, user_name = f"e-{unique}", f"raced-{unique}"
    stale = (await connector.ensure_account(user_id, profile(user_name))).account_id
    assert (await admin.delete(f"/Users/{stale}")).status_code == 204
    lookups: list[str] = []
    real_find = connector.find_account

    async def find_stale_first(user_id: str, user_name: str) -> str | None:
        # The first lookup still sees the account; the PUT then meets a 404.
        lookups.append(user_name)
        return stale if len(lookups) == 1 else await real_find(user_id, user_name)

    monkeypatch.setattr(connector, "find_account", find_stale_first)

    ref = await connector.update_account(user_id, profile(user_name, title="Engineer"))

    # The update's lookup only: the create after the 404 looks for its own link (externalId).
    assert lookups == [user_name]
    assert ref.already_existed is False
    assert ref.account_id != stale
    assert (await get_user(admin, ref.account_id))["title"] == "Engineer"
    assert len(await users_named(admin, user_name)) == 1


async def test_enable_after_disable_makes_the_account_active_again(
    connector: ScimConnector, admin: httpx.AsyncClient, unique: str
) -> None:
    user_id, user_name = f"e-{unique}", f"rehire-{unique}"
    created = await connector.ensure_account(user_id, profile(user_name, title="Engineer"))
    assert await connector.disable_account(user_id, user_name) == created.account_id
    assert (await get_user(admin, created.account_id))["active"] is False

    assert await connector.enable_account(user_id, user_name) == created.account_id
    assert await connector.enable_account(user_id, user_name) == created.account_id

    body = await get_user(admin, created.account_id)
    assert body["active"] is True
    assert body["title"] == "Engineer"  # a PATCH of active leaves the rest alone
    assert len(await users_named(admin, user_name)) == 1


async def test_enable_of_a_missing_account_is_none(
    connector: ScimConnector, admin: httpx.AsyncClient, unique: str
) -> None:
    assert await connector.enable_account(f"e-{unique}", f"ghost-{unique}") is None
    assert await users_named(admin, f"ghost-{unique}") == []
