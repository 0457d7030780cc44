"""Authz handlers: project principals and decide access requests with Cedar."""

from __future__ import annotations

import logging

from accord.authz.adapters import requests, store
from accord.authz.catalogue import Catalogue, entitlement_id
from accord.authz.domain.model import AccessQuery, Entity, EntityRef
from accord.authz.domain.policy_set import LoadedPolicies, decide
from accord.events import (
    AccessDecided,
    AccessRequested,
    Envelope,
    UserCreated,
    UserDeactivated,
    UserDeleted,
    UserReactivated,
    UserUpdated,
    new_event,
)
from accord.runtime.consumer import HandlerContext

log = logging.getLogger(__name__)


async def handle_user_event(event: Envelope, ctx: HandlerContext) -> list[Envelope]:
    """Keep the principal projection in step with the identity events."""
    data = event.data
    sequence = event.sequence or 0
    if isinstance(data, UserCreated | UserUpdated):
        await store.upsert_principal(
            ctx.conn,
            data.user_id,
            sequence=sequence,
            active=data.active,
            department=data.department,
        )
    elif isinstance(data, UserDeactivated | UserReactivated):
        await store.upsert_principal(
            ctx.conn,
            data.user_id,
            sequence=sequence,
            active=isinstance(data, UserReactivated),
            keep_department=True,
        )
    elif isinstance(data, UserDeleted):
        await store.upsert_principal(
            ctx.conn,
            data.user_id,
            sequence=sequence,
            active=False,
            deleted=True,
            keep_department=True,
        )
    return []


async def handle_access_requested(
    event: Envelope, ctx: HandlerContext, *, policies: LoadedPolicies, catalogue: Catalogue
) -> list[Envelope]:
    """Decide an access request by policy: permit, or deny with the deciding policies."""
    request = event.data
    assert isinstance(request, AccessRequested)
    resource = request.resource
    principal = EntityRef("User", request.principal_id)
    entities = [
        Entity(principal, await store.principal_attrs(ctx.conn, request.principal_id)),
        *catalogue.resource_entities(resource.application, resource.entitlement),
    ]
    context = {"justification": request.justification} if request.justification else {}
    query = AccessQuery(
        principal=principal,
        action="request",
        resource=EntityRef(
            "Entitlement", entitlement_id(resource.application, resource.entitlement)
        ),
        context=context,
    )
    await requests.insert(ctx.conn, request)
    decision = decide(policies, query, entities)
    if decision.errors:
        log.warning("policy evaluation errors", extra={"errors": list(decision.errors)})
    # The request's row is the record of its decision, and moving it out of pending once
    # is what keeps a redelivered request from being answered twice.
    if not await requests.decide(
        ctx.conn, request.request_id, decision.effect, list(decision.reasons)
    ):
        return []
    decided = AccessDecided(
        request_id=request.request_id,
        principal_id=request.principal_id,
        resource=resource,
        decision=decision.effect,
        reasons=decision.reasons,
    )
    return [new_event(decided, source=ctx.source, causation=event)]
