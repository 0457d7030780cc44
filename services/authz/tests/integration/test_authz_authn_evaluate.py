"""POST /v1/authn/evaluate on a real PostgreSQL: authn's events projected by the real
handlers (lockouts, factors), then the factor policy's answer through the HTTP API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from accord.authz import access, authn_api
from accord.authz.adapters.directory import PostgresDirectory
from accord.authz.catalogue import load_catalogue
from accord.authz.domain.policy_files import default_policy_dir, load_policy_dir
from accord.authz.settings import AuthzSettings
from accord.authz.testing import consume
from accord.events import (
    AccessRequested,
    EventData,
    IdentityLocked,
    IdentityUnlocked,
    MfaEnrolled,
    MfaRemoved,
    Resource,
    UserCreated,
    new_event,
)
from accord.runtime.consumer import HandlerContext
from accord.runtime.http import create_app, secure
from accord.runtime.security.api import ApiSecurity
from accord.runtime.security.api_tokens import InvalidToken, TokenStore
from accord.runtime.security.rate_limit import RateLimiter
from accord.runtime.security.roles import Caller, Role
from accord.runtime.service import Runtime
from accord.stack.testing import migrated_pool

pytestmark = pytest.mark.integration
SCHEMA = "authz"
POLICIES = load_policy_dir(default_policy_dir())
CATALOGUE = load_catalogue(default_policy_dir() / "catalogue.yaml")
IDP_TOKEN = "acc_00000000000000c3_" + "C" * 43
APP_TOKEN = "acc_00000000000000d4_" + "D" * 43
NOON = datetime(2030, 5, 6, 12, 0, tzinfo=UTC)


class FakeTokens:
    async def verify(self, token: str) -> Caller:
        roles = {IDP_TOKEN: Role.IDENTITY_PROVIDER, APP_TOKEN: Role.APPLICATION}
        if token not in roles:
            raise InvalidToken("unknown API token")
        return Caller("gateway", frozenset({roles[token]}), "api-token", token[4:20])


@pytest_asyncio.fixture(loop_scope="session")
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool(fresh_database, SCHEMA, ["accord.authz.migrations"]) as created:
        for user_id, manager in (("mia", None), ("ada", "mia"), ("orphan", None)):
            await on(
                created,
                consume,
                UserCreated(user_id=user_id, user_name=user_id, manager_id=manager),
            )
        yield created


@pytest_asyncio.fixture(loop_scope="session")
async def client(pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app(pool)),
        base_url="http://test",
        headers={"Authorization": f"Bearer {IDP_TOKEN}"},
    ) as created:
        yield created


def app(pool: asyncpg.Pool) -> FastAPI:
    async def ready() -> dict[str, Any]:
        return {"ready": True}

    created = create_app("authz", ready)
    secure(created, max_body_bytes=64 * 1024)
    created.state.security = ApiSecurity(
        cast(TokenStore, FakeTokens()),
        None,
        per_caller=RateLimiter(1000, 1000),
        failures=RateLimiter(1000, 1000),
    )
    runtime = Runtime("authz", AuthzSettings(), pool, cast(Any, None), SCHEMA)
    authn_api.configure(created, runtime, lambda: (POLICIES, CATALOGUE), clock=lambda: NOON)
    return created


async def on(pool: asyncpg.Pool, handler: Any, data: EventData, sequence: int = 1) -> None:
    async with pool.acquire() as conn, conn.transaction():
        ctx = HandlerContext(conn=conn, source="urn:test:authz", topic=data.event_type)
        assert await handler(new_event(data, source="urn:test", sequence=sequence), ctx) == []


async def evaluate(
    client: httpx.AsyncClient, user_id: str, application: str, **context: Any
) -> dict[str, Any]:
    response = await client.post(
        "/v1/authn/evaluate",
        json={"user_id": user_id, "application": application, "context": context},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def enrolled(user_id: str, credential_id: str, factor: str) -> MfaEnrolled:
    return MfaEnrolled(user_id=user_id, credential_id=credential_id, factor=factor)  # type: ignore[arg-type]


def removed(user_id: str, credential_id: str, factor: str) -> MfaRemoved:
    return MfaRemoved(
        user_id=user_id,
        credential_id=credential_id,
        factor=factor,  # type: ignore[arg-type]
        reason="removed by its owner",
    )


async def test_an_enrolled_identity_is_asked_for_its_second_factor_off_the_network(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    await on(pool, consume, enrolled("ada", "cred-totp-1", "totp"))

    answer = await evaluate(client, "ada", "wiki", network="internet", presented=["pwd"])

    assert answer["allowed"] is True
    assert answer["required"] == ["mfa"]
    assert answer["missing"] == ["mfa"]
    assert answer["step_up"] is True
    assert answer["enrolment_needed"] is False
    assert answer["reasons"] == {
        "authenticate": ["active-users-may-sign-in"],
        "mfa": ["mfa-off-corporate-network"],
    }
    assert answer["acceptable"] == {"mfa": ["hwk", "mfa", "otp", "swk"]}
    assert answer["decision_id"].startswith("dec-")

    done = await evaluate(client, "ada", "wiki", network="internet", presented=["pwd", "otp"])
    assert (done["satisfied"], done["missing"], done["step_up"]) == (["mfa"], [], False)


async def test_a_privileged_application_sends_a_totp_only_identity_to_enrol_webauthn(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    await on(pool, consume, enrolled("ada", "cred-totp-2", "totp"))

    answer = await evaluate(client, "ada", "payroll", network="corporate", presented=["pwd"])

    assert answer["required"] == ["phishing_resistant"]
    assert answer["enrolment_needed"] is True
    assert answer["enrol"] == {"phishing_resistant": ["webauthn"]}

    await on(pool, consume, enrolled("ada", "cred-key-1", "webauthn"))
    answer = await evaluate(client, "ada", "payroll", network="corporate", presented=["pwd"])
    assert answer["enrolment_needed"] is False
    assert answer["step_up"] is True

    keyed = await evaluate(client, "ada", "payroll", network="internet", presented=["pwd", "hwk"])
    assert keyed["satisfied"] == ["mfa", "phishing_resistant"]
    assert keyed["step_up"] is False


async def test_removing_one_credential_keeps_the_kind_while_another_remains(
    pool: asyncpg.Pool,
) -> None:
    await on(pool, consume, enrolled("ada", "key-a", "webauthn"))
    await on(pool, consume, enrolled("ada", "key-b", "webauthn"))
    await on(pool, consume, removed("ada", "key-a", "webauthn"))

    async with pool.acquire() as conn:
        assert (await PostgresDirectory(conn).principal_entities("ada"))[0].attrs["factors"] == {
            "webauthn"
        }
    await on(pool, consume, removed("ada", "key-b", "webauthn"))
    async with pool.acquire() as conn:
        assert "factors" not in (await PostgresDirectory(conn).principal_entities("ada"))[0].attrs


async def test_a_removal_that_arrives_before_its_enrolment_wins(pool: asyncpg.Pool) -> None:
    await on(pool, consume, removed("ada", "late", "totp"))
    await on(pool, consume, enrolled("ada", "late", "totp"))
    await on(pool, consume, enrolled("ada", "late", "totp"))  # redelivered

    async with pool.acquire() as conn:
        assert "factors" not in (await PostgresDirectory(conn).principal_entities("ada"))[0].attrs


async def test_a_locked_identity_may_not_sign_in_until_unlocked(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    await on(
        pool,
        consume,
        IdentityLocked(user_id="ada", lockout_id="lo-1", reason="failed sign-ins", failures=5),
    )

    answer = await evaluate(client, "ada", "wiki", network="corporate", presented=["pwd", "hwk"])

    assert answer["allowed"] is False
    assert answer["step_up"] is False
    assert answer["reasons"]["authenticate"] == ["locked-users-may-not-sign-in"]

    await on(
        pool,
        consume,
        IdentityUnlocked(user_id="ada", lockout_id="lo-1", request_id="req-1"),
    )
    await on(pool, consume, IdentityLocked(user_id="ada", lockout_id="lo-1", reason="x"))
    answer = await evaluate(client, "ada", "wiki", network="corporate", presented=["pwd"])
    assert answer["allowed"] is True  # a redelivered lock does not reopen an ended lockout


async def test_high_risk_refuses_a_privileged_application(client: httpx.AsyncClient) -> None:
    answer = await evaluate(client, "mia", "payroll", risk="high", presented=["pwd", "hwk"])

    assert answer["allowed"] is False
    assert answer["reasons"]["authenticate"] == ["high-risk-blocks-privileged-apps"]


async def test_an_unknown_identity_is_answered_not_allowed(client: httpx.AsyncClient) -> None:
    answer = await evaluate(client, "nobody-known", "wiki", network="corporate")

    assert answer["allowed"] is False
    assert answer["reasons"]["authenticate"] == ["inactive-users-get-nothing"]


@pytest.mark.parametrize(
    "body",
    [
        {"user_id": "ada", "application": "wiki", "context": {"hour": 24}},
        {"user_id": "ada", "application": "wiki", "context": {"risk": "extreme"}},
        {"user_id": "ada", "application": "wiki", "extra": True},
        {"user_id": "ada/../x", "application": "wiki"},
    ],
)
async def test_bad_input_is_a_400_problem(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await client.post("/v1/authn/evaluate", json=body)

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_callers_without_the_permission_are_refused(client: httpx.AsyncClient) -> None:
    body = {"user_id": "ada", "application": "wiki"}
    forbidden = await client.post(
        "/v1/authn/evaluate", json=body, headers={"Authorization": f"Bearer {APP_TOKEN}"}
    )
    anonymous = await client.post("/v1/authn/evaluate", json=body, headers={"Authorization": ""})

    assert (forbidden.status_code, anonymous.status_code) == (403, 401)


async def test_the_endpoint_documents_its_answers(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/v1/authn/evaluate"]["post"]

    assert {"200", "400", "401", "403"} <= set(operation["responses"])
    assert "422" not in operation["responses"]


async def test_recovery_requests_need_the_manager_and_fail_clearly_without_one(
    pool: asyncpg.Pool,
) -> None:
    settings = access.ApprovalSettings()
    outcomes = {}
    for principal, requester in (("ada", "ada"), ("orphan", "orphan"), ("ada", "mia")):
        request = AccessRequested(
            request_id=f"req-unlock-{principal}-{requester}",
            requester_id=requester,
            principal_id=principal,
            resource=Resource(application="accord", entitlement="unlock"),
            duration_seconds=300,
        )
        async with pool.acquire() as conn, conn.transaction():
            events = await access.decide_request(
                conn,
                new_event(request, source="urn:test"),
                policies=POLICIES,
                catalogue=CATALOGUE,
                settings=settings,
                source="urn:test:authz",
            )
        outcomes[(principal, requester)] = [e.data for e in events]

    asked = outcomes[("ada", "ada")]
    assert asked[0].decision == "approval_required"  # type: ignore[attr-defined]
    assert asked[1].approvers == ("mia",)  # type: ignore[attr-defined]
    for refused in (outcomes[("orphan", "orphan")], outcomes[("ada", "mia")]):
        assert refused[0].decision == "deny"  # type: ignore[attr-defined]
        assert refused[0].reasons[-1] == (  # type: ignore[attr-defined]
            "approval stage 1 (manager) has no approver other than the requester or the principal"
        )
