"""Wires authz's policies, catalogue, handlers, API and timers into a service definition."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from fastapi import FastAPI

from accord.authz import access_api, api, authn_api, decision_api, handlers, metrics, timers
from accord.authz.adapters.postgres import postgres_stores
from accord.authz.catalogue import Catalogue
from accord.authz.domain.approvals import ApprovalSettings
from accord.authz.domain.policy_set import LoadedPolicies
from accord.authz.policy_holder import PolicyHolder
from accord.authz.ports import AuthzPorts, Rules
from accord.authz.settings import AuthzSettings
from accord.runtime.consumer import Handler
from accord.runtime.routes import HandlerContext
from accord.runtime.service import Runtime, ServiceDefinition


def approval_settings(settings: AuthzSettings) -> ApprovalSettings:
    """How approval stages wait and time out."""
    timeout = settings.approval_timeout_s
    return ApprovalSettings(
        timeout=timedelta(seconds=timeout) if timeout else None,
        on_timeout=settings.approval_on_timeout,
    )


def route_table(rules: Rules, approvals: ApprovalSettings) -> dict[str, Handler]:
    """Authz's typed handlers by event type, their ports bound to the handler's transaction."""

    def ports(ctx: HandlerContext) -> AuthzPorts:
        return AuthzPorts(
            stores=postgres_stores(ctx.conn), source=ctx.source, rules=rules, settings=approvals
        )

    return dict(handlers.routes(ports))


def definition(settings: AuthzSettings) -> ServiceDefinition:
    """Authz as the runtime runs it; a bad policy folder stops it before it starts, a bad
    edit later is refused and the last good policies stay in force."""
    holder = PolicyHolder(settings.policy_dir)
    approvals = approval_settings(settings)

    def rules() -> tuple[LoadedPolicies, Catalogue]:
        current = holder.current
        return current.policies, current.catalogue

    def routes(runtime: Runtime) -> Mapping[str, Handler]:
        return route_table(rules, approvals)

    def configure_app(app: FastAPI, runtime: Runtime) -> None:
        api.configure(app, runtime, holder, approvals)
        access_api.configure(app, runtime, rules, approvals)
        decision_api.configure(app, runtime, rules, log_rate=settings.decision_log_rate)
        authn_api.configure(app, runtime, rules, log_rate=settings.decision_log_rate)
        # One page: the runtime's metrics and authz's decisions (accord.authz.metrics).
        runtime.metrics.include(metrics.registry())

    async def fire_timers(runtime: Runtime) -> None:
        await timers.run(runtime, approvals, settings.timer_poll_s)

    return ServiceDefinition(
        name="authz",
        http_port=settings.http_port,
        migrations=["accord.authz.migrations"],
        routes=routes,
        configure_app=configure_app,
        background=[fire_timers, holder.watcher(settings.policy_reload_s)],
    )
