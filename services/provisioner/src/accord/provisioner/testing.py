"""The promises every connector keeps, as a test suite any connector can run.

Subclass ConnectorContract in a connector's tests and give it a `harness` fixture: the
connector, plus a way to look at and seed its real target behind the connector's back.
SCIM, LDAP, SQL and webhook connectors all run it against their real targets.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from accord.events import Profile
from accord.provisioner.ports import Connector, TargetRejected


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


def person(**fields: Any) -> tuple[str, Profile]:
    """A new identity: its user_id and profile."""
    unique = uuid.uuid4().hex[:10]
    return f"u-{unique}", Profile(user_name=f"p.{unique}", given_name="Ada", **fields)


class ConnectorContract:
    """The rules; each test gets a fresh identity, the target is shared."""

    async def test_ensure_creates_one_account_and_finds_it_again(self, harness: Harness) -> None:
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

    async def test_concurrent_ensures_make_one_account(self, harness: Harness) -> None:
        user_id, profile = person()
        refs = await asyncio.gather(
            *(harness.connector.ensure_account(user_id, profile) for _ in range(4))
        )
        assert len({r.account_id for r in refs}) == 1
        assert len(await harness.accounts(profile.user_name)) == 1

    async def test_update_changes_attributes_and_creates_a_lost_account(
        self, harness: Harness
    ) -> None:
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

    async def test_disable_and_enable_are_idempotent(self, harness: Harness) -> None:
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
        self, harness: Harness
    ) -> None:
        user_id, profile = person()
        ref = await harness.connector.ensure_account(user_id, profile)

        assert await harness.connector.delete_account(user_id, profile.user_name) == ref.account_id
        assert await harness.accounts(profile.user_name) == []
        assert await harness.connector.delete_account(user_id, profile.user_name) is None

    async def test_another_identitys_account_is_never_taken(self, harness: Harness) -> None:
        user_id, profile = person()
        await harness.plant(profile.user_name, "someone-else")

        with pytest.raises(TargetRejected, match="another identity"):
            await harness.connector.ensure_account(user_id, profile)
        with pytest.raises(TargetRejected, match="another identity"):
            await harness.connector.delete_account(user_id, profile.user_name)
        assert len(await harness.accounts(profile.user_name)) == 1

    async def test_an_unlinked_account_of_that_name_is_adopted(self, harness: Harness) -> None:
        user_id, profile = person()
        await harness.plant(profile.user_name, None)

        ref = await harness.connector.ensure_account(user_id, profile)

        assert ref.already_existed is True
        assert len(await harness.accounts(profile.user_name)) == 1

    async def test_values_that_need_escaping_are_escaped(self, harness: Harness) -> None:
        user_id, _ = person()
        tricky = Profile(user_name=f"o'brien,{user_id}*(x)\\", family_name="O'Brien")

        ref = await harness.connector.ensure_account(user_id, tricky)

        assert [a.user_name for a in await harness.accounts(tricky.user_name)] == [tricky.user_name]
        assert await harness.connector.find_account(user_id, tricky.user_name) == ref.account_id
        # A wildcard in a name must not match other accounts.
        assert await harness.connector.find_account("u-nobody", "*") is None
