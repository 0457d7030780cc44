"""The identity handler on in-memory ports: what an identity's status did decides what
follows, in whatever order its events arrive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from accord.authn.domain.identity import Consequence, View, consequence_of
from accord.authn.fakes import Fakes, HeldFactor
from accord.authn.handlers import on_authn_failed, on_identity_event
from accord.authn.handlers.identity import IdentityEvent
from accord.authn.ports import Ports
from accord.events import (
    AuthnFailed,
    Envelope,
    UserCreated,
    UserDeactivated,
    UserDeleted,
    UserReactivated,
    UserUpdated,
    new_event,
)

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
USER = "u-1"


async def handle(ports: Ports, data: IdentityEvent, sequence: int) -> list[Envelope]:
    event = new_event(data, source="urn:test:scim", time=T0, sequence=sequence)
    return await on_identity_event(event, data, ports)


def created(user: str = USER, *, active: bool = True) -> UserCreated:
    return UserCreated(user_id=user, user_name=user, email=f"{user}@example.com", active=active)


def updated(user: str = USER, *, active: bool) -> UserUpdated:
    return UserUpdated(user_id=user, user_name=user, email=f"{user}@example.com", active=active)


async def test_a_joiner_is_projected_and_nothing_is_sent() -> None:
    fakes = Fakes()
    assert await handle(fakes.ports, created(), 1) == []
    assert await fakes.identities.status_of(USER) == "active"
    assert fakes.signals.sent == []
    assert fakes.lockouts.serialised == [USER]


async def test_a_duplicate_or_older_event_changes_nothing() -> None:
    fakes = Fakes()
    await handle(fakes.ports, created(), 1)
    await handle(fakes.ports, updated(active=True), 3)
    assert await handle(fakes.ports, created(), 1) == []
    assert await handle(fakes.ports, UserDeactivated(user_id=USER), 2) == []
    assert await fakes.identities.status_of(USER) == "active"
    assert fakes.signals.sent == []


async def test_a_deactivation_revokes_the_sessions_once() -> None:
    fakes = Fakes()
    await handle(fakes.ports, created(), 1)
    away = UserDeactivated(user_id=USER, reason="leave")
    events = await handle(fakes.ports, away, 2)
    assert [e.type for e in events] == ["session.revoked"]
    assert events[0].data.model_dump()["reason"] == "deactivated"
    assert fakes.signals.of(USER) == ["account-disabled", "session-revoked"]
    assert await handle(fakes.ports, away, 2) == []
    assert fakes.factors.removed == []


async def test_a_leaver_loses_its_sessions_and_its_factors() -> None:
    fakes = Fakes()
    fakes.factors.held[USER] = [HeldFactor("c-1", "totp"), HeldFactor("c-2", "totp", "pending")]
    await handle(fakes.ports, created(), 1)
    events = await handle(fakes.ports, UserDeleted(user_id=USER), 2)
    assert [e.type for e in events] == ["session.revoked", "mfa.removed"]
    assert events[1].data.model_dump()["credential_id"] == "c-1"
    assert fakes.factors.removed == [(USER, "leaver")]
    assert [r for _, _, r in fakes.signals.sent] == ["leaver", "leaver"]
    assert await fakes.identities.status_of(USER) == "deleted"


@pytest.mark.parametrize("update_first", [False, True])
async def test_a_deactivation_and_its_update_revoke_the_sessions_in_either_order(
    update_first: bool,
) -> None:
    fakes = Fakes()
    await handle(fakes.ports, created(), 1)
    pair: list[tuple[IdentityEvent, int]] = [
        (UserDeactivated(user_id=USER), 2),
        (updated(active=False), 3),
    ]
    emitted: list[Envelope] = []
    for data, sequence in reversed(pair) if update_first else pair:
        emitted += await handle(fakes.ports, data, sequence)
    assert [e.type for e in emitted] == ["session.revoked"]
    assert fakes.signals.of(USER) == ["account-disabled", "session-revoked"]


@pytest.mark.parametrize("update_first", [False, True])
async def test_a_reactivation_and_its_update_enable_in_either_order(update_first: bool) -> None:
    fakes = Fakes()
    await handle(fakes.ports, created(), 1)
    await handle(fakes.ports, UserDeactivated(user_id=USER), 2)
    pair: list[tuple[IdentityEvent, int]] = [
        (UserReactivated(user_id=USER), 3),
        (updated(active=True), 4),
    ]
    for data, sequence in reversed(pair) if update_first else pair:
        await handle(fakes.ports, data, sequence)
    assert fakes.signals.of(USER) == ["account-disabled", "session-revoked", "account-enabled"]
    assert fakes.signals.sent[-1][2] == "reactivated"


async def test_a_locked_identity_that_comes_back_is_not_enabled() -> None:
    fakes = Fakes()
    await handle(fakes.ports, created(), 1)
    await fakes.lockouts.insert_lockout("lock-1", USER, "by hand", 0, T0)
    await handle(fakes.ports, UserDeactivated(user_id=USER), 2)
    await handle(fakes.ports, UserReactivated(user_id=USER), 3)
    assert "account-enabled" not in fakes.signals.of(USER)


async def test_a_status_event_about_an_identity_not_seen_yet_acts_on_what_it_was() -> None:
    fakes = Fakes()
    events = await handle(fakes.ports, UserDeactivated(user_id=USER), 5)
    assert [e.type for e in events] == ["session.revoked"]
    await handle(fakes.ports, UserReactivated(user_id="u-2"), 5)
    assert fakes.signals.of("u-2") == ["account-enabled"]


async def test_failures_consumed_before_the_identity_is_known_lock_it_when_it_is() -> None:
    fakes = Fakes()
    for minute in (1, 2, 3):
        failed = AuthnFailed(user_id=USER, idp="okta", reason="bad password")
        event = new_event(failed, source="urn:test:okta", time=T0 + timedelta(minutes=minute))
        assert await on_authn_failed(event, failed, fakes.ports) == []
    joiner = new_event(created(), source="urn:test:scim", time=T0, sequence=1)
    events = await on_identity_event(joiner, created(), fakes.ports)
    assert [e.type for e in events] == ["identity.locked", "session.revoked"]
    assert events[0].causationid == joiner.id
    lockout = await fakes.lockouts.open_lockout(USER)
    assert lockout is not None
    assert fakes.lockouts.lockouts[lockout.lockout_id].locked_at == T0 + timedelta(minutes=3)
    # A deleted identity seen first is not locked.
    assert await handle(fakes.ports, UserDeleted(user_id="u-2"), 1) != []


async def test_a_leaver_stays_deleted_whatever_update_follows() -> None:
    fakes = Fakes()
    await handle(fakes.ports, created(), 1)
    await handle(fakes.ports, UserDeleted(user_id=USER), 2)
    assert await handle(fakes.ports, updated(active=True), 3) == []
    assert await fakes.identities.status_of(USER) == "deleted"


def view(*, active: bool = True, deleted: bool = False) -> View:
    return View(active=active, active_sequence=1, deleted=deleted, deleted_sequence=1)


@pytest.mark.parametrize(
    ("before", "after", "data", "expected"),
    [
        (None, view(), created(), Consequence(first_known=True)),
        (None, view(active=False), created(active=False), Consequence(first_known=True)),
        (None, view(deleted=True), UserDeleted(user_id=USER), Consequence(disable="leaver")),
        (
            None,
            view(),
            UserReactivated(user_id=USER),
            Consequence(first_known=True, enable=True),
        ),
        (view(), view(active=False), updated(active=False), Consequence(disable="deactivated")),
        (view(active=False), view(), updated(active=True), Consequence(enable=True)),
        (view(deleted=True), view(active=False), created(active=False), Consequence()),
        (view(), view(), updated(active=True), Consequence()),
    ],
)
def test_what_a_status_change_sets_off(
    before: View | None, after: View, data: IdentityEvent, expected: Consequence
) -> None:
    assert consequence_of(before, after, data) == expected
