"""Wires the orchestrator's handlers, API and tables into a service definition.

With ACCORD_WORKFLOWS_DIR set, the workflow engine runs the folder's workflows: the identity,
provisioning-result and access-decision routes and the SCIM writes also drive it (in the
event's transaction), the orchestrator reads its own saga ends back (a workflow task saga's
end answers its task), its loops (wake-ups, time triggers, I/O effects, cron
schedules, timers planned again when the set changes, the folder watch) run in the
background and the runs API is mounted. Unset, only the shipped workflow files say which
account sagas start (authz's access decisions are taken and dropped: no task waits for one).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import asyncpg
from fastapi import FastAPI

from accord.events import (
    AccessApprovalDecided,
    AccessDecided,
    AccessGranted,
    AccessRevoked,
    AccountProvisioned,
    AccountProvisionFailed,
    ApprovalDecided,
    Envelope,
    IdentityLocked,
    IdentityUnlocked,
    SagaCompleted,
    SagaFailed,
    UserCreated,
    UserDeactivated,
    UserDeleted,
    UserReactivated,
    UserUpdated,
)
from accord.orchestrator import api, handlers, timers
from accord.orchestrator.adapters import store
from accord.orchestrator.adapters.access_passes import HttpAccessPasses
from accord.orchestrator.adapters.authz_grants import HttpAccessGrants
from accord.orchestrator.adapters.postgres import postgres_ports, saga_census
from accord.orchestrator.adapters.smtp import SmtpMailer, SmtpSettings
from accord.orchestrator.adapters.workflow_callbacks import PostgresCallbacks
from accord.orchestrator.adapters.workflow_effects import RegistryDirectory, engine_stores
from accord.orchestrator.domain.account_saga import Backoff
from accord.orchestrator.domain.birthright import Birthright, everyone
from accord.orchestrator.domain.workflow import WorkflowSettings
from accord.orchestrator.handlers.workflows import (
    SagaTasks,
    WorkflowPorts,
    access_decided_without_engine,
    approval_without_engine,
    on_access_changed_with_workflows,
    on_access_decided,
    on_account_result_with_workflows,
    on_approval_decided,
    on_task_saga_ended,
    with_workflows,
)
from accord.orchestrator.metrics import OrchestratorMetrics
from accord.orchestrator.ports import OrchestratorPorts
from accord.orchestrator.scim import app as scim_app
from accord.orchestrator.settings import OrchestratorSettings
from accord.orchestrator.workflows import callback_api, loops, runs_api
from accord.orchestrator.workflows.cli import target_names
from accord.orchestrator.workflows.effects import Effects, EffectSettings
from accord.orchestrator.workflows.engine import Engine
from accord.orchestrator.workflows.expressions import ExpressionError, compile_condition
from accord.orchestrator.workflows.extensions import ExtensionClient
from accord.orchestrator.workflows.holder import WorkflowHolder
from accord.orchestrator.workflows.loader import Checks
from accord.orchestrator.workflows.saga_selection import WorkflowSagaSelection
from accord.orchestrator.workflows.shipped import shipped
from accord.runtime.config_file import load_yaml_model
from accord.runtime.routes import HandlerContext, Typed, on, table
from accord.runtime.service import Runtime, ServiceDefinition

#: The source of the events the engine's loops and API emit (the routes' is the runtime's).
SOURCE = "accord/orchestrator"

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


def routes(flows: WorkflowSettings, engine: Engine | None = None) -> Routes:
    """Each event type the orchestrator consumes, with its handler on PostgreSQL ports;
    with an `engine`, the identity events and provisioning results drive it too."""

    def ports(ctx: HandlerContext) -> OrchestratorPorts:
        return postgres_ports(ctx.conn, ctx.source, flows)

    status = (UserDeactivated, UserReactivated, UserDeleted)
    results = (AccountProvisioned, AccountProvisionFailed)
    decisions = (AccessDecided, AccessApprovalDecided)
    identity_routes: list[Typed[Any, HandlerContext, Any, list[Envelope]]]
    if engine is None:
        identity_routes = [
            on(UserCreated, handlers.on_user_created, ports),
            on(UserUpdated, handlers.on_user_updated, ports),
            on(status, handlers.on_user_status, ports),
            on(results, handlers.on_account_result, ports),
            on(ApprovalDecided, approval_without_engine, ports),
            on((AccessGranted, AccessRevoked), handlers.on_access_changed, ports),
            on(decisions, access_decided_without_engine, ports),
        ]
    else:

        def workflow_ports(ctx: HandlerContext) -> WorkflowPorts:
            bound = ports(ctx)
            return WorkflowPorts(bound, engine_stores(ctx.conn, SagaTasks(bound)), engine)

        identity_routes = [
            on(UserCreated, with_workflows(handlers.on_user_created), workflow_ports),
            on(UserUpdated, with_workflows(handlers.on_user_updated), workflow_ports),
            on(status, with_workflows(handlers.on_user_status), workflow_ports),
            on(results, on_account_result_with_workflows, workflow_ports),
            on(ApprovalDecided, on_approval_decided, workflow_ports),
            on((AccessGranted, AccessRevoked), on_access_changed_with_workflows, workflow_ports),
            on(decisions, on_access_decided, workflow_ports),
            on((SagaCompleted, SagaFailed), on_task_saga_ended, workflow_ports),
        ]
    return table(
        [
            *identity_routes,
            on(IdentityLocked, handlers.on_identity_locked, ports),
            on(IdentityUnlocked, handlers.on_identity_unlocked, ports),
        ]
    )


def _expression_problem(text: str) -> str | None:
    try:
        compile_condition(text)
    except ExpressionError as error:
        return str(error)
    return None


@dataclass(frozen=True)
class _PooledCallbacks:
    """The effects' CallbackRegistry on the service's pool, found when a call registers
    (the engine is built before the service starts)."""

    pool: Callable[[], asyncpg.Pool]

    async def register(self, run_id: str, task_id: str, *, token: str, secret_env: str) -> None:
        await PostgresCallbacks(self.pool()).register(
            run_id, task_id, token=token, secret_env=secret_env
        )


@dataclass
class WorkflowEngine:
    """The workflow engine of one service: the holder of the folder, the engine on it, and
    the service's pool once it started (the effects' directory reads the registry on it)."""

    settings: OrchestratorSettings
    flows: WorkflowSettings
    holder: WorkflowHolder
    _engine: Engine | None = field(default=None, init=False)
    _pool: asyncpg.Pool | None = field(default=None, init=False)

    @classmethod
    def load(cls, settings: OrchestratorSettings, flows: WorkflowSettings) -> WorkflowEngine:
        """Load the folder (a bad set stops the service at start)."""
        assert settings.workflows_dir is not None
        targets = target_names(settings.targets_file) if settings.targets_file else None
        checks = Checks(expression=_expression_problem, targets=targets)
        return cls(settings, flows, WorkflowHolder(settings.workflows_dir, checks))

    def bind(self, runtime: Runtime) -> None:
        """Give the effects the service's pool (the directory reads the registry)."""
        self._pool = runtime.pool

    def ports_on(self, conn: asyncpg.Connection) -> OrchestratorPorts:
        """The handlers' ports on a connection of the engine's loops and API."""
        return postgres_ports(conn, SOURCE, self.flows)

    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the workflow engine is not bound to a running service yet")
        return self._pool

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = Engine(
                self.holder.current,
                self._effects(),
                source=SOURCE,
                clock=store.now_utc,
            )
        return self._engine

    def _effects(self) -> Effects:
        settings = self.settings
        access_passes = grants = None
        if settings.authn_url and settings.authn_token_file:
            access_passes = HttpAccessPasses(settings.authn_url, settings.authn_token_file)
        if settings.authz_url and settings.authz_token_file:
            grants = HttpAccessGrants(settings.authz_url, settings.authz_token_file)
        return Effects(
            source=SOURCE,
            mailer=SmtpMailer(SmtpSettings.model_validate(os.environ)),
            directory=RegistryDirectory(self.pool),
            extensions=ExtensionClient(),
            callbacks=_PooledCallbacks(self.pool),
            access_passes=access_passes,
            grants=grants,
            settings=EffectSettings(
                mfa_factors=self.flows.mfa_enrolment or ("totp",),
                callback_base_url=settings.workflow_callback_url,
            ),
        )

    def configure_app(self, app: FastAPI, runtime: Runtime) -> None:
        """The runs API, acting through the engine."""
        transactions = loops.postgres_transactions(runtime.pool, runtime.schema, self.ports_on)
        runs_api.configure(app, runtime, loops.Operations(self.engine, transactions), self.holder)
        callback_api.configure(
            app, PostgresCallbacks(runtime.pool), loops.CallbackDelivery(self.engine, transactions)
        )

    def hooks(self) -> list[Any]:
        """The engine's loops and the folder watch, as background hooks."""
        return [
            *loops.workflow_hooks(self.engine, self.settings.timer_poll_s, self.ports_on),
            self.holder.watcher(),
        ]


def serve_metrics(runtime: Runtime) -> OrchestratorMetrics:
    """The orchestrator's metrics on the runtime's page, the saga gauges read at scrape."""
    metrics = OrchestratorMetrics(lambda: saga_census(runtime.pool, timeout_s=CENSUS_TIMEOUT_S))
    metrics.serve(runtime.metrics)
    return metrics


def definition(settings: OrchestratorSettings) -> ServiceDefinition:
    """The orchestrator as the runtime runs it."""
    flows = workflows(settings)
    wired = WorkflowEngine.load(settings, flows) if settings.workflows_dir is not None else None
    # The account sagas start as the workflow files in force say: the folder's over the
    # shipped ones, or the shipped ones alone.
    in_force = wired.holder.current if wired is not None else shipped
    flows = replace(flows, selection=WorkflowSagaSelection(in_force, store.now_utc))
    if wired is not None:
        wired.flows = flows  # the task sagas' ports plan with the same settings
    consumed = routes(flows, wired.engine if wired is not None else None)

    async def bind_workflows(runtime: Runtime) -> None:
        if wired is not None:
            wired.bind(runtime)

    def configure_app(app: FastAPI, runtime: Runtime) -> None:
        api.configure(app, runtime, flows)
        scim_app.mount(app, runtime, flows, wired.engine if wired is not None else None)
        serve_metrics(runtime)
        if wired is not None:
            wired.configure_app(app, runtime)

    async def fire_timers(runtime: Runtime) -> None:
        await timers.run(runtime, flows, settings.timer_poll_s)

    return ServiceDefinition(
        name="orchestrator",
        http_port=settings.http_port,
        migrations=["accord.orchestrator.migrations"],
        routes=lambda runtime: consumed,
        configure_app=configure_app,
        on_start=[bind_workflows],
        background=[fire_timers, *(wired.hooks() if wired is not None else [])],
    )
