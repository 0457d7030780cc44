"""Fan-out account sagas: one step per target, done when every target answered.

The joiner creates a new identity's birthright accounts; the leaver disables (deactivation)
or deletes (deletion) every account it has, never compensates, and fails with the reasons
if a target stays down after the provisioner's retries.

Pure: decide(state, event) -> (new state, commands). The database guards the same
transitions (see migrations), so a bug here cannot move a finished saga.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

Status = Literal["running", "completed", "failed"]
SagaType = Literal["joiner", "leaver"]
Operation = Literal["create", "disable", "delete"]

#: Allowed status transitions; terminal states have none.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    "running": frozenset({"running", "completed", "failed"}),
    "completed": frozenset(),
    "failed": frozenset(),
}

#: Forward steps and the step that undoes each one (run by the compensation in issue 4).
COMPENSATIONS: dict[str, str | None] = {
    "create_account": "delete_account",
    "disable_account": None,  # leavers never compensate
    "delete_account": None,
}


@dataclass(frozen=True)
class JoinerState:
    """One joiner saga instance."""

    saga_id: str
    user_id: str
    status: Status
    started_at: datetime
    pending: frozenset[str]
    done: frozenset[str] = frozenset()
    failed: tuple[tuple[str, str], ...] = ()
    version: int = 0
    saga_type: SagaType = "joiner"
    operation: Operation = "create"


@dataclass(frozen=True)
class ProvisionAccount:
    """Command: bring the identity's account in a target to the saga's operation."""

    target: str
    step_id: str
    operation: Operation = "create"


@dataclass(frozen=True)
class CompleteSaga:
    """Command: announce success."""

    duration_ms: int


@dataclass(frozen=True)
class FailSaga:
    """Command: announce failure."""

    reason: str
    failed_targets: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Provisioned:
    """Event: a target holds the account."""

    target: str


@dataclass(frozen=True)
class ProvisionFailed:
    """Event: a target could not create the account."""

    target: str
    reason: str


Command = ProvisionAccount | CompleteSaga | FailSaga
SagaEvent = Provisioned | ProvisionFailed


class InvalidTransition(ValueError):
    """A status change the saga does not allow."""


def start(
    saga_id: str,
    user_id: str,
    targets: list[str],
    now: datetime,
    *,
    saga_type: SagaType = "joiner",
    operation: Operation = "create",
) -> tuple[JoinerState, list[Command]]:
    """A new saga and its first commands."""
    state = JoinerState(
        saga_id,
        user_id,
        "running",
        now,
        pending=frozenset(targets),
        saga_type=saga_type,
        operation=operation,
    )
    commands: list[Command] = [
        ProvisionAccount(target, step_id(saga_id, target), operation)
        for target in sorted(set(targets))
    ]
    if not targets:
        return _move(state, "completed"), [CompleteSaga(0)]
    return state, commands


def decide(
    state: JoinerState, event: SagaEvent, now: datetime
) -> tuple[JoinerState, list[Command]]:
    """Apply a result to the saga; results for finished or unknown steps change nothing."""
    if state.status != "running" or event.target not in state.pending:
        return state, []
    pending = state.pending - {event.target}
    if isinstance(event, Provisioned):
        state = replace(state, pending=pending, done=state.done | {event.target})
    else:
        state = replace(
            state, pending=pending, failed=(*state.failed, (event.target, event.reason))
        )
    if pending:
        return state, []
    if state.failed:
        reasons = "; ".join(f"{t}: {r}" for t, r in state.failed)
        targets = tuple(t for t, _ in state.failed)
        return _move(state, "failed"), [FailSaga(f"provisioning failed in {reasons}", targets)]
    duration = max(0, int((now - state.started_at).total_seconds() * 1000))
    return _move(state, "completed"), [CompleteSaga(duration)]


def step_id(saga_id: str, target: str) -> str:
    """Stable id of a saga's step in a target, so a retried step is recognisable."""
    return f"{saga_id}:{target}"


def _move(state: JoinerState, status: Status) -> JoinerState:
    if status not in TRANSITIONS[state.status]:
        raise InvalidTransition(f"joiner saga cannot go from {state.status} to {status}")
    return replace(state, status=status)
