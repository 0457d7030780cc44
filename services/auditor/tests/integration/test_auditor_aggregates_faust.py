"""The faust stream aggregates against a real Kafka-protocol broker (Tansu by default).

Each test has topics and a faust app id of its own (the session's broker is shared), and
its records sit in a minute of the past, so the window closes as soon as the stream has been
idle for the grace period. No timing is asserted: every wait polls up to a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from accord.auditor.aggregates import AggregatesConfig, StreamAggregates, run
from accord.auditor.domain.aggregates import Policy
from accord.auditor.metrics import AuditorMetrics
from accord.events import AuditMetrics, AuditRecorded, from_kafka, new_event, to_kafka, topics
from accord.events.kafka_config import client_config

pytestmark = pytest.mark.integration

DEADLINE_S = 90.0


@dataclass
class Case:
    """One test's topics, names and window."""

    unique: str
    kafka: dict[str, Any]
    source_topic: str
    metrics_topic: str
    window: datetime

    @property
    def t1(self) -> str:
        return f"scim-{self.unique}"

    @property
    def t2(self) -> str:
        return f"ldap-{self.unique}"

    def config(self, **overrides: Any) -> AggregatesConfig:
        options: dict[str, Any] = {
            "app_id": f"test-aggregates-{self.unique}",
            "source_topic": self.source_topic,
            "metrics_topic": self.metrics_topic,
            "policy": Policy(grace_s=2.0),
            "tick_s": 0.5,
            "checkpoint_s": 0.5,
            "session_timeout_s": 6.0,
            "kafka": self.kafka,
        }
        options.update(overrides)
        return AggregatesConfig(**options)


@pytest_asyncio.fixture(loop_scope="session")
async def case(kafka_bootstrap: str) -> AsyncIterator[Case]:
    unique = uuid.uuid4().hex[:10]
    kafka = client_config({"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap})
    source, metrics = f"test.audit.{unique}", f"test.audit-metrics.{unique}"
    admin = AIOKafkaAdminClient(**kafka)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(name=source, num_partitions=3, replication_factor=1),
                NewTopic(name=metrics, num_partitions=1, replication_factor=1),
            ]
        )
    finally:
        await admin.close()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    yield Case(unique, kafka, source, metrics, window=now - timedelta(minutes=10))


def joiner_records(case: Case) -> list[AuditRecorded]:
    """Two joiners in the case's window: one provisioned everywhere, one failing on t2."""
    w, t1, t2 = case.window, case.t1, case.t2
    records: list[AuditRecorded] = []

    def add(kind: str, outcome: str, second: float, corr: str, **extra: Any) -> None:
        records.append(
            AuditRecorded(
                record_id=len(records) + 1,
                source_event_id=f"ev-{uuid.uuid4().hex}",
                source_topic=kind,
                event_type_recorded=kind,
                occurred_at=w + timedelta(seconds=second),
                actor="accord/test",
                subject=f"e-{corr}",
                outcome=outcome,  # type: ignore[arg-type]
                correlation_id=corr,
                **extra,
            )
        )

    saga = {"saga_type": "joiner", "targets": [t1, t2]}
    for corr, start in ((f"a-{case.unique}", 1.0), (f"b-{case.unique}", 5.0)):
        add("user.created", "info", start, corr)
        add("saga.started", "pending", start + 0.2, corr, payload=saga)
        add("provision.requested", "pending", start + 0.4, corr, target=t1)
        add("provision.requested", "pending", start + 0.4, corr, target=t2)
    a, b = f"a-{case.unique}", f"b-{case.unique}"
    add("account.provisioned", "success", 3.0, a, target=t1)  # a: t1 2000 ms
    add("account.provisioned", "success", 4.5, a, target=t2)  # a: t2 3500 ms, all 3500 ms
    add("saga.completed", "success", 4.8, a, payload={"saga_type": "joiner"})
    add("account.provisioned", "success", 6.0, b, target=t1)  # b: t1 1000 ms
    add("account.provision_failed", "failure", 7.0, b, target=t2)
    add("saga.failed", "failure", 7.2, b, payload={"saga_type": "joiner"})
    return records


async def publish(case: Case, records: list[AuditRecorded], *, shuffle: bool = True) -> None:
    """As the auditor would, but in a scrambled order and recorded a little after each event."""
    if shuffle:
        random.Random(7).shuffle(records)
    producer = AIOKafkaProducer(**case.kafka)
    await producer.start()
    try:
        for data in records:
            recorded_at = data.occurred_at + timedelta(milliseconds=150)
            record = to_kafka(new_event(data, source="accord/auditor", time=recorded_at))
            await producer.send_and_wait(
                case.source_topic, record.value, key=record.key, headers=list(record.headers)
            )
    finally:
        await producer.stop()


async def eventually(check: Callable[[], Any], *, what: str, timeout: float = DEADLINE_S) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def running(build: Callable[[], StreamAggregates]) -> AsyncIterator[None]:
    stopping = asyncio.Event()
    task = asyncio.create_task(run(build, stopping, retry_s=1.0))
    try:
        yield
    finally:
        stopping.set()
        await asyncio.wait_for(task, 30)


async def window_event(case: Case) -> tuple[bytes | None, AuditMetrics]:
    """The audit.metrics event of the case's window, decoded as consumers would."""
    wanted = case.window.strftime("%Y-%m-%dT%H:%M:%SZ")
    consumer = AIOKafkaConsumer(
        case.metrics_topic,
        **case.kafka,
        group_id=f"test-metrics-reader-{case.unique}-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=2000,
    )
    await consumer.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    try:
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    envelope = from_kafka(
                        topics.AUDIT_METRICS, record.key, record.value, list(record.headers)
                    )
                    assert isinstance(envelope.data, AuditMetrics)
                    if envelope.data.window_start == wanted:
                        return record.key, envelope.data
    finally:
        await consumer.stop()
    raise AssertionError(f"no audit.metrics event for {wanted} within {DEADLINE_S:.0f} s")


def check_window(case: Case, key: bytes | None, data: AuditMetrics) -> None:
    assert key == case.window.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    counts = {(c.event_type, c.outcome): c.count for c in data.counts}
    assert counts == {
        ("user.created", "info"): 2,
        ("saga.started", "pending"): 2,
        ("provision.requested", "pending"): 4,
        ("account.provisioned", "success"): 3,
        ("account.provision_failed", "failure"): 1,
        ("saga.completed", "success"): 1,
        ("saga.failed", "failure"): 1,
    }
    assert (data.records, data.late_records, data.window_seconds) == (14, 0, 60)
    by_target = {t.target: t for t in data.targets}
    assert set(by_target) == {case.t1, case.t2}
    one, two = by_target[case.t1], by_target[case.t2]
    assert (one.requested, one.attempts, one.failures, one.failure_rate) == (2, 2, 0, 0.0)
    assert (two.requested, two.attempts, two.failures, two.failure_rate) == (2, 2, 1, 0.5)
    # Latency: event time of user.created -> account.provisioned.
    assert (one.latency.joiners, one.latency.p50_ms, one.latency.max_ms) == (2, 1000, 2000)
    assert (two.latency.joiners, two.latency.p50_ms, two.latency.max_ms) == (1, 3500, 3500)
    overall = data.latency  # only joiner a completed
    assert (overall.joiners, overall.samples) == (1, 1)
    assert overall.p50_ms == overall.p90_ms == overall.p99_ms == overall.max_ms == 3500


def records_counted(metrics: AuditorMetrics) -> float:
    """The records a member counted, every type and outcome."""
    return sum(
        sample.value
        for family in metrics.registry.collect()
        if family.name == "accord_audit_records"
        for sample in family.samples
        if sample.name == "accord_audit_records_total"
    )


async def test_two_joiners_give_one_window_with_counts_failures_and_latency(case: Case) -> None:
    metrics = AuditorMetrics()
    async with running(lambda: StreamAggregates(case.config(), metrics)):
        await publish(case, joiner_records(case))
        key, data = await window_event(case)
    check_window(case, key, data)

    def sample(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    assert sample("accord_audit_records_total", event_type="user.created", outcome="info") == 2
    assert sample("accord_audit_provisioning_attempts_total", target=case.t2) == 2
    assert sample("accord_audit_provisioning_failures_total", target=case.t2) == 1
    assert sample("accord_audit_joiner_latency_seconds_count") == 1
    assert sample("accord_audit_joiner_latency_seconds_sum") == 3.5
    assert sample("accord_audit_joiner_target_latency_seconds_count", target=case.t1) == 2
    assert sample("accord_audit_metrics_windows_total") == 1


async def test_a_new_member_takes_the_open_window_over_from_the_table(case: Case) -> None:
    # The first member sees every record but, with a long grace, never closes the window.
    first = AuditorMetrics()
    patient = case.config(policy=Policy(grace_s=600.0))
    async with running(lambda: StreamAggregates(patient, first)):
        await publish(case, joiner_records(case))

        def all_seen() -> bool:
            published = first.registry.get_sample_value("accord_audit_metrics_windows_total")
            return records_counted(first) == 14 and not published

        await eventually(all_seen, what="the first member to count all 14 records")
        await asyncio.sleep(1.5)  # a checkpoint (every 0.5 s) holds them all
    # The second member (same app id: same group and table) restores and closes the window.
    second = AuditorMetrics()
    async with running(lambda: StreamAggregates(case.config(), second)):
        key, data = await window_event(case)
    check_window(case, key, data)
    # The window came from the table: the second member read no record again.
    assert records_counted(second) == 0
