"""The ldap reader against a real OpenLDAP (slapd): paged searches over more than one page."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import ldap3
import pytest
import pytest_asyncio

from accord.sources.config import LdapOptions, Source
from accord.sources.diff import ChangeKind, SourceState, diff
from accord.sources.mapping import MappedRow, RowMapper
from accord.sources.problems import RowProblem
from accord.sources.readers import SourceRejected, SourceUnavailable, open_reader
from accord.sources.readers.ldap import LdapReader, open_ldap
from accord.stack.ldap_target import LdapTarget
from accord.stack.network import free_port

pytestmark = pytest.mark.integration

PEOPLE = 130
PAGE = 25
ENV = "DIRECTORY_PASSWORD"
ATTRIBUTES = ("uid", "givenName", "sn", "mail", "employeeNumber", "departmentNumber")


def person(n: int) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "objectClass": ["inetOrgPerson"],
        "uid": f"p{n:04d}",
        "cn": f"Person {n}",
        "givenName": f"Given{n}",
        "sn": f"Family{n}",
        "employeeNumber": f"E{n:05d}",
        "departmentNumber": "sales" if n % 4 == 0 else "it",
    }
    if n % 10 != 0:  # every tenth has no e-mail
        entry["mail"] = [f"p{n}@example.org", f"alias{n}@example.org"]  # multi-valued
    return entry


@pytest_asyncio.fixture(loop_scope="session")
async def people_dn(ldap_target: LdapTarget, unique: str) -> AsyncIterator[str]:
    """An organizational unit of its own under ou=people, with PEOPLE entries."""
    base = f"ou=src-{unique},{ldap_target.people_dn}"

    def fill() -> None:
        conn = ldap3.Connection(
            ldap3.Server(ldap_target.url),
            ldap_target.bind_dn,
            ldap_target.password,
            auto_bind=True,
        )
        try:
            assert conn.add(base, ["organizationalUnit"], {"ou": f"src-{unique}"})  # type: ignore[no-untyped-call]
            for n in range(1, PEOPLE + 1):
                entry = person(n)
                assert conn.add(f"uid={entry['uid']},{base}", attributes=entry), conn.result  # type: ignore[no-untyped-call]
        finally:
            conn.unbind()

    await asyncio.to_thread(fill)
    yield base


def options(target: LdapTarget, base_dn: str, **changes: Any) -> dict[str, Any]:
    return {
        "url": target.url,
        "bind_dn": target.bind_dn,
        "password_env": ENV,
        "base_dn": base_dn,
        "filter": "(objectClass=inetOrgPerson)",
        "attributes": list(ATTRIBUTES),
        "page_size": PAGE,
        **changes,
    }


async def read_all(
    target: LdapTarget, base_dn: str, password: str | None = None, **changes: Any
) -> tuple[LdapReader, list[Any]]:
    opts = LdapOptions.model_validate(options(target, base_dn, **changes))
    env = {ENV: target.password if password is None else password}
    async with open_ldap("directory", opts, env) as reader:
        return reader, [row async for row in reader.rows()]


async def test_a_directory_larger_than_a_page_is_read_whole(
    ldap_target: LdapTarget, people_dn: str
) -> None:
    reader, rows = await read_all(ldap_target, people_dn)
    assert reader.columns == ("dn", *ATTRIBUTES)
    assert reader.pages == math.ceil(PEOPLE / PAGE)
    assert reader.problems == []
    assert [row.line for row in rows] == list(range(1, PEOPLE + 1))
    by_uid = {row.values["uid"]: row.values for row in rows}
    assert by_uid == {
        f"p{n:04d}": {
            "dn": f"uid=p{n:04d},{people_dn}",
            "uid": f"p{n:04d}",
            "givenName": f"Given{n}",
            "sn": f"Family{n}",
            "mail": "" if n % 10 == 0 else f"p{n}@example.org",  # absent: empty; many: first
            "employeeNumber": f"E{n:05d}",
            "departmentNumber": "sales" if n % 4 == 0 else "it",
        }
        for n in range(1, PEOPLE + 1)
    }


async def test_a_filter_narrows_the_search(ldap_target: LdapTarget, people_dn: str) -> None:
    narrow = "(&(objectClass=inetOrgPerson)(departmentNumber=sales))"
    reader, rows = await read_all(ldap_target, people_dn, filter=narrow)
    sales = [f"p{n:04d}" for n in range(1, PEOPLE + 1) if n % 4 == 0]
    assert sorted(row.values["uid"] for row in rows) == sales
    assert reader.pages == math.ceil(len(sales) / PAGE)


async def test_a_wrong_password_is_a_clear_error_without_the_password(
    ldap_target: LdapTarget, people_dn: str
) -> None:
    wrong = "wrong-" + ldap_target.password[::-1]
    with pytest.raises(SourceRejected) as raised:
        await read_all(ldap_target, people_dn, password=wrong)
    message = str(raised.value)
    assert message.startswith(
        f"source 'directory': bind to {ldap_target.url} as {ldap_target.bind_dn} -> "
        "invalidCredentials"
    )
    assert wrong not in message
    assert ldap_target.password not in message


async def test_a_missing_base_dn_fails_instead_of_reading_nobody(
    ldap_target: LdapTarget, unique: str
) -> None:
    missing = f"ou=gone-{unique},{ldap_target.people_dn}"
    with pytest.raises(SourceRejected, match=r"search under ou=gone-.* -> noSuchObject"):
        await read_all(ldap_target, missing)


async def test_an_unreachable_directory_is_unavailable(ldap_target: LdapTarget) -> None:
    url = f"ldap://127.0.0.1:{free_port('127.0.0.1')}"
    with pytest.raises(SourceUnavailable, match=r"connecting to ldap://127\.0\.0\.1:\d+"):
        await read_all(ldap_target, ldap_target.people_dn, url=url, timeout_s=5)


async def test_the_directory_through_mapping_and_diff_creates_everyone(
    ldap_target: LdapTarget, people_dn: str
) -> None:
    source = Source.model_validate(
        {
            "name": "directory",
            "kind": "ldap",
            "ldap": options(ldap_target, people_dn),
            "key": "employeeNumber",
            "mappings": {
                "user_name": "uid",
                "given_name": "givenName",
                "family_name": "sn",
                "email": "mail",
                "employee_number": "employeeNumber",
                "department": "departmentNumber",
                "attributes.dn": "dn",
            },
        }
    )
    mapper = RowMapper(source)
    mapped: list[MappedRow] = []
    problems: list[RowProblem] = []
    async with open_reader(source, {ENV: ldap_target.password}) as reader:
        mapper.check_columns(reader.columns)
        async for row in reader.rows():
            one = mapper.map(row)
            if isinstance(one, RowProblem):
                problems.append(one)
            else:
                mapped.append(one)
    result = diff(SourceState(), mapped, fields=mapper.fields)
    assert problems == []
    assert result.count(ChangeKind.CREATED) == PEOPLE
    assert len(result.changes) == PEOPLE
    assert {change.user_name for change in result.changes} == {
        f"p{n:04d}" for n in range(1, PEOPLE + 1)
    }
