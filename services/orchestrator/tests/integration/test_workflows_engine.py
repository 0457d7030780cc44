"""The workflow engine in the running orchestrator, on the real PostgreSQL and Kafka: a
user.created on Kafka starts a run, its one-second wait ends by the wake-up loop and the run
completes, with the workflow.* events on Kafka; a run whose wait was scheduled before the
service stopped completes after it started again. And the I/O effect queue's PostgreSQL
adapter (migration 0015)."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from accord.events import Envelope, UserCreated, from_kafka, new_event, to_kafka
from accord.orchestrator.adapters.workflow_effects import PostgresEffectQueue
from accord.orchestrator.bootstrap import definition
from accord.orchestrator.settings import OrchestratorSettings
from accord.orchestrator.workflows import runs
from accord.runtime.service import Service
from accord.stack.network import free_port
from accord.stack.testing import migrated_pool

pytestmark = pytest.mark.integration

SCHEMA = "orchestrator"
DEADLINE_S = 30.0
WORKFLOW_TOPICS = [
    "workflow.run_started",
    "workflow.task_waiting",
    "workflow.task_completed",
    "workflow.run_completed",
]

WORKFLOW = """
id: settle-in
category: joiner
description: A joiner of one department waits a moment, then is done.
trigger: {{event: user.created}}
scope: identity.department == "{department}"
tasks:
  - id: pause
    task: wait
    duration: PT{seconds}S
"""


async def eventually(predicate: Callable[[], Awaitable[Any]], what: str) -> Any:
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while True:
        result = await predicate()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.fixture
def kafka(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    return kafka_bootstrap


def settings_for(dsn: str, folder: Path) -> OrchestratorSettings:
    return OrchestratorSettings(
        database_url=dsn,
        http_port=free_port(),
        workflows_dir=folder,
        birthright_targets="",
        create_topics=True,
        topic_partitions=3,
        session_timeout_ms=2000,
        fetch_max_wait_ms=20,
        shutdown_timeout_s=10.0,
        timer_poll_s=0.2,
        log_format="text",
    )


@asynccontextmanager
async def running(settings: OrchestratorSettings) -> AsyncIterator[Service]:
    """The orchestrator in this process until the block ends (then stopped cleanly)."""
    service = Service(definition(settings), settings)
    task = asyncio.create_task(service.run())
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.http_port}") as client:

            async def healthy() -> bool:
                if task.done():
                    task.result()
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(healthy, "/healthz")
        yield service
    finally:
        if not task.done():
            service.request_stop()
        await asyncio.wait_for(task, 30)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


@pytest_asyncio.fixture(loop_scope="session")
async def producer(kafka: str) -> AsyncIterator[AIOKafkaProducer]:
    made = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", linger_ms=1)
    await made.start()
    try:
        yield made
    finally:
        await made.stop()


async def publish(producer: AIOKafkaProducer, envelope: Envelope) -> None:
    record = to_kafka(envelope)
    await producer.send_and_wait(
        record.topic, record.value, key=record.key, headers=list(record.headers)
    )


@asynccontextmanager
async def workflow_events(kafka: str, identity: str) -> AsyncIterator[list[Envelope]]:
    """The workflow.* events about `identity`, collected while the block runs."""
    consumer = AIOKafkaConsumer(
        *WORKFLOW_TOPICS,
        bootstrap_servers=kafka,
        group_id=f"test-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    seen: list[Envelope] = []

    async def collect() -> None:
        async for record in consumer:
            if record.key == identity.encode():
                headers = [(name, bytes(value)) for name, value in record.headers]
                seen.append(from_kafka(record.topic, record.key, record.value, headers))

    task = asyncio.create_task(collect())
    try:
        yield seen
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await consumer.stop()


async def run_status(dsn: str, identity: str) -> str | None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"SET search_path TO {SCHEMA}")
        return await conn.fetchval(
            "SELECT status FROM workflow_runs WHERE identity_id = $1", identity
        )
    finally:
        await conn.close()


def folder_with(tmp_path: Path, department: str, seconds: int) -> Path:
    folder = tmp_path / "workflows"
    folder.mkdir()
    (folder / "settle-in.yaml").write_text(WORKFLOW.format(department=department, seconds=seconds))
    return folder


def joiner(identity: str, department: str) -> Envelope:
    created = UserCreated(user_id=identity, user_name=identity, department=department)
    return new_event(created, source="urn:test:hr", sequence=1)


async def test_an_identity_event_runs_a_workflow_with_a_wait_to_its_end(
    kafka: str, fresh_database: str, producer: AIOKafkaProducer, tmp_path: Path
) -> None:
    unique = uuid.uuid4().hex[:8]
    identity, department = f"wf-{unique}", f"dept-{unique}"
    settings = settings_for(fresh_database, folder_with(tmp_path, department, seconds=1))

    async with running(settings), workflow_events(kafka, identity) as seen:
        await publish(producer, joiner(identity, department))

        async def completed() -> bool:
            return any(e.type == "workflow.run_completed" for e in seen)

        await eventually(completed, "workflow.run_completed")

    # One topic per event type: Kafka keeps no order across them.
    by_type = {e.type: e.data for e in seen}
    assert sorted(e.type for e in seen) == sorted(WORKFLOW_TOPICS)
    started = by_type["workflow.run_started"]
    waiting = by_type["workflow.task_waiting"]
    done = by_type["workflow.task_completed"]
    assert started.workflow_id == "settle-in"  # type: ignore[attr-defined]
    assert waiting.waiting_for == "timer"  # type: ignore[attr-defined]
    assert done.task_id == "pause"  # type: ignore[attr-defined]
    assert len({e.correlationid for e in seen}) == 1
    assert await run_status(fresh_database, identity) == "completed"


async def test_a_wait_scheduled_before_a_restart_ends_after_it(
    kafka: str, fresh_database: str, producer: AIOKafkaProducer, tmp_path: Path
) -> None:
    unique = uuid.uuid4().hex[:8]
    identity, department = f"wf-{unique}", f"dept-{unique}"
    settings = settings_for(fresh_database, folder_with(tmp_path, department, seconds=3))

    async with running(settings):
        await publish(producer, joiner(identity, department))

        async def waiting() -> bool:
            return await run_status(fresh_database, identity) == "waiting"

        await eventually(waiting, "the run to wait")
    stopped_at = datetime.now(UTC)
    assert await run_status(fresh_database, identity) == "waiting"  # nobody moved it

    async with running(settings), workflow_events(kafka, identity) as seen:

        async def completed() -> bool:
            return await run_status(fresh_database, identity) == "completed"

        await eventually(completed, "the run to complete after the restart")

        async def announced() -> bool:
            return any(e.type == "workflow.run_completed" for e in seen)

        await eventually(announced, "workflow.run_completed")
    assert datetime.now(UTC) - stopped_at < timedelta(seconds=DEADLINE_S)


# --- the effect queue on PostgreSQL ------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="session")
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool(fresh_database, SCHEMA, ["accord.orchestrator.migrations"]) as made:
        yield made


async def test_the_effect_queue_leases_claims_and_forgets(pool: asyncpg.Pool) -> None:
    now = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)
    mail = runs.SendMail(
        run_id="wfr-1", task_id="welcome", attempt=1, to=("identity",), subject="Hi", body="Hello"
    )
    call = runs.CallExtension(
        run_id="wfr-1",
        task_id="handover",
        attempt=2,
        url="https://x.example/hook",
        secret_env="SECRET",
        wait_for_callback=True,
        timeout=timedelta(days=3),
    )
    async with pool.acquire() as conn, conn.transaction():
        queue = PostgresEffectQueue(conn)
        await queue.enqueue(mail, "u1", now)
        await queue.enqueue(mail, "u1", now + timedelta(hours=1))  # queued already: stays
        await queue.enqueue(call, "u1", now + timedelta(minutes=1))

    lease = timedelta(minutes=5)
    async with pool.acquire() as conn, conn.transaction():
        (claimed,) = await PostgresEffectQueue(conn).claim_due(now, lease, 10)
    assert claimed.command == mail
    assert claimed.identity_id == "u1"
    assert claimed.effect_id == "wfr-1:welcome:1"

    # Leased: not claimable again until the lease ends (the extension call is due by then).
    async with pool.acquire() as conn, conn.transaction():
        queue = PostgresEffectQueue(conn)
        later = await queue.claim_due(now + timedelta(minutes=2), lease, 10)
        assert [q.command for q in later] == [call]
        again = await queue.claim_due(now + lease + timedelta(seconds=1), lease, 10)
        assert [q.command for q in again] == [mail]

    async with pool.acquire() as conn, conn.transaction():
        queue = PostgresEffectQueue(conn)
        assert await queue.done(claimed.effect_id) is True
        assert await queue.done(claimed.effect_id) is False
        await queue.cancel("wfr-1", "handover")
        assert await queue.claim_due(now + timedelta(days=1), lease, 10) == []
        rows = await conn.fetch("SELECT command FROM workflow_effects")
        assert rows == []


async def test_two_claimers_never_take_the_same_effect(pool: asyncpg.Pool) -> None:
    now = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)
    async with pool.acquire() as conn, conn.transaction():
        queue = PostgresEffectQueue(conn)
        for index in range(4):
            command = runs.SendMail(
                run_id=f"wfr-{index}", task_id="t", attempt=1, to=("identity",), subject="s"
            )
            await queue.enqueue(command, "u1", now)
    async with (
        pool.acquire() as first,
        pool.acquire() as second,
        first.transaction(),
        second.transaction(),
    ):
        one = await PostgresEffectQueue(first).claim_due(now, timedelta(minutes=5), 2)
        two = await PostgresEffectQueue(second).claim_due(now, timedelta(minutes=5), 10)
    assert len(one) == 2
    assert len(two) == 2
    assert {q.effect_id for q in one}.isdisjoint({q.effect_id for q in two})
    stored = await pool.fetch("SELECT command FROM workflow_effects ORDER BY effect_id")
    assert [json.loads(r["command"])["type"] for r in stored] == ["SendMail"] * 4


SCOPED_JOINER = """
id: accord-joiner
category: joiner
description: The shipped joiner saga, for one department only.
trigger: {{event: user.created}}
scope: identity.department == "{department}"
tasks:
  - {{id: accounts, task: account_saga, saga: joiner}}
"""


async def sagas_of(dsn: str, identity: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"SET search_path TO {SCHEMA}")
        rows = await conn.fetch("SELECT saga_type FROM sagas WHERE subject_id = $1", identity)
        return [row["saga_type"] for row in rows]
    finally:
        await conn.close()


async def registered(dsn: str, identity: str) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"SET search_path TO {SCHEMA}")
        found = await conn.fetchval("SELECT 1 FROM identities WHERE user_id = $1", identity)
        return found is not None
    finally:
        await conn.close()


async def test_a_folder_replaces_a_shipped_saga_workflow(
    kafka: str, fresh_database: str, producer: AIOKafkaProducer, tmp_path: Path
) -> None:
    """A team's accord-joiner scoped to one department: a joiner of that department gets its
    joiner saga, one of another department is registered (in the same transaction a saga
    would start in) and gets none."""
    unique = uuid.uuid4().hex[:8]
    department = f"dept-{unique}"
    inside, outside = f"in-{unique}", f"out-{unique}"
    folder = tmp_path / "workflows"
    folder.mkdir()
    (folder / "joiner.yaml").write_text(SCOPED_JOINER.format(department=department))
    settings = settings_for(fresh_database, folder)

    async with running(settings):
        await publish(producer, joiner(inside, department))
        await publish(producer, joiner(outside, f"other-{unique}"))
        await eventually(lambda: sagas_of(fresh_database, inside), "the joiner saga")
        await eventually(lambda: registered(fresh_database, outside), "the other joiner")

    assert await sagas_of(fresh_database, inside) == ["joiner"]
    assert await sagas_of(fresh_database, outside) == []
