"""The identity handlers (joiner, mover, status changes) on fake ports."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from accord.events import (
    MfaEnrolmentRequested,
    UserCreated,
    UserDeactivated,
    UserDeleted,
    UserReactivated,
    UserUpdated,
)
from accord.orchestrator.domain.birthright import Birthright, everyone
from accord.orchestrator.handlers import on_user_created, on_user_status, on_user_updated
from accord.runtime.errors import PermanentError

from .handler_kit import answer, event, joined, operations, requests, saga_states, types, world


async def test_a_joiner_is_registered_and_its_saga_asks_for_every_birthright_account() -> None:
    w = world()
    created = UserCreated(user_id="u-1", user_name="ada", department="Eng")
    started = await on_user_created(event(created, 1), created, w.ports)

    assert types(started) == ["saga.started", "provision.requested", "provision.requested"]
    assert operations(started) == [("crm", "create", True), ("wiki", "create", True)]
    identity = await w.registry.identity("u-1")
    assert identity is not None
    assert (identity.status, identity.profile.department) == ("active", "Eng")
    assert (await w.registry.accounts("u-1")).maybe == ("crm", "wiki")  # asked for
    assert saga_states(w, "u-1") == [("joiner", "running")]
    assert [t.kind for t, _ in w.sagas.timers.values()] == ["saga_timeout"]
    assert w.registry.locked[0] == "u-1"  # the identity's lock comes first


async def test_a_redelivered_or_reannounced_joiner_starts_no_second_saga() -> None:
    w = world()
    created = UserCreated(user_id="u-1", user_name="ada")
    first = event(created, 1)
    await on_user_created(first, created, w.ports)

    assert await on_user_created(first, created, w.ports) == []  # same sequence: stale
    renamed = UserCreated(user_id="u-1", user_name="ada.l")
    assert await on_user_created(event(renamed, 2), renamed, w.ports) == []  # an update
    assert w.registry.entries["u-1"].user_name == "ada.l"
    assert saga_states(w, "u-1") == [("joiner", "running")]


async def test_a_completed_joiner_asks_for_the_configured_second_factors() -> None:
    w = world(mfa_enrolment=("totp",))
    done = await joined(w, "u-1")

    assert types(done) == ["saga.completed", "mfa.enrolment_requested"]
    enrol = done[1].data
    assert isinstance(enrol, MfaEnrolmentRequested)
    assert enrol.factors == ("totp",)
    assert (await w.registry.accounts("u-1")).held == ("crm", "wiki")


async def test_a_joiner_without_birthright_completes_at_once() -> None:
    w = world(birthright=Birthright())
    created = UserCreated(user_id="u-1", user_name="ada")
    started = await on_user_created(event(created, 1), created, w.ports)

    assert types(started) == ["saga.started", "saga.completed"]
    assert saga_states(w, "u-1") == [("joiner", "completed")]


async def test_events_before_the_joiner_are_parked_and_applied_when_it_arrives() -> None:
    w = world()
    moved = UserUpdated(user_id="u-1", user_name="ada", department="Sales")
    assert await on_user_updated(event(moved, 2), moved, w.ports) == []
    assert len(w.registry.parked) == 1
    created = UserCreated(user_id="u-1", user_name="ada", department="Eng")

    started = await on_user_created(event(created, 1), created, w.ports)

    assert w.registry.parked == {}
    identity = await w.registry.identity("u-1")
    assert identity is not None
    assert identity.profile.department == "Sales"
    assert all(r.profile.department == "Sales" for r in requests(started))
    assert (await w.registry.version("u-1")) is not None
    assert w.registry.entries["u-1"].sequence == 2


async def test_a_joiner_deleted_before_it_arrived_gets_no_accounts() -> None:
    w = world()
    deleted = UserDeleted(user_id="u-1")
    assert await on_user_status(event(deleted, 2), deleted, w.ports) == []
    created = UserCreated(user_id="u-1", user_name="ada")

    assert await on_user_created(event(created, 1), created, w.ports) == []
    assert w.registry.entries["u-1"].status == "deleted"
    assert saga_states(w, "u-1") == []


async def test_a_mover_updates_its_accounts() -> None:
    w = world()
    await joined(w, "u-1")
    moved = UserUpdated(user_id="u-1", user_name="u-1", title="Lead")

    started = await on_user_updated(event(moved, 2), moved, w.ports)

    assert operations(started) == [("crm", "update", True), ("wiki", "update", True)]
    assert all(r.profile.title == "Lead" for r in requests(started))
    assert saga_states(w, "u-1") == [("joiner", "completed"), ("mover", "running")]


async def test_a_stale_update_changes_nothing() -> None:
    w = world()
    await joined(w, "u-1")
    moved = UserUpdated(user_id="u-1", user_name="u-1", title="Lead")
    await on_user_updated(event(moved, 3), moved, w.ports)
    old = UserUpdated(user_id="u-1", user_name="u-1", title="Intern")

    assert await on_user_updated(event(old, 2), old, w.ports) == []
    identity = await w.registry.identity("u-1")
    assert identity is not None
    assert identity.profile.title == "Lead"


async def test_a_mover_queues_behind_the_joiner_in_flight_and_begins_after_it() -> None:
    w = world()
    created = UserCreated(user_id="u-1", user_name="u-1")
    joining = await on_user_created(event(created, 1), created, w.ports)
    moved = UserUpdated(user_id="u-1", user_name="u-1", title="Lead")

    assert await on_user_updated(event(moved, 2), moved, w.ports) == []
    assert saga_states(w, "u-1") == [("joiner", "running"), ("mover", "queued")]
    caused = await answer(w, joining)

    assert types(caused)[:2] == ["saga.completed", "saga.started"]
    assert operations(caused) == [("crm", "update", True), ("wiki", "update", True)]
    assert saga_states(w, "u-1") == [("joiner", "completed"), ("mover", "running")]


async def test_an_update_of_a_leaver_keeps_its_attributes_not_its_status() -> None:
    w = world(leaver_retention=timedelta(0))
    await joined(w, "u-1")
    deleted = UserDeleted(user_id="u-1")
    await answer(w, await on_user_status(event(deleted, 2), deleted, w.ports))
    moved = UserUpdated(user_id="u-1", user_name="u-1", title="Former")

    assert await on_user_updated(event(moved, 3), moved, w.ports) == []
    entry = w.registry.entries["u-1"]
    assert (entry.status, entry.profile["title"], entry.sequence) == ("deleted", "Former", 3)


async def test_deactivation_disables_and_reactivation_enables_every_account() -> None:
    w = world()
    await joined(w, "u-1")
    off = UserDeactivated(user_id="u-1")
    disabling = await on_user_status(event(off, 2), off, w.ports)
    assert operations(disabling) == [("crm", "disable", False), ("wiki", "disable", False)]
    assert w.registry.entries["u-1"].profile["active"] is False
    await answer(w, disabling)
    on = UserReactivated(user_id="u-1")

    enabling = await on_user_status(event(on, 3), on, w.ports)

    assert operations(enabling) == [("crm", "enable", True), ("wiki", "enable", True)]
    assert saga_states(w, "u-1")[1:] == [("leaver", "completed"), ("reactivation", "running")]


async def test_a_deletion_disables_now_and_deletes_after_the_retention_period() -> None:
    w = world(leaver_retention=timedelta(days=30))
    await joined(w, "u-1")
    deleted = UserDeleted(user_id="u-1")

    disabling = await on_user_status(event(deleted, 2), deleted, w.ports)

    assert operations(disabling) == [("crm", "disable", False), ("wiki", "disable", False)]
    (deletion,) = w.sagas.of_kind("account_deletion")
    assert w.sagas.timers[deletion.timer_id][1] == w.clock.now + timedelta(days=30)


async def test_without_retention_a_deletion_deletes_at_once() -> None:
    w = world(leaver_retention=timedelta(0))
    await joined(w, "u-1")
    deleted = UserDeleted(user_id="u-1")

    deleting = await on_user_status(event(deleted, 2), deleted, w.ports)

    assert [op for _, op, _ in operations(deleting)] == ["delete", "delete"]
    assert w.sagas.of_kind("account_deletion") == []


async def test_a_status_change_of_an_unknown_identity_is_parked_once() -> None:
    w = world()
    off = UserDeactivated(user_id="u-1")
    parked = event(off, 2)
    assert await on_user_status(parked, off, w.ports) == []
    assert await on_user_status(parked, off, w.ports) == []
    assert [e.event_type for _, e in w.registry.parked.values()] == ["user.deactivated"]


async def test_a_comeback_whose_user_name_went_to_another_identity_is_refused() -> None:
    w = world(leaver_retention=timedelta(0))
    await joined(w, "u-1")
    deleted = UserDeleted(user_id="u-1")
    await answer(w, await on_user_status(event(deleted, 2), deleted, w.ports))
    rehire = UserCreated(user_id="u-2", user_name="U-1")
    await on_user_created(event(rehire, 1), rehire, w.ports)
    back = UserReactivated(user_id="u-1")

    with pytest.raises(PermanentError, match="user name"):
        await on_user_status(event(back, 3), back, w.ports)


async def test_a_joiner_with_a_taken_user_name_is_refused() -> None:
    w = world()
    await joined(w, "u-1")
    twin = UserCreated(user_id="u-2", user_name="u-1")

    with pytest.raises(PermanentError, match="already belongs"):
        await on_user_created(event(twin, 1), twin, w.ports)


class Counting:
    """A port that records the name of every call it passes on."""

    def __init__(self, port: object, calls: list[str]) -> None:
        self._port = port
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._port, name)

        async def call(*args: Any) -> Any:
            self._calls.append(name)
            return await method(*args)

        return call


async def test_a_joiner_takes_one_port_call_per_read_and_write() -> None:
    w = world(birthright=everyone(["crm", "wiki", "hr"]))
    calls: list[str] = []
    ports = replace(w.ports, registry=Counting(w.registry, calls), sagas=Counting(w.sagas, calls))
    created = UserCreated(user_id="u-1", user_name="ada")

    started = await on_user_created(event(created, 1), created, ports)

    assert len(requests(started)) == 3
    # Lock, judge, write, take what waited, then start: the plan reads nothing back, and
    # every account asked for is remembered at once (8 statements on PostgreSQL).
    assert calls == [
        "lock",
        "version",
        "save_profile",
        "take_parked",
        "busy",
        "insert",
        "record_requested",
        "add_timer",
    ]
