"""Authz's consumer routes as the service runs them (bootstrap.route_table), with the
shipped policies: tests hand an event to `consume` as the consumer loop would (shipped in
the package, like the other services' testing modules: test folders are not importable
packages across the workspace)."""

from __future__ import annotations

from datetime import timedelta

from accord.authz.bootstrap import route_table
from accord.authz.catalogue import load_catalogue
from accord.authz.domain.approvals import ApprovalSettings
from accord.authz.domain.policy_files import default_policy_dir, load_policy_dir
from accord.events import Envelope
from accord.runtime.routes import HandlerContext

POLICIES = load_policy_dir(default_policy_dir())
CATALOGUE = load_catalogue(default_policy_dir() / "catalogue.yaml")
SETTINGS = ApprovalSettings(timeout=timedelta(hours=1), on_timeout="escalate")
ROUTES = route_table(lambda: (POLICIES, CATALOGUE), SETTINGS)


async def consume(event: Envelope, ctx: HandlerContext) -> list[Envelope]:
    """Handle one event through its route."""
    return list(await ROUTES[event.type](event, ctx))
