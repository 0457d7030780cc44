"""The lockout API on a real PostgreSQL: lock by hand, list and read lockouts, ask for an
unlock or a factor reset (idempotent), pending enrolments; statuses, Location headers and
bodies as the clients and the e2e tests read them, each as the OpenAPI document says."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import jsonschema_rs
import pytest
import pytest_asyncio
from pydantic_core import to_jsonable_python

from accord.authn import lockout_api
from accord.authn.adapters import enrolments, identities
from accord.authn.bootstrap import postgres_ports
from accord.authn.domain.lockout import LockoutPolicy
from accord.authn.settings import AuthnSettings
from accord.authn.signals import send_nothing
from accord.stack.testing import migrated_pool

from .test_authn_factors_store import ADA, ADMIN, EVE, problem, runtime_on, secured_app

pytestmark = pytest.mark.integration
SCHEMA = "authn"


@pytest_asyncio.fixture(loop_scope="session")
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool(fresh_database, SCHEMA, ["accord.authn.migrations"]) as created:
        yield created


@pytest_asyncio.fixture(loop_scope="session")
async def client(pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    runtime = runtime_on(pool, AuthnSettings())
    app = secured_app()
    policy = LockoutPolicy(threshold=3, window=timedelta(minutes=10))
    lockout_api.configure(app, runtime, postgres_ports(policy, send_nothing))
    transport = httpx.ASGITransport(app=app)
    hooks = {"response": [conformance(app.openapi())]}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", event_hooks=hooks
    ) as created:
        yield created


def conformance(
    document: dict[str, Any],
) -> Callable[[httpx.Response], Coroutine[Any, Any, None]]:
    """A response hook: every answer's status is one the OpenAPI document gives for its
    operation, and its body matches the schema given for it (as the e2e API fuzzing's
    response conformance checks do)."""
    templates = [
        (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), path)
        for path in document["paths"]
    ]

    async def check(response: httpx.Response) -> None:
        request = response.request
        path = next(t for pattern, t in templates if pattern.match(request.url.path))
        operation = document["paths"][path][request.method.lower()]
        given = operation["responses"].get(str(response.status_code))
        assert given is not None, f"{request.method} {path}: {response.status_code} undocumented"
        await response.aread()
        media_type = response.headers.get("content-type", "").split(";")[0]
        if "content" not in given:
            assert not response.content, f"{request.method} {path}: an undocumented body"
            return
        schema = given["content"][media_type]["schema"]
        validator = jsonschema_rs.Draft202012Validator(
            {**schema, "components": document["components"]}, validate_formats=True
        )
        errors = [str(e) for e in validator.iter_errors(response.json())]
        assert errors == [], errors

    return check


async def known(pool: asyncpg.Pool, *users: str) -> None:
    async with pool.acquire() as conn:
        for user in users:
            await identities.upsert(conn, user, sequence=1, status="active", user_name=user)


async def topics(pool: asyncpg.Pool, key: str) -> list[str]:
    rows = await pool.fetch("SELECT topic FROM outbox WHERE key = $1 ORDER BY id", key.encode())
    return [r["topic"] for r in rows]


async def row_of(pool: asyncpg.Pool, lockout_id: str) -> dict[str, Any]:
    row = await pool.fetchrow("SELECT * FROM lockouts WHERE lockout_id = $1", lockout_id)
    assert row is not None
    jsonable: dict[str, Any] = to_jsonable_python(dict(row))
    return jsonable


async def test_a_lock_by_hand_is_answered_listed_and_read(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    problem(
        await client.post("/v1/lockouts", json={"user_id": "nobody", "reason": "x"}, headers=ADMIN),
        404,
    )
    await known(pool, "u-hand", "u-other")
    body = {"user_id": "u-hand", "reason": "phished"}

    locked = await client.post("/v1/lockouts", json=body, headers=ADMIN)

    assert locked.status_code == 201, locked.text
    lockout = locked.json()
    assert locked.headers["Location"] == f"/v1/lockouts/{lockout['lockout_id']}"
    assert lockout == {**await row_of(pool, lockout["lockout_id"]), "open": True}
    assert lockout["reason"] == "phished (locked by root)"
    assert (lockout["failures"], lockout["unlocked_at"], lockout["unlock_request_id"]) == (
        0,
        None,
        None,
    )
    assert await topics(pool, "u-hand") == ["identity.locked", "session.revoked"]
    again = await client.post("/v1/lockouts", json=body, headers=ADMIN)
    assert (again.status_code, again.json()) == (200, lockout)
    assert again.headers["Location"] == locked.headers["Location"]
    problem(await client.post("/v1/lockouts", json=body, headers=ADA), 403)
    problem(await client.post("/v1/lockouts", json={**body, "extra": 1}, headers=ADMIN), 400)

    one = await client.get(f"/v1/lockouts/{lockout['lockout_id']}", headers=ADMIN)
    assert (one.status_code, one.json()) == (200, lockout)
    problem(await client.get("/v1/lockouts/lock-unknown", headers=ADMIN), 404)
    await client.post("/v1/lockouts", json={"user_id": "u-other", "reason": "r"}, headers=ADMIN)
    page = await client.get("/v1/lockouts", params={"user_id": "u-hand"}, headers=ADMIN)
    assert page.json() == {"items": [lockout], "next_before": None}
    first = (await client.get("/v1/lockouts", params={"limit": 1}, headers=ADMIN)).json()
    assert first["next_before"] == first["items"][0]["locked_at"]
    rest = await client.get(
        "/v1/lockouts", params={"limit": 1, "before": first["next_before"]}, headers=ADMIN
    )
    assert rest.json()["items"] == [lockout]
    opened = await client.get("/v1/lockouts", params={"open": "true"}, headers=ADMIN)
    assert {i["user_id"] for i in opened.json()["items"]} == {"u-hand", "u-other"}
    problem(await client.get("/v1/lockouts", params={"before": "yesterday"}, headers=ADMIN), 400)
    problem(await client.get("/v1/lockouts", headers=ADA), 403)


async def test_unlock_and_reset_requests_are_filed_once_per_key(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await known(pool, "ada-api", "u-locked")
    await client.post("/v1/lockouts", json={"user_id": "u-locked", "reason": "r"}, headers=ADMIN)
    ask = {"user_id": "u-locked", "justification": "verified by phone"}
    keyed = {**ADMIN, "Idempotency-Key": "k-1"}

    filed = await client.post("/v1/unlock-requests", json=ask, headers=keyed)

    assert filed.status_code == 202, filed.text
    answer = filed.json()
    assert answer == {
        "request_id": answer["request_id"],
        "kind": "unlock",
        "user_id": "u-locked",
    }
    assert filed.headers["Location"] == f"/v1/access-requests/{answer['request_id']}"
    again = await client.post("/v1/unlock-requests", json=ask, headers=keyed)
    assert (again.status_code, again.json()) == (200, answer)
    assert (await topics(pool, answer["request_id"])) == ["access.requested"]
    problem(await client.post("/v1/unlock-requests", json={"user_id": "ada-api"}, headers=ADA), 409)
    problem(await client.post("/v1/unlock-requests", json=ask, headers=EVE), 403)

    reset = await client.post("/v1/mfa-reset-requests", json={"user_id": "ada-api"}, headers=ADA)
    assert reset.status_code == 202, reset.text
    assert reset.json()["kind"] == "mfa-reset"
    assert reset.json()["user_id"] == "ada-api"
    problem(await client.post("/v1/mfa-reset-requests", json={"user_id": "x"}, headers=EVE), 403)
    bad_key = {**ADA, "Idempotency-Key": "with space"}
    problem(
        await client.post("/v1/mfa-reset-requests", json={"user_id": "ada-api"}, headers=bad_key),
        400,
    )


async def test_pending_enrolments_are_paged_by_user(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    async with pool.acquire() as conn:
        for user in ("e-1", "e-2", "e-3"):
            await enrolments.requested(conn, user, ["totp"], f"s-{user}")
        await enrolments.enrolled(conn, "e-2", (await conn.fetchval("SELECT now()")))
        rows = [await enrolments.of_user(conn, user) for user in ("e-1", "e-3")]
    expected = to_jsonable_python(rows)

    page = await client.get("/v1/enrolments", params={"limit": 1}, headers=ADMIN)

    assert page.status_code == 200
    assert page.json() == {"items": expected[:1], "next_after": "e-1"}
    rest = await client.get("/v1/enrolments", params={"after": "e-1"}, headers=ADMIN)
    assert rest.json() == {"items": expected[1:], "next_after": None}
    problem(await client.get("/v1/enrolments", headers=ADA), 403)
