"""One contract for every connector, run against each kind's real target.

SCIM against scim2-server, LDAP against slapd: the same promises (no duplicates, look up
before create, never take another identity's account, idempotent disable/enable/delete).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import ldap3
import pytest
import pytest_asyncio
from pydantic import SecretStr

from accord.events import Profile
from accord.provisioner.adapters.ldap import LdapConnector, LdapSettings
from accord.provisioner.adapters.scim import ScimConnector
from accord.provisioner.ports import Connector, TargetRejected
from accord.stack.ldap_target import LdapTarget
from accord.stack.scim_target import ScimTarget

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Account:
    """An account as the target holds it, in one shape for every kind."""

    account_id: str
    user_name: str
    active: bool
    title: str | None


@dataclass
class Harness:
    """A connector and a way to look at (and seed) its target behind its back."""

    connector: Connector
    accounts: Callable[[str], Awaitable[list[Account]]]
    """Every account named user_name."""
    plant: Callable[[str, str | None], Awaitable[None]]
    """Create an account named user_name linked to another identity (or to none)."""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def scim_target() -> AsyncIterator[ScimTarget]:
    async with ScimTarget() as started:
        yield started


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

        yield Harness(connector, accounts, plant)
    await connector.close()


async def ldap_harness(target: LdapTarget) -> AsyncIterator[Harness]:
    settings = LdapSettings(
        url=target.url,
        bind_dn=target.bind_dn,
        password=SecretStr(target.password),
        people_dn=target.people_dn,
    )
    connector = LdapConnector("contract-ldap", settings)

    def admin() -> ldap3.Connection:
        return ldap3.Connection(
            ldap3.Server(target.url), target.bind_dn, target.password, auto_bind=True
        )

    def read(user_name: str) -> list[Account]:
        conn = admin()
        try:
            conn.search(
                target.people_dn,
                f"(uid={ldap3.utils.conv.escape_filter_chars(user_name)})",
                attributes=["uid", "title", "employeeType"],
            )
            return [
                Account(
                    e.entry_dn,
                    str(e.uid.value),
                    "disabled" not in [str(v) for v in e.employeeType.values],
                    str(e.title.value) if e.title.value else None,
                )
                for e in conn.entries
            ]
        finally:
            conn.unbind()

    def add(user_name: str, owner: str | None) -> None:
        conn = admin()
        try:
            attributes: dict[str, Any] = {"uid": user_name, "cn": user_name, "sn": user_name}
            if owner:
                attributes["description"] = f"accord:{owner}"
            dn = f"uid={ldap3.utils.dn.escape_rdn(user_name)},{target.people_dn}"
            assert conn.add(dn, ["inetOrgPerson"], attributes), conn.result  # type: ignore[no-untyped-call]
        finally:
            conn.unbind()

    async def accounts(user_name: str) -> list[Account]:
        return await asyncio.to_thread(read, user_name)

    async def plant(user_name: str, owner: str | None) -> None:
        await asyncio.to_thread(add, user_name, owner)

    yield Harness(connector, accounts, plant)
    await connector.close()


@pytest_asyncio.fixture(params=["scim", "ldap"], loop_scope="session")
async def harness(
    request: pytest.FixtureRequest, scim_target: ScimTarget, ldap_target: LdapTarget
) -> AsyncIterator[Harness]:
    make = scim_harness(scim_target) if request.param == "scim" else ldap_harness(ldap_target)
    async for ready in make:
        yield ready


def person(**fields: Any) -> tuple[str, Profile]:
    unique = uuid.uuid4().hex[:10]
    return f"u-{unique}", Profile(user_name=f"p.{unique}", given_name="Ada", **fields)


async def test_ensure_creates_one_account_and_finds_it_again(harness: Harness) -> None:
    user_id, profile = person(title="Analyst")

    first = await harness.connector.ensure_account(user_id, profile)
    again = await harness.connector.ensure_account(user_id, profile)

    assert (first.already_existed, again.already_existed) == (False, True)
    assert first.account_id == again.account_id
    (account,) = await harness.accounts(profile.user_name)
    assert (account.account_id, account.active, account.title) == (
        first.account_id,
        True,
        "Analyst",
    )
    assert await harness.connector.find_account(user_id, profile.user_name) == first.account_id


async def test_concurrent_ensures_make_one_account(harness: Harness) -> None:
    user_id, profile = person()
    refs = await asyncio.gather(
        *(harness.connector.ensure_account(user_id, profile) for _ in range(4))
    )
    assert len({r.account_id for r in refs}) == 1
    assert len(await harness.accounts(profile.user_name)) == 1


async def test_update_changes_attributes_and_creates_a_lost_account(harness: Harness) -> None:
    user_id, profile = person(title="Analyst")
    created = await harness.connector.ensure_account(user_id, profile)

    updated = await harness.connector.update_account(
        user_id, profile.model_copy(update={"title": "Lead"})
    )

    assert (updated.account_id, updated.already_existed) == (created.account_id, True)
    (account,) = await harness.accounts(profile.user_name)
    assert account.title == "Lead"
    other_id, lost = person(title="New")
    repaired = await harness.connector.update_account(other_id, lost)
    assert repaired.already_existed is False
    assert [a.title for a in await harness.accounts(lost.user_name)] == ["New"]


async def test_disable_and_enable_are_idempotent(harness: Harness) -> None:
    user_id, profile = person()
    ref = await harness.connector.ensure_account(user_id, profile)
    connector = harness.connector

    assert await connector.disable_account(user_id, profile.user_name) == ref.account_id
    assert await connector.disable_account(user_id, profile.user_name) == ref.account_id
    assert [a.active for a in await harness.accounts(profile.user_name)] == [False]
    assert await connector.enable_account(user_id, profile.user_name) == ref.account_id
    assert [a.active for a in await harness.accounts(profile.user_name)] == [True]
    missing_id, missing = person()
    assert await connector.disable_account(missing_id, missing.user_name) is None
    assert await connector.enable_account(missing_id, missing.user_name) is None


async def test_delete_removes_the_account_and_a_second_delete_finds_nothing(
    harness: Harness,
) -> None:
    user_id, profile = person()
    ref = await harness.connector.ensure_account(user_id, profile)

    assert await harness.connector.delete_account(user_id, profile.user_name) == ref.account_id
    assert await harness.accounts(profile.user_name) == []
    assert await harness.connector.delete_account(user_id, profile.user_name) is None


async def test_another_identitys_account_is_never_taken(harness: Harness) -> None:
    user_id, profile = person()
    await harness.plant(profile.user_name, "someone-else")

    with pytest.raises(TargetRejected, match="another identity"):
        await harness.connector.ensure_account(user_id, profile)
    with pytest.raises(TargetRejected, match="another identity"):
        await harness.connector.delete_account(user_id, profile.user_name)
    assert len(await harness.accounts(profile.user_name)) == 1


async def test_an_unlinked_account_of_that_name_is_adopted(harness: Harness) -> None:
    user_id, profile = person()
    await harness.plant(profile.user_name, None)

    ref = await harness.connector.ensure_account(user_id, profile)

    assert ref.already_existed is True
    assert len(await harness.accounts(profile.user_name)) == 1


async def test_values_that_need_escaping_are_escaped(harness: Harness) -> None:
    user_id, _ = person()
    tricky = Profile(user_name=f"o'brien,{user_id}*(x)\\", family_name="O'Brien")

    ref = await harness.connector.ensure_account(user_id, tricky)

    assert [a.user_name for a in await harness.accounts(tricky.user_name)] == [tricky.user_name]
    assert await harness.connector.find_account(user_id, tricky.user_name) == ref.account_id
    # A wildcard in a name must not match other accounts.
    assert await harness.connector.find_account("u-nobody", "*") is None
