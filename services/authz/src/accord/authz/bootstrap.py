"""Wires authz's policies, catalogue, handlers, API and timers into a service definition."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from functools import partial

from fastapi import FastAPI

from accord.authz import access, access_api, api, authn_api, decision_api, handlers, timers
from accord.authz.catalogue import Catalogue
from accord.authz.domain.policy_set import LoadedPolicies
from accord.authz.policy_holder import PolicyHolder
from accord.authz.settings import AuthzSettings
from accord.events import topics
from accord.runtime.consumer import Handler
from accord.runtime.service import Runtime, ServiceDefinition

USER_TOPICS = topics.USER_TOPICS
GROUP_TOPICS = topics.GROUP_TOPICS
LOCKOUT_TOPICS = (topics.IDENTITY_LOCKED, topics.IDENTITY_UNLOCKED)
FACTOR_TOPICS = (topics.MFA_ENROLLED, topics.MFA_REMOVED)


def approval_settings(settings: AuthzSettings) -> access.ApprovalSettings:
    """How approval stages wait and time out."""
    timeout = settings.approval_timeout_s
    return access.ApprovalSettings(
        timeout=timedelta(seconds=timeout) if timeout else None,
        on_timeout=settings.approval_on_timeout,
    )


def definition(settings: AuthzSettings) -> ServiceDefinition:
    """Authz as the runtime runs it; a bad policy folder stops it before it starts, a bad
    edit later is refused and the last good policies stay in force."""
    holder = PolicyHolder(settings.policy_dir)
    approvals = approval_settings(settings)

    def rules() -> tuple[LoadedPolicies, Catalogue]:
        current = holder.current
        return current.policies, current.catalogue

    def routes(runtime: Runtime) -> Mapping[str, Handler]:
        on_identity = partial(handlers.handle_identity_event, rules=rules, settings=approvals)
        table: dict[str, Handler] = dict.fromkeys(USER_TOPICS, on_identity)
        table.update({t: handlers.handle_group_event for t in GROUP_TOPICS})
        table.update({t: handlers.handle_lockout_event for t in LOCKOUT_TOPICS})
        table.update({t: handlers.handle_factor_event for t in FACTOR_TOPICS})
        table[topics.ACCESS_REQUESTED] = partial(
            handlers.handle_access_requested, rules=rules, settings=approvals
        )
        return table

    def configure_app(app: FastAPI, runtime: Runtime) -> None:
        api.configure(app, runtime, holder, approvals)
        access_api.configure(app, runtime, rules, approvals)
        decision_api.configure(app, runtime, rules, log_rate=settings.decision_log_rate)
        authn_api.configure(app, runtime, rules, log_rate=settings.decision_log_rate)

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
