"""The auditor's HTTP routes on a real PostgreSQL: each answers what its query gives, in the
same JSON as before the routes had response models (the dict it returned, as FastAPI
serialised it), with the same statuses and content types."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import asyncpg
import httpx
import jsonschema_rs
import pytest
from fastapi import FastAPI
from pydantic import TypeAdapter

from accord.auditor.adapters import log_store, report_queries
from accord.auditor.adapters.log_store import Filters
from accord.auditor.bootstrap import configure_app
from accord.auditor.domain.checkpoints import Checkpoint
from accord.auditor.domain.normalise import AuditEntry
from accord.auditor.fakes import AUDITOR_TOKEN, REQUESTER_TOKEN, secured_app
from accord.auditor.metrics import AuditorMetrics
from accord.auditor.settings import AuditorSettings
from accord.runtime.service import Runtime

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
SPAN = {"since": T0.isoformat(), "until": (T0 + timedelta(hours=1)).isoformat()}
_n = iter(range(1, 1_000_000))


def as_before(body: Any) -> Any:
    """A route's old dict body as FastAPI serialised it (its `-> dict[str, Any]`)."""
    return TypeAdapter(Any).dump_python(body, mode="json")


def record(event_type: str, minutes: float, payload: dict[str, Any], **fields: Any) -> AuditEntry:
    values: dict[str, Any] = {
        "source_event_id": f"evt-{next(_n)}",
        "source_topic": event_type,
        "event_type": event_type,
        "occurred_at": T0 + timedelta(minutes=minutes),
        "actor": "urn:test",
        "subject": payload.get("principal_id") or payload.get("user_id") or "x",
        "target": payload.get("target"),
        "outcome": "info",
        "correlation_id": payload.get("correlation", "c"),
        "trace_id": None,
        "payload": payload,
    }
    values.update(fields)
    return AuditEntry(**values)


ENTRIES = [
    record("user.created", 0, {"user_id": "u1", "correlation": "j1", "f": 1e16, "s": "Zoë"}),
    record(
        "account.provisioned",
        0.5,
        {"user_id": "u1", "target": "ldap", "operation": "create", "correlation": "j1"},
        outcome="success",
    ),
    record(
        "saga.completed",
        1,
        {"saga_type": "joiner", "saga_id": "s1", "duration_ms": 40, "correlation": "j1"},
        outcome="success",
    ),
    record(
        "access.granted",
        2,
        {
            "grant_id": "g1",
            "principal_id": "bob",
            "resource": {"application": "payroll", "entitlement": "admin"},
            "expires_at": (T0 + timedelta(days=1)).isoformat(),
        },
    ),
    record("account.provision_failed", 3, {"target": "ldap"}, outcome="failure"),
    record(
        "provision.requested",
        4,
        {"error": "boom", "error_type": "handler-error"},
        source_topic="provision.requested.dlq",
        outcome="failure",
    ),
    record(
        "account.drift_detected",
        5,
        {"target": "ldap", "user_id": "u1", "run_id": "r1", "kind": "attributes"},
    ),
    record(
        "account.orphan_detected",
        5,
        {"target": "ldap", "account_id": "a9", "user_name": "ghost", "run_id": "r1"},
    ),
    record("reconciliation.completed", 6, {"target": "ldap", "run_id": "r1", "accounts": 3}),
    record(
        "access.decided",
        7,
        {
            "request_id": "r7",
            "principal_id": "bob",
            "resource": {"application": "finance", "entitlement": "approver"},
            "decision": "deny",
            "reasons": ["sod-x"],
        },
        outcome="failure",
    ),
    record(
        "saga.failed",
        8,
        {"saga_type": "leaver", "saga_id": "s3", "reason": "ldap down"},
        outcome="failure",
    ),
]


def auditor_app(pool: asyncpg.Pool) -> FastAPI:
    app = secured_app()
    runtime = Runtime("auditor", AuditorSettings(), pool, cast(Any, None), "auditor")
    configure_app(app, runtime, AuditorMetrics())
    return app


@pytest.fixture
async def client(pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    async with pool.acquire() as conn, conn.transaction():
        await log_store.append_many(conn, ENTRIES)
    transport = httpx.ASGITransport(app=auditor_app(pool))
    headers = {"Authorization": f"Bearer {AUDITOR_TOKEN}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers=headers
    ) as created:
        yield created


async def body(client: httpx.AsyncClient, path: str, template: str = "", **params: Any) -> Any:
    """A route's 200 JSON body, checked against the schema its OpenAPI document gives (as
    the e2e API fuzzing test's schemathesis does)."""
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    found = response.json()
    document = (await client.get("/openapi.json")).json()
    operation = document["paths"][template or path]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    validator = jsonschema_rs.Draft202012Validator(
        {**schema, "components": document["components"]}, validate_formats=True
    )
    errors = [str(e) for e in validator.iter_errors(found)]
    assert errors == [], errors
    return found


async def test_listings_and_stories_answer_what_the_log_holds(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    items = await log_store.query(pool, Filters(), limit=5)
    assert await body(client, "/v1/audit/events", limit=5) == as_before(
        {"items": items, "next_after": items[-1]["record_id"]}
    )
    failed = await log_store.query(pool, Filters(outcome="failure"), after=2)
    assert await body(client, "/v1/audit/events", outcome="failure", after=2) == as_before(
        {"items": failed, "next_after": None}
    )
    events = await log_store.story(pool, "j1", limit=10)
    story = await body(
        client, "/v1/audit/correlations/j1", "/v1/audit/correlations/{correlation_id}"
    )
    assert story == as_before({"correlation_id": "j1", "events": events, "truncated": False})
    missing = await client.get("/v1/audit/correlations/nobody")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_the_chain_answers_its_head_and_latest_checkpoint(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    head = await log_store.head(pool)
    expected = {
        "head": {"record_id": head["record_id"], "hash": head["hash"]},
        "chained_from": head["chained_from"],
        "latest_checkpoint": None,
    }
    assert await body(client, "/v1/audit/chain") == as_before(expected)
    checkpoint = Checkpoint(
        record_id=head["record_id"],
        hash=head["hash"],
        created_at=T0.isoformat(),
        key_id="k1",
        signature="c2ln",
        public_key="cHVi",
    )
    await log_store.insert_checkpoint(pool, checkpoint, as_writer=False)
    expected["latest_checkpoint"] = await log_store.latest_checkpoint(pool)
    assert await body(client, "/v1/audit/chain") == as_before(expected)


async def test_exports_stream_every_record(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/audit/export", params={"format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="audit.csv"'
    assert len(response.text.splitlines()) == 1 + len(ENTRIES)
    response = await client.get("/v1/audit/export")
    assert response.headers["content-type"] == "application/x-ndjson"
    assert len(response.text.splitlines()) == len(ENTRIES)


async def test_reports_answer_what_their_queries_give(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    since, until = T0, T0 + timedelta(hours=1)
    for name in ("provisioning-latency", "failures", "drift", "sagas"):
        found = await report_queries.SPAN_REPORTS[name](pool, since, until)
        expected = as_before({"since": since, "until": until, **found})
        assert await body(client, f"/v1/reports/{name}", **SPAN) == expected, name
    sod = await report_queries.sod(pool, since, until)
    assert await body(client, "/v1/reports/sod", **SPAN) == as_before(
        {"since": since, "until": until, "items": sod}
    )
    as_of = T0 + timedelta(minutes=30)
    held = await report_queries.access_as_of(pool, as_of, principal_id="bob")
    assert held
    assert await body(
        client, "/v1/reports/access", as_of=as_of.isoformat(), principal_id="bob"
    ) == as_before({"as_of": as_of, "items": held})
    # Something in every list, so every row model met a row.
    drift = await body(client, "/v1/reports/drift", **SPAN)
    assert all(drift[key] for key in ("drifted", "orphans", "last_runs"))
    sagas = await body(client, "/v1/reports/sagas", **SPAN)
    assert all(sagas[key] for key in ("by_type", "latest_failures"))
    failures = await body(client, "/v1/reports/failures", **SPAN)
    assert all(failures[key] for key in ("failures", "dead_letters"))
    latency = await body(client, "/v1/reports/provisioning-latency", **SPAN)
    assert latency["joiner"]["count"] == 1
    assert latency["targets"]


async def test_dashboard_routes_and_page(client: httpx.AsyncClient) -> None:
    for chart in ("activity", "failures", "latency", "approvals"):
        await body(client, f"/v1/dashboard/{chart}")
    page = await client.get("/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    script = await client.get("/dashboard/static/app.js")
    assert script.status_code == 200


@pytest.mark.parametrize(
    "path",
    ["/v1/audit/events", "/v1/audit/chain", "/v1/reports/sagas", "/v1/dashboard/activity"],
)
async def test_every_data_route_needs_audit_read(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path, headers={"Authorization": f"Bearer {REQUESTER_TOKEN}"})
    assert response.status_code == 403
    assert "audit:read" in response.json()["detail"]
    assert (await client.get(path, headers={"Authorization": ""})).status_code == 401


async def test_the_openapi_document_names_the_response_models(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    for name in ("AuditPage", "Story", "ChainStatus", "FailuresReport", "Activity"):
        assert name in schemas
    assert [name for name in schemas if "__" in name] == []  # no two models share a name
    operations = {(path, method) for path, item in document["paths"].items() for method in item}
    assert ("/v1/audit/stream", "get") in operations
    assert ("/metrics", "get") in operations
