"""Reports read from the audit log on a real PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from accord.auditor.adapters import log_store, report_queries
from accord.auditor.domain.normalise import AuditEntry
from accord.stack.testing import run_accord as accord

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


_n = iter(range(1, 1_000_000))


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
        "correlation_id": "c",
        "trace_id": None,
        "payload": payload,
    }
    values.update(fields)
    return AuditEntry(**values)


def grant(event_type: str, minutes: float, grant_id: str, **extra: Any) -> AuditEntry:
    app, entitlement = extra.pop("what", ("payroll", "admin"))
    payload = {
        "request_id": f"r-{grant_id}",
        "grant_id": grant_id,
        "principal_id": extra.pop("who", "bob"),
        "resource": {"application": app, "entitlement": entitlement},
        **extra,
    }
    return record(event_type, minutes, payload)


async def store(pool: asyncpg.Pool, entries: list[AuditEntry]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await log_store.append_many(conn, entries)


async def test_access_as_of_any_time_follows_grants_revocations_and_expiry(
    pool: asyncpg.Pool,
) -> None:
    expires = (T0 + timedelta(minutes=30)).isoformat()
    await store(
        pool,
        [
            grant("access.granted", 0, "g1"),
            grant("access.granted", 5, "g2", who="ann", what=("wiki", "reader")),
            grant("access.granted", 10, "g3", who="ann", what=("vpn", "user"), expires_at=expires),
            grant("access.revoked", 20, "g1", reason="mover"),
        ],
    )

    async def held(minutes: float, **filters: Any) -> list[tuple[str, str, str]]:
        rows = await report_queries.access_as_of(pool, T0 + timedelta(minutes=minutes), **filters)
        return [(r["principal_id"], r["application"], r["entitlement"]) for r in rows]

    assert await held(1) == [("bob", "payroll", "admin")]
    assert await held(15) == [
        ("ann", "vpn", "user"),
        ("ann", "wiki", "reader"),
        ("bob", "payroll", "admin"),
    ]
    assert await held(25) == [("ann", "vpn", "user"), ("ann", "wiki", "reader")]
    assert await held(40) == [("ann", "wiki", "reader")]
    assert await held(15, principal_id="bob") == [("bob", "payroll", "admin")]
    assert await held(15, application="vpn") == [("ann", "vpn", "user")]


async def test_failures_drift_sod_and_saga_reports(pool: asyncpg.Pool) -> None:
    await store(
        pool,
        [
            record("account.provision_failed", 1, {"target": "ldap"}, outcome="failure"),
            record("account.provision_failed", 2, {"target": "ldap"}, outcome="failure"),
            record(
                "provision.requested",
                3,
                {"error": "handler failed 3 times", "error_type": "handler-error"},
                source_topic="provision.requested.dlq",
                outcome="failure",
            ),
            record(
                "account.drift_detected",
                4,
                {"target": "ldap", "user_id": "u1", "run_id": "r1", "kind": "attributes"},
            ),
            record(
                "account.orphan_detected",
                4,
                {"target": "ldap", "account_id": "a9", "user_name": "ghost", "run_id": "r1"},
            ),
            record(
                "reconciliation.completed", 5, {"target": "ldap", "run_id": "r1", "accounts": 3}
            ),
            record(
                "access.decided",
                6,
                {
                    "request_id": "r7",
                    "principal_id": "bob",
                    "resource": {"application": "finance", "entitlement": "approver"},
                    "decision": "deny",
                    "reasons": ["sod-payroll-admin-vs-payment-approver"],
                },
            ),
            record(
                "access.decided",
                6,
                {
                    "request_id": "r8",
                    "principal_id": "ann",
                    "decision": "permit",
                    "reasons": ["ok"],
                },
            ),
            record(
                "saga.completed", 7, {"saga_type": "joiner", "saga_id": "s1", "duration_ms": 40}
            ),
            record(
                "saga.completed", 7, {"saga_type": "joiner", "saga_id": "s2", "duration_ms": 60}
            ),
            record(
                "saga.failed", 8, {"saga_type": "leaver", "saga_id": "s3", "reason": "ldap down"}
            ),
        ],
    )
    since, until = T0, T0 + timedelta(hours=1)

    failed = await report_queries.failures(pool, since, until)
    assert [(f["event_type"], f["target"], f["count"]) for f in failed["failures"]] == [
        ("account.provision_failed", "ldap", 2)
    ]
    assert [(d["source_topic"], d["error_type"]) for d in failed["dead_letters"]] == [
        ("provision.requested.dlq", "handler-error")
    ]
    drift = await report_queries.drift(pool, since, until)
    assert [(d["user_id"], d["kind"]) for d in drift["drifted"]] == [("u1", "attributes")]
    assert [(o["account_id"], o["user_name"]) for o in drift["orphans"]] == [("a9", "ghost")]
    assert [r["target"] for r in drift["last_runs"]] == ["ldap"]
    sod = await report_queries.sod(pool, since, until)
    assert [(s["request_id"], s["decision"], s["reasons"]) for s in sod] == [
        ("r7", "deny", ["sod-payroll-admin-vs-payment-approver"])
    ]
    sagas = await report_queries.sagas(pool, since, until)
    assert [
        (s["saga_type"], s["completed"], s["failed"], s["p50_ms"]) for s in sagas["by_type"]
    ] == [
        ("joiner", 2, 0, 50.0),
        ("leaver", 0, 1, None),
    ]
    assert [f["reason"] for f in sagas["latest_failures"]] == ["ldap down"]
    # Outside the range, nothing.
    assert (await report_queries.failures(pool, until, until + timedelta(hours=1)))[
        "failures"
    ] == []


async def test_the_report_command_prints_a_table_or_json(
    pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    await store(pool, [grant("access.granted", 0, "g1")])

    as_of = (T0 + timedelta(minutes=1)).isoformat()
    code, out, _ = await accord(capsys, "audit", "report", "access", "--as-of", as_of)
    assert code == 0
    header, row = out.splitlines()
    assert header.split()[:4] == ["GRANT_ID", "PRINCIPAL_ID", "APPLICATION", "ENTITLEMENT"]
    assert row.split()[:4] == ["g1", "bob", "payroll", "admin"]

    since = T0.isoformat()
    code, out, _ = await accord(capsys, "audit", "report", "sagas", "--since", since, "--json")
    assert code == 0
    assert json.loads(out) == {"by_type": [], "latest_failures": []}
    code, _, _ = await accord(capsys, "audit", "report", "sagas", "--since", "2030-01-01T00:00:00Z")
    assert code == 2


async def test_dead_letters_are_not_read_as_their_events(pool: asyncpg.Pool) -> None:
    # A dead letter keeps its event's type; its payload is an error report.
    error = {"error": "handler failed 3 times", "error_type": "handler-error"}
    late = T0 + timedelta(days=40)

    def dead(event_type: str) -> AuditEntry:
        return record(event_type, 60 * 24 * 40, error, source_topic=f"{event_type}.dlq")

    await store(
        pool,
        [
            dead("access.granted"),
            dead("saga.completed"),
            dead("saga.failed"),
            dead("access.decided"),
            dead("account.drift_detected"),
            dead("reconciliation.completed"),
        ],
    )
    span = (late - timedelta(hours=1), late + timedelta(hours=1))

    assert await report_queries.access_as_of(pool, late + timedelta(minutes=1)) == []
    sagas = await report_queries.sagas(pool, *span)
    assert sagas == {"by_type": [], "latest_failures": []}
    assert await report_queries.sod(pool, *span) == []
    drift = await report_queries.drift(pool, *span)
    assert drift["drifted"] == []
    assert all(run["target"] is not None for run in drift["last_runs"])
