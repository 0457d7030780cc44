"""Access end to end: two approval stages, a group membership in a real target, expiry (issue 6)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from accord.events import Publisher, UserCreated
from accord.runtime.security.roles import Role
from accord.stack.platform import Platform

from .conftest import api_client, audit_events, eventually, target_account

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

GRANT_SECONDS = 6


def demo_target(platform: Platform) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"{platform.scim.base_url}/v2",
        headers={"Authorization": f"Bearer {platform.scim.bearer_token}"},
        timeout=5,
    )


async def group_members(platform: Platform, display_name: str) -> set[str]:
    """Account ids in the demo target's group(s) of that name."""
    async with demo_target(platform) as scim:
        found = (
            await scim.get("/Groups", params={"filter": f'displayName eq "{display_name}"'})
        ).json()
    return {
        m["value"]
        for g in found.get("Resources", [])
        for m in g.get("members") or []
        if "value" in m
    }


async def joined(platform: Platform, kafka_bootstrap: str, *users: UserCreated) -> None:
    """Publish the joiners; wait until each has its account and authz knows them."""
    async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as publisher:
        for user in users:
            await publisher.publish(user, sequence=1)
    for user in users:
        await target_account(platform, user.user_name)

        async def known(user_id: str = user.user_id) -> bool:
            async with api_client(platform, "authz") as client:
                return (await client.get(f"/v1/principals/{user_id}")).status_code == 200

        await eventually(known, what=f"authz to know {user.user_id}")


async def request_status(client: httpx.AsyncClient, request_id: str, status: str) -> Any:
    entry = (await client.get(f"/v1/access-requests/{request_id}")).json()
    return entry if entry.get("status") == status else None


async def test_two_stage_approval_grants_a_membership_that_expires(
    platform: Platform, kafka_bootstrap: str, unique: str
) -> None:
    manager = UserCreated(user_id=f"m-{unique}", user_name=f"mgr.{unique}")
    worker = UserCreated(
        user_id=f"e-{unique}", user_name=f"pay.{unique}", manager_id=manager.user_id
    )
    await joined(platform, kafka_bootstrap, manager, worker)
    account = await target_account(platform, worker.user_name)
    worker_token = await platform.issue_token(worker.user_id, {Role.REQUESTER})
    manager_token = await platform.issue_token(manager.user_id, {Role.REQUESTER})
    owner_token = await platform.issue_token("payroll-owner", {Role.APPROVER})

    async with (
        api_client(platform, "authz", worker_token) as worker_api,
        api_client(platform, "authz", manager_token) as manager_api,
        api_client(platform, "authz", owner_token) as owner_api,
    ):
        created = await worker_api.post(
            "/v1/access-requests",
            json={
                "application": "payroll",
                "entitlement": "admin",
                "justification": "quarter close",
                "duration_seconds": GRANT_SECONDS,
            },
        )
        assert created.status_code == 202, created.text
        # The answer says what happened: the request waits for its approvals.
        waiting = created.json()
        request_id = waiting["request_id"]
        assert waiting["status"] == "approval_required"
        assert [(s["stage"], s["name"], s["status"]) for s in waiting["approvals"]] == [
            (1, "manager", "pending"),
            (2, "application_owner", "waiting"),
        ]

        own = await worker_api.post(f"/v1/access-requests/{request_id}/approve", json={})
        assert own.status_code == 403
        assert "own request" in own.json()["detail"]
        early = await owner_api.post(f"/v1/access-requests/{request_id}/approve", json={})
        assert early.status_code == 403  # stage 2 is not open yet

        first = await manager_api.post(
            f"/v1/access-requests/{request_id}/approve", json={"comment": "fine by me"}
        )
        assert first.status_code == 200, first.text
        second = await owner_api.post(f"/v1/access-requests/{request_id}/approve", json={})
        assert second.status_code == 200, second.text
        assert [s["status"] for s in second.json()["approvals"]] == ["approved", "approved"]

        # The entitlement is a membership of payroll-admins in the demo SCIM target.
        async def member() -> bool:
            return account["id"] in await group_members(platform, "payroll-admins")

        await eventually(member, what="the account in payroll-admins")
        held = (await worker_api.get("/v1/entitlements")).json()["items"]
        assert [(g["application"], g["entitlement"]) for g in held] == [("payroll", "admin")]
        while_held = datetime.now(UTC).isoformat()

        # While it is held, the toxic counterpart is refused, naming the SoD policy.
        toxic = await worker_api.post(
            "/v1/access-requests",
            json={"application": "finance", "entitlement": "payment-approver"},
        )
        refused = toxic.json()
        assert (refused["status"], refused["reasons"]) == (
            "deny",
            ["sod-payroll-admin-vs-payment-approver"],
        )
        assert await request_status(worker_api, refused["request_id"], "deny")

        # Time-bound: it ends by itself, and the membership goes from the target.
        async def gone() -> bool:
            return account["id"] not in await group_members(platform, "payroll-admins")

        await eventually(gone, timeout=GRANT_SECONDS + 30, what="the membership to expire")
        assert (await worker_api.get("/v1/entitlements")).json()["items"] == []
        # Who held what, as of a past time: the grant is still on record.
        then = await worker_api.get("/v1/entitlements", params={"as_of": while_held})
        assert [g["entitlement"] for g in then.json()["items"]] == ["admin"]
        # A number is not a time (pydantic would have read it as seconds since 1970).
        not_a_time = await worker_api.get("/v1/entitlements", params={"as_of": "0.5"})
        assert not_a_time.status_code == 400
        assert "as_of" in not_a_time.json()["detail"]


async def test_a_malformed_request_is_refused_naming_the_problem(
    platform: Platform, unique: str
) -> None:
    token = await platform.issue_token(f"e-{unique}", {Role.REQUESTER})
    async with api_client(platform, "authz", token) as client:
        response = await client.post("/v1/access-requests", json={"application": "payroll"})

    # 400, the platform's answer to any request that breaks its schema; the problem
    # names the field and what is wrong with it, never the values.
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert [e["location"] for e in problem["errors"]] == ["body.entitlement"]


async def test_the_decision_api_answers_from_the_projection_and_logs_decisions(
    platform: Platform, kafka_bootstrap: str, unique: str
) -> None:
    manager = UserCreated(user_id=f"m-{unique}", user_name=f"pdm.{unique}")
    user = UserCreated(user_id=f"e-{unique}", user_name=f"pdp.{unique}", manager_id=manager.user_id)
    await joined(platform, kafka_bootstrap, manager, user)
    token = await platform.issue_token(f"app-{unique}", {Role.APPLICATION})

    def question(principal: str, entitlement: str) -> dict[str, Any]:
        # As the README asks it: the catalogue, not the caller, describes the entitlement.
        return {
            "principal": {"type": "User", "id": principal},
            "action": "request",
            "resource": {"type": "Entitlement", "id": entitlement},
        }

    async with api_client(platform, "authz", token) as client:
        one = await client.post("/v1/authorize", json=question(user.user_id, "wiki/reader"))
        batch = await client.post(
            "/v1/authorize/batch",
            json={
                "requests": [
                    question(user.user_id, "wiki/reader"),
                    question(f"nobody-{unique}", "wiki/reader"),
                    question(user.user_id, "payroll/viewer"),
                ]
            },
        )
        bad = await client.post("/v1/authorize", json={"principal": {"type": "User"}})

    assert one.status_code == 200, one.text
    assert one.json() == {
        "decision": "permit",
        "reasons": ["low-risk-self-service"],
        "errors": [],
        "approvals": [],
    }
    assert [(r["decision"], r["reasons"]) for r in batch.json()["results"]] == [
        ("permit", ["low-risk-self-service"]),
        ("deny", ["inactive-users-get-nothing"]),
        ("approval_required", ["high-risk-needs-manager-and-owner"]),
    ]
    # May ask, with approval, is no access: the answer names the stages an access request
    # would wait for, and who decides each.
    assert batch.json()["results"][2]["approvals"] == [
        {"stage": 1, "name": "manager", "approvers": [manager.user_id]},
        {"stage": 2, "name": "application_owner", "approvers": ["payroll-owner"]},
    ]
    assert bad.status_code == 400

    async def logged() -> list[dict[str, Any]] | None:
        records = await audit_events(platform, subject=user.user_id, type="authz.decided")
        return records if len(records) >= 3 else None

    records = await eventually(logged, what="the decisions in the audit log")
    logged_as = sorted((r["payload"]["decision"], r["payload"]["reasons"][-1]) for r in records)
    assert logged_as == [
        ("deny", "approval_required: manager, application_owner"),
        ("permit", "low-risk-self-service"),
        ("permit", "low-risk-self-service"),
    ]
