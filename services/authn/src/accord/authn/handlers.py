"""Authn's event handlers: the identity projection, sign-ins, approvals and enrolment."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from accord.authn import approvals
from accord.authn.adapters import enrolments, identities, lockouts
from accord.authn.risk import Risk
from accord.events import (
    AccessDecided,
    AccessGranted,
    AuthnFailed,
    AuthnSucceeded,
    Envelope,
    MfaEnrolled,
    MfaEnrolmentRequested,
    UserCreated,
    UserDeactivated,
    UserDeleted,
    UserReactivated,
    UserUpdated,
)
from accord.runtime.consumer import HandlerContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Handlers:
    """Authn's handlers, with the lockout policy and the factor store they act through."""

    risk: Risk
    remove_factors: approvals.RemoveFactors

    async def user_event(self, event: Envelope, ctx: HandlerContext) -> list[Envelope]:
        """Keep the projection; a leaver or a deactivated identity loses its sessions
        everywhere at once, a leaver its factors too."""
        data = event.data
        sequence = event.sequence or 0
        conn = ctx.conn
        if isinstance(data, UserCreated | UserUpdated):
            await identities.upsert(
                conn,
                data.user_id,
                sequence=sequence,
                status="active" if data.active else "inactive",
                user_name=data.user_name,
                email=data.email,
            )
            return []
        if isinstance(data, UserReactivated):
            applied = await identities.upsert(
                conn, data.user_id, sequence=sequence, status="active", keep_profile=True
            )
            if applied and await lockouts.open_lockout(conn, data.user_id) is None:
                await self.risk.send(conn, data.user_id, "account-enabled", "reactivated")
            return []
        assert isinstance(data, UserDeactivated | UserDeleted)
        leaver = isinstance(data, UserDeleted)
        status: identities.Status = "deleted" if leaver else "inactive"
        applied = await identities.upsert(
            conn, data.user_id, sequence=sequence, status=status, keep_profile=True
        )
        if not applied:
            return []
        reason = "leaver" if leaver else "deactivated"
        await self.risk.send(conn, data.user_id, "account-disabled", reason)
        events = await self.risk.revoke_sessions(conn, data.user_id, reason, cause=event)
        if leaver:
            events += await self.remove_factors(conn, data.user_id, "leaver")
        return events

    async def sign_in(self, event: Envelope, ctx: HandlerContext) -> list[Envelope]:
        """Failed sign-ins count toward a lockout, a success resets the count."""
        if isinstance(event.data, AuthnFailed):
            return await self.risk.failed(ctx.conn, event)
        assert isinstance(event.data, AuthnSucceeded)
        return await self.risk.succeeded(ctx.conn, event)

    async def access_event(self, event: Envelope, ctx: HandlerContext) -> list[Envelope]:
        """Approved unlocks and factor resets take effect; refused ones are settled."""
        if isinstance(event.data, AccessGranted):
            return await approvals.granted(
                ctx.conn, event, risk=self.risk, remove_factors=self.remove_factors
            )
        assert isinstance(event.data, AccessDecided)
        return await approvals.decided(ctx.conn, event)

    async def enrolment(self, event: Envelope, ctx: HandlerContext) -> list[Envelope]:
        """Remember that the joiner saga asked for enrolment; an enrolled factor closes it."""
        data = event.data
        if isinstance(data, MfaEnrolmentRequested):
            await enrolments.requested(ctx.conn, data.user_id, data.factors, data.saga_id)
        else:
            assert isinstance(data, MfaEnrolled)
            await enrolments.enrolled(ctx.conn, data.user_id, event.time)
        return []
