"""The connector contract against a real OpenLDAP (slapd)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import ldap3
import pytest
import pytest_asyncio
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn
from pydantic import SecretStr

from accord.provisioner.adapters.ldap import LdapConnector, LdapSettings
from accord.provisioner.testing import Account, ConnectorContract, Harness
from accord.stack.ldap_target import LdapTarget
from accord.stack.network import free_port

pytestmark = pytest.mark.integration


class TestLdapConnectorContract(ConnectorContract):
    """slapd with the inetOrgPerson schema, memberof and refint, and the default settings."""

    @pytest_asyncio.fixture(loop_scope="session")
    async def harness(self, ldap_target: LdapTarget) -> AsyncIterator[Harness]:
        async for ready in ldap_harness(ldap_target):
            yield ready


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stock_ldap_target() -> AsyncIterator[LdapTarget]:
    async with LdapTarget(referential_integrity=False) as started:
        yield started


class TestLdapConnectorContractOnAStockSlapd(ConnectorContract):
    """slapd as it comes (no refint to clean groups up), and the default settings."""

    @pytest_asyncio.fixture(loop_scope="session")
    async def harness(self, stock_ldap_target: LdapTarget) -> AsyncIterator[Harness]:
        async for ready in ldap_harness(stock_ldap_target):
            yield ready


async def ldap_harness(target: LdapTarget) -> AsyncIterator[Harness]:
    settings = LdapSettings(
        url=target.url,
        bind_dn=target.bind_dn,
        password=SecretStr(target.password),
        people_dn=target.people_dn,
        groups_dn=target.groups_dn,
    )
    connector = LdapConnector("contract-ldap", settings)

    def admin() -> ldap3.Connection:
        return ldap3.Connection(
            ldap3.Server(target.url), target.bind_dn, target.password, auto_bind=True
        )

    def dn_of(user_name: str) -> str:
        return f"uid={escape_rdn(user_name)},{target.people_dn}"

    def read(user_name: str) -> list[Account]:
        conn = admin()
        try:
            conn.search(
                target.people_dn,
                f"(uid={escape_filter_chars(user_name)})",
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
            assert conn.add(dn_of(user_name), ["inetOrgPerson"], attributes), conn.result  # type: ignore[no-untyped-call]
        finally:
            conn.unbind()

    def change_title(user_name: str, title: str) -> None:
        conn = admin()
        try:
            change = {"title": [(ldap3.MODIFY_REPLACE, [title])]}
            assert conn.modify(dn_of(user_name), change), conn.result  # type: ignore[no-untyped-call]
        finally:
            conn.unbind()

    async def accounts(user_name: str) -> list[Account]:
        return await asyncio.to_thread(read, user_name)

    async def plant(user_name: str, owner: str | None) -> None:
        await asyncio.to_thread(add, user_name, owner)

    async def retitle(user_name: str, title: str) -> None:
        await asyncio.to_thread(change_title, user_name, title)

    def unreachable() -> LdapConnector:
        closed = dataclasses.replace(settings, url=f"ldap://127.0.0.1:{free_port()}", timeout_s=2)
        return LdapConnector("contract-ldap-down", closed)

    yield Harness(connector, accounts, plant, retitle, unreachable)
    await connector.close()


async def test_bound_connections_are_reused_and_a_dropped_one_is_replaced(
    ldap_target: LdapTarget,
) -> None:
    settings = LdapSettings(
        url=ldap_target.url,
        bind_dn=ldap_target.bind_dn,
        password=SecretStr(ldap_target.password),
        people_dn=ldap_target.people_dn,
        groups_dn=ldap_target.groups_dn,
    )
    connector = LdapConnector("pooled-ldap", settings)
    try:
        await connector.health()
        (first,) = connector._idle
        await connector.health()
        assert connector._idle == [first]  # the same bound connection, no new bind

        # The server drops it (a restart, an idle timeout): the next call still succeeds.
        first.socket.close()
        await connector.health()
        (second,) = connector._idle
        assert second is not first
    finally:
        await connector.close()
    assert connector._idle == []
