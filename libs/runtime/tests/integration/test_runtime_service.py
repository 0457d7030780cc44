"""Service: a small ServiceDefinition run in-process against the real database and broker."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import ConsumerRecord

from accord.events import Envelope, from_kafka
from accord.runtime import db, kafka
from accord.runtime.consumer import Handler, HandlerContext
from accord.runtime.service import Runtime, Service, ServiceDefinition
from accord.runtime.settings import ServiceSettings
from accord.stack.network import free_port

from .conftest import (
    CONSUMED,
    EMITTED,
    FETCH_MAX_WAIT_MS,
    SESSION_TIMEOUT_MS,
    Kit,
    Recorder,
    completed,
    eventually,
    failed_because_of,
)

pytestmark = pytest.mark.integration

SHUTDOWN_TIMEOUT_S = 10.0


@dataclass
class Started:
    service: Service
    task: asyncio.Task[None]
    base_url: str
    client: httpx.AsyncClient


def settings_for(dsn: str) -> ServiceSettings:
    return ServiceSettings(
        database_url=dsn,
        create_topics=True,
        topic_partitions=3,
        session_timeout_ms=SESSION_TIMEOUT_MS,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        shutdown_timeout_s=SHUTDOWN_TIMEOUT_S,
        log_format="text",
    )


async def answers(client: httpx.AsyncClient, path: str) -> httpx.Response | None:
    try:
        return await client.get(path)
    except httpx.TransportError:
        return None


def remove_signal_handlers() -> list[int]:
    """Undo Service.run()'s loop.add_signal_handler calls; returns those that were left."""
    loop = asyncio.get_running_loop()
    return [sig for sig in (signal.SIGTERM, signal.SIGINT) if loop.remove_signal_handler(sig)]


@asynccontextmanager
async def running(definition: ServiceDefinition, dsn: str) -> AsyncIterator[Started]:
    service = Service(definition, settings_for(dsn))
    task = asyncio.create_task(service.run())
    base_url = f"http://127.0.0.1:{definition.http_port}"
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
            await eventually(lambda: task.done() or answers(client, "/healthz"), what="/healthz")
            if task.done():
                task.result()  # raises what made the service give up
            yield Started(service, task, base_url, client)
    finally:
        if not task.done():
            service.request_stop()
            await asyncio.wait_for(task, SHUTDOWN_TIMEOUT_S + 10)
        remove_signal_handlers()


def definition(name: str, routes: Callable[[Runtime], Mapping[str, Handler]]) -> ServiceDefinition:
    return ServiceDefinition(
        name=name,
        http_port=free_port(),
        migrations=[],
        routes=routes,
    )


async def test_service_starts_answers_probes_and_stops_on_request(
    kafka_env: str, fresh_database: str, unique: str
) -> None:
    async with running(definition(f"svc_{unique}", lambda rt: {}), fresh_database) as started:
        health = await started.client.get("/healthz")
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "service": f"svc_{unique}"}

        ready = await eventually(
            lambda: _status(started.client, "/readyz", 200), what="/readyz to answer 200"
        )
        body = ready.json()
        assert body["ready"] is True
        assert body["checks"]["database"] == "ok"
        await eventually(
            lambda: started.service.relay and started.service.relay.leader, what="relay"
        )

        started.service.request_stop()
        # Returns by itself, cleanly, well within the shutdown timeout (the bound is generous).
        await asyncio.wait_for(asyncio.shield(started.task), SHUTDOWN_TIMEOUT_S)
        assert started.task.exception() is None
        with pytest.raises(httpx.TransportError):
            await started.client.get("/healthz")


async def _status(client: httpx.AsyncClient, path: str, status: int) -> httpx.Response | None:
    response = await answers(client, path)
    return response if response is not None and response.status_code == status else None


async def test_service_consumes_and_relays_what_its_handler_emits(
    kit: Kit, fresh_database: str, unique: str
) -> None:
    prefix = f"u-{unique}"

    async def reply(envelope: Envelope, ctx: HandlerContext) -> Sequence[Envelope]:
        return [failed_because_of(envelope, ctx.source)]

    recorder = Recorder(prefix, reply)
    replies = await kit.collect(EMITTED, _about(prefix))
    name = f"svc_{unique}"
    async with running(definition(name, lambda rt: {CONSUMED: recorder}), fresh_database) as s:
        ready = await eventually(
            lambda: _status(s.client, "/readyz", 200), what="/readyz to answer 200"
        )
        checks = ready.json()["checks"]
        assert checks["database"] == "ok"
        # Ready means the consumer group assigned this member its partitions.
        assert checks["consumer"] == "joined"
        assert s.service.consumer is not None
        assert s.service.consumer.joined
        event = completed(f"{prefix}-1")

        await kit.publish(event)
        [record] = await replies.wait_for(1, "the reply relayed from the outbox")

        reply_event = from_kafka(record.topic, record.key, record.value, list(record.headers))
        assert reply_event.causationid == event.id
        assert reply_event.source == f"accord/{name}"
        assert recorder.count(event.id) == 1
        stats = (await s.client.get("/readyz")).json()["checks"]["consumer_stats"]
        # Other tests' records share the topic: only lower bounds hold for the counters.
        assert stats["handled"] >= 1
        assert stats["assigned_partitions"] >= 1
        s.service.request_stop()
        await asyncio.wait_for(asyncio.shield(s.task), SHUTDOWN_TIMEOUT_S)
        assert s.service.consumer is not None
        assert not s.service.consumer.running


def _about(prefix: str) -> Callable[[ConsumerRecord[bytes, bytes]], bool]:
    return lambda r: r.key is not None and r.key.decode().startswith(prefix)


async def test_service_run_leaves_no_signal_handlers_behind(
    kafka_env: str, fresh_database: str, unique: str
) -> None:
    service = Service(definition(f"svc_{unique}", lambda rt: {}), settings_for(fresh_database))
    task = asyncio.create_task(service.run())
    try:
        await eventually(lambda: service.relay is not None, what="the service to start")
    finally:
        service.request_stop()
        await asyncio.wait_for(task, SHUTDOWN_TIMEOUT_S + 10)
        leaked = remove_signal_handlers()  # also the clean-up, whatever the outcome
    assert leaked == []


async def test_a_service_that_cannot_reach_the_broker_closes_its_pool(
    fresh_database: str, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")  # nobody there
    # Spies, not fakes: they keep hold of what run() creates, so the test can clean up a leak.
    pools: list[asyncpg.Pool] = []
    producers: list[AIOKafkaProducer] = []

    async def create_pool(*args: Any, **kwargs: Any) -> asyncpg.Pool:
        pools.append(await real_create_pool(*args, **kwargs))
        return pools[-1]

    def make_producer(*args: Any, **options: Any) -> AIOKafkaProducer:
        producers.append(real_make_producer(*args, **options))
        return producers[-1]

    real_create_pool, real_make_producer = db.create_pool, kafka.make_producer
    monkeypatch.setattr(db, "create_pool", create_pool)
    monkeypatch.setattr(kafka, "make_producer", make_producer)
    settings = settings_for(fresh_database).model_copy(update={"create_topics": False})
    service = Service(definition(f"svc_{unique}", lambda rt: {}), settings)
    try:
        with pytest.raises(KafkaConnectionError):
            await asyncio.wait_for(service.run(), 30)
        assert [pool.is_closing() for pool in pools] == [True]
    finally:
        remove_signal_handlers()
        for pool in pools:
            if not pool.is_closing():
                await pool.close()
        for producer in producers:
            await producer.stop()
