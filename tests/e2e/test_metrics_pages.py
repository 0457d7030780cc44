"""Every service's GET /metrics on the running platform, after a joiner: the page parses, a
consuming service counts the records it handled, and no label value is unbounded."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from accord.events import Publisher, UserCreated
from accord.runtime.metrics import unbounded_labels
from accord.stack.platform import SERVICES, Platform

from .conftest import api_client, eventually, scim_users

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

#: Services the joiner flow surely reaches through their consumers.
JOINER_CONSUMERS = {"orchestrator", "provisioner", "auditor"}


def samples(page: str, name: str) -> list[Any]:
    return [
        sample
        for family in text_string_to_metric_families(page)
        for sample in family.samples
        if sample.name == name
    ]


def handled(page: str) -> float:
    found = samples(page, "accord_consumer_records_total")
    return float(sum(s.value for s in found if s.labels["outcome"] == "handled"))


async def consumer_stats(platform: Platform, service: str) -> dict[str, Any] | None:
    async with httpx.AsyncClient(base_url=platform.endpoints()[service]) as client:
        report = (await client.get("/readyz")).json()
    stats: dict[str, Any] | None = report.get("checks", {}).get("consumer_stats")
    return stats


async def test_every_service_serves_bounded_metrics_after_a_joiner(
    platform: Platform, kafka_bootstrap: str
) -> None:
    unique = uuid.uuid4().hex[:8]
    user = UserCreated(
        user_id=f"m-{unique}",
        user_name=f"metrics.{unique}",
        given_name="Grace",
        family_name="Hopper",
        email=f"metrics.{unique}@example.org",
        department="Research",
        employee_number="1906",
    )
    async with Publisher(source="urn:test:hr", bootstrap_servers=kafka_bootstrap) as publisher:
        await publisher.publish(user, sequence=1)
    await eventually(lambda: scim_users(platform, user.user_name), what="the joiner's account")

    for service in SERVICES:
        stats = await consumer_stats(platform, service)
        async with api_client(platform, service) as client:
            response = await client.get("/metrics")
        assert response.status_code == 200, (service, response.text)
        page = response.text
        names = {family.name for family in text_string_to_metric_families(page)}
        assert {"accord_ready", "accord_http_requests", "accord_db_pool_connections"} <= names
        assert samples(page, "accord_ready")[0].value == 1, service
        pool = {s.labels["state"]: s.value for s in samples(page, "accord_db_pool_connections")}
        assert pool["max"] > 0, service
        if service in JOINER_CONSUMERS or (stats and stats["handled"]):
            assert handled(page) > 0, service
        assert unbounded_labels(page) == [], service
        if service == "auditor":
            assert "accord_audit_records" in names  # the audit stream's, on the same page


async def test_the_pages_need_a_token_with_audit_read(platform: Platform) -> None:
    for service in SERVICES:
        async with httpx.AsyncClient(base_url=platform.endpoints()[service]) as client:
            assert (await client.get("/metrics")).status_code == 401, service
