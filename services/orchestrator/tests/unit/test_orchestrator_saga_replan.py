"""A retry re-plans against the identity as it is now; a failed saga that retries by itself
holds its identity (issue 17, item 1). Pure: account_saga.decide, allows, holds_identity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.orchestrator.domain import account_saga as saga
from accord.orchestrator.domain.account_saga import (
    IdentityNow,
    Operation,
    ProvisionAccount,
    Provisioned,
    ProvisionFailed,
    RetryRequested,
    SagaState,
    Step,
)
from accord.orchestrator.domain.plans import comeback_steps, mover_steps

T0 = datetime(2025, 1, 6, 9, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(seconds=1)
DELETED = IdentityNow("deleted", wanted=frozenset())
INACTIVE = IdentityNow("inactive", wanted=frozenset({"crm", "wiki"}))
ACTIVE = IdentityNow("active", wanted=frozenset({"crm", "wiki"}))


def failed_joiner(*, retryable: bool = True, transient_rounds: int = 3) -> SagaState:
    """A joiner whose crm account was made and whose wiki create failed."""
    state, _ = saga.start(
        "s-1",
        "u-1",
        {"crm": "create", "wiki": "create"},
        T0,
        saga_type="joiner",
        transient_rounds=transient_rounds,
    )
    state, _ = saga.decide(state, Provisioned("crm"), T1)
    state, _ = saga.decide(state, ProvisionFailed("wiki", "down", retryable=retryable), T1)
    assert state.status == "failed"
    return state


def test_a_joiner_retried_after_its_identity_was_deleted_is_superseded_and_creates_nothing() -> (
    None
):
    state, commands = saga.decide(failed_joiner(), RetryRequested(DELETED), T1)

    assert state.status == "cancelled"
    assert not [c for c in commands if isinstance(c, ProvisionAccount)]
    assert commands == [saga.FailSaga("cancelled: superseded: the identity is deleted", ("wiki",))]


def test_a_joiner_retried_for_an_inactive_identity_still_creates_the_disabled_account() -> None:
    state, commands = saga.decide(failed_joiner(), RetryRequested(INACTIVE), T1)

    assert state.status == "running"
    assert commands == [ProvisionAccount("wiki", "s-1:wiki", "create")]


def test_a_retry_drops_the_steps_the_birthright_no_longer_wants_and_runs_the_rest() -> None:
    state, _ = saga.start(
        "s-2", "u-2", {"crm": "update", "wiki": "create", "old": "delete"}, T0, saga_type="mover"
    )
    for target, operation in (("crm", "update"), ("wiki", "create"), ("old", "delete")):
        state, _ = saga.decide(state, ProvisionFailed(target, "down", operation), T1)
    moved_back = IdentityNow("active", wanted=frozenset({"crm", "old"}))

    state, commands = saga.decide(state, RetryRequested(moved_back), T1)

    assert [(c.target, c.operation) for c in commands if isinstance(c, ProvisionAccount)] == [
        ("crm", "update")
    ]
    dropped = state.step("wiki")
    assert dropped is not None
    assert dropped.status == "dropped"
    assert dropped.error == "not retried: the identity is active"
    state, commands = saga.decide(state, Provisioned("crm", "update"), T1)
    assert state.status == "completed"


@pytest.mark.parametrize(
    ("operation", "identity", "allowed"),
    [
        ("create", DELETED, False),
        ("create", INACTIVE, True),
        ("create", IdentityNow("active", wanted=frozenset({"crm"})), False),  # wiki not wanted
        ("enable", IdentityNow("active", locked=True, wanted=frozenset({"wiki"})), False),
        ("enable", INACTIVE, False),
        ("enable", ACTIVE, True),
        ("disable", DELETED, True),
        ("delete", DELETED, True),
        ("delete", ACTIVE, False),  # the birthright wants it again
        ("delete", IdentityNow("active", wanted=frozenset()), True),
        ("update", DELETED, False),
    ],
)
def test_what_a_retry_still_allows(
    operation: Operation, identity: IdentityNow, allowed: bool
) -> None:
    assert saga.allows(identity, Step("wiki", operation)) is allowed


def test_memberships_are_judged_by_status_only() -> None:
    adding = Step("wiki", "add_member", group="eng")
    assert saga.allows(IdentityNow("active", wanted=frozenset()), adding)
    assert not saga.allows(DELETED, adding)
    assert saga.allows(DELETED, Step("wiki", "remove_member", group="eng"))


def test_a_failed_saga_that_retries_by_itself_holds_its_identity_one_that_waits_does_not() -> None:
    assert saga.holds_identity(failed_joiner(retryable=True))
    assert not saga.holds_identity(failed_joiner(retryable=False))  # waits for an operator
    assert not saga.holds_identity(failed_joiner(transient_rounds=0))  # rounds used up


def test_a_leaver_retries_every_step_whatever_the_identity_became() -> None:
    state, _ = saga.start(
        "s-3", "u-3", {"crm": "disable"}, T0, saga_type="leaver", retries_itself=True
    )
    state, _ = saga.decide(state, ProvisionFailed("crm", "down", "disable"), T1)
    assert saga.holds_identity(state)

    state, commands = saga.decide(state, RetryRequested(DELETED), T1)

    assert commands == [ProvisionAccount("crm", "s-3:crm", "disable")]


IDENTITIES = st.builds(
    IdentityNow,
    status=st.sampled_from(["active", "inactive", "deleted"]),
    locked=st.booleans(),
    wanted=st.none() | st.frozensets(st.sampled_from(["crm", "wiki", "mail"])),
)
OPERATIONS: tuple[Operation, ...] = ("create", "update", "enable", "disable", "delete")


@given(
    plan=st.dictionaries(st.sampled_from(["crm", "wiki", "mail"]), st.sampled_from(OPERATIONS)),
    outcomes=st.lists(st.booleans(), min_size=3, max_size=3),
    identity=IDENTITIES,
)
def test_a_retry_never_runs_a_step_the_identity_no_longer_allows(
    plan: dict[str, Operation], outcomes: list[bool], identity: IdentityNow
) -> None:
    """Whatever failed and whatever the identity became: a retry's commands are exactly the
    failed steps the identity still allows, and nothing is left pending without a command."""
    state, _ = saga.start("s-p", "u-p", plan, T0, saga_type="mover")
    for step, ok in zip(state.steps, outcomes, strict=False):
        result = (
            Provisioned(step.target, step.operation)
            if ok
            else ProvisionFailed(step.target, "x", step.operation)
        )
        state, _ = saga.decide(state, result, T1)
    failed = [s for s in state.steps if s.status == "failed"]

    after, commands = saga.decide(state, RetryRequested(identity), T1)

    sent = {(c.target, c.operation) for c in commands if isinstance(c, ProvisionAccount)}
    if state.status != "failed":
        assert sent == set()
        return
    assert sent == {(s.target, s.operation) for s in failed if saga.allows(identity, s)}
    assert {s.target for s in after.steps if s.status == "pending"} == {t for t, _ in sent}
    assert after.status == ("running" if sent else "cancelled")


def test_a_mover_recreates_a_wanted_account_in_doubt_and_deletes_an_unwanted_one() -> None:
    steps = mover_steps(["crm", "wiki"], ["crm"], active=True, in_doubt=["wiki", "mail"])

    assert steps == {"crm": "update", "wiki": "create", "mail": "delete"}


def test_a_returning_identity_follows_its_birthright_as_it_is_now() -> None:
    steps = comeback_steps(["crm", "wiki"], ["crm", "old"], in_doubt=["gone"])

    assert steps == {"crm": "enable", "wiki": "create", "old": "delete", "gone": "delete"}
