"""Wires the orchestrator's handlers, API and tables into a service definition."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from fastapi import FastAPI

from accord.events import (
    AccessGranted,
    AccessRevoked,
    AccountProvisioned,
    AccountProvisionFailed,
    Envelope,
    IdentityLocked,
    IdentityUnlocked,
    UserCreated,
    UserDeactivated,
    UserDeleted,
    UserReactivated,
    UserUpdated,
)
from accord.orchestrator import api, handlers, timers
from accord.orchestrator.adapters.postgres import postgres_ports, saga_census
from accord.orchestrator.domain.account_saga import Backoff
from accord.orchestrator.domain.birthright import Birthright, everyone
from accord.orchestrator.domain.workflow import WorkflowSettings
from accord.orchestrator.metrics import OrchestratorMetrics
from accord.orchestrator.ports import OrchestratorPorts
from accord.orchestrator.scim import app as scim_app
from accord.orchestrator.settings import OrchestratorSettings
from accord.runtime.config_file import load_yaml_model
from accord.runtime.routes import HandlerContext, Typed, on, table
from accord.runtime.service import Runtime, ServiceDefinition

#: How long a scrape waits for the saga census (a connection, then the query).
CENSUS_TIMEOUT_S = 2.0

#: The orchestrator's routes: each handler with the payload models it takes.
Routes = Mapping[str, Typed[Any, HandlerContext, OrchestratorPorts, list[Envelope]]]


class BirthrightFileError(ValueError):
    """The birthright file is missing, malformed or names unknown attributes."""


def load_birthright(settings: OrchestratorSettings) -> Birthright:
    """The rules file if there is one, else every joiner gets ACCORD_BIRTHRIGHT_TARGETS."""
    if settings.birthright_file is None:
        return everyone(settings.targets())
    rules = load_yaml_model(settings.birthright_file, Birthright, BirthrightFileError)
    unknown = rules.unknown_attributes()
    if unknown:
        raise BirthrightFileError(
            f"{settings.birthright_file}: unknown attributes in conditions: {', '.join(unknown)}"
        )
    return rules


def workflows(settings: OrchestratorSettings) -> WorkflowSettings:
    """The workflows as configured; bad birthright rules stop the service at start."""
    return WorkflowSettings(
        birthright=load_birthright(settings),
        joiner_on_failure=settings.joiner_on_failure,
        leaver_retention=timedelta(seconds=settings.leaver_retention_s),
        backoff=Backoff(settings.saga_retry_base_s, settings.saga_retry_cap_s),
        transient_rounds=settings.saga_transient_rounds,
        step_timeout=timedelta(seconds=settings.saga_step_timeout_s),
        mfa_enrolment=settings.mfa_enrolment_factors(),
    )


def routes(flows: WorkflowSettings) -> Routes:
    """Each event type the orchestrator consumes, with its handler on PostgreSQL ports."""

    def ports(ctx: HandlerContext) -> OrchestratorPorts:
        return postgres_ports(ctx.conn, ctx.source, flows)

    status = (UserDeactivated, UserReactivated, UserDeleted)
    return table(
        [
            on(UserCreated, handlers.on_user_created, ports),
            on(UserUpdated, handlers.on_user_updated, ports),
            on(status, handlers.on_user_status, ports),
            on((AccountProvisioned, AccountProvisionFailed), handlers.on_account_result, ports),
            on((AccessGranted, AccessRevoked), handlers.on_access_changed, ports),
            on(IdentityLocked, handlers.on_identity_locked, ports),
            on(IdentityUnlocked, handlers.on_identity_unlocked, ports),
        ]
    )


def serve_metrics(runtime: Runtime) -> OrchestratorMetrics:
    """The orchestrator's metrics on the runtime's page, the saga gauges read at scrape."""
    metrics = OrchestratorMetrics(lambda: saga_census(runtime.pool, timeout_s=CENSUS_TIMEOUT_S))
    metrics.serve(runtime.metrics)
    return metrics


def definition(settings: OrchestratorSettings) -> ServiceDefinition:
    """The orchestrator as the runtime runs it."""
    flows = workflows(settings)
    consumed = routes(flows)

    def configure_app(app: FastAPI, runtime: Runtime) -> None:
        api.configure(app, runtime, flows)
        scim_app.mount(app, runtime, flows)
        serve_metrics(runtime)

    async def fire_timers(runtime: Runtime) -> None:
        await timers.run(runtime, flows, settings.timer_poll_s)

    return ServiceDefinition(
        name="orchestrator",
        http_port=settings.http_port,
        migrations=["accord.orchestrator.migrations"],
        routes=lambda runtime: consumed,
        configure_app=configure_app,
        background=[fire_timers],
    )
