"""Reconciliation judged without a target: compare, the ledger's states, the schedule."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from accord.events import Profile
from accord.provisioner.domain.reconcile import (
    Desired,
    Difference,
    Drifted,
    InSync,
    Missing,
    Orphan,
    Tally,
    compare,
)
from accord.provisioner.ports import TargetAccount
from accord.provisioner.schedule import keep_reconciling, seconds_until_due

MANAGED = frozenset({"user_name", "title", "display_name"})
ADA = Profile(user_name="ada", given_name="Ada", family_name="Lovelace", title="Analyst")


def derived_display(profile: Profile) -> Profile:
    """Like a SCIM target: a display name from the names when there is none."""
    if profile.display_name:
        return profile
    names = " ".join(n for n in (profile.given_name, profile.family_name) if n)
    return profile.model_copy(update={"display_name": names or None})


def account(owner: str | None, *, active: bool = True, **fields: object) -> TargetAccount:
    profile = derived_display(ADA).model_copy(update=fields)
    return TargetAccount("acc-1", owner, active, profile)


def judge(found: TargetAccount, desired: Desired | None) -> object:
    return compare(found, desired, managed_fields=MANAGED, as_stored=derived_display)


def test_an_account_as_the_target_would_store_it_is_in_sync() -> None:
    found = account("u-1")
    assert judge(found, Desired("u-1", ADA, "active")) == InSync(found)


def test_a_changed_attribute_is_drift_naming_the_field_and_both_values() -> None:
    found = account("u-1", title="Boss")
    desired = Desired("u-1", ADA, "active")

    assert judge(found, desired) == Drifted(
        found, desired, (Difference("title", "Analyst", "Boss"),)
    )


def test_fields_the_connector_does_not_manage_are_not_compared() -> None:
    found = account("u-1", department="Elsewhere")
    assert isinstance(judge(found, Desired("u-1", ADA, "active")), InSync)


@pytest.mark.parametrize(
    ("state", "active", "expected"),
    [("disabled", True, ("false", "true")), ("active", False, ("true", "false"))],
)
def test_a_wrong_status_is_drift_of_active(
    state: str, active: bool, expected: tuple[str, str]
) -> None:
    found = account("u-1", active=active)
    finding = judge(found, Desired("u-1", ADA, state))  # type: ignore[arg-type]
    assert isinstance(finding, Drifted)
    assert finding.differences == (Difference("active", *expected),)


@pytest.mark.parametrize(
    ("owner", "desired", "reason"),
    [
        (None, None, "unlinked"),
        ("u-9", None, "unknown_owner"),
        ("u-1", Desired("u-1", ADA, "absent"), "not_entitled"),
    ],
)
def test_accounts_nobody_should_have_are_orphans(
    owner: str | None, desired: Desired | None, reason: str
) -> None:
    found = account(owner)
    assert judge(found, desired) == Orphan(found, reason)  # type: ignore[arg-type]


def test_the_tally_counts_accounts_read_apart_from_missing_ones() -> None:
    tally = Tally()
    desired = Desired("u-1", ADA, "active")
    for finding in (
        InSync(account("u-1")),
        Drifted(account("u-2"), desired, ()),
        Orphan(account(None), "unlinked"),
        Missing(desired),
    ):
        tally.add(finding)
    assert (tally.accounts, tally.in_sync, tally.drifted, tally.orphans, tally.missing) == (
        3,
        1,
        1,
        1,
        1,
    )


def test_a_run_is_due_every_interval_after_the_last_one_started() -> None:
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    assert seconds_until_due(None, 3600, now) == 0
    assert seconds_until_due(now - timedelta(minutes=15), 3600, now) == 2700
    assert seconds_until_due(now - timedelta(hours=5), 3600, now) == 0


class FakePool:
    """Answers the one query the schedule asks: when the latest run started."""

    def __init__(self, last_started: datetime | None) -> None:
        self.last_started = last_started

    async def fetchval(self, query: str, *args: object) -> datetime | None:
        assert "reconciliation_runs" in query
        return self.last_started


class FakeReconciler:
    target = "crm"

    def __init__(self, runtime: Any) -> None:
        self.runs: list[tuple[bool, str]] = []
        self._runtime = runtime

    async def run(self, *, fix: bool = False, trigger: str = "cli") -> Any:
        self.runs.append((fix, trigger))
        self._runtime.stopping.set()  # one run is enough for the test
        return SimpleNamespace(run_id="rec-1")


async def test_the_schedule_runs_a_due_target_report_only() -> None:
    runtime = SimpleNamespace(pool=FakePool(None), stopping=asyncio.Event())
    reconciler = FakeReconciler(runtime)

    await asyncio.wait_for(
        keep_reconciling(runtime, lambda: reconciler, 3600),
        timeout=5,  # type: ignore[arg-type]
    )

    assert reconciler.runs == [(False, "schedule")]


async def test_the_schedule_waits_when_a_run_was_recent() -> None:
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    runtime = SimpleNamespace(pool=FakePool(now - timedelta(minutes=1)), stopping=asyncio.Event())
    reconciler = FakeReconciler(runtime)

    task = asyncio.create_task(
        keep_reconciling(runtime, lambda: reconciler, 3600, clock=lambda: now)  # type: ignore[arg-type]
    )
    await asyncio.sleep(0.2)
    runtime.stopping.set()
    await asyncio.wait_for(task, timeout=5)

    assert reconciler.runs == []
