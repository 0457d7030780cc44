"""Unlocks and factor resets go through an approval like any access request.

Authn files an `access.requested` for an entitlement of the `accord` application (`unlock`,
`mfa-reset`); authz's policies decide who approves; authn acts when the `access.granted`
arrives (accord.authn.handlers.access). The grant is one-shot: it expires by itself
minutes later.
"""

from __future__ import annotations

import uuid

from accord.authn.domain.lockout import ACCORD_APPLICATION, ONE_SHOT_GRANT, UNLOCK
from accord.authn.ports import Ports
from accord.events import AccessRequested, Envelope, Resource
from accord.events import new_event as _new_event

_REQUEST_IDS = uuid.UUID("a3f1e0c4-6a0e-4a55-8f57-3f7e1c0c8b12")


class NothingToUnlock(Exception):
    """An unlock was asked for an identity with no open lockout."""


def request_id_for(kind: str, user_id: str, requester: str, key: str | None) -> str:
    """A request id: stable for one caller's Idempotency-Key, random without one."""
    if key is None:
        return f"req-{uuid.uuid4().hex}"
    seed = "\n".join((kind, user_id, requester, key))
    return f"req-{uuid.uuid5(_REQUEST_IDS, seed).hex}"


async def file_request(
    ports: Ports,
    *,
    kind: str,
    user_id: str,
    requester_id: str,
    justification: str | None,
    request_id: str,
) -> tuple[bool, list[Envelope]]:
    """File an unlock or factor-reset request with authz; (created, events to publish).

    :raises NothingToUnlock: for an unlock when the identity is not locked.
    """
    lockout_id: str | None = None
    if kind == UNLOCK:
        lockout = await ports.lockouts.open_lockout(user_id)
        if lockout is None:
            raise NothingToUnlock("the identity is not locked")
        lockout_id = lockout.lockout_id
    created = await ports.requests.insert(request_id, user_id, kind, requester_id, lockout_id)
    if not created:
        return False, []
    requested = AccessRequested(
        request_id=request_id,
        requester_id=requester_id,
        principal_id=user_id,
        resource=Resource(application=ACCORD_APPLICATION, entitlement=kind),
        justification=justification,
        duration_seconds=int(ONE_SHOT_GRANT.total_seconds()),
    )
    return True, [_new_event(requested, source=ports.source)]
