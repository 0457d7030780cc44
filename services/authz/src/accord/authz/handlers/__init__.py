"""Authz's handlers, one module per concern: identity events, group events, authn's
lockouts and factors, access requests (and the approval flow the API, CLI and timers share),
workflow approvals and the timers. Each takes its typed payload and an AuthzPorts; `routes`
types them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from accord.authz.handlers.access import on_access_requested
from accord.authz.handlers.authn import (
    on_identity_locked,
    on_identity_unlocked,
    on_mfa_enrolled,
    on_mfa_removed,
)
from accord.authz.handlers.groups import on_group_deleted, on_group_upserted, on_members_changed
from accord.authz.handlers.identity import on_user_deleted, on_user_profile, on_user_status
from accord.authz.handlers.workflow_approvals import on_approval_requested
from accord.authz.ports import AuthzPorts, Rules
from accord.events import (
    AccessRequested,
    ApprovalRequested,
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
from accord.runtime.routes import HandlerContext, Typed, on, table

__all__ = [
    "Rules",
    "on_access_requested",
    "on_approval_requested",
    "on_group_deleted",
    "on_group_upserted",
    "on_identity_locked",
    "on_identity_unlocked",
    "on_members_changed",
    "on_mfa_enrolled",
    "on_mfa_removed",
    "on_user_deleted",
    "on_user_profile",
    "on_user_status",
    "routes",
]

Route = Typed[Any, HandlerContext, AuthzPorts, list[Envelope]]


def routes(ports: Callable[[HandlerContext], AuthzPorts]) -> Mapping[str, Route]:
    """Every event authz consumes, by type, to its typed handler."""
    return table(
        [
            on((UserCreated, UserUpdated), on_user_profile, ports),
            on((UserDeactivated, UserReactivated), on_user_status, ports),
            on(UserDeleted, on_user_deleted, ports),
            on((GroupCreated, GroupUpdated), on_group_upserted, ports),
            on(GroupDeleted, on_group_deleted, ports),
            on(GroupMembersChanged, on_members_changed, ports),
            on(IdentityLocked, on_identity_locked, ports),
            on(IdentityUnlocked, on_identity_unlocked, ports),
            on(MfaEnrolled, on_mfa_enrolled, ports),
            on(MfaRemoved, on_mfa_removed, ports),
            on(AccessRequested, on_access_requested, ports),
            on(ApprovalRequested, on_approval_requested, ports),
        ]
    )
