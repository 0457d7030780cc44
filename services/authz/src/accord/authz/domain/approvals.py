"""Approval chains: which stages a request needs, who may decide each, what happens next.

Pure. A permit policy that requires approval says so with an annotation naming the chain's
stages, in order::

    @id("high-risk-needs-manager-and-owner")
    @approval("manager, application_owner")
    permit (principal is User, action == Action::"request", resource is Entitlement)
    when { resource has risk && resource.risk == "high" };

A request is granted at once when a permitting policy asks for no approval; otherwise it
needs the longest chain any permitting policy names. A separation-of-duties forbid policy
(`@sod`) that also carries `@approval` routes a toxic request to approval instead of
denying it: its stages come first, then the chain the request would otherwise need. Stages:

- ``manager``: the principal's manager; escalates to the manager's manager.
- ``application_owner``: the application's owners (catalogue); escalates to its
  escalation approvers.
- ``group:<group_id>``: any member of the group; escalates to the catalogue's escalation
  approvers of the application.
- ``user:<user_id>``: that user; same escalation.

Nobody approves their own request: the requester and the principal are never approvers.
A stage nobody else can decide denies the request with that reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

APPROVAL_ANNOTATION = "approval"
SOD_ANNOTATION = "sod"
_STAGE = re.compile(
    r"^(manager|application_owner|group:[A-Za-z0-9][A-Za-z0-9._:@+-]*"
    r"|user:[A-Za-z0-9][A-Za-z0-9._:@+-]*)$"
)
MAX_STAGES = 16

OnTimeout = Literal["escalate", "expire"]


class ChainError(ValueError):
    """An @approval annotation that names no valid chain."""


def parse_chain(annotation: str) -> tuple[str, ...]:
    """The stages an @approval annotation names, in order."""
    stages = tuple(part.strip() for part in annotation.split(",") if part.strip())
    if not stages:
        raise ChainError("@approval names no stage")
    if len(stages) > MAX_STAGES:
        raise ChainError(f"@approval names {len(stages)} stages; at most {MAX_STAGES}")
    for stage in stages:
        if not _STAGE.match(stage):
            raise ChainError(
                f"@approval stage {stage!r} is not manager, application_owner, group:<id>"
                " or user:<id>"
            )
    return stages


def chain_for(
    permitting: Iterable[str], annotations: Mapping[str, Mapping[str, str]]
) -> tuple[str, ...]:
    """The chain a permitted request needs (empty: none) from its permitting policies.

    A permitting policy without @approval grants at once; otherwise the longest chain wins.
    """
    chains = []
    for policy_id in permitting:
        annotation = annotations.get(policy_id, {}).get(APPROVAL_ANNOTATION)
        if annotation is None:
            return ()
        chains.append(parse_chain(annotation))
    return max(chains, key=len, default=())


def routed_chain(
    sod_policies: Iterable[str],
    permitting: Iterable[str],
    annotations: Mapping[str, Mapping[str, str]],
) -> tuple[str, ...]:
    """The chain of a toxic request routed to approval: the SoD policies' stages first,
    then what the permitting policies ask for; each stage once."""
    stages = [
        stage
        for policy_id in sorted(sod_policies)
        for stage in parse_chain(annotations[policy_id][APPROVAL_ANNOTATION])
    ]
    stages += chain_for(permitting, annotations)
    chain = tuple(dict.fromkeys(stages))
    if len(chain) > MAX_STAGES:
        raise ChainError(f"the routed chain has {len(chain)} stages; at most {MAX_STAGES}")
    return chain


@dataclass(frozen=True)
class Directory:
    """What approver resolution needs to know about the people around a request."""

    requester_id: str
    principal_id: str
    manager_of: Mapping[str, str | None]
    """user_id -> manager's user_id, for the principal and their manager."""
    owners: Sequence[str] = ()
    """The application's owners."""
    escalation: Sequence[str] = ()
    """The application's escalation approvers."""
    group_members: Mapping[str, Sequence[str]] | None = None
    """group_id -> members (users), for the groups the chain names."""


@dataclass(frozen=True)
class Stage:
    """One stage of a request's chain, resolved to people."""

    number: int
    name: str
    approvers: tuple[str, ...]
    escalation: tuple[str, ...]


def resolve(chain: Sequence[str], directory: Directory) -> list[Stage]:
    """Who approves each stage, and who it escalates to; never the requester or principal."""
    manager = directory.manager_of.get(directory.principal_id)
    grand_manager = directory.manager_of.get(manager) if manager else None
    stages = []
    for number, name in enumerate(chain, start=1):
        if name == "manager":
            approvers: Sequence[str] = [manager] if manager else []
            escalation: Sequence[str] = [grand_manager] if grand_manager else []
        elif name == "application_owner":
            approvers, escalation = directory.owners, directory.escalation
        elif name.startswith("group:"):
            members = (directory.group_members or {}).get(name.removeprefix("group:"), ())
            approvers, escalation = members, directory.escalation
        else:
            approvers, escalation = [name.removeprefix("user:")], directory.escalation
        stages.append(
            Stage(number, name, _others(approvers, directory), _others(escalation, directory))
        )
    return stages


def unapprovable(stages: Sequence[Stage]) -> str | None:
    """Why the chain cannot be completed (a stage nobody else may decide), if so."""
    for stage in stages:
        if not stage.approvers:
            return (
                f"approval stage {stage.number} ({stage.name}) has no approver"
                " other than the requester or the principal"
            )
    return None


def _others(people: Iterable[str], directory: Directory) -> tuple[str, ...]:
    excluded = {directory.requester_id, directory.principal_id}
    return tuple(dict.fromkeys(p for p in people if p and p not in excluded))


# --- deciding a stage -----------------------------------------------------------------------


class NotAnApprover(PermissionError):
    """The caller may not decide this stage."""


def check_approver(
    approver_id: str,
    *,
    requester_id: str,
    principal_id: str,
    approvers: Sequence[str],
) -> None:
    """Raise NotAnApprover unless approver_id may decide the stage."""
    if approver_id in (requester_id, principal_id):
        raise NotAnApprover("nobody approves their own request")
    if approver_id not in approvers:
        raise NotAnApprover("you are not an approver of this request's current stage")


TimeoutStep = Literal["escalate", "expire"]


def on_timeout(*, escalated: bool, escalation: Sequence[str], policy: OnTimeout) -> TimeoutStep:
    """What a stage past its deadline does: escalate once (when it can and should), else expire."""
    if policy == "escalate" and not escalated and escalation:
        return "escalate"
    return "expire"


def due(now: datetime, timeout: timedelta | None) -> datetime | None:
    """A stage's deadline (none: it waits for ever)."""
    return now + timeout if timeout else None


# --- what the access flow settles on --------------------------------------------------------


@dataclass(frozen=True)
class ApprovalSettings:
    """How long a stage waits, and what an overdue one does."""

    timeout: timedelta | None = timedelta(days=3)
    on_timeout: OnTimeout = "escalate"


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


RequestStatus = Literal["permit", "deny", "approval_required"]


def settle(
    effect: RequestStatus, reasons: Sequence[str], stages: Sequence[Stage], chained: bool
) -> tuple[RequestStatus, list[str]]:
    """A request's decision once its chain (if the policies asked for one) is resolved: a
    chain with a stage nobody else may decide denies it, with that reason."""
    if not chained:
        return effect, list(reasons)
    blocked = unapprovable(stages)
    if blocked:
        return "deny", [*reasons, blocked]
    return "approval_required", list(reasons)
