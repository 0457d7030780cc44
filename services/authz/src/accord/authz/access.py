"""The access flow on one PostgreSQL connection, for callers that hold a transaction (the
HTTP API, the approvals CLI): each function binds the stores to the connection and runs
accord.authz.handlers.access, where the flow lives.

Every function works inside the caller's transaction and returns the events to emit
through the outbox, so a state change and its events commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Concatenate, ParamSpec, TypeVar

import asyncpg

from accord.authz.adapters.postgres import postgres_stores
from accord.authz.catalogue import Catalogue
from accord.authz.domain.approvals import (
    ApprovalSettings,
    NotInvolved,
    NotWaiting,
    RequestNotFound,
)
from accord.authz.domain.policy_set import LoadedPolicies
from accord.authz.handlers import access as flow
from accord.authz.handlers import workflow_approvals as workflow_flow
from accord.authz.ports import Stores
from accord.events import AccessRequested, Envelope
from accord.runtime.errors import PermanentError

__all__ = [
    "ApprovalSettings",
    "NotInvolved",
    "NotWaiting",
    "RequestNotFound",
    "decide_request",
    "decide_stage",
    "decide_workflow_approval",
    "resolve_stages",
    "revoke",
    "revoke_all",
]

P = ParamSpec("P")
R = TypeVar("R")


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


def _on_connection(
    run: Callable[Concatenate[Stores, P], Awaitable[R]],
) -> Callable[Concatenate[asyncpg.Connection, P], Awaitable[R]]:
    """The flow function `run` on the stores of one connection."""

    async def bound(conn: asyncpg.Connection, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await run(postgres_stores(conn), *args, **kwargs)

    bound.__name__ = bound.__qualname__ = run.__name__
    bound.__doc__ = run.__doc__
    return bound


#: Who approves each stage of a chain, and who it escalates to.
resolve_stages = _on_connection(flow.resolve_stages)
#: An approver's answer to the request's current stage.
decide_stage = _on_connection(flow.decide_stage)
#: End a live grant (leaver, revoked by an operator); nothing if it is not live.
revoke = _on_connection(flow.revoke)
#: End every live grant of an identity (a leaver).
revoke_all = _on_connection(flow.revoke_all)
#: An approver's (or an admin's) decision on a workflow's approval.
decide_workflow_approval = _on_connection(workflow_flow.decide_workflow_approval)
