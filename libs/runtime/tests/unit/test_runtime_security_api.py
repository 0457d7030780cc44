"""ApiSecurity, require() and authenticated() with a fake token store and no OIDC."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, cast

import httpx
import pytest
from fastapi import Depends, FastAPI

from accord.runtime.http import create_app
from accord.runtime.problems import PROBLEM_JSON
from accord.runtime.security.api import ApiSecurity, authenticated, own_or, require
from accord.runtime.security.api_tokens import InvalidToken, TokenStore
from accord.runtime.security.rate_limit import RateLimiter
from accord.runtime.security.roles import Caller, Permission, Role

ADMIN_TOKEN = "acc_00000000000000a1_" + "A" * 43
OPERATOR_TOKEN = "acc_00000000000000b2_" + "B" * 43
REQUESTER_TOKEN = "acc_00000000000000c3_" + "C" * 43
SCOPED_TOKEN = "acc_00000000000000d4_" + "D" * 43
APPLICATION_TOKEN = "acc_00000000000000e5_" + "E" * 43
CHALLENGE = 'Bearer realm="accord"'
INVALID_CHALLENGE = 'Bearer realm="accord", error="invalid_token"'


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeTokenStore:
    """Knows a few tokens by their full text; counts how often it is asked."""

    def __init__(self) -> None:
        self.callers: dict[str, Caller] = {}
        self.verified: list[str] = []
        for token, subject, roles, scopes in [
            (ADMIN_TOKEN, "ada", {Role.ADMIN}, None),
            (OPERATOR_TOKEN, "otto", {Role.OPERATOR}, None),
            (REQUESTER_TOKEN, "rita", {Role.REQUESTER}, None),
            (SCOPED_TOKEN, "sam", {Role.ADMIN}, {Permission.IDENTITIES_READ}),
            (APPLICATION_TOKEN, "gateway", {Role.APPLICATION}, None),
        ]:
            self.callers[token] = Caller(
                subject=subject,
                roles=frozenset(roles),
                kind="api-token",
                credential_id=token[4:20],
                scopes=frozenset(scopes) if scopes is not None else None,
            )

    async def verify(self, token: str) -> Caller:
        self.verified.append(token)
        if token in self.callers:
            return self.callers[token]
        if token.startswith("acc_revoked"):
            raise InvalidToken("revoked API token")
        raise InvalidToken("unknown API token")


class Harness:
    def __init__(self) -> None:
        self.store = FakeTokenStore()
        self.caller_clock = FakeClock()
        self.failure_clock = FakeClock()
        self.per_caller = RateLimiter(1.0, 5, clock=self.caller_clock)
        self.failures = RateLimiter(1 / 60, 4, clock=self.failure_clock)
        self.per_application = RateLimiter(1.0, 20, clock=self.caller_clock)
        self.security = ApiSecurity(
            cast(TokenStore, self.store),
            None,
            per_caller=self.per_caller,
            failures=self.failures,
            per_application=self.per_application,
        )


IdentityReader = Annotated[Caller, Depends(require(Permission.IDENTITIES_READ))]
AuditReader = Annotated[Caller, Depends(require(Permission.AUDIT_READ))]
AnyCaller = Annotated[Caller, Depends(authenticated())]
SagaViewer = Annotated[Caller, Depends(own_or(Permission.SAGAS_READ))]


async def _ready() -> dict[str, Any]:
    return {"ready": True}


def build_app(security: ApiSecurity | None) -> FastAPI:
    app = create_app("api-test", _ready)
    if security is not None:
        app.state.security = security

    @app.get("/identities")
    async def identities(caller: IdentityReader) -> dict[str, str]:
        return {"subject": caller.subject}

    @app.get("/audit")
    async def audit(caller: AuditReader) -> dict[str, str]:
        return {"subject": caller.subject}

    # The way services guard whole routers: a dependency that returns nothing to the endpoint.
    @app.get("/sagas", dependencies=[Depends(require(Permission.SAGAS_READ))])
    async def sagas() -> list[str]:
        return []

    @app.get("/my-sagas")
    async def my_sagas(caller: SagaViewer) -> dict[str, bool]:
        return {"everyone": caller.may(Permission.SAGAS_READ)}

    @app.get("/me")
    async def me(caller: AnyCaller) -> dict[str, Any]:
        return {
            "subject": caller.subject,
            "kind": caller.kind,
            "roles": sorted(caller.roles),
            "permissions": sorted(caller.permissions),
        }

    return app


@pytest.fixture
def harness() -> Harness:
    return Harness()


ClientFactory = Callable[..., httpx.AsyncClient]


@pytest.fixture
async def make_client(harness: Harness) -> AsyncIterator[ClientFactory]:
    clients: list[httpx.AsyncClient] = []
    app = build_app(harness.security)

    def make(address: str = "192.0.2.10") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        client = httpx.AsyncClient(transport=transport, base_url="http://test")
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
def client(make_client: ClientFactory) -> httpx.AsyncClient:
    return make_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


# --- 401 -------------------------------------------------------------------------------------


async def test_missing_header_is_401_with_a_bearer_challenge(
    client: httpx.AsyncClient, harness: Harness
) -> None:
    response = await client.get("/identities")
    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"] == CHALLENGE
    assert body["detail"] == "authentication required"
    assert harness.store.verified == []


async def test_authenticated_also_requires_a_credential(client: httpx.AsyncClient) -> None:
    response = await client.get("/me")
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == CHALLENGE


@pytest.mark.parametrize(
    "authorization", ["Basic YWRhOnNlY3JldA==", "Bearer", "Bearer ", "Token abc", ADMIN_TOKEN]
)
async def test_a_non_bearer_authorization_counts_as_missing(
    client: httpx.AsyncClient, harness: Harness, authorization: str
) -> None:
    response = await client.get("/identities", headers={"Authorization": authorization})
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == CHALLENGE
    assert harness.store.verified == []


async def test_an_unknown_token_is_401_invalid_token(
    client: httpx.AsyncClient, harness: Harness
) -> None:
    token = "acc_ffffffffffffffff_" + "Z" * 43
    response = await client.get("/identities", headers=bearer(token))
    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"] == INVALID_CHALLENGE
    assert body["detail"] == "unknown API token"
    assert harness.store.verified == [token]


async def test_the_reason_of_an_invalid_token_is_given(client: httpx.AsyncClient) -> None:
    response = await client.get("/me", headers=bearer("acc_revoked_x"))
    body = assert_problem(response, 401)
    assert body["detail"] == "revoked API token"
    assert response.headers["www-authenticate"] == INVALID_CHALLENGE


async def test_a_jwt_without_oidc_configured_is_401_invalid_token(
    client: httpx.AsyncClient, harness: Harness
) -> None:
    response = await client.get("/identities", headers=bearer("eyJhbGciOiJSUzI1NiJ9.e30.sig"))
    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"] == INVALID_CHALLENGE
    assert body["detail"] == "unknown credential type"
    assert harness.store.verified == []


async def test_refusals_are_logged_without_the_credential(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    token = "acc_ffffffffffffffff_" + "Q" * 43
    with caplog.at_level(logging.INFO, logger="accord.runtime.security.api"):
        await client.get("/identities", headers=bearer(token))
    refused = [r for r in caplog.records if r.getMessage() == "request refused"]
    assert len(refused) == 1
    assert refused[0].__dict__["reason"] == "unknown API token"
    assert refused[0].__dict__["path"] == "/identities"
    assert all(token not in r.getMessage() and token not in str(r.__dict__) for r in caplog.records)


# --- 200 and 403 -----------------------------------------------------------------------------


async def test_the_right_permission_is_200(client: httpx.AsyncClient) -> None:
    response = await client.get("/identities", headers=bearer(OPERATOR_TOKEN))
    assert response.status_code == 200
    assert response.json() == {"subject": "otto"}


async def test_admin_passes_every_check(client: httpx.AsyncClient) -> None:
    for path in ("/identities", "/audit", "/me"):
        response = await client.get(path, headers=bearer(ADMIN_TOKEN))
        assert response.status_code == 200, path


async def test_the_wrong_permission_is_403_naming_it(client: httpx.AsyncClient) -> None:
    response = await client.get("/audit", headers=bearer(OPERATOR_TOKEN))
    body = assert_problem(response, 403)
    assert "audit:read" in body["detail"]
    assert "www-authenticate" not in response.headers


async def test_route_level_dependencies_guard_too(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/sagas"), 401)
    assert_problem(await client.get("/sagas", headers=bearer(REQUESTER_TOKEN)), 403)
    response = await client.get("/sagas", headers=bearer(OPERATOR_TOKEN))
    assert response.status_code == 200
    assert response.json() == []


async def test_scopes_restrict_a_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/identities", headers=bearer(SCOPED_TOKEN))).status_code == 200
    body = assert_problem(await client.get("/audit", headers=bearer(SCOPED_TOKEN)), 403)
    assert "audit:read" in body["detail"]


async def test_a_requester_is_authenticated_and_may_only_ask_for_access(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/me", headers=bearer(REQUESTER_TOKEN))
    assert response.status_code == 200
    assert response.json() == {
        "subject": "rita",
        "kind": "api-token",
        "roles": ["requester"],
        "permissions": ["access:approve", "access:request", "self-service"],
    }
    assert_problem(await client.get("/identities", headers=bearer(REQUESTER_TOKEN)), 403)


async def test_own_or_admits_the_permission_and_people_for_their_own(
    client: httpx.AsyncClient,
) -> None:
    everyone = await client.get("/my-sagas", headers=bearer(OPERATOR_TOKEN))
    assert everyone.json() == {"everyone": True}
    own = await client.get("/my-sagas", headers=bearer(REQUESTER_TOKEN))
    assert own.json() == {"everyone": False}


async def test_own_or_refuses_a_system_which_has_nothing_of_its_own(
    client: httpx.AsyncClient,
) -> None:
    body = assert_problem(await client.get("/my-sagas", headers=bearer(APPLICATION_TOKEN)), 403)
    assert "sagas:read" in body["detail"]
    assert "self-service" in body["detail"]
    # Scopes narrow self-service away too: a token for identities only has no sagas to see.
    assert_problem(await client.get("/my-sagas", headers=bearer(SCOPED_TOKEN)), 403)


# --- 429 -------------------------------------------------------------------------------------


async def test_applications_have_their_own_higher_rate_limit(client: httpx.AsyncClient) -> None:
    for _ in range(20):
        assert (await client.get("/me", headers=bearer(APPLICATION_TOKEN))).status_code == 200
    assert (await client.get("/me", headers=bearer(APPLICATION_TOKEN))).status_code == 429
    # A person's limit is untouched by the application's traffic.
    assert (await client.get("/me", headers=bearer(ADMIN_TOKEN))).status_code == 200


async def test_each_caller_is_rate_limited(client: httpx.AsyncClient, harness: Harness) -> None:
    for _ in range(5):
        assert (await client.get("/me", headers=bearer(ADMIN_TOKEN))).status_code == 200
    response = await client.get("/me", headers=bearer(ADMIN_TOKEN))
    body = assert_problem(response, 429)
    assert body["detail"] == "rate limit exceeded"
    assert response.headers["retry-after"] == "1"
    # Another caller is not affected.
    assert (await client.get("/me", headers=bearer(OPERATOR_TOKEN))).status_code == 200
    # After the announced wait the caller may call again.
    harness.caller_clock.now += 1
    assert (await client.get("/me", headers=bearer(ADMIN_TOKEN))).status_code == 200


async def test_the_caller_limit_applies_before_the_permission_check(
    client: httpx.AsyncClient,
) -> None:
    for _ in range(5):
        assert_problem(await client.get("/audit", headers=bearer(OPERATOR_TOKEN)), 403)
    assert_problem(await client.get("/audit", headers=bearer(OPERATOR_TOKEN)), 429)


async def test_repeated_failures_from_one_address_are_429(
    make_client: ClientFactory, harness: Harness
) -> None:
    attacker = make_client("203.0.113.7")
    bad = "acc_ffffffffffffffff_" + "X" * 43
    for _ in range(4):
        assert_problem(await attacker.get("/identities", headers=bearer(bad)), 401)
    response = await attacker.get("/identities", headers=bearer(bad))
    body = assert_problem(response, 429)
    assert body["detail"] == "too many failed authentications"
    assert response.headers["retry-after"] == "60"
    assert "www-authenticate" not in response.headers
    # Missing credentials count as failures too.
    assert_problem(await attacker.get("/identities"), 429)
    # Other addresses are not affected.
    other = make_client("198.51.100.1")
    assert_problem(await other.get("/identities", headers=bearer(bad)), 401)
    # A valid token still works from the blocked address: only failures are counted.
    assert (await attacker.get("/identities", headers=bearer(ADMIN_TOKEN))).status_code == 200
    # Once the failure bucket refills, the address gets plain 401s again.
    harness.failure_clock.now += 60
    assert_problem(await attacker.get("/identities", headers=bearer(bad)), 401)


# --- not started -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/identities", "/me"])
async def test_without_app_state_security_it_is_503(path: str) -> None:
    app = build_app(None)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get(path, headers=bearer(ADMIN_TOKEN))
        body = assert_problem(response, 503)
        assert body["detail"] == "authentication is not available yet"
        # Health probes need no authentication.
        assert (await client.get("/healthz")).status_code == 200


async def test_the_openapi_document_declares_bearer_auth(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    schemes = document["components"]["securitySchemes"]
    assert any(s.get("scheme", "").lower() == "bearer" for s in schemes.values())
    assert "security" in document["paths"]["/identities"]["get"]
    assert "security" not in document["paths"]["/healthz"]["get"]
