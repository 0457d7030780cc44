"""Approvals a lifecycle workflow asks for (issue 22): who may decide, and when not. Pure.

A workflow's approval task names its approvers as the access approval chain does: the
identity's ``manager`` (from authz's directory), ``group:<id>`` (every member, nested
groups included) or ``user:<id>``. Authz resolves them once, when the request comes, and
any one of the people they resolve to decides. The identity the approval is about never
approves it, whoever names it; an ask that resolves to nobody else is rejected at once by
authz (decided by :data:`SYSTEM_DECIDER`, with :data:`NO_APPROVER` as the reason), so the
run learns it now rather than at its timeout.

Timeouts are the run's (its own wake-up fires): authz never expires a workflow approval,
it only refuses a decision at or after ``expires_at``, when the run no longer waits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from accord.authz.domain.approvals import NotAnApprover

__all__ = [
    "NO_APPROVER",
    "SYSTEM_DECIDER",
    "ApprovalNotFound",
    "NotAnApprover",
    "NotInvolved",
    "NotPending",
    "TooLate",
    "check_decider",
    "check_open",
    "resolve",
]

#: Who decided an approval authz rejected itself.
SYSTEM_DECIDER = "authz"
#: Why: its approvers resolved to nobody but, perhaps, the identity itself.
NO_APPROVER = "no approver: the approvers named resolve to nobody other than the identity"


class ApprovalNotFound(LookupError):
    """No such workflow approval."""


class NotInvolved(ApprovalNotFound):
    """The approval is neither the caller's to decide nor about them: to them, as if there
    were none."""


class NotPending(ValueError):
    """The approval was decided already."""

    def __init__(self, status: str) -> None:
        self.status = status
        super().__init__(f"the workflow approval is {status}, not pending")


class TooLate(ValueError):
    """The run stopped waiting for the approval (its timeout passed)."""

    def __init__(self) -> None:
        super().__init__("the workflow approval expired: the run no longer waits for it")


def resolve(
    asked: Iterable[str],
    *,
    subject: str,
    manager: str | None,
    group_members: Mapping[str, Sequence[str]],
) -> tuple[str, ...]:
    """The people who may decide, in the order named, each once, never the subject."""
    people: list[str] = []
    for ref in asked:
        if ref == "manager":
            people += [manager] if manager else []
        elif ref.startswith("group:"):
            people += group_members.get(ref.removeprefix("group:"), ())
        elif ref.startswith("user:"):
            people.append(ref.removeprefix("user:"))
    return tuple(dict.fromkeys(p for p in people if p and p != subject))


def check_open(status: str, expires_at: datetime, now: datetime) -> None:
    """Raise NotPending or TooLate unless a decision may still be taken."""
    if status != "pending":
        raise NotPending(status)
    if now >= expires_at:
        raise TooLate


def check_decider(decider: str, *, subject: str, approvers: Sequence[str], admin: bool) -> None:
    """Raise NotAnApprover unless `decider` may decide: one of the approvers, or an admin;
    never the identity the approval is about, admin or not."""
    if decider == subject:
        raise NotAnApprover("nobody approves an approval about themselves")
    if not admin and decider not in approvers:
        raise NotAnApprover("you are not an approver of this workflow approval")
