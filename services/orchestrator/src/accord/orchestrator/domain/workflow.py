"""What the workflows decide without I/O: their settings, the saga ids, how each workflow
fails and the steps a saga plans from an identity and its accounts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Protocol, cast

from accord.events.catalogue import (
    AccessGranted,
    AccessRevoked,
    EventData,
    Profile,
    UserDeactivated,
    UserDeleted,
    UserReactivated,
)
from accord.events.catalogue.authn import Factor
from accord.orchestrator.domain import account_saga as saga
from accord.orchestrator.domain.birthright import Birthright
from accord.orchestrator.domain.plans import (
    comeback_steps,
    every_account,
    mover_steps,
    task_steps,
)

_SAGA_NAMESPACE = uuid.UUID("5d1c5f0e-8f5a-4c53-9a52-6f1c0e6a1a01")

#: The status each status event gives its identity.
STATUS_OF: dict[type[EventData], str] = {
    UserDeactivated: "inactive",
    UserReactivated: "active",
    UserDeleted: "deleted",
}
#: The workflow of each access event, and the operation of its membership steps.
ACCESS_WORKFLOWS: dict[type[EventData], tuple[saga.SagaType, saga.Operation]] = {
    AccessGranted: ("access_grant", "add_member"),
    AccessRevoked: ("access_revoke", "remove_member"),
}
#: Workflows that take access away: they do not wait out a failed saga's backoff.
TAKES_ACCESS: frozenset[saga.SagaType] = frozenset({"leaver", "lockout"})
#: Workflows that never begin for a deleted identity.
_NOT_FOR_LEAVERS: frozenset[saga.SagaType] = frozenset({"joiner", "mover", "access_grant"})


class SagaSelection(Protocol):
    """Which account sagas an identity event starts: the workflow set in force decides
    (``accord.orchestrator.workflows.saga_selection``); handlers ask before they start one."""

    def needs_identity(self, saga_type: saga.SagaType, event_type: str) -> bool:
        """Whether `starts` reads the identity (a scope or a `changed:` filter), so that a
        handler that has not read it yet reads it only then."""
        ...

    def starts(
        self,
        saga_type: saga.SagaType,
        event_type: str,
        identity: Identity | None,
        previous: Identity | None = None,
    ) -> bool:
        """Whether `event_type` starts the saga for `identity` (as the event left it;
        `previous`: before it)."""
        ...


class EverySaga:
    """Every account saga on its event, for everyone: what the shipped workflow files say
    (the default; the service wires the set in force)."""

    def needs_identity(self, saga_type: saga.SagaType, event_type: str) -> bool:
        return False

    def starts(
        self,
        saga_type: saga.SagaType,
        event_type: str,
        identity: Identity | None,
        previous: Identity | None = None,
    ) -> bool:
        return True


@dataclass(frozen=True)
class WorkflowSettings:
    """How the workflows behave; from the orchestrator's settings."""

    birthright: Birthright
    joiner_on_failure: saga.OnFailure = "keep"
    leaver_retention: timedelta = timedelta(days=30)
    """A deleted identity's accounts are disabled at once and deleted after this long."""
    backoff: saga.Backoff = field(default_factory=saga.Backoff)
    """Delays of a saga's own retries."""
    transient_rounds: int = 5
    """Rounds a saga other than a leaver retries by itself after transient failures only."""
    step_timeout: timedelta = timedelta(minutes=10)
    """A round's steps that get no answer within this fail (and a leaver retries them)."""
    mfa_enrolment: tuple[Factor, ...] = ()
    """Factors a completed joiner is asked to enrol (mfa.enrolment_requested); none: off."""
    selection: SagaSelection = field(default_factory=EverySaga)
    """Which sagas the identity events start (the workflow files in force)."""


def saga_id_of(cause_id: str) -> str:
    """The saga an event (or a timer) starts: one per cause, so a redelivery starts none."""
    return str(uuid.uuid5(_SAGA_NAMESPACE, cause_id))


def access_saga_id(event_type: type[EventData], grant_id: str) -> str:
    """The saga of a grant (or of its revocation): one per grant and event type, so a grant
    re-announced under another event id starts no second saga."""
    return str(uuid.uuid5(_SAGA_NAMESPACE, f"{event_type.event_type}:{grant_id}"))


def status_of(active: bool) -> str:
    """The registry status a profile's `active` flag means."""
    return "active" if active else "inactive"


@dataclass(frozen=True)
class Identity:
    """A registry entry as the workflows see it."""

    user_id: str
    status: str
    profile: Profile
    locked_by: str | None = None

    @property
    def locked(self) -> bool:
        return self.locked_by is not None

    def with_status(self, status: str) -> Identity:
        """The entry after a status change: the profile's `active` follows the status."""
        profile = self.profile.model_copy(update={"active": status == "active"})
        return replace(self, status=status, profile=profile)

    def effective_profile(self) -> Profile:
        """The profile the targets get: a locked identity's accounts stay disabled."""
        if self.locked:
            return self.profile.model_copy(update={"active": False})
        return self.profile


@dataclass(frozen=True)
class Accounts:
    """An identity's accounts: those it holds, and with `maybe` those whose creation is
    still in doubt too."""

    held: Sequence[str] = ()
    maybe: Sequence[str] = ()


@dataclass(frozen=True)
class Plan:
    """What a saga will do, planned when it begins."""

    profile: Profile
    steps: saga.Plan


def needs_accounts(identity: Identity | None, saga_type: saga.SagaType) -> bool:
    """Whether `plan` looks at the identity's accounts (so they are read only then)."""
    if identity is None or saga_type == "joiner" or saga_type in saga.ACCESS_SAGAS:
        return False
    if saga_type == "workflow_task":
        return True
    if saga_type in _NOT_FOR_LEAVERS and identity.status == "deleted":
        return False
    return not (identity.locked and saga_type in ("reactivation", "unlock"))


def plan(
    settings: WorkflowSettings,
    identity: Identity | None,
    accounts: Accounts,
    saga_type: saga.SagaType,
    operation: saga.Operation | None,
    memberships: tuple[saga.Step, ...] = (),
    intent: saga.TaskIntent | None = None,
) -> Plan | None:
    """The steps a saga needs, from the registry and the accounts as they are now (an
    access saga's memberships come from its grant, a workflow task's steps from its
    intent); None: no saga for a gone identity."""
    if identity is None:
        return None
    if saga_type == "workflow_task":
        assert intent is not None, "a workflow task saga carries its intent"
        return _task_plan(settings, identity, accounts, intent, memberships)
    if saga_type in _NOT_FOR_LEAVERS and identity.status == "deleted":
        return None
    # Whatever the source says, a locked identity's accounts stay disabled.
    profile = identity.effective_profile()
    if identity.locked and saga_type in ("reactivation", "unlock"):
        return Plan(profile, {})
    if saga_type in saga.ACCESS_SAGAS:
        return Plan(profile, memberships)
    steps: dict[str, saga.Operation]
    if saga_type == "joiner":
        steps = dict.fromkeys(settings.birthright.targets_for(profile), "create")
    elif saga_type == "mover":
        held = list(accounts.held)
        wanted = settings.birthright.targets_for(profile) if profile.active else held
        steps = mover_steps(wanted, held, active=profile.active, in_doubt=set(accounts.maybe))
    elif saga_type in ("reactivation", "unlock"):
        # Back: the accounts follow the birthright as it is now, enabled.
        wanted = settings.birthright.targets_for(profile)
        steps = comeback_steps(wanted, list(accounts.held), in_doubt=set(accounts.maybe))
    else:
        # Taking access away: accounts whose creation is still in doubt too.
        steps = every_account(accounts.maybe, operation or "disable")
    return Plan(profile, steps)


def _task_plan(
    settings: WorkflowSettings,
    identity: Identity,
    accounts: Accounts,
    intent: saga.TaskIntent,
    memberships: tuple[saga.Step, ...],
) -> Plan:
    """A workflow task's plan (`plans.task_steps`); its creates carry a disabled profile
    when the task asks for disabled accounts."""
    profile = task_profile(identity.effective_profile(), intent)
    steps = task_steps(
        intent,
        birthright=settings.birthright.targets_for(identity.profile),
        held=accounts.held,
        in_doubt=accounts.maybe,
        identity=identity_now(settings, identity),
        memberships=memberships,
    )
    return Plan(profile, steps)


def task_profile(profile: Profile, intent: saga.TaskIntent | None) -> Profile:
    """The profile a saga's requests carry: disabled for a workflow task that creates its
    accounts disabled (every round, retries too), else as it is."""
    if intent is not None and intent.disabled:
        return profile.model_copy(update={"active": False})
    return profile


def identity_now(
    settings: WorkflowSettings, identity: Identity | None, saga_type: saga.SagaType | None = None
) -> saga.IdentityNow:
    """The identity as a retry must see it: status, lock, the targets it should have (not
    judged for a workflow task, whose team may name a target outside the birthright)."""
    if identity is None or identity.status == "deleted":
        return saga.IdentityNow("deleted", wanted=frozenset())
    wanted = None
    if saga_type != "workflow_task":
        wanted = frozenset(settings.birthright.targets_for(identity.profile))
    return saga.IdentityNow(
        cast(saga.IdentityStatus, identity.status), locked=identity.locked, wanted=wanted
    )


def options(settings: WorkflowSettings, saga_type: saga.SagaType) -> dict[str, Any]:
    """How a workflow fails: leavers retry by themselves, the others (access sagas too)
    after transient failures only; joiners roll back or keep as configured."""
    if saga_type in ("leaver", "lockout"):
        return {"retries_itself": True}
    if saga_type == "workflow_task":
        return {}  # the task's retry policy retries it, with a saga per attempt
    result: dict[str, Any] = {"transient_rounds": settings.transient_rounds}
    if saga_type == "joiner":
        result["on_failure"] = settings.joiner_on_failure
    return result


class SagaNotFound(LookupError):
    """No saga has this id."""


class SagaConflict(ValueError):
    """The saga's state does not allow the action (e.g. retrying a completed saga)."""

    def __init__(self, saga_id: str, reason: str) -> None:
        super().__init__(f"saga {saga_id} {reason}")
        self.reason = reason
        """Why, without the saga's id (the HTTP API repeats no input)."""


def operator_refusal(
    state: saga.SagaState, action: saga.RetryRequested | saga.CancelRequested, holder: str | None
) -> str | None:
    """Why an operator may not retry or cancel a saga now (None: they may).

    Only a failed saga can be retried, and only while no other saga holds its identity
    (one saga per identity at a time: it may run again once that one is done).
    """
    retry = isinstance(action, saga.RetryRequested)
    if (state.status != "failed") if retry else ("cancelled" not in saga.TRANSITIONS[state.status]):
        verb = "retried (only a failed saga can)" if retry else "cancelled"
        return f"is {state.status} and cannot be {verb}"
    if retry and holder not in (None, state.saga_id):
        return f"cannot be retried while saga {holder} of the same identity is in flight"
    return None
