"""The access flow on one PostgreSQL connection, for callers that hold a transaction (the
HTTP API, the approvals CLI): each function binds the stores to the connection and runs
accord.authz.handlers.access, where the flow lives.

Every function works inside the caller's transaction and returns the events to emit
through the outbox, so a state change and its events commit together or not at all.
"""

from __future__ import annotations

import asyncpg

from accord.authz.adapters.postgres import postgres_stores
from accord.authz.catalogue import Catalogue
from accord.authz.domain import approvals as chain_rules
from accord.authz.domain.approvals import (
    ApprovalSettings,
    NotInvolved,
    NotWaiting,
    RequestNotFound,
)
from accord.authz.domain.policy_set import LoadedPolicies
from accord.authz.handlers import access as flow
from accord.events import AccessRequested, Envelope
from accord.runtime.errors import PermanentError

__all__ = [
    "ApprovalSettings",
    "NotInvolved",
    "NotWaiting",
    "RequestNotFound",
    "decide_request",
    "decide_stage",
    "resolve_stages",
    "revoke",
    "revoke_all",
]


async def decide_request(
    conn: asyncpg.Connection,
    event: Envelope,
    *,
    policies: LoadedPolicies,
    catalogue: Catalogue,
    settings: ApprovalSettings,
    source: str,
) -> list[Envelope]:
    """Policy decision on a new request (an access.requested event)."""
    request = event.data
    if not isinstance(request, AccessRequested):
        raise PermanentError(f"{event.type} carries no access request")
    return await flow.decide_request(
        postgres_stores(conn),
        event,
        request,
        policies=policies,
        catalogue=catalogue,
        settings=settings,
        source=source,
    )


async def resolve_stages(
    conn: asyncpg.Connection,
    chain: tuple[str, ...],
    *,
    requester_id: str,
    principal_id: str,
    application: str,
    catalogue: Catalogue,
) -> list[chain_rules.Stage]:
    """Who approves each stage of a chain, and who it escalates to."""
    return await flow.resolve_stages(
        postgres_stores(conn),
        chain,
        requester_id=requester_id,
        principal_id=principal_id,
        application=application,
        catalogue=catalogue,
    )


async def decide_stage(
    conn: asyncpg.Connection,
    request_id: str,
    *,
    approver_id: str,
    approve: bool,
    comment: str | None,
    catalogue: Catalogue,
    settings: ApprovalSettings,
    source: str,
) -> list[Envelope]:
    """An approver's answer to the request's current stage (see flow.decide_stage)."""
    return await flow.decide_stage(
        postgres_stores(conn),
        request_id,
        approver_id=approver_id,
        approve=approve,
        comment=comment,
        catalogue=catalogue,
        settings=settings,
        source=source,
    )


async def revoke(
    conn: asyncpg.Connection, grant_id: str, reason: str, *, source: str
) -> list[Envelope]:
    """End a live grant (leaver, revoked by an operator); nothing if it is not live."""
    return await flow.revoke(postgres_stores(conn), grant_id, reason, source=source)


async def revoke_all(
    conn: asyncpg.Connection, principal_id: str, reason: str, *, source: str
) -> list[Envelope]:
    """End every live grant of an identity (a leaver)."""
    return await flow.revoke_all(postgres_stores(conn), principal_id, reason, source=source)
