"""A service's lifecycle: migrate, connect, consume, relay, serve; stop cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Collection, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from accord.events import REGISTRY
from accord.runtime import db, kafka, metrics
from accord.runtime.consumer import (
    BatchHandler,
    ConsumerLoop,
    IdlePolling,
    RawHandler,
    Route,
    describe,
)
from accord.runtime.http import create_app, make_server, secure
from accord.runtime.metrics import RuntimeMetrics
from accord.runtime.outbox import OutboxRelay
from accord.runtime.security import api_tokens
from accord.runtime.security.api import ApiSecurity
from accord.runtime.security.api_tokens import TokenStore
from accord.runtime.security.oidc import OidcConfig, OidcVerifier
from accord.runtime.security.rate_limit import RateLimiter
from accord.runtime.settings import ServiceSettings

log = logging.getLogger(__name__)

Hook = Callable[["Runtime"], Coroutine[Any, Any, None]]


@dataclass
class Runtime:
    """Resources a running service shares with its handlers, API and background tasks."""

    name: str
    settings: ServiceSettings
    pool: asyncpg.Pool
    producer: AIOKafkaProducer
    schema: str
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the service begins to stop: background work watches it and returns."""
    metrics: RuntimeMetrics = field(default_factory=RuntimeMetrics)
    """The service's Prometheus metrics (GET /metrics); a service registers its own here."""

    @property
    def source(self) -> str:
        """CloudEvents source of this service's events."""
        return f"accord/{self.name}"


@dataclass
class ServiceDefinition:
    """What makes one service: its tables, routes, API and background work."""

    name: str
    http_port: int
    migrations: list[str]
    routes: Callable[[Runtime], Mapping[str, Route]]
    configure_app: Callable[[FastAPI, Runtime], None] | None = None
    on_start: list[Hook] = field(default_factory=list)
    on_stop: list[Hook] = field(default_factory=list)
    background: list[Hook] = field(default_factory=list)
    dead_letter_handler: Callable[[Runtime], RawHandler] | None = None
    """Set to also consume the DLQs of the routed topics, raw."""
    batch_handler: Callable[[Runtime], BatchHandler] | None = None
    """Set to take each partition's records (the types of batch_types, else the routed
    types, and the DLQs of their topics) in one transaction instead of one event at a time."""
    batch_types: Collection[str] = ()
    """The event types the batch handler takes, for a service that routes none."""
    fetch_max_wait_ms: int | None = None
    """The consumer's fetch wait, if not the shared ACCORD_KAFKA_FETCH_MAX_WAIT_MS (a service
    off the latency-critical path that reads many topics polls less often)."""
    fetch_min_bytes: int = 1
    """How much a fetch waits to gather (up to the fetch wait) while records flow; 1: it
    returns at the first record. Once the topics are quiet a fetch returns at the first
    record again (accord.runtime.polling)."""


class Service:
    """Runs a ServiceDefinition until SIGTERM or SIGINT, then shuts down in order."""

    def __init__(self, definition: ServiceDefinition, settings: ServiceSettings) -> None:
        self.definition = definition
        self.settings = settings
        self.runtime: Runtime | None = None
        self.consumer: ConsumerLoop | None = None
        self.relay: OutboxRelay | None = None
        self._stop = asyncio.Event()
        self.app: FastAPI = create_app(definition.name, self._readiness)
        secure(self.app, max_body_bytes=settings.max_body_bytes)
        self.metrics = RuntimeMetrics()
        metrics.install(self.app, self.metrics)
        self.metrics.watch_readiness(self._readiness)

    @property
    def schema(self) -> str:
        """The database schema this service owns."""
        return self.definition.name

    def request_stop(self) -> None:
        """Begin a graceful shutdown."""
        self._stop.set()

    async def run(self) -> None:
        """Start everything, wait for a stop request (SIGTERM, SIGINT), stop everything."""
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
                installed.append(sig)
        try:
            await self._run()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    async def _run(self) -> None:
        """The service's lifespan: each step that opens something registers how to close
        it, and they close in reverse order however far the start got."""
        dsn = self.settings.database_url.get_secret_value()
        await self._prepare(dsn)
        tasks: dict[str, asyncio.Task[Any]] = {}
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(log.info, "service stopped")
            pool = await db.create_pool(dsn, self.schema, max_size=self.settings.db_pool_size)
            stack.push_async_callback(pool.close)
            producer = kafka.make_producer(self.settings.broker_profile)
            stack.push_async_callback(producer.stop)
            await producer.start()
            runtime = Runtime(
                self.definition.name,
                self.settings,
                pool,
                producer,
                self.schema,
                self._stop,
                self.metrics,
            )
            self.metrics.watch_pool(pool)
            self.runtime = runtime
            oidc = build_oidc_verifier(self.settings)
            if oidc is not None:
                stack.push_async_callback(oidc.aclose)
            self.app.state.security = self._api_security(pool, oidc)
            stack.push_async_callback(self._run_stop_hooks, runtime)
            # Cancelled tasks must finish before the pool and producer they use close.
            stack.push_async_callback(_cancel, tasks)
            await self._start(runtime, tasks)
            await self._serve(tasks)

    async def _prepare(self, dsn: str) -> None:
        """Migrations, the API tokens' table and the topics: before anything runs."""
        applied = await db.migrate(dsn, self.schema, self.definition.migrations)
        if applied:
            log.info("database migrated", extra={"migrations": applied})
        await api_tokens.migrate(dsn)
        if self.settings.create_topics:
            await kafka.ensure_topics(
                REGISTRY.topics(with_dlq=True),
                self.settings.topic_layout,
                with_configs=self.settings.broker_profile.topic_configs,
            )

    def _api_security(self, pool: asyncpg.Pool, oidc: OidcVerifier | None) -> ApiSecurity:
        settings = self.settings
        return ApiSecurity(
            TokenStore(pool),
            oidc,
            per_caller=RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst),
            failures=RateLimiter(settings.auth_failures_per_min / 60, settings.auth_failures_burst),
            per_application=RateLimiter(
                settings.application_rate_limit_per_s, settings.application_rate_limit_burst
            ),
        )

    async def _start(self, runtime: Runtime, tasks: dict[str, asyncio.Task[Any]]) -> None:
        """The start hooks, the API, the outbox relay, the consumer and background work."""
        for hook in self.definition.on_start:
            await hook(runtime)
        if self.definition.configure_app:
            self.definition.configure_app(self.app, runtime)
        self.relay = OutboxRelay(
            self.settings.database_url.get_secret_value(),
            self.schema,
            runtime.producer,
            metrics=self.metrics,
        )
        tasks["relay"] = asyncio.create_task(self.relay.run(), name="relay")
        self.consumer = self._consumer_loop(runtime)
        if self.consumer is not None:
            tasks["consumer"] = asyncio.create_task(self._consume(), name="consumer")
        for hook in self.definition.background:
            tasks[hook.__name__] = asyncio.create_task(hook(runtime), name=hook.__name__)

    def _consumer_loop(self, runtime: Runtime) -> ConsumerLoop | None:
        """The consumer of the routed (and batch) types' topics; None if there are none."""
        routes = self.definition.routes(runtime)
        types = list(dict.fromkeys([*routes, *self.definition.batch_types]))
        if not types:
            return None
        topics = [REGISTRY.spec(t).topic for t in types]
        batch = None
        if self.definition.batch_handler is not None:
            batch = self.definition.batch_handler(runtime)
        if self.definition.dead_letter_handler is not None or batch is not None:
            topics += [REGISTRY.spec(t).dlq for t in types]
        raw = None
        if self.definition.dead_letter_handler is not None:
            raw = self.definition.dead_letter_handler(runtime)
        group = f"accord-{self.definition.name}"
        return ConsumerLoop(
            consumer=kafka.make_consumer(
                group,
                fetch_max_wait_ms=self._fetch_max_wait_ms(),
                session_timeout_ms=self.settings.session_timeout_ms,
                fetch_min_bytes=self.definition.fetch_min_bytes,
            ),
            producer=runtime.producer,
            pool=runtime.pool,
            schema=self.schema,
            group=group,
            source=runtime.source,
            routes=routes,
            max_attempts=self.settings.max_handler_attempts,
            topics=topics,
            dead_letter_handler=raw,
            batch_handler=batch,
            batch_types=self.definition.batch_types,
            idle_polling=self._idle_polling(),
            metrics=self.metrics,
        )

    async def _serve(self, tasks: dict[str, asyncio.Task[Any]]) -> None:
        """Serve HTTP until a stop request or a crashed task, then shut down in order."""
        server = make_server(self.app, self.settings.http_host, self.definition.http_port)
        tasks["http"] = asyncio.create_task(server.serve(), name="http")
        log.info(
            "service started",
            extra={"http": f"http://{self.settings.http_host}:{self.definition.http_port}"},
        )
        await self._wait_for_stop_or_crash(tasks)
        log.info("service stopping")
        server.should_exit = True
        await self._shutdown(tasks)

    async def _run_stop_hooks(self, runtime: Runtime) -> None:
        for hook in self.definition.on_stop:
            with contextlib.suppress(Exception):
                await hook(runtime)

    def _fetch_max_wait_ms(self) -> int:
        """The service's own fetch wait if it has one (0 included), else the shared one."""
        own = self.definition.fetch_max_wait_ms
        return self.settings.fetch_wait_ms() if own is None else own

    def _idle_polling(self) -> IdlePolling | None:
        idle_wait_ms = self.settings.idle_fetch_wait_ms()
        if idle_wait_ms is None:
            return None
        return IdlePolling(idle_wait_ms, self.settings.idle_after_s)

    async def _consume(self) -> None:
        assert self.consumer is not None
        await self.consumer.serve()

    async def _wait_for_stop_or_crash(self, tasks: dict[str, asyncio.Task[Any]]) -> None:
        stop = asyncio.create_task(self._stop.wait())
        done, _ = await asyncio.wait([stop, *tasks.values()], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        for name, task in tasks.items():
            if task in done and not task.cancelled() and task.exception() is not None:
                log.error("task crashed", extra={"task": name}, exc_info=task.exception())
                raise RuntimeError(f"{name} task crashed") from task.exception()

    async def _shutdown(self, tasks: dict[str, asyncio.Task[Any]]) -> None:
        timeout = self.settings.shutdown_timeout_s
        if self.consumer is not None:
            self.consumer.stop()
        if self.relay is not None:
            await self.relay.stop()
        pending = [t for t in tasks.values() if not t.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=timeout)
            for task in late:
                log.warning("task did not stop in time", extra={"task": task.get_name()})

    async def _readiness(self) -> dict[str, Any]:
        checks: dict[str, Any] = {}
        runtime = self.runtime
        if runtime is None:
            return {"ready": False, "checks": {"started": False}}
        try:
            async with asyncio.timeout(2):
                await runtime.pool.fetchval("SELECT 1")
            checks["database"] = "ok"
        except Exception as error:
            checks["database"] = f"error: {type(error).__name__}"
        checks["relay"] = "leader" if self.relay and self.relay.leader else "standby"
        if self.consumer is not None:
            checks["consumer"] = (
                "stopped"
                if not self.consumer.running
                else "joined"
                if self.consumer.joined
                else "joining"
            )
            checks["consumer_stats"] = describe(self.consumer.stats)
        # Ready once the group has assigned partitions: before that, events wait seconds.
        ready = checks["database"] == "ok" and (
            self.consumer is None or (self.consumer.running and self.consumer.joined)
        )
        return {"ready": ready, "checks": checks}


def build_oidc_verifier(settings: ServiceSettings) -> OidcVerifier | None:
    """The OIDC verifier the settings ask for, if any."""
    if not settings.oidc_issuer:
        return None
    if not settings.oidc_jwks_url:
        raise ValueError("ACCORD_OIDC_ISSUER needs ACCORD_OIDC_JWKS_URL too")
    return OidcVerifier(
        OidcConfig(
            issuer=settings.oidc_issuer,
            audience=settings.oidc_audience,
            jwks_url=settings.oidc_jwks_url,
            roles_claim=settings.oidc_roles_claim,
        )
    )


def run_service(definition: ServiceDefinition, settings: ServiceSettings) -> None:
    """Blocking entry point for a service's main()."""
    from accord.runtime.logs import configure_logging
    from accord.runtime.tracing import setup_tracing

    configure_logging(definition.name, level=settings.log_level, fmt=settings.log_format)
    provider = setup_tracing(definition.name)
    try:
        asyncio.run(Service(definition, settings).run())
    finally:
        provider.shutdown()


async def _cancel(tasks: dict[str, asyncio.Task[Any]]) -> None:
    """Cancel the tasks still running and wait until every one has finished."""
    for task in tasks.values():
        task.cancel()
    await asyncio.gather(*tasks.values(), return_exceptions=True)
