"""Authz's HTTP answers on a real PostgreSQL: access requests answered with what happened,
listings only for those who may ask for access, approvals that hide others' requests, the
decision API seeing what the request path sees, and error bodies that repeat no input."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import asyncpg
import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from accord.authz import access, access_api, api, decision_api
from accord.authz.domain.policy_files import default_policy_dir
from accord.authz.policy_holder import PolicyHolder
from accord.authz.settings import AuthzSettings
from accord.authz.testing import consume
from accord.events import ApprovalRequested, UserCreated, new_event
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
SETTINGS = access.ApprovalSettings(timeout=timedelta(hours=1))
HOLDER = PolicyHolder(default_policy_dir())
_counter = itertools.count(1)
_TOKENS: dict[str, Caller] = {}


def token(subject: str, role: Role) -> str:
    """An API token the fake store knows, for this subject and role."""
    value = f"acc_{next(_counter):016x}_" + "T" * 43
    _TOKENS[value] = Caller(subject, frozenset({role}), "api-token", value[4:20])
    return value


class FakeTokens:
    async def verify(self, value: str) -> Caller:
        if value not in _TOKENS:
            raise InvalidToken("unknown API token")
        return _TOKENS[value]


@pytest_asyncio.fixture(loop_scope="session")
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool(fresh_database, SCHEMA, ["accord.authz.migrations"]) as created:
        # ada and bob report to mia; payroll-owner owns payroll (catalogue).
        for user_id, manager in (("mia", None), ("ada", "mia"), ("bob", "mia"), ("zed", None)):
            await project(
                created, UserCreated(user_id=user_id, user_name=user_id, manager_id=manager)
            )
        await project(created, UserCreated(user_id="payroll-owner", user_name="payroll-owner"))
        yield created


async def project(pool: asyncpg.Pool, user: UserCreated) -> None:
    async with pool.acquire() as conn, conn.transaction():
        ctx = HandlerContext(conn=conn, source="urn:test:authz", topic=user.event_type)
        await consume(new_event(user, source="urn:test", sequence=1), ctx)


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

    def rules() -> Any:
        return HOLDER.current.policies, HOLDER.current.catalogue

    api.configure(created, runtime, HOLDER, SETTINGS)
    access_api.configure(created, runtime, rules, SETTINGS)
    decision_api.configure(created, runtime, rules, log_rate=0)
    return created


@pytest_asyncio.fixture(loop_scope="session")
async def http(pool: asyncpg.Pool) -> AsyncIterator[Any]:
    transport = httpx.ASGITransport(app=app(pool))

    @asynccontextmanager
    async def client(subject: str, role: Role) -> AsyncIterator[httpx.AsyncClient]:
        headers = {"Authorization": f"Bearer {token(subject, role)}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=headers
        ) as created:
            yield created

    yield client


async def ask(http: Any, subject: str, application: str, entitlement: str) -> dict[str, Any]:
    async with http(subject, Role.REQUESTER) as client:
        response = await client.post(
            "/v1/access-requests", json={"application": application, "entitlement": entitlement}
        )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


# --- an access request is answered with what happened ----------------------------------------


async def test_a_low_risk_request_is_answered_granted(http: Any, pool: asyncpg.Pool) -> None:
    body = await ask(http, "ada", "wiki", "reader")

    assert (body["status"], body["reasons"], body["approvals"]) == (
        "permit",
        ["low-risk-self-service"],
        [],
    )
    held = await pool.fetchval(
        "SELECT count(*) FROM grants WHERE request_id = $1 AND revoked_at IS NULL",
        body["request_id"],
    )
    assert held == 1
    topics = await pool.fetch(
        "SELECT topic FROM outbox WHERE key = $1", body["request_id"].encode()
    )
    assert [r["topic"] for r in topics] == ["access.requested", "access.decided", "access.granted"]


async def test_a_high_risk_request_is_answered_with_its_chain(http: Any) -> None:
    body = await ask(http, "bob", "payroll", "viewer")

    assert body["status"] == "approval_required"
    assert [(s["name"], s["status"], s["approvers"]) for s in body["approvals"]] == [
        ("manager", "pending", ["mia"]),
        ("application_owner", "waiting", ["payroll-owner"]),
    ]


async def test_a_request_for_someone_unknown_yet_is_pending(http: Any) -> None:
    async with http("mia", Role.OPERATOR) as client:
        response = await client.post(
            "/v1/access-requests",
            json={"application": "wiki", "entitlement": "reader", "principal_id": "newcomer"},
        )

    assert response.status_code == 202, response.text
    assert (response.json()["status"], response.json()["approvals"]) == ("pending", [])


# --- listings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.SCIM_CLIENT, Role.APPLICATION])
@pytest.mark.parametrize(
    ("path", "permission"),
    [
        ("/v1/access-requests", "access:read"),
        ("/v1/entitlements", "access:read"),
        ("/v1/access-requests/req-any", "access:read"),
        ("/v1/principals/ada", "principals:read"),
    ],
)
async def test_systems_have_no_requests_entitlements_or_principal(
    http: Any, role: Role, path: str, permission: str
) -> None:
    # A token issued to "ada" with a system's role is still a system's: no self-service.
    async with http("ada", role) as client:
        response = await client.get(path)

    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert permission in response.json()["detail"]


@pytest.mark.parametrize("path", ["/v1/access-requests", "/v1/entitlements"])
async def test_a_requester_lists_their_own(http: Any, path: str) -> None:
    await ask(http, "zed", "wiki", "editor")
    async with http("zed", Role.REQUESTER) as client:
        response = await client.get(path)

    assert response.status_code == 200, response.text
    assert {item["principal_id"] for item in response.json()["items"]} == {"zed"}


async def test_every_status_can_be_listed(http: Any, pool: asyncpg.Pool) -> None:
    statuses = ["pending", "permit", "deny", "approval_required", "approved", "denied", "expired"]
    for status in statuses:
        await pool.execute(
            "INSERT INTO access_requests (request_id, requester_id, principal_id, application,"
            " entitlement, status) VALUES ($1, 'lister', 'lister', 'wiki', 'reader', $2)",
            f"req-status-{status}",
            status,
        )
    async with http("auditor", Role.AUDITOR) as client:
        for status in statuses:
            response = await client.get("/v1/access-requests", params={"status": status})
            assert response.status_code == 200, response.text
            ids = {item["request_id"] for item in response.json()["items"]}
            assert f"req-status-{status}" in ids
            assert {item["status"] for item in response.json()["items"]} == {status}
        refused = await client.get("/v1/access-requests", params={"status": "granted"})
    assert refused.status_code == 400, refused.text
    assert refused.headers["content-type"] == "application/problem+json"


# --- approving: somebody else's request is none of the caller's business ---------------------


async def test_approving_somebody_elses_request_is_a_404_whatever_its_state(
    http: Any,
) -> None:
    granted = (await ask(http, "ada", "wiki", "editor"))["request_id"]
    waiting = (await ask(http, "ada", "payroll", "admin"))["request_id"]
    answers = []
    async with http("bob", Role.APPROVER) as client:
        for request_id in (granted, waiting, "req-nobody-has"):
            for verdict in ("approve", "deny"):
                response = await client.post(f"/v1/access-requests/{request_id}/{verdict}", json={})
                assert response.status_code == 404, response.text
                assert response.headers["content-type"] == "application/problem+json"
                assert request_id not in response.text
                answers.append(response.json()["detail"])
    assert len(set(answers)) == 1  # unknown and somebody else's look the same


async def test_those_a_request_names_get_its_real_state(http: Any) -> None:
    request_id = (await ask(http, "ada", "payroll", "viewer"))["request_id"]
    path = f"/v1/access-requests/{request_id}"
    async with http("ada", Role.REQUESTER) as own:
        response = await own.post(f"{path}/approve", json={})
        assert response.status_code == 403, response.text  # nobody approves their own
    async with http("payroll-owner", Role.APPROVER) as later:
        response = await later.post(f"{path}/approve", json={})
        assert response.status_code == 403, response.text  # stage 2: not yet
    async with http("mia", Role.REQUESTER) as manager:
        assert (await manager.post(f"{path}/deny", json={})).status_code == 200
        response = await manager.post(f"{path}/approve", json={})
    assert response.status_code == 409, response.text
    assert response.json()["detail"] == "the access request is denied, not waiting for approval"


# --- the decision API sees what the request path sees ----------------------------------------


def question(principal: str, entitlement: str) -> dict[str, Any]:
    return {
        "principal": {"type": "User", "id": principal},
        "action": "request",
        "resource": {"type": "Entitlement", "id": entitlement},
    }


async def test_the_readme_example_permits(http: Any) -> None:
    async with http("gateway", Role.APPLICATION) as client:
        response = await client.post("/v1/authorize", json=question("ada", "wiki/reader"))

    assert response.status_code == 200, response.text
    assert response.json() == {
        "decision": "permit",
        "reasons": ["low-risk-self-service"],
        "errors": [],
        "approvals": [],
    }


async def test_a_permit_that_needs_approvals_says_so_with_its_stages(http: Any) -> None:
    async with http("gateway", Role.APPLICATION) as client:
        one = await client.post("/v1/authorize", json=question("ada", "payroll/viewer"))
        batch = await client.post(
            "/v1/authorize/batch",
            json={
                "requests": [
                    question("ada", "payroll/viewer"),
                    question("ada", "wiki/reader"),
                    # zed has no manager: the request path denies, so does the API.
                    question("zed", "payroll/viewer"),
                ]
            },
        )

    assert one.status_code == 200, one.text
    assert one.json() == {
        "decision": "approval_required",
        "reasons": ["high-risk-needs-manager-and-owner"],
        "errors": [],
        "approvals": [
            {"stage": 1, "name": "manager", "approvers": ["mia"]},
            {"stage": 2, "name": "application_owner", "approvers": ["payroll-owner"]},
        ],
    }
    assert batch.status_code == 200, batch.text
    results = batch.json()["results"]
    assert results[0] == one.json()
    assert results[1]["decision"] == "permit"
    assert results[2]["decision"] == "deny"
    assert "approval stage 1 (manager) has no approver" in results[2]["reasons"][-1]


# --- error bodies repeat no input -------------------------------------------------------------


async def test_error_bodies_name_no_id(http: Any) -> None:
    async with http("root", Role.ADMIN) as client:
        responses = [
            await client.get("/v1/access-requests/req-secret-looking-id"),
            await client.get("/v1/principals/secret-looking-user"),
            await client.post(
                "/v1/grants/grant-secret-looking-id/revoke", json={"reason": "matrix"}
            ),
            await client.post("/v1/access-requests/req-secret-looking-id/approve", json={}),
        ]
    assert [r.status_code for r in responses] == [404, 404, 409, 404]
    for response in responses:
        assert response.headers["content-type"] == "application/problem+json"
        assert "secret-looking" not in response.text, response.text


# --- workflow approvals (issue 22) ------------------------------------------------------------


async def ask_workflow(pool: asyncpg.Pool, approval_id: str, *, expires_in: timedelta) -> None:
    """ada's workflow run asks her manager (mia) to approve."""
    asked = ApprovalRequested(
        approval_id=approval_id,
        user_id="ada",
        workflow_id="contractor-end-date",
        run_id="run-api",
        task_id="approve",
        approvers=("manager",),
        reason="extend ada's contract?",
        expires_at=datetime.now(UTC) + expires_in,
    )
    async with pool.acquire() as conn, conn.transaction():
        ctx = HandlerContext(conn=conn, source="urn:test:authz", topic=asked.event_type)
        await consume(new_event(asked, source="urn:test:orchestrator"), ctx)


async def test_a_workflow_approval_is_listed_to_its_approver_and_decided_once(
    http: Any, pool: asyncpg.Pool
) -> None:
    await ask_workflow(pool, "run-api:approve:1", expires_in=timedelta(days=1))
    async with http("mia", Role.REQUESTER) as mia, http("ada", Role.APPROVER) as ada:
        listed = await mia.get("/v1/workflow-approvals")
        own = await ada.post("/v1/workflow-approvals/run-api:approve:1/approve", json={})
        approved = await mia.post(
            "/v1/workflow-approvals/run-api:approve:1/approve", json={"comment": "ok"}
        )
        again = await mia.post("/v1/workflow-approvals/run-api:approve:1/reject", json={})
    async with http("zed", Role.REQUESTER) as zed:
        stranger = await zed.post("/v1/workflow-approvals/run-api:approve:1/reject", json={})

    assert listed.status_code == 200, listed.text
    (item,) = [i for i in listed.json()["items"] if i["approval_id"] == "run-api:approve:1"]
    assert (item["user_id"], item["approvers"], item["reason"], item["status"]) == (
        "ada",
        ["mia"],
        "extend ada's contract?",
        "pending",
    )
    assert own.status_code == 403, own.text
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["decided_by"]) == ("approved", "mia")
    assert again.status_code == 409, again.text
    assert stranger.status_code == 404, stranger.text
    topics = await pool.fetch("SELECT topic FROM outbox WHERE key = $1", b"ada")
    assert [r["topic"] for r in topics].count("approval.decided") == 1


async def test_a_late_workflow_decision_is_a_409_and_an_admin_may_decide(
    http: Any, pool: asyncpg.Pool
) -> None:
    await ask_workflow(pool, "run-api:approve:2", expires_in=-timedelta(seconds=1))
    await ask_workflow(pool, "run-api:approve:3", expires_in=timedelta(days=1))
    async with http("mia", Role.REQUESTER) as mia, http("root", Role.ADMIN) as root:
        late = await mia.post("/v1/workflow-approvals/run-api:approve:2/approve", json={})
        by_admin = await root.post("/v1/workflow-approvals/run-api:approve:3/reject", json={})

    assert late.status_code == 409, late.text
    assert "expired" in late.json()["detail"]
    assert by_admin.status_code == 200, by_admin.text
    assert (by_admin.json()["status"], by_admin.json()["decided_by"]) == ("rejected", "root")
