"""Authz handlers: project identities, groups, lockouts and factors, and decide access
requests."""

from __future__ import annotations

import logging
from collections.abc import Callable

from accord.authz import access
from accord.authz.adapters import authn_projection, directory, store
from accord.authz.catalogue import Catalogue
from accord.authz.domain.policy_set import LoadedPolicies
from accord.events import (
    Envelope,
    GroupCreated,
    GroupDeleted,
    GroupMembersChanged,
    GroupUpdated,
    IdentityLocked,
    IdentityUnlocked,
    MfaEnrolled,
    MfaRemoved,
    UserCreated,
    UserDeactivated,
    UserDeleted,
    UserReactivated,
    UserUpdated,
)
from accord.runtime.consumer import HandlerContext

log = logging.getLogger(__name__)

#: The policies and catalogue in force now (they may be reloaded between two events).
Rules = Callable[[], tuple[LoadedPolicies, Catalogue]]


async def handle_user_event(event: Envelope, ctx: HandlerContext) -> list[Envelope]:
    """Keep the principal projection in step with the identity events; a deleted identity
    loses every grant it holds."""
    data = event.data
    sequence = event.sequence or 0
    if isinstance(data, UserCreated | UserUpdated):
        await store.upsert_principal(
            ctx.conn,
            data.user_id,
            sequence=sequence,
            active=data.active,
            department=data.department,
            manager_id=data.manager_id,
            user_name=data.user_name,
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
        return await access.revoke_all(ctx.conn, data.user_id, "leaver", source=ctx.source)
    return []


async def handle_identity_event(
    event: Envelope, ctx: HandlerContext, *, rules: Rules, settings: access.ApprovalSettings
) -> list[Envelope]:
    """Project an identity event; the access requests that waited for the principal (their
    access.requested was consumed before its user.created) are decided now."""
    await store.lock_principal(ctx.conn, event.subject)
    events = await handle_user_event(event, ctx)
    policies, catalogue = rules()
    return events + await access.decide_waiting(
        ctx.conn,
        event.subject,
        policies=policies,
        catalogue=catalogue,
        settings=settings,
        source=ctx.source,
    )


async def handle_group_event(event: Envelope, ctx: HandlerContext) -> list[Envelope]:
    """Keep the group projection (nested groups included) in step with group events."""
    data = event.data
    sequence = event.sequence or 0
    if isinstance(data, GroupCreated | GroupUpdated):
        await directory.upsert_group(ctx.conn, data.group_id, data.display_name, sequence=sequence)
    elif isinstance(data, GroupDeleted):
        await directory.delete_group(ctx.conn, data.group_id, sequence=sequence)
    elif isinstance(data, GroupMembersChanged):
        await directory.change_members(ctx.conn, data.group_id, data.added, data.removed)
    return []


async def handle_lockout_event(event: Envelope, ctx: HandlerContext) -> list[Envelope]:
    """Keep the `locked` attribute in step with identity.locked / identity.unlocked."""
    data = event.data
    if isinstance(data, IdentityLocked):
        await authn_projection.lockout_started(ctx.conn, data.user_id, data.lockout_id)
    elif isinstance(data, IdentityUnlocked):
        await authn_projection.lockout_ended(ctx.conn, data.user_id, data.lockout_id)
    return []


async def handle_factor_event(event: Envelope, ctx: HandlerContext) -> list[Envelope]:
    """Keep the `factors` attribute in step with mfa.enrolled / mfa.removed, credential by
    credential: removing one credential keeps the kind while another of it remains."""
    data = event.data
    if isinstance(data, MfaEnrolled):
        await authn_projection.factor_enrolled(
            ctx.conn, data.user_id, data.credential_id, data.factor
        )
    elif isinstance(data, MfaRemoved):
        await authn_projection.factor_removed(
            ctx.conn, data.user_id, data.credential_id, data.factor
        )
    return []


async def handle_access_requested(
    event: Envelope, ctx: HandlerContext, *, rules: Rules, settings: access.ApprovalSettings
) -> list[Envelope]:
    """Decide an access request by policy: grant, refuse with reasons, or ask for approvals."""
    policies, catalogue = rules()
    return await access.decide_request(
        ctx.conn,
        event,
        policies=policies,
        catalogue=catalogue,
        settings=settings,
        source=ctx.source,
    )
