"""Wires authz's policies, catalogue and handlers into a service definition."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from fastapi import Depends, FastAPI, HTTPException

from accord.authz import handlers
from accord.authz.adapters import store
from accord.authz.catalogue import Catalogue, load_catalogue
from accord.authz.domain.policy_files import load_policy_dir
from accord.authz.settings import AuthzSettings
from accord.events import topics
from accord.runtime.consumer import Handler
from accord.runtime.params import Id
from accord.runtime.security.api import authenticated, may_see, require
from accord.runtime.security.roles import Caller, Permission
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
        caller_dependency = authenticated()

        @app.get(
            "/v1/policies",
            summary="The policies in force, by @id",
            dependencies=[Depends(require(Permission.POLICIES_READ))],
        )
        async def list_policies() -> dict[str, list[str]]:
            return {"policies": sorted(policies.policy_ids)}

        @app.get(
            "/v1/principals/{user_id}",
            summary="The attributes policies see for a user",
        )
        async def get_principal(
            user_id: Id, caller: Caller = Depends(caller_dependency)
        ) -> dict[str, Any]:
            attrs: dict[str, Any] = {}
            if may_see(caller, Permission.PRINCIPALS_READ, user_id):
                async with runtime.pool.acquire() as conn:
                    attrs = await store.principal_attrs(conn, user_id)
            if not attrs:
                raise HTTPException(404, f"principal {user_id} not known")
            return {"user_id": user_id, "attributes": attrs}

    return ServiceDefinition(
        name="authz",
        http_port=settings.http_port,
        migrations=["accord.authz.migrations"],
        routes=routes,
        configure_app=configure_app,
    )
