"""In-memory ports for the unit tests: the same behaviour as the PostgreSQL adapters
(the contract tests run the same cases against both), without a database.

The fakes hold no locks (a test runs one handler at a time) and do not guard the saga
status machine as the database's trigger does; the domain's transitions already do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from accord.events import Profile
from accord.orchestrator.domain.account_saga import TERMINAL, SagaState, holds_identity
from accord.orchestrator.domain.identity import IdentityVersion
from accord.orchestrator.domain.workflow import Accounts, Identity, WorkflowSettings
from accord.orchestrator.ports import (
    NO_ACCOUNT,
    OrchestratorPorts,
    ParkedEvent,
    ProfileChange,
    SagaCount,
    Timer,
    UserNameTaken,
)

#: What an account result's operation makes of the account (an update changes nothing).
_STATE_AFTER = {"disable": "disabled", "create": "active", "enable": "active"}


@dataclass
class Entry:
    """A registry entry as the identities table holds it."""

    user_name: str
    profile: dict[str, Any]
    status: str
    sequence: int
    status_sequence: int
    source: str
    locked_by: str | None = None


@dataclass
class FakeRegistry:
    """The identity registry in memory."""

    entries: dict[str, Entry] = field(default_factory=dict)
    accounts_of: dict[str, dict[str, tuple[str | None, str]]] = field(default_factory=dict)
    """Per identity: target -> (account id, state: requested, active or disabled)."""
    parked: dict[str, tuple[str, ParkedEvent]] = field(default_factory=dict)
    """Parked events by event id, with their identity."""
    ended: set[tuple[str, str]] = field(default_factory=set)
    locked: list[str] = field(default_factory=list)
    """The identities whose lock was taken, in order (a test may check the order)."""

    async def lock(self, user_id: str) -> None:
        self.locked.append(user_id)

    async def version(self, user_id: str) -> IdentityVersion | None:
        entry = self.entries.get(user_id)
        if entry is None:
            return None
        return IdentityVersion(entry.sequence, entry.status, entry.status_sequence)

    async def identity(self, user_id: str) -> Identity | None:
        entry = self.entries.get(user_id)
        if entry is None:
            return None
        profile = Profile.model_validate(entry.profile)
        return Identity(user_id, entry.status, profile, entry.locked_by)

    async def identity_ids(self, after: str | None, limit: int) -> list[str]:
        living = sorted(u for u, entry in self.entries.items() if entry.status != "deleted")
        return [u for u in living if after is None or u > after][:limit]

    async def accounts(self, user_id: str) -> Accounts:
        held = self.accounts_of.get(user_id, {})
        return Accounts(
            held=tuple(sorted(t for t, (_, state) in held.items() if state != "requested")),
            maybe=tuple(sorted(held)),
        )

    async def save_profile(self, change: ProfileChange) -> None:
        self._check_name(change.user_id, change.user_name, change.status)
        entry = self.entries.get(change.user_id)
        status_sequence = change.sequence
        if entry is not None and not change.status_event:
            status_sequence = entry.status_sequence
        self.entries[change.user_id] = Entry(
            user_name=change.user_name,
            profile=dict(change.profile),
            status=change.status,
            sequence=change.sequence,
            status_sequence=status_sequence,
            source=change.source,
            locked_by=entry.locked_by if entry else None,
        )

    async def set_status(self, user_id: str, status: str, sequence: int) -> None:
        entry = self.entries.get(user_id)
        if entry is None:
            return
        try:
            self._check_name(user_id, entry.user_name, status)
        except UserNameTaken:
            raise UserNameTaken(
                f"identity {user_id}'s user name belongs to another identity"
            ) from None
        entry.status = status
        entry.sequence = max(entry.sequence, sequence)
        entry.status_sequence = max(entry.status_sequence, sequence)
        entry.profile = {**entry.profile, "active": status == "active"}

    async def set_locked(self, user_id: str, lockout_id: str | None) -> bool:
        entry = self.entries.get(user_id)
        if entry is None:
            return False
        entry.locked_by = lockout_id
        return True

    async def end_lockout(self, user_id: str, lockout_id: str) -> None:
        self.ended.add((user_id, lockout_id))

    async def lockout_ended(self, user_id: str, lockout_id: str) -> bool:
        return (user_id, lockout_id) in self.ended

    async def park(self, user_id: str, event: ParkedEvent) -> None:
        self.parked.setdefault(event.event_id, (user_id, event))

    async def take_parked(self, user_id: str) -> list[ParkedEvent]:
        mine = [e for owner, e in self.parked.values() if owner == user_id]
        for event in mine:
            del self.parked[event.event_id]
        return sorted(mine, key=lambda e: e.sequence)

    async def record_account(
        self, user_id: str, target: str, account_id: str, operation: str
    ) -> None:
        held = self.accounts_of.setdefault(user_id, {})
        if operation == "delete":
            held.pop(target, None)
            return
        if account_id == NO_ACCOUNT:
            if target in held and held[target][1] == "requested":
                del held[target]
            return
        state = _STATE_AFTER.get(operation)
        before = held.get(target)
        if before is None:
            held[target] = (account_id, state or "active")
        elif state is None:
            held[target] = (account_id, "active" if before[1] == "requested" else before[1])
        else:
            held[target] = (account_id, state)

    async def record_requested(self, user_id: str, targets: Sequence[str]) -> None:
        held = self.accounts_of.setdefault(user_id, {})
        for target in targets:
            held.setdefault(target, (None, "requested"))

    def _check_name(self, user_id: str, user_name: str, status: str) -> None:
        """A user name belongs to one living identity, whatever its case."""
        if status == "deleted":
            return
        for other_id, other in self.entries.items():
            if (
                other_id != user_id
                and other.status != "deleted"
                and other.user_name.lower() == user_name.lower()
            ):
                raise UserNameTaken(f"user name {user_name!r} already belongs to another identity")


@dataclass
class SagaRow:
    """A saga as the sagas table holds it."""

    state: SagaState
    correlation_id: str
    seq: int
    changed_at: datetime
    """When it was inserted or last saved (the table's updated_at)."""


@dataclass
class FakeSagas:
    """The sagas and their timers in memory."""

    rows: dict[str, SagaRow] = field(default_factory=dict)
    timers: dict[str, tuple[Timer, datetime]] = field(default_factory=dict)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    """What a row's changed_at says (the database's now(); FakeWorld gives its own clock)."""

    async def insert(self, state: SagaState, correlation_id: str) -> bool:
        if state.saga_id in self.rows:
            return False
        seq = len(self.rows) + 1
        row = SagaRow(replace(state, version=0), correlation_id, seq, self.clock())
        self.rows[state.saga_id] = row
        return True

    async def load(self, saga_id: str) -> SagaState | None:
        row = self.rows.get(saga_id)
        return row.state if row else None

    async def save(self, state: SagaState) -> None:
        row = self.rows.get(state.saga_id)
        if row is None or row.state.version != state.version:
            raise asyncpg.exceptions.SerializationError(
                f"saga {state.saga_id} changed concurrently"
            )
        if row.state.status in TERMINAL:
            # The database's guard: a saga that ended never changes.
            raise asyncpg.exceptions.RaiseError(f"saga {state.saga_id} is {row.state.status}")
        row.state = replace(state, version=state.version + 1)
        row.changed_at = self.clock()

    async def status(self, saga_id: str) -> str | None:
        row = self.rows.get(saga_id)
        return row.state.status if row else None

    async def subject(self, saga_id: str) -> str | None:
        row = self.rows.get(saga_id)
        return row.state.user_id if row else None

    async def correlation(self, saga_id: str) -> str | None:
        row = self.rows.get(saga_id)
        return row.correlation_id if row else None

    async def busy(self, user_id: str) -> bool:
        return any(holds_identity(r.state) or r.state.status == "queued" for r in self._of(user_id))

    async def holder(self, user_id: str) -> str | None:
        holding = [r.state.saga_id for r in self._of(user_id) if holds_identity(r.state)]
        return holding[0] if holding else None

    async def next_queued(self, user_id: str) -> SagaState | None:
        if await self.holder(user_id) is not None:
            return None
        queued = [r for r in self._of(user_id) if r.state.status == "queued"]
        return min(queued, key=lambda r: r.seq).state if queued else None

    async def census(self) -> list[SagaCount]:
        groups: dict[tuple[str, str], list[datetime]] = {}
        for row in self.rows.values():
            key = (row.state.saga_type, row.state.status)
            groups.setdefault(key, []).append(row.changed_at)
        return [
            SagaCount(workflow, status, len(times), min(times))
            for (workflow, status), times in sorted(groups.items())
        ]

    async def add_timer(self, timer: Timer, due_at: datetime) -> None:
        self.timers.setdefault(timer.timer_id, (timer, due_at))

    async def drop_timers(self, saga_id: str, kind: str) -> None:
        for timer_id, (timer, _) in list(self.timers.items()):
            if timer.saga_id == saga_id and timer.kind == kind:
                del self.timers[timer_id]

    def of_kind(self, kind: str) -> list[Timer]:
        """The timers of a kind, soonest first."""
        found = [(due, t) for t, due in self.timers.values() if t.kind == kind]
        return [t for _, t in sorted(found, key=lambda pair: pair[0])]

    def take(self, timer_id: str) -> Timer:
        """Remove a timer to fire it, as the timer loop does."""
        timer, _ = self.timers.pop(timer_id)
        return timer

    def _of(self, user_id: str) -> list[SagaRow]:
        return [r for r in self.rows.values() if r.state.user_id == user_id]


@dataclass
class Clock:
    """A clock the test moves."""

    now: datetime = field(default_factory=lambda: datetime(2026, 1, 5, 9, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


@dataclass
class FakeWorld:
    """Fake ports with their state, for one test."""

    settings: WorkflowSettings
    source: str = "urn:test:orchestrator"
    registry: FakeRegistry = field(default_factory=FakeRegistry)
    sagas: FakeSagas = field(default_factory=FakeSagas)
    clock: Clock = field(default_factory=Clock)

    def __post_init__(self) -> None:
        self.sagas.clock = self.clock  # the sagas' changes happen on the test's clock

    @property
    def ports(self) -> OrchestratorPorts:
        return OrchestratorPorts(
            registry=self.registry,
            sagas=self.sagas,
            source=self.source,
            settings=self.settings,
            clock=self.clock,
        )
