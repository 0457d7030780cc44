"""Access events from authz: a grant adds its principal to the groups that carry it, a
revocation removes it."""

from __future__ import annotations

import logging

from accord.events import AccessGranted, AccessRevoked, Envelope
from accord.orchestrator.domain import account_saga as saga
from accord.orchestrator.domain import workflow
from accord.orchestrator.domain.plans import memberships
from accord.orchestrator.handlers.engine import Origin, UnknownIdentity, advance, begin
from accord.orchestrator.ports import OrchestratorPorts

log = logging.getLogger(__name__)


async def on_access_changed(
    event: Envelope, data: AccessGranted | AccessRevoked, ports: OrchestratorPorts
) -> list[Envelope]:
    """One saga per grant and event type (a redelivery starts none), queued behind the
    identity's saga in flight (a grant behind its joiner finds the accounts). An
    entitlement that lives in Accord only has nothing to provision: no saga. Nor has a
    reaffirmed grant (a request answered with a grant held already): the grant's own
    access.granted started its saga, whose id this one would share anyway.
    """
    if isinstance(data, AccessGranted) and data.reaffirmed:
        log.info(
            "grant reaffirmed: provisioned by its own saga",
            extra={"grant": data.grant_id, "request_id": data.request_id},
        )
        return []
    saga_type, operation = workflow.ACCESS_WORKFLOWS[type(data)]
    steps = memberships(((p.target, p.group) for p in data.provisioning), operation)
    if not steps:
        return []
    user_id = data.principal_id
    await ports.registry.lock(user_id)
    identity = await ports.registry.identity(user_id)
    if identity is None:
        raise UnknownIdentity(f"{event.type} for {user_id}, unknown to the registry")
    revocation = workflow.access_saga_id(AccessRevoked, data.grant_id)
    if isinstance(data, AccessGranted) and await ports.sagas.status(revocation):
        log.info("grant revoked already: not provisioned", extra={"grant": data.grant_id})
        return []
    events: list[Envelope] = []
    if isinstance(data, AccessRevoked):
        events += await _withdraw_grant(ports, data.grant_id, event)
    origin = Origin(ports.source, event)
    saga_id = workflow.access_saga_id(type(data), data.grant_id)
    # Sagas never change the entry: the one read above is the one to plan on.
    return events + await begin(
        ports, origin, saga_id, user_id, saga_type, memberships=steps, identity=identity
    )


async def _withdraw_grant(
    ports: OrchestratorPorts, grant_id: str, cause: Envelope
) -> list[Envelope]:
    """A revoked grant's saga that waits or failed must never add its groups: cancel it.

    One in flight finishes first; the revocation queues behind it.
    """
    saga_id = workflow.access_saga_id(AccessGranted, grant_id)
    state = await ports.sagas.load(saga_id)
    if state is None or state.status not in ("queued", "failed"):
        return []
    return await advance(ports, saga_id, saga.CancelRequested("access revoked"), cause=cause)
