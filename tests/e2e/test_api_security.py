"""Who may call what: every endpoint of every service, every role, both credential kinds."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from accord.events import Publisher, UserCreated
from accord.runtime.security.roles import ROLE_PERMISSIONS, Permission, Role
from accord.stack.platform import SERVICES, Platform

from .conftest import api_client, audit_events, eventually, scim_users
from .oidc_issuer import LocalIssuer

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

#: No credentials: the health probes, and the dashboard page (it holds no data; it asks for a
#: token and calls the /v1 routes with it). Its assets under /dashboard/static are a mount,
#: outside the OpenAPI document.
PUBLIC = {"/healthz", "/readyz", "/dashboard"}


@dataclass(frozen=True)
class Endpoint:
    """One API operation, the permission it needs, and whose objects it shows."""

    service: str
    path: str
    permission: Permission
    owned: bool = False
    """True when a caller without the permission may still see their own object."""
    method: str = "get"
    listing: bool = False
    """A list everyone may read: without the permission it holds only the caller's own."""
    allowed_status: int = 202
    """What a permitted POST answers (409: permitted, but the object's state says no)."""
    body: dict[str, Any] | None = None
    """A POST's body, when not an access request."""
    stream: bool = False
    """A stream that never ends by itself (server-sent events): only its status is read."""


QUESTION = {
    "principal": {"type": "User", "id": "nobody"},
    "action": "request",
    "resource": {"type": "Entitlement", "id": "wiki/reader"},
}
ENDPOINTS = [
    Endpoint("orchestrator", "/v1/identities/{user_id}", Permission.IDENTITIES_READ, owned=True),
    Endpoint("orchestrator", "/v1/sagas/{saga_id}", Permission.SAGAS_READ, owned=True),
    Endpoint("orchestrator", "/v1/sagas", Permission.SAGAS_READ, listing=True),
    # The joiners' sagas are completed: a permitted retry or cancel is a 409.
    Endpoint(
        "orchestrator",
        "/v1/sagas/{saga_id}/retry",
        Permission.SAGAS_OPERATE,
        method="post",
        allowed_status=409,
    ),
    Endpoint(
        "orchestrator",
        "/v1/sagas/{saga_id}/cancel",
        Permission.SAGAS_OPERATE,
        method="post",
        allowed_status=409,
        body={"reason": "matrix"},
    ),
    Endpoint("provisioner", "/v1/targets", Permission.TARGETS_READ),
    Endpoint("provisioner", "/v1/targets/{target}/health", Permission.TARGETS_READ),
    Endpoint("provisioner", "/v1/reconciliations", Permission.TARGETS_READ),
    Endpoint("authz", "/v1/policies", Permission.POLICIES_READ),
    Endpoint("authz", "/v1/principals/{user_id}", Permission.PRINCIPALS_READ, owned=True),
    Endpoint("authz", "/v1/access-requests", Permission.ACCESS_REQUEST, method="post"),
    Endpoint("authz", "/v1/access-requests", Permission.ACCESS_READ, listing=True),
    Endpoint("authz", "/v1/access-requests/{request_id}", Permission.ACCESS_READ, owned=True),
    # alice's request was granted at once: a permitted approve or deny is a 409.
    *(
        Endpoint(
            "authz",
            f"/v1/access-requests/{{request_id}}/{verdict}",
            Permission.ACCESS_APPROVE,
            method="post",
            allowed_status=409,
            body={"comment": "matrix"},
        )
        for verdict in ("approve", "deny")
    ),
    Endpoint("authz", "/v1/approvals", Permission.ACCESS_APPROVE),
    Endpoint("authz", "/v1/entitlements", Permission.ACCESS_READ, listing=True),
    Endpoint(
        "authz",
        "/v1/grants/{grant_id}/revoke",
        Permission.ACCESS_REVOKE,
        method="post",
        allowed_status=409,  # no such live grant
        body={"reason": "matrix"},
    ),
    Endpoint("authz", "/v1/sod/violations", Permission.ACCESS_READ),
    *(
        Endpoint(
            "authz",
            path,
            Permission.AUTHORIZE,
            method="post",
            allowed_status=200,
            body=body,
        )
        for path, body in (
            ("/v1/authorize", QUESTION),
            ("/v1/authorize/batch", {"requests": [QUESTION]}),
        )
    ),
    Endpoint(
        "authz",
        "/v1/policies/reload",
        Permission.POLICIES_MANAGE,
        method="post",
        allowed_status=200,
        body={},
    ),
    Endpoint("auditor", "/v1/audit/events", Permission.AUDIT_READ),
    Endpoint("auditor", "/v1/audit/export", Permission.AUDIT_READ),
    Endpoint("auditor", "/v1/audit/chain", Permission.AUDIT_READ),
    Endpoint("auditor", "/v1/audit/correlations/{correlation_id}", Permission.AUDIT_READ),
    *(
        Endpoint("auditor", f"/v1/reports/{report}", Permission.AUDIT_READ)
        for report in ("access", "provisioning-latency", "failures", "drift", "sod", "sagas")
    ),
    Endpoint("auditor", "/v1/audit/stream", Permission.AUDIT_READ, stream=True),
    # Prometheus scrapes it with an API token scoped to audit:read.
    Endpoint("auditor", "/metrics", Permission.AUDIT_READ),
    *(
        Endpoint("auditor", f"/v1/dashboard/{chart}", Permission.AUDIT_READ)
        for chart in ("activity", "failures", "latency", "approvals")
    ),
]
NEW_REQUEST = {"application": "wiki", "entitlement": "reader", "justification": "matrix"}


@dataclass(frozen=True)
class Joiner:
    user_id: str
    saga_id: str
    request_id: str
    correlation_id: str

    def url(self, endpoint: Endpoint) -> str:
        return endpoint.path.format(
            user_id=self.user_id,
            saga_id=self.saga_id,
            request_id=self.request_id,
            target="scim-demo",
            grant_id="grant-none",
            correlation_id=self.correlation_id,
        )


async def provisioned_joiner(platform: Platform, kafka_bootstrap: str) -> Joiner:
    unique = uuid.uuid4().hex[:10]
    user = UserCreated(user_id=f"e-{unique}", user_name=f"sec.{unique}")
    async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as publisher:
        await publisher.publish(user, sequence=1)

    async def saga_done() -> list[dict[str, object]]:
        return await audit_events(platform, subject=user.user_id, type="saga.completed")

    record = (await eventually(saga_done, what="the joiner saga"))[0]
    payload = record["payload"]
    assert isinstance(payload, dict)
    await eventually(lambda: scim_users(platform, user.user_name), what="the account")
    token = await platform.issue_token(user.user_id, {Role.REQUESTER})
    async with api_client(platform, "authz", token) as client:
        response = await client.post("/v1/access-requests", json=NEW_REQUEST)
    assert response.status_code == 202, response.text
    return Joiner(
        user.user_id,
        str(payload["saga_id"]),
        response.json()["request_id"],
        str(record["correlation_id"]),
    )


@pytest.fixture(scope="module")
async def alice(platform: Platform, kafka_bootstrap: str) -> Joiner:
    return await provisioned_joiner(platform, kafka_bootstrap)


@pytest.fixture(scope="module")
async def bob(platform: Platform, kafka_bootstrap: str) -> Joiner:
    return await provisioned_joiner(platform, kafka_bootstrap)


async def test_the_matrix_covers_every_endpoint_of_every_service(platform: Platform) -> None:
    declared = {(e.service, e.method, e.path) for e in ENDPOINTS}
    served = set()
    for service in SERVICES:
        async with httpx.AsyncClient(base_url=platform.endpoints()[service]) as client:
            document = (await client.get("/openapi.json")).json()
        for path, operations in document["paths"].items():
            if path not in PUBLIC:
                served |= {(service, method, path) for method in operations}
    assert served == declared


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.service}{e.path}")
async def test_no_or_bad_credentials_get_401_problem_json(
    platform: Platform, alice: Joiner, endpoint: Endpoint
) -> None:
    base = platform.endpoints()[endpoint.service]
    async with httpx.AsyncClient(base_url=base) as client:
        for headers in (
            {},
            {"Authorization": "Bearer acc_0123456789abcdef_" + "x" * 43},
            {"Authorization": "Bearer not-a-token"},
            {"Authorization": "Basic YWRtaW46YWRtaW4="},
        ):
            response = await client.request(
                endpoint.method, alice.url(endpoint), headers=headers, json=NEW_REQUEST
            )
            assert response.status_code == 401, (headers, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert response.headers["x-content-type-options"] == "nosniff"
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


@pytest.mark.parametrize("kind", ["api-token", "oidc"])
@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
async def test_each_role_gets_what_its_permissions_allow(
    platform: Platform,
    oidc_issuer: LocalIssuer,
    alice: Joiner,
    bob: Joiner,
    role: Role,
    kind: str,
) -> None:
    # The caller is bob: alice's objects are somebody else's.
    if kind == "oidc":
        token = oidc_issuer.mint(bob.user_id, [role.value])
    else:
        token = await platform.issue_token(bob.user_id, {role})
    for endpoint in ENDPOINTS:
        allowed = endpoint.permission in ROLE_PERMISSIONS[role]
        async with api_client(platform, endpoint.service, token) as client:
            if endpoint.method == "post":
                response = await client.post(alice.url(endpoint), json=endpoint.body or NEW_REQUEST)
                expected = endpoint.allowed_status if allowed else 403
                assert response.status_code == expected, (endpoint, response.text)
                continue
            response = await get(client, endpoint, alice.url(endpoint))
            if endpoint.listing:
                assert response.status_code == 200, response.text
                listed = await every_id(client, endpoint.path)
                alices, bobs = (_listed_id(j, endpoint.path) for j in (alice, bob))
                assert (alices in listed) == allowed, endpoint
                assert bobs in listed
            elif allowed:
                assert response.status_code == 200, (endpoint, response.text)
            elif endpoint.owned:
                assert response.status_code == 404, (endpoint, response.text)
            else:
                assert response.status_code == 403, (endpoint, response.text)
                assert endpoint.permission.value in response.json()["detail"]
            if endpoint.owned:
                # Everyone may see their own identity, saga, principal and requests.
                own = await get(client, endpoint, bob.url(endpoint))
                assert own.status_code == 200, (endpoint, own.text)


async def get(client: httpx.AsyncClient, endpoint: Endpoint, url: str) -> httpx.Response:
    """A GET; of a stream, only the status and headers, unless it was refused."""
    if not endpoint.stream:
        return await client.get(url)
    async with client.stream("GET", url) as response:
        if response.status_code != 200:
            await response.aread()
        return response


#: How each listing names its items and pages on.
_LISTINGS = {
    "/v1/access-requests": ("request_id", "next_after", "after"),
    "/v1/sagas": ("saga_id", "next_cursor", "cursor"),
    "/v1/entitlements": ("grant_id", "next_after", "after"),
}


def _listed_id(joiner: Joiner, path: str) -> str:
    if path == "/v1/entitlements":
        return f"grant-{joiner.request_id}"
    return joiner.request_id if path == "/v1/access-requests" else joiner.saga_id


async def every_id(client: httpx.AsyncClient, path: str) -> set[str]:
    """Every item id of a listing the caller may see, page by page."""
    key, next_key, cursor = _LISTINGS[path]
    ids: set[str] = set()
    params = {"limit": "500"}
    for _ in range(100):
        page = (await client.get(path, params=params)).json()
        ids |= {item[key] for item in page["items"]}
        if page[next_key] is None:
            return ids
        params[cursor] = str(page[next_key])
    raise AssertionError(f"more than 100 pages of {path}")


async def test_access_requests_are_strict_idempotent_and_for_oneself(
    platform: Platform, alice: Joiner, bob: Joiner
) -> None:
    token = await platform.issue_token(bob.user_id, {Role.REQUESTER})
    async with api_client(platform, "authz", token) as client:
        for_alice = await client.post(
            "/v1/access-requests", json={**NEW_REQUEST, "principal_id": alice.user_id}
        )
        assert for_alice.status_code == 403
        smuggled = await client.post(
            "/v1/access-requests", json={**NEW_REQUEST, "requester_id": alice.user_id}
        )
        assert smuggled.status_code == 400
        assert smuggled.headers["content-type"] == "application/problem+json"
        headers = {"Idempotency-Key": f"k-{bob.user_id}"}
        first = await client.post("/v1/access-requests", json=NEW_REQUEST, headers=headers)
        again = await client.post("/v1/access-requests", json=NEW_REQUEST, headers=headers)
        assert (first.status_code, again.status_code) == (202, 200)
        assert first.json()["request_id"] == again.json()["request_id"]
        assert first.headers["location"].endswith(first.json()["request_id"])

        async def decided() -> bool:
            response = await client.get(first.headers["location"])
            return response.json()["status"] == "permit"

        await eventually(decided, what="the request decided by policy")
    operator = await platform.issue_token("ops-on-behalf", {Role.OPERATOR})
    async with api_client(platform, "authz", operator) as client:
        on_behalf = await client.post(
            "/v1/access-requests", json={**NEW_REQUEST, "principal_id": alice.user_id}
        )
        assert on_behalf.status_code == 202
        assert on_behalf.json()["requester_id"] == "ops-on-behalf"


async def test_revoked_expired_and_scoped_api_tokens(platform: Platform, alice: Joiner) -> None:
    token = await platform.issue_token("ops-1", {Role.ADMIN})
    token_id = token.split("_")[1]
    async with api_client(platform, "provisioner", token) as client:
        assert (await client.get("/v1/targets")).status_code == 200
        conn = await asyncpg.connect(platform.database_url)
        try:
            await conn.execute(
                "UPDATE accord_auth.api_tokens SET revoked_at = now() WHERE token_id = $1",
                token_id,
            )
            revoked = await client.get("/v1/targets")
            assert revoked.status_code == 401
            assert revoked.json()["detail"] == "revoked API token"

            expiring = await platform.issue_token("ops-2", {Role.ADMIN})
            await conn.execute(
                "UPDATE accord_auth.api_tokens SET created_at = now() - interval '2 days',"
                " expires_at = now() - interval '1 second' WHERE token_id = $1",
                expiring.split("_")[1],
            )
        finally:
            await conn.close()
    async with api_client(platform, "provisioner", expiring) as client:
        response = await client.get("/v1/targets")
        assert response.status_code == 401
        assert response.json()["detail"] == "expired API token"


async def test_oidc_tokens_are_checked_for_issuer_audience_and_expiry(
    platform: Platform, oidc_issuer: LocalIssuer
) -> None:
    bad = [
        oidc_issuer.mint("u-1", ["admin"], iss="https://evil.example.org"),
        oidc_issuer.mint("u-1", ["admin"], aud="another-api"),
        oidc_issuer.mint("u-1", ["admin"], exp=1_000_000_000),
    ]
    good = oidc_issuer.mint("u-1", ["admin"])
    async with httpx.AsyncClient(base_url=platform.endpoints()["provisioner"]) as client:
        for token in bad:
            response = await client.get("/v1/targets", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401
            assert token not in response.text
        ok = await client.get("/v1/targets", headers={"Authorization": f"Bearer {good}"})
        assert ok.status_code == 200


async def test_a_request_body_over_the_limit_gets_413(platform: Platform) -> None:
    async with api_client(platform, "auditor") as client:
        response = await client.post("/v1/audit/events", content=b"x" * (1024 * 1024 + 1))
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_caller_over_its_rate_gets_429_with_retry_after(platform: Platform) -> None:
    token = await platform.issue_token("busy-bot", {Role.OPERATOR})
    gate = asyncio.Semaphore(20)
    async with api_client(platform, "provisioner", token) as client:

        async def call() -> httpx.Response:
            async with gate:
                return await client.get("/v1/targets")

        # 500 calls at ~200/s: far beyond a burst of 100 plus 50 per second.
        responses = await asyncio.gather(*(call() for _ in range(500)))
    statuses = [r.status_code for r in responses]
    assert 429 in statuses
    assert statuses.count(200) >= 100
    limited = next(r for r in responses if r.status_code == 429)
    assert int(limited.headers["retry-after"]) >= 1
    assert set(statuses) <= {200, 429}


async def test_repeated_failed_logins_from_one_address_get_429(platform: Platform) -> None:
    # A distinct loopback source address, so other tests' failures do not count here.
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.9")
    async with httpx.AsyncClient(
        base_url=platform.endpoints()["authz"], transport=transport
    ) as client:
        statuses: list[int] = []
        while len(statuses) < 400 and 429 not in statuses:
            batch = await asyncio.gather(
                *(
                    client.get("/v1/policies", headers={"Authorization": "Bearer acc_guess"})
                    for _ in range(50)
                )
            )
            statuses += [r.status_code for r in batch]
    assert statuses[0] == 401
    assert 429 in statuses
    assert set(statuses) == {401, 429}
