"""The thin flow through all four services, on real Tansu, PostgreSQL and scim2-server."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from accord.events import AccessRequested, Publisher, Resource, UserCreated, topics
from accord.stack.platform import Platform

from .conftest import api_client, audit_events, eventually, scim_users

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

JOINER_FLOW = {
    "user.created",
    "saga.started",
    "provision.requested",
    "account.provisioned",
    "saga.completed",
}


def joiner(unique: str) -> UserCreated:
    return UserCreated(
        user_id=f"e-{unique}",
        user_name=f"ada.{unique}",
        given_name="Ada",
        family_name="Lovelace",
        email=f"ada.{unique}@example.org",
        department="Research",
        employee_number="1815",
    )


async def test_joiner_is_provisioned_and_every_step_is_audited(
    platform: Platform, kafka_bootstrap: str, unique: str
) -> None:
    user = joiner(unique)
    async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as publisher:
        published_at = time.monotonic()
        envelope = await publisher.publish(user, sequence=1)

    accounts = await eventually(
        lambda: scim_users(platform, user.user_name), what="the account in scim2-server"
    )
    latency_ms = (time.monotonic() - published_at) * 1000
    print(f"\npublish -> account created: {latency_ms:.0f} ms")
    assert len(accounts) == 1
    account = accounts[0]
    assert account["externalId"] == user.user_id
    assert account["name"]["givenName"] == "Ada"
    assert account["emails"][0]["value"] == user.email
    enterprise = account["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]
    assert enterprise["department"] == "Research"

    async def whole_flow() -> list[dict[str, object]] | None:
        records = await audit_events(platform, correlation_id=envelope.correlationid)
        return records if {r["event_type"] for r in records} >= JOINER_FLOW else None

    records = await eventually(whole_flow, what="every event of the flow in the audit log")
    by_type = {r["event_type"]: r for r in records}
    assert by_type["account.provisioned"]["outcome"] == "success"
    assert by_type["saga.completed"]["outcome"] == "success"
    assert by_type["account.provisioned"]["payload"]["account_id"] == account["id"]
    # One trace follows the flow from the source system's event through the orchestrator and
    # the provisioner and back: the publisher starts it.
    traces = {r["trace_id"] for r in records}
    assert len(traces) == 1
    assert None not in traces
    assert by_type["user.created"]["trace_id"] == envelope.traceparent.split("-")[1]

    saga_id = by_type["saga.completed"]["payload"]["saga_id"]
    async with api_client(platform, "orchestrator") as client:
        saga = (await client.get(f"/v1/sagas/{saga_id}")).json()
        identity = (await client.get(f"/v1/identities/{user.user_id}")).json()
    assert saga["status"] == "completed"
    assert identity["user_name"] == user.user_name


async def test_the_same_joiner_twice_makes_one_account(
    platform: Platform, kafka_bootstrap: str, unique: str
) -> None:
    user = joiner(unique)
    async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as publisher:
        first = await publisher.publish(user, sequence=1)
        await publisher.send(first)  # redelivery: the very same event again
        await publisher.publish(user, sequence=1)  # re-announced by the source, same sequence

    await eventually(lambda: scim_users(platform, user.user_name), what="the account")

    async def flow_done() -> bool:
        records = await audit_events(platform, subject=user.user_id)
        return sum(r["event_type"] == "user.created" for r in records) == 2 and any(
            r["event_type"] == "saga.completed" for r in records
        )

    await eventually(flow_done, what="both user.created recorded and the saga completed")
    records = await audit_events(platform, subject=user.user_id)
    assert sum(r["event_type"] == "saga.started" for r in records) == 1
    assert sum(r["event_type"] == "provision.requested" for r in records) == 1
    assert len(await scim_users(platform, user.user_name)) == 1


async def test_a_malformed_event_is_dead_lettered_and_the_consumer_keeps_going(
    platform: Platform, kafka_bootstrap: str, unique: str
) -> None:
    bad_key = f"e-bad-{unique}"
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.USER_CREATED,
            key=bad_key.encode(),
            value=b'{"user_id": "' + bad_key.encode() + b'"}',  # no user_name
            headers=[
                ("ce_specversion", b"1.0"),
                ("ce_id", str(uuid.uuid4()).encode()),
                ("ce_source", b"urn:test:broken-hr"),
                ("ce_type", b"user.created"),
                ("ce_time", b"2026-11-25T10:00:00+00:00"),
                ("ce_subject", bad_key.encode()),
                ("ce_sequence", b"1"),
            ],
        )
        await producer.send_and_wait(topics.USER_CREATED, key=b"x", value=b"not even json")
    finally:
        await producer.stop()

    user = joiner(unique)
    async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as publisher:
        await publisher.publish(user, sequence=1)
    await eventually(
        lambda: scim_users(platform, user.user_name), what="the next good joiner's account"
    )

    consumer = AIOKafkaConsumer(
        topics.dlq_for(topics.USER_CREATED),
        bootstrap_servers=kafka_bootstrap,
        group_id=f"test-dlq-{unique}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    reasons: list[str] = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not reasons:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    if record.key == bad_key.encode():
                        headers = dict(record.headers)
                        assert headers["accord-consumer"].startswith(b"accord-")
                        reasons.append(headers["accord-error"].decode())
    finally:
        await consumer.stop()
    assert reasons, "the malformed event never reached user.created.dlq"
    assert "user_name" in reasons[0]
    assert "Field required" in reasons[0]

    async def recorded() -> list[dict[str, object]]:
        return [
            r
            for r in await audit_events(platform, subject=bad_key)
            if r["source_topic"] == "user.created.dlq"
        ]

    dead = await eventually(recorded, what="the dead letter in the audit log")
    assert dead[0]["outcome"] == "failure"


@pytest.mark.parametrize(
    ("application", "entitlement", "decision", "reason"),
    [
        ("wiki", "reader", "permit", "low-risk-self-service"),
        ("wiki", "unclassified", "deny", "no policy permits"),
        # High risk needs the manager's approval, and this joiner has no manager.
        (
            "payroll",
            "admin",
            "deny",
            "approval stage 1 (manager) has no approver other than the requester or the principal",
        ),
    ],
)
async def test_access_requests_are_decided_by_the_default_policy(
    platform: Platform,
    kafka_bootstrap: str,
    unique: str,
    application: str,
    entitlement: str,
    decision: str,
    reason: str,
) -> None:
    user = joiner(unique)
    async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as publisher:
        await publisher.publish(user, sequence=1)

        async def principal_known() -> bool:
            async with api_client(platform, "authz") as client:
                response = await client.get(f"/v1/principals/{user.user_id}")
                return response.status_code == 200

        await eventually(principal_known, what="authz to know the joiner")
        request = AccessRequested(
            request_id=f"req-{unique}",
            requester_id=user.user_id,
            principal_id=user.user_id,
            resource=Resource(application=application, entitlement=entitlement),
            justification="needed for the project",
        )
        await publisher.publish(request)

    async def decided() -> list[dict[str, object]]:
        return await audit_events(platform, subject=request.request_id, type="access.decided")

    record = (await eventually(decided, what="access.decided"))[0]
    payload = record["payload"]
    assert isinstance(payload, dict)
    assert payload["decision"] == decision
    assert reason in payload["reasons"]


async def test_birthright_rules_decide_the_targets(
    platform: Platform, kafka_bootstrap: str, unique: str
) -> None:
    # accord up's rules: everyone but contractors gets the demo app.
    contractor = joiner(unique).model_copy(update={"department": "Contractors"})
    async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as publisher:
        envelope = await publisher.publish(contractor, sequence=1)

    async def completed() -> list[dict[str, object]]:
        records = await audit_events(platform, correlation_id=envelope.correlationid)
        return [r for r in records if r["event_type"] in ("saga.started", "saga.completed")]

    records = await eventually(
        lambda: _both(completed), what="the contractor's joiner saga to complete"
    )
    started = next(r for r in records if r["event_type"] == "saga.started")
    payload = started["payload"]
    assert isinstance(payload, dict)
    assert payload["targets"] == []
    assert await scim_users(platform, contractor.user_name) == []


async def _both(probe: Any) -> list[dict[str, object]] | None:
    records = await probe()
    return records if len(records) == 2 else None
