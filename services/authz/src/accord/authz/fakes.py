"""In-memory implementations of authz's ports (accord.authz.ports), for unit tests.

One `Memory` holds every table, as the database does, so a read sees what another store
wrote (the directory's principal entities see grants, lockouts and factors). The
contract tests (tests/integration/test_authz_port_contracts.py) run the same cases over
these and the PostgreSQL adapters. `Memory.now` stands in for the database's now().
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from accord.authz.catalogue import entitlement_id
from accord.authz.domain.approvals import ApprovalSettings, Stage
from accord.authz.domain.model import Entity, EntityRef
from accord.authz.domain.principals import PrincipalFacts
from accord.authz.ports import (
    AuthzPorts,
    Clock,
    NewGrant,
    NewWorkflowApproval,
    Row,
    Rules,
    Stores,
    access_request,
    utc_now,
)
from accord.events import AccessRequested


@dataclass
class Memory:
    """Every table of authz, in memory."""

    principals: dict[str, Row] = field(default_factory=dict)
    groups: dict[str, Row] = field(default_factory=dict)
    members: set[tuple[str, str]] = field(default_factory=set)
    """(group_id, member_id)"""
    lockouts: dict[tuple[str, str], bool] = field(default_factory=dict)
    """(user_id, lockout_id) -> ended"""
    factors: dict[tuple[str, str], tuple[str, bool]] = field(default_factory=dict)
    """(user_id, credential_id) -> (factor, removed)"""
    requests: dict[str, Row] = field(default_factory=dict)
    stages: dict[tuple[str, int], Row] = field(default_factory=dict)
    grants: dict[str, Row] = field(default_factory=dict)
    workflow_approvals: dict[str, Row] = field(default_factory=dict)
    locks: list[str] = field(default_factory=list)
    """Principals locked, in order (the PostgreSQL adapter takes an advisory lock)."""
    clock: Clock = utc_now

    def now(self) -> datetime:
        return self.clock()

    def stores(self) -> Stores:
        """Every store over this memory."""
        return Stores(
            principals=MemoryPrincipals(self),
            groups=MemoryGroups(self),
            directory=MemoryDirectory(self),
            authn=MemoryAuthnFacts(self),
            requests=MemoryRequests(self),
            approvals=MemoryApprovals(self),
            grants=MemoryGrants(self),
            workflow_approvals=MemoryWorkflowApprovals(self),
            clock=self.clock,
        )

    def ports(
        self, rules: Rules, settings: ApprovalSettings | None = None, source: str = "urn:test"
    ) -> AuthzPorts:
        """A handler's ports over this memory."""
        return AuthzPorts(
            stores=self.stores(),
            source=source,
            rules=rules,
            settings=settings or ApprovalSettings(),
        )

    def live(self, grant: Row) -> bool:
        expires_at = grant["expires_at"]
        return grant["revoked_at"] is None and (expires_at is None or expires_at > self.now())

    def due(self, grant: Row) -> bool:
        expires_at = grant["expires_at"]
        return grant["revoked_at"] is None and expires_at is not None and expires_at <= self.now()


@dataclass(frozen=True)
class MemoryPrincipals:
    """accord.authz.ports.Principals in memory."""

    memory: Memory

    async def upsert(self, user_id: str, facts: PrincipalFacts) -> None:
        stored = self.memory.principals.get(user_id)
        if stored is None:
            self.memory.principals[user_id] = {
                "user_id": user_id,
                "department": facts.department,
                "active": facts.active,
                "deleted": facts.deleted,
                "sequence": facts.sequence,
                "manager_id": facts.manager_id,
                "user_name": facts.user_name,
            }
            return
        if stored["sequence"] >= facts.sequence:
            return
        kept = facts.keep
        for name in ("department", "manager_id", "user_name", "active"):
            if name not in kept:
                stored[name] = getattr(facts, name)
        stored.update(deleted=facts.deleted, sequence=facts.sequence)

    async def lock(self, user_id: str) -> None:
        self.memory.locks.append(user_id)

    async def known(self, user_id: str) -> bool:
        return user_id in self.memory.principals


@dataclass(frozen=True)
class MemoryGroups:
    """accord.authz.ports.Groups in memory."""

    memory: Memory

    async def upsert(self, group_id: str, display_name: str, *, sequence: int) -> None:
        stored = self.memory.groups.get(group_id)
        if stored is None:
            self.memory.groups[group_id] = {
                "group_id": group_id,
                "display_name": display_name,
                "deleted": False,
                "sequence": sequence,
            }
        elif stored["sequence"] < sequence:
            stored.update(display_name=display_name, deleted=False, sequence=sequence)

    async def delete(self, group_id: str, *, sequence: int) -> None:
        stored = self.memory.groups.get(group_id)
        if stored is not None and stored["sequence"] < sequence:
            stored.update(deleted=True, sequence=sequence)
        self.memory.members = {(g, m) for g, m in self.memory.members if group_id not in (g, m)}

    async def change_members(
        self, group_id: str, added: Sequence[str], removed: Sequence[str]
    ) -> None:
        self.memory.members |= {(group_id, member) for member in added}
        self.memory.members -= {(group_id, member) for member in removed}


@dataclass(frozen=True)
class MemoryDirectory:
    """accord.authz.ports.Directory in memory."""

    memory: Memory

    async def principal_entities(self, user_id: str) -> list[Entity]:
        memory = self.memory
        attrs: dict[str, Any] = {}
        row = memory.principals.get(user_id)
        if row is not None:
            attrs["active"] = row["active"] and not row["deleted"]
            if row["department"]:
                attrs["department"] = row["department"]
        attrs.update(authn_attrs(memory, user_id))
        held = [g for g in memory.grants.values() if g["principal_id"] == user_id]
        entitlements = {
            EntityRef("Entitlement", entitlement_id(g["application"], g["entitlement"]))
            for g in held
            if memory.live(g)
        }
        if entitlements:
            attrs["entitlements"] = entitlements
        principal = Entity(EntityRef("User", user_id), attrs, self._parents(user_id))
        return [
            principal,
            *(Entity(EntityRef("Group", g), {}, self._parents(g)) for g in self._up(user_id)),
        ]

    def _parents(self, member_id: str) -> tuple[EntityRef, ...]:
        return tuple(
            EntityRef("Group", g)
            for g in sorted(g for g, m in self.memory.members if m == member_id)
        )

    def _up(self, member_id: str) -> list[str]:
        """Every group the member is in, directly or through nesting."""
        return sorted(_reach(member_id, {(m, g) for g, m in self.memory.members}))

    async def managers(self, user_id: str) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        current: str | None = user_id
        for _ in range(2):
            if current is None:
                break
            row = self.memory.principals.get(current)
            manager = row["manager_id"] if row is not None else None
            found[current] = manager
            current = manager
        return found

    async def members(self, group_id: str) -> list[str]:
        return sorted(_reach(group_id, self.memory.members) - set(self.memory.groups))


def _reach(start: str, edges: set[tuple[str, str]]) -> set[str]:
    """Every node reachable from start along the (from, to) edges."""
    found: set[str] = set()
    frontier = {start}
    while frontier:
        frontier = {b for a, b in edges if a in frontier} - found
        found |= frontier
    return found


def authn_attrs(memory: Memory, user_id: str) -> dict[str, Any]:
    """`locked` (once the user has had a lockout) and `factors` (when it has one)."""
    attrs: dict[str, Any] = {}
    ended = [e for (user, _), e in memory.lockouts.items() if user == user_id]
    if ended:
        attrs["locked"] = not all(ended)
    kinds = {
        factor
        for (user, _), (factor, removed) in memory.factors.items()
        if user == user_id and not removed
    }
    if kinds:
        attrs["factors"] = kinds
    return attrs


@dataclass(frozen=True)
class MemoryAuthnFacts:
    """accord.authz.ports.AuthnFacts in memory."""

    memory: Memory

    async def lockout_started(self, user_id: str, lockout_id: str) -> None:
        self.memory.lockouts.setdefault((user_id, lockout_id), False)

    async def lockout_ended(self, user_id: str, lockout_id: str) -> None:
        self.memory.lockouts[(user_id, lockout_id)] = True

    async def factor_enrolled(self, user_id: str, credential_id: str, factor: str) -> None:
        self.memory.factors.setdefault((user_id, credential_id), (factor, False))

    async def factor_removed(self, user_id: str, credential_id: str, factor: str) -> None:
        kept, _ = self.memory.factors.get((user_id, credential_id), (factor, True))
        self.memory.factors[(user_id, credential_id)] = (kept, True)


@dataclass(frozen=True)
class MemoryRequests:
    """accord.authz.ports.Requests in memory."""

    memory: Memory

    async def insert(self, request: AccessRequested) -> bool:
        if request.request_id in self.memory.requests:
            return False
        self.memory.requests[request.request_id] = {
            "request_id": request.request_id,
            "requester_id": request.requester_id,
            "principal_id": request.principal_id,
            "application": request.resource.application,
            "entitlement": request.resource.entitlement,
            "justification": request.justification,
            "duration_seconds": request.duration_seconds,
            "status": "pending",
            "reasons": [],
            "created_at": self.memory.now(),
            "decided_at": None,
        }
        return True

    async def waiting_for(self, principal_id: str) -> list[AccessRequested]:
        rows = sorted(
            (
                r
                for r in self.memory.requests.values()
                if r["principal_id"] == principal_id and r["status"] == "pending"
            ),
            key=lambda r: (r["created_at"], r["request_id"]),
        )
        return [access_request(r) for r in rows]

    async def decide(self, request_id: str, status: str, reasons: list[str]) -> bool:
        row = self.memory.requests.get(request_id)
        if row is None or row["status"] != "pending":
            return False
        row.update(status=status, reasons=list(reasons), decided_at=self.memory.now())
        return True

    async def locked(self, request_id: str) -> Row | None:
        row = self.memory.requests.get(request_id)
        return dict(row) if row is not None else None

    async def conclude(self, request_id: str, status: str) -> bool:
        row = self.memory.requests.get(request_id)
        if row is None or row["status"] != "approval_required":
            return False
        row.update(status=status, decided_at=self.memory.now())
        return True


@dataclass(frozen=True)
class MemoryApprovals:
    """accord.authz.ports.Approvals in memory."""

    memory: Memory

    def _of(self, request_id: str, status: str | None = None) -> list[Row]:
        return sorted(
            (
                s
                for (r, _), s in self.memory.stages.items()
                if r == request_id and (status is None or s["status"] == status)
            ),
            key=lambda s: int(s["stage"]),
        )

    async def insert_chain(
        self, request_id: str, stages: Sequence[Stage], first_due: datetime | None
    ) -> None:
        for s in stages:
            self.memory.stages.setdefault(
                (request_id, s.number),
                {
                    "request_id": request_id,
                    "stage": s.number,
                    "name": s.name,
                    "approvers": list(s.approvers),
                    "escalation": list(s.escalation),
                    "status": "pending" if s.number == 1 else "waiting",
                    "escalated": False,
                    "due_at": first_due if s.number == 1 else None,
                    "decided_by": None,
                    "comment": None,
                    "decided_at": None,
                },
            )

    async def pending_stage(self, request_id: str) -> Row | None:
        pending = self._of(request_id, "pending")
        return dict(pending[0]) if pending else None

    async def settle(
        self,
        request_id: str,
        stage: int,
        status: str,
        *,
        by: str | None = None,
        comment: str | None = None,
    ) -> None:
        row = self.memory.stages.get((request_id, stage))
        if row is not None and row["status"] == "pending":
            row.update(status=status, decided_by=by, comment=comment, decided_at=self.memory.now())

    async def names(self, request_id: str, user_id: str) -> bool:
        return any(
            user_id in s["approvers"] or user_id in s["escalation"] or s["decided_by"] == user_id
            for s in self._of(request_id)
        )

    async def skip_rest(self, request_id: str) -> None:
        for row in self._of(request_id, "waiting"):
            row["status"] = "skipped"

    async def open_stage(self, request_id: str, stage: int, due_at: datetime | None) -> Row | None:
        row = self.memory.stages.get((request_id, stage))
        if row is None or row["status"] != "waiting":
            return None
        row.update(status="pending", due_at=due_at)
        return dict(row)

    async def escalate(self, request_id: str, stage: int, due_at: datetime | None) -> Row | None:
        row = self.memory.stages.get((request_id, stage))
        if row is None or row["status"] != "pending":
            return None
        row.update(approvers=list(row["escalation"]), escalated=True, due_at=due_at)
        return dict(row)

    async def overdue(self, *, limit: int) -> list[Row]:
        now = self.memory.now()
        due = [
            s
            for s in self.memory.stages.values()
            if s["status"] == "pending" and s["due_at"] is not None and s["due_at"] <= now
        ]
        return [dict(s) for s in sorted(due, key=lambda s: s["due_at"])[:limit]]

    async def chain(self, request_id: str) -> list[Row]:
        return [dict(s) for s in self._of(request_id)]


@dataclass(frozen=True)
class MemoryGrants:
    """accord.authz.ports.Grants in memory."""

    memory: Memory

    async def insert(self, grant: NewGrant) -> bool:
        place = (grant.principal_id, grant.application, grant.entitlement)
        for g in self.memory.grants.values():
            if g["grant_id"] == grant.grant_id or g["request_id"] == grant.request_id:
                return False
            held = (g["principal_id"], g["application"], g["entitlement"]) == place
            if held and g["revoked_at"] is None:
                return False
        provisioning = [p.model_dump() for p in grant.provisioning]
        self.memory.grants[grant.grant_id] = {
            "grant_id": grant.grant_id,
            "request_id": grant.request_id,
            "principal_id": grant.principal_id,
            "application": grant.application,
            "entitlement": grant.entitlement,
            "provisioning": json.loads(json.dumps(provisioning)),
            "granted_at": self.memory.now(),
            "expires_at": grant.expires_at,
            "revoked_at": None,
            "revoke_reason": None,
        }
        return True

    async def revoke(self, grant_id: str, reason: str) -> Row | None:
        grant = self.memory.grants.get(grant_id)
        if grant is None or not self.memory.live(grant):
            return None
        grant.update(revoked_at=max(self.memory.now(), grant["granted_at"]), revoke_reason=reason)
        return dict(grant)

    async def expire(self, grant_id: str) -> Row | None:
        grant = self.memory.grants.get(grant_id)
        if grant is None or not self.memory.due(grant):
            return None
        grant.update(
            revoked_at=max(grant["expires_at"], grant["granted_at"]), revoke_reason="expired"
        )
        return dict(grant)

    async def due_of(self, principal_id: str, application: str, entitlement: str) -> list[str]:
        return sorted(
            g["grant_id"]
            for g in self.memory.grants.values()
            if (g["principal_id"], g["application"], g["entitlement"])
            == (principal_id, application, entitlement)
            and self.memory.due(g)
        )

    async def live_of(self, principal_id: str) -> list[Row]:
        live = [
            g
            for g in self.memory.grants.values()
            if g["principal_id"] == principal_id and self.memory.live(g)
        ]
        return [dict(g) for g in sorted(live, key=lambda g: g["granted_at"])]

    async def held(self, principal_id: str, application: str, entitlement: str) -> Row | None:
        for g in self.memory.grants.values():
            place = (g["principal_id"], g["application"], g["entitlement"])
            if place == (principal_id, application, entitlement) and self.memory.live(g):
                return dict(g)
        return None

    async def expired(self, *, limit: int) -> list[str]:
        due = [g for g in self.memory.grants.values() if self.memory.due(g)]
        return [g["grant_id"] for g in sorted(due, key=lambda g: g["expires_at"])[:limit]]


@dataclass(frozen=True)
class MemoryWorkflowApprovals:
    """accord.authz.ports.WorkflowApprovals in memory."""

    memory: Memory

    async def insert(self, approval: NewWorkflowApproval) -> bool:
        if approval.approval_id in self.memory.workflow_approvals:
            return False
        self.memory.workflow_approvals[approval.approval_id] = {
            "approval_id": approval.approval_id,
            "user_id": approval.user_id,
            "workflow_id": approval.workflow_id,
            "run_id": approval.run_id,
            "task_id": approval.task_id,
            "asked": list(approval.asked),
            "approvers": list(approval.approvers),
            "reason": approval.reason,
            "escalation": approval.escalation,
            "expires_at": approval.expires_at,
            "correlation_id": approval.correlation_id,
            "status": "pending",
            "decided_by": None,
            "comment": None,
            "decided_at": None,
            "created_at": self.memory.now(),
        }
        return True

    async def locked(self, approval_id: str) -> Row | None:
        row = self.memory.workflow_approvals.get(approval_id)
        return dict(row) if row else None

    async def decide(
        self, approval_id: str, status: str, *, by: str, comment: str | None = None
    ) -> Row | None:
        row = self.memory.workflow_approvals.get(approval_id)
        if row is None or row["status"] != "pending":
            return None
        row.update(status=status, decided_by=by, comment=comment, decided_at=self.memory.now())
        return dict(row)
