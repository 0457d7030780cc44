"""Authn's event handlers: the identity projection, sign-ins, approvals and enrolment."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from accord.authn import approvals
from accord.authn.adapters import enrolments, identities, lockouts
from accord.authn.domain import identity
from accord.authn.domain.identity import Status
from accord.authn.risk import Risk
from accord.events import (
    AccessDecided,
    AccessGranted,
    AuthnFailed,
    AuthnSucceeded,
    Envelope,
    EventData,
    MfaEnrolled,
    MfaEnrolmentRequested,
    UserDeactivated,
    UserDeleted,
    UserReactivated,
)
from accord.runtime.consumer import HandlerContext

log = logging.getLogger(__name__)

#: What a status event about an identity authn has not seen yet says it was before.
_UNSEEN_WAS: dict[type[EventData], Status] = {
    UserDeactivated: "active",
    UserDeleted: "active",
    UserReactivated: "inactive",
}


@dataclass(frozen=True)
class Handlers:
    """Authn's handlers, with the lockout policy and the factor store they act through."""

    risk: Risk
    remove_factors: approvals.RemoveFactors

    async def user_event(self, event: Envelope, ctx: HandlerContext) -> list[Envelope]:
        """Keep the projection; what its status did decides, not the event's type: one that
        becomes inactive or deleted loses its sessions everywhere at once (a leaver its
        factors too), one that comes back is enabled again unless locked. One seen for the
        first time is locked if the failures consumed before it make a run."""
        conn = ctx.conn
        user_id = event.subject
        # Its events on the other user.* topics may be handled at this very moment.
        await lockouts.lock_identity_row(conn, user_id)
        change = identity.change_of(event.data, event.sequence or 0)
        applied = await identities.apply(conn, user_id, change)
        if applied is None:
            return []  # a duplicate, or older than what it would change
        before, after = applied
        events: list[Envelope] = []
        if before is None and after.status != "deleted":
            events += await self.risk.first_known(conn, user_id, event)
        was = before.status if before else _UNSEEN_WAS.get(type(event.data))
        if after.status == was:
            return events
        if after.status == "active":
            if was is not None and await lockouts.open_lockout(conn, user_id) is None:
                await self.risk.send(conn, user_id, "account-enabled", "reactivated", txn=event.id)
            return events
        if after.status == "inactive" and was != "active":
            return events  # a joiner created inactive, a leaver back as one: nothing to end
        leaver = after.status == "deleted"
        reason = "leaver" if leaver else "deactivated"
        await self.risk.send(conn, user_id, "account-disabled", reason, txn=event.id)
        events += await self.risk.revoke_sessions(conn, user_id, reason, cause=event)
        if leaver:
            events += await self.remove_factors(conn, user_id, "leaver")
        return events

    async def sign_in(self, event: Envelope, ctx: HandlerContext) -> list[Envelope]:
        """Failed sign-ins count toward a lockout, a success ends their run."""
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
