"""Lockout and revocation: failed sign-ins lock an identity, a lockout disables its accounts
(the orchestrator's lockout saga) and revokes its sessions everywhere (CAEP), an approved
request unlocks it."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from accord.authn.adapters import identities, lockouts
from accord.authn.domain.lockout import (
    LockoutPolicy,
    Run,
    Verdict,
    judge_failure,
    longest_run,
    longest_run_anywhere,
)
from accord.authn.signals import SendSignal
from accord.events import (
    AuthnFailed,
    Envelope,
    EventData,
    IdentityLocked,
    IdentityUnlocked,
    SessionRevoked,
    new_event,
)

log = logging.getLogger(__name__)

_LOCKOUT_IDS = uuid.UUID("3c0b7a55-2f55-4b8e-9d56-0b7fa4c2c9a1")


@dataclass(frozen=True)
class Risk:
    """The lockout policy and the way out to the Shared Signals receivers."""

    policy: LockoutPolicy
    send: SendSignal
    source: str

    def _event(self, data: EventData, cause: Envelope | None) -> Envelope:
        return new_event(data, source=self.source, causation=cause)

    @staticmethod
    def txn_of(cause: Envelope | None) -> str:
        """The Shared Signals `txn` of what a cause sets off: the event's id (a redelivery
        gives the same), or a new one for a cause that is no event (a request, a SET)."""
        return cause.id if cause is not None else uuid.uuid4().hex

    async def failed(self, conn: asyncpg.Connection, event: Envelope) -> list[Envelope]:
        """Count a failed sign-in; the one that makes a run of the threshold (failures in a
        row within the window, by their own times) locks the identity."""
        data = event.data
        assert isinstance(data, AuthnFailed)
        user_id = data.user_id
        await lockouts.lock_identity_row(conn, user_id)
        settled = await lockouts.settled_at(conn, user_id)
        if settled is not None and event.time <= settled:
            return []  # before the latest lockout (counted) or unlock (forgiven)
        counted = await lockouts.record_failure(
            conn, event.id, user_id, event.time, idp=data.idp, reason=data.reason
        )
        if not counted:
            return []  # a redelivery: counted already
        if await lockouts.open_lockout(conn, user_id) is not None:
            return []
        if await identities.status_of(conn, user_id) in (None, "deleted"):
            # Guessing at a name Accord does not hold (or no longer): nothing to lock.
            log.debug("failed sign-in of an unknown identity", extra={"user_id": user_id})
            return []
        window = self.policy.window
        failures, successes = await lockouts.sign_ins_between(
            conn, user_id, event.time - window, event.time + window
        )
        run = longest_run(self.policy, event.time, failures, successes)
        if judge_failure(self.policy, run.failures, locked=False) is not Verdict.LOCK:
            return []
        return await self._lock_run(conn, user_id, run, cause=event, at=event.time)

    async def first_known(
        self, conn: asyncpg.Connection, user_id: str, cause: Envelope
    ) -> list[Envelope]:
        """An identity authn has just learnt of (user.created is another topic than
        authn.failed): the failures consumed before it lock it if they make a run."""
        if await lockouts.open_lockout(conn, user_id) is not None:
            return []
        failures, successes = await lockouts.sign_ins_between(conn, user_id, None, None)
        run = longest_run_anywhere(self.policy, failures, successes)
        if run is None or judge_failure(self.policy, run.failures, locked=False) is not (
            Verdict.LOCK
        ):
            return []
        return await self._lock_run(conn, user_id, run, cause=cause, at=run.ends_at)

    async def _lock_run(
        self, conn: asyncpg.Connection, user_id: str, run: Run, *, cause: Envelope, at: datetime
    ) -> list[Envelope]:
        window_s = int(self.policy.window.total_seconds())
        reason = f"{run.failures} failed sign-ins in a row within {window_s} s"
        # Derived from the event that tipped it: a redelivery finds the same lockout.
        lockout_id = f"lock-{uuid.uuid5(_LOCKOUT_IDS, cause.id).hex}"
        events = await self.lock(
            conn,
            user_id,
            reason,
            cause=cause,
            failures=run.failures,
            lockout_id=lockout_id,
            at=at,
        )
        # The run may end after the failure that completed it (that one was consumed late).
        await lockouts.settle(conn, user_id, run.ends_at)
        return events

    async def succeeded(self, conn: asyncpg.Connection, event: Envelope) -> list[Envelope]:
        """A successful sign-in ends the run of the failures at or before its time, whether
        they are consumed before it or after."""
        await lockouts.lock_identity_row(conn, event.subject)
        await lockouts.record_success(conn, event.id, event.subject, event.time)
        return []

    async def lock(
        self,
        conn: asyncpg.Connection,
        user_id: str,
        reason: str,
        *,
        cause: Envelope | None,
        failures: int = 0,
        lockout_id: str | None = None,
        at: datetime | None = None,
        txn: str | None = None,
    ) -> list[Envelope]:
        """Lock an identity: identity.locked (the orchestrator disables every account) and
        its sessions revoked everywhere. Nothing when it is locked already."""
        await lockouts.lock_identity_row(conn, user_id)
        if await lockouts.open_lockout(conn, user_id) is not None:
            return []
        lockout_id = lockout_id or f"lock-{uuid.uuid4().hex}"
        when = at or (cause.time if cause else datetime.now().astimezone())
        if not await lockouts.insert_lockout(conn, lockout_id, user_id, reason, failures, when):
            return []
        await lockouts.settle(conn, user_id, when)
        log.warning("identity locked", extra={"user_id": user_id, "lockout_id": lockout_id})
        locked = IdentityLocked(
            user_id=user_id, lockout_id=lockout_id, reason=reason, failures=failures
        )
        events = [self._event(locked, cause)]
        txn = txn or self.txn_of(cause)  # one cause: both signals share it
        await self.send(conn, user_id, "account-disabled", reason, txn=txn)
        events += await self.revoke_sessions(
            conn, user_id, f"lockout: {reason}", cause=cause, txn=txn
        )
        return events

    async def unlock(
        self, conn: asyncpg.Connection, lockout_id: str, request_id: str, *, cause: Envelope
    ) -> list[Envelope]:
        """End a lockout by an approved request: identity.unlocked (accounts enabled again)."""
        lockout = await lockouts.get_lockout(conn, lockout_id)
        if lockout is None:
            return []
        user_id = str(lockout["user_id"])
        await lockouts.lock_identity_row(conn, user_id)
        if not await lockouts.close_lockout(conn, lockout_id, request_id):
            return []
        # By the grant's time: failures from before it, consumed after it, do not count.
        await lockouts.settle(conn, user_id, cause.time)
        if await identities.status_of(conn, user_id) == "active":
            # A deactivated or deleted identity stays disabled, whichever came first.
            why = f"unlocked by {request_id}"
            await self.send(conn, user_id, "account-enabled", why, txn=self.txn_of(cause))
        unlocked = IdentityUnlocked(user_id=user_id, lockout_id=lockout_id, request_id=request_id)
        return [self._event(unlocked, cause)]

    async def revoke_sessions(
        self,
        conn: asyncpg.Connection,
        user_id: str,
        reason: str,
        *,
        cause: Envelope | None,
        txn: str | None = None,
    ) -> list[Envelope]:
        """Tell every receiver to end the identity's sessions (CAEP session-revoked)."""
        txn = txn or self.txn_of(cause)
        streams = await self.send(conn, user_id, "session-revoked", reason, txn=txn)
        revoked = SessionRevoked(user_id=user_id, reason=reason[:256], streams=streams)
        return [self._event(revoked, cause)]
