"""Planted secrets (the SCIM connector's bearer token, API tokens) never leak anywhere."""

from __future__ import annotations

import time
import uuid

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from accord.events import REGISTRY, Publisher, UserCreated
from accord.runtime.security.roles import Role
from accord.stack.platform import SERVICES, Platform

from .conftest import api_client, audit_events, eventually, scim_users

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


async def test_secrets_appear_in_no_log_event_audit_record_or_error_body(
    platform: Platform, kafka_bootstrap: str, unique: str
) -> None:
    api_token = await platform.issue_token("secret-keeper", {Role.REQUESTER})
    secrets = {
        "scim connector token": platform.scim.bearer_token,
        "admin API token": platform.admin_token,
        "requester API token": api_token,
        "requester API token secret": api_token.rsplit("_", 1)[1],
    }
    bodies: list[str] = []

    # A joiner: the provisioner uses the connector token against the SCIM target.
    user = UserCreated(user_id=f"e-{unique}", user_name=f"keeper.{unique}")
    async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as publisher:
        envelope = await publisher.publish(user, sequence=1)
    await eventually(lambda: scim_users(platform, user.user_name), what="the account")

    # Errors that could echo what they were given: wrong role, bad tokens, bad input.
    for service in SERVICES:
        async with api_client(platform, service, api_token) as client:
            for path in ("/v1/targets", "/v1/policies", "/v1/audit/events", "/v1/nothing"):
                bodies.append((await client.get(path)).text)
            bodies.append((await client.get("/v1/audit/events", params={"limit": api_token})).text)
        async with httpx.AsyncClient(base_url=platform.endpoints()[service]) as client:
            for token in (api_token + "x", platform.scim.bearer_token):
                response = await client.get(
                    "/v1/targets", headers={"Authorization": f"Bearer {token}"}
                )
                bodies.append(response.text + str(response.headers))

    async def recorded() -> bool:
        records = await audit_events(platform, correlation_id=envelope.correlationid)
        return any(r["event_type"] == "saga.completed" for r in records)

    await eventually(recorded, what="the flow in the audit log")

    logs = {name: (platform.config.home / "logs" / f"{name}.log").read_text() for name in SERVICES}
    events = await every_event(kafka_bootstrap)
    conn = await asyncpg.connect(platform.database_url)
    try:
        audit_rows = [str(dict(r)) for r in await conn.fetch("SELECT * FROM auditor.audit_log")]
        outbox_rows = [
            str(dict(r))
            for schema in SERVICES
            for r in await conn.fetch(f"SELECT * FROM {schema}.outbox")
        ]
    finally:
        await conn.close()

    assert events, "expected to read the platform's events"
    assert audit_rows, "expected audit records"
    for what, secret in secrets.items():
        for name, text in logs.items():
            assert secret not in text, f"{what} leaked into the {name} log"
        for event in events:
            assert secret not in event, f"{what} leaked into an event"
        for row in audit_rows + outbox_rows:
            assert secret not in row, f"{what} leaked into the database"
        for body in bodies:
            assert secret not in body, f"{what} leaked into an error body"


async def every_event(bootstrap: str) -> list[str]:
    """Every record on every topic, as text (headers, key and value)."""
    consumer = AIOKafkaConsumer(
        *REGISTRY.topics(with_dlq=True),
        bootstrap_servers=bootstrap,
        group_id=f"test-secrets-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[str] = []
    # Until 3 s pass without a record, or 120 s in all: a saga retrying against a target
    # another test left down produces forever, and what was read is checked either way.
    deadline = time.monotonic() + 120
    try:
        idle = 0
        while idle < 3 and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            records = [r for rs in batch.values() for r in rs]
            idle = 0 if records else idle + 1
            found += [f"{r.headers!r} {r.key!r} {r.value!r}" for r in records]
    finally:
        await consumer.stop()
    return found
