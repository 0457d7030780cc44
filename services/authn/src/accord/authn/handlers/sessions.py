"""Session revocation on request: a lifecycle workflow's revoke_sessions task
(`session.revoke_requested`, from the orchestrator) ends the identity's sessions everywhere,
as a lockout or a deactivation does: CAEP session-revoked to every Shared Signals stream,
then `session.revoked`.

Whatever the identity's status: an active identity is the point (a suspected compromise,
a contractor's last day), an inactive or deleted one had its sessions revoked on that
change already, and revoking again is harmless (a receiver ends what is left, nothing if
nothing is). Authn keeps no sessions of its own, so it cannot tell "nothing to revoke":
every request is acted on and announced.

Once per request: the inbox takes an event id once, and the orchestrator derives the event
id from the request (its idempotency key), so a redelivery or a re-emission is dropped
before it gets here. The SETs' `txn` is derived from `request_id` too, so a receiver that
sees the same request twice by another way sees the same transaction.
"""

from __future__ import annotations

import uuid

from accord.authn.handlers import lockout
from accord.authn.ports import Ports
from accord.events import Envelope, SessionRevokeRequested

_REQUEST_TXNS = uuid.UUID("6f1d7c2e-8a43-4b5e-9c0d-2e7a5b1f3c84")


def request_txn(request_id: str) -> str:
    """The Shared Signals `txn` of a revocation request: the same for the same request."""
    return uuid.uuid5(_REQUEST_TXNS, request_id).hex


async def on_session_revoke_requested(
    event: Envelope, data: SessionRevokeRequested, ports: Ports
) -> list[Envelope]:
    """End the identity's sessions everywhere and say so (`session.revoked`, caused by the
    request, with the request's reason)."""
    user_id = data.user_id
    # In order with the identity's other events (a lockout, a deactivation) being handled.
    await ports.lockouts.serialise(user_id)
    return await lockout.revoke_sessions(
        ports, user_id, data.reason, cause=event, txn=request_txn(data.request_id)
    )
