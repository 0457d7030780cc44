"""Identity date attributes (hire and leave dates), employee type and time zone in the
orchestrator: kept in the registry as they came, and seen as changes by a mover."""

from __future__ import annotations

import pytest

from accord.events import Profile, UserCreated, UserUpdated
from accord.orchestrator.domain.identity import changed_attributes
from accord.orchestrator.handlers import on_user_created, on_user_updated

from .handler_kit import answer, event, operations, saga_states, world

LIFECYCLE = {
    "employee_type": "contractor",
    "hire_date": "2025-03-03",
    "leave_date": "2026-02-27T18:00:00+01:00",
    "time_zone": "Europe/Paris",
}


@pytest.mark.parametrize(
    ("field", "before", "after"),
    [
        ("hire_date", "2025-03-03", "2025-03-10"),
        ("hire_date", "2025-03-03", "2025-03-03T00:00:00Z"),  # a day is no instant
        ("hire_date", "2025-03-03", None),  # a rescinded hire
        ("leave_date", None, "2026-02-27"),
        ("employee_type", "contractor", "employee"),
        ("time_zone", "Europe/Paris", "America/New_York"),
    ],
)
def test_a_change_of_a_lifecycle_field_is_seen(
    field: str, before: str | None, after: str | None
) -> None:
    old = Profile(user_name="ada", department="Eng", **{field: before})
    new = old.model_copy(update={field: after})
    assert changed_attributes(old, new) == {field}


def test_the_other_fields_are_seen_as_before_and_attributes_by_name() -> None:
    old = Profile(user_name="ada", department="Eng", manager_id="m-1", attributes={"site": "A"})
    new = old.model_copy(
        update={"department": "Sales", "manager_id": "m-2", "attributes": {"desk": "4"}}
    )
    assert changed_attributes(old, new) == {
        "department",
        "manager_id",
        "attributes.site",
        "attributes.desk",
    }
    assert changed_attributes(old, old) == frozenset()


def test_a_joiner_changes_every_attribute_it_has() -> None:
    joiner = Profile(user_name="ada", hire_date="2025-03-03", attributes={"site": "A"})
    assert changed_attributes(None, joiner) == {
        "user_name",
        "active",
        "hire_date",
        "attributes.site",
    }


async def test_the_registry_keeps_the_fields_and_a_mover_still_updates_every_account() -> None:
    w = world()
    created = UserCreated(user_id="u-1", user_name="ada", **LIFECYCLE)
    await answer(w, await on_user_created(event(created, 1), created, w.ports))
    identity = await w.registry.identity("u-1")
    assert identity is not None
    assert identity.profile.model_dump(include=set(LIFECYCLE)) == LIFECYCLE

    moved = UserUpdated(user_id="u-1", user_name="ada", **{**LIFECYCLE, "hire_date": "2025-04-01"})
    started = await on_user_updated(event(moved, 2), moved, w.ports)

    identity = await w.registry.identity("u-1")
    assert identity is not None
    assert identity.profile.hire_date == "2025-04-01"
    assert identity.profile.leave_date == LIFECYCLE["leave_date"]  # kept exactly as sent
    assert changed_attributes(created.profile(), identity.profile) == {"hire_date"}
    # Today's mover: every newer update updates the accounts, whatever changed.
    assert operations(started) == [("crm", "update", True), ("wiki", "update", True)]
    assert saga_states(w, "u-1") == [("joiner", "completed"), ("mover", "running")]
