"""The scim options, and the scim reader's paging and refusals against a provider written
here (an httpx transport answering as a SCIM provider would, oddities included)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from accord.sources.config import ScimOptions, Source, load_sources
from accord.sources.mapping import RowMapper
from accord.sources.problems import ProblemKind
from accord.sources.readers import SourceRejected, SourceUnavailable
from accord.sources.readers.scim import ScimReader, scim_client

TOKEN = "s3cr3t-token-value"
SCIM: dict[str, Any] = {
    "url": "https://scim.example.org/scim/v2",
    "token_env": "HR_SCIM_TOKEN",
    "attributes": ["userName", "name.givenName"],
}


def test_scim_options_load_with_defaults() -> None:
    options = ScimOptions.model_validate(SCIM)
    assert (options.page_size, options.timeout_s, options.filter) == (100, 30.0, None)
    assert list(options.fields) == ["userName", "name.givenName"]


def test_attributes_may_name_the_fields() -> None:
    named = {**SCIM, "attributes": {"first": "name.givenName", "mail": "emails.value"}}
    options = ScimOptions.model_validate(named)
    assert {field: path.text for field, path in options.fields.items()} == {
        "first": "name.givenName",
        "mail": "emails.value",
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"url": "ldap://scim.example.org"}, "url"),
        ({"url": "https://user:pw@scim.example.org/v2"}, "url"),
        ({"url": "https://scim.example.org/v2?token=x"}, "url"),
        ({"token_env": "Bearer abc.def"}, "token_env"),
        ({"token_env": None}, "token_env"),
        ({"token": TOKEN}, "Extra inputs are not permitted"),
        ({"filter": "  "}, "`filter` is empty"),
        ({"attributes": []}, "attributes"),
        ({"attributes": ["userName", "emails[type ne 1].value"]}, "no SCIM attribute path"),
        ({"attributes": ["id", "userName"]}, "`id` is always read"),
        ({"attributes": {"ID": "userName"}}, "`id` is always read"),
        ({"attributes": ["userName", "USERNAME"]}, "named twice"),
        ({"attributes": {"a": "userName", "": "name.givenName"}}, "field name is empty"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": 5000}, "page_size"),
        ({"timeout_s": 0}, "timeout_s"),
    ],
)
def test_scim_mistakes_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ScimOptions.model_validate({**SCIM, **changes})


def test_a_scim_source_needs_the_scim_options() -> None:
    source = {"name": "hr", "kind": "scim", "key": "id", "mappings": {"user_name": "userName"}}
    assert Source.model_validate({**source, "scim": SCIM}).scim is not None
    with pytest.raises(ValidationError, match="exactly the `scim` options"):
        Source.model_validate(source)


def test_the_guides_scim_example_loads_and_its_mappings_read_its_fields() -> None:
    guide = (Path(__file__).parents[4] / "docs" / "sources.md").read_text(encoding="utf-8")
    (example,) = [b for b in re.findall(r"```yaml\n(.*?)```", guide, re.S) if "kind: scim" in b]
    (source,) = load_sources(example).sources
    assert source.scim is not None
    RowMapper(source).check_columns(("id", *source.scim.fields))


Handler = Callable[[httpx.Request], httpx.Response]


def users(total: int, *, cap: int | None = None, drop_after: int | None = None) -> Handler:
    """A provider of `total` users that sends at most `cap` per page, and loses one user
    after `drop_after` requests (an HR job deleting someone during the read)."""
    calls = 0

    def handle(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        now = total - 1 if drop_after is not None and calls > drop_after else total
        start, count = int(request.url.params["startIndex"]), int(request.url.params["count"])
        size = max(0, min(count, cap or count, now - start + 1))
        page = [{"id": f"u{n}", "userName": f"user{n}"} for n in range(start, start + size)]
        return listing(page, now, start)

    return handle


def listing(resources: list[Any], total: int, start: int = 1) -> httpx.Response:
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": total,
        "itemsPerPage": len(resources),
        "startIndex": start,
        "Resources": resources,
    }
    return httpx.Response(200, json=body)


@contextlib.asynccontextmanager
async def reader(handler: Handler, **changes: Any) -> AsyncIterator[ScimReader]:
    options = ScimOptions.model_validate({**SCIM, "attributes": ["userName"], **changes})
    client = scim_client(options, TOKEN, httpx.MockTransport(handler))
    async with client:
        yield ScimReader("hr", options, client, TOKEN)


async def read(handler: Handler, **changes: Any) -> tuple[ScimReader, list[dict[str, str]]]:
    async with reader(handler, **changes) as scim:
        return scim, [row.values async for row in scim.rows()]


async def test_pages_shorter_than_asked_for_are_read_to_the_end() -> None:
    scim, rows = await read(users(23, cap=4), page_size=10)
    assert [row["id"] for row in rows] == [f"u{n}" for n in range(1, 24)]
    assert scim.pages == 6  # 4 a page, whatever was asked for


async def test_an_empty_provider_is_one_page() -> None:
    scim, rows = await read(users(0))
    assert (rows, scim.pages) == ([], 1)


async def test_a_total_that_changes_during_the_read_fails_the_run() -> None:
    with pytest.raises(
        SourceUnavailable, match=r"changed during the read \(totalResults 30, then 29\)"
    ):
        await read(users(30, drop_after=1), page_size=10)


async def test_pages_that_end_before_the_total_fail_the_run() -> None:
    def short(request: httpx.Request) -> httpx.Response:
        start = int(request.url.params["startIndex"])
        page = [{"id": f"u{n}"} for n in range(start, min(start + 10, 16))]
        return listing(page, 40, start)

    with pytest.raises(SourceUnavailable, match="announced 40 users but its pages ended after 15"):
        await read(short, page_size=10)


async def test_a_provider_that_ignores_start_index_is_refused() -> None:
    def first_page(request: httpx.Request) -> httpx.Response:
        return listing([{"id": f"u{n}"} for n in range(1, 11)], 40, 1)

    with pytest.raises(SourceRejected, match="asked for users from 11, got them from 1"):
        await read(first_page, page_size=10)


async def test_a_bad_resource_is_a_row_problem_and_reading_goes_on() -> None:
    resources = [
        {"id": "u1", "userName": "a"},
        "not an object",
        {"userName": "no id"},
        {"id": "u4", "userName": {"formatted": "an object"}},
        {"id": "u5"},
    ]
    scim, rows = await read(lambda request: listing(resources, 5))
    assert rows == [{"id": "u1", "userName": "a"}, {"id": "u5", "userName": ""}]
    assert [(p.kind, p.line, p.reason) for p in scim.problems] == [
        (ProblemKind.UNREADABLE, 2, "resource is no JSON object (str)"),
        (ProblemKind.UNREADABLE, 3, "resource has no id"),
        (
            ProblemKind.UNREADABLE,
            4,
            "user u4: userName is an object, not one value (name a sub-attribute)",
        ),
    ]


@pytest.mark.parametrize(
    ("response", "error", "message"),
    [
        (
            httpx.Response(503, json={"detail": f"down for {TOKEN}"}),
            SourceUnavailable,
            "-> 503: down for \\*\\*\\*",
        ),
        (httpx.Response(429), SourceUnavailable, "-> 429$"),
        (
            httpx.Response(403, json={"detail": "forbidden"}),
            SourceRejected,
            "-> 403: forbidden \\(is the token in HR_SCIM_TOKEN",
        ),
        (httpx.Response(404, text="<html>nope</html>"), SourceRejected, "-> 404$"),
        (httpx.Response(200, text="<html>login</html>"), SourceRejected, "no SCIM ListResponse"),
        (
            httpx.Response(200, json={"totalResults": 1, "Resources": {}}),
            SourceRejected,
            "Resources is no list",
        ),
    ],
)
async def test_refusals_are_typed_and_carry_no_token(
    response: httpx.Response, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as raised:
        await read(lambda request: response)
    assert TOKEN not in str(raised.value)


async def test_a_timeout_is_unavailable() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(SourceUnavailable, match="page at 1 timed out"):
        await read(slow)


async def test_the_request_asks_for_a_page_the_filter_and_the_attributes() -> None:
    seen: list[httpx.URL] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return listing([], 0)

    ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    paths = [
        "name.givenName",
        "emails[primary eq true].value",
        "emails.type",
        f"{ent}:manager.value",
    ]
    await read(record, filter="active eq true", page_size=50, attributes=paths)
    (url,) = seen
    assert url.path == "/scim/v2/Users"
    assert dict(url.params) == {
        "startIndex": "1",
        "count": "50",
        "filter": "active eq true",
        "attributes": f"id,name,emails,{ent}:manager",
    }
