"""Wires the provisioner's connectors and handlers into a service definition."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from fastapi import Depends, FastAPI

from accord.events import topics
from accord.provisioner import handlers
from accord.provisioner.adapters.ldap import LdapConnector, LdapSettings
from accord.provisioner.adapters.scim import ScimConnector
from accord.provisioner.adapters.sql import SqlConnector
from accord.provisioner.adapters.webhook import WebhookConnector, WebhookSettings
from accord.provisioner.domain.breaker import CircuitBreaker
from accord.provisioner.guard import TargetGuard
from accord.provisioner.ports import Connector
from accord.provisioner.settings import ProvisionerSettings
from accord.provisioner.targets import (
    LdapTarget,
    SqlTarget,
    Target,
    WebhookTarget,
    load_targets,
)
from accord.provisioner.url_guard import check_url
from accord.runtime.consumer import Effect, Route
from accord.runtime.security.api import require
from accord.runtime.security.roles import Permission
from accord.runtime.service import Runtime, ServiceDefinition


def connector_for(target: Target) -> Connector:
    """The connector of a declared target."""
    if isinstance(target, LdapTarget):
        settings = LdapSettings(
            url=target.url,
            bind_dn=target.bind_dn,
            password=target.password(),
            people_dn=target.people_dn,
            link_attribute=target.link_attribute,
            disable_attribute=target.disable_attribute,
            disabled_value=target.disabled_value,
            timeout_s=target.timeout_s,
        )
        return LdapConnector(target.name, settings)
    if isinstance(target, SqlTarget):
        return SqlConnector(target.name, target.settings(target.dsn()))
    if isinstance(target, WebhookTarget):
        hook = WebhookSettings(url=target.url, secret=target.secret(), timeout_s=target.timeout_s)
        return WebhookConnector(target.name, hook)
    return ScimConnector(target.name, target.url, target.token(), timeout_s=target.timeout_s)


def definition(settings: ProvisionerSettings) -> ServiceDefinition:
    """The provisioner as the runtime runs it."""
    targets = load_targets(settings.targets_file).targets
    for target in targets:
        # Before anything connects: no target may reach a metadata service unless allowed.
        if not isinstance(target, SqlTarget):
            check_url(target.url, allow_link_local=target.allow_link_local)
    connectors: dict[str, Connector] = {}
    guards = {
        t.name: TargetGuard(
            t.name,
            concurrency=t.max_concurrency,
            rate_per_s=t.rate_per_s,
            breaker=CircuitBreaker(t.breaker_threshold, t.breaker_cooldown_s),
        )
        for t in targets
    }
    attempts = {t.name: t.max_attempts for t in targets}

    async def open_connectors(runtime: Runtime) -> None:
        for target in targets:
            connectors[target.name] = connector_for(target)

    async def close_connectors(runtime: Runtime) -> None:
        for connector in connectors.values():
            await connector.close()

    def routes(runtime: Runtime) -> Mapping[str, Route]:
        return {
            # Connector calls (and their retries) hold no database connection.
            topics.PROVISION_REQUESTED: Effect(
                partial(
                    handlers.handle_provision_requested,
                    connectors=connectors,
                    guards=guards,
                    max_attempts=max(attempts.values(), default=5),
                )
            )
        }

    def configure_app(app: FastAPI, runtime: Runtime) -> None:
        @app.get(
            "/v1/targets",
            summary="The configured target systems (no secrets)",
            dependencies=[Depends(require(Permission.TARGETS_READ))],
        )
        async def list_targets() -> list[dict[str, str]]:
            return [{"name": t.name, "kind": t.kind, "url": t.url} for t in targets]

    return ServiceDefinition(
        name="provisioner",
        http_port=settings.http_port,
        migrations=[],
        routes=routes,
        configure_app=configure_app,
        on_start=[open_connectors],
        on_stop=[close_connectors],
    )
