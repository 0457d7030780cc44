"""The leaver uses the fan-out saga with disable or delete, and never compensates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from accord.orchestrator.domain import joiner

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_a_leaver_disables_every_account_it_has() -> None:
    state, commands = joiner.start(
        "s-1", "u-1", ["slack", "github"], NOW, saga_type="leaver", operation="disable"
    )
    assert state.saga_type == "leaver"
    assert [
        (c.target, c.operation) for c in commands if isinstance(c, joiner.ProvisionAccount)
    ] == [
        ("github", "disable"),
        ("slack", "disable"),
    ]


def test_a_leaver_fails_naming_the_target_that_stayed_down_and_compensates_nothing() -> None:
    state, _ = joiner.start(
        "s-1", "u-1", ["slack", "github"], NOW, saga_type="leaver", operation="delete"
    )
    state, commands = joiner.decide(state, joiner.Provisioned("slack"), NOW)
    assert commands == []
    later = NOW + timedelta(seconds=3)
    state, commands = joiner.decide(state, joiner.ProvisionFailed("github", "timed out"), later)
    assert state.status == "failed"
    (fail,) = commands
    assert isinstance(fail, joiner.FailSaga)
    assert fail.failed_targets == ("github",)
    assert "github: timed out" in fail.reason
    assert joiner.COMPENSATIONS["delete_account"] is None
    assert joiner.COMPENSATIONS["disable_account"] is None
