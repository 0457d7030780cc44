"""Access requests from decision to grant: approvals, grants, expiry and revocation.

Every function works on the stores of the caller's transaction and returns the events to
emit through the outbox, so a state change and its events commit together or not at all.
The access.requested handler, the HTTP API, the CLI and the timers all go through here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from accord.authz import metrics
from accord.authz.catalogue import Catalogue, entitlement_id
from accord.authz.domain import approvals as chain_rules
from accord.authz.domain.access_outcome import outcome
from accord.authz.domain.approvals import (
    ApprovalSettings,
    NotInvolved,
    NotWaiting,
    RequestNotFound,
)
from accord.authz.domain.model import AccessQuery, EntityRef
from accord.authz.domain.policy_set import LoadedPolicies
from accord.authz.ports import AuthzPorts, NewGrant, Row, Stores
from accord.events import (
    AccessApprovalDecided,
    AccessApprovalRequested,
    AccessDecided,
    AccessGranted,
    AccessRequested,
    AccessRevoked,
    Envelope,
    EventData,
    Resource,
    new_event,
)
from accord.events.catalogue import Provisioning

log = logging.getLogger(__name__)

__all__ = [
    "ApprovalSettings",
    "Emit",
    "NotInvolved",
    "NotWaiting",
    "RequestNotFound",
    "decide_request",
    "decide_stage",
    "decide_waiting",
    "expire",
    "on_access_requested",
    "resolve_stages",
    "revoke",
    "revoke_all",
    "time_out_stage",
]


@dataclass(frozen=True)
class Emit:
    """Makes events of one flow: same source, same correlation (the request id)."""

    source: str
    correlation_id: str
    cause: Envelope | None = None

    def __call__(self, data: EventData) -> Envelope:
        if self.cause is not None:
            return new_event(data, source=self.source, causation=self.cause)
        return new_event(data, source=self.source, correlation_id=self.correlation_id)


# --- the handler ----------------------------------------------------------------------------


async def on_access_requested(
    event: Envelope, data: AccessRequested, ports: AuthzPorts
) -> list[Envelope]:
    """Decide an access request by policy: grant, refuse with reasons, or ask for approvals."""
    policies, catalogue = ports.rules()
    return await decide_request(
        ports.stores,
        event,
        data,
        policies=policies,
        catalogue=catalogue,
        settings=ports.settings,
        source=ports.source,
    )


# --- deciding a request ---------------------------------------------------------------------


async def decide_request(
    stores: Stores,
    event: Envelope,
    request: AccessRequested,
    *,
    policies: LoadedPolicies,
    catalogue: Catalogue,
    settings: ApprovalSettings,
    source: str,
) -> list[Envelope]:
    """Policy decision on a new request: grant it, refuse it, or start its approval chain.

    A request for a principal authz has not heard of waits for its user.created, another
    topic that may be consumed later (decide_waiting), instead of being refused as unknown.
    """
    await stores.principals.lock(request.principal_id)
    await stores.requests.insert(request)
    if not await stores.principals.known(request.principal_id):
        log.info("access request waits for its principal", extra={"request": request.request_id})
        return []
    emit = Emit(source, request.request_id, event)
    return await _decide(stores, request, emit, policies, catalogue, settings)


async def decide_waiting(
    stores: Stores,
    principal_id: str,
    *,
    policies: LoadedPolicies,
    catalogue: Catalogue,
    settings: ApprovalSettings,
    source: str,
) -> list[Envelope]:
    """Decide the requests that waited for this principal, now that authz knows it. The
    caller holds the principal's lock (Principals.lock)."""
    events: list[Envelope] = []
    for request in await stores.requests.waiting_for(principal_id):
        emit = Emit(source, request.request_id)
        events += await _decide(stores, request, emit, policies, catalogue, settings)
    return events


async def _decide(
    stores: Stores,
    request: AccessRequested,
    emit: Emit,
    policies: LoadedPolicies,
    catalogue: Catalogue,
    settings: ApprovalSettings,
) -> list[Envelope]:
    resource = request.resource
    query = AccessQuery(
        principal=EntityRef("User", request.principal_id),
        action="request",
        resource=EntityRef(
            "Entitlement", entitlement_id(resource.application, resource.entitlement)
        ),
        context={"justification": request.justification} if request.justification else {},
    )
    entities = [
        *await stores.directory.principal_entities(request.principal_id),
        *catalogue.resource_entities(resource.application, resource.entitlement),
    ]
    with metrics.evaluation(metrics.ACCESS_REQUEST):
        found = outcome(policies, query, entities)
    if found.errors:
        log.warning("policy evaluation errors", extra={"errors": list(found.errors)})
    stages: list[chain_rules.Stage] = []
    if found.chain:
        stages = await resolve_stages(
            stores,
            found.chain,
            requester_id=request.requester_id,
            principal_id=request.principal_id,
            application=resource.application,
            catalogue=catalogue,
        )
    status, reasons = chain_rules.settle(found.effect, found.reasons, stages, bool(found.chain))
    # Moving the request out of pending once keeps a redelivery from answering twice.
    if not await stores.requests.decide(request.request_id, status, reasons):
        return []
    metrics.decided(metrics.ACCESS_REQUEST, status)
    events = [
        emit(
            AccessDecided(
                request_id=request.request_id,
                principal_id=request.principal_id,
                resource=resource,
                decision=status,
                reasons=tuple(r[:256] for r in reasons),
            )
        )
    ]
    if status == "permit":
        events += await _grant(stores, await _row(stores, request.request_id), catalogue, emit)
    elif status == "approval_required":
        first_due = chain_rules.due(stores.clock(), settings.timeout)
        await stores.approvals.insert_chain(request.request_id, stages, first_due)
        first = await stores.approvals.pending_stage(request.request_id)
        assert first is not None
        row = await _row(stores, request.request_id)
        events.append(emit(_stage_requested(row, first, stages)))
    return events


async def resolve_stages(
    stores: Stores,
    chain: tuple[str, ...],
    *,
    requester_id: str,
    principal_id: str,
    application: str,
    catalogue: Catalogue,
) -> list[chain_rules.Stage]:
    """Who approves each stage of a chain, and who it escalates to."""
    app = catalogue.application(application)
    groups = {
        name.removeprefix("group:"): await stores.directory.members(name.removeprefix("group:"))
        for name in chain
        if name.startswith("group:")
    }
    people = chain_rules.Directory(
        requester_id=requester_id,
        principal_id=principal_id,
        manager_of=await stores.directory.managers(principal_id),
        owners=app.owners,
        escalation=app.escalation,
        group_members=groups,
    )
    return chain_rules.resolve(chain, people)


# --- approving ------------------------------------------------------------------------------


async def decide_stage(
    stores: Stores,
    request_id: str,
    *,
    approver_id: str,
    approve: bool,
    comment: str | None,
    catalogue: Catalogue,
    settings: ApprovalSettings,
    source: str,
) -> list[Envelope]:
    """An approver's answer to the request's current stage.

    Raises RequestNotFound; NotInvolved when the approver is neither its requester, its
    principal nor named on its chain; NotWaiting; or NotAnApprover (self-approval included).
    Their messages name no id: an HTTP error body repeats no input.
    """
    # Stage before request, as the timers lock them: two orders could deadlock.
    stage = await stores.approvals.pending_stage(request_id)
    row = await stores.requests.locked(request_id)
    if row is None:
        raise RequestNotFound("no such access request")
    mine = approver_id in (row["requester_id"], row["principal_id"])
    if not mine and not await stores.approvals.names(request_id, approver_id):
        raise NotInvolved("no such access request among those you may decide")
    if row["status"] != "approval_required" or stage is None:
        raise NotWaiting(row["status"])
    chain_rules.check_approver(
        approver_id,
        requester_id=row["requester_id"],
        principal_id=row["principal_id"],
        approvers=stage["approvers"],
    )
    verdict: Literal["approved", "denied"] = "approved" if approve else "denied"
    await stores.approvals.settle(
        request_id, stage["stage"], verdict, by=approver_id, comment=comment
    )
    emit = Emit(source, request_id)
    events = [emit(_stage_decided(row, stage["stage"], verdict, approver_id, comment))]
    if not approve:
        await stores.requests.conclude(request_id, "denied")
        await stores.approvals.skip_rest(request_id)
        return events
    following = await stores.approvals.open_stage(
        request_id, stage["stage"] + 1, chain_rules.due(stores.clock(), settings.timeout)
    )
    if following is not None:
        chain = await stores.approvals.chain(request_id)
        events.append(emit(_stage_requested(row, following, chain)))
        return events
    await stores.requests.conclude(request_id, "approved")
    return [*events, *await _grant(stores, row, catalogue, emit)]


async def time_out_stage(
    stores: Stores, stage: Row, *, settings: ApprovalSettings, source: str
) -> list[Envelope]:
    """An overdue stage escalates once (if it has someone to go to) or expires the request."""
    request_id = stage["request_id"]
    row = await _row(stores, request_id)
    emit = Emit(source, request_id)
    step = chain_rules.on_timeout(
        escalated=stage["escalated"], escalation=stage["escalation"], policy=settings.on_timeout
    )
    if step == "escalate":
        escalated = await stores.approvals.escalate(
            request_id, stage["stage"], chain_rules.due(stores.clock(), settings.timeout)
        )
        if escalated is not None:
            chain = await stores.approvals.chain(request_id)
            return [emit(_stage_requested(row, escalated, chain))]
        return []
    await stores.approvals.settle(request_id, stage["stage"], "expired")
    await stores.requests.conclude(request_id, "expired")
    await stores.approvals.skip_rest(request_id)
    return [emit(_stage_decided(row, stage["stage"], "expired", None, None))]


# --- grants ---------------------------------------------------------------------------------


async def _grant(stores: Stores, row: Row, catalogue: Catalogue, emit: Emit) -> list[Envelope]:
    """Give the access a request asked for: a grant, time-bound if asked, and its event."""
    provisioning = catalogue.provisioning(row["application"], row["entitlement"])
    expires_at = (
        stores.clock() + timedelta(seconds=row["duration_seconds"])
        if row["duration_seconds"]
        else None
    )
    grant_id = f"grant-{row['request_id']}"[:128]
    # A grant of the same entitlement past its expiry has ended, though the timer may not
    # have recorded it yet: record it now, so the new grant is not taken for a second one.
    events: list[Envelope] = []
    for due in await stores.grants.due_of(
        row["principal_id"], row["application"], row["entitlement"]
    ):
        events += await expire(stores, due, source=emit.source)
    created = await stores.grants.insert(
        NewGrant(
            grant_id=grant_id,
            request_id=row["request_id"],
            principal_id=row["principal_id"],
            application=row["application"],
            entitlement=row["entitlement"],
            provisioning=provisioning,
            expires_at=expires_at,
        )
    )
    if not created:
        return events + await _reaffirm(stores, row, emit)
    granted = AccessGranted(
        request_id=row["request_id"],
        grant_id=grant_id,
        principal_id=row["principal_id"],
        resource=Resource(application=row["application"], entitlement=row["entitlement"]),
        expires_at=expires_at,
        provisioning=provisioning,
    )
    return [*events, emit(granted)]


async def _reaffirm(stores: Stores, row: Row, emit: Emit) -> list[Envelope]:
    """Answer a permitted request for an entitlement the principal holds with the grant it
    holds (reaffirmed): no second grant, but a requester waiting for an access.granted of
    its request (a workflow task, authn) gets one instead of waiting for ever.

    The grant keeps its own expiry and groups: a request never extends a time-bound grant.
    A redelivered request gets no second answer (requests.decide moves a request once).
    """
    held = await stores.grants.held(row["principal_id"], row["application"], row["entitlement"])
    if held is None:
        # Ended between the refused insert and now (a concurrent revocation): no grant to
        # name, and none to make in this transaction. The requester's timeout applies.
        log.warning("entitlement neither granted nor held", extra={"request": row["request_id"]})
        return []
    log.info(
        "entitlement already held; answered with its grant",
        extra={"request": row["request_id"], "grant_id": held["grant_id"]},
    )
    reaffirmed = AccessGranted(
        request_id=row["request_id"],
        grant_id=held["grant_id"],
        principal_id=row["principal_id"],
        resource=Resource(application=row["application"], entitlement=row["entitlement"]),
        expires_at=held["expires_at"],
        provisioning=_provisioning(held),
        reaffirmed=True,
    )
    return [emit(reaffirmed)]


async def revoke(stores: Stores, grant_id: str, reason: str, *, source: str) -> list[Envelope]:
    """End a live grant (leaver, revoked by an operator); nothing if it is not live."""
    return _revoked(await stores.grants.revoke(grant_id, reason), source)


async def expire(stores: Stores, grant_id: str, *, source: str) -> list[Envelope]:
    """Record the end of a grant past its expiry (at its expires_at); nothing if not due."""
    return _revoked(await stores.grants.expire(grant_id), source)


async def revoke_all(
    stores: Stores, principal_id: str, reason: str, *, source: str
) -> list[Envelope]:
    """End every live grant of an identity (a leaver)."""
    events: list[Envelope] = []
    for grant in await stores.grants.live_of(principal_id):
        events += await revoke(stores, grant["grant_id"], reason, source=source)
    return events


def _revoked(grant: Row | None, source: str) -> list[Envelope]:
    """The access.revoked of a grant that ended (none when nothing ended)."""
    if grant is None:
        return []
    revoked = AccessRevoked(
        request_id=grant["request_id"],
        grant_id=grant["grant_id"],
        principal_id=grant["principal_id"],
        resource=Resource(application=grant["application"], entitlement=grant["entitlement"]),
        reason=grant["revoke_reason"][:256],
        provisioning=_provisioning(grant),
    )
    return [Emit(source, grant["request_id"])(revoked)]


# --- helpers --------------------------------------------------------------------------------


def _provisioning(grant: Row) -> tuple[Provisioning, ...]:
    """The group memberships a grant's row carries."""
    return tuple(Provisioning.model_validate(p) for p in grant["provisioning"])


async def _row(stores: Stores, request_id: str) -> Row:
    row = await stores.requests.locked(request_id)
    assert row is not None
    return row


def _stage_requested(row: Row, stage: Row, chain: list[Any]) -> AccessApprovalRequested:
    return AccessApprovalRequested(
        request_id=row["request_id"],
        principal_id=row["principal_id"],
        resource=Resource(application=row["application"], entitlement=row["entitlement"]),
        stage=stage["stage"],
        stages=len(chain),
        stage_name=stage["name"],
        approvers=tuple(stage["approvers"]),
        due_at=stage["due_at"],
        escalated=stage["escalated"],
    )


def _stage_decided(
    row: Row,
    stage: int,
    verdict: Literal["approved", "denied", "expired"],
    approver_id: str | None,
    comment: str | None,
) -> AccessApprovalDecided:
    return AccessApprovalDecided(
        request_id=row["request_id"],
        principal_id=row["principal_id"],
        stage=stage,
        outcome=verdict,
        approver_id=approver_id,
        comment=comment,
    )
