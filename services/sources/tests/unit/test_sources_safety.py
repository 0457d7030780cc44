"""The safety limit: a truncated export is held; an ordinary night passes."""

from __future__ import annotations

from accord.sources.config import Safety
from accord.sources.diff import Change, ChangeKind, DiffResult, KeyState, SourceState, Status
from accord.sources.safety import judge_run


def _state(active: int, inactive: int = 0) -> SourceState:
    entries = {
        str(i): KeyState(f"u{i}", Status.ACTIVE if i < active else Status.INACTIVE, f"n{i}", b"")
        for i in range(active + inactive)
    }
    return SourceState(("user_name",), entries)


def _result(deactivated: int = 0, deleted: int = 0) -> DiffResult:
    changes = [
        Change(ChangeKind.DEACTIVATED, f"d{i}", f"d{i}", "x", False) for i in range(deactivated)
    ]
    changes += [Change(ChangeKind.DELETED, f"g{i}", f"g{i}", "x", False) for i in range(deleted)]
    changes.append(Change(ChangeKind.CREATED, "c", "c", "x", True, ("x",), ("user_name",)))
    return DiffResult(changes, SourceState(), [])


def test_a_truncated_export_is_held_with_the_counts() -> None:
    verdict = judge_run(_state(10_000), _result(deleted=5_000), Safety())
    assert verdict.held
    assert (verdict.deletions, verdict.deactivations, verdict.base) == (5_000, 0, 10_000)
    assert verdict.reason is not None
    assert "5000 deletions are 50.0 % of 10000 active (limit 5 %)" in verdict.reason


def test_up_to_the_limit_passes_one_more_is_held() -> None:
    previous = _state(1_000, inactive=500)  # the inactive do not count in the base
    assert not judge_run(previous, _result(deactivated=50), Safety()).held
    assert judge_run(previous, _result(deactivated=51), Safety()).held
    assert not judge_run(previous, _result(deleted=50), Safety()).held
    assert judge_run(previous, _result(deleted=51), Safety()).held


def test_deactivations_and_deletions_together_are_limited_too() -> None:
    verdict = judge_run(_state(1_000), _result(deactivated=40, deleted=40), Safety())
    assert verdict.held
    assert verdict.reason is not None
    assert "80 deactivations and deletions" in verdict.reason


def test_limits_are_per_source() -> None:
    strict = Safety(max_deactivations_percent=1, max_deletions_percent=0)
    assert judge_run(_state(1_000), _result(deleted=1), strict).held
    lenient = Safety(max_deactivations_percent=60, max_deletions_percent=60)
    assert not judge_run(_state(10_000), _result(deleted=5_000), lenient).held


def test_with_no_active_identity_before_any_removal_is_held() -> None:
    assert not judge_run(SourceState(), _result(), Safety()).held
    assert judge_run(_state(0, inactive=3), _result(deleted=1), Safety()).held
