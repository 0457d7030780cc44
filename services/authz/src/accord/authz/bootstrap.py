"""Wires authz's policies, catalogue and handlers into a service definition."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from fastapi import FastAPI

from accord.authz import api, handlers
from accord.authz.catalogue import Catalogue, load_catalogue
from accord.authz.domain.policy_files import load_policy_dir
from accord.authz.settings import AuthzSettings
from accord.events import topics
from accord.runtime.consumer import Handler
from accord.runtime.service import Runtime, ServiceDefinition


def definition(settings: AuthzSettings) -> ServiceDefinition:
    """Authz as the runtime runs it; a bad policy folder stops it before it starts."""
    policies = load_policy_dir(settings.policy_dir)
    catalogue_file = settings.policy_dir / "catalogue.yaml"
    catalogue = load_catalogue(catalogue_file) if catalogue_file.exists() else Catalogue()

    def routes(runtime: Runtime) -> Mapping[str, Handler]:
        user_topics = (
            topics.USER_CREATED,
            topics.USER_UPDATED,
            topics.USER_DEACTIVATED,
            topics.USER_REACTIVATED,
            topics.USER_DELETED,
        )
        table: dict[str, Handler] = {t: handlers.handle_user_event for t in user_topics}
        table[topics.ACCESS_REQUESTED] = partial(
            handlers.handle_access_requested, policies=policies, catalogue=catalogue
        )
        return table

    def configure_app(app: FastAPI, runtime: Runtime) -> None:
        api.configure(app, runtime, policies)

    return ServiceDefinition(
        name="authz",
        http_port=settings.http_port,
        migrations=["accord.authz.migrations"],
        routes=routes,
        configure_app=configure_app,
    )
