"""What authn's handlers need from the world, as Protocols: the PostgreSQL adapters implement
them (accord.authn.adapters, accord.authn.factors, accord.authn.signals), and so do the
in-memory fakes the unit tests use (accord.authn.fakes)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import asyncpg

from accord.authn.domain.access_pass import AccessPass
from accord.authn.domain.identity import Change, Status, View
from accord.authn.domain.lockout import ApprovalRequest, Lockout, LockoutPolicy
from accord.authn.signals import Signal
from accord.events import Envelope


class Identities(Protocol):
    """Authn's projection of identities (user.* events)."""

    async def apply(self, user_id: str, change: Change) -> tuple[View | None, View] | None:
        """Apply what one identity event says; (before, after), or None when it is older
        than every fact it sets. The caller serialises the identity (Lockouts.serialise)."""
        ...

    async def status_of(self, user_id: str) -> Status | None:
        """The identity's status, None if authn has not seen it."""
        ...


class Lockouts(Protocol):
    """Sign-ins counted toward a lockout, and the lockouts."""

    async def serialise(self, user_id: str) -> None:
        """Take the identity's lock for the rest of the transaction: authn's decisions
        about one identity are made one at a time."""
        ...

    async def record_failure(
        self, event_id: str, user_id: str, occurred_at: datetime, *, idp: str, reason: str
    ) -> bool:
        """Remember one failed sign-in; False if this event was counted already."""
        ...

    async def record_success(self, event_id: str, user_id: str, occurred_at: datetime) -> None:
        """Remember one successful sign-in (once per event)."""
        ...

    async def sign_ins_between(
        self, user_id: str, start: datetime | None, end: datetime | None
    ) -> tuple[list[datetime], list[datetime]]:
        """The times of the failures (after the identity was last settled) and of the
        successes between `start` and `end` (None: no bound)."""
        ...

    async def settled_at(self, user_id: str) -> datetime | None:
        """The time of the identity's latest lockout or unlock."""
        ...

    async def settle(self, user_id: str, at: datetime) -> None:
        """Start the count again at `at`: failures at or before it are forgotten."""
        ...

    async def open_lockout(self, user_id: str) -> Lockout | None:
        """The identity's open lockout, if any."""
        ...

    async def insert_lockout(
        self, lockout_id: str, user_id: str, reason: str, failures: int, locked_at: datetime
    ) -> bool:
        """Open a lockout; False when this one exists already."""
        ...

    async def get_lockout(self, lockout_id: str) -> Lockout | None:
        """One lockout by id, open or not."""
        ...

    async def close_lockout(self, lockout_id: str, request_id: str) -> bool:
        """End a lockout by an approved request; False if it was not open."""
        ...


class Requests(Protocol):
    """The unlock and factor-reset requests authn filed with authz."""

    async def insert(
        self, request_id: str, user_id: str, kind: str, requester_id: str, lockout_id: str | None
    ) -> bool:
        """Remember a request filed with authz (pending); False if it exists (a retry)."""
        ...

    async def get(self, request_id: str) -> ApprovalRequest | None:
        """A request authn filed (locked for the transaction); None if not authn's."""
        ...

    async def settle(self, request_id: str, status: str) -> None:
        """Record what became of a request (granted, denied, done)."""
        ...


class Enrolments(Protocol):
    """The joiner saga's requests that an identity enrols a factor."""

    async def requested(self, user_id: str, factors: Sequence[str], saga_id: str | None) -> None:
        """Record (once) the request; done already when the identity holds an active
        factor (its mfa.enrolled may have come first)."""
        ...

    async def enrolled(self, user_id: str, at: datetime) -> None:
        """The identity enrolled a factor: its open request is done."""
        ...


class Factors(Protocol):
    """An identity's MFA factors."""

    async def remove_all(self, user_id: str, reason: str) -> list[Envelope]:
        """Remove every factor of the identity: one mfa.removed per active factor."""
        ...


class Signals(Protocol):
    """The Shared Signals transmitter."""

    async def send(self, user_id: str, signal: Signal, reason: str, *, txn: str) -> int:
        """Queue one signal about an identity to every stream that wants it; how many.
        The signals one cause produces share its `txn`."""
        ...


@dataclass(frozen=True)
class Ports:
    """Everything a handler works through, inside one transaction, with the lockout policy
    and the CloudEvents source of the events it emits."""

    identities: Identities
    lockouts: Lockouts
    requests: Requests
    enrolments: Enrolments
    factors: Factors
    signals: Signals
    policy: LockoutPolicy
    source: str


#: The ports of one transaction, from its connection and the CloudEvents source of the
#: events it emits (the API and the Shared Signals receiver act through them too).
PortsOf = Callable[[asyncpg.Connection, str], Ports]


class AccessPasses(Protocol):
    """Temporary Access Passes (one per identity) and the enrolment grants they give, with
    what redeeming needs to know of the identity. Inside the caller's transaction."""

    async def user_named(self, user_name: str) -> str | None:
        """The user_id of the identity with this user name, if authn knows one."""
        ...

    async def has_active_factor(self, user_id: str) -> bool:
        """Whether the identity holds an active factor."""
        ...

    async def put(self, issued: AccessPass) -> AccessPass | None:
        """Store a new pass for its identity, replacing any; the replaced one, if any."""
        ...

    async def of_user(self, user_id: str, *, for_update: bool = False) -> AccessPass | None:
        """The identity's pass, whatever its state (locked for the transaction if asked)."""
        ...

    async def record(self, updated: AccessPass) -> None:
        """Store what an attempt changed: failed attempts, locked_at, used_at."""
        ...

    async def revoke(self, user_id: str) -> AccessPass | None:
        """Delete the identity's pass and its grants; the pass, if there was one."""
        ...

    async def add_grant(
        self, grant_hash: bytes, user_id: str, pass_id: str, expires_at: datetime
    ) -> None:
        """Remember an enrolment grant (its hash) until expires_at."""
        ...

    async def grant_holds(self, grant_hash: bytes, user_id: str, now: datetime) -> bool:
        """Whether this grant is the identity's and not expired."""
        ...

    async def announce(self, events: Sequence[Envelope]) -> None:
        """Publish events with the transaction (the outbox): they go out if it commits."""
        ...
