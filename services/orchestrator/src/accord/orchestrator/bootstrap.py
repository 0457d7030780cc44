"""Wires the orchestrator's handlers, API and tables into a service definition."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from fastapi import FastAPI

from accord.events import topics
from accord.orchestrator import api, timers
from accord.orchestrator.domain.account_saga import Backoff
from accord.orchestrator.domain.birthright import Birthright, everyone
from accord.orchestrator.handlers import Workflows, WorkflowSettings
from accord.orchestrator.scim import app as scim_app
from accord.orchestrator.settings import OrchestratorSettings
from accord.runtime.config_file import load_yaml_model
from accord.runtime.consumer import Handler
from accord.runtime.service import Runtime, ServiceDefinition


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


def workflows(settings: OrchestratorSettings) -> Workflows:
    """The workflows as configured; bad birthright rules stop the service at start."""
    return Workflows(
        WorkflowSettings(
            birthright=load_birthright(settings),
            joiner_on_failure=settings.joiner_on_failure,
            leaver_retention=timedelta(seconds=settings.leaver_retention_s),
            backoff=Backoff(settings.saga_retry_base_s, settings.saga_retry_cap_s),
            transient_rounds=settings.saga_transient_rounds,
            step_timeout=timedelta(seconds=settings.saga_step_timeout_s),
            mfa_enrolment=settings.mfa_enrolment_factors(),
        )
    )


def definition(settings: OrchestratorSettings) -> ServiceDefinition:
    """The orchestrator as the runtime runs it."""
    flows = workflows(settings)

    def routes(runtime: Runtime) -> Mapping[str, Handler]:
        return {
            topics.USER_CREATED: flows.user_created,
            topics.USER_UPDATED: flows.user_updated,
            topics.USER_DEACTIVATED: flows.user_status,
            topics.USER_REACTIVATED: flows.user_status,
            topics.USER_DELETED: flows.user_status,
            topics.ACCOUNT_PROVISIONED: flows.account_result,
            topics.ACCOUNT_PROVISION_FAILED: flows.account_result,
            topics.ACCESS_GRANTED: flows.access_changed,
            topics.ACCESS_REVOKED: flows.access_changed,
            topics.IDENTITY_LOCKED: flows.identity_locked,
            topics.IDENTITY_UNLOCKED: flows.identity_unlocked,
        }

    def configure_app(app: FastAPI, runtime: Runtime) -> None:
        api.configure(app, runtime, flows)
        scim_app.mount(app, runtime, flows)

    async def fire_timers(runtime: Runtime) -> None:
        await timers.run(runtime, flows, settings.timer_poll_s)

    return ServiceDefinition(
        name="orchestrator",
        http_port=settings.http_port,
        migrations=["accord.orchestrator.migrations"],
        routes=routes,
        configure_app=configure_app,
        background=[fire_timers],
    )
