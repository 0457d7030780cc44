"""create_app and the problem+json handlers: errors name fields, never echo values; no /docs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from accord.runtime.http import create_app
from accord.runtime.problems import PROBLEM_JSON, problem

#: Planted in rejected input: it must never come back in a response.
SECRET = "S3cr3t-Pl4nted-9f8e7d"


class Grant(BaseModel):
    subject: str
    level: int
    code: str = Field(pattern=r"^[a-z]{3}$")


class Strict(BaseModel):
    """Refuses unknown fields; its limits map keys to small numbers; its note quotes itself."""

    model_config = ConfigDict(extra="forbid")

    name: str
    limits: dict[Annotated[str, Field(max_length=8)], int] = {}
    note: str = ""

    @field_validator("note")
    @classmethod
    def _no_shouting(cls, value: str) -> str:
        if value.isupper():
            raise ValueError(f"{value} is shouted")
        return value


#: A model with 25 required fields, for more errors than are listed.
Wide = create_model("Wide", **{f"f{i:02d}": (int, ...) for i in range(25)})  # type: ignore[call-overload]


class Readiness:
    def __init__(self) -> None:
        self.report: dict[str, Any] = {"ready": True, "database": "ok"}

    async def __call__(self) -> dict[str, Any]:
        return self.report


@pytest.fixture
def readiness() -> Readiness:
    return Readiness()


@pytest.fixture
def app(readiness: Readiness) -> FastAPI:
    app = create_app("probe", readiness, version="9.9.9")

    @app.get("/items/{item_id}")
    async def item(item_id: int, limit: int = 10) -> dict[str, int]:
        return {"item_id": item_id, "limit": limit}

    @app.post("/grants")
    async def grants(grant: Grant) -> dict[str, str]:
        return {"subject": grant.subject}

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"thing_id": thing_id}

    @app.post("/strict")
    async def strict(body: Strict) -> dict[str, str]:
        return {"name": body.name}

    @app.post("/wide")
    async def wide(body: Wide) -> dict[str, str]:
        return {}

    @app.get("/teapot")
    async def teapot() -> None:
        raise HTTPException(418, "short and stout", headers={"X-Teapot": "yes"})

    @app.get("/conflict")
    async def conflict() -> None:
        raise HTTPException(409, {"reason": "taken"})

    @app.get("/database-down")
    async def database_down() -> None:
        raise ConnectionRefusedError(111, f"Connect call failed ('db.internal', 5432) {SECRET}")

    @app.get("/unstorable")
    async def unstorable() -> None:
        raise asyncpg.exceptions.CharacterNotInRepertoireError(f"0x00 in {SECRET}")

    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def assert_problem(response: httpx.Response, status: int, title: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["type"] == "about:blank"
    assert body["title"] == title
    assert body["status"] == status
    assert isinstance(body["detail"], str)
    return body


def locations(body: dict[str, Any]) -> list[str]:
    return [e["location"] for e in body["errors"]]


# --- problem() -------------------------------------------------------------------------------


def test_problem_builds_rfc9457_json() -> None:
    response = problem(429, "slow down", headers={"Retry-After": "3"}, limit=5)
    assert response.status_code == 429
    assert response.media_type == PROBLEM_JSON
    assert response.headers["retry-after"] == "3"
    assert response.body == (
        b'{"type":"about:blank","title":"Too Many Requests","status":429,'
        b'"detail":"slow down","limit":5}'
    )


async def test_an_unreachable_database_is_503_to_retry_without_its_address(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/database-down")

    body = assert_problem(response, 503, "Service Unavailable")
    assert response.headers["retry-after"] == "5"
    assert "db.internal" not in response.text
    assert SECRET not in response.text
    assert body["detail"] == "a dependency is unavailable; try again"


async def test_a_value_the_database_refuses_is_400_without_the_value(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/unstorable")

    body = assert_problem(response, 400, "Bad Request")
    assert SECRET not in response.text
    assert "as given" in body["detail"]


def test_problem_with_an_unknown_status_is_titled_error() -> None:
    assert b'"title":"Error"' in problem(418, "teapot").body


# --- routes and errors -----------------------------------------------------------------------


async def test_unknown_route_is_404_problem(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/no/such/route"), 404, "Not Found")
    assert body["detail"] == "Not Found"


async def test_wrong_method_is_405_problem_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.delete("/healthz")
    assert_problem(response, 405, "Method Not Allowed")
    assert "GET" in response.headers["allow"]


async def test_http_exception_keeps_status_detail_and_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/teapot")
    body = assert_problem(response, 418, "Error")
    assert body["detail"] == "short and stout"
    assert response.headers["x-teapot"] == "yes"


async def test_non_string_detail_is_rendered_as_text(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/conflict"), 409, "Conflict")
    assert "taken" in body["detail"]


async def test_invalid_query_is_400_naming_the_field_not_the_value(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/items/1", params={"limit": SECRET})
    body = assert_problem(response, 400, "Bad Request")
    assert locations(body) == ["query.limit"]
    assert body["errors"][0]["message"]
    assert SECRET not in response.text


async def test_invalid_path_parameter_is_not_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/items/{SECRET}")
    body = assert_problem(response, 400, "Bad Request")
    assert locations(body) == ["path.item_id"]
    assert SECRET not in response.text


async def test_invalid_body_fields_are_named_not_echoed(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/grants", json={"subject": ["not", SECRET], "level": SECRET, "code": SECRET}
    )
    body = assert_problem(response, 400, "Bad Request")
    assert sorted(locations(body)) == ["body.code", "body.level", "body.subject"]
    assert SECRET not in response.text
    assert all(set(e) == {"location", "message"} for e in body["errors"])


async def test_unknown_fields_are_not_named(client: httpx.AsyncClient) -> None:
    # A made-up field name is input too (it may be a pasted secret): the object is named.
    response = await client.post(
        "/strict", json={"name": "n", SECRET: 1, f"{SECRET}-2": 2, "requester_id": "x"}
    )
    body = assert_problem(response, 400, "Bad Request")
    assert body["errors"] == [
        {"location": "body", "message": "holds a field the schema does not declare"}
    ]
    assert SECRET not in response.text
    assert "requester_id" not in response.text


async def test_a_mapping_key_is_not_named(client: httpx.AsyncClient) -> None:
    response = await client.post("/strict", json={"name": "n", "limits": {SECRET: 1}})
    body = assert_problem(response, 400, "Bad Request")
    assert locations(body) == ["body.limits"]
    assert SECRET not in response.text


async def test_a_validator_message_quoting_the_value_is_replaced(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/strict", json={"name": "n", "note": SECRET.upper()})
    body = assert_problem(response, 400, "Bad Request")
    assert body["errors"] == [{"location": "body.note", "message": "the value is not valid here"}]
    assert SECRET.upper() not in response.text


async def test_missing_body_fields_are_named(client: httpx.AsyncClient) -> None:
    response = await client.post("/grants", json={"level": 1})
    body = assert_problem(response, 400, "Bad Request")
    assert sorted(locations(body)) == ["body.code", "body.subject"]


async def test_malformed_json_is_400_without_echo(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/grants",
        content=f'{{"subject": "{SECRET}", "level": {SECRET}}}',
        headers={"Content-Type": "application/json"},
    )
    body = assert_problem(response, 400, "Bad Request")
    assert locations(body)[0].startswith("body")
    assert SECRET not in response.text


async def test_at_most_twenty_errors_are_listed(client: httpx.AsyncClient) -> None:
    response = await client.post("/wide", json={})
    body = assert_problem(response, 400, "Bad Request")
    assert len(body["errors"]) == 20


# --- create_app ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/docs/oauth2-redirect"])
async def test_no_interactive_docs(client: httpx.AsyncClient, path: str) -> None:
    assert_problem(await client.get(path), 404, "Not Found")


async def test_openapi_document_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert document["info"] == {"title": "Accord probe", "version": "9.9.9"}
    assert {"/healthz", "/readyz", "/items/{item_id}"} <= set(document["paths"])


async def test_openapi_documents_validation_errors_as_400_problems(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    answers = document["paths"]["/items/{item_id}"]["get"]["responses"]
    assert "422" not in answers
    assert "application/problem+json" in answers["400"]["content"]
    assert "HTTPValidationError" not in str(document)


async def test_openapi_documents_what_the_input_guard_refuses(
    client: httpx.AsyncClient,
) -> None:
    # No NUL in a query or a body string, nor in a free-form object's names; no control
    # character in a path: what InputGuardMiddleware refuses, said where no pattern says more.
    document = (await client.get("/openapi.json")).json()
    grant = document["components"]["schemas"]["Grant"]["properties"]
    assert grant["subject"]["pattern"] == "^[^\\x00]*$"
    assert grant["code"]["pattern"] == "^[a-z]{3}$"
    limits = document["components"]["schemas"]["Strict"]["properties"]["limits"]
    assert limits["propertyNames"] == {"maxLength": 8, "pattern": "^[^\\x00]*$"}
    (by_id,) = document["paths"]["/things/{thing_id}"]["get"]["parameters"]
    assert by_id["schema"]["pattern"] == "^[^\\x00-\\x1f\\x7f]*$"
    (limit,) = document["paths"]["/items/{item_id}"]["get"]["parameters"][1:]
    assert "pattern" not in limit["schema"]  # an integer


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "service": "probe"}


async def test_readyz_ready_and_not(client: httpx.AsyncClient, readiness: Readiness) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"service": "probe", "ready": True, "database": "ok"}
    readiness.report = {"ready": False, "database": "down"}
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"service": "probe", "ready": False, "database": "down"}
