"""Planning time-trigger timers: scheduled once per identity, workflow version and date
value, moved with the date, cancelled when it goes or the identity leaves, caught up when
late within the workflow's grace window."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.orchestrator.workflows.durations import parse_duration
from accord.orchestrator.workflows.timers import (
    DEFAULT_CATCH_UP,
    Timer,
    TimerKey,
    TimerPlan,
    TimeTrigger,
    date_attribute,
    plan_timers,
    stale_timers,
)

NOW = datetime(2027, 2, 1, 12, tzinfo=UTC)
PRE_HIRE = TimeTrigger("pre-hire", "v1", "hire_date", parse_duration("-P7D"), "Europe/Paris")
ON_THE_DAY = TimeTrigger("welcome", "v1", "hire_date", parse_duration("PT8H"), "Europe/Paris")
CONTRACT_END = TimeTrigger("contract-end", "v1", "leave_date", parse_duration("P0D"), "UTC")
WORKFLOWS = [PRE_HIRE, ON_THE_DAY, CONTRACT_END]


def ada(**attributes: object) -> dict[str, object]:
    return {"id": "u-1", "status": "active", **attributes}


def apply(existing: list[Timer], plan: TimerPlan, fire: bool = True) -> list[Timer]:
    """What a store holds after carrying out `plan` (upserts by id, fire_now fired or due)."""
    cancelled = set(plan.cancel)
    held = {t.timer_id: t for t in existing if t.timer_id not in cancelled}
    for timer in plan.schedule:
        held[timer.timer_id] = timer
    for timer in plan.fire_now:
        held[timer.timer_id] = timer.fired() if fire else timer
    return list(held.values())


def plan(
    after: Mapping[str, object] | None,
    existing: list[Timer] | None = None,
    *,
    before: Mapping[str, object] | None = None,
    now: datetime = NOW,
    workflows: list[TimeTrigger] = WORKFLOWS,
) -> TimerPlan:
    return plan_timers(workflows, before, after, existing or [], now)


def pending(timers: list[Timer]) -> dict[tuple[str, str], datetime]:
    return {(t.key.workflow_id, t.key.date_value): t.fire_at for t in timers}


def test_a_new_hire_date_schedules_each_workflows_timer_in_the_persons_zone() -> None:
    result = plan(ada(hire_date="2027-03-01", time_zone="Asia/Tokyo"), before=ada())
    assert result.cancel == result.fire_now == result.skipped == []
    assert pending(result.schedule) == {
        ("pre-hire", "2027-03-01"): datetime(2027, 2, 21, 15, tzinfo=UTC),  # 00:00 in Tokyo
        ("welcome", "2027-03-01"): datetime(2027, 2, 28, 23, tzinfo=UTC),  # 08:00 in Tokyo
    }
    assert {t.state for t in result.schedule} == {"scheduled"}


def test_the_timer_id_is_stable_and_names_every_part_of_the_key() -> None:
    key = TimerKey("u-1", "pre-hire", "v1", "hire_date", "2027-03-01")
    assert key.timer_id == "wft-5e4c18f8929a0185519de48a232724af"  # the store's unique key
    others = [
        TimerKey("u-2", "pre-hire", "v1", "hire_date", "2027-03-01"),
        TimerKey("u-1", "welcome", "v1", "hire_date", "2027-03-01"),
        TimerKey("u-1", "pre-hire", "v2", "hire_date", "2027-03-01"),
        TimerKey("u-1", "pre-hire", "v1", "start_date", "2027-03-01"),
        TimerKey("u-1", "pre-hire", "v1", "hire_date", "2027-03-02"),
    ]
    assert len({key.timer_id, *(other.timer_id for other in others)}) == 6


def test_moving_the_date_cancels_exactly_the_old_timer_and_schedules_the_new() -> None:
    held = apply([], plan(ada(hire_date="2027-03-01", leave_date="2027-12-31")))
    old_pre_hire = next(t for t in held if t.key.workflow_id == "pre-hire")
    old_welcome = next(t for t in held if t.key.workflow_id == "welcome")
    contract = next(t for t in held if t.key.workflow_id == "contract-end")

    moved = plan(
        ada(hire_date="2027-03-15", leave_date="2027-12-31"),
        held,
        before=ada(hire_date="2027-03-01", leave_date="2027-12-31"),
    )
    assert sorted(moved.cancel) == sorted([old_pre_hire.timer_id, old_welcome.timer_id])
    assert contract.timer_id not in moved.cancel
    assert pending(moved.schedule) == {
        ("pre-hire", "2027-03-15"): datetime(2027, 3, 7, 23, tzinfo=UTC),
        ("welcome", "2027-03-15"): datetime(2027, 3, 15, 7, tzinfo=UTC),
    }


def test_removing_the_date_cancels_its_timers_only() -> None:
    held = apply([], plan(ada(hire_date="2027-03-01", leave_date="2027-12-31")))
    result = plan(ada(leave_date="2027-12-31"), held)
    assert sorted(result.cancel) == sorted(
        t.timer_id for t in held if t.key.attribute == "hire_date"
    )
    assert result.schedule == result.fire_now == []


@pytest.mark.parametrize(
    "after",
    [None, ada(hire_date="2027-03-01", left=True), ada(hire_date="2027-03-01", status="deleted")],
)
def test_an_identity_that_leaves_cancels_all_its_pending_timers(
    after: dict[str, object] | None,
) -> None:
    held = apply([], plan(ada(hire_date="2027-03-01", leave_date="2027-12-31")))
    fired = Timer(TimerKey("u-1", "old", "v1", "hire_date", "2026-01-01"), NOW, "fired")
    someone_else = Timer(TimerKey("u-2", "welcome", "v1", "hire_date", "2027-03-01"), NOW)
    result = plan(after, [*held, fired, someone_else], before=ada(hire_date="2027-03-01"))
    assert sorted(result.cancel) == sorted(t.timer_id for t in held)
    assert result.schedule == result.fire_now == []


def test_a_workflow_no_longer_active_loses_its_pending_timers() -> None:
    held = apply([], plan(ada(hire_date="2027-03-01")))
    result = plan(ada(hire_date="2027-03-01"), held, workflows=[ON_THE_DAY])
    assert result.cancel == [next(t.timer_id for t in held if t.key.workflow_id == "pre-hire")]
    assert result.schedule == []


def test_a_past_time_within_the_grace_window_fires_now() -> None:
    # Entered late: 08:00 on 1 February in Paris is 07:00 UTC, five hours before NOW.
    result = plan(ada(hire_date="2027-02-01"), workflows=[ON_THE_DAY])
    assert pending(result.fire_now) == {
        ("welcome", "2027-02-01"): datetime(2027, 2, 1, 7, tzinfo=UTC)
    }
    assert result.schedule == result.skipped == []


def test_a_time_that_is_exactly_now_fires_now() -> None:
    now = datetime(2027, 2, 1, 7, tzinfo=UTC)
    result = plan(ada(hire_date="2027-02-01"), workflows=[ON_THE_DAY], now=now)
    assert [t.fire_at for t in result.fire_now] == [now]


def test_a_past_time_outside_the_grace_window_is_skipped_and_reported() -> None:
    # 7 days before 3 February is 26 January: six days late, more than the default 24 hours.
    result = plan(ada(hire_date="2027-02-03"), workflows=[PRE_HIRE])
    assert result.schedule == result.fire_now == []
    [skipped] = result.skipped
    assert skipped.key.workflow_id == "pre-hire"
    assert skipped.fire_at == datetime(2027, 1, 26, 23, tzinfo=UTC)
    assert "more than 1 day" in skipped.reason
    lenient = TimeTrigger(**{**PRE_HIRE.__dict__, "catch_up": timedelta(days=7)})
    assert len(plan(ada(hire_date="2027-02-03"), workflows=[lenient]).fire_now) == 1


def test_a_timer_that_fired_never_fires_again_for_that_date_value() -> None:
    fired = [t.fired() for t in plan(ada(hire_date="2027-03-01")).schedule]
    later = NOW + timedelta(days=40)  # both timers are past, within no grace window
    assert plan(ada(hire_date="2027-03-01"), fired, now=later).is_empty
    # Moved away and back: the date value fired already, so nothing fires twice.
    away = plan(ada(hire_date="2027-04-01"), fired, now=later)
    back = plan(ada(hire_date="2027-03-01"), apply(fired, away), now=later)
    assert back.schedule == back.fire_now == []


def test_an_update_soon_after_a_timer_fired_does_not_fire_it_again() -> None:
    [timer] = plan(ada(hire_date="2027-03-01"), workflows=[ON_THE_DAY]).schedule
    fired = [timer.fired()]
    an_hour_later = timer.fire_at + timedelta(hours=1)  # within the catch-up window
    assert plan(
        ada(hire_date="2027-03-01"), fired, workflows=[ON_THE_DAY], now=an_hour_later
    ).is_empty
    # A new zone puts 08:00 ahead again (Paris -> New York): the date value fired already.
    moved = ada(hire_date="2027-03-01", time_zone="America/New_York")
    assert plan(moved, fired, workflows=[ON_THE_DAY], now=an_hour_later).is_empty


def test_a_new_time_zone_moves_the_pending_timer_under_the_same_id() -> None:
    held = apply([], plan(ada(hire_date="2027-03-01"), workflows=[ON_THE_DAY]))
    moved = plan(
        ada(hire_date="2027-03-01", time_zone="America/New_York"), held, workflows=[ON_THE_DAY]
    )
    assert moved.cancel == []
    [timer] = moved.schedule
    assert timer.timer_id == held[0].timer_id
    assert timer.fire_at == datetime(2027, 3, 1, 13, tzinfo=UTC)  # 08:00 in New York


def test_a_new_version_replaces_the_pending_timer_of_the_old() -> None:
    held = apply([], plan(ada(hire_date="2027-03-01"), workflows=[PRE_HIRE]))
    v2 = TimeTrigger("pre-hire", "v2", "hire_date", parse_duration("-P3D"), "Europe/Paris")
    result = plan(ada(hire_date="2027-03-01"), held, workflows=[v2])
    assert result.cancel == [held[0].timer_id]
    [timer] = result.schedule
    assert (timer.key.version, timer.fire_at) == ("v2", datetime(2027, 2, 25, 23, tzinfo=UTC))


def test_a_new_version_fires_again_when_its_time_is_ahead_but_never_catches_up() -> None:
    v1 = TimeTrigger("pre-hire", "v1", "hire_date", parse_duration("-P1D"), "UTC")
    fired = [
        t.fired()
        for t in plan(
            ada(hire_date="2027-02-02"), workflows=[v1], now=NOW - timedelta(days=1)
        ).schedule
    ]
    ahead = TimeTrigger("pre-hire", "v2", "hire_date", parse_duration("PT18H"), "UTC")
    assert len(plan(ada(hire_date="2027-02-02"), fired, workflows=[ahead]).schedule) == 1
    # Same moment under v2 (edited wording, say): past, and v1 fired for this date.
    same = TimeTrigger("pre-hire", "v2", "hire_date", parse_duration("-P1D"), "UTC")
    result = plan(ada(hire_date="2027-02-02"), fired, workflows=[same])
    assert result.schedule == result.fire_now == []
    [skipped] = result.skipped
    assert "version v1 already fired" in skipped.reason


def test_an_unreadable_date_is_reported_and_its_old_timer_cancelled() -> None:
    held = apply([], plan(ada(hire_date="2027-03-01"), workflows=[PRE_HIRE]))
    result = plan(ada(hire_date="first of March"), held, workflows=[PRE_HIRE])
    assert result.cancel == [held[0].timer_id]
    [skipped] = result.skipped
    assert skipped.fire_at is None
    assert "ISO date" in skipped.reason


def test_date_objects_are_keyed_by_their_iso_text() -> None:
    as_text = plan(ada(hire_date="2027-03-01"), workflows=[PRE_HIRE]).schedule
    as_date = plan(ada(hire_date=date(2027, 3, 1)), workflows=[PRE_HIRE]).schedule
    assert as_text == as_date


def test_planning_needs_an_aware_now_and_one_identity() -> None:
    with pytest.raises(ValueError, match="aware"):
        plan(ada(), now=datetime(2027, 2, 1))
    with pytest.raises(ValueError, match="differ"):
        plan({"id": "u-2"}, before=ada())
    with pytest.raises(ValueError, match="before or after"):
        plan(None)


dates = st.one_of(
    st.none(),
    st.dates(min_value=date(2027, 1, 20), max_value=date(2027, 3, 1)).map(date.isoformat),
)
identities = st.builds(
    lambda hire, leave, zone, left: {
        k: v
        for k, v in ada(hire_date=hire, leave_date=leave, time_zone=zone, left=left).items()
        if v is not None
    },
    dates,
    dates,
    st.sampled_from([None, "Asia/Tokyo", "America/New_York", "Nowhere/Atlantis"]),
    st.sampled_from([None, False, True]),
)
versions = st.lists(
    st.sampled_from(
        [
            PRE_HIRE,
            ON_THE_DAY,
            CONTRACT_END,
            TimeTrigger("pre-hire", "v2", "hire_date", parse_duration("-P3D"), "Europe/Paris"),
        ]
    ),
    unique_by=lambda t: t.workflow_id,
)


@given(
    before=st.one_of(st.none(), identities),
    after=st.one_of(st.none(), identities),
    first=versions,
    second=versions,
    fire=st.booleans(),
    hours=st.integers(0, 24 * 30),
)
def test_planning_the_same_change_twice_schedules_nothing_new(
    before: dict[str, object] | None,
    after: dict[str, object] | None,
    first: list[TimeTrigger],
    second: list[TimeTrigger],
    fire: bool,
    hours: int,
) -> None:
    if before is None and after is None:
        return
    # Some history: timers planned for `before` under the first set, then time passes.
    history = apply([], plan(before, workflows=first)) if before is not None else []
    now = NOW + timedelta(hours=hours)
    once = plan(after, history, before=before, workflows=second, now=now)
    held = apply(history, once, fire=fire)
    again = plan(after, held, before=before, workflows=second, now=now)
    assert again.schedule == again.fire_now == again.cancel == []
    # No stale timer: what stays pending is for an active workflow and the current date.
    current = {
        (t.workflow_id, t.version, t.attribute, after[t.attribute])
        for t in second
        if after is not None and after.get("left") is not True and t.attribute in after
    }
    assert {
        (t.key.workflow_id, t.key.version, t.key.attribute, t.key.date_value)
        for t in held
        if t.state == "scheduled"
    } <= current


# --- custom date attributes (attributes.<name>) -------------------------------------------------

CUSTOM_END = TimeTrigger(
    "custom-end", "v1", "attributes.contract_end", parse_duration("PT8H"), "UTC"
)


def custom(value: object) -> dict[str, object]:
    """ada as the registry's view holds her: custom attributes in their own mapping."""
    return ada(attributes={"contract_end": value, "site": "Lyon"})


@pytest.mark.parametrize(
    ("identity", "name", "expected"),
    [
        (ada(hire_date="2027-03-01"), "hire_date", "2027-03-01"),
        (custom("2027-06-30"), "attributes.contract_end", "2027-06-30"),
        (ada(attributes={"hr.end": "2027-06-30"}), "attributes.hr.end", "2027-06-30"),
        (ada(**{"attributes.contract_end": "2027-06-30"}), "attributes.contract_end", "2027-06-30"),
        (custom("2027-06-30"), "attributes.missing", None),
        (ada(attributes="not a mapping"), "attributes.contract_end", None),
        (ada(), "attributes.contract_end", None),
        (custom("2027-06-30"), "contract_end", None),
    ],
)
def test_a_date_attribute_is_a_profile_field_or_a_custom_attribute(
    identity: dict[str, object], name: str, expected: object
) -> None:
    assert date_attribute(identity, name) == expected


@pytest.mark.parametrize(
    ("value", "date_value", "fire_at"),
    [
        ("2027-06-30", "2027-06-30", datetime(2027, 6, 30, 8, tzinfo=UTC)),
        (" 2027-06-30 ", "2027-06-30", datetime(2027, 6, 30, 8, tzinfo=UTC)),
        ("2027-06-30T17:00:00Z", "2027-06-30T17:00:00Z", datetime(2027, 7, 1, 1, tzinfo=UTC)),
        (
            "2027-06-30T17:00:00+02:00",
            "2027-06-30T17:00:00+02:00",
            datetime(2027, 6, 30, 23, tzinfo=UTC),
        ),
        (date(2027, 6, 30), "2027-06-30", datetime(2027, 6, 30, 8, tzinfo=UTC)),
    ],
)
def test_a_custom_date_attribute_schedules_like_a_profile_date(
    value: object, date_value: str, fire_at: datetime
) -> None:
    result = plan(custom(value), workflows=[CUSTOM_END])
    assert result.cancel == result.fire_now == result.skipped == []
    [timer] = result.schedule
    assert (timer.key.attribute, timer.key.date_value, timer.fire_at) == (
        "attributes.contract_end",
        date_value,
        fire_at,
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("end of June", "ISO date"),
        ("2027-02-30", "ISO date"),
        (20270630, "not ISO 8601 text but int 20270630"),
        (["2027-06-30"], "not ISO 8601 text but list"),
    ],
)
def test_an_unreadable_custom_date_plans_nothing_and_is_reported(
    value: object, reason: str
) -> None:
    held = apply([], plan(custom("2027-06-30"), workflows=[CUSTOM_END]))
    result = plan(custom(value), held, workflows=[CUSTOM_END])
    assert result.schedule == result.fire_now == []
    assert result.cancel == [held[0].timer_id]  # the old date's timer goes
    [skipped] = result.skipped
    assert (skipped.key.attribute, skipped.fire_at) == ("attributes.contract_end", None)
    assert reason in skipped.reason


@pytest.mark.parametrize(
    ("after", "cancelled", "scheduled"),
    [
        # moved: the old value's timer goes, the new one's comes
        (custom("2027-07-31"), True, [("custom-end", "2027-07-31")]),
        # removed, or the whole custom mapping gone: cancelled
        (ada(attributes={"site": "Lyon"}), True, []),
        (ada(), True, []),
        # unchanged, or another custom attribute changed: nothing
        (custom("2027-06-30"), False, []),
        (ada(attributes={"contract_end": "2027-06-30", "site": "Paris"}), False, []),
    ],
)
def test_a_custom_date_moves_and_cancels_its_timer_like_hire_date(
    after: dict[str, object], cancelled: bool, scheduled: list[tuple[str, str]]
) -> None:
    held = apply([], plan(custom("2027-06-30"), workflows=[CUSTOM_END]))
    result = plan(after, held, before=custom("2027-06-30"), workflows=[CUSTOM_END])
    assert result.cancel == ([held[0].timer_id] if cancelled else [])
    assert list(pending(result.schedule)) == scheduled


def test_a_custom_date_fires_once_per_version_and_value() -> None:
    fired = [t.fired() for t in plan(custom("2027-06-30"), workflows=[CUSTOM_END]).schedule]
    later = NOW + timedelta(days=200)
    assert plan(custom("2027-06-30"), fired, workflows=[CUSTOM_END], now=later).is_empty
    v2 = TimeTrigger("custom-end", "v2", "attributes.contract_end", CUSTOM_END.offset, "UTC")
    result = plan(custom("2027-06-30"), fired, workflows=[v2], now=later)
    assert result.schedule == result.fire_now == []
    assert "version v1 already fired" in result.skipped[0].reason


# --- timers a changed set no longer plans --------------------------------------------------------

A = Timer(TimerKey("u-1", "pre-hire", "v1", "hire_date", "2027-03-01"), NOW)
B = Timer(TimerKey("u-2", "custom-end", "v1", "attributes.contract_end", "2027-06-30"), NOW)


@pytest.mark.parametrize(
    ("workflows", "timers", "stale"),
    [
        ([PRE_HIRE, CUSTOM_END], [A, B], []),
        # a workflow removed or disabled (absent from the active set)
        ([PRE_HIRE], [A, B], [B.timer_id]),
        ([], [A, B], sorted([A.timer_id, B.timer_id])),
        # a new version, or a trigger on another date
        ([replace(PRE_HIRE, version="v2"), CUSTOM_END], [A, B], [A.timer_id]),
        ([replace(PRE_HIRE, attribute="start_date"), CUSTOM_END], [A, B], [A.timer_id]),
        # an offset or zone change keeps the key (planning moves the timer instead)
        ([replace(PRE_HIRE, offset=parse_duration("-P3D")), CUSTOM_END], [A, B], []),
        # only scheduled timers: a fired, skipped or cancelled one stays as it is
        ([], [A.fired(), replace(B, state="skipped")], []),
        ([], [replace(A, state="cancelled")], []),
    ],
)
def test_a_changed_set_cancels_the_timers_it_no_longer_plans(
    workflows: list[TimeTrigger], timers: list[Timer], stale: list[str]
) -> None:
    assert stale_timers(workflows, timers) == stale


def test_the_default_grace_window_is_a_day() -> None:
    assert timedelta(hours=24) == DEFAULT_CATCH_UP
    assert PRE_HIRE.catch_up == DEFAULT_CATCH_UP
