"""Access and lockout handlers on fake ports."""

from __future__ import annotations

import pytest

from accord.events import (
    AccessGranted,
    Envelope,
    IdentityLocked,
    IdentityUnlocked,
    UserCreated,
    UserReactivated,
)
from accord.orchestrator.domain.workflow import access_saga_id
from accord.orchestrator.handlers import (
    UnknownIdentity,
    on_access_changed,
    on_identity_locked,
    on_identity_unlocked,
    on_user_created,
    on_user_status,
)

from .handler_kit import (
    EDITORS,
    SALES,
    answer,
    event,
    granted,
    joined,
    operations,
    requests,
    revoked,
    saga_states,
    types,
    world,
)


def members(events: list[Envelope]) -> list[tuple[str, str, str | None]]:
    return [(r.target, r.operation, r.group) for r in requests(events)]


async def test_a_grant_adds_the_principal_to_its_groups_once() -> None:
    w = world()
    await joined(w, "u-1")
    grant = granted("u-1", SALES, EDITORS)
    cause = event(grant)

    started = await on_access_changed(cause, grant, w.ports)

    assert members(started) == [
        ("crm", "add_member", "Sales Team"),
        ("wiki", "add_member", "editors"),
    ]
    assert await on_access_changed(cause, grant, w.ports) == []  # redelivered
    assert await on_access_changed(event(grant), grant, w.ports) == []  # re-announced
    assert types(await answer(w, started)) == ["saga.completed"]
    assert w.registry.accounts_of["u-1"]["crm"] == ("crm-u-1", "active")  # untouched


async def test_a_grant_without_provisioning_starts_no_saga() -> None:
    w = world()
    grant = granted("u-nobody")
    assert await on_access_changed(event(grant), grant, w.ports) == []


async def test_a_reaffirmed_grant_starts_no_saga() -> None:
    w = world()
    await joined(w, "u-1")
    # Even one whose grant's own access.granted is not consumed yet (another request id,
    # another partition): that one provisions the grant, this one only answers a request.
    held = granted("u-1", SALES, grant_id="g-held").model_copy(
        update={"request_id": "run-1:grant_crm:1", "reaffirmed": True}
    )

    assert await on_access_changed(event(held), held, w.ports) == []
    assert access_saga_id(AccessGranted, "g-held") not in w.sagas.rows

    original = granted("u-1", SALES, grant_id="g-held")
    assert members(await on_access_changed(event(original), original, w.ports)) == [
        ("crm", "add_member", "Sales Team")
    ]


async def test_a_grant_for_an_unknown_identity_is_tried_again() -> None:
    w = world()
    grant = granted("u-nobody", SALES)
    with pytest.raises(UnknownIdentity):
        await on_access_changed(event(grant), grant, w.ports)


async def test_a_grant_queues_behind_the_joiner_and_begins_after_it() -> None:
    w = world()
    created = UserCreated(user_id="u-1", user_name="u-1")
    joining = await on_user_created(event(created, 1), created, w.ports)
    grant = granted("u-1", SALES)

    assert await on_access_changed(event(grant), grant, w.ports) == []
    assert saga_states(w, "u-1") == [("joiner", "running"), ("access_grant", "queued")]
    caused = await answer(w, joining)

    assert members(caused) == [("crm", "add_member", "Sales Team")]


async def test_a_revocation_cancels_a_waiting_grant_and_a_later_grant_is_ignored() -> None:
    w = world()
    created = UserCreated(user_id="u-1", user_name="u-1")
    joining = await on_user_created(event(created, 1), created, w.ports)
    grant = granted("u-1", SALES)
    await on_access_changed(event(grant), grant, w.ports)
    revocation = revoked("u-1", SALES)

    withdrawn = await on_access_changed(event(revocation), revocation, w.ports)
    assert types(withdrawn) == ["saga.failed"]  # the grant's saga, cancelled
    grant_saga = w.sagas.rows[access_saga_id(AccessGranted, "g-1")].state
    assert grant_saga.status == "cancelled"
    caused = await answer(w, joining)
    assert members(caused) == [("crm", "remove_member", "Sales Team")]
    other = granted("u-1", SALES)
    assert await on_access_changed(event(other), other, w.ports) == []  # revoked already


async def test_a_revocation_removes_the_principal_from_its_groups() -> None:
    w = world()
    await joined(w, "u-1")
    grant = granted("u-1", EDITORS)
    await answer(w, await on_access_changed(event(grant), grant, w.ports))
    revocation = revoked("u-1", EDITORS)

    started = await on_access_changed(event(revocation), revocation, w.ports)

    assert members(started) == [("wiki", "remove_member", "editors")]


async def test_a_lockout_disables_every_account_until_its_unlock() -> None:
    w = world()
    await joined(w, "u-1")
    locked = IdentityLocked(user_id="u-1", lockout_id="lock-1", reason="5 failures")
    disabling = await on_identity_locked(event(locked), locked, w.ports)
    assert operations(disabling) == [("crm", "disable", False), ("wiki", "disable", False)]
    await answer(w, disabling)
    back = UserReactivated(user_id="u-1")
    # Reactivated while locked: nothing is enabled.
    assert requests(await on_user_status(event(back, 2), back, w.ports)) == []
    wrong = IdentityUnlocked(user_id="u-1", lockout_id="lock-0", request_id="r-0")
    assert await on_identity_unlocked(event(wrong), wrong, w.ports) == []
    unlocked = IdentityUnlocked(user_id="u-1", lockout_id="lock-1", request_id="r-1")

    enabling = await on_identity_unlocked(event(unlocked), unlocked, w.ports)

    assert operations(enabling) == [("crm", "enable", True), ("wiki", "enable", True)]
    assert w.registry.entries["u-1"].locked_by is None


async def test_a_lockout_whose_unlock_came_first_changes_nothing() -> None:
    w = world()
    await joined(w, "u-1")
    unlocked = IdentityUnlocked(user_id="u-1", lockout_id="lock-1", request_id="r-1")
    assert await on_identity_unlocked(event(unlocked), unlocked, w.ports) == []
    locked = IdentityLocked(user_id="u-1", lockout_id="lock-1", reason="5 failures")

    assert await on_identity_locked(event(locked), locked, w.ports) == []
    assert w.registry.entries["u-1"].locked_by is None


async def test_a_lockout_of_an_unknown_identity_is_tried_again() -> None:
    w = world()
    locked = IdentityLocked(user_id="u-1", lockout_id="lock-1", reason="5 failures")
    with pytest.raises(UnknownIdentity):
        await on_identity_locked(event(locked), locked, w.ports)


async def test_an_unlock_of_an_inactive_identity_enables_nothing() -> None:
    w = world()
    await joined(w, "u-1")
    w.registry.entries["u-1"].status = "inactive"
    locked = IdentityLocked(user_id="u-1", lockout_id="lock-1", reason="5 failures")
    await answer(w, await on_identity_locked(event(locked), locked, w.ports))
    unlocked = IdentityUnlocked(user_id="u-1", lockout_id="lock-1", request_id="r-1")

    assert await on_identity_unlocked(event(unlocked), unlocked, w.ports) == []
    assert w.registry.entries["u-1"].locked_by is None
