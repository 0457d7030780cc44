"""In-memory implementations of authn's ports (accord.authn.ports), for unit tests.

They keep what the PostgreSQL adapters keep, and answer as they do: the contract tests
(tests/integration/test_authn_port_contracts.py) run the same cases over both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from accord.authn.domain.access_pass import AccessPass
from accord.authn.domain.identity import Change, Status, View
from accord.authn.domain.identity import apply as apply_change
from accord.authn.domain.lockout import ApprovalRequest, Lockout, LockoutPolicy
from accord.authn.factors import removed_events
from accord.authn.ports import Ports
from accord.authn.signals import Signal
from accord.events import Envelope


@dataclass
class FakeIdentities:
    """The Identities port over a dict of views."""

    views: dict[str, View] = field(default_factory=dict)

    async def apply(self, user_id: str, change: Change) -> tuple[View | None, View] | None:
        before = self.views.get(user_id)
        after = apply_change(before, change)
        if after is None:
            return None
        self.views[user_id] = after
        return before, after

    async def status_of(self, user_id: str) -> Status | None:
        view = self.views.get(user_id)
        return view.status if view else None


@dataclass
class StoredLockout:
    """A lockout as the fake keeps it."""

    user_id: str
    reason: str
    failures: int
    locked_at: datetime
    unlock_request_id: str | None = None


@dataclass
class FakeLockouts:
    """The Lockouts port: failures and successes by event id, settled times, lockouts."""

    failures: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    successes: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    settled: dict[str, datetime] = field(default_factory=dict)
    lockouts: dict[str, StoredLockout] = field(default_factory=dict)
    serialised: list[str] = field(default_factory=list)
    """The identities whose lock was taken, in order."""

    async def serialise(self, user_id: str) -> None:
        self.serialised.append(user_id)

    async def record_failure(
        self, event_id: str, user_id: str, occurred_at: datetime, *, idp: str, reason: str
    ) -> bool:
        if event_id in self.failures:
            return False
        self.failures[event_id] = (user_id, occurred_at)
        return True

    async def record_success(self, event_id: str, user_id: str, occurred_at: datetime) -> None:
        self.successes.setdefault(event_id, (user_id, occurred_at))

    async def sign_ins_between(
        self, user_id: str, start: datetime | None, end: datetime | None
    ) -> tuple[list[datetime], list[datetime]]:
        def between(at: datetime) -> bool:
            return (start is None or at >= start) and (end is None or at <= end)

        settled = self.settled.get(user_id)
        failures = [
            at
            for who, at in self.failures.values()
            if who == user_id and between(at) and (settled is None or at > settled)
        ]
        successes = [at for who, at in self.successes.values() if who == user_id and between(at)]
        return failures, successes

    async def settled_at(self, user_id: str) -> datetime | None:
        return self.settled.get(user_id)

    async def settle(self, user_id: str, at: datetime) -> None:
        self.settled[user_id] = max(self.settled.get(user_id, at), at)
        self.failures = {
            event_id: (who, when)
            for event_id, (who, when) in self.failures.items()
            if who != user_id or when > at
        }

    async def open_lockout(self, user_id: str) -> Lockout | None:
        for lockout_id, held in self.lockouts.items():
            if held.user_id == user_id and held.unlock_request_id is None:
                return Lockout(lockout_id, user_id)
        return None

    async def insert_lockout(
        self, lockout_id: str, user_id: str, reason: str, failures: int, locked_at: datetime
    ) -> bool:
        if lockout_id in self.lockouts or await self.open_lockout(user_id) is not None:
            return False  # PostgreSQL: the key, or one open lockout per identity
        self.lockouts[lockout_id] = StoredLockout(user_id, reason, failures, locked_at)
        return True

    async def get_lockout(self, lockout_id: str) -> Lockout | None:
        held = self.lockouts.get(lockout_id)
        return Lockout(lockout_id, held.user_id) if held else None

    async def close_lockout(self, lockout_id: str, request_id: str) -> bool:
        held = self.lockouts.get(lockout_id)
        if held is None or held.unlock_request_id is not None:
            return False
        held.unlock_request_id = request_id
        return True


@dataclass
class FakeRequests:
    """The Requests port over a dict of requests."""

    requests: dict[str, ApprovalRequest] = field(default_factory=dict)

    def file(self, request: ApprovalRequest) -> None:
        """A request authn filed, in any status."""
        self.requests[request.request_id] = request

    async def insert(
        self, request_id: str, user_id: str, kind: str, requester_id: str, lockout_id: str | None
    ) -> bool:
        if request_id in self.requests:
            return False
        self.file(ApprovalRequest(request_id, user_id, kind, "pending", lockout_id))
        return True

    async def get(self, request_id: str) -> ApprovalRequest | None:
        return self.requests.get(request_id)

    async def settle(self, request_id: str, status: str) -> None:
        if request_id in self.requests:
            self.requests[request_id] = replace(self.requests[request_id], status=status)


@dataclass
class EnrolmentRequest:
    """An enrolment request as the fake keeps it."""

    factors: list[str]
    saga_id: str | None
    enrolled_at: datetime | None


@dataclass
class FakeEnrolments:
    """The Enrolments port; `confirmed` holds when each identity's active factors were
    confirmed (the PostgreSQL adapter reads them from its credentials)."""

    confirmed: dict[str, list[datetime]] = field(default_factory=dict)
    requests: dict[str, EnrolmentRequest] = field(default_factory=dict)

    async def requested(self, user_id: str, factors: Sequence[str], saga_id: str | None) -> None:
        if user_id in self.requests:
            return
        enrolled_at = min(self.confirmed.get(user_id, []), default=None)
        self.requests[user_id] = EnrolmentRequest(list(factors), saga_id, enrolled_at)

    async def enrolled(self, user_id: str, at: datetime) -> None:
        request = self.requests.get(user_id)
        if request is not None and request.enrolled_at is None:
            request.enrolled_at = at


@dataclass(frozen=True)
class HeldFactor:
    """A factor as the fake keeps it."""

    credential_id: str
    factor: str
    status: str = "active"


@dataclass
class FakeFactors:
    """The Factors port over a dict of each identity's factors, oldest first."""

    source: str
    held: dict[str, list[HeldFactor]] = field(default_factory=dict)
    removed: list[tuple[str, str]] = field(default_factory=list)
    """(user_id, reason) of each removal of every factor, in order."""

    async def remove_all(self, user_id: str, reason: str) -> list[Envelope]:
        self.removed.append((user_id, reason))
        gone = self.held.pop(user_id, [])
        rows = [{"id": f.credential_id, "factor": f.factor, "status": f.status} for f in gone]
        return removed_events(user_id, rows, reason, source=self.source)


@dataclass
class FakeSignals:
    """The Signals port: remembers each signal, and says it went to `streams` streams."""

    streams: int = 2
    sent: list[tuple[str, Signal, str]] = field(default_factory=list)
    txns: list[str] = field(default_factory=list)

    async def send(self, user_id: str, signal: Signal, reason: str, *, txn: str) -> int:
        self.sent.append((user_id, signal, reason))
        self.txns.append(txn)
        return self.streams

    def of(self, user_id: str) -> list[Signal]:
        """The signals sent about one identity, in order."""
        return [signal for who, signal, _ in self.sent if who == user_id]


@dataclass
class Fakes:
    """One of each fake, and the Ports over them."""

    policy: LockoutPolicy = field(
        default_factory=lambda: LockoutPolicy(threshold=3, window=timedelta(minutes=10))
    )
    source: str = "urn:test:authn"
    identities: FakeIdentities = field(default_factory=FakeIdentities)
    lockouts: FakeLockouts = field(default_factory=FakeLockouts)
    requests: FakeRequests = field(default_factory=FakeRequests)
    enrolments: FakeEnrolments = field(default_factory=FakeEnrolments)
    signals: FakeSignals = field(default_factory=FakeSignals)
    factors: FakeFactors = field(init=False)

    def __post_init__(self) -> None:
        self.factors = FakeFactors(self.source)

    @property
    def ports(self) -> Ports:
        """The ports the handlers get."""
        return Ports(
            identities=self.identities,
            lockouts=self.lockouts,
            requests=self.requests,
            enrolments=self.enrolments,
            factors=self.factors,
            signals=self.signals,
            policy=self.policy,
            source=self.source,
        )


@dataclass
class FakeAccessPasses:
    """The AccessPasses port over dicts: passes by user, grants by hash, user names and the
    identities holding an active factor."""

    passes: dict[str, AccessPass] = field(default_factory=dict)
    grants: dict[bytes, tuple[str, str, datetime]] = field(default_factory=dict)
    user_names: dict[str, str] = field(default_factory=dict)
    """user_name -> user_id."""
    with_factor: set[str] = field(default_factory=set)
    announced: list[Envelope] = field(default_factory=list)

    async def user_named(self, user_name: str) -> str | None:
        return self.user_names.get(user_name)

    async def has_active_factor(self, user_id: str) -> bool:
        return user_id in self.with_factor

    async def put(self, issued: AccessPass) -> AccessPass | None:
        previous = await self.revoke(issued.user_id)
        self.passes[issued.user_id] = issued
        return previous

    async def of_user(self, user_id: str, *, for_update: bool = False) -> AccessPass | None:
        return self.passes.get(user_id)

    async def record(self, updated: AccessPass) -> None:
        current = self.passes.get(updated.user_id)
        if current is not None and current.pass_id == updated.pass_id:
            self.passes[updated.user_id] = replace(
                current,
                failed_attempts=updated.failed_attempts,
                used_at=updated.used_at,
                locked_at=updated.locked_at,
            )

    async def revoke(self, user_id: str) -> AccessPass | None:
        self.grants = {h: g for h, g in self.grants.items() if g[0] != user_id}
        return self.passes.pop(user_id, None)

    async def add_grant(
        self, grant_hash: bytes, user_id: str, pass_id: str, expires_at: datetime
    ) -> None:
        self.grants[grant_hash] = (user_id, pass_id, expires_at)

    async def grant_holds(self, grant_hash: bytes, user_id: str, now: datetime) -> bool:
        held = self.grants.get(grant_hash)
        return held is not None and held[0] == user_id and held[2] > now

    async def announce(self, events: Sequence[Envelope]) -> None:
        self.announced.extend(events)
