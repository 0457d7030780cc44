"""Lockout and revocation: failed sign-ins lock an identity, a lockout disables its accounts
(the orchestrator's lockout saga) and revokes its sessions everywhere (CAEP), an approved
request unlocks it. The sign-in, identity and access handlers, the lockout API and the
Shared Signals receiver all act through these, on the ports of their transaction."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from accord.authn.domain.lockout import (
    Run,
    Verdict,
    judge_failure,
    lockout_reason,
    longest_run,
    longest_run_anywhere,
)
from accord.authn.ports import Ports
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


def _event(ports: Ports, data: EventData, cause: Envelope | None) -> Envelope:
    return new_event(data, source=ports.source, causation=cause)


def txn_of(cause: Envelope | None) -> str:
    """The Shared Signals `txn` of what a cause sets off: the event's id (a redelivery gives
    the same), or a new one for a cause that is no event (a request, a SET)."""
    return cause.id if cause is not None else uuid.uuid4().hex


async def failed(ports: Ports, event: Envelope, data: AuthnFailed) -> list[Envelope]:
    """Count a failed sign-in; the one that makes a run of the threshold (failures in a row
    within the window, by their own times) locks the identity."""
    store = ports.lockouts
    user_id = data.user_id
    await store.serialise(user_id)
    settled = await store.settled_at(user_id)
    if settled is not None and event.time <= settled:
        return []  # before the latest lockout (counted) or unlock (forgiven)
    counted = await store.record_failure(
        event.id, user_id, event.time, idp=data.idp, reason=data.reason
    )
    if not counted:
        return []  # a redelivery: counted already
    if await store.open_lockout(user_id) is not None:
        return []
    if await ports.identities.status_of(user_id) in (None, "deleted"):
        # Guessing at a name Accord does not hold (or no longer): nothing to lock.
        log.debug("failed sign-in of an unknown identity", extra={"user_id": user_id})
        return []
    window = ports.policy.window
    failures, successes = await store.sign_ins_between(
        user_id, event.time - window, event.time + window
    )
    run = longest_run(ports.policy, event.time, failures, successes)
    if judge_failure(ports.policy, run.failures, locked=False) is not Verdict.LOCK:
        return []
    return await _lock_run(ports, user_id, run, cause=event, at=event.time)


async def succeeded(ports: Ports, event: Envelope) -> list[Envelope]:
    """A successful sign-in ends the run of the failures at or before its time, whether
    they are consumed before it or after."""
    await ports.lockouts.serialise(event.subject)
    await ports.lockouts.record_success(event.id, event.subject, event.time)
    return []


async def first_known(ports: Ports, user_id: str, cause: Envelope) -> list[Envelope]:
    """An identity authn has just learnt of (user.created is another topic than
    authn.failed): the failures consumed before it lock it if they make a run."""
    if await ports.lockouts.open_lockout(user_id) is not None:
        return []
    failures, successes = await ports.lockouts.sign_ins_between(user_id, None, None)
    run = longest_run_anywhere(ports.policy, failures, successes)
    if run is None or judge_failure(ports.policy, run.failures, locked=False) is not (Verdict.LOCK):
        return []
    return await _lock_run(ports, user_id, run, cause=cause, at=run.ends_at)


async def _lock_run(
    ports: Ports, user_id: str, run: Run, *, cause: Envelope, at: datetime
) -> list[Envelope]:
    # Derived from the event that tipped it: a redelivery finds the same lockout.
    lockout_id = f"lock-{uuid.uuid5(_LOCKOUT_IDS, cause.id).hex}"
    events = await lock(
        ports,
        user_id,
        lockout_reason(ports.policy, run),
        cause=cause,
        failures=run.failures,
        lockout_id=lockout_id,
        at=at,
    )
    # The run may end after the failure that completed it (that one was consumed late).
    await ports.lockouts.settle(user_id, run.ends_at)
    return events


async def lock(
    ports: Ports,
    user_id: str,
    reason: str,
    *,
    cause: Envelope | None,
    failures: int = 0,
    lockout_id: str | None = None,
    at: datetime | None = None,
    txn: str | None = None,
) -> list[Envelope]:
    """Lock an identity: identity.locked (the orchestrator disables every account) and its
    sessions revoked everywhere. Nothing when it is locked already."""
    store = ports.lockouts
    await store.serialise(user_id)
    if await store.open_lockout(user_id) is not None:
        return []
    lockout_id = lockout_id or f"lock-{uuid.uuid4().hex}"
    when = at or (cause.time if cause else datetime.now().astimezone())
    if not await store.insert_lockout(lockout_id, user_id, reason, failures, when):
        return []
    await store.settle(user_id, when)
    log.warning("identity locked", extra={"user_id": user_id, "lockout_id": lockout_id})
    locked = IdentityLocked(
        user_id=user_id, lockout_id=lockout_id, reason=reason, failures=failures
    )
    events = [_event(ports, locked, cause)]
    txn = txn or txn_of(cause)  # one cause: both signals share it
    await ports.signals.send(user_id, "account-disabled", reason, txn=txn)
    events += await revoke_sessions(ports, user_id, f"lockout: {reason}", cause=cause, txn=txn)
    return events


async def unlock(
    ports: Ports, lockout_id: str, request_id: str, *, cause: Envelope
) -> list[Envelope]:
    """End a lockout by an approved request: identity.unlocked (accounts enabled again)."""
    store = ports.lockouts
    lockout = await store.get_lockout(lockout_id)
    if lockout is None:
        return []
    user_id = lockout.user_id
    await store.serialise(user_id)
    if not await store.close_lockout(lockout_id, request_id):
        return []
    # By the grant's time: failures from before it, consumed after it, do not count.
    await store.settle(user_id, cause.time)
    if await ports.identities.status_of(user_id) == "active":
        # A deactivated or deleted identity stays disabled, whichever came first.
        why = f"unlocked by {request_id}"
        await ports.signals.send(user_id, "account-enabled", why, txn=txn_of(cause))
    unlocked = IdentityUnlocked(user_id=user_id, lockout_id=lockout_id, request_id=request_id)
    return [_event(ports, unlocked, cause)]


async def revoke_sessions(
    ports: Ports, user_id: str, reason: str, *, cause: Envelope | None, txn: str | None = None
) -> list[Envelope]:
    """Tell every receiver to end the identity's sessions (CAEP session-revoked)."""
    txn = txn or txn_of(cause)
    streams = await ports.signals.send(user_id, "session-revoked", reason, txn=txn)
    revoked = SessionRevoked(user_id=user_id, reason=reason[:256], streams=streams)
    return [_event(ports, revoked, cause)]
