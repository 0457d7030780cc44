"""The dashboard's queries on a real PostgreSQL, over records written by the auditor's writer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from accord.auditor.adapters import dashboard_queries, log_store
from accord.auditor.adapters.log_store import Filters
from accord.auditor.domain.normalise import AuditEntry, from_dead_letter, from_envelope
from accord.events import (
    AccessApprovalDecided,
    AccessApprovalRequested,
    AccountProvisioned,
    AccountProvisionFailed,
    EventData,
    Resource,
    SagaCompleted,
    UserCreated,
    new_event,
    to_kafka,
)

pytestmark = pytest.mark.integration
SCHEMA = "auditor"
NOW = datetime.now(UTC)
WIKI = Resource(application="wiki", entitlement="editor")


def entry(
    data: EventData, at: datetime, *, flow: str | None = None, sequence: int | None = None
) -> AuditEntry:
    envelope = new_event(
        data,
        source="urn:test",
        time=at,
        correlation_id=flow,
        sequence=1 if sequence is None and data.identity_event else sequence,
    )
    return from_envelope(envelope, data.event_type, None)


async def record(pool: asyncpg.Pool, *entries: AuditEntry) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await log_store.append_many(conn, list(entries))


def joiner(user_id: str, flow: str, start: datetime, done_after_s: float) -> list[AuditEntry]:
    return [
        entry(UserCreated(user_id=user_id, user_name=user_id), start, flow=flow),
        entry(
            SagaCompleted(
                saga_id=f"s-{user_id}",
                saga_type="joiner",
                subject_id=user_id,
                duration_ms=int(done_after_s * 1000),
            ),
            start + timedelta(seconds=done_after_s),
            flow=flow,
        ),
    ]


def provisioned(
    user_id: str, flow: str, at: datetime, target: str = "scim-demo", operation: str = "create"
) -> AuditEntry:
    return entry(
        AccountProvisioned(
            user_id=user_id,
            target=target,
            operation=operation,  # type: ignore[arg-type]
            saga_id=f"s-{user_id}",
            step_id=f"{target}-{operation}",
            account_id=f"acct-{user_id}",
            group="staff" if operation == "add_member" else None,
        ),
        at,
        flow=flow,
    )


def approval_requested(
    request_id: str, stage: int, at: datetime, *, escalated: bool = False
) -> AuditEntry:
    return entry(
        AccessApprovalRequested(
            request_id=request_id,
            principal_id="e-ada",
            resource=WIKI,
            stage=stage,
            stages=2,
            stage_name="manager" if stage == 1 else "application_owner",
            approvers=("e-boss",) if not escalated else ("e-boss", "e-ceo"),
            due_at=at + timedelta(hours=1),
            escalated=escalated,
        ),
        at,
        flow=request_id,
    )


def approval_decided(request_id: str, stage: int, at: datetime) -> AuditEntry:
    return entry(
        AccessApprovalDecided(
            request_id=request_id,
            principal_id="e-ada",
            stage=stage,
            outcome="approved",
            approver_id="e-boss",
        ),
        at,
        flow=request_id,
    )


def dead_letter_of(data: EventData, at: datetime) -> AuditEntry:
    sequence = 1 if data.identity_event else None
    encoded = to_kafka(new_event(data, source="urn:test", time=at, sequence=sequence))
    return from_dead_letter(
        f"{encoded.topic}.dlq", 0, 7, encoded.value, list(encoded.headers), received_at=at
    )


def unique() -> str:
    return uuid.uuid4().hex[:8]


async def test_the_window_is_whole_minutes_ending_with_the_current_one(
    pool: asyncpg.Pool,
) -> None:
    span = await dashboard_queries.window(pool, 15)
    assert len(span.minutes) == 15
    assert all(m.second == 0 and m.microsecond == 0 for m in span.minutes)
    assert span.minutes[-1] <= datetime.now(UTC) < span.end
    assert span.end - span.start == timedelta(minutes=15)
    assert span.minutes[1] - span.minutes[0] == timedelta(minutes=1)


async def test_activity_counts_records_per_minute_type_and_outcome(pool: asyncpg.Pool) -> None:
    at = NOW - timedelta(minutes=5)
    flow = unique()
    await record(
        pool,
        *joiner("e-a1", flow, at, 1),
        entry(UserCreated(user_id="e-a2", user_name="a2"), at),
        entry(UserCreated(user_id="e-old", user_name="old"), NOW - timedelta(hours=3)),
        entry(
            AccountProvisionFailed(
                user_id="e-a1",
                target="ldap",
                operation="create",
                saga_id="s-a1",
                step_id="ldap-create",
                reason="refused",
                retryable=False,
            ),
            at,
            flow=flow,
        ),
    )
    span = await dashboard_queries.window(pool, 60)
    counts = {
        (row["event_type"], row["outcome"]): row["count"]
        for row in await dashboard_queries.activity(pool, span)
    }
    assert counts == {
        ("user.created", "info"): 2,
        ("saga.completed", "success"): 1,
        ("account.provision_failed", "failure"): 1,
    }
    rows = await dashboard_queries.activity(pool, span)
    assert {row["minute"] for row in rows} <= set(span.minutes)


async def test_failures_per_minute_and_per_target(pool: asyncpg.Pool) -> None:
    at = NOW - timedelta(minutes=2)
    failed = AccountProvisionFailed(
        user_id="e-f1",
        target="ldap",
        operation="create",
        saga_id="s-f1",
        step_id="ldap-create",
        reason="refused",
        retryable=False,
    )
    await record(
        pool,
        entry(failed, at - timedelta(minutes=1)),
        entry(failed.model_copy(update={"step_id": "again"}), at),
        entry(failed.model_copy(update={"target": "scim-demo"}), at),
        dead_letter_of(UserCreated(user_id="e-dl", user_name="dl"), at),
        entry(UserCreated(user_id="e-ok", user_name="ok"), at),
    )
    span = await dashboard_queries.window(pool, 60)
    per_minute = await dashboard_queries.failures_per_minute(pool, span)
    assert sum(row["count"] for row in per_minute) == 4
    assert [row["count"] for row in per_minute] == [1, 3]
    per_target = await dashboard_queries.failures_per_target(pool, span)
    assert [(row["target"], row["count"]) for row in per_target] == [
        ("ldap", 2),
        ("scim-demo", 1),
        (None, 1),
    ]
    assert per_target[0]["last_event_type"] == "account.provision_failed"
    assert per_target[2]["last_event_type"] == "user.created"  # the dead letter's type


async def test_provisioning_latency_of_joiners(pool: asyncpg.Pool) -> None:
    start = NOW - timedelta(minutes=10)
    flows = [unique() for _ in range(4)]
    await record(
        pool,
        *joiner("e-l1", flows[0], start, 2),
        provisioned("e-l1", flows[0], start + timedelta(seconds=1)),
        provisioned("e-l1", flows[0], start + timedelta(seconds=1.5), operation="add_member"),
        *joiner("e-l2", flows[1], start, 4),
        provisioned("e-l2", flows[1], start + timedelta(seconds=3)),
        provisioned("e-l2", flows[1], start + timedelta(seconds=3.5), target="ldap"),
        # A mover's saga, and a saga whose user.created the log never saw: not joiners.
        entry(
            SagaCompleted(saga_id="s-m", saga_type="mover", subject_id="e-l1", duration_ms=1),
            start + timedelta(seconds=30),
            flow=flows[2],
        ),
        entry(
            SagaCompleted(saga_id="s-x", saga_type="joiner", subject_id="e-x", duration_ms=1),
            start,
            flow=flows[3],
        ),
    )
    span = await dashboard_queries.window(pool, 60)
    joiners = await dashboard_queries.joiner_latency(pool, span)
    assert joiners["count"] == 2
    assert joiners["p50_ms"] == pytest.approx(3000)
    assert joiners["p90_ms"] == pytest.approx(3800)
    assert joiners["max_ms"] == pytest.approx(4000)
    per_target = {t["target"]: t for t in await dashboard_queries.target_latency(pool, span)}
    assert set(per_target) == {"ldap", "scim-demo"}
    assert per_target["scim-demo"]["count"] == 2
    assert per_target["scim-demo"]["p50_ms"] == pytest.approx(2000)
    assert per_target["scim-demo"]["max_ms"] == pytest.approx(3000)
    assert per_target["ldap"]["count"] == 1
    assert per_target["ldap"]["p99_ms"] == pytest.approx(3500)


async def test_latency_of_nothing_is_no_numbers(pool: asyncpg.Pool) -> None:
    span = await dashboard_queries.window(pool, 1)
    assert await dashboard_queries.joiner_latency(pool, span) == {
        "count": 0,
        "p50_ms": None,
        "p90_ms": None,
        "p99_ms": None,
        "max_ms": None,
    }
    assert await dashboard_queries.target_latency(pool, span) == []


async def test_pending_approvals_are_stages_asked_for_and_not_decided(pool: asyncpg.Pool) -> None:
    at = NOW - timedelta(hours=2)
    decided, waiting, escalated = f"r-{unique()}", f"r-{unique()}", f"r-{unique()}"
    await record(
        pool,
        approval_requested(decided, 1, at),
        approval_decided(decided, 1, at + timedelta(minutes=1)),
        approval_requested(decided, 2, at + timedelta(minutes=1)),  # waits for stage 2
        approval_requested(waiting, 1, at + timedelta(minutes=2)),
        approval_requested(escalated, 1, at),
        approval_requested(escalated, 1, at + timedelta(minutes=90), escalated=True),
        # A dead letter of a request names its type but holds an error report: not pending.
        dead_letter_of(
            AccessApprovalRequested(
                request_id=f"r-{unique()}",
                principal_id="e-ada",
                resource=WIKI,
                stage=1,
                stages=1,
                stage_name="manager",
                approvers=("e-boss",),
            ),
            at,
        ),
    )
    total, items = await dashboard_queries.pending_approvals(pool, 100)
    pending = {(i["request_id"], i["stage"]) for i in items}
    assert pending == {(decided, 2), (waiting, 1), (escalated, 1)}
    assert total == 3
    # The longest waiting first; an escalated stage waits since its escalation.
    assert [i["request_id"] for i in items] == [decided, waiting, escalated]
    escalation = items[2]
    assert escalation["escalated"] is True  # the latest request of the stage
    assert escalation["approvers"] == ["e-boss", "e-ceo"]
    assert escalation["requested_at"] == at + timedelta(minutes=90)
    assert escalation["due_at"] == at + timedelta(minutes=150)
    assert escalation["stages"] == 2
    assert escalation["stage_name"] == "manager"
    assert (escalation["application"], escalation["entitlement"]) == ("wiki", "editor")
    assert escalation["principal_id"] == "e-ada"
    assert escalation["correlation_id"] == escalated
    limited_total, limited = await dashboard_queries.pending_approvals(pool, 1)
    assert (limited_total, len(limited)) == (3, 1)


async def test_records_after_a_cursor_and_the_latest_ones(pool: asyncpg.Pool) -> None:
    flow = unique()
    at = NOW - timedelta(minutes=1)
    await record(
        pool,
        *joiner("e-r1", flow, at, 1),
        provisioned("e-r1", flow, at + timedelta(seconds=0.5)),
        entry(UserCreated(user_id="e-r2", user_name="r2"), at),
    )
    mine = await log_store.query(pool, Filters(correlation_id=flow))
    assert [r["event_type"] for r in mine] == [
        "user.created",
        "saga.completed",
        "account.provisioned",
    ]
    assert mine[0]["payload"]["user_id"] == "e-r1"
    assert mine[0]["occurred_at"] == at
    cursor = mine[0]["record_id"]
    after = await log_store.query(pool, Filters(correlation_id=flow), after=cursor, limit=1)
    assert [r["record_id"] for r in after] == [mine[1]["record_id"]]
    successes = await log_store.query(pool, Filters(correlation_id=flow, outcome="success"))
    assert {r["event_type"] for r in successes} == {"saga.completed", "account.provisioned"}
    latest = await log_store.query(pool, Filters(correlation_id=flow), limit=2, newest=True)
    assert [r["record_id"] for r in latest] == [r["record_id"] for r in mine[1:]]
    by_subject = await log_store.query(
        pool, Filters(subject="e-r1", event_type="account.provisioned"), limit=10, newest=True
    )
    assert [r["record_id"] for r in by_subject] == [mine[2]["record_id"]]
