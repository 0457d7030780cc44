"""Authn's events: the `locked` attribute (identity.locked / identity.unlocked) and the
`factors` attribute (mfa.enrolled / mfa.removed), credential by credential: removing one
credential keeps the kind while another of it remains."""

from __future__ import annotations

from accord.authz.ports import AuthzPorts
from accord.events import Envelope, IdentityLocked, IdentityUnlocked, MfaEnrolled, MfaRemoved


async def on_identity_locked(
    event: Envelope, data: IdentityLocked, ports: AuthzPorts
) -> list[Envelope]:
    """identity.locked (a lockout already ended stays ended)."""
    await ports.stores.authn.lockout_started(data.user_id, data.lockout_id)
    return []


async def on_identity_unlocked(
    event: Envelope, data: IdentityUnlocked, ports: AuthzPorts
) -> list[Envelope]:
    """identity.unlocked (also before its identity.locked)."""
    await ports.stores.authn.lockout_ended(data.user_id, data.lockout_id)
    return []


async def on_mfa_enrolled(event: Envelope, data: MfaEnrolled, ports: AuthzPorts) -> list[Envelope]:
    """mfa.enrolled (a credential already removed stays removed)."""
    await ports.stores.authn.factor_enrolled(data.user_id, data.credential_id, data.factor)
    return []


async def on_mfa_removed(event: Envelope, data: MfaRemoved, ports: AuthzPorts) -> list[Envelope]:
    """mfa.removed (also before its mfa.enrolled)."""
    await ports.stores.authn.factor_removed(data.user_id, data.credential_id, data.factor)
    return []
