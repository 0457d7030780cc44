"""Wires the auditor: every topic except its own, and every DLQ."""

from __future__ import annotations

import logging
from functools import partial

from fastapi import FastAPI

from accord.auditor import (
    aggregates,
    api,
    chain_watch,
    checkpointing,
    dashboard,
    handlers,
    reports_api,
)
from accord.auditor.adapters import log_store
from accord.auditor.adapters.log_store import PostgresAuditLog
from accord.auditor.chain_metrics import ChainMetrics
from accord.auditor.metrics import AuditorMetrics
from accord.auditor.ports import RecordingPorts
from accord.auditor.settings import AuditorSettings
from accord.events import REGISTRY, topics
from accord.runtime.metrics import serve as serve_metrics
from accord.runtime.routes import BatchHandler, HandlerContext
from accord.runtime.service import Runtime, ServiceDefinition

log = logging.getLogger(__name__)


def recorded_types() -> list[str]:
    """The event types recorded (their topics and DLQs are consumed). audit.recorded is the
    auditor's own output: recording it would loop forever. audit.metrics is derived from
    the log itself (stream aggregates): recording it would only echo the log."""
    own = {topics.AUDIT_RECORDED, topics.AUDIT_METRICS}
    return [spec.type for spec in REGISTRY if spec.type not in own]


def configure_app(app: FastAPI, runtime: Runtime, metrics: AuditorMetrics) -> None:
    """The query API and reports, then the dashboard and its live stream, and the metrics."""
    api.configure(app, runtime)
    reports_api.configure(app, runtime)
    dashboard.configure(app, runtime)
    # One page: the runtime's metrics and the audit stream's (accord.runtime.metrics).
    runtime.metrics.include(metrics.registry)
    serve_metrics(app, runtime.metrics)


def definition(settings: AuditorSettings) -> ServiceDefinition:
    """The auditor as the runtime runs it."""
    redact = frozenset(settings.redactions())

    as_writer = False  # whether the writer role may be used: known once the service starts
    metrics = AuditorMetrics()
    chain_metrics = ChainMetrics(metrics.registry)  # served with the audit stream's

    async def check_writer_role(runtime: Runtime) -> None:
        nonlocal as_writer
        as_writer = await log_store.writer_role_usable(runtime.pool)
        if not as_writer:
            log.warning(
                "audit records are written as the login role: grant it %s for append-only writes",
                log_store.WRITER_ROLE,
            )

    def batches(runtime: Runtime) -> BatchHandler:
        # Called after the on_start hooks: check_writer_role has answered.
        writer = as_writer

        def ports(ctx: HandlerContext) -> RecordingPorts:
            return RecordingPorts(
                PostgresAuditLog(ctx.conn, writer),
                ctx.source,
                redact,
                chained=chain_metrics.records_chained,
            )

        return handlers.batch_route(ports)

    async def checkpoints(runtime: Runtime) -> None:
        if settings.signing_key_file is None:
            log.info("no ACCORD_AUDIT_SIGNING_KEY_FILE: no signed checkpoints")
            await runtime.stopping.wait()  # a background task that returns stops the service
            return
        await checkpointing.every(
            runtime.pool,
            settings.signing_key_file,
            settings.checkpoint_dir,
            settings.checkpoint_every_s,
            runtime.stopping,
            as_writer=as_writer,
        )

    return ServiceDefinition(
        name="auditor",
        http_port=settings.http_port,
        migrations=["accord.auditor.migrations"],
        routes=lambda runtime: {},
        configure_app=partial(configure_app, metrics=metrics),
        batch_handler=batches,
        batch_types=recorded_types(),
        fetch_max_wait_ms=settings.audit_fetch_wait_ms(),
        fetch_min_bytes=settings.audit_fetch_min_bytes,
        on_start=[check_writer_role],
        background=[
            checkpoints,
            chain_watch.hook(settings.verify_interval_s, chain_metrics, settings.signing_key_file),
        ]
        + ([aggregates.hook(settings, metrics)] if settings.audit_aggregates else []),
    )
