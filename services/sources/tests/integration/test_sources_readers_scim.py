"""The scim reader against a real SCIM 2.0 service provider (scim2-server): index paging over
more than one page, a filter, refusals, and the users through mapping and diff."""

from __future__ import annotations

import math
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from scim2_models import Context, Email, EnterpriseUser, Name, User

from accord.sources.config import ScimOptions, Source
from accord.sources.diff import ChangeKind, SourceState, diff
from accord.sources.mapping import MappedRow, RowMapper
from accord.sources.problems import RowProblem
from accord.sources.readers import SourceRejected, SourceUnavailable, open_reader
from accord.sources.readers.scim import ScimReader, open_scim
from accord.stack.network import free_port
from accord.stack.scim_target import ScimTarget

pytestmark = pytest.mark.integration

PEOPLE = 130
PAGE = 25
ENV = "HR_SCIM_TOKEN"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
FIELDS = {
    "user_name": "userName",
    "first": "name.givenName",
    "last": "name.familyName",
    "mail": "emails[primary eq true].value",
    "work_mail": 'emails[type eq "work"].value',
    "number": f"{ENTERPRISE}:employeeNumber",
    "type": "userType",
}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def scim_target() -> AsyncIterator[ScimTarget]:
    async with ScimTarget() as started:
        yield started


def person(prefix: str, n: int) -> dict[str, Any]:
    user = User[EnterpriseUser](
        user_name=f"{prefix}-{n:04d}",
        name=Name(given_name=f"Given{n}", family_name=f"Family{n}"),
        user_type="Contractor" if n % 4 == 0 else "Employee",
        emails=None
        if n % 10 == 0  # every tenth has no e-mail
        else [
            Email(value=f"home{n}@example.net", type="home"),
            Email(value=f"p{n}@example.org", type="work", primary=True),
        ],
    )
    user[EnterpriseUser] = EnterpriseUser(employee_number=f"E{n:05d}")
    return user.model_dump(scim_ctx=Context.RESOURCE_CREATION_REQUEST)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def people(scim_target: ScimTarget) -> dict[str, str]:
    """PEOPLE users with a user name prefix of their own: their ids by user name."""
    prefix = f"src-{secrets.token_hex(4)}"
    ids: dict[str, str] = {}
    async with httpx.AsyncClient(
        base_url=f"{scim_target.base_url}/v2",
        headers={"Authorization": f"Bearer {scim_target.bearer_token}"},
        timeout=10.0,
    ) as admin:
        for n in range(1, PEOPLE + 1):
            response = await admin.post("/Users", json=person(prefix, n))
            response.raise_for_status()
            ids[f"{prefix}-{n:04d}"] = response.json()["id"]
    return ids


def prefix_of(people: dict[str, str]) -> str:
    return next(iter(people)).rsplit("-", 1)[0]


def options(target: ScimTarget, people: dict[str, str], **changes: Any) -> dict[str, Any]:
    return {
        "url": f"{target.base_url}/v2",
        "token_env": ENV,
        "filter": f'userName sw "{prefix_of(people)}-"',
        "attributes": FIELDS,
        "page_size": PAGE,
        **changes,
    }


async def read_all(
    target: ScimTarget, people: dict[str, str], token: str | None = None, **changes: Any
) -> tuple[ScimReader, list[Any]]:
    opts = ScimOptions.model_validate(options(target, people, **changes))
    env = {ENV: target.bearer_token if token is None else token}
    async with open_scim("hr-scim", opts, env) as reader:
        return reader, [row async for row in reader.rows()]


async def test_more_users_than_a_page_are_read_whole(
    scim_target: ScimTarget, people: dict[str, str]
) -> None:
    reader, rows = await read_all(scim_target, people)
    assert reader.columns == ("id", *FIELDS)
    assert reader.pages == math.ceil(PEOPLE / PAGE)
    assert reader.problems == []
    assert [row.line for row in rows] == list(range(1, PEOPLE + 1))
    assert sorted(row.values["id"] for row in rows) == sorted(people.values())  # each once
    prefix = prefix_of(people)
    by_name = {row.values["user_name"]: row.values for row in rows}
    assert by_name == {
        f"{prefix}-{n:04d}": {
            "id": people[f"{prefix}-{n:04d}"],
            "user_name": f"{prefix}-{n:04d}",
            "first": f"Given{n}",
            "last": f"Family{n}",
            "mail": "" if n % 10 == 0 else f"p{n}@example.org",  # absent: empty
            "work_mail": "" if n % 10 == 0 else f"p{n}@example.org",
            "number": f"E{n:05d}",
            "type": "Contractor" if n % 4 == 0 else "Employee",
        }
        for n in range(1, PEOPLE + 1)
    }


async def test_a_filter_narrows_the_users(scim_target: ScimTarget, people: dict[str, str]) -> None:
    narrow = f'userName sw "{prefix_of(people)}-" and userType eq "Contractor"'
    reader, rows = await read_all(scim_target, people, filter=narrow)
    contractors = [n for n in range(1, PEOPLE + 1) if n % 4 == 0]
    assert sorted(row.values["number"] for row in rows) == [f"E{n:05d}" for n in contractors]
    assert reader.pages == math.ceil(len(contractors) / PAGE)


async def test_a_wrong_token_is_rejected_without_the_token(
    scim_target: ScimTarget, people: dict[str, str]
) -> None:
    wrong = "wrong-" + scim_target.bearer_token[::-1]
    with pytest.raises(SourceRejected) as raised:
        await read_all(scim_target, people, token=wrong)
    message = str(raised.value)
    assert message.startswith(f"source 'hr-scim': GET {scim_target.base_url}/v2/Users -> 401")
    assert wrong not in message
    assert scim_target.bearer_token not in message


async def test_a_bad_filter_is_rejected_with_the_providers_detail(
    scim_target: ScimTarget, people: dict[str, str]
) -> None:
    with pytest.raises(SourceRejected, match=r"-> 400: .+") as raised:
        await read_all(scim_target, people, filter="userName zz")
    assert scim_target.bearer_token not in str(raised.value)


async def test_an_unreachable_provider_is_unavailable(
    scim_target: ScimTarget, people: dict[str, str]
) -> None:
    url = f"http://127.0.0.1:{free_port('127.0.0.1')}/v2"
    with pytest.raises(SourceUnavailable, match=r"page at 1: ConnectError") as raised:
        await read_all(scim_target, people, url=url, timeout_s=5)
    assert scim_target.bearer_token not in str(raised.value)


async def test_the_users_through_mapping_and_diff_are_created(
    scim_target: ScimTarget, people: dict[str, str]
) -> None:
    source = Source.model_validate(
        {
            "name": "hr-scim",
            "kind": "scim",
            "scim": options(scim_target, people),
            "key": "id",
            "mappings": {
                "user_name": "user_name",
                "given_name": "first",
                "family_name": "last",
                "email": "mail",
                "employee_number": "number",
                "employee_type": "lower(row.type)",
            },
            "status": {"expression": 'row.type != ""'},
        }
    )
    mapper = RowMapper(source)
    mapped: list[MappedRow] = []
    problems: list[RowProblem] = []
    async with open_reader(source, {ENV: scim_target.bearer_token}) as reader:
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
    assert {change.user_name for change in result.changes} == set(people)
