"""Who may call what: every endpoint of every service, every role, both credential kinds."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

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
#: outside the OpenAPI document. The Shared Signals transmitter's configuration metadata and
#: the keys its SETs are signed with are public (SSF 1.0 §7.1): receivers read them first.
PUBLIC = {
    "/healthz",
    "/readyz",
    "/dashboard",
    "/.well-known/ssf-configuration",
    "/ssf/jwks.json",
}


@dataclass(frozen=True)
class Endpoint:
    """One API operation, the permission it needs, and whose objects it shows."""

    service: str
    path: str
    permission: Permission
    owned: bool = False
    """True when a caller without the permission may still see or act on their own object."""
    method: str = "get"
    listing: bool = False
    """A list everyone may read: without the permission it holds only the caller's own."""
    allowed_status: int | None = None
    """What a permitted call answers: by default 200 for a GET, 202 otherwise (409:
    permitted, but the object's state says no; 404: permitted, but no such object)."""
    refused_status: int | None = None
    """What a refused call answers: by default 404 for someone else's owned object (hidden
    as if it did not exist), 403 otherwise. A caller with `own_permission` (it may act on
    objects of its own of this kind) always gets 404: someone else's are hidden from it."""
    own_permission: Permission | None = None
    """What acting on one's own object needs (None: nothing), when `owned`."""
    body: dict[str, Any] | None = None
    """The body of a call other than a GET, when not an access request; "{user_id}" and
    "{stream_id}" in its strings are the joiner's, as in the path."""
    params: dict[str, str] | None = None
    """The query string, formatted like the path."""
    ids: dict[str, str] | None = None
    """Path parameters that name nobody's object, instead of the joiner's."""
    stream: bool = False
    """A stream that never ends by itself (server-sent events): only its status is read."""
    self_service: bool = False
    """Without the permission, only self-service (a person's role) sees one's own; a
    system's role (SCIM client, application...) has no own objects and gets 403."""

    def expected(self, allowed: bool, permissions: frozenset[Permission] = frozenset()) -> int:
        """The status a call answers, permitted or not, for a caller with `permissions`."""
        if not allowed:
            if self.own_permission is not None and self.own_permission in permissions:
                return 404
            return self.refused_status or (404 if self.owned else 403)
        return self.allowed_status or (200 if self.method == "get" else 202)


#: A well-formed registration response that answers no ceremony ({} as its client data).
WEBAUTHN_CREDENTIAL = {
    "id": "AAAA",
    "rawId": "AAAA",
    "type": "public-key",
    "response": {"clientDataJSON": "e30", "attestationObject": "oA"},
}
MATRIX_SUBJECT = {"format": "email", "email": "matrix@example.org"}
QUESTION = {
    "principal": {"type": "User", "id": "nobody"},
    "action": "request",
    "resource": {"type": "Entitlement", "id": "wiki/reader"},
}
ENDPOINTS = [
    # A SCIM client or an application has no identity or sagas of its own: 403 (README).
    Endpoint(
        "orchestrator",
        "/v1/identities/{user_id}",
        Permission.IDENTITIES_READ,
        owned=True,
        self_service=True,
    ),
    Endpoint(
        "orchestrator", "/v1/sagas/{saga_id}", Permission.SAGAS_READ, owned=True, self_service=True
    ),
    Endpoint("orchestrator", "/v1/sagas", Permission.SAGAS_READ, listing=True, self_service=True),
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
    Endpoint(
        "authz",
        "/v1/principals/{user_id}",
        Permission.PRINCIPALS_READ,
        owned=True,
        self_service=True,
    ),
    Endpoint("authz", "/v1/access-requests", Permission.ACCESS_REQUEST, method="post"),
    Endpoint(
        "authz", "/v1/access-requests", Permission.ACCESS_READ, listing=True, self_service=True
    ),
    Endpoint(
        "authz",
        "/v1/access-requests/{request_id}",
        Permission.ACCESS_READ,
        owned=True,
        self_service=True,
    ),
    # alice's request, granted at once, is not bob's to decide: as if there were none.
    *(
        Endpoint(
            "authz",
            f"/v1/access-requests/{{request_id}}/{verdict}",
            Permission.ACCESS_APPROVE,
            method="post",
            allowed_status=404,
            body={"comment": "matrix"},
        )
        for verdict in ("approve", "deny")
    ),
    Endpoint("authz", "/v1/approvals", Permission.ACCESS_APPROVE),
    # Workflow approvals (issue 22): none names the matrix's callers, nor exists: a 404.
    Endpoint("authz", "/v1/workflow-approvals", Permission.ACCESS_APPROVE),
    *(
        Endpoint(
            "authz",
            f"/v1/workflow-approvals/{{approval_id}}/{verdict}",
            Permission.ACCESS_APPROVE,
            method="post",
            allowed_status=404,
            body={"comment": "matrix"},
            ids={"approval_id": "wfa-none"},
        )
        for verdict in ("approve", "reject")
    ),
    Endpoint("authz", "/v1/entitlements", Permission.ACCESS_READ, listing=True, self_service=True),
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
    Endpoint(
        "authz",
        "/v1/authn/evaluate",
        Permission.AUTHN_EVALUATE,
        method="post",
        allowed_status=200,
        body={"user_id": "{user_id}", "application": "wiki"},
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
    # Prometheus scrapes every service's page with an API token scoped to audit:read.
    *(Endpoint(service, "/metrics", Permission.AUDIT_READ) for service in SERVICES),
    *(
        Endpoint("auditor", f"/v1/dashboard/{chart}", Permission.AUDIT_READ)
        for chart in ("activity", "failures", "latency", "approvals")
    ),
    # Factors: one's own need self-service; someone else's are refused with a 403 (the
    # check comes before any lookup, so it tells nothing about them).
    Endpoint(
        "authn",
        "/v1/mfa/{user_id}",
        Permission.MFA_MANAGE,
        owned=True,
        refused_status=403,
        self_service=True,
    ),
    *(
        Endpoint(
            "authn",
            path,
            Permission.MFA_MANAGE,
            owned=True,
            method=method,
            allowed_status=status,
            refused_status=403,
            body=body,
            self_service=True,
        )
        for path, method, status, body in (
            # A pending TOTP enrolment: confirmed by nobody, it expires.
            ("/v1/mfa/{user_id}/totp", "post", 201, {"label": "matrix"}),
            # No such credential: a permitted confirmation or removal is a 404.
            (
                "/v1/mfa/{user_id}/totp/{credential_id}/confirm",
                "post",
                404,
                {"code": "000000"},
            ),
            ("/v1/mfa/{user_id}/{credential_id}", "delete", 404, None),
            ("/v1/mfa/{user_id}/webauthn/registration-options", "post", 200, {}),
            # A response to no ceremony of the identity's: 404.
            (
                "/v1/mfa/{user_id}/webauthn/registrations",
                "post",
                404,
                {"credential": WEBAUTHN_CREDENTIAL},
            ),
        )
    ),
    # The joiners have no WebAuthn credential: permitted options are a 404.
    Endpoint(
        "authn",
        "/v1/authn/webauthn/authentication-options",
        Permission.AUTHN_VERIFY,
        owned=True,
        method="post",
        allowed_status=404,
        refused_status=403,
        body={"user_id": "{user_id}"},
        self_service=True,
    ),
    # Each verification counts as a failed sign-in toward a lockout: of an identity nobody
    # is (so neither joiner is locked by the matrix), and never one's own here.
    Endpoint(
        "authn",
        "/v1/authn/verify",
        Permission.AUTHN_VERIFY,
        method="post",
        allowed_status=200,
        body={"user_id": "matrix-nobody", "totp_code": "000000"},
    ),
    # Temporary Access Passes: a help desk issues (201, the code once), reads and revokes one;
    # the three run in this order for each permitted caller.
    Endpoint(
        "authn",
        "/v1/users/{user_id}/access-passes",
        Permission.MFA_MANAGE,
        method="post",
        allowed_status=201,
        body={"lifetime": "PT1H"},
    ),
    Endpoint("authn", "/v1/users/{user_id}/access-passes", Permission.MFA_MANAGE),
    Endpoint(
        "authn",
        "/v1/users/{user_id}/access-passes",
        Permission.MFA_MANAGE,
        method="delete",
        allowed_status=204,
    ),
    # The identity itself or an identity provider redeems a pass; a wrong code is a 401 that
    # tells nothing, also to a person naming someone else; a system's role is refused (403).
    Endpoint(
        "authn",
        "/v1/access-passes/redeem",
        Permission.AUTHN_VERIFY,
        method="post",
        allowed_status=401,
        refused_status=401,
        body={"user_id": "{user_id}", "code": "2222-3333-4444"},
        self_service=True,
    ),
    Endpoint("authn", "/v1/lockouts", Permission.LOCKOUTS_MANAGE),
    Endpoint("authn", "/v1/lockouts/{lockout_id}", Permission.LOCKOUTS_MANAGE, allowed_status=404),
    # Locking an identity authn does not know: a permitted lock is a 404.
    Endpoint(
        "authn",
        "/v1/lockouts",
        Permission.LOCKOUTS_MANAGE,
        method="post",
        allowed_status=404,
        body={"user_id": "matrix-nobody", "reason": "matrix"},
    ),
    # For oneself, any person may ask; for someone else, access:request-others. The joiners
    # are not locked: a permitted unlock request is a 409.
    Endpoint(
        "authn",
        "/v1/unlock-requests",
        Permission.ACCESS_REQUEST_OTHERS,
        owned=True,
        method="post",
        allowed_status=409,
        refused_status=403,
        body={"user_id": "{user_id}"},
        self_service=True,
    ),
    Endpoint(
        "authn",
        "/v1/mfa-reset-requests",
        Permission.ACCESS_REQUEST_OTHERS,
        owned=True,
        method="post",
        refused_status=403,
        body={"user_id": "{user_id}", "justification": "matrix"},
        self_service=True,
    ),
    Endpoint("authn", "/v1/enrolments", Permission.MFA_MANAGE),
    # Identity providers push SETs; a JSON body is not one: permitted, it is refused 400.
    Endpoint("authn", "/ssf/receiver/push", Permission.SSF_PUSH, method="post", allowed_status=400),
    # Shared Signals streams: a receiver (ssf:streams) creates and manages its own; ssf:manage
    # manages everyone's. Each joiner has a poll stream of its own ("{stream_id}").
    Endpoint(
        "authn",
        "/ssf/streams",
        Permission.SSF_STREAMS,
        method="post",
        allowed_status=201,
        body={"description": "matrix"},
    ),
    Endpoint("authn", "/ssf/streams", Permission.SSF_STREAMS),
    *(
        Endpoint(
            "authn",
            path,
            Permission.SSF_MANAGE,
            owned=True,
            own_permission=Permission.SSF_STREAMS,
            method=method,
            allowed_status=status,
            refused_status=403,
            body=body,
            params=params,
        )
        for path, method, status, body, params in (
            ("/ssf/streams", "get", 200, None, {"stream_id": "{stream_id}"}),
            ("/ssf/status", "get", 200, None, {"stream_id": "{stream_id}"}),
            ("/ssf/streams", "patch", 200, {"stream_id": "{stream_id}", "description": "m"}, None),
            ("/ssf/streams", "put", 200, {"stream_id": "{stream_id}", "description": "m"}, None),
            ("/ssf/status", "post", 200, {"stream_id": "{stream_id}", "status": "enabled"}, None),
            *(
                (
                    f"/ssf/subjects:{change}",
                    "post",
                    status,
                    {"stream_id": "{stream_id}", "subject": MATRIX_SUBJECT},
                    None,
                )
                for change, status in (("add", 200), ("remove", 204))
            ),
        )
    ),
    # Deleting, verifying and polling a stream nobody has: permitted, a 404. (Only a stream's
    # receiver polls it, even with ssf:manage: test_streams_are_their_receivers.)
    Endpoint(
        "authn",
        "/ssf/streams",
        Permission.SSF_STREAMS,
        method="delete",
        allowed_status=404,
        params={"stream_id": "stream-none"},
    ),
    Endpoint(
        "authn",
        "/ssf/verify",
        Permission.SSF_STREAMS,
        method="post",
        allowed_status=404,
        body={"stream_id": "stream-none"},
    ),
    Endpoint(
        "authn",
        "/ssf/poll/{stream_id}",
        Permission.SSF_STREAMS,
        method="post",
        allowed_status=404,
        body={"returnImmediately": True},
        ids={"stream_id": "stream-none"},
    ),
]
NEW_REQUEST = {"application": "wiki", "entitlement": "reader", "justification": "matrix"}


@dataclass(frozen=True)
class Joiner:
    user_id: str
    saga_id: str
    request_id: str
    correlation_id: str
    stream_id: str
    """The joiner's own Shared Signals stream (poll)."""

    def _ids(self) -> dict[str, str]:
        return {
            "user_id": self.user_id,
            "saga_id": self.saga_id,
            "request_id": self.request_id,
            "target": "scim-demo",
            "grant_id": "grant-none",
            "correlation_id": self.correlation_id,
            "stream_id": self.stream_id,
            "credential_id": "mfa-none",
            "lockout_id": "lock-none",
        }

    def url(self, endpoint: Endpoint) -> str:
        path = endpoint.path.format(**{**self._ids(), **(endpoint.ids or {})})
        if not endpoint.params:
            return path
        params = {name: value.format(**self._ids()) for name, value in endpoint.params.items()}
        return f"{path}?{urlencode(params)}"

    def body(self, endpoint: Endpoint) -> Any:
        """What a call other than a GET sends: the endpoint's body, with the joiner's ids."""
        if endpoint.body is None:
            return NEW_REQUEST if endpoint.method == "post" else None
        return self._filled(endpoint.body)

    def _filled(self, value: Any) -> Any:
        if isinstance(value, str):
            return value.format(**self._ids())
        if isinstance(value, dict):
            return {k: self._filled(v) for k, v in value.items()}
        return value


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
    receiver = await platform.issue_token(user.user_id, {Role.SSF_RECEIVER})
    async with api_client(platform, "authn", receiver) as client:
        stream = await client.post("/ssf/streams", json={"description": user.user_name})
    assert stream.status_code == 201, stream.text
    return Joiner(
        user.user_id,
        str(payload["saga_id"]),
        response.json()["request_id"],
        str(record["correlation_id"]),
        stream.json()["stream_id"],
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
    # Each endpoint from a loopback address of its own: the failed-authentication limit
    # counts per client address, and this matrix alone fails authentication four times on
    # every endpoint (authn's 30-odd reached the e2e platform's burst of 100).
    index = ENDPOINTS.index(endpoint)
    transport = httpx.AsyncHTTPTransport(
        local_address=f"127.0.{10 + index // 200}.{index % 200 + 2}"
    )
    async with httpx.AsyncClient(base_url=base, transport=transport) as client:
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
    permissions = ROLE_PERMISSIONS[role]
    for endpoint in ENDPOINTS:
        allowed = endpoint.permission in permissions
        async with api_client(platform, endpoint.service, token) as client:
            response = await call(client, endpoint, alice)
            if endpoint.self_service and not allowed and Permission.SELF_SERVICE not in permissions:
                # Neither everyone's nor one's own: refused, whoever's object it is.
                assert response.status_code == 403, (endpoint, response.text)
                assert (await call(client, endpoint, bob)).status_code == 403, endpoint
                continue
            if endpoint.listing:
                assert response.status_code == 200, response.text
                listed = await every_id(client, endpoint.path)
                alices, bobs = (_listed_id(j, endpoint.path) for j in (alice, bob))
                assert (alices in listed) == allowed, endpoint
                assert bobs in listed
                continue
            expected = endpoint.expected(allowed, permissions)
            assert response.status_code == expected, (endpoint, response.text)
            if response.status_code == 403 and not endpoint.owned:
                assert endpoint.permission.value in response.json()["detail"]
            if endpoint.owned:
                # Every person (self-service) may see and act on their own identity, saga,
                # principal, requests and factors; their own streams with ssf:streams.
                needed = endpoint.own_permission
                own = await call(client, endpoint, bob)
                expected = endpoint.expected(needed is None or needed in permissions)
                assert own.status_code == expected, (endpoint, own.text)


async def call(client: httpx.AsyncClient, endpoint: Endpoint, joiner: Joiner) -> httpx.Response:
    """The endpoint called on the joiner's objects."""
    if endpoint.method == "get":
        return await get(client, endpoint, joiner.url(endpoint))
    return await client.request(endpoint.method, joiner.url(endpoint), json=joiner.body(endpoint))


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


async def test_streams_are_their_receivers(platform: Platform, alice: Joiner, bob: Joiner) -> None:
    """A receiver lists, changes and polls its own streams only; ssf:manage lists and changes
    everyone's, but polls none but its own (a poll hands the receiver's SETs out)."""
    poll = {"returnImmediately": True}
    receiver = await platform.issue_token(bob.user_id, {Role.SSF_RECEIVER})
    async with api_client(platform, "authn", receiver) as client:
        listed = {s["stream_id"] for s in (await client.get("/ssf/streams")).json()}
        assert bob.stream_id in listed
        assert alice.stream_id not in listed
        own = await client.post(f"/ssf/poll/{bob.stream_id}", json=poll)
        assert own.status_code == 200, own.text
        assert set(own.json()) == {"sets", "moreAvailable"}
        # Another receiver's stream is hidden: 404, as a stream nobody has.
        theirs = await client.post(f"/ssf/poll/{alice.stream_id}", json=poll)
        assert theirs.status_code == 404, theirs.text
        deleted = await client.delete("/ssf/streams", params={"stream_id": alice.stream_id})
        assert deleted.status_code == 404, deleted.text
    manager = await platform.issue_token("ssf-manager", {Role.ADMIN})
    async with api_client(platform, "authn", manager) as client:
        listed = {s["stream_id"] for s in (await client.get("/ssf/streams")).json()}
        assert {alice.stream_id, bob.stream_id} <= listed
        theirs = await client.post(f"/ssf/poll/{alice.stream_id}", json=poll)
        assert theirs.status_code == 404, theirs.text


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
