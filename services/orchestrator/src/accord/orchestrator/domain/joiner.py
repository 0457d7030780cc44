"""The joiner saga: provision a new identity's birthright accounts in every target.

Pure: decide(state, event) -> (new state, commands). The database guards the same
transitions (see migrations), so a bug here cannot move a finished saga.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

Status = Literal["running", "completed", "failed"]

#: Allowed status transitions; terminal states have none.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    "running": frozenset({"running", "completed", "failed"}),
    "completed": frozenset(),
    "failed": frozenset(),
}

#: Forward steps and the step that undoes each one (run by the compensation in issue 4).
COMPENSATIONS: dict[str, str] = {"create_account": "delete_account"}


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


@dataclass(frozen=True)
class ProvisionAccount:
    """Command: create the identity's account in a target."""

    target: str
    step_id: str


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
    saga_id: str, user_id: str, targets: list[str], now: datetime
) -> tuple[JoinerState, list[Command]]:
    """A new joiner saga and its first commands."""
    state = JoinerState(saga_id, user_id, "running", now, pending=frozenset(targets))
    commands: list[Command] = [
        ProvisionAccount(target, step_id(saga_id, target)) for target in sorted(set(targets))
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
