"""The provision.requested handlers on fakes: a scripted connector and the in-memory ledger.

Outcomes and retries of the effect (on_provision_requested), and the ledger step that
records each command (record_provision_requested).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, cast, get_args

import pytest

from accord.events import (
    AccountProvisioned,
    AccountProvisionFailed,
    Envelope,
    Profile,
    ProvisionRequested,
    new_event,
)
from accord.events.catalogue.provisioning import Operation
from accord.provisioner.domain import commands
from accord.provisioner.domain.breaker import CircuitBreaker
from accord.provisioner.fakes import FakeLedger, ScriptedConnector
from accord.provisioner.guard import TargetGuard
from accord.provisioner.handlers import (
    Provisioning,
    command_work,
    on_provision_requested,
    record_provision_requested,
)
from accord.provisioner.ports import (
    AccountRef,
    Connector,
    TargetRejected,
    TargetUnavailable,
)
from accord.runtime.routes import GaveUp

SOURCE = "accord/provisioner"
PROFILE = Profile(user_name="ada", given_name="Ada", family_name="Lovelace")
FakeConnector = ScriptedConnector


def data_of(event: Envelope) -> ProvisionRequested:
    data = event.data
    assert isinstance(data, ProvisionRequested)
    return data


def command(
    unique: str,
    *,
    target: str = "scim-demo",
    operation: Operation = "create",
    group: str | None = None,
) -> Envelope:
    data = ProvisionRequested(
        user_id=f"e-{unique}",
        target=target,
        operation=operation,
        saga_id=f"saga-{unique}",
        step_id=f"saga-{unique}:{target}",
        profile=PROFILE,
        group=group,
    )
    return new_event(data, source="accord/orchestrator", correlation_id=f"corr-{unique}")


def ports(connectors: Mapping[str, Connector], **kwargs: Any) -> Provisioning:
    """The effect's ports: no wait between attempts, an empty ledger unless given one."""
    kwargs.setdefault("ledger", FakeLedger())
    kwargs.setdefault("base_delay_s", 0)
    return Provisioning(source=SOURCE, connectors=connectors, **kwargs)


async def outcome(
    event: Envelope, connectors: Mapping[str, Connector], **kwargs: Any
) -> list[Envelope] | GaveUp:
    return await on_provision_requested(event, data_of(event), ports(connectors, **kwargs))


async def handle(
    event: Envelope, connectors: Mapping[str, Connector], **kwargs: Any
) -> list[Envelope]:
    """The events the handler emits, whether or not it also gave up."""
    result = await outcome(event, connectors, **kwargs)
    return list(result.events) if isinstance(result, GaveUp) else result


def assert_reply_to(reply: Envelope, cause: Envelope) -> None:
    assert reply.correlationid == cause.correlationid
    assert reply.causationid == cause.id
    assert reply.source == SOURCE
    assert reply.id != cause.id
    cause_data = cause.data
    assert isinstance(cause_data, ProvisionRequested)
    data = reply.data
    assert isinstance(data, AccountProvisioned | AccountProvisionFailed)
    assert data.user_id == cause_data.user_id
    assert data.target == cause_data.target
    assert data.operation == cause_data.operation
    assert data.saga_id == cause_data.saga_id
    assert data.step_id == cause_data.step_id
    assert reply.subject == cause_data.user_id


def test_the_fake_is_a_connector() -> None:
    connector: Connector = FakeConnector("x", AccountRef("1", already_existed=False))
    assert connector.name == "x"


async def test_success_reports_account_provisioned(unique: str) -> None:
    event = command(unique)
    fake = FakeConnector("scim-demo", AccountRef("acc-42", already_existed=False))

    replies = await handle(event, {"scim-demo": fake})

    assert len(replies) == 1
    reply = replies[0]
    assert reply.type == "account.provisioned"
    assert isinstance(reply.data, AccountProvisioned)
    assert reply.data.account_id == "acc-42"
    assert reply.data.already_existed is False
    assert_reply_to(reply, event)
    assert fake.calls == [(f"e-{unique}", PROFILE)]
    assert fake.closed is False  # connectors belong to the service, not to one event


async def test_an_adopted_account_is_reported_as_already_existing(unique: str) -> None:
    event = command(unique)
    fake = FakeConnector("scim-demo", AccountRef("acc-7", already_existed=True))

    (reply,) = await handle(event, {"scim-demo": fake})

    assert isinstance(reply.data, AccountProvisioned)
    assert reply.data.already_existed is True


async def test_the_connector_of_the_commands_target_is_used(unique: str) -> None:
    wiki = FakeConnector("wiki", AccountRef("w-1", already_existed=False))
    crm = FakeConnector("crm", AccountRef("c-1", already_existed=False))

    (reply,) = await handle(command(unique, target="crm"), {"wiki": wiki, "crm": crm})

    assert isinstance(reply.data, AccountProvisioned)
    assert reply.data.account_id == "c-1"
    assert wiki.calls == []
    assert len(crm.calls) == 1


async def test_a_rejection_fails_at_once_and_is_not_retryable(unique: str) -> None:
    event = command(unique)
    fake = FakeConnector("scim-demo", TargetRejected("scim-demo: POST /Users -> 400: bad email"))

    replies = await handle(event, {"scim-demo": fake}, max_attempts=5)

    assert len(replies) == 1
    reply = replies[0]
    assert reply.type == "account.provision_failed"
    assert isinstance(reply.data, AccountProvisionFailed)
    assert reply.data.retryable is False
    assert "400: bad email" in reply.data.reason
    assert_reply_to(reply, event)
    assert len(fake.calls) == 1


async def test_unavailable_every_time_fails_retryable_after_max_attempts(unique: str) -> None:
    event = command(unique)
    fake = FakeConnector("scim-demo", TargetUnavailable("scim-demo: GET /Users timed out"))

    replies = await handle(event, {"scim-demo": fake}, max_attempts=3)

    assert len(replies) == 1
    reply = replies[0]
    assert reply.type == "account.provision_failed"
    assert isinstance(reply.data, AccountProvisionFailed)
    assert reply.data.retryable is True
    assert "3 attempts" in reply.data.reason
    assert "timed out" in reply.data.reason
    assert_reply_to(reply, event)
    assert len(fake.calls) == 3


async def test_a_spent_retry_budget_also_dead_letters_the_command(unique: str) -> None:
    fake = FakeConnector("scim-demo", TargetUnavailable("scim-demo: POST /Users -> 503"))

    result = await outcome(command(unique), {"scim-demo": fake}, max_attempts=2)

    assert isinstance(result, GaveUp)
    assert result.reason == "gave up after 2 attempts: scim-demo: POST /Users -> 503"
    assert result.error_type == "retries-exhausted"
    (reply,) = result.events
    assert isinstance(reply.data, AccountProvisionFailed)
    assert reply.data.reason == result.reason


async def test_a_refusal_is_not_dead_lettered(unique: str) -> None:
    fake = FakeConnector("scim-demo", TargetRejected("scim-demo: POST /Users -> 400"))

    result = await outcome(command(unique), {"scim-demo": fake})

    assert isinstance(result, list)
    assert [r.type for r in result] == ["account.provision_failed"]


async def test_the_targets_own_attempts_win_over_the_default(unique: str) -> None:
    fake = FakeConnector("crm", TargetUnavailable("crm: 503"))
    guards = {"crm": TargetGuard("crm", attempts=2)}

    result = await outcome(command(unique, target="crm"), {"crm": fake}, guards=guards)

    assert isinstance(result, GaveUp)
    assert len(fake.calls) == 2


async def test_one_attempt_means_no_retry(unique: str) -> None:
    fake = FakeConnector("scim-demo", TargetUnavailable("down"))

    (reply,) = await handle(command(unique), {"scim-demo": fake}, max_attempts=1)

    assert isinstance(reply.data, AccountProvisionFailed)
    assert reply.data.retryable is True
    assert len(fake.calls) == 1


async def test_a_transient_outage_is_retried_until_success(unique: str) -> None:
    event = command(unique)
    fake = FakeConnector(
        "scim-demo",
        TargetUnavailable("down"),
        TargetUnavailable("throttled", retry_after=0.0),
        AccountRef("acc-9", already_existed=False),
    )

    (reply,) = await handle(event, {"scim-demo": fake}, max_attempts=5)

    assert isinstance(reply.data, AccountProvisioned)
    assert reply.data.account_id == "acc-9"
    assert_reply_to(reply, event)
    assert len(fake.calls) == 3


async def test_a_rejection_after_an_outage_stops_the_retries(unique: str) -> None:
    fake = FakeConnector(
        "scim-demo", TargetUnavailable("down"), TargetRejected("refused"), AccountRef("x", False)
    )

    (reply,) = await handle(command(unique), {"scim-demo": fake}, max_attempts=5)

    assert isinstance(reply.data, AccountProvisionFailed)
    assert reply.data.retryable is False
    assert len(fake.calls) == 2


async def test_an_unknown_target_fails_without_calling_any_connector(unique: str) -> None:
    event = command(unique, target="payroll")
    fake = FakeConnector("scim-demo", AccountRef("acc-1", already_existed=False))

    replies = await handle(event, {"scim-demo": fake})

    assert len(replies) == 1
    reply = replies[0]
    assert reply.type == "account.provision_failed"
    assert isinstance(reply.data, AccountProvisionFailed)
    assert reply.data.retryable is False
    assert "unknown target payroll" in reply.data.reason
    assert_reply_to(reply, event)
    assert fake.calls == []


async def test_an_operation_not_supported_fails_permanently_without_calling_the_connector(
    unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The contract's Literal admits only known operations; the guard is for one it adds
    # before this provisioner learns it, simulated by narrowing the supported set.
    monkeypatch.setattr(commands, "SUPPORTED_OPERATIONS", frozenset({"create"}))
    event = command(unique, operation="update")
    fake = FakeConnector("scim-demo", AccountRef("acc-1", already_existed=True))

    (reply,) = await handle(event, {"scim-demo": fake})

    assert isinstance(reply.data, AccountProvisionFailed)
    assert reply.data.retryable is False
    assert "operation update not supported" in reply.data.reason
    assert_reply_to(reply, event)
    assert fake.calls == []
    assert fake.update_calls == []
    assert fake.leaver_calls == []


def test_every_operation_of_the_contract_is_supported() -> None:
    assert set(get_args(Operation)) == commands.SUPPORTED_OPERATIONS


async def test_membership_changes_go_to_the_connector_with_their_group(unique: str) -> None:
    fake = FakeConnector("scim-demo", AccountRef("acc-1", already_existed=True))

    (added,) = await handle(
        command(unique, operation="add_member", group="Admins"), {"scim-demo": fake}
    )
    (removed,) = await handle(
        command(unique, operation="remove_member", group="Admins"), {"scim-demo": fake}
    )

    assert fake.leaver_calls == [
        ("add_member", f"e-{unique}", "Admins"),
        ("remove_member", f"e-{unique}", "Admins"),
    ]
    for reply in (added, removed):
        assert isinstance(reply.data, AccountProvisioned)
        assert (reply.data.group, reply.data.account_id) == ("Admins", "acc-1")


async def test_adding_someone_without_an_account_to_a_group_fails_for_good(unique: str) -> None:
    fake = FakeConnector("scim-demo", AccountRef("none", already_existed=False))

    (reply,) = await handle(
        command(unique, operation="add_member", group="Admins"), {"scim-demo": fake}
    )

    assert isinstance(reply.data, AccountProvisionFailed)
    assert reply.data.retryable is False
    assert "no account to add to group 'Admins'" in reply.data.reason


async def test_a_command_older_than_the_latest_recorded_one_is_superseded(unique: str) -> None:
    fake = FakeConnector("scim-demo", AccountRef("acc-1", already_existed=False))
    event = command(unique)
    newer, same = FakeLedger(), FakeLedger()
    later = event.time + timedelta(seconds=1)
    await newer.record_command(data_of(event), commanded_at=later, command_id="later")
    await record_provision_requested(event, data_of(event), same)

    (stale,) = await handle(event, {"scim-demo": fake}, ledger=newer)
    assert isinstance(stale.data, AccountProvisionFailed)
    assert stale.data.retryable is False
    assert "superseded by a newer command" in stale.data.reason
    assert fake.calls == []
    # Its own record (a redelivery of the same command) is not newer than itself.
    (again,) = await handle(event, {"scim-demo": fake}, ledger=same)
    assert isinstance(again.data, AccountProvisioned)


async def test_update_reports_the_account_it_updated(unique: str) -> None:
    event = command(unique, operation="update")
    fake = FakeConnector("scim-demo", AccountRef("acc-5", already_existed=True))

    (reply,) = await handle(event, {"scim-demo": fake})

    assert reply.type == "account.provisioned"
    assert isinstance(reply.data, AccountProvisioned)
    assert reply.data.operation == "update"
    assert reply.data.account_id == "acc-5"
    assert reply.data.already_existed is True
    assert_reply_to(reply, event)
    assert fake.update_calls == [(f"e-{unique}", PROFILE)]
    assert fake.calls == []
    assert fake.leaver_calls == []


async def test_update_of_an_account_the_target_lost_reports_it_recreated(unique: str) -> None:
    fake = FakeConnector("scim-demo", AccountRef("acc-new", already_existed=False))

    (reply,) = await handle(command(unique, operation="update"), {"scim-demo": fake})

    assert isinstance(reply.data, AccountProvisioned)
    assert reply.data.account_id == "acc-new"
    assert reply.data.already_existed is False


async def test_update_is_retried_through_an_outage(unique: str) -> None:
    fake = FakeConnector(
        "scim-demo", TargetUnavailable("down"), AccountRef("acc-5", already_existed=True)
    )

    (reply,) = await handle(command(unique, operation="update"), {"scim-demo": fake})

    assert isinstance(reply.data, AccountProvisioned)
    assert reply.data.account_id == "acc-5"
    assert len(fake.update_calls) == 2


async def test_a_rejected_update_fails_permanently(unique: str) -> None:
    fake = FakeConnector("scim-demo", TargetRejected("scim-demo: PUT /Users/acc-5 -> 400"))

    (reply,) = await handle(command(unique, operation="update"), {"scim-demo": fake})

    assert isinstance(reply.data, AccountProvisionFailed)
    assert reply.data.retryable is False
    assert "PUT" in reply.data.reason
    assert len(fake.update_calls) == 1


async def test_enable_without_an_account_fails_permanently(unique: str) -> None:
    event = command(unique, operation="enable")
    fake = FakeConnector("scim-demo", AccountRef("unused", already_existed=False))

    (reply,) = await handle(event, {"scim-demo": fake})

    assert isinstance(reply.data, AccountProvisionFailed)
    assert reply.data.retryable is False
    assert "no account to enable" in reply.data.reason
    assert_reply_to(reply, event)
    assert fake.leaver_calls == [("enable", f"e-{unique}", PROFILE.user_name)]
    assert fake.calls == []


@pytest.mark.parametrize("operation", ["disable", "enable", "delete"])
async def test_an_account_state_operation_reports_the_account_it_changed(
    unique: str, operation: Operation
) -> None:
    event = command(unique, operation=operation)
    fake = FakeConnector("scim-demo", AccountRef("acc-9", already_existed=True))

    (reply,) = await handle(event, {"scim-demo": fake})

    assert isinstance(reply.data, AccountProvisioned)
    assert reply.data.account_id == "acc-9"
    assert reply.data.operation == operation
    assert fake.leaver_calls == [(operation, f"e-{unique}", PROFILE.user_name)]
    assert fake.calls == []
    assert fake.update_calls == []


async def test_a_leaver_without_an_account_is_already_done(unique: str) -> None:
    fake = FakeConnector("scim-demo", AccountRef("unused", already_existed=False))

    (reply,) = await handle(command(unique, operation="disable"), {"scim-demo": fake})

    assert isinstance(reply.data, AccountProvisioned)
    assert reply.data.account_id == "none"
    assert reply.data.already_existed is False


async def test_a_long_reason_is_cut_to_fit_the_event(unique: str) -> None:
    fake = FakeConnector("scim-demo", TargetRejected("x" * 1000))

    (reply,) = await handle(command(unique), {"scim-demo": fake})

    assert isinstance(reply.data, AccountProvisionFailed)
    assert len(reply.data.reason) == 256


class LowestJitter:
    """Stands in for the handler's `random` module: always picks the lowest delay."""

    def __init__(self) -> None:
        self.bounds: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.bounds.append((a, b))
        return a


async def test_retry_after_from_the_target_is_waited_at_least(
    unique: str,
) -> None:
    jitter = LowestJitter()
    slept: list[float] = []

    async def record_sleep(seconds: float) -> None:
        slept.append(seconds)

    fake = FakeConnector(
        "scim-demo",
        TargetUnavailable("429", retry_after=7),
        AccountRef("acc-1", already_existed=False),
    )

    (reply,) = await handle(
        command(unique),
        {"scim-demo": fake},
        max_attempts=2,
        sleep=record_sleep,
        uniform=jitter.uniform,
    )

    assert isinstance(reply.data, AccountProvisioned)
    assert slept
    assert slept[0] >= 7
    assert jitter.bounds == [(0, 0)]


async def test_a_huge_retry_after_is_capped(unique: str) -> None:
    slept: list[float] = []

    async def record_sleep(seconds: float) -> None:
        slept.append(seconds)

    fake = FakeConnector(
        "scim-demo",
        TargetUnavailable("429", retry_after=3600),
        AccountRef("acc-1", already_existed=False),
    )

    await handle(command(unique), {"scim-demo": fake}, max_attempts=2, sleep=record_sleep)

    assert slept == [commands.MAX_RETRY_AFTER_S]


async def test_a_dead_target_opens_its_circuit_and_later_commands_fail_fast() -> None:
    connector = FakeConnector("crm", TargetUnavailable("crm: 503"))
    guards = {"crm": TargetGuard("crm", breaker=CircuitBreaker(threshold=3, cooldown_s=60))}

    first = await handle(command("a", target="crm"), {"crm": connector}, guards=guards)
    fast = await outcome(command("b", target="crm"), {"crm": connector}, guards=guards)
    assert isinstance(fast, GaveUp)
    second = list(fast.events)

    assert len(connector.calls) == 3  # the threshold, then no more calls
    for reply in (first, second):
        data = reply[0].data
        assert isinstance(data, AccountProvisionFailed)
        assert data.retryable is True
    failed_first, failed_second = first[0].data, second[0].data
    assert isinstance(failed_first, AccountProvisionFailed)
    assert isinstance(failed_second, AccountProvisionFailed)
    assert "circuit open" in failed_first.reason
    assert "circuit open" in failed_second.reason


def test_a_commands_work_is_its_account_or_membership_in_its_target() -> None:
    """Commands of one account share their work (a later one resolves the earlier ones' dead
    letters); another target, identity or group is other work."""

    def work(target: str, user: str, operation: str = "create", group: str | None = None) -> str:
        data = ProvisionRequested(
            user_id=user,
            target=target,
            operation=cast(Operation, operation),
            saga_id="s",
            step_id="s:1",
            group=group,
            profile=Profile(user_name=user),
        )
        return command_work(new_event(data, source="urn:test"))

    assert work("crm", "u-1") == work("crm", "u-1", "disable")
    assert len({work("crm", "u-1"), work("wiki", "u-1"), work("crm", "u-2")}) == 3
    assert work("crm", "u-1", "add_member", "eng") != work("crm", "u-1", "add_member", "ops")


async def test_the_record_step_notes_the_command_in_the_ledger(unique: str) -> None:
    ledger = FakeLedger()
    event = command(unique, operation="disable")

    replies = await record_provision_requested(event, data_of(event), ledger)

    assert replies == []
    assert await ledger.latest_command_at(data_of(event)) == event.time
    desired = await ledger.desired_of("scim-demo", [f"e-{unique}"])
    assert [(d.user_id, d.state, d.profile) for d in desired.values()] == [
        (f"e-{unique}", "disabled", PROFILE)
    ]


async def test_a_dead_letter_replayed_after_a_newer_command_touches_nothing(unique: str) -> None:
    """The effect and its record step together, on one ledger: the joiner's command, held in
    the DLQ while the leaver's went through, neither recreates the account nor takes the
    ledger back."""
    ledger = FakeLedger()
    fake = FakeConnector("scim-demo", AccountRef("acc-1", already_existed=True))
    joiner = command(unique)
    leaver = command(unique, operation="delete")
    leaver = leaver.model_copy(update={"time": joiner.time + timedelta(seconds=5)})
    (deleted,) = await handle(leaver, {"scim-demo": fake}, ledger=ledger)
    await record_provision_requested(leaver, data_of(leaver), ledger)

    (replayed,) = await handle(joiner, {"scim-demo": fake}, ledger=ledger)
    await record_provision_requested(joiner, data_of(joiner), ledger)

    assert isinstance(deleted.data, AccountProvisioned)
    assert isinstance(replayed.data, AccountProvisionFailed)
    assert "superseded" in replayed.data.reason
    assert fake.calls == []
    assert [d.state for d in (await ledger.desired_of("scim-demo", [f"e-{unique}"])).values()] == [
        "absent"
    ]


class CountingLedger(FakeLedger):
    """Counts how often the effect reads the ledger."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def latest_command_at(self, command: ProvisionRequested) -> datetime | None:
        self.reads += 1
        return await super().latest_command_at(command)


async def test_the_ledger_is_read_once_and_only_for_a_command_that_can_be_carried_out(
    unique: str,
) -> None:
    fake = FakeConnector("scim-demo", TargetUnavailable("down"), AccountRef("acc-1", False))
    carried_out, refused = CountingLedger(), CountingLedger()

    await handle(command(unique), {"scim-demo": fake}, ledger=carried_out)
    await handle(command(unique, target="payroll"), {"scim-demo": fake}, ledger=refused)

    assert (carried_out.reads, refused.reads) == (1, 0)
    assert len(fake.calls) == 2  # one retry, the ledger not read again


async def test_a_target_without_a_guard_of_its_own_gets_the_default_attempts(unique: str) -> None:
    fake = FakeConnector("crm", TargetUnavailable("crm: 503"))
    others = {"wiki": TargetGuard("wiki", attempts=1)}

    result = await outcome(
        command(unique, target="crm"), {"crm": fake}, guards=others, max_attempts=4
    )

    assert isinstance(result, GaveUp)
    assert len(fake.calls) == 4


async def test_retries_wait_the_growing_backoff_the_jitter_picks_within(unique: str) -> None:
    jitter = LowestJitter()
    slept: list[float] = []

    async def record_sleep(seconds: float) -> None:
        slept.append(seconds)

    fake = FakeConnector("scim-demo", TargetUnavailable("down"))

    await handle(
        command(unique),
        {"scim-demo": fake},
        max_attempts=4,
        base_delay_s=0.5,
        sleep=record_sleep,
        uniform=jitter.uniform,
    )

    assert jitter.bounds == [(0, 0.5), (0, 1.0), (0, 2.0)]
    assert slept == [0, 0, 0]
