"""The shipped workflows: today's account sagas as files a team can scope, narrow or turn
off, and the rules a set must keep (one saga per event, a leaver always runs)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from accord.events import UserCreated, UserDeactivated, UserDeleted, UserReactivated, UserUpdated
from accord.orchestrator.handlers import on_user_created, on_user_status, on_user_updated
from accord.orchestrator.workflows.loader import (
    Checks,
    WorkflowErrors,
    WorkflowSet,
    load_files,
)
from accord.orchestrator.workflows.saga_selection import WorkflowSagaSelection
from accord.orchestrator.workflows.shipped import shipped, with_shipped

from .handler_kit import event, saga_states, types, world

CHECKS = Checks(expression=lambda text: None)
NOW = datetime(2027, 1, 4, 9, tzinfo=UTC)


def saga_file(
    workflow_id: str,
    saga: str,
    event_type: str,
    *,
    extra: str = "",
    trigger_extra: str = "",
) -> str:
    return (
        f"id: {workflow_id}\ncategory: custom\ndescription: A saga.\n"
        f"trigger: {{event: {event_type}{trigger_extra}}}\n{extra}"
        f"tasks:\n  - {{id: accounts, task: account_saga, saga: {saga}}}\n"
    )


def own(*files: str) -> WorkflowSet:
    return load_files({f"f{i}.yaml": text for i, text in enumerate(files)}, CHECKS)


def problems(*files: str) -> list[str]:
    with pytest.raises(WorkflowErrors) as caught:
        with_shipped(own(*files))
    return [error.message for error in caught.value.errors]


def selection(*files: str) -> WorkflowSagaSelection:
    workflows = with_shipped(own(*files))
    return WorkflowSagaSelection(lambda: workflows, lambda: NOW)


# --- the files --------------------------------------------------------------------------------


def test_the_shipped_set_runs_each_saga_on_its_event() -> None:
    runs = {
        loaded.id: (loaded.definition.trigger.event, loaded.definition.account_saga)  # type: ignore[union-attr]
        for loaded in shipped()
    }
    assert runs == {
        "accord-joiner": ("user.created", "joiner"),
        "accord-mover": ("user.updated", "mover"),
        "accord-reactivation": ("user.reactivated", "reactivation"),
        "accord-deactivation": ("user.deactivated", "leaver"),
        "accord-leaver": ("user.deleted", "leaver"),
    }
    assert all(loaded.definition.scope is None for loaded in shipped())


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            saga_file("x", "joiner", "user.created").replace(
                "tasks:\n", "tasks:\n  - {id: mail, task: revoke_sessions}\n"
            ),
            "must be its workflow's first task",
        ),
        (
            saga_file("x", "joiner", "user.created")
            + "  - {id: again, task: account_saga, saga: joiner}\n",
            "the only account_saga of it",
        ),
        (saga_file("x", "joiner", "user.updated"), "the joiner saga runs on user.created"),
        (
            saga_file("x", "leaver", "user.created"),
            "the leaver saga runs on user.deactivated or user.deleted",
        ),
        (
            saga_file("x", "mover", "user.updated").replace(
                "saga: mover}", "saga: mover, when: 'true'}"
            ),
            "takes no when, retry or continue_on_error",
        ),
    ],
)
def test_an_account_saga_comes_first_on_its_event(text: str, reason: str) -> None:
    with pytest.raises(WorkflowErrors) as caught:
        load_files({"x.yaml": text}, CHECKS)
    assert reason in str(caught.value)


def test_tasks_may_follow_an_account_saga() -> None:
    text = saga_file("x", "joiner", "user.created") + "  - {id: mfa, task: require_mfa_enrolment}\n"
    loaded = load_files({"x.yaml": text}, CHECKS)
    assert loaded["x"].definition.runs_after_saga
    assert not shipped()["accord-joiner"].definition.runs_after_saga


# --- the set's rules --------------------------------------------------------------------------


def test_a_file_with_a_shipped_id_replaces_it() -> None:
    scoped = saga_file(
        "accord-joiner", "joiner", "user.created", extra='scope: identity.employee_type != "x"\n'
    )
    workflows = with_shipped(own(scoped))
    assert workflows["accord-joiner"].source == "f0.yaml"
    assert workflows["accord-joiner"].definition.scope == 'identity.employee_type != "x"'
    assert len(workflows) == len(shipped())


def test_two_workflows_may_not_run_the_same_saga_on_the_same_event() -> None:
    assert problems(saga_file("my-joiner", "joiner", "user.created")) == [
        "workflow 'my-joiner' runs the joiner saga on user.created, as 'accord-joiner' "
        f"({shipped()['accord-joiner'].source}) does: one workflow per saga and event "
        "(scope one, or disable it)"
    ]
    # Replacing the shipped one under its own id, or turning it off, is the way.
    off = saga_file("accord-joiner", "joiner", "user.created", extra="enabled: false\n")
    assert "my-joiner" in with_shipped(own(off, saga_file("my-joiner", "joiner", "user.created")))


@pytest.mark.parametrize("workflow_id", ["accord-leaver", "accord-deactivation"])
def test_a_leaver_can_be_neither_turned_off_nor_scoped(workflow_id: str) -> None:
    event_type = "user.deleted" if workflow_id == "accord-leaver" else "user.deactivated"
    off = saga_file(workflow_id, "leaver", event_type, extra="enabled: false\n")
    assert problems(off) == [
        f"no enabled workflow runs the leaver saga on {event_type}: a leaver must always lose "
        "its accounts (keep the shipped one, or replace it with one that runs "
        "`account_saga: leaver` on that event)"
    ]
    scoped = saga_file(workflow_id, "leaver", event_type, extra="scope: identity.active\n")
    assert problems(scoped) == [
        f"workflow {workflow_id!r} scopes the leaver saga on {event_type}: a leaver must always "
        "lose its accounts, whoever they are (remove the scope)"
    ]


# --- which sagas start ------------------------------------------------------------------------


async def test_the_shipped_set_starts_every_saga_as_before() -> None:
    w = world(selection=selection())
    created = UserCreated(user_id="u-1", user_name="ada", department="Eng")
    await on_user_created(event(created, 1), created, w.ports)
    assert saga_states(w, "u-1") == [("joiner", "running")]


async def test_a_scoped_joiner_starts_for_those_in_scope_only() -> None:
    scoped = saga_file(
        "accord-joiner", "joiner", "user.created", extra='scope: identity.department == "Eng"\n'
    )
    w = world(selection=selection(scoped))
    eng = UserCreated(user_id="u-1", user_name="ada", department="Eng")
    sales = UserCreated(user_id="u-2", user_name="bob", department="Sales")
    await on_user_created(event(eng, 1), eng, w.ports)
    assert await on_user_created(event(sales, 1), sales, w.ports) == []

    assert saga_states(w, "u-1") == [("joiner", "running")]
    assert saga_states(w, "u-2") == []
    assert (await w.registry.identity("u-2")) is not None  # registered all the same


async def test_a_mover_narrowed_to_department_changes_ignores_a_new_title() -> None:
    narrowed = saga_file(
        "accord-mover", "mover", "user.updated", trigger_extra=", changed: [department]"
    )
    w = world(selection=selection(narrowed))
    created = UserCreated(user_id="u-1", user_name="ada", department="Eng")
    await on_user_created(event(created, 1), created, w.ports)
    w.sagas.rows.clear()  # the joiner is not the point here

    titled = UserUpdated(user_id="u-1", user_name="ada", department="Eng", title="Lead")
    assert await on_user_updated(event(titled, 2), titled, w.ports) == []
    moved = UserUpdated(user_id="u-1", user_name="ada", department="Sales", title="Lead")
    started = await on_user_updated(event(moved, 3), moved, w.ports)

    assert types(started)[0] == "saga.started"
    assert [saga for saga, _ in saga_states(w, "u-1")] == ["mover"]
    assert (await w.registry.identity("u-1")).profile.title == "Lead"  # type: ignore[union-attr]


async def test_a_scoped_reactivation_reads_the_identity_and_a_leaver_always_runs() -> None:
    scoped = saga_file(
        "accord-reactivation",
        "reactivation",
        "user.reactivated",
        extra='scope: identity.department == "Eng"\n',
    )
    w = world(selection=selection(scoped))
    created = UserCreated(user_id="u-1", user_name="bob", department="Sales")
    await on_user_created(event(created, 1), created, w.ports)
    w.sagas.rows.clear()

    gone = UserDeactivated(user_id="u-1")
    await on_user_status(event(gone, 2), gone, w.ports)
    assert [saga for saga, _ in saga_states(w, "u-1")] == ["leaver"]
    back = UserReactivated(user_id="u-1")
    assert await on_user_status(event(back, 3), back, w.ports) == []
    assert [saga for saga, _ in saga_states(w, "u-1")] == ["leaver"]
    assert (await w.registry.identity("u-1")).status == "active"  # type: ignore[union-attr]

    deleted = UserDeleted(user_id="u-1")
    await on_user_status(event(deleted, 4), deleted, w.ports)
    assert [saga for saga, _ in saga_states(w, "u-1")] == ["leaver", "leaver"]
