"""Account sagas' pure start()/decide(): fan-out, failure, rollback, retry, cancel, backoff."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import product

import pytest

from accord.orchestrator.domain import account_saga as saga
from accord.orchestrator.domain.account_saga import (
    COMPENSATIONS,
    TERMINAL,
    TRANSITIONS,
    Backoff,
    CancelRequested,
    Command,
    CompleteSaga,
    FailSaga,
    InvalidTransition,
    Operation,
    ProvisionAccount,
    Provisioned,
    ProvisionFailed,
    RetryRequested,
    SagaEvent,
    SagaState,
    ScheduleRetry,
    Status,
    Step,
    step_id,
)

T0 = datetime(2025, 1, 6, 9, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(seconds=1)
T2 = T0 + timedelta(seconds=2)
T3 = T0 + timedelta(seconds=3)
SAGA = "saga-1"
USER = "e-1001"
STATUSES: tuple[Status, ...] = (
    "queued",
    "running",
    "compensating",
    "completed",
    "failed",
    "cancelled",
)


def creates(*targets: str) -> dict[str, Operation]:
    return dict.fromkeys(targets, "create")


def started(steps: dict[str, Operation], **options: object) -> SagaState:
    options.setdefault("saga_type", "joiner")
    state, _ = saga.start(SAGA, USER, steps, T0, **options)  # type: ignore[arg-type]
    return state


def feed(
    state: SagaState, *events: SagaEvent, at: datetime = T0
) -> tuple[SagaState, list[Command]]:
    """Apply events in order; the commands are those of the last event."""
    commands: list[Command] = []
    for event in events:
        state, commands = saga.decide(state, event, at)
    return state, commands


def undo(target: str) -> ProvisionAccount:
    return ProvisionAccount(target, step_id(SAGA, target, compensation=True), "delete")


def statuses(state: SagaState) -> dict[str, str]:
    return {s.target: s.status for s in state.steps}


def rolling_back() -> SagaState:
    """A rollback joiner: crm and mail created, wiki refused, both compensations in flight."""
    state = started(creates("wiki", "crm", "mail"), on_failure="rollback")
    state, _ = feed(state, Provisioned("crm"), Provisioned("mail"), ProvisionFailed("wiki", "no"))
    assert state.status == "compensating"
    return state


def failed_keep() -> SagaState:
    """A keep joiner that ended failed: crm created, wiki refused."""
    state = started(creates("wiki", "crm"))
    state, _ = feed(state, Provisioned("crm"), ProvisionFailed("wiki", "refused"), at=T1)
    assert state.status == "failed"
    return state


# --- start -----------------------------------------------------------------------------------


def test_start_issues_one_command_per_target_sorted_with_its_operation() -> None:
    state, commands = saga.start(
        SAGA, USER, {"wiki": "update", "crm": "create", "mail": "delete"}, T0, saga_type="mover"
    )

    assert commands == [
        ProvisionAccount("crm", step_id(SAGA, "crm"), "create"),
        ProvisionAccount("mail", step_id(SAGA, "mail"), "delete"),
        ProvisionAccount("wiki", step_id(SAGA, "wiki"), "update"),
    ]
    assert state.status == "running"
    assert state.saga_id == SAGA
    assert state.user_id == USER
    assert state.saga_type == "mover"
    assert state.started_at == T0
    assert state.on_failure == "keep"
    assert state.retries_itself is False
    assert state.failures == 0
    assert state.steps == (
        Step("crm", "create"),
        Step("mail", "delete"),
        Step("wiki", "update"),
    )
    assert all(
        s.status == "pending" and s.attempts == 1 and s.error is None and s.finished_at is None
        for s in state.steps
    )


def test_start_keeps_the_failure_policy_and_self_retry() -> None:
    state = started(creates("wiki"), on_failure="rollback", retries_itself=True)

    assert state.on_failure == "rollback"
    assert state.retries_itself is True


@pytest.mark.parametrize(
    "saga_type", ["joiner", "mover", "reactivation", "leaver", "access_grant", "access_revoke"]
)
def test_start_without_steps_completes_at_once(saga_type: str) -> None:
    state, commands = saga.start(SAGA, USER, {}, T0, saga_type=saga_type)  # type: ignore[arg-type]

    assert state.status == "completed"
    assert state.steps == ()
    assert commands == [CompleteSaga(0)]


def test_start_does_not_mutate_the_callers_steps() -> None:
    steps = creates("wiki", "crm")
    saga.start(SAGA, USER, steps, T0, saga_type="joiner")
    assert steps == {"wiki": "create", "crm": "create"}


def test_step_and_targets_look_steps_up() -> None:
    state, _ = feed(started(creates("wiki", "crm", "mail")), Provisioned("mail"))

    assert state.step("wiki") == Step("wiki", "create")
    assert state.step("payroll") is None
    assert state.targets() == ("crm", "mail", "wiki")
    assert state.targets("pending") == ("crm", "wiki")
    assert state.targets("done", "failed") == ("mail",)


# --- step ids --------------------------------------------------------------------------------


def test_step_id_is_stable_for_a_saga_and_target() -> None:
    assert step_id(SAGA, "wiki") == step_id(SAGA, "wiki") == "saga-1:wiki"
    assert step_id(SAGA, "wiki") != step_id(SAGA, "crm")
    assert step_id(SAGA, "wiki") != step_id("saga-2", "wiki")


def test_a_compensation_has_its_own_step_id() -> None:
    assert step_id(SAGA, "wiki", compensation=True) == "saga-1:wiki:undo"
    assert step_id(SAGA, "wiki", compensation=True) != step_id(SAGA, "wiki")


def test_starting_the_same_saga_twice_gives_the_same_commands() -> None:
    _, first = saga.start(SAGA, USER, creates("wiki", "crm"), T0, saga_type="joiner")
    _, again = saga.start(
        SAGA, USER, creates("crm", "wiki"), T0 + timedelta(minutes=5), saga_type="joiner"
    )
    assert first == again


# --- results ---------------------------------------------------------------------------------


def test_one_of_several_results_only_finishes_that_step_at_now() -> None:
    state = started(creates("wiki", "crm"))

    new, commands = saga.decide(state, Provisioned("wiki"), T1)

    assert commands == []
    assert new.status == "running"
    assert new.step("wiki") == Step("wiki", "create", status="done", finished_at=T1)
    assert new.step("crm") == Step("crm", "create")


def test_all_steps_done_completes_with_the_duration() -> None:
    state = started(creates("wiki", "crm"))
    state, _ = saga.decide(state, Provisioned("crm"), T0 + timedelta(milliseconds=400))

    state, commands = saga.decide(state, Provisioned("wiki"), T0 + timedelta(seconds=1.5))

    assert state.status == "completed"
    assert statuses(state) == {"crm": "done", "wiki": "done"}
    assert state.step("crm").finished_at == T0 + timedelta(milliseconds=400)  # type: ignore[union-attr]
    assert state.step("wiki").finished_at == T0 + timedelta(seconds=1.5)  # type: ignore[union-attr]
    assert commands == [CompleteSaga(1500)]


def test_duration_is_never_negative_when_the_clock_goes_back() -> None:
    _, commands = feed(started(creates("wiki")), Provisioned("wiki"), at=T0 - timedelta(seconds=3))
    assert commands == [CompleteSaga(0)]


def test_a_mixed_mover_completes_when_every_operation_answered() -> None:
    state = started({"a": "update", "b": "create", "c": "delete"}, saga_type="mover")

    state, commands = feed(
        state, Provisioned("c", "delete"), Provisioned("a", "update"), Provisioned("b"), at=T2
    )

    assert state.status == "completed"
    assert commands == [CompleteSaga(2000)]


def test_a_failure_waits_for_the_other_results() -> None:
    state = started(creates("wiki", "crm"))

    state, commands = saga.decide(state, ProvisionFailed("crm", "refused"), T1)

    assert commands == []
    assert state.status == "running"
    assert state.step("crm") == Step(
        "crm", "create", status="failed", error="refused", finished_at=T1
    )
    assert state.failures == 0


def test_keep_fails_the_saga_naming_the_target_once_all_results_are_in() -> None:
    state = started(creates("wiki", "crm"))
    state, _ = saga.decide(state, ProvisionFailed("crm", "409 conflict"), T0)

    state, commands = saga.decide(state, Provisioned("wiki"), T2)

    assert state.status == "failed"
    assert state.failures == 1
    assert statuses(state) == {"crm": "failed", "wiki": "done"}
    assert commands == [FailSaga("provisioning failed in crm: 409 conflict", ("crm",))]


def test_several_failures_are_all_named_in_target_order() -> None:
    state = started(creates("a", "b", "c"))
    state, commands = feed(
        state, ProvisionFailed("c", "down"), Provisioned("b"), ProvisionFailed("a", "refused")
    )

    assert state.status == "failed"
    assert commands == [
        FailSaga("provisioning failed in a: refused; c: down", failed_targets=("a", "c"))
    ]


def test_a_result_for_an_unknown_target_changes_nothing() -> None:
    state = started(creates("wiki"))

    new, commands = saga.decide(state, Provisioned("payroll"), T0)

    assert new == state
    assert commands == []


@pytest.mark.parametrize(
    "event",
    [Provisioned("wiki", "create"), ProvisionFailed("wiki", "no", "delete")],
    ids=["provisioned", "failed"],
)
def test_a_result_for_another_operation_changes_nothing(event: SagaEvent) -> None:
    state = started({"wiki": "update"}, saga_type="mover")

    new, commands = saga.decide(state, event, T0)

    assert new == state
    assert commands == []


@pytest.mark.parametrize(
    "late", [Provisioned("wiki"), ProvisionFailed("wiki", "late failure")], ids=["ok", "failed"]
)
@pytest.mark.parametrize(
    "first", [Provisioned("wiki"), ProvisionFailed("wiki", "refused")], ids=["done", "failed"]
)
def test_a_repeated_result_for_a_finished_step_changes_nothing(
    first: SagaEvent, late: SagaEvent
) -> None:
    state, _ = feed(started(creates("wiki", "crm")), first)

    again, commands = saga.decide(state, late, T1)

    assert again == state
    assert commands == []


@pytest.mark.parametrize(
    "event", [Provisioned("wiki"), ProvisionFailed("wiki", "late")], ids=["provisioned", "failed"]
)
def test_a_result_for_a_completed_saga_changes_nothing(event: SagaEvent) -> None:
    state, _ = feed(started(creates("wiki")), Provisioned("wiki"))
    assert state.status == "completed"
    # Even a step that looks pending cannot move a finished saga.
    reopened = replace(state, steps=(Step("wiki", "create"),))

    new, commands = saga.decide(reopened, event, T1)

    assert new == reopened
    assert commands == []


def test_a_late_success_heals_a_failed_saga() -> None:
    state = failed_keep()

    new, commands = saga.decide(state, Provisioned("wiki"), T2)

    assert (new.status, statuses(new)) == ("completed", {"crm": "done", "wiki": "done"})
    assert new.step("wiki") == Step("wiki", "create", "done", finished_at=T2)
    assert commands == [CompleteSaga(2000)]


def test_a_failed_saga_heals_step_by_step() -> None:
    state = started(creates("wiki", "crm"))
    state, _ = feed(state, ProvisionFailed("crm", "down"), ProvisionFailed("wiki", "down"))

    half, commands = saga.decide(state, Provisioned("wiki"), T1)

    assert (half.status, statuses(half)) == ("failed", {"crm": "failed", "wiki": "done"})
    assert commands == []
    healed, commands = saga.decide(half, Provisioned("crm"), T2)
    assert healed.status == "completed"
    assert commands == [CompleteSaga(2000)]


@pytest.mark.parametrize(
    "event",
    [ProvisionFailed("wiki", "late"), Provisioned("wiki", "delete"), Provisioned("crm")],
    ids=["failure", "other-operation", "done-step"],
)
def test_a_failed_saga_heals_only_on_a_success_for_a_failed_step(event: SagaEvent) -> None:
    state = failed_keep()

    new, commands = saga.decide(state, event, T2)

    assert (new, commands) == (state, [])


def test_a_rolled_back_saga_never_heals() -> None:
    state, _ = feed(rolling_back(), Provisioned("crm", "delete"), Provisioned("mail", "delete"))
    assert state.status == "failed"

    new, commands = saga.decide(state, Provisioned("wiki"), T2)

    assert (new, commands) == (state, [])


def test_decide_never_mutates_the_given_state() -> None:
    state = started(creates("wiki", "crm"))
    snapshot = replace(state)

    saga.decide(state, Provisioned("wiki"), T0)
    saga.decide(state, ProvisionFailed("crm", "x"), T0)
    saga.decide(state, CancelRequested("stop"), T0)

    assert state == snapshot


# --- leavers ---------------------------------------------------------------------------------


def test_a_leaver_disables_every_account_it_has() -> None:
    state, commands = saga.start(
        "s-1", "u-1", {"slack": "disable", "github": "disable"}, T0, saga_type="leaver"
    )

    assert state.saga_type == "leaver"
    assert commands == [
        ProvisionAccount("github", "s-1:github", "disable"),
        ProvisionAccount("slack", "s-1:slack", "disable"),
    ]


def test_a_leaver_fails_naming_the_target_that_stayed_down_and_compensates_nothing() -> None:
    state = started(
        {"slack": "delete", "github": "delete"},
        saga_type="leaver",
        on_failure="rollback",
        retries_itself=True,
    )
    state, commands = saga.decide(state, Provisioned("slack", "delete"), T0)
    assert commands == []

    state, commands = saga.decide(state, ProvisionFailed("github", "timed out", "delete"), T3)

    assert state.status == "failed"
    assert statuses(state) == {"github": "failed", "slack": "done"}
    assert commands == [
        FailSaga("provisioning failed in github: timed out", ("github",)),
        ScheduleRetry(1),
    ]
    assert COMPENSATIONS["delete"] is None
    assert COMPENSATIONS["disable"] is None


# --- rollback --------------------------------------------------------------------------------


def test_rollback_deletes_every_created_account_once_all_results_are_in() -> None:
    state = started(creates("wiki", "crm", "mail"), on_failure="rollback")
    state, commands = feed(state, Provisioned("crm"), ProvisionFailed("wiki", "no"), at=T1)
    assert commands == []
    assert state.status == "running"

    state, commands = saga.decide(state, Provisioned("mail"), T2)

    assert state.status == "compensating"
    assert commands == [undo("crm"), undo("mail")]
    assert commands[0] == ProvisionAccount("crm", "saga-1:crm:undo", "delete")
    assert statuses(state) == {"crm": "compensating", "mail": "compensating", "wiki": "failed"}
    assert state.step("crm").finished_at is None  # type: ignore[union-attr]
    assert state.step("wiki").finished_at == T1  # type: ignore[union-attr]


def test_rollback_fails_the_saga_once_every_compensation_answered() -> None:
    state = rolling_back()

    state, commands = saga.decide(state, Provisioned("crm", "delete"), T2)
    assert commands == []
    assert state.status == "compensating"
    assert state.step("crm") == Step("crm", "create", status="compensated", finished_at=T2)

    state, commands = saga.decide(state, Provisioned("mail", "delete"), T3)

    assert state.status == "failed"
    assert statuses(state) == {"crm": "compensated", "mail": "compensated", "wiki": "failed"}
    assert commands == [FailSaga("wiki: no; rolled back: crm, mail", ("wiki",))]
    assert "rolled back" in commands[0].reason  # type: ignore[union-attr]


def test_a_failed_compensation_is_named_with_the_failed_targets() -> None:
    state = rolling_back()

    state, commands = feed(
        state, ProvisionFailed("crm", "gone away", "delete"), Provisioned("mail", "delete"), at=T2
    )

    assert state.status == "failed"
    assert state.step("crm") == Step(
        "crm", "create", status="failed", error="compensation failed: gone away", finished_at=T2
    )
    assert commands == [
        FailSaga(
            "crm: compensation failed: gone away; wiki: no; rolled back: mail", ("crm", "wiki")
        )
    ]


def test_when_every_compensation_fails_nothing_is_rolled_back() -> None:
    state = rolling_back()

    state, commands = feed(
        state, ProvisionFailed("crm", "x", "delete"), ProvisionFailed("mail", "y", "delete")
    )

    assert state.status == "failed"
    assert commands == [
        FailSaga(
            "crm: compensation failed: x; mail: compensation failed: y; wiki: no; "
            "rolled back: nothing",
            ("crm", "mail", "wiki"),
        )
    ]


@pytest.mark.parametrize(
    "event",
    [
        Provisioned("crm", "create"),
        ProvisionFailed("crm", "late", "create"),
        Provisioned("wiki", "delete"),
        Provisioned("payroll", "delete"),
        RetryRequested(),
        CancelRequested("stop"),
    ],
    ids=["forward-result", "forward-failure", "failed-step", "unknown", "retry", "cancel"],
)
def test_a_compensating_saga_ignores_everything_but_compensation_results(
    event: SagaEvent,
) -> None:
    state = rolling_back()

    new, commands = saga.decide(state, event, T2)

    assert new == state
    assert commands == []


def test_a_repeated_compensation_result_changes_nothing() -> None:
    state, _ = feed(rolling_back(), Provisioned("crm", "delete"))

    again, commands = saga.decide(state, ProvisionFailed("crm", "late", "delete"), T2)

    assert again == state
    assert commands == []


def test_steps_without_compensation_are_never_rolled_back() -> None:
    steps: dict[str, Operation] = {
        "a": "update",
        "b": "enable",
        "c": "disable",
        "d": "delete",
        "e": "create",
    }
    state = started(steps, saga_type="mover", on_failure="rollback")

    state, commands = feed(
        state,
        Provisioned("a", "update"),
        Provisioned("b", "enable"),
        Provisioned("c", "disable"),
        Provisioned("d", "delete"),
        ProvisionFailed("e", "refused"),
    )

    assert state.status == "failed"
    assert statuses(state) == {"a": "done", "b": "done", "c": "done", "d": "done", "e": "failed"}
    assert commands == [FailSaga("provisioning failed in e: refused", ("e",))]


def test_only_created_accounts_are_rolled_back_in_a_mixed_saga() -> None:
    steps: dict[str, Operation] = {"a": "update", "b": "create", "c": "create"}
    state = started(steps, on_failure="rollback")

    state, commands = feed(
        state, Provisioned("a", "update"), Provisioned("b"), ProvisionFailed("c", "no")
    )

    assert state.status == "compensating"
    assert commands == [undo("b")]
    assert statuses(state) == {"a": "done", "b": "compensating", "c": "failed"}


def test_keep_never_rolls_back_created_accounts() -> None:
    state = started(creates("wiki", "crm"), on_failure="keep")

    state, commands = feed(state, Provisioned("crm"), ProvisionFailed("wiki", "no"))

    assert state.status == "failed"
    assert statuses(state) == {"crm": "done", "wiki": "failed"}
    assert not [c for c in commands if isinstance(c, ProvisionAccount)]


# --- retry -----------------------------------------------------------------------------------


def test_retry_runs_the_failed_steps_again() -> None:
    state = failed_keep()

    state, commands = saga.decide(state, RetryRequested(), T2)

    assert state.status == "running"
    assert state.step("crm") == Step("crm", "create", status="done", finished_at=T1)
    assert state.step("wiki") == Step("wiki", "create", attempts=2)
    assert commands == [ProvisionAccount("wiki", step_id(SAGA, "wiki"), "create")]


def test_a_retried_saga_completes_with_the_duration_since_it_started() -> None:
    state, _ = saga.decide(failed_keep(), RetryRequested(), T2)

    state, commands = saga.decide(state, Provisioned("wiki"), T3)

    assert state.status == "completed"
    assert commands == [CompleteSaga(3000)]


def test_attempts_grow_with_every_retry() -> None:
    state = failed_keep()
    for _ in range(2):
        state, _ = feed(state, RetryRequested(), ProvisionFailed("wiki", "again"))

    assert state.status == "failed"
    assert state.failures == 3
    assert state.step("wiki") == Step(
        "wiki", "create", status="failed", attempts=3, error="again", finished_at=T0
    )


def test_retry_after_a_rollback_recreates_compensated_and_failed_steps() -> None:
    state, _ = feed(
        rolling_back(), Provisioned("crm", "delete"), ProvisionFailed("mail", "x", "delete")
    )
    assert state.status == "failed"

    state, commands = saga.decide(state, RetryRequested(), T2)

    assert state.status == "running"
    assert state.steps == (
        Step("crm", "create", attempts=2),
        Step("mail", "create", attempts=2),
        Step("wiki", "create", attempts=2),
    )
    assert commands == [
        ProvisionAccount("crm", "saga-1:crm", "create"),
        ProvisionAccount("mail", "saga-1:mail", "create"),
        ProvisionAccount("wiki", "saga-1:wiki", "create"),
    ]


@pytest.mark.parametrize(
    ("events", "status"),
    [
        ((), "running"),
        ((ProvisionFailed("wiki", "no"),), "running"),
        ((Provisioned("crm"), Provisioned("wiki")), "completed"),
    ],
    ids=["running", "running-with-a-failed-step", "completed"],
)
def test_retry_of_a_saga_that_has_not_failed_changes_nothing(
    events: tuple[SagaEvent, ...], status: str
) -> None:
    state, _ = feed(started(creates("wiki", "crm")), *events)
    assert state.status == status

    new, commands = saga.decide(state, RetryRequested(), T1)

    assert new == state
    assert commands == []


# --- cancel ----------------------------------------------------------------------------------


def test_cancelling_a_running_saga_names_the_unfinished_targets() -> None:
    state = started(creates("wiki", "crm", "mail"))
    state, _ = feed(state, Provisioned("crm"), ProvisionFailed("mail", "no"))

    state, commands = saga.decide(state, CancelRequested("operator gave up"), T1)

    assert state.status == "cancelled"
    assert commands == [FailSaga("cancelled: operator gave up", ("mail", "wiki"))]


def test_cancelling_a_failed_saga_names_the_failed_targets() -> None:
    state, commands = saga.decide(failed_keep(), CancelRequested("not needed"), T2)

    assert state.status == "cancelled"
    assert commands == [FailSaga("cancelled: not needed", ("wiki",))]


def test_cancelling_a_completed_saga_changes_nothing() -> None:
    state, _ = feed(started(creates("wiki")), Provisioned("wiki"))

    new, commands = saga.decide(state, CancelRequested("too late"), T1)

    assert new == state
    assert new.status == "completed"
    assert commands == []


@pytest.mark.parametrize(
    "event",
    [
        Provisioned("wiki"),
        ProvisionFailed("wiki", "late"),
        Provisioned("crm"),
        RetryRequested(),
        CancelRequested("again"),
    ],
    ids=["provisioned", "failed", "finished-step", "retry", "cancel"],
)
def test_nothing_changes_a_cancelled_saga(event: SagaEvent) -> None:
    state, _ = feed(started(creates("wiki", "crm")), Provisioned("crm"), CancelRequested("stop"))
    assert state.status == "cancelled"

    new, commands = saga.decide(state, event, T1)

    assert new == state
    assert commands == []


# --- self-retrying sagas ---------------------------------------------------------------------


def test_a_self_retrying_saga_schedules_retries_with_growing_failures() -> None:
    state = started(
        {"slack": "disable", "github": "disable"}, saga_type="leaver", retries_itself=True
    )
    state, commands = feed(
        state, Provisioned("slack", "disable"), ProvisionFailed("github", "down", "disable")
    )
    assert state.failures == 1
    assert commands == [
        FailSaga("provisioning failed in github: down", ("github",)),
        ScheduleRetry(1),
    ]

    for round_ in (2, 3):
        state, commands = feed(
            state, RetryRequested(), ProvisionFailed("github", "down", "disable")
        )
        assert state.status == "failed"
        assert state.failures == round_
        assert commands[-1] == ScheduleRetry(round_)

    state, commands = feed(state, RetryRequested(), Provisioned("github", "disable"), at=T3)
    assert state.status == "completed"
    assert commands == [CompleteSaga(3000)]


def test_transient_failures_retry_for_the_configured_rounds_only() -> None:
    state = started(creates("wiki", "crm"), transient_rounds=2)
    state, commands = feed(
        state, Provisioned("crm"), ProvisionFailed("wiki", "503", retryable=True)
    )
    assert commands[-1] == ScheduleRetry(1)
    assert state.step("wiki") == Step(
        "wiki", "create", "failed", error="503", retryable=True, finished_at=T0
    )

    state, commands = feed(state, RetryRequested(), ProvisionFailed("wiki", "503", retryable=True))
    assert commands[-1] == ScheduleRetry(2)
    state, commands = feed(state, RetryRequested(), ProvisionFailed("wiki", "503", retryable=True))
    assert state.failures == 3
    assert not [c for c in commands if isinstance(c, ScheduleRetry)]


def test_a_permanent_failure_among_transient_ones_waits_for_an_operator() -> None:
    state = started(creates("wiki", "crm"), transient_rounds=5)

    state, commands = feed(
        state, ProvisionFailed("crm", "400 bad"), ProvisionFailed("wiki", "503", retryable=True)
    )

    assert state.status == "failed"
    assert not [c for c in commands if isinstance(c, ScheduleRetry)]


def test_a_step_without_an_answer_in_time_is_a_transient_failure() -> None:
    state = started(creates("wiki"), transient_rounds=1)

    state, commands = saga.decide(state, saga.TimedOut(0, "running", 600), T1)

    step = state.step("wiki")
    assert step is not None
    assert step.retryable
    assert commands[-1] == ScheduleRetry(1)


def test_a_retried_step_forgets_why_it_failed() -> None:
    state = started(creates("wiki"), transient_rounds=1)
    state, _ = feed(state, ProvisionFailed("wiki", "503", retryable=True), RetryRequested())

    assert state.step("wiki") == Step("wiki", "create", attempts=2)


def test_a_saga_that_does_not_retry_itself_schedules_nothing() -> None:
    state = failed_keep()

    assert state.failures == 1
    assert state.retries_itself is False
    _, commands = feed(state, RetryRequested(), ProvisionFailed("wiki", "no"))
    assert not [c for c in commands if isinstance(c, ScheduleRetry)]


# --- backoff ---------------------------------------------------------------------------------


def test_backoff_doubles_from_the_base_and_caps() -> None:
    backoff = Backoff()

    assert [backoff.delay(n) for n in range(1, 8)] == [
        30.0,
        60.0,
        120.0,
        240.0,
        480.0,
        900.0,
        900.0,
    ]
    assert backoff.delay(100) == 900.0
    assert isinstance(backoff.delay(1), float)


def test_backoff_before_any_failure_waits_the_base() -> None:
    assert Backoff().delay(0) == 30.0


def test_backoff_with_its_own_base_and_cap() -> None:
    backoff = Backoff(base_s=1.5, cap_s=5)

    assert [backoff.delay(n) for n in range(1, 5)] == [1.5, 3.0, 5.0, 5.0]


# --- transitions -----------------------------------------------------------------------------


def test_transitions_let_only_failed_sagas_be_retried_or_heal_and_nothing_leave_a_final_state() -> (
    None
):
    expected: dict[Status, frozenset[Status]] = {
        "queued": frozenset({"running", "completed", "cancelled"}),
        "running": frozenset({"running", "compensating", "completed", "failed", "cancelled"}),
        "compensating": frozenset({"compensating", "failed"}),
        "failed": frozenset({"failed", "running", "completed", "cancelled"}),
        "completed": frozenset(),
        "cancelled": frozenset(),
    }
    final: frozenset[Status] = frozenset({"completed", "cancelled"})
    assert expected == TRANSITIONS
    assert final == TERMINAL


@pytest.mark.parametrize(
    ("origin", "destination"),
    [(o, d) for o, d in product(STATUSES, STATUSES) if d not in TRANSITIONS[o]],
)
def test_illegal_transitions_raise(origin: Status, destination: Status) -> None:
    state = replace(started(creates("wiki")), status=origin)

    with pytest.raises(
        InvalidTransition, match=f"joiner saga cannot go from {origin} to {destination}"
    ):
        saga._move(state, destination)


@pytest.mark.parametrize(
    ("origin", "destination"),
    [(o, d) for o, d in product(STATUSES, STATUSES) if d in TRANSITIONS[o]],
)
def test_legal_transitions_only_change_the_status(origin: Status, destination: Status) -> None:
    state = replace(started(creates("wiki")), status=origin)

    assert saga._move(state, destination) == replace(state, status=destination)


def test_the_public_api_never_reopens_a_completed_saga() -> None:
    state, _ = feed(started(creates("wiki")), Provisioned("wiki"))
    events: list[SagaEvent] = [
        Provisioned("wiki"),
        ProvisionFailed("wiki", "x"),
        RetryRequested(),
        CancelRequested("x"),
    ]

    for event in events:
        new, commands = saga.decide(state, event, T1)
        assert (new, commands) == (state, [])


def test_invalid_transition_is_a_value_error() -> None:
    assert issubclass(InvalidTransition, ValueError)


# --- step timeouts ---------------------------------------------------------------------------


def test_a_timeout_fails_the_steps_still_waiting_and_ends_the_round() -> None:
    state = started(creates("wiki", "crm"))
    state, _ = feed(state, Provisioned("crm"))

    state, commands = saga.decide(state, saga.TimedOut(0, "running", 600), T2)

    assert state.status == "failed"
    assert statuses(state) == {"crm": "done", "wiki": "failed"}
    assert state.step("wiki") == saga.Step(
        "wiki", "create", "failed", error="no answer within 600 s", retryable=True, finished_at=T2
    )
    assert commands == [FailSaga("provisioning failed in wiki: no answer within 600 s", ("wiki",))]


def test_a_timed_out_leaver_schedules_its_next_round() -> None:
    state = started({"wiki": "disable"}, saga_type="leaver", retries_itself=True)

    state, commands = saga.decide(state, saga.TimedOut(0, "running", 60), T1)

    assert commands[-1] == saga.ScheduleRetry(1)
    retried, _ = saga.decide(state, saga.RetryRequested(), T2)
    # The first round's timer fires late: it must not cut the second round short.
    unchanged, nothing = saga.decide(retried, saga.TimedOut(0, "running", 60), T3)
    assert (unchanged, nothing) == (retried, [])
    assert saga.round_of(retried) == 1


def test_a_timeout_during_compensation_fails_the_compensation() -> None:
    state = rolling_back()
    state, _ = feed(state, Provisioned("crm", "delete"))

    state, commands = saga.decide(state, saga.TimedOut(0, "compensating", 60), T2)

    assert state.status == "failed"
    assert statuses(state) == {"crm": "compensated", "mail": "failed", "wiki": "failed"}
    mail = state.step("mail")
    assert mail is not None
    assert mail.error == "compensation failed: no answer within 60 s"
    assert isinstance(commands[0], FailSaga)


def test_a_timeout_after_every_answer_changes_nothing() -> None:
    state = started(creates("wiki"))
    done, _ = feed(state, Provisioned("wiki"))

    assert saga.decide(done, saga.TimedOut(0, "running", 60), T2) == (done, [])
    # A running saga whose round is a compensation is not timed out by a running timer.
    compensating = rolling_back()
    assert saga.decide(compensating, saga.TimedOut(0, "running", 60), T2) == (compensating, [])


# --- one saga at a time per identity ---------------------------------------------------------


def test_a_queued_saga_begins_with_the_steps_planned_at_its_turn() -> None:
    queued = saga.queue(SAGA, USER, "leaver", T0, operation="delete")
    queued = replace(queued, version=3)
    assert (queued.status, queued.steps, queued.operation) == ("queued", (), "delete")

    state, commands = saga.begin(queued, {"wiki": "delete"}, T1, retries_itself=True)

    assert state.status == "running"
    assert state.started_at == T1
    assert state.version == 3  # the stored row's version: the write names what it read
    assert state.retries_itself is True
    assert commands == [ProvisionAccount("wiki", step_id(SAGA, "wiki"), "delete")]


def test_a_queued_saga_with_nothing_to_do_completes_when_it_begins() -> None:
    state, commands = saga.begin(saga.queue(SAGA, USER, "mover", T0), {}, T1)
    assert state.status == "completed"
    assert commands == [CompleteSaga(0)]


def test_only_a_queued_saga_begins_and_a_queued_one_can_be_cancelled() -> None:
    with pytest.raises(saga.InvalidTransition):
        saga.begin(started(creates("wiki")), {"wiki": "create"}, T1)
    cancelled, commands = saga.decide(
        saga.queue(SAGA, USER, "mover", T0), saga.CancelRequested("not needed"), T1
    )
    assert cancelled.status == "cancelled"
    assert commands == [FailSaga("cancelled: not needed", ())]
