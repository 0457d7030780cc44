"""A request_entitlement task's access request, and authz's answers to it (pure).

The request id is the command's idempotency key, ``run_id:task_id:attempt``: what authz
answers about the request (access.decided, access.approval_decided, access.granted all
carry it) names the run, the task and the attempt it belongs to, so the engine needs no
table of requests. A repetition of the command (an effect executed twice after a crash)
is the same request to authz, and a retry is a new one.

authz answers in steps (services/authz ``handlers/access.py``): access.decided says
permit, deny or approval_required; a permit or an approved chain ends in access.granted;
each stage of a chain ends in access.approval_decided (approved, denied or expired). Only
three of them end the task's wait: the grant, a deny, a denied or expired stage. A permit
or an approved stage decides nothing yet: the grant follows (on another topic, so it may
even come first). A request for an entitlement the identity holds already is answered
with the grant it holds (access.granted with ``reaffirmed``): the task has its access, so
that completes it too, with the held grant's id and expiry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from accord.events import AccessApprovalDecided, AccessDecided, AccessGranted
from accord.orchestrator.workflows import runs

__all__ = ["Answer", "RequestOf", "decision", "request_id", "request_of"]

#: What authz says about an access request.
Answer = AccessGranted | AccessDecided | AccessApprovalDecided

_REQUEST = re.compile(r"^(?P<run>[^:]+):(?P<task>[a-z][a-z0-9_]*):(?P<attempt>[1-9][0-9]{0,5})$")


@dataclass(frozen=True)
class RequestOf:
    """The run, task and attempt an access request was made for."""

    run_id: str
    task_id: str
    attempt: int


def request_id(command: runs.RequestEntitlement) -> str:
    """The access request id of a command: its idempotency key (module docstring)."""
    return command.idempotency_key


def request_of(value: str) -> RequestOf | None:
    """The task a request id names, or None for a request no workflow task made."""
    found = _REQUEST.match(value)
    if found is None:
        return None
    return RequestOf(found["run"], found["task"], int(found["attempt"]))


def decision(answer: Answer, asked: RequestOf) -> runs.AccessDecision | None:
    """The task's decision in authz's answer; None when the answer decides nothing yet."""
    if isinstance(answer, AccessGranted):
        expires = answer.expires_at.isoformat() if answer.expires_at is not None else None
        outputs = {"granted": True, "grant_id": answer.grant_id, "expires_at": expires}
        return runs.AccessDecision(asked.task_id, asked.attempt, granted=True, outputs=outputs)
    if isinstance(answer, AccessDecided):
        if answer.decision != "deny":
            return None
        reasons = list(answer.reasons)
        because = f" ({', '.join(reasons)})" if reasons else ""
        return _refused(asked, "denied", "policy", reasons, f"denied by policy{because}")
    if answer.outcome == "approved":
        return None
    stage = f"approval stage {answer.stage}"
    if answer.outcome == "denied":
        by = answer.approver_id or "an approver"
        return _refused(asked, "denied", answer.approver_id, [], f"denied by {by} at {stage}")
    return _refused(asked, "expired", None, [], f"{stage} expired undecided")


def _refused(
    asked: RequestOf, decided: str, by: str | None, reasons: list[str], reason: str
) -> runs.AccessDecision:
    outputs = {"granted": False, "decision": decided, "by": by, "reasons": reasons}
    return runs.AccessDecision(
        asked.task_id, asked.attempt, granted=False, outputs=outputs, reason=reason
    )
