"""In-memory stand-ins for the effects' ports (effects.py), for unit tests and the engine's.

`InMemoryCallbacks` is both sides of a waiting extension call's callback: the effects
`register` it (`CallbackRegistry`) and the callback API `lookup`s it (callback_api's
`CallbackSecrets`), reading the secret from the environment variable registered, as a
PostgreSQL implementation would.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from accord.orchestrator.workflows.callback_api import AwaitedCallback, CallbackState
from accord.orchestrator.workflows.effects import (
    AccessPassError,
    EffectFailed,
    HeldGrant,
    IssuedPass,
)
from accord.orchestrator.workflows.extensions import ExtensionRejected, read_secret


@dataclass
class _Awaited:
    token: str
    secret_env: str
    state: CallbackState = CallbackState.AWAITING


@dataclass
class InMemoryCallbacks:
    """The callbacks awaited, by run and task (a CallbackRegistry and a CallbackSecrets)."""

    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    awaited: dict[tuple[str, str], _Awaited] = field(default_factory=dict)

    async def register(self, run_id: str, task_id: str, *, token: str, secret_env: str) -> None:
        self.awaited[(run_id, task_id)] = _Awaited(token, secret_env)

    async def lookup(self, run_id: str, task_id: str) -> AwaitedCallback | None:
        found = self.awaited.get((run_id, task_id))
        if found is None:
            return None
        try:
            secret = read_secret(found.secret_env, self.environ)
        except ExtensionRejected:
            return None  # no secret to check a signature against: as if nothing waited
        return AwaitedCallback(state=found.state, secret=secret, token=found.token)

    async def mark(self, run_id: str, task_id: str, state: CallbackState) -> bool:
        """The engine's side: the callback came (DELIVERED) or the wait ended without one
        (CLOSED); only an awaiting callback changes: False means it came or closed before."""
        found = self.awaited.get((run_id, task_id))
        if found is None or found.state is not CallbackState.AWAITING:
            return False
        found.state = state
        return True


@dataclass
class FakeDirectory:
    """People by user id: (e-mail, display name)."""

    people: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)

    async def email_of(self, user_id: str) -> str | None:
        return self.people.get(user_id, (None, None))[0]

    async def name_of(self, user_id: str) -> str | None:
        return self.people.get(user_id, (None, None))[1]


@dataclass
class FakeAccessPasses:
    """authn's access passes: issues ``code`` (or fails with the next scripted error)."""

    code: str = "K7QW-M2PX-9RTA"
    now: datetime = field(default_factory=lambda: datetime(2027, 3, 1, 8, tzinfo=UTC))
    failures: list[AccessPassError] = field(default_factory=list)
    issued: list[tuple[str, timedelta, bool]] = field(default_factory=list)

    async def issue(self, user_id: str, *, lifetime: timedelta, one_time: bool) -> IssuedPass:
        if self.failures:
            raise self.failures.pop(0)
        self.issued.append((user_id, lifetime, one_time))
        return IssuedPass(code=self.code, expires_at=self.now + lifetime)


@dataclass
class FakeGrants:
    """authz's grants: live grants by user, the entitlements its policies still allow."""

    grants: dict[str, list[HeldGrant]] = field(default_factory=dict)
    allowed_names: set[str] = field(default_factory=set)
    revoked: list[tuple[str, str]] = field(default_factory=list)
    failure: EffectFailed | None = None

    async def held(self, user_id: str) -> Sequence[HeldGrant]:
        if self.failure is not None:
            raise self.failure
        gone = {grant_id for grant_id, _ in self.revoked}
        return [g for g in self.grants.get(user_id, []) if g.grant_id not in gone]

    async def allowed(self, user_id: str, application: str, entitlement: str) -> bool:
        return f"{application}/{entitlement}" in self.allowed_names

    async def revoke(self, grant_id: str, reason: str) -> None:
        self.revoked.append((grant_id, reason))
