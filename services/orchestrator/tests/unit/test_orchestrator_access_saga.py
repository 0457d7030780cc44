"""Access sagas on the pure saga engine: group membership steps, their results, failure, retry."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from accord.orchestrator.domain import account_saga as saga
from accord.orchestrator.domain.account_saga import (
    CompleteSaga,
    FailSaga,
    Operation,
    ProvisionAccount,
    Provisioned,
    ProvisionFailed,
    RetryRequested,
    SagaState,
    ScheduleRetry,
    Step,
    step_id,
)
from accord.orchestrator.domain.plans import memberships

T0 = datetime(2025, 1, 6, 9, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(seconds=1)
T2 = T0 + timedelta(seconds=2)
SAGA = "saga-7"
USER = "e-1001"
SALES = "cn=sales,ou=groups"
CRM = "CRM Users"
EDITORS = "editors"
#: The event contract's Identifier: what a step id must be.
IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]*$")


def grant(*groups: tuple[str, str], operation: Operation = "add_member") -> SagaState:
    """A running access saga with one step per (target, group)."""
    saga_type: saga.SagaType = "access_grant" if operation == "add_member" else "access_revoke"
    state, _ = saga.start(
        SAGA, USER, memberships(groups, operation), T0, saga_type=saga_type, transient_rounds=2
    )
    return state


def added(target: str, group: str) -> Provisioned:
    return Provisioned(target, "add_member", group)


def refused(target: str, group: str, reason: str, *, retryable: bool = False) -> ProvisionFailed:
    return ProvisionFailed(target, reason, "add_member", retryable=retryable, group=group)


def statuses(state: SagaState) -> dict[tuple[str, str | None], str]:
    return {s.key: s.status for s in state.steps}


# --- start -----------------------------------------------------------------------------------


def test_a_grant_asks_for_each_membership_with_its_group_in_target_then_group_order() -> None:
    steps = memberships([("wiki", EDITORS), ("ldap", SALES), ("ldap", CRM)], "add_member")

    state, commands = saga.start(SAGA, USER, steps, T0, saga_type="access_grant")

    assert state.status == "running"
    assert state.saga_type == "access_grant"
    assert [(s.target, s.group) for s in state.steps] == [
        ("ldap", CRM),
        ("ldap", SALES),
        ("wiki", EDITORS),
    ]
    assert commands == [
        ProvisionAccount("ldap", step_id(SAGA, "ldap", group=CRM), "add_member", CRM),
        ProvisionAccount("ldap", step_id(SAGA, "ldap", group=SALES), "add_member", SALES),
        ProvisionAccount("wiki", step_id(SAGA, "wiki", group=EDITORS), "add_member", EDITORS),
    ]


def test_a_revocation_asks_to_remove_each_membership() -> None:
    steps = memberships([("wiki", EDITORS)], "remove_member")

    _, commands = saga.start(SAGA, USER, steps, T0, saga_type="access_revoke")

    assert commands == [
        ProvisionAccount("wiki", step_id(SAGA, "wiki", group=EDITORS), "remove_member", EDITORS)
    ]


def test_the_same_membership_twice_is_one_step() -> None:
    state = grant(("wiki", EDITORS), ("wiki", EDITORS))

    assert state.steps == (Step("wiki", "add_member", group=EDITORS),)


def test_several_groups_in_one_target_name_the_target_once() -> None:
    state = grant(("ldap", SALES), ("ldap", CRM), ("wiki", EDITORS))

    assert state.targets() == ("ldap", "wiki")
    assert state.step("ldap", SALES) == Step("ldap", "add_member", group=SALES)
    assert state.step("ldap") is None  # no account step in an access saga


def test_starting_from_steps_begins_them_afresh() -> None:
    done = Step("wiki", "add_member", "done", attempts=3, error="x", group=EDITORS)

    state, _ = saga.start(SAGA, USER, [done], T0, saga_type="access_grant")

    assert state.steps == (Step("wiki", "add_member", group=EDITORS),)


@pytest.mark.parametrize(
    ("operation", "group"),
    [("add_member", None), ("remove_member", None), ("create", EDITORS), ("delete", EDITORS)],
)
def test_a_step_names_a_group_exactly_when_it_is_a_membership(
    operation: Operation, group: str | None
) -> None:
    with pytest.raises(ValueError, match="group"):
        Step("wiki", operation, group=group)


# --- step ids --------------------------------------------------------------------------------


def test_a_membership_step_id_is_stable_per_group_and_an_identifier() -> None:
    sales = step_id(SAGA, "ldap", group=SALES)

    assert sales == step_id(SAGA, "ldap", group=SALES)
    assert sales.startswith(f"{SAGA}:ldap:")
    assert sales not in (step_id(SAGA, "ldap", group=CRM), step_id(SAGA, "ldap"))
    assert IDENTIFIER.match(sales)
    assert IDENTIFIER.match(step_id(SAGA, "ldap", group="Ünïcode group / with spaces"))


# --- results ---------------------------------------------------------------------------------


def test_a_result_finishes_the_step_of_its_group_only() -> None:
    state = grant(("ldap", SALES), ("ldap", CRM))

    state, commands = saga.decide(state, added("ldap", SALES), T1)

    assert commands == []
    assert statuses(state) == {("ldap", CRM): "pending", ("ldap", SALES): "done"}


def test_every_membership_added_completes_the_grant() -> None:
    state = grant(("ldap", SALES), ("wiki", EDITORS))
    state, _ = saga.decide(state, added("wiki", EDITORS), T1)

    state, commands = saga.decide(state, added("ldap", SALES), T2)

    assert state.status == "completed"
    assert commands == [CompleteSaga(2000)]


def test_a_revocation_completes_on_its_remove_member_results() -> None:
    state = grant(("wiki", EDITORS), operation="remove_member")

    state, commands = saga.decide(state, Provisioned("wiki", "remove_member", EDITORS), T1)

    assert (state.status, commands) == ("completed", [CompleteSaga(1000)])


@pytest.mark.parametrize(
    "event",
    [
        Provisioned("ldap", "add_member", "other"),
        Provisioned("ldap", "remove_member", SALES),
        Provisioned("ldap", "create"),
        Provisioned("wiki", "add_member", SALES),
    ],
    ids=["other-group", "other-operation", "account-result", "other-target"],
)
def test_a_result_for_another_membership_changes_nothing(event: Provisioned) -> None:
    state = grant(("ldap", SALES))

    assert saga.decide(state, event, T1) == (state, [])


# --- failures --------------------------------------------------------------------------------


def test_a_grant_without_an_account_in_the_target_fails_with_that_reason() -> None:
    state = grant(("ldap", SALES), ("wiki", EDITORS))
    state, _ = saga.decide(state, added("wiki", EDITORS), T1)
    reason = "ldap: no account to add to group 'cn=sales,ou=groups'"

    state, commands = saga.decide(state, refused("ldap", SALES, reason), T2)

    assert state.status == "failed"
    assert commands == [FailSaga(f"provisioning failed in ldap group {SALES}: {reason}", ("ldap",))]
    # No compensation: the membership that was added stays, the refusal waits for an operator.
    assert statuses(state) == {("ldap", SALES): "failed", ("wiki", EDITORS): "done"}


def test_a_grant_never_rolls_back_even_when_asked_to() -> None:
    steps = memberships([("ldap", SALES), ("wiki", EDITORS)], "add_member")
    state, _ = saga.start(SAGA, USER, steps, T0, saga_type="access_grant", on_failure="rollback")

    state, commands = saga.decide(state, added("wiki", EDITORS), T1)
    state, commands = saga.decide(state, refused("ldap", SALES, "refused"), T1)

    assert state.status == "failed"
    assert [type(c) for c in commands] == [FailSaga]


def test_a_transient_failure_retries_by_itself_only_the_failed_membership() -> None:
    state = grant(("ldap", SALES), ("ldap", CRM))
    state, _ = saga.decide(state, added("ldap", CRM), T1)

    state, commands = saga.decide(state, refused("ldap", SALES, "503", retryable=True), T1)
    assert commands[-1] == ScheduleRetry(1)

    state, commands = saga.decide(state, RetryRequested(), T2)

    assert state.status == "running"
    assert commands == [
        ProvisionAccount("ldap", step_id(SAGA, "ldap", group=SALES), "add_member", SALES)
    ]
    assert state.step("ldap", SALES) == Step("ldap", "add_member", attempts=2, group=SALES)


def test_a_late_success_heals_a_failed_grant() -> None:
    state = grant(("ldap", SALES))
    state, _ = saga.decide(state, refused("ldap", SALES, "down", retryable=True), T1)

    state, commands = saga.decide(state, added("ldap", SALES), T2)

    assert (state.status, commands) == ("completed", [CompleteSaga(2000)])


def test_a_timed_out_membership_is_a_transient_failure() -> None:
    state = grant(("ldap", SALES))

    state, commands = saga.decide(state, saga.TimedOut(0, "running", 600), T1)

    assert state.step("ldap", SALES).retryable  # type: ignore[union-attr]
    assert commands == [
        FailSaga(f"provisioning failed in ldap group {SALES}: no answer within 600 s", ("ldap",)),
        ScheduleRetry(1),
    ]


# --- queued behind another saga --------------------------------------------------------------


def test_a_queued_grant_keeps_its_memberships_and_begins_with_them() -> None:
    steps = memberships([("ldap", SALES)], "add_member")
    queued = saga.queue(SAGA, USER, "access_grant", T0, steps=steps)
    assert (queued.status, queued.steps) == ("queued", steps)
    assert saga.decide(queued, added("ldap", SALES), T1) == (queued, [])  # not begun yet

    state, commands = saga.begin(queued, queued.steps, T1, transient_rounds=2)

    assert state.status == "running"
    assert commands == [
        ProvisionAccount("ldap", step_id(SAGA, "ldap", group=SALES), "add_member", SALES)
    ]


def test_cancelling_a_queued_grant_names_its_targets() -> None:
    steps = memberships([("ldap", SALES), ("ldap", CRM)], "add_member")
    queued = saga.queue(SAGA, USER, "access_grant", T0, steps=steps)

    state, commands = saga.decide(queued, saga.CancelRequested("access revoked"), T1)

    assert state.status == "cancelled"
    assert commands == [FailSaga("cancelled: access revoked", ("ldap",))]
