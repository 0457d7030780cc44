"""The Temporary Access Pass routes on a bare app over the in-memory store (accord.authn.fakes).

The caller is let through as a help desk or an identity provider (security is the runtime's,
tested there; tests/e2e/test_api_security.py checks these routes' permissions); the
PostgreSQL store is held to the same contract in tests/integration.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from accord.authn import access_pass_api as api
from accord.authn.domain.access_pass import AccessPassPolicy, Pepper
from accord.authn.fakes import FakeAccessPasses
from accord.authn.ports import AccessPasses
from accord.runtime.problems import PROBLEM_JSON, install_problem_handlers
from accord.runtime.security.rate_limit import RateLimiter
from accord.runtime.security.roles import Caller, Role

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
HELPDESK = Caller("helpdesk", frozenset({Role.OPERATOR}), "api-token", "t-helpdesk")
IDP = Caller("okta", frozenset({Role.IDENTITY_PROVIDER}), "api-token", "t-okta")


@dataclass
class World:
    store: FakeAccessPasses = field(default_factory=FakeAccessPasses)
    now: datetime = T0
    redeemer: Caller = IDP


def app_of(world: World, *, burst: int = 100) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @asynccontextmanager
    async def transaction() -> AsyncIterator[AccessPasses]:
        yield world.store

    api.mount(
        app,
        api.AccessPassDeps(
            transaction=transaction,
            pepper=Pepper({"k1": b"\x07" * 32}, "k1"),
            policy=AccessPassPolicy(max_attempts=3),
            limiter=RateLimiter(1 / 60, burst),
            clock=lambda: world.now,
            source="accord/authn",
        ),
    )
    app.dependency_overrides[api._manager] = lambda: HELPDESK
    app.dependency_overrides[api._redeemer] = lambda: world.redeemer
    return app


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
async def client(world: World) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app_of(world))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as created:
        yield created


async def issue(client: httpx.AsyncClient, user_id: str = "u-1", **body: object) -> str:
    response = await client.post(f"/v1/users/{user_id}/access-passes", json=body or None)
    assert response.status_code == 201, response.text
    code: str = response.json()["code"]
    return code


async def test_issuing_answers_the_code_once_and_stores_only_its_hash(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.post(
        "/v1/users/u-1/access-passes", json={"lifetime": "PT8H", "one_time": False}
    )

    assert response.status_code == 201
    body = response.json()
    assert response.headers["cache-control"] == "no-store"
    assert body["user_id"] == "u-1"
    assert body["state"] == "active"
    assert body["one_time"] is False
    assert body["created_by"] == "helpdesk"
    assert body["expires_at"] == (T0 + timedelta(hours=8)).isoformat().replace("+00:00", "Z")
    stored = world.store.passes["u-1"]
    assert body["code"].encode() not in stored.code_hash
    assert body["pass_id"] == stored.pass_id


async def test_reading_a_pass_never_shows_its_code(client: httpx.AsyncClient) -> None:
    code = await issue(client)

    response = await client.get("/v1/users/u-1/access-passes")

    assert response.status_code == 200
    body = response.json()
    assert "code" not in body
    assert "code_hash" not in body
    assert code not in response.text
    assert body["state"] == "active"
    assert body["failed_attempts"] == 0


async def test_an_identity_without_a_pass_has_none_to_read_or_revoke(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/v1/users/u-9/access-passes")).status_code == 404
    assert (await client.delete("/v1/users/u-9/access-passes")).status_code == 404


async def test_a_pass_out_of_bounds_is_refused(client: httpx.AsyncClient) -> None:
    short = await client.post("/v1/users/u-1/access-passes", json={"lifetime": "PT30M"})
    naive = await client.post(
        "/v1/users/u-1/access-passes", json={"starts_at": "2026-03-09T08:00:00"}
    )

    assert short.status_code == 400
    assert short.headers["content-type"] == PROBLEM_JSON
    assert naive.status_code == 400


async def test_a_redeemed_pass_gives_one_enrolment_grant(
    client: httpx.AsyncClient, world: World
) -> None:
    code = await issue(client)

    first = await client.post("/v1/access-passes/redeem", json={"user_id": "u-1", "code": code})
    again = await client.post("/v1/access-passes/redeem", json={"user_id": "u-1", "code": code})

    assert first.status_code == 200
    grant = first.json()["enrolment_grant"]
    assert first.json()["header"] == "Accord-Enrolment-Grant"
    assert await api.grant_holds(world.store, "u-1", grant, T0 + timedelta(minutes=1))
    assert not await api.grant_holds(world.store, "u-2", grant, T0)
    assert not await api.grant_holds(world.store, "u-1", grant, T0 + timedelta(minutes=15))
    # The grant is for a first factor: once the identity holds one, it counts for nothing.
    world.store.with_factor.add("u-1")
    assert not await api.grant_holds(world.store, "u-1", grant, T0)
    # One-time: the pass is spent.
    assert again.status_code == 401
    shown = await client.get("/v1/users/u-1/access-passes")
    assert shown.json()["state"] == "used"


async def test_a_pass_is_redeemed_by_user_name(client: httpx.AsyncClient, world: World) -> None:
    world.store.user_names["ada.lovelace"] = "u-1"
    code = await issue(client)

    response = await client.post(
        "/v1/access-passes/redeem", json={"user_name": "ada.lovelace", "code": code}
    )

    assert response.status_code == 200
    assert response.json()["user_id"] == "u-1"


async def test_every_refusal_looks_the_same(client: httpx.AsyncClient, world: World) -> None:
    code = await issue(client)
    wrong = "2222-3333-4444"

    answers = [
        await client.post("/v1/access-passes/redeem", json={"user_id": "u-1", "code": wrong}),
        await client.post("/v1/access-passes/redeem", json={"user_id": "u-404", "code": code}),
        await client.post("/v1/access-passes/redeem", json={"user_name": "nobody", "code": code}),
    ]

    for answer in answers:
        assert answer.status_code == 401
        assert answer.headers["content-type"] == PROBLEM_JSON
        assert answer.json()["detail"] == "the access pass was not accepted"
        assert "enrolment_grant" not in answer.text
    assert world.store.passes["u-1"].failed_attempts == 1


async def test_an_expired_pass_is_refused(client: httpx.AsyncClient, world: World) -> None:
    code = await issue(client, lifetime="PT1H")
    world.now = T0 + timedelta(hours=1)

    response = await client.post("/v1/access-passes/redeem", json={"user_id": "u-1", "code": code})

    assert response.status_code == 401
    assert not world.store.grants


async def test_a_pass_that_starts_later_is_refused_until_then(
    client: httpx.AsyncClient, world: World
) -> None:
    hire = T0 + timedelta(days=7)
    code = await issue(client, starts_at=hire.isoformat(), lifetime="P1D")
    shown = (await client.get("/v1/users/u-1/access-passes")).json()

    early = await client.post("/v1/access-passes/redeem", json={"user_id": "u-1", "code": code})
    world.now = hire
    on_time = await client.post("/v1/access-passes/redeem", json={"user_id": "u-1", "code": code})

    assert shown["state"] == "pending"
    assert early.status_code == 401
    assert on_time.status_code == 200


async def test_wrong_codes_lock_the_pass(client: httpx.AsyncClient, world: World) -> None:
    code = await issue(client)
    for _ in range(3):
        wrong = {"user_id": "u-1", "code": "2222-3333-4444"}
        assert (await client.post("/v1/access-passes/redeem", json=wrong)).status_code == 401

    right = await client.post("/v1/access-passes/redeem", json={"user_id": "u-1", "code": code})

    assert right.status_code == 401
    assert (await client.get("/v1/users/u-1/access-passes")).json()["state"] == "locked"


async def test_a_second_pass_replaces_the_first_and_its_grants(
    client: httpx.AsyncClient, world: World
) -> None:
    first = await issue(client, one_time=False)
    redeemed = await client.post("/v1/access-passes/redeem", json={"user_id": "u-1", "code": first})
    grant = redeemed.json()["enrolment_grant"]

    second = await issue(client)

    old = await client.post("/v1/access-passes/redeem", json={"user_id": "u-1", "code": first})
    new = await client.post("/v1/access-passes/redeem", json={"user_id": "u-1", "code": second})
    assert first != second
    assert old.status_code == 401
    assert new.status_code == 200
    assert not await api.grant_holds(world.store, "u-1", grant, T0)


async def test_a_revoked_pass_no_longer_opens(client: httpx.AsyncClient) -> None:
    code = await issue(client)

    revoked = await client.delete("/v1/users/u-1/access-passes")
    response = await client.post("/v1/access-passes/redeem", json={"user_id": "u-1", "code": code})

    assert revoked.status_code == 204
    assert response.status_code == 401


async def test_a_person_redeems_only_their_own_pass(
    client: httpx.AsyncClient, world: World
) -> None:
    code = await issue(client, user_id="u-1", one_time=False)
    world.redeemer = Caller("u-2", frozenset({Role.REQUESTER}), "oidc", "u-2")

    theirs = await client.post("/v1/access-passes/redeem", json={"user_id": "u-1", "code": code})
    world.redeemer = Caller("u-1", frozenset({Role.REQUESTER}), "oidc", "u-1")
    mine = await client.post("/v1/access-passes/redeem", json={"user_id": "u-1", "code": code})

    assert theirs.status_code == 401
    assert mine.status_code == 200


async def test_redemptions_are_rate_limited_per_identity(world: World) -> None:
    transport = httpx.ASGITransport(app=app_of(world, burst=2))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        code = await issue(client)
        wrong = {"user_id": "u-1", "code": "2222-3333-4444"}
        for _ in range(2):
            assert (await client.post("/v1/access-passes/redeem", json=wrong)).status_code == 401

        limited = await client.post(
            "/v1/access-passes/redeem", json={"user_id": "u-1", "code": code}
        )
        other = await client.post("/v1/access-passes/redeem", json={"user_id": "u-2", "code": code})

    assert limited.status_code == 429
    assert "retry-after" in limited.headers
    assert other.status_code == 401  # another identity's budget is its own


async def test_a_request_names_exactly_one_identity(client: httpx.AsyncClient) -> None:
    both = {"user_id": "u-1", "user_name": "ada", "code": "2222-3333-4444"}
    neither = {"code": "2222-3333-4444"}

    assert (await client.post("/v1/access-passes/redeem", json=both)).status_code == 400
    assert (await client.post("/v1/access-passes/redeem", json=neither)).status_code == 400


async def test_a_user_name_with_control_characters_is_malformed(client: httpx.AsyncClient) -> None:
    body = {"user_name": "ada\x00", "code": "2222-3333-4444"}

    assert (await client.post("/v1/access-passes/redeem", json=body)).status_code == 400


async def test_issuing_and_redeeming_are_announced_without_the_code_or_grant(
    client: httpx.AsyncClient, world: World
) -> None:
    code = await issue(client, lifetime="P1D", one_time=False)
    redeemed = await client.post("/v1/access-passes/redeem", json={"user_id": "u-1", "code": code})
    await client.post("/v1/access-passes/redeem", json={"user_id": "u-1", "code": "2222-3333-4444"})

    issued, used = world.store.announced
    assert issued.type == "authn.access_pass_issued"
    assert issued.subject == "u-1"
    assert issued.data.model_dump()["issued_by"] == "helpdesk"
    assert issued.data.model_dump()["one_time"] is False
    assert used.type == "authn.access_pass_redeemed"
    assert used.data.model_dump()["redeemed_by"] == "okta"
    grant = redeemed.json()["enrolment_grant"]
    for event in world.store.announced:
        text = event.data.model_dump_json()
        assert code not in text
        assert code.replace("-", "") not in text
        assert grant not in text


async def test_any_caller_subject_fits_the_events(world: World) -> None:
    app = app_of(world)
    app.dependency_overrides[api._manager] = lambda: Caller(
        "auth0|5f7c8ec7c33c6c004bbafe82", frozenset({Role.ADMIN}), "oidc", "jti-1"
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        await issue(client)

    (issued,) = world.store.announced
    assert issued.data.model_dump()["issued_by"] == "auth0|5f7c8ec7c33c6c004bbafe82"
