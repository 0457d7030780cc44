"""Wires the orchestrator's handlers, API and tables into a service definition."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from accord.events import topics
from accord.orchestrator import api, handlers
from accord.orchestrator.settings import OrchestratorSettings
from accord.runtime.consumer import Handler
from accord.runtime.service import Runtime, ServiceDefinition


def definition(settings: OrchestratorSettings) -> ServiceDefinition:
    """The orchestrator as the runtime runs it."""

    def routes(runtime: Runtime) -> Mapping[str, Handler]:
        return {
            topics.USER_CREATED: partial(handlers.handle_user_created, targets=settings.targets()),
            topics.USER_UPDATED: handlers.handle_user_updated,
            topics.USER_DEACTIVATED: handlers.handle_user_status,
            topics.USER_REACTIVATED: handlers.handle_user_status,
            topics.USER_DELETED: handlers.handle_user_status,
            topics.ACCOUNT_PROVISIONED: handlers.handle_account_result,
            topics.ACCOUNT_PROVISION_FAILED: handlers.handle_account_result,
        }

    return ServiceDefinition(
        name="orchestrator",
        http_port=settings.http_port,
        migrations=["accord.orchestrator.migrations"],
        routes=routes,
        configure_app=api.configure,
    )
