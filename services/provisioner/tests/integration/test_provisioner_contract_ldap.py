"""The connector contract against a real OpenLDAP (slapd)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import ldap3
import pytest
import pytest_asyncio
from pydantic import SecretStr

from accord.provisioner.adapters.ldap import LdapConnector, LdapSettings
from accord.provisioner.testing import Account, ConnectorContract, Harness
from accord.stack.ldap_target import LdapTarget

pytestmark = pytest.mark.integration


class TestLdapConnectorContract(ConnectorContract):
    """slapd with the inetOrgPerson schema."""

    @pytest_asyncio.fixture(loop_scope="session")
    async def harness(self, ldap_target: LdapTarget) -> AsyncIterator[Harness]:
        async for ready in ldap_harness(ldap_target):
            yield ready


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
