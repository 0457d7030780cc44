"""Partial user.updated events (`changed`) in the registry: the fields they do not list keep
the registry's values, a listed department starts the mover, a parked one merges into the
joiner's profile, and SCIM's full snapshots still replace the profile."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from accord.events import UserCreated, UserDeactivated, UserUpdated
from accord.orchestrator.handlers import on_user_created, on_user_status, on_user_updated
from accord.orchestrator.workflows.loader import Checks, load_files
from accord.orchestrator.workflows.saga_selection import WorkflowSagaSelection
from accord.orchestrator.workflows.shipped import with_shipped
from accord.runtime.errors import PermanentError

from .handler_kit import FakeWorld, event, requests, saga_states, types, world

PROFILE = {
    "given_name": "Ada",
    "family_name": "Lovelace",
    "email": "ada@example.org",
    "title": "Analyst",
    "department": "Eng",
    "manager_id": "u-9",
    "attributes": {"site": "Lyon", "badge": "42"},
}
#: The shipped mover, narrowed to department changes (as a team would keep it).
MOVER_ON_DEPARTMENT = (
    "id: accord-mover\ncategory: mover\ndescription: A saga.\n"
    "trigger: {event: user.updated, changed: [department]}\n"
    "tasks:\n  - {id: accounts, task: account_saga, saga: mover}\n"
)


def narrowed_world() -> FakeWorld:
    workflows = with_shipped(
        load_files({"mover.yaml": MOVER_ON_DEPARTMENT}, Checks(expression=lambda text: None))
    )
    now = datetime(2027, 1, 4, 9, tzinfo=UTC)
    return world(selection=WorkflowSagaSelection(lambda: workflows, lambda: now))


async def created(w: FakeWorld) -> None:
    joiner = UserCreated(user_id="u-1", user_name="ada", **PROFILE)
    await on_user_created(event(joiner, 1), joiner, w.ports)
    w.sagas.rows.clear()  # the joiner is not the point here


async def profile_of(w: FakeWorld) -> dict[str, object]:
    identity = await w.registry.identity("u-1")
    assert identity is not None
    return identity.profile.model_dump(exclude_defaults=True)


async def test_a_partial_update_keeps_the_fields_it_does_not_list() -> None:
    w = narrowed_world()
    await created(w)
    # A source that maps the title only: what it does not map arrives unset.
    titled = UserUpdated(user_id="u-1", user_name="hr.ada", title="Lead", changed=["title"])

    assert await on_user_updated(event(titled, 2), titled, w.ports) == []  # no department move
    assert await profile_of(w) == {"user_name": "ada", **PROFILE, "title": "Lead"}
    entry = w.registry.entries["u-1"]
    assert (entry.user_name, entry.sequence, entry.status) == ("ada", 2, "active")
    assert saga_states(w, "u-1") == []


async def test_a_partial_update_of_the_department_starts_the_mover_with_the_whole_profile() -> None:
    w = narrowed_world()
    await created(w)
    moved = UserUpdated(user_id="u-1", user_name="ada", department="Sales", changed=["department"])

    started = await on_user_updated(event(moved, 2), moved, w.ports)

    assert types(started)[0] == "saga.started"
    assert [saga for saga, _ in saga_states(w, "u-1")] == ["mover"]
    assert {
        (r.profile.department, r.profile.title, r.profile.email) for r in requests(started)
    } == {("Sales", "Analyst", "ada@example.org")}


async def test_a_partial_update_that_changes_nothing_listed_starts_nothing() -> None:
    w = narrowed_world()
    await created(w)
    same = UserUpdated(user_id="u-1", user_name="ada", department="Eng", changed=["department"])

    assert await on_user_updated(event(same, 2), same, w.ports) == []
    assert saga_states(w, "u-1") == []
    assert w.registry.entries["u-1"].sequence == 2  # applied all the same


async def test_a_partial_update_of_one_attribute_keeps_the_others() -> None:
    w = narrowed_world()
    await created(w)
    site = UserUpdated(
        user_id="u-1", user_name="ada", attributes={"site": "Paris"}, changed=["attributes.site"]
    )

    await on_user_updated(event(site, 2), site, w.ports)

    assert (await profile_of(w))["attributes"] == {"site": "Paris", "badge": "42"}


async def test_a_partial_update_keeps_a_deactivation_it_does_not_list() -> None:
    w = world()
    await created(w)
    off = UserDeactivated(user_id="u-1")
    await on_user_status(event(off, 2), off, w.ports)
    titled = UserUpdated(user_id="u-1", user_name="ada", title="Lead", changed=["title"])

    await on_user_updated(event(titled, 3), titled, w.ports)

    entry = w.registry.entries["u-1"]
    assert (entry.status, entry.profile["active"], entry.profile["title"]) == (
        "inactive",
        False,
        "Lead",
    )


async def test_a_parked_partial_update_merges_into_the_joiner_when_it_arrives() -> None:
    w = world()
    early = UserUpdated(user_id="u-1", user_name="x", department="Sales", changed=["department"])
    assert await on_user_updated(event(early, 2), early, w.ports) == []
    joiner = UserCreated(user_id="u-1", user_name="ada", **PROFILE)

    started = await on_user_created(event(joiner, 1), joiner, w.ports)

    assert await profile_of(w) == {"user_name": "ada", **PROFILE, "department": "Sales"}
    assert w.registry.entries["u-1"].sequence == 2
    assert {(r.profile.department, r.profile.title) for r in requests(started)} == {
        ("Sales", "Analyst")
    }


async def test_a_full_snapshot_still_replaces_the_profile() -> None:
    w = world()
    await created(w)
    snapshot = UserUpdated(user_id="u-1", user_name="ada", department="Sales")

    await on_user_updated(event(snapshot, 2), snapshot, w.ports)

    assert await profile_of(w) == {"user_name": "ada", "department": "Sales"}


async def test_a_partial_update_beyond_the_attribute_limit_is_a_permanent_error() -> None:
    w = world()
    joiner = UserCreated(
        user_id="u-1", user_name="ada", attributes={f"a{i}": "x" for i in range(64)}
    )
    await on_user_created(event(joiner, 1), joiner, w.ports)
    more = UserUpdated(
        user_id="u-1", user_name="ada", attributes={"more": "x"}, changed=["attributes.more"]
    )

    with pytest.raises(PermanentError, match=r"user\.updated cannot be applied"):
        await on_user_updated(event(more, 2), more, w.ports)
