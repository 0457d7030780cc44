"""What authz's handlers and timers need from the world, as Protocols.

The PostgreSQL adapters (accord.authz.adapters) implement them inside the handler's
transaction; accord.authz.fakes implements them in memory for unit tests, and the contract
tests run the same cases over both so the two cannot drift apart.

Rows are the adapters' dicts (the tables' columns by name): a request row has
request_id, requester_id, principal_id, application, entitlement, justification,
duration_seconds, status, reasons, created_at, decided_at; a stage row request_id, stage,
name, approvers, escalation, status, escalated, due_at, decided_by, comment, decided_at; a
grant row grant_id, request_id, principal_id, application, entitlement, provisioning (the
JSON list), granted_at, expires_at, revoked_at, revoke_reason. A workflow approval row has
approval_id, user_id, workflow_id, run_id, task_id, asked, approvers, reason, escalation,
expires_at, correlation_id, status, decided_by, comment, decided_at, created_at.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from accord.authz.catalogue import Catalogue
from accord.authz.domain.approvals import ApprovalSettings, Stage
from accord.authz.domain.model import Entity
from accord.authz.domain.policy_set import LoadedPolicies
from accord.authz.domain.principals import PrincipalFacts
from accord.events import AccessRequested, Resource
from accord.events.catalogue import Provisioning

#: The policies and catalogue in force now (they may be reloaded between two events).
Rules = Callable[[], tuple[LoadedPolicies, Catalogue]]
#: One row of a table, by column name.
Row = dict[str, Any]
#: What time it is (deadlines and expiries the flow computes).
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


def access_request(row: Mapping[str, Any]) -> AccessRequested:
    """The access request a request row records."""
    return AccessRequested(
        request_id=row["request_id"],
        requester_id=row["requester_id"],
        principal_id=row["principal_id"],
        resource=Resource(application=row["application"], entitlement=row["entitlement"]),
        justification=row["justification"],
        duration_seconds=row["duration_seconds"],
    )


@dataclass(frozen=True)
class NewGrant:
    """A grant to record: an entitlement given to a principal by a request."""

    grant_id: str
    request_id: str
    principal_id: str
    application: str
    entitlement: str
    provisioning: Sequence[Provisioning]
    expires_at: datetime | None


class Principals(Protocol):
    """The principal projection (identity events)."""

    async def upsert(self, user_id: str, facts: PrincipalFacts) -> None:
        """Project an identity event; an older sequence than the stored one changes nothing."""

    async def lock(self, user_id: str) -> None:
        """Serialise an identity event and an access request of one principal."""

    async def known(self, user_id: str) -> bool:
        """Whether any identity event of the principal has been projected."""


class Groups(Protocol):
    """The group projection (group events); nested groups are members that are groups."""

    async def upsert(self, group_id: str, display_name: str, *, sequence: int) -> None:
        """group.created / group.updated (newer sequences only)."""

    async def delete(self, group_id: str, *, sequence: int) -> None:
        """group.deleted: the group and its memberships go."""

    async def change_members(
        self, group_id: str, added: Sequence[str], removed: Sequence[str]
    ) -> None:
        """group.members_changed (idempotent)."""


class Directory(Protocol):
    """What policies and approval chains read of the projections."""

    async def principal_entities(self, user_id: str) -> list[Entity]:
        """The principal as Cedar sees it, then every group it is in (with their parents)."""

    async def managers(self, user_id: str) -> dict[str, str | None]:
        """user_id -> manager for the user and their manager."""

    async def members(self, group_id: str) -> list[str]:
        """The users in a group, nested groups included, sorted."""


class AuthnFacts(Protocol):
    """The projection of authn's lockouts and enrolled factors; an end always wins over its
    start, whatever the order they arrive in."""

    async def lockout_started(self, user_id: str, lockout_id: str) -> None: ...

    async def lockout_ended(self, user_id: str, lockout_id: str) -> None: ...

    async def factor_enrolled(self, user_id: str, credential_id: str, factor: str) -> None: ...

    async def factor_removed(self, user_id: str, credential_id: str, factor: str) -> None: ...


class Requests(Protocol):
    """Access requests."""

    async def insert(self, request: AccessRequested) -> bool:
        """Record a new request; False if its id is already known."""

    async def waiting_for(self, principal_id: str) -> list[AccessRequested]:
        """The principal's requests not decided yet, oldest first."""

    async def decide(self, request_id: str, status: str, reasons: list[str]) -> bool:
        """Decide a pending request; False if it was decided already."""

    async def locked(self, request_id: str) -> Row | None:
        """One request, locked for this transaction."""

    async def conclude(self, request_id: str, status: str) -> bool:
        """End a request waiting for approvals: approved, denied or expired."""


class Approvals(Protocol):
    """Each request's approval chain, one row per stage."""

    async def insert_chain(
        self, request_id: str, stages: Sequence[Stage], first_due: datetime | None
    ) -> None:
        """Record the chain: the first stage pending, the others waiting."""

    async def pending_stage(self, request_id: str) -> Row | None:
        """The stage waiting for a decision, locked."""

    async def settle(
        self,
        request_id: str,
        stage: int,
        status: str,
        *,
        by: str | None = None,
        comment: str | None = None,
    ) -> None:
        """Close a pending stage as approved, denied or expired."""

    async def names(self, request_id: str, user_id: str) -> bool:
        """Whether the chain names the user (approver, escalation, or who decided)."""

    async def skip_rest(self, request_id: str) -> None:
        """Skip the stages a request never reached."""

    async def open_stage(self, request_id: str, stage: int, due_at: datetime | None) -> Row | None:
        """Make a waiting stage pending; None when there is no such waiting stage."""

    async def escalate(self, request_id: str, stage: int, due_at: datetime | None) -> Row | None:
        """Hand a pending stage to its escalation approvers."""

    async def overdue(self, *, limit: int) -> list[Row]:
        """Pending stages past their deadline, locked (others skip them)."""

    async def chain(self, request_id: str) -> list[Row]:
        """Every stage of a request, in order."""


@dataclass(frozen=True)
class NewWorkflowApproval:
    """An approval a workflow run asks for, its approvers resolved."""

    approval_id: str
    user_id: str
    workflow_id: str
    run_id: str
    task_id: str
    asked: tuple[str, ...]
    """The approvers as the workflow named them (manager, group:<id>, user:<id>)."""
    approvers: tuple[str, ...]
    """Who they resolved to: the people who may decide."""
    reason: str | None
    escalation: bool
    expires_at: datetime
    correlation_id: str
    """The asking run's flow, which the decision continues."""


class WorkflowApprovals(Protocol):
    """Approvals lifecycle workflows ask for, one row per ask."""

    async def insert(self, approval: NewWorkflowApproval) -> bool:
        """Record a pending approval; False when its id is known already (a redelivery)."""

    async def locked(self, approval_id: str) -> Row | None:
        """One approval, locked for this transaction."""

    async def decide(
        self,
        approval_id: str,
        status: str,
        *,
        by: str,
        comment: str | None = None,
    ) -> Row | None:
        """Close a pending approval as approved or rejected, now; the row as it is then, or
        None when it was not pending."""


class Grants(Protocol):
    """Who holds which entitlement, from when until when."""

    async def insert(self, grant: NewGrant) -> bool:
        """Record a grant; False when it exists or the entitlement is held already."""

    async def revoke(self, grant_id: str, reason: str) -> Row | None:
        """End a live grant now; None when it was not live."""

    async def expire(self, grant_id: str) -> Row | None:
        """Record that a grant past its expiry ended at its expires_at; None if not due."""

    async def due_of(self, principal_id: str, application: str, entitlement: str) -> list[str]:
        """The principal's grants of an entitlement past expiry, end not recorded, locked."""

    async def live_of(self, principal_id: str) -> list[Row]:
        """The principal's live grants, oldest first."""

    async def held(self, principal_id: str, application: str, entitlement: str) -> Row | None:
        """The principal's live grant of an entitlement, locked against its end; None when
        it holds none."""

    async def expired(self, *, limit: int) -> list[str]:
        """Grants past their expiry whose end is not recorded, locked (others skip them)."""


@dataclass(frozen=True)
class Stores:
    """Every store, bound to one transaction."""

    principals: Principals
    groups: Groups
    directory: Directory
    authn: AuthnFacts
    requests: Requests
    approvals: Approvals
    grants: Grants
    workflow_approvals: WorkflowApprovals
    clock: Clock = utc_now
    """Now, for the deadlines and expiries the flow computes (the fakes' clock in tests)."""


@dataclass(frozen=True)
class AuthzPorts:
    """What a handler works with: the stores in its transaction, where its events come
    from, the rules in force and how approvals wait."""

    stores: Stores
    source: str
    rules: Rules
    settings: ApprovalSettings
