"""The joiner saga's pure decide(): start, results, completion, failure, terminal states."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from accord.orchestrator.domain import joiner
from accord.orchestrator.domain.joiner import (
    CompleteSaga,
    FailSaga,
    InvalidTransition,
    JoinerState,
    ProvisionAccount,
    Provisioned,
    ProvisionFailed,
)

T0 = datetime(2025, 1, 6, 9, 0, 0, tzinfo=UTC)
SAGA = "saga-1"
USER = "e-1001"


def started(targets: list[str]) -> JoinerState:
    state, _ = joiner.start(SAGA, USER, targets, T0)
    return state


# --- start -----------------------------------------------------------------------------------


def test_start_issues_one_provision_command_per_target_sorted() -> None:
    state, commands = joiner.start(SAGA, USER, ["wiki", "crm", "mail"], T0)

    assert commands == [
        ProvisionAccount("crm", joiner.step_id(SAGA, "crm")),
        ProvisionAccount("mail", joiner.step_id(SAGA, "mail")),
        ProvisionAccount("wiki", joiner.step_id(SAGA, "wiki")),
    ]
    assert state.status == "running"
    assert state.saga_id == SAGA
    assert state.user_id == USER
    assert state.started_at == T0
    assert state.pending == frozenset({"wiki", "crm", "mail"})
    assert state.done == frozenset()
    assert state.failed == ()


def test_start_without_targets_completes_at_once() -> None:
    state, commands = joiner.start(SAGA, USER, [], T0)

    assert state.status == "completed"
    assert state.pending == frozenset()
    assert commands == [CompleteSaga(0)]


def test_start_does_not_mutate_the_callers_target_list() -> None:
    targets = ["wiki", "crm"]
    joiner.start(SAGA, USER, targets, T0)
    assert targets == ["wiki", "crm"]


# --- step ids --------------------------------------------------------------------------------


def test_step_id_is_stable_for_a_saga_and_target() -> None:
    assert joiner.step_id(SAGA, "wiki") == joiner.step_id(SAGA, "wiki")
    assert joiner.step_id(SAGA, "wiki") != joiner.step_id(SAGA, "crm")
    assert joiner.step_id(SAGA, "wiki") != joiner.step_id("saga-2", "wiki")


def test_starting_the_same_saga_twice_gives_the_same_step_ids() -> None:
    _, first = joiner.start(SAGA, USER, ["wiki", "crm"], T0)
    _, again = joiner.start(SAGA, USER, ["crm", "wiki"], T0 + timedelta(minutes=5))
    assert first == again


# --- results ---------------------------------------------------------------------------------


def test_one_of_several_results_only_moves_the_target_to_done() -> None:
    state = started(["wiki", "crm"])

    new, commands = joiner.decide(state, Provisioned("wiki"), T0 + timedelta(seconds=1))

    assert commands == []
    assert new.status == "running"
    assert new.pending == frozenset({"crm"})
    assert new.done == frozenset({"wiki"})


def test_all_targets_provisioned_completes_with_the_duration() -> None:
    state = started(["wiki", "crm"])
    state, _ = joiner.decide(state, Provisioned("crm"), T0 + timedelta(milliseconds=400))

    state, commands = joiner.decide(state, Provisioned("wiki"), T0 + timedelta(seconds=1.5))

    assert state.status == "completed"
    assert state.pending == frozenset()
    assert state.done == frozenset({"wiki", "crm"})
    assert commands == [CompleteSaga(1500)]


def test_duration_is_never_negative_when_the_clock_goes_back() -> None:
    state = started(["wiki"])
    _, commands = joiner.decide(state, Provisioned("wiki"), T0 - timedelta(seconds=3))
    assert commands == [CompleteSaga(0)]


def test_a_failure_waits_for_the_other_results() -> None:
    state = started(["wiki", "crm"])

    state, commands = joiner.decide(
        state, ProvisionFailed("crm", "refused"), T0 + timedelta(seconds=1)
    )

    assert commands == []
    assert state.status == "running"
    assert state.failed == (("crm", "refused"),)


def test_one_failure_fails_the_saga_naming_the_target_once_all_results_are_in() -> None:
    state = started(["wiki", "crm"])
    state, _ = joiner.decide(state, ProvisionFailed("crm", "409 conflict"), T0)

    state, commands = joiner.decide(state, Provisioned("wiki"), T0 + timedelta(seconds=2))

    assert state.status == "failed"
    assert state.done == frozenset({"wiki"})
    assert len(commands) == 1
    command = commands[0]
    assert isinstance(command, FailSaga)
    assert command.failed_targets == ("crm",)
    assert "crm" in command.reason
    assert "409 conflict" in command.reason
    assert "wiki" not in command.reason


def test_several_failures_are_all_named_in_arrival_order() -> None:
    state = started(["a", "b", "c"])
    state, _ = joiner.decide(state, ProvisionFailed("c", "down"), T0)
    state, _ = joiner.decide(state, Provisioned("b"), T0)
    state, commands = joiner.decide(state, ProvisionFailed("a", "refused"), T0)

    assert state.status == "failed"
    assert commands == [
        FailSaga("provisioning failed in c: down; a: refused", failed_targets=("c", "a"))
    ]


def test_a_result_for_an_unknown_target_changes_nothing() -> None:
    state = started(["wiki"])

    new, commands = joiner.decide(state, Provisioned("payroll"), T0)

    assert new == state
    assert commands == []


def test_a_repeated_result_for_a_finished_step_changes_nothing() -> None:
    state = started(["wiki", "crm"])
    state, _ = joiner.decide(state, Provisioned("wiki"), T0)

    again, commands = joiner.decide(state, ProvisionFailed("wiki", "late failure"), T0)

    assert again == state
    assert commands == []


@pytest.mark.parametrize(
    "event", [Provisioned("wiki"), ProvisionFailed("wiki", "late")], ids=["provisioned", "failed"]
)
def test_a_result_for_a_completed_saga_changes_nothing(
    event: Provisioned | ProvisionFailed,
) -> None:
    state = started(["wiki"])
    state, _ = joiner.decide(state, Provisioned("wiki"), T0)
    assert state.status == "completed"
    # Even a result that looks pending cannot move a finished saga.
    reopened = replace(state, pending=frozenset({"wiki"}))

    new, commands = joiner.decide(reopened, event, T0)

    assert new == reopened
    assert commands == []


def test_a_result_for_a_failed_saga_changes_nothing() -> None:
    state = started(["wiki"])
    state, _ = joiner.decide(state, ProvisionFailed("wiki", "refused"), T0)
    assert state.status == "failed"

    new, commands = joiner.decide(state, Provisioned("wiki"), T0)

    assert new == state
    assert commands == []


# --- transitions -----------------------------------------------------------------------------


def test_terminal_states_allow_no_transition() -> None:
    assert joiner.TRANSITIONS["completed"] == frozenset()
    assert joiner.TRANSITIONS["failed"] == frozenset()
    assert joiner.TRANSITIONS["running"] == frozenset({"running", "completed", "failed"})


@pytest.mark.parametrize("origin", ["completed", "failed"])
@pytest.mark.parametrize("destination", ["running", "completed", "failed"])
def test_transitions_out_of_a_terminal_state_raise(origin: str, destination: str) -> None:
    state = replace(started(["wiki"]), status=origin)  # type: ignore[arg-type]

    with pytest.raises(InvalidTransition, match=f"from {origin} to {destination}"):
        joiner._move(state, destination)  # type: ignore[arg-type]


def test_invalid_transition_is_a_value_error() -> None:
    assert issubclass(InvalidTransition, ValueError)


def test_decide_never_mutates_the_given_state() -> None:
    state = started(["wiki", "crm"])
    snapshot = replace(state)

    joiner.decide(state, Provisioned("wiki"), T0)
    joiner.decide(state, ProvisionFailed("crm", "x"), T0)

    assert state == snapshot


def test_a_repeated_target_is_provisioned_once() -> None:
    state, commands = joiner.start(SAGA, USER, ["wiki", "wiki"], T0)

    assert state.pending == frozenset({"wiki"})
    assert commands == [ProvisionAccount("wiki", joiner.step_id(SAGA, "wiki"))]
