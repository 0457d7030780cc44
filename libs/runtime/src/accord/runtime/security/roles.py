"""Roles, the permissions they grant, and the caller a request acts for."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """What a person or system is to Accord."""

    ADMIN = "admin"
    """Runs Accord: everything."""
    OPERATOR = "operator"
    """Keeps provisioning running: identities, sagas, targets, dead letters."""
    APPROVER = "approver"
    """Decides access requests assigned to them."""
    REQUESTER = "requester"
    """Asks for access, sees their own identity and requests."""
    AUDITOR = "auditor"
    """Reads everything, changes nothing."""
    SCIM_CLIENT = "scim-client"
    """An identity provider or HR system pushing identities over SCIM (Okta, Entra ID)."""
    APPLICATION = "application"
    """An application or gateway asking Accord for decisions (POST /v1/authorize)."""
    IDENTITY_PROVIDER = "identity-provider"
    """An identity provider or gateway: asks which factors a sign-in needs, verifies a
    user's factors through Accord, and pushes Security Event Tokens to Accord's receiver."""
    SSF_RECEIVER = "ssf-receiver"
    """A Shared Signals receiver: manages its own streams on Accord's transmitter and polls
    them."""


class Permission(StrEnum):
    """What an endpoint needs; an API token's scopes are permissions too."""

    SELF_SERVICE = "self-service"
    """See one's own identity, sagas, principal, access requests and grants, act on one's own
    factors and ask to unlock oneself: what a person does for themselves. Systems (SCIM
    clients, applications, identity providers, Shared Signals receivers) have no self."""
    IDENTITIES_READ = "identities:read"
    SAGAS_READ = "sagas:read"
    SAGAS_OPERATE = "sagas:operate"
    """Retry or cancel a saga."""
    SCIM_PROVISION = "scim:provision"
    """Read and write Users and Groups through the inbound SCIM server."""
    TARGETS_READ = "targets:read"
    POLICIES_READ = "policies:read"
    POLICIES_MANAGE = "policies:manage"
    """Reload the policy folder now (admins)."""
    PRINCIPALS_READ = "principals:read"
    AUDIT_READ = "audit:read"
    ACCESS_REQUEST = "access:request"
    """Ask for access for oneself."""
    ACCESS_REQUEST_OTHERS = "access:request-others"
    """Ask for access on behalf of another identity."""
    ACCESS_READ = "access:read"
    """See everyone's access requests, grants and approvals (one's own need no permission)."""
    ACCESS_APPROVE = "access:approve"
    """Decide the approval stages one is an approver of (never one's own request)."""
    ACCESS_REVOKE = "access:revoke"
    """End anyone's grant."""
    AUTHORIZE = "authz:decide"
    """Ask the decision API whether a principal may do something."""
    AUTHN_EVALUATE = "authn:evaluate"
    """Ask which factors an identity must present for an application (POST /v1/authn/evaluate)."""
    AUTHN_VERIFY = "authn:verify"
    """Verify an identity's TOTP code or WebAuthn assertion on its behalf (a sign-in)."""
    MFA_MANAGE = "mfa:manage"
    """Enrol, list and remove anyone's factors (one's own need no permission)."""
    LOCKOUTS_MANAGE = "lockouts:manage"
    """Lock an identity by hand (sessions revoked, accounts disabled) and see every lockout."""
    SSF_PUSH = "ssf:push"
    """Push Security Event Tokens to Accord's Shared Signals receiver."""
    SSF_STREAMS = "ssf:streams"
    """Create, read, update and delete one's own Shared Signals streams, and poll them."""
    SSF_MANAGE = "ssf:manage"
    """Manage every Shared Signals stream (admins)."""


#: Each role's permissions. Seeing one's own objects (identity, sagas, requests) needs only
#: SELF_SERVICE, which every role of a person holds.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.OPERATOR: frozenset(
        {
            Permission.SELF_SERVICE,
            Permission.ACCESS_REQUEST,
            Permission.ACCESS_REQUEST_OTHERS,
            Permission.ACCESS_READ,
            Permission.ACCESS_APPROVE,
            Permission.ACCESS_REVOKE,
            Permission.AUTHORIZE,
            Permission.AUTHN_EVALUATE,
            Permission.MFA_MANAGE,
            Permission.LOCKOUTS_MANAGE,
            Permission.IDENTITIES_READ,
            Permission.SAGAS_READ,
            Permission.SAGAS_OPERATE,
            Permission.TARGETS_READ,
            Permission.POLICIES_READ,
            Permission.PRINCIPALS_READ,
        }
    ),
    Role.APPROVER: frozenset(
        {
            Permission.SELF_SERVICE,
            Permission.ACCESS_REQUEST,
            Permission.ACCESS_READ,
            Permission.ACCESS_APPROVE,
            Permission.POLICIES_READ,
            Permission.PRINCIPALS_READ,
        }
    ),
    # A requester may be someone's manager: deciding what one is assigned needs no more.
    Role.REQUESTER: frozenset(
        {Permission.SELF_SERVICE, Permission.ACCESS_REQUEST, Permission.ACCESS_APPROVE}
    ),
    Role.SCIM_CLIENT: frozenset({Permission.SCIM_PROVISION}),
    Role.APPLICATION: frozenset({Permission.AUTHORIZE}),
    Role.IDENTITY_PROVIDER: frozenset(
        {Permission.AUTHN_EVALUATE, Permission.AUTHN_VERIFY, Permission.SSF_PUSH}
    ),
    Role.SSF_RECEIVER: frozenset({Permission.SSF_STREAMS}),
    Role.AUDITOR: frozenset(
        {
            Permission.SELF_SERVICE,
            Permission.ACCESS_READ,
            Permission.IDENTITIES_READ,
            Permission.SAGAS_READ,
            Permission.TARGETS_READ,
            Permission.POLICIES_READ,
            Permission.PRINCIPALS_READ,
            Permission.AUDIT_READ,
        }
    ),
}


def parse_roles(names: object) -> frozenset[Role]:
    """Known roles among names (a list or a space-separated string); unknown ones are ignored."""
    if isinstance(names, str):
        names = names.split()
    if not isinstance(names, list | tuple | set | frozenset):
        return frozenset()
    known = {r.value for r in Role}
    return frozenset(Role(n) for n in names if isinstance(n, str) and n in known)


@dataclass(frozen=True)
class Caller:
    """Who a request acts for, and what they may do."""

    subject: str
    """The person or system: OIDC `sub`, or the subject an API token was issued to."""
    roles: frozenset[Role]
    kind: str
    """"oidc" or "api-token"."""
    credential_id: str
    """Token id (API tokens) or `jti`/subject (OIDC): the key for rate limits and logs."""
    scopes: frozenset[Permission] | None = None
    """An API token's restriction to some permissions; None: all its roles grant."""

    @property
    def permissions(self) -> frozenset[Permission]:
        """What the roles grant, narrowed by the scopes."""
        granted: frozenset[Permission] = frozenset().union(
            *(ROLE_PERMISSIONS[r] for r in self.roles)
        )
        return granted if self.scopes is None else granted & self.scopes

    def may(self, permission: Permission) -> bool:
        """Whether this caller holds a permission."""
        return permission in self.permissions
