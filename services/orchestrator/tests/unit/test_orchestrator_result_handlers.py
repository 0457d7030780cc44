"""Provisioning results, saga retries and timers, on fake ports."""

from __future__ import annotations

from datetime import timedelta

import pytest

from accord.events import (
    AccountProvisioned,
    AccountProvisionFailed,
    Envelope,
    SagaFailed,
    UserCreated,
    UserDeleted,
    UserUpdated,
)
from accord.orchestrator.domain import account_saga as saga
from accord.orchestrator.domain.account_saga import Backoff
from accord.orchestrator.domain.workflow import SagaConflict, SagaNotFound
from accord.orchestrator.fakes import FakeWorld
from accord.orchestrator.handlers import (
    advance,
    on_account_result,
    on_operator,
    on_timer,
    on_user_created,
    on_user_status,
    on_user_updated,
)
from accord.orchestrator.ports import NO_ACCOUNT

from .handler_kit import answer, event, joined, operations, requests, result, saga_states, types
from .handler_kit import world as make_world


async def test_results_complete_the_joiner_and_keep_the_registry_accounts() -> None:
    w = make_world()
    done = await joined(w, "u-1")

    assert types(done) == ["saga.completed"]
    assert w.registry.accounts_of["u-1"] == {
        "crm": ("crm-u-1", "active"),
        "wiki": ("wiki-u-1", "active"),
    }
    assert w.sagas.of_kind("saga_timeout") == []  # the round is over


async def test_a_result_for_an_unknown_saga_changes_no_saga() -> None:
    w = make_world()
    late = AccountProvisioned(
        user_id="u-1", target="crm", operation="create", saga_id="s-x", step_id="x", account_id="a"
    )
    assert await on_account_result(event(late), late, w.ports) == []
    assert w.sagas.rows == {}


async def test_a_failed_round_fails_the_saga_and_a_transient_one_retries_later() -> None:
    w = make_world(transient_rounds=1, backoff=Backoff(30, 900))
    created = UserCreated(user_id="u-1", user_name="u-1")
    started = await on_user_created(event(created, 1), created, w.ports)

    failed = await answer(w, started, reason="circuit open", retryable=True)

    assert types(failed) == ["saga.failed"]
    data = failed[0].data
    assert isinstance(data, SagaFailed)
    assert data.failed_targets == ("crm", "wiki")
    (retry,) = w.sagas.of_kind("saga_retry")
    assert w.sagas.timers[retry.timer_id][1] == w.clock.now + timedelta(seconds=30)
    assert saga_states(w, "u-1") == [("joiner", "failed")]

    again = await on_timer(w.sagas.take(retry.timer_id), w.ports)
    assert operations(again) == [("crm", "create", True), ("wiki", "create", True)]
    assert saga_states(w, "u-1") == [("joiner", "running")]
    assert types(await answer(w, again)) == ["saga.completed"]


async def refused_joiner(w: FakeWorld) -> str:
    """A joiner every target refused for good; returns its saga id."""
    created = UserCreated(user_id="u-1", user_name="u-1")
    started = await on_user_created(event(created, 1), created, w.ports)
    await answer(w, started, reason="refused", retryable=False)
    return requests(started)[0].saga_id


async def test_a_permanent_failure_fails_without_retry_and_an_operator_retries() -> None:
    w = make_world()
    saga_id = await refused_joiner(w)
    assert w.sagas.of_kind("saga_retry") == []

    again = await on_operator(saga_id, saga.RetryRequested(), w.ports)

    assert types(again)[0] == "provision.requested"
    assert types(await answer(w, again)) == ["saga.completed"]


async def test_an_operator_cancels_a_failed_saga() -> None:
    w = make_world()
    saga_id = await refused_joiner(w)

    cancelled = await on_operator(saga_id, saga.CancelRequested("given up"), w.ports)

    assert saga_states(w, "u-1") == [("joiner", "cancelled")]
    assert types(cancelled) == ["saga.failed"]
    assert await advance(w.ports, "s-unknown", saga.RetryRequested()) == []


async def test_a_round_without_answers_times_out() -> None:
    w = make_world(transient_rounds=0)
    created = UserCreated(user_id="u-1", user_name="u-1")
    started = await on_user_created(event(created, 1), created, w.ports)
    first = requests(started)[0]
    await on_account_result(result(first), _provisioned(result(first)), w.ports)
    (timeout,) = w.sagas.of_kind("saga_timeout")

    failed = await on_timer(w.sagas.take(timeout.timer_id), w.ports)

    assert types(failed) == ["saga.failed"]
    data = failed[0].data
    assert isinstance(data, SagaFailed)
    assert data.failed_targets == ("wiki",)


async def test_a_leaver_hurries_a_failed_joiner_and_settles_the_accounts_in_doubt() -> None:
    w = make_world(leaver_retention=timedelta(days=30))
    created = UserCreated(user_id="u-1", user_name="u-1")
    joining = await on_user_created(event(created, 1), created, w.ports)
    crm, wiki = requests(joining)
    await on_account_result(result(crm), _provisioned(result(crm)), w.ports)
    answered = result(wiki, reason="timed out", retryable=True)
    assert types(await on_account_result(answered, _failed(answered), w.ports)) == ["saga.failed"]
    assert len(w.sagas.of_kind("saga_retry")) == 1  # the joiner retries later

    deleted = UserDeleted(user_id="u-1")
    leaving = await on_user_status(event(deleted, 2), deleted, w.ports)

    # The leaver queued behind the failed joiner hurried its retry: the joiner, planned
    # again for a deleted identity, gives way at once and the leaver begins.
    assert "saga.started" in types(leaving)
    leaver = requests(leaving)
    assert [(r.target, r.operation) for r in leaver] == [("crm", "disable"), ("wiki", "disable")]
    assert w.sagas.of_kind("saga_retry") == []
    none = result(leaver[1]).data
    assert isinstance(none, AccountProvisioned)
    gone = none.model_copy(update={"account_id": NO_ACCOUNT})
    await on_account_result(event(gone), gone, w.ports)
    assert "wiki" not in w.registry.accounts_of["u-1"]  # its create never happened


async def test_the_deletion_timer_deletes_a_leavers_accounts_unless_it_came_back() -> None:
    w = make_world(leaver_retention=timedelta(days=30))
    await joined(w, "u-1")
    deleted = UserDeleted(user_id="u-1")
    await answer(w, await on_user_status(event(deleted, 2), deleted, w.ports))
    (deletion,) = w.sagas.of_kind("account_deletion")

    deleting = await on_timer(w.sagas.take(deletion.timer_id), w.ports)

    assert [op for _, op, _ in operations(deleting)] == ["delete", "delete"]
    await answer(w, deleting)
    assert w.registry.accounts_of["u-1"] == {}
    w.registry.entries["u-1"].status = "active"  # came back meanwhile
    assert await on_timer(deletion, w.ports) == []


def _provisioned(answered: Envelope) -> AccountProvisioned:
    data = answered.data
    assert isinstance(data, AccountProvisioned)
    return data


def _failed(answered: Envelope) -> AccountProvisionFailed:
    data = answered.data
    assert isinstance(data, AccountProvisionFailed)
    return data


async def test_an_operator_cannot_act_on_an_unknown_or_finished_saga() -> None:
    w = make_world()
    with pytest.raises(SagaNotFound):
        await on_operator("s-none", saga.RetryRequested(), w.ports)
    await joined(w, "u-1")
    (done,) = w.sagas.rows
    with pytest.raises(SagaConflict, match="is completed and cannot be retried"):
        await on_operator(done, saga.RetryRequested(), w.ports)
    with pytest.raises(SagaConflict, match="is completed and cannot be cancelled"):
        await on_operator(done, saga.CancelRequested("late"), w.ports)


async def test_a_failed_saga_waits_for_the_one_that_holds_its_identity() -> None:
    w = make_world()
    failed = await refused_joiner(w)  # failed for good: it holds the identity no more
    moved = UserUpdated(user_id="u-1", user_name="u-1", title="Lead")
    assert requests(await on_user_updated(event(moved, 2), moved, w.ports))  # holds it now

    with pytest.raises(SagaConflict, match=r"while saga \S+ of the same identity is in"):
        await on_operator(failed, saga.RetryRequested(), w.ports)
