"""What the provisioner decides about a command before and between its calls (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from accord.events import Profile, ProvisionRequested
from accord.events.catalogue.provisioning import Operation
from accord.provisioner.domain.commands import (
    MAX_RETRY_AFTER_S,
    refusal,
    retry_delay,
    state_after,
    superseded,
)

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def command(operation: Operation = "create", target: str = "crm") -> ProvisionRequested:
    group = "Admins" if operation in ("add_member", "remove_member") else None
    return ProvisionRequested(
        user_id="u-1",
        target=target,
        operation=operation,
        saga_id="s-1",
        step_id="s-1:crm",
        profile=Profile(user_name="ada"),
        group=group,
    )


def test_a_command_for_a_known_target_is_not_refused() -> None:
    assert refusal(command(), {"crm", "wiki"}) is None


def test_a_command_for_an_unknown_target_is_refused() -> None:
    assert refusal(command(target="payroll"), {"crm"}) == "unknown target payroll"


def test_an_unknown_target_is_named_before_an_unsupported_operation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from accord.provisioner.domain import commands

    monkeypatch.setattr(commands, "SUPPORTED_OPERATIONS", frozenset({"create"}))

    assert refusal(command("delete"), {"crm"}) == "operation delete not supported yet"
    assert refusal(command("delete", target="hr"), {"crm"}) == "unknown target hr"


def test_only_a_newer_recorded_command_supersedes() -> None:
    assert superseded(NOW, None) is None
    assert superseded(NOW, NOW) is None
    assert superseded(NOW, NOW - timedelta(seconds=1)) is None
    newer = NOW + timedelta(milliseconds=1)
    assert superseded(NOW, newer) == f"superseded by a newer command of {newer.isoformat()}"


def test_the_backoff_doubles_and_the_jitter_picks_within_it() -> None:
    bounds: list[tuple[float, float]] = []

    def highest(low: float, high: float) -> float:
        bounds.append((low, high))
        return high

    delays = [
        retry_delay(attempt, base_delay_s=0.2, retry_after=None, uniform=highest)
        for attempt in (1, 2, 3)
    ]

    assert delays == [0.2, 0.4, 0.8]
    assert bounds == [(0, 0.2), (0, 0.4), (0, 0.8)]


def test_a_retry_after_is_a_floor_and_capped() -> None:
    def lowest(low: float, high: float) -> float:
        return low

    assert retry_delay(1, base_delay_s=0.2, retry_after=7, uniform=lowest) == 7
    assert retry_delay(1, base_delay_s=0.2, retry_after=0, uniform=lowest) == 0
    huge = retry_delay(1, base_delay_s=0.2, retry_after=3600, uniform=lowest)
    assert huge == MAX_RETRY_AFTER_S


@pytest.mark.parametrize(
    ("operation", "active", "state"),
    [
        ("create", True, "active"),
        ("create", False, "disabled"),
        ("update", True, "active"),
        ("update", False, "disabled"),
        ("enable", True, "active"),
        ("disable", True, "disabled"),
        ("delete", True, "absent"),
        ("delete", False, "absent"),
    ],
)
def test_each_command_leaves_the_ledger_wanting_a_state(
    operation: Operation, active: bool, state: str
) -> None:
    data = command(operation)
    data = data.model_copy(update={"profile": Profile(user_name="ada", active=active)})

    assert state_after(data) == state
