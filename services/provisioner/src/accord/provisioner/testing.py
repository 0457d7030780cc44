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
from accord.provisioner.ports import (
    AccountRef,
    Connector,
    TargetAccount,
    TargetRejected,
    TargetUnavailable,
)


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
    retitle: Callable[[str, str], Awaitable[None]]
    """Change the title of the account named user_name behind the connector's back."""
    unreachable: Callable[[], Connector]
    """A connector of the same kind whose target does not answer (e.g. a closed port)."""


def person(**fields: Any) -> tuple[str, Profile]:
    """A new identity: its user_id and profile."""
    unique = uuid.uuid4().hex[:10]
    return f"u-{unique}", Profile(user_name=f"p.{unique}", given_name="Ada", **fields)


def full_person() -> tuple[str, Profile]:
    """A new identity with every string attribute of the profile set."""
    unique = uuid.uuid4().hex[:10]
    return f"u-{unique}", Profile(
        user_name=f"f.{unique}",
        given_name="Ada",
        family_name="Lovelace",
        display_name="Ada L.",
        email=f"ada.{unique}@example.com",
        title="Analyst",
        department="Research",
        employee_number=f"E{unique}",
        cost_center="CC-42",
        manager_id="u-manager",
    )


def managed(connector: Connector, profile: Profile) -> dict[str, Any]:
    """The fields of a profile the connector manages."""
    return {field: getattr(profile, field) for field in sorted(connector.managed_fields)}


def mine(accounts: list[TargetAccount], *user_names: str) -> dict[str, TargetAccount]:
    """The listed accounts of these user names (the target is shared with other tests)."""
    wanted = set(user_names)
    return {a.profile.user_name: a for a in accounts if a.profile.user_name in wanted}


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
        connector = harness.connector
        for write in (connector.ensure_account, connector.update_account):
            user_id, profile = full_person()
            await harness.plant(profile.user_name, None)

            ref = await write(user_id, profile)

            assert ref.already_existed is True
            (planted,) = await harness.accounts(profile.user_name)
            assert planted.account_id == ref.account_id
            # Linked, and given the identity's attributes: found by Accord's id alone (under
            # a user name nobody has), and no drift for reconciliation to report.
            elsewhere = f"x.{profile.user_name}"
            account = await connector.get_account(user_id, elsewhere)
            self._assert_linked(connector, account, ref, user_id, profile)
            await self._every_lookup_finds(connector, user_id, elsewhere, ref.account_id)

    @staticmethod
    def _assert_linked(
        connector: Connector,
        account: TargetAccount | None,
        ref: AccountRef,
        user_id: str,
        profile: Profile,
    ) -> None:
        """The account is ref's, linked to the identity, active, and holds its profile as the
        target stores it."""
        assert account is not None
        assert (account.account_id, account.owner, account.active) == (
            ref.account_id,
            user_id,
            True,
        )
        assert managed(connector, account.profile) == managed(
            connector, connector.as_stored(profile)
        )

    @staticmethod
    async def _every_lookup_finds(
        connector: Connector, user_id: str, user_name: str, account_id: str
    ) -> None:
        """Every call by Accord's id (with a user name that matches no account) finds it."""
        group = f"grp-{uuid.uuid4().hex[:8]}"
        assert await connector.find_account(user_id, user_name) == account_id
        assert await connector.disable_account(user_id, user_name) == account_id
        assert await connector.enable_account(user_id, user_name) == account_id
        assert await connector.add_member(user_id, user_name, group) == account_id
        assert await connector.list_members(group) == [account_id]
        assert await connector.remove_member(user_id, user_name, group) == account_id
        assert await connector.delete_account(user_id, user_name) == account_id
        assert await connector.find_account(user_id, user_name) is None

    async def test_values_that_need_escaping_are_escaped(self, harness: Harness) -> None:
        user_id, _ = person()
        tricky = Profile(user_name=f"o'brien,{user_id}*(x)\\", family_name="O'Brien")

        ref = await harness.connector.ensure_account(user_id, tricky)

        assert [a.user_name for a in await harness.accounts(tricky.user_name)] == [tricky.user_name]
        assert await harness.connector.find_account(user_id, tricky.user_name) == ref.account_id
        # A wildcard in a name must not match other accounts.
        assert await harness.connector.find_account("u-nobody", "*") is None

    async def test_an_account_reads_back_as_the_target_stores_the_profile(
        self, harness: Harness
    ) -> None:
        connector = harness.connector
        assert "user_name" in connector.managed_fields
        for user_id, profile in (full_person(), person(), person(family_name="Only")):
            ref = await connector.ensure_account(user_id, profile)

            account = await connector.get_account(user_id, profile.user_name)

            self._assert_linked(connector, account, ref, user_id, profile)

    async def test_get_account_sees_changes_and_other_owners(self, harness: Harness) -> None:
        connector = harness.connector
        user_id, profile = full_person()
        await connector.ensure_account(user_id, profile)
        await harness.retitle(profile.user_name, "Changed behind our back")
        await connector.disable_account(user_id, profile.user_name)

        account = await connector.get_account(user_id, profile.user_name)

        assert account is not None
        assert (account.profile.title, account.active) == ("Changed behind our back", False)
        other_id, other = person()
        assert await connector.get_account(other_id, other.user_name) is None
        await harness.plant(other.user_name, "someone-else")
        planted = await connector.get_account(other_id, other.user_name)
        assert planted is not None
        assert planted.owner == "someone-else"

    async def test_list_accounts_pages_through_every_account_once(self, harness: Harness) -> None:
        connector = harness.connector
        people = [person(title=f"T{i}") for i in range(7)]
        for user_id, profile in people:
            await connector.ensure_account(user_id, profile)
        _, unlinked = person()
        await harness.plant(unlinked.user_name, None)
        await connector.disable_account(people[0][0], people[0][1].user_name)

        listed = [account async for account in connector.list_accounts(page_size=3)]

        names = [p.user_name for _, p in people] + [unlinked.user_name]
        found = mine(listed, *names)
        assert sorted(found) == sorted(names)
        assert len([a for a in listed if a.profile.user_name in found]) == len(names)
        assert [found[p.user_name].owner for u, p in people] == [u for u, _ in people]
        assert found[unlinked.user_name].owner is None
        assert [found[p.user_name].active for _, p in people[:2]] == [False, True]
        assert found[people[3][1].user_name].profile.title == "T3"
        assert len({a.account_id for a in listed}) == len(listed)

    async def test_group_membership_is_idempotent_both_ways(self, harness: Harness) -> None:
        connector = harness.connector
        group = f"grp-{uuid.uuid4().hex[:8]}"
        (first_id, first), (second_id, second) = person(), person()
        first_ref = await connector.ensure_account(first_id, first)
        second_ref = await connector.ensure_account(second_id, second)
        assert await connector.list_members(group) == []

        assert await connector.add_member(first_id, first.user_name, group) == first_ref.account_id
        assert await connector.add_member(first_id, first.user_name, group) == first_ref.account_id
        await connector.add_member(second_id, second.user_name, group)
        assert sorted(await connector.list_members(group)) == sorted(
            [first_ref.account_id, second_ref.account_id]
        )

        removed = await connector.remove_member(first_id, first.user_name, group)
        assert removed == first_ref.account_id
        assert await connector.remove_member(first_id, first.user_name, group) == removed
        assert await connector.list_members(group) == [second_ref.account_id]
        await connector.remove_member(second_id, second.user_name, group)
        assert await connector.list_members(group) == []
        # The group outlives its last member, and takes members again.
        await connector.add_member(second_id, second.user_name, group)
        assert await connector.list_members(group) == [second_ref.account_id]

    async def test_a_renamed_or_deleted_account_leaves_no_stale_member(
        self, harness: Harness
    ) -> None:
        connector = harness.connector
        group = f"grp-{uuid.uuid4().hex[:8]}"
        (first_id, first), (second_id, second) = person(), person()
        await connector.ensure_account(first_id, first)
        second_ref = await connector.ensure_account(second_id, second)
        await connector.add_member(first_id, first.user_name, group)
        await connector.add_member(second_id, second.user_name, group)

        renamed = first.model_copy(update={"user_name": f"{first.user_name}.new"})
        moved = await connector.update_account(first_id, renamed)
        assert sorted(await connector.list_members(group)) == sorted(
            [moved.account_id, second_ref.account_id]
        )
        await connector.delete_account(first_id, renamed.user_name)
        assert await connector.list_members(group) == [second_ref.account_id]
        await connector.delete_account(second_id, second.user_name)
        assert await connector.list_members(group) == []
        # The emptied group takes members again.
        third_id, third = person()
        third_ref = await connector.ensure_account(third_id, third)
        await connector.add_member(third_id, third.user_name, group)
        assert await connector.list_members(group) == [third_ref.account_id]

    async def test_membership_of_an_identity_without_an_account_is_none(
        self, harness: Harness
    ) -> None:
        user_id, profile = person()
        group = f"grp-{uuid.uuid4().hex[:8]}"
        assert await harness.connector.add_member(user_id, profile.user_name, group) is None
        assert await harness.connector.remove_member(user_id, profile.user_name, group) is None
        assert await harness.connector.remove_member(user_id, profile.user_name, "no-such") is None

    async def test_health_passes_on_a_live_target_and_fails_on_a_dead_one(
        self, harness: Harness
    ) -> None:
        await harness.connector.health()
        dead = harness.unreachable()
        try:
            with pytest.raises(TargetUnavailable):
                await dead.health()
        finally:
            await dead.close()
