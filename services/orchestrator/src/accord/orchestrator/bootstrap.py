"""Wires the orchestrator's handlers, API and tables into a service definition."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from accord.events import topics
from accord.orchestrator import api, handlers
from accord.orchestrator.domain.birthright import Birthright, everyone
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


def definition(settings: OrchestratorSettings) -> ServiceDefinition:
    """The orchestrator as the runtime runs it; bad birthright rules stop it at start."""
    birthright = load_birthright(settings)

    def routes(runtime: Runtime) -> Mapping[str, Handler]:
        return {
            topics.USER_CREATED: partial(handlers.handle_user_created, birthright=birthright),
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
