"""What the orchestrator's handlers need from the world, as Protocols.

The handlers see the registry (`RegistryStore`) and the sagas with their timers
(`SagaStore`) through these ports only; `adapters.postgres` implements them on the
handler's transaction, `fakes` in memory for the unit tests, and the contract tests run
the same cases against both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from accord.orchestrator.domain.account_saga import SagaState
from accord.orchestrator.domain.identity import IdentityVersion
from accord.orchestrator.domain.workflow import Accounts, Identity, WorkflowSettings

#: account_id the provisioner reports when a target had no account to disable or enable.
NO_ACCOUNT = "none"


class UserNameTaken(Exception):
    """Another identity already holds this user name."""


@dataclass(frozen=True)
class ParkedEvent:
    """An identity event waiting for its identity."""

    event_id: str
    sequence: int
    event_type: str
    version: int
    data: dict[str, Any]
    source: str


@dataclass(frozen=True)
class ProfileChange:
    """A registry entry as an identity event leaves it (`status_event`: a user.created, whose
    sequence is also the status's, not an update)."""

    user_id: str
    user_name: str
    profile: dict[str, Any]
    status: str
    sequence: int
    source: str
    status_event: bool = True


@dataclass(frozen=True)
class Timer:
    """Due work: retry or time out a saga, or delete a leaver's accounts after retention."""

    timer_id: str
    kind: str
    subject_id: str
    saga_id: str | None
    correlation_id: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SagaCount:
    """How many sagas of a workflow are in a status, and the oldest last change among them
    (for a failed group: when its longest-failed saga failed, or last changed while failed)."""

    workflow: str
    status: str
    sagas: int
    oldest_change: datetime


class RegistryStore(Protocol):
    """The identity registry: identities, their accounts, lockouts and parked events."""

    async def lock(self, user_id: str) -> None:
        """Serialise every change of one identity, even before its entry exists."""

    async def version(self, user_id: str) -> IdentityVersion | None:
        """The identity's sequence and status, locked for the rest of the transaction."""

    async def identity(self, user_id: str) -> Identity | None:
        """The identity's entry, None when the registry does not hold it."""

    async def identity_ids(self, after: str | None, limit: int) -> list[str]:
        """The ids of the living (not deleted) identities after `after`, in id order, at
        most `limit`: a keyset page, for the work that covers every identity (workflow
        schedules, timers planned again for a new workflow set)."""

    async def accounts(self, user_id: str) -> Accounts:
        """The targets where the identity holds an account, and those in doubt too."""

    async def save_profile(self, change: ProfileChange) -> None:
        """Create or replace an entry; UserNameTaken if a living identity has the name."""

    async def set_status(self, user_id: str, status: str, sequence: int) -> None:
        """Change an identity's status (the profile's `active` follows it); UserNameTaken
        when a deleted identity comes back and a living one has its name meanwhile."""

    async def set_locked(self, user_id: str, lockout_id: str | None) -> bool:
        """Mark an identity locked by a lockout, or unlocked (None); False if unknown."""

    async def end_lockout(self, user_id: str, lockout_id: str) -> None:
        """Remember that a lockout ended (its identity.locked may still be on its way)."""

    async def lockout_ended(self, user_id: str, lockout_id: str) -> bool:
        """Whether the lockout's identity.unlocked has been consumed already."""

    async def park(self, user_id: str, event: ParkedEvent) -> None:
        """Keep an event until its identity exists (a second park of it keeps the first)."""

    async def take_parked(self, user_id: str) -> list[ParkedEvent]:
        """Remove and return an identity's parked events, in sequence order."""

    async def record_account(
        self, user_id: str, target: str, account_id: str, operation: str
    ) -> None:
        """Keep the view of an identity's account in step with a provisioning result."""

    async def record_requested(self, user_id: str, targets: Sequence[str]) -> None:
        """Remember that targets were asked to create the identity's account (at once)."""


class SagaStore(Protocol):
    """The sagas, their queue per identity, and their timers."""

    async def insert(self, state: SagaState, correlation_id: str) -> bool:
        """Record a new saga; False when a saga with this id exists already."""

    async def load(self, saga_id: str) -> SagaState | None:
        """A saga, locked for the rest of the transaction."""

    async def save(self, state: SagaState) -> None:
        """Write a saga's new state; refuses if someone else wrote it since it was read."""

    async def status(self, saga_id: str) -> str | None:
        """A saga's status, without locking it; None when there is no such saga."""

    async def subject(self, saga_id: str) -> str | None:
        """The identity a saga is about, without locking the saga."""

    async def correlation(self, saga_id: str) -> str | None:
        """The correlation id a saga's events carry."""

    async def busy(self, user_id: str) -> bool:
        """Whether a saga holds the identity or waits for it (a new one must queue)."""

    async def holder(self, user_id: str) -> str | None:
        """The saga that holds the identity, if one does."""

    async def next_queued(self, user_id: str) -> SagaState | None:
        """The identity's oldest queued saga, locked, unless a saga holds the identity."""

    async def census(self) -> list[SagaCount]:
        """The sagas counted by workflow and status (one aggregate read, no saga rows; the
        metrics read it at scrape time), in workflow then status order."""

    async def add_timer(self, timer: Timer, due_at: datetime) -> None:
        """Schedule due work; scheduling the same timer twice keeps the first."""

    async def drop_timers(self, saga_id: str, kind: str) -> None:
        """Forget a saga's timers of one kind (work that is no longer due)."""


@dataclass(frozen=True)
class OrchestratorPorts:
    """What a handler works with: the stores bound to its transaction, the source of the
    events it emits, the workflows' settings and the clock."""

    registry: RegistryStore
    sagas: SagaStore
    source: str
    settings: WorkflowSettings
    clock: Callable[[], datetime]
