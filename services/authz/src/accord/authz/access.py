"""Access requests from decision to grant: approvals, grants, expiry and revocation.

Every function works inside the caller's transaction and returns the events to emit
through the outbox, so a state change and its events commit together or not at all. The
Kafka handler, the HTTP API, the CLI and the timers all go through here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg

from accord.authz.adapters import approvals, directory, grants, requests, store
from accord.authz.catalogue import Catalogue, entitlement_id
from accord.authz.domain import approvals as chain_rules
from accord.authz.domain.access_outcome import outcome
from accord.authz.domain.model import AccessQuery, EntityRef
from accord.authz.domain.policy_set import LoadedPolicies
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

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApprovalSettings:
    """How long a stage waits, and what an overdue one does."""

    timeout: timedelta | None = timedelta(days=3)
    on_timeout: chain_rules.OnTimeout = "escalate"


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


class RequestNotFound(LookupError):
    """No such access request."""


class NotInvolved(RequestNotFound):
    """The request is not the caller's to decide, nor theirs at all: to them, as if there
    were none (its existence and its state are not their business)."""


class NotWaiting(ValueError):
    """The request is not waiting for an approval."""

    def __init__(self, status: str) -> None:
        self.status = status
        super().__init__(f"the access request is {status}, not waiting for approval")


# --- deciding a request ---------------------------------------------------------------------


async def decide_request(
    conn: asyncpg.Connection,
    event: Envelope,
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
    request = event.data
    assert isinstance(request, AccessRequested)
    await store.lock_principal(conn, request.principal_id)
    await requests.insert(conn, request)
    if not await store.known(conn, request.principal_id):
        log.info("access request waits for its principal", extra={"request": request.request_id})
        return []
    emit = Emit(source, request.request_id, event)
    return await _decide(conn, request, emit, policies, catalogue, settings)


async def decide_waiting(
    conn: asyncpg.Connection,
    principal_id: str,
    *,
    policies: LoadedPolicies,
    catalogue: Catalogue,
    settings: ApprovalSettings,
    source: str,
) -> list[Envelope]:
    """Decide the requests that waited for this principal, now that authz knows it. The
    caller holds the principal's lock (store.lock_principal)."""
    events: list[Envelope] = []
    for request in await requests.waiting_for(conn, principal_id):
        emit = Emit(source, request.request_id)
        events += await _decide(conn, request, emit, policies, catalogue, settings)
    return events


async def _decide(
    conn: asyncpg.Connection,
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
        *await directory.principal_entities(conn, request.principal_id),
        *catalogue.resource_entities(resource.application, resource.entitlement),
    ]
    found = outcome(policies, query, entities)
    if found.errors:
        log.warning("policy evaluation errors", extra={"errors": list(found.errors)})
    status: Literal["permit", "deny", "approval_required"] = found.effect
    reasons = list(found.reasons)
    stages: list[chain_rules.Stage] = []
    if found.chain:
        stages = await resolve_stages(
            conn,
            found.chain,
            requester_id=request.requester_id,
            principal_id=request.principal_id,
            application=resource.application,
            catalogue=catalogue,
        )
        blocked = chain_rules.unapprovable(stages)
        status = "deny" if blocked else "approval_required"
        reasons = [*reasons, blocked] if blocked else reasons
    # Moving the request out of pending once keeps a redelivery from answering twice.
    if not await requests.decide(conn, request.request_id, status, reasons):
        return []
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
        events += await _grant(conn, await _row(conn, request.request_id), catalogue, emit)
    elif status == "approval_required":
        first_due = chain_rules.due(_now(), settings.timeout)
        await approvals.insert_chain(conn, request.request_id, stages, first_due)
        first = await approvals.pending_stage(conn, request.request_id)
        assert first is not None
        events.append(emit(_stage_requested(await _row(conn, request.request_id), first, stages)))
    return events


async def resolve_stages(
    conn: asyncpg.Connection,
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
        name.removeprefix("group:"): await directory.members(conn, name.removeprefix("group:"))
        for name in chain
        if name.startswith("group:")
    }
    people = chain_rules.Directory(
        requester_id=requester_id,
        principal_id=principal_id,
        manager_of=await directory.managers(conn, principal_id),
        owners=app.owners,
        escalation=app.escalation,
        group_members=groups,
    )
    return chain_rules.resolve(chain, people)


# --- approving ------------------------------------------------------------------------------


async def decide_stage(
    conn: asyncpg.Connection,
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
    stage = await approvals.pending_stage(conn, request_id)
    row = await requests.locked(conn, request_id)
    if row is None:
        raise RequestNotFound("no such access request")
    mine = approver_id in (row["requester_id"], row["principal_id"])
    if not mine and not await approvals.names(conn, request_id, approver_id):
        raise NotInvolved("no such access request among those you may decide")
    if row["status"] != "approval_required" or stage is None:
        raise NotWaiting(row["status"])
    chain_rules.check_approver(
        approver_id,
        requester_id=row["requester_id"],
        principal_id=row["principal_id"],
        approvers=stage["approvers"],
    )
    outcome: Literal["approved", "denied"] = "approved" if approve else "denied"
    await approvals.settle(
        conn, request_id, stage["stage"], outcome, by=approver_id, comment=comment
    )
    emit = Emit(source, request_id)
    events = [emit(_stage_decided(row, stage["stage"], outcome, approver_id, comment))]
    if not approve:
        await requests.conclude(conn, request_id, "denied")
        await approvals.skip_rest(conn, request_id)
        return events
    following = await approvals.open_stage(
        conn, request_id, stage["stage"] + 1, chain_rules.due(_now(), settings.timeout)
    )
    if following is not None:
        chain = await approvals.chain(conn, request_id)
        events.append(emit(_stage_requested(row, following, chain)))
        return events
    await requests.conclude(conn, request_id, "approved")
    return [*events, *await _grant(conn, row, catalogue, emit)]


async def time_out_stage(
    conn: asyncpg.Connection, stage: dict[str, Any], *, settings: ApprovalSettings, source: str
) -> list[Envelope]:
    """An overdue stage escalates once (if it has someone to go to) or expires the request."""
    row = await requests.locked(conn, stage["request_id"])
    assert row is not None
    emit = Emit(source, stage["request_id"])
    step = chain_rules.on_timeout(
        escalated=stage["escalated"], escalation=stage["escalation"], policy=settings.on_timeout
    )
    if step == "escalate":
        escalated = await approvals.escalate(
            conn, stage["request_id"], stage["stage"], chain_rules.due(_now(), settings.timeout)
        )
        if escalated is not None:
            chain = await approvals.chain(conn, stage["request_id"])
            return [emit(_stage_requested(row, escalated, chain))]
        return []
    await approvals.settle(conn, stage["request_id"], stage["stage"], "expired")
    await requests.conclude(conn, stage["request_id"], "expired")
    await approvals.skip_rest(conn, stage["request_id"])
    return [emit(_stage_decided(row, stage["stage"], "expired", None, None))]


# --- grants ---------------------------------------------------------------------------------


async def _grant(
    conn: asyncpg.Connection, row: dict[str, Any], catalogue: Catalogue, emit: Emit
) -> list[Envelope]:
    """Give the access a request asked for: a grant, time-bound if asked, and its event."""
    provisioning = catalogue.provisioning(row["application"], row["entitlement"])
    expires_at = (
        _now() + timedelta(seconds=row["duration_seconds"]) if row["duration_seconds"] else None
    )
    grant_id = f"grant-{row['request_id']}"[:128]
    # A grant of the same entitlement past its expiry has ended, though the timer may not
    # have recorded it yet: record it now, so the new grant is not taken for a second one.
    events: list[Envelope] = []
    for due in await grants.due_of(
        conn, row["principal_id"], row["application"], row["entitlement"]
    ):
        events += await expire(conn, due, source=emit.source)
    created = await grants.insert(
        conn,
        grant_id=grant_id,
        request_id=row["request_id"],
        principal_id=row["principal_id"],
        application=row["application"],
        entitlement=row["entitlement"],
        provisioning=provisioning,
        expires_at=expires_at,
    )
    if not created:
        log.info("entitlement already held; no second grant", extra={"grant_id": grant_id})
        return events
    granted = AccessGranted(
        request_id=row["request_id"],
        grant_id=grant_id,
        principal_id=row["principal_id"],
        resource=Resource(application=row["application"], entitlement=row["entitlement"]),
        expires_at=expires_at,
        provisioning=provisioning,
    )
    return [*events, emit(granted)]


async def revoke(
    conn: asyncpg.Connection, grant_id: str, reason: str, *, source: str
) -> list[Envelope]:
    """End a live grant (leaver, revoked by an operator); nothing if it is not live."""
    return _revoked(await grants.revoke(conn, grant_id, reason), source)


async def expire(conn: asyncpg.Connection, grant_id: str, *, source: str) -> list[Envelope]:
    """Record the end of a grant past its expiry (at its expires_at); nothing if not due."""
    return _revoked(await grants.expire(conn, grant_id), source)


def _revoked(grant: dict[str, Any] | None, source: str) -> list[Envelope]:
    """The access.revoked of a grant that ended (none when nothing ended)."""
    if grant is None:
        return []
    revoked = AccessRevoked(
        request_id=grant["request_id"],
        grant_id=grant["grant_id"],
        principal_id=grant["principal_id"],
        resource=Resource(application=grant["application"], entitlement=grant["entitlement"]),
        reason=grant["revoke_reason"][:256],
        provisioning=grants.provisioning_of(grant),
    )
    return [Emit(source, grant["request_id"])(revoked)]


async def revoke_all(
    conn: asyncpg.Connection, principal_id: str, reason: str, *, source: str
) -> list[Envelope]:
    """End every live grant of an identity (a leaver)."""
    events: list[Envelope] = []
    for grant in await grants.live_of(conn, principal_id):
        events += await revoke(conn, grant["grant_id"], reason, source=source)
    return events


# --- helpers --------------------------------------------------------------------------------


async def _row(conn: asyncpg.Connection, request_id: str) -> dict[str, Any]:
    row = await requests.locked(conn, request_id)
    assert row is not None
    return row


def _stage_requested(
    row: dict[str, Any], stage: dict[str, Any], chain: list[Any]
) -> AccessApprovalRequested:
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
    row: dict[str, Any],
    stage: int,
    outcome: Literal["approved", "denied", "expired"],
    approver_id: str | None,
    comment: str | None,
) -> AccessApprovalDecided:
    return AccessApprovalDecided(
        request_id=row["request_id"],
        principal_id=row["principal_id"],
        stage=stage,
        outcome=outcome,
        approver_id=approver_id,
        comment=comment,
    )


def _now() -> datetime:
    return datetime.now(UTC)
