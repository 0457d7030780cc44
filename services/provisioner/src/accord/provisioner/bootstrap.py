"""Wires the provisioner's connectors and handlers into a service definition."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from accord.events import ProvisionRequested, topics
from accord.provisioner import api, schedule
from accord.provisioner.adapters.ldap import LdapConnector, LdapSettings
from accord.provisioner.adapters.ledger import PostgresLedger
from accord.provisioner.adapters.scim import ScimConnector
from accord.provisioner.adapters.sql import SqlConnector
from accord.provisioner.adapters.webhook import WebhookConnector, WebhookSettings
from accord.provisioner.circuit_probe import keep_probing
from accord.provisioner.domain.breaker import CircuitBreaker
from accord.provisioner.guard import TargetGuard
from accord.provisioner.handlers import (
    Provisioning,
    command_work,
    on_provision_requested,
    record_provision_requested,
)
from accord.provisioner.metrics import ProvisionerMetrics
from accord.provisioner.ports import Connector
from accord.provisioner.reconcile import Reconciler
from accord.provisioner.settings import ProvisionerSettings
from accord.provisioner.targets import (
    LdapTarget,
    SqlTarget,
    Target,
    WebhookTarget,
    load_targets,
)
from accord.provisioner.url_guard import check_url
from accord.runtime.routes import Effect, EffectContext, HandlerContext, Route, on
from accord.runtime.service import Hook, Runtime, ServiceDefinition


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
            groups_dn=target.groups_dn,
            empty_member_dn=target.empty_member_dn,
        )
        return LdapConnector(target.name, settings)
    if isinstance(target, SqlTarget):
        return SqlConnector(target.name, target.settings(target.dsn()))
    if isinstance(target, WebhookTarget):
        hook = WebhookSettings(url=target.url, secret=target.secret(), timeout_s=target.timeout_s)
        return WebhookConnector(target.name, hook)
    return ScimConnector(target.name, target.url, target.token(), timeout_s=target.timeout_s)


def guard_for(target: Target, metrics: ProvisionerMetrics | None = None) -> TargetGuard:
    """The limits a declared target asks for; its calls counted in `metrics`, if given."""
    return TargetGuard(
        target.name,
        attempts=target.max_attempts,
        concurrency=target.max_concurrency,
        rate_per_s=target.rate_per_s,
        breaker=CircuitBreaker(target.breaker_threshold, target.breaker_cooldown_s),
        observer=metrics,
    )


def checked_targets(settings: ProvisionerSettings) -> list[Target]:
    """The declared targets; none may reach a metadata service unless allowed."""
    targets = load_targets(settings.targets_file).targets
    for target in targets:
        if not isinstance(target, SqlTarget):
            check_url(target.url, allow_link_local=target.allow_link_local)
    return targets


def definition(settings: ProvisionerSettings) -> ServiceDefinition:
    """The provisioner as the runtime runs it."""
    targets = checked_targets(settings)
    connectors: dict[str, Connector] = {}
    metrics = ProvisionerMetrics(t.name for t in targets)
    guards = {t.name: guard_for(t, metrics) for t in targets}

    async def serve_metrics(runtime: Runtime) -> None:
        # One page: the runtime's metrics and the provisioner's (accord.runtime.metrics).
        runtime.metrics.include(metrics.registry)
        runtime.metrics.on_scrape("circuits", metrics.circuits(guards))

    async def open_connectors(runtime: Runtime) -> None:
        for target in targets:
            connectors[target.name] = connector_for(target)

    async def close_connectors(runtime: Runtime) -> None:
        for connector in connectors.values():
            await connector.close()

    def routes(runtime: Runtime) -> Mapping[str, Route]:
        def provisioning(ctx: EffectContext) -> Provisioning:
            ledger = PostgresLedger(runtime.pool)
            return Provisioning(
                source=ctx.source,
                connectors=connectors,
                ledger=ledger,
                guards=guards,
                metrics=metrics,
            )

        def ledger_in(ctx: HandlerContext) -> PostgresLedger:
            return PostgresLedger(ctx.conn)

        return {
            # Connector calls (and their retries) hold no database connection.
            topics.PROVISION_REQUESTED: Effect(
                on(ProvisionRequested, on_provision_requested, provisioning),
                record=on(ProvisionRequested, record_provision_requested, ledger_in),
                work_key=command_work,
            )
        }

    async def probe_circuits(runtime: Runtime) -> None:
        await keep_probing(guards, connectors, runtime.stopping)

    def scheduled(name: str, every_s: float) -> Hook:
        async def run(runtime: Runtime) -> None:
            def reconciler() -> Reconciler:
                connector, guard = connectors[name], guards[name]
                return Reconciler(runtime.pool, runtime.schema, runtime.source, connector, guard)

            await schedule.keep_reconciling(runtime, reconciler, every_s)

        return run

    return ServiceDefinition(
        name="provisioner",
        http_port=settings.http_port,
        migrations=["accord.provisioner.migrations"],
        routes=routes,
        configure_app=partial(api.configure, targets=targets, connectors=connectors),
        on_start=[serve_metrics, open_connectors],
        on_stop=[close_connectors],
        background=[
            probe_circuits,
            *(scheduled(t.name, t.reconcile_every_s) for t in targets if t.reconcile_every_s),
        ],
    )
