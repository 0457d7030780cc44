"""The sign-in handlers on in-memory ports: failures by their own times lock once, a
success ends their run, an identity Accord does not hold is never locked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from accord.authn.domain.identity import Change
from accord.authn.fakes import Fakes
from accord.authn.handlers import on_authn_failed, on_authn_succeeded
from accord.events import AuthnFailed, AuthnSucceeded, Envelope, IdentityLocked, new_event

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
USER = "u-1"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def failure(when: datetime, user: str = USER) -> tuple[Envelope, AuthnFailed]:
    data = AuthnFailed(user_id=user, idp="okta", reason="bad password")
    return new_event(data, source="urn:test:okta", time=when), data


def success(when: datetime, user: str = USER) -> tuple[Envelope, AuthnSucceeded]:
    data = AuthnSucceeded(user_id=user, idp="okta")
    return new_event(data, source="urn:test:okta", time=when), data


async def known(fakes: Fakes, user: str = USER, *, status_active: bool = True) -> None:
    await fakes.identities.apply(user, Change(1, (user, None), active=status_active))


async def fail(fakes: Fakes, when: datetime, user: str = USER) -> list[Envelope]:
    return await on_authn_failed(*failure(when, user), fakes.ports)


async def test_the_failure_that_reaches_the_threshold_locks_once() -> None:
    fakes = Fakes()
    await known(fakes)
    first = failure(at(0))
    assert await on_authn_failed(*first, fakes.ports) == []
    assert await on_authn_failed(*first, fakes.ports) == []  # redelivered: counted once
    assert await fail(fakes, at(1)) == []
    locking, data = failure(at(2))

    events = await on_authn_failed(locking, data, fakes.ports)

    assert [e.type for e in events] == ["identity.locked", "session.revoked"]
    locked = events[0].data
    assert isinstance(locked, IdentityLocked)
    assert locked.failures == 3
    assert locked.reason == "3 failed sign-ins in a row within 600 s"
    assert all(e.causationid == locking.id for e in events)
    assert events[1].data.model_dump()["streams"] == 2
    assert fakes.signals.of(USER) == ["account-disabled", "session-revoked"]
    assert fakes.signals.txns == [locking.id, locking.id]
    assert await fakes.lockouts.open_lockout(USER) is not None
    # Counted failures are forgotten up to the lockout; more while locked lock nothing.
    assert fakes.lockouts.settled[USER] == at(2)
    assert [await fail(fakes, at(m)) for m in (3, 4, 5)] == [[], [], []]
    assert len(fakes.lockouts.lockouts) == 1
    assert set(fakes.lockouts.serialised) == {USER}


async def test_a_redelivered_locking_failure_finds_the_same_lockout() -> None:
    fakes = Fakes()
    await known(fakes)
    await fail(fakes, at(0))
    await fail(fakes, at(1))
    locking = failure(at(2))
    assert await on_authn_failed(*locking, fakes.ports) != []
    assert await on_authn_failed(*locking, fakes.ports) == []  # before the settled time


async def test_failures_of_an_identity_accord_does_not_hold_or_a_leaver_lock_nothing() -> None:
    fakes = Fakes()
    await fakes.identities.apply("u-gone", Change(1, deleted=True))
    for user in ("u-unknown", "u-gone"):
        assert [await fail(fakes, at(m), user) for m in (0, 1, 2)] == [[], [], []]
    assert fakes.signals.sent == []
    assert fakes.lockouts.lockouts == {}


async def test_failures_outside_the_window_or_before_a_success_do_not_count() -> None:
    fakes = Fakes()
    await known(fakes)
    await fail(fakes, at(0))
    await fail(fakes, at(1))
    assert await fail(fakes, at(12)) == []  # eleven minutes on: the window holds two
    assert await on_authn_succeeded(*success(at(13)), fakes.ports) == []
    await fail(fakes, at(14))
    assert await fail(fakes, at(15)) == []  # the success ended the run
    assert fakes.signals.sent == []
    # A burst consumed late still counts by its own times.
    assert await fail(fakes, at(16) + timedelta(seconds=1)) != []


async def test_a_failure_consumed_after_a_later_success_does_not_count() -> None:
    fakes = Fakes()
    await known(fakes)
    # fail, fail, success, fail at a threshold of 3, the last failure consumed first.
    assert await fail(fakes, at(4)) == []
    await on_authn_succeeded(*success(at(3)), fakes.ports)
    assert await fail(fakes, at(1)) == []
    assert await fail(fakes, at(2)) == []  # the success ends its run: two, not three
    assert await fakes.lockouts.open_lockout(USER) is None


async def test_a_failure_consumed_late_that_completes_a_run_locks() -> None:
    fakes = Fakes()
    await known(fakes)
    await fail(fakes, at(1))
    await fail(fakes, at(3))
    events = await fail(fakes, at(2))
    assert [e.type for e in events] == ["identity.locked", "session.revoked"]
    # Settled at the run's end, after the failure that completed it.
    assert fakes.lockouts.settled[USER] == at(3)


async def test_a_success_is_remembered_once() -> None:
    fakes = Fakes()
    ok = success(at(0))
    assert await on_authn_succeeded(*ok, fakes.ports) == []
    assert await on_authn_succeeded(*ok, fakes.ports) == []
    assert list(fakes.lockouts.successes.values()) == [(USER, at(0))]
    assert fakes.lockouts.serialised == [USER, USER]
