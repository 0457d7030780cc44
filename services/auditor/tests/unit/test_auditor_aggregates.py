"""The stream aggregates' domain: windows, counts, percentiles, joiner latency, bounded memory."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from accord.auditor.domain.aggregates import (
    OTHER,
    Aggregator,
    Observation,
    Policy,
    Samples,
    Step,
    epoch_ms,
    minute_text,
    observation_of,
    percentile,
)
from accord.events import AuditMetrics, AuditRecorded

#: A minute boundary; T(s) is `s` seconds after it, in ms since the epoch.
START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NOW = START + timedelta(hours=1)
OUTCOMES = {
    "user.created": "info",
    "saga.started": "pending",
    "provision.requested": "pending",
    "account.provisioned": "success",
    "account.provision_failed": "failure",
    "saga.completed": "success",
    "saga.failed": "failure",
}


def T(seconds: float) -> int:
    return epoch_ms(START) + int(seconds * 1000)


def obs(
    kind: str,
    at: float,
    corr: str = "c-1",
    *,
    target: str | None = None,
    occurred: float | None = None,
    saga_type: str | None = None,
    targets: tuple[str, ...] = (),
    outcome: str | None = None,
) -> Observation:
    """An observation recorded at T(at), its event having happened at T(occurred or at)."""
    if kind.startswith("saga.") and saga_type is None:
        saga_type = "joiner"
    return Observation(
        recorded_ms=T(at),
        occurred_ms=T(at if occurred is None else occurred),
        event_type=kind,
        outcome=outcome or OUTCOMES.get(kind, "info"),
        correlation_id=corr,
        target=target,
        saga_type=saga_type,
        targets=targets,
    )


def joiner(
    corr: str,
    start: float,
    done: dict[str, float],
    *,
    end: str = "saga.completed",
    failed: tuple[str, ...] = (),
) -> list[Observation]:
    """A joiner's records: user.created at `start`, accounts at the given seconds, its end."""
    targets = (*done, *failed)
    last = max([start, *done.values()]) + 0.5
    records = [
        obs("user.created", start, corr),
        obs("saga.started", start + 0.1, corr, targets=targets),
        *(obs("provision.requested", start + 0.2, corr, target=t) for t in targets),
        *(obs("account.provisioned", at, corr, target=t) for t, at in done.items()),
        *(obs("account.provision_failed", last - 0.2, corr, target=t) for t in failed),
        obs(end, last, corr),
    ]
    return records


def feed(aggregator: Aggregator, observations: list[Observation]) -> list[Step]:
    return [aggregator.observe(o, NOW) for o in observations]


def closed(steps: list[Step]) -> list[AuditMetrics]:
    return [window for step in steps for window in step.closed]


def close_all(aggregator: Aggregator) -> list[AuditMetrics]:
    """Idle long enough for the clock to close every window."""
    aggregator.advance(NOW)
    return list(aggregator.advance(NOW + timedelta(hours=2)).closed)


def counts(window: AuditMetrics) -> dict[tuple[str, str], int]:
    return {(c.event_type, c.outcome): c.count for c in window.counts}


def targets(window: AuditMetrics) -> dict[str, Any]:
    return {t.target: t for t in window.targets}


# --- percentiles and samples ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        (list(range(1, 101)), 50, 50),
        (list(range(1, 101)), 90, 90),
        (list(range(1, 101)), 99, 99),
        (list(range(1, 101)), 100, 100),
        ([7], 50, 7),
        ([7], 99, 7),
        ([10, 20], 50, 10),
        ([10, 20], 90, 20),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90, 9),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 99, 10),
    ],
)
def test_percentiles_are_nearest_rank(values: list[int], q: int, expected: int) -> None:
    assert percentile(values, q) == expected


def test_a_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_samples_keep_a_bounded_uniform_sample_with_exact_count_and_max() -> None:
    samples, rng = Samples(), random.Random(1)
    for value in range(10_000):
        samples.add(value, 100, rng)
    assert (samples.count, samples.max, len(samples.values)) == (10_000, 9999, 100)
    stats = samples.stats()
    assert (stats.joiners, stats.samples, stats.max_ms) == (10_000, 100, 9999)
    # A uniform sample of 0..9999: its median lands near the middle.
    assert stats.p50_ms is not None
    assert 3000 < stats.p50_ms < 7000


def test_samples_under_the_cap_are_exact() -> None:
    samples, rng = Samples(), random.Random(1)
    for value in (300, 100, 200):
        samples.add(value, 10, rng)
    stats = samples.stats()
    assert (stats.joiners, stats.samples, stats.p50_ms, stats.p90_ms, stats.max_ms) == (
        3,
        3,
        200,
        300,
        300,
    )
    assert Samples().stats().p50_ms is None


# --- observations -----------------------------------------------------------------------------


def recorded(kind: str, **fields: Any) -> AuditRecorded:
    values: dict[str, Any] = {
        "record_id": 1,
        "source_event_id": "ev-1",
        "source_topic": kind,
        "event_type_recorded": kind,
        "occurred_at": START,
        "actor": "accord/test",
        "subject": "e-1",
        "outcome": "info",
        "correlation_id": "c-1",
    }
    values.update(fields)
    return AuditRecorded.model_validate(values)


def test_an_observation_takes_what_the_aggregates_need_from_an_audit_record() -> None:
    record = recorded(
        "saga.started",
        outcome="pending",
        payload={"saga_type": "joiner", "targets": ["ldap", 7, "scim"], "subject_id": "e-1"},
    )
    observation = observation_of(record, START + timedelta(seconds=2))
    assert observation == Observation(
        recorded_ms=T(2),
        occurred_ms=T(0),
        event_type="saga.started",
        outcome="pending",
        correlation_id="c-1",
        target=None,
        saga_type="joiner",
        targets=("ldap", "scim"),
    )


def test_unknown_types_become_other_and_naive_times_are_utc() -> None:
    # An AuditRecorded refuses a naive time; the aggregator copes with one all the same.
    naive = datetime(2024, 5, 1, 12, 0, 1)
    record = recorded("made.up", target="x").model_copy(update={"occurred_at": naive})
    observation = observation_of(record, START)
    assert (observation.event_type, observation.occurred_ms, observation.target) == (
        OTHER,
        T(1),
        "x",
    )


def test_payload_fields_are_read_only_from_the_events_that_carry_them() -> None:
    record = recorded("user.created", payload={"saga_type": "mover", "targets": ["ldap"]})
    observation = observation_of(record, START)
    assert (observation.saga_type, observation.targets) == (None, ())
    redacted = recorded("saga.started", payload={"saga_type": "[redacted]", "targets": "x"})
    assert observation_of(redacted, START).targets == ()


# --- windows ----------------------------------------------------------------------------------


def test_a_window_closes_once_the_watermark_passes_its_end_and_the_grace() -> None:
    aggregator = Aggregator(Policy(grace_s=10))
    steps = feed(
        aggregator,
        [obs("user.created", 1, "a"), obs("user.created", 59, "b"), obs("user.created", 65, "c")],
    )
    assert not closed(steps)  # 65 s < 60 s + 10 s of grace
    step = aggregator.observe(obs("user.updated", 70, "d"), NOW)
    [window] = step.closed
    assert window.window_start == "2024-05-01T12:00:00Z"
    assert (window.records, window.late_records, window.window_seconds) == (2, 0, 60)
    assert counts(window) == {("user.created", "info"): 2}
    assert window.event_subject() == "2024-05-01T12:00:00Z"


def test_counts_are_by_type_and_outcome_sorted() -> None:
    aggregator = Aggregator()
    feed(
        aggregator,
        [
            obs("user.updated", 1),
            obs("access.decided", 2, outcome="failure"),
            obs("access.decided", 3, outcome="success"),
            obs("access.decided", 4, outcome="success"),
            obs(OTHER, 5, outcome="failure"),
        ],
    )
    [window] = close_all(aggregator)
    assert [(c.event_type, c.outcome, c.count) for c in window.counts] == [
        ("access.decided", "failure", 1),
        ("access.decided", "success", 2),
        (OTHER, "failure", 1),
        ("user.updated", "info", 1),
    ]
    assert window.records == 5


def test_attempts_failures_and_failure_rate_per_target() -> None:
    aggregator = Aggregator()
    feed(
        aggregator,
        [
            obs("provision.requested", 1, "a", target="ldap"),
            obs("provision.requested", 1, "b", target="ldap"),
            obs("provision.requested", 1, "c", target="ldap"),
            obs("account.provisioned", 2, "a", target="ldap"),
            obs("account.provision_failed", 3, "b", target="ldap"),
            obs("account.provision_failed", 3, "c", target="ldap"),
            obs("account.provisioned", 4, "a", target="scim"),
            obs("account.drift_detected", 5, "r", target="ldap"),
        ],
    )
    [window] = close_all(aggregator)
    ldap, scim = targets(window)["ldap"], targets(window)["scim"]
    assert (ldap.requested, ldap.attempts, ldap.failures, ldap.failure_rate) == (3, 3, 2, 0.6667)
    assert (scim.requested, scim.attempts, scim.failures, scim.failure_rate) == (0, 1, 0, 0.0)


def test_windows_close_in_order_each_with_its_own_minute() -> None:
    aggregator = Aggregator(Policy(grace_s=5))
    # A backlog replayed quickly: record times, not arrival, place each record.
    steps = feed(aggregator, [obs("user.updated", 60 * m + 30, f"c{m}") for m in range(5)])
    assert [w.window_start for w in closed(steps)] == [minute_text(T(60 * m)) for m in range(4)]
    assert all(w.records == 1 for w in closed(steps))


def test_a_late_record_counts_in_the_open_window_and_says_so() -> None:
    aggregator = Aggregator(Policy(grace_s=5))
    feed(aggregator, [obs("user.updated", 10), obs("user.updated", 70)])  # closes minute 0
    step = aggregator.observe(obs("user.updated", 20, outcome="info"), NOW)
    assert step.late
    assert not step.closed
    [window] = close_all(aggregator)
    assert window.window_start == minute_text(T(60))
    assert (window.records, window.late_records) == (2, 1)


def test_a_record_time_from_the_future_is_taken_as_now() -> None:
    aggregator = Aggregator(Policy(grace_s=5))
    aggregator.observe(obs("user.updated", 10), NOW)
    step = aggregator.observe(obs("user.updated", 10 * 24 * 3600), NOW)  # ten days ahead
    # The watermark moved to now, not ten days on: minute 0 closes, now's minute stays open.
    assert [w.window_start for w in step.closed] == [minute_text(T(0))]
    assert aggregator.clock.watermark_ms == epoch_ms(NOW)
    assert list(aggregator.windows) == [epoch_ms(NOW)]


def test_an_idle_stream_closes_its_windows_by_the_clock_after_the_grace() -> None:
    aggregator = Aggregator(Policy(grace_s=10))
    assert aggregator.advance(NOW).closed == ()  # nothing seen: nothing to close
    aggregator.observe(obs("user.updated", 30), NOW)
    assert aggregator.advance(NOW + timedelta(seconds=9)).closed == ()  # not idle long enough
    [window] = aggregator.advance(NOW + timedelta(seconds=10)).closed
    assert window.records == 1


def test_the_clock_waits_for_a_window_still_running() -> None:
    aggregator = Aggregator(Policy(grace_s=10))
    live = START + timedelta(seconds=30)
    aggregator.observe(obs("user.updated", 30), live)
    # Idle, but on the clock the minute is not over yet: records may still be on their way
    # (an idle stream's watermark is the clock minus the grace, so it closes 2 graces late).
    assert aggregator.advance(live + timedelta(seconds=20)).closed == ()
    assert aggregator.advance(live + timedelta(seconds=49)).closed == ()
    assert len(aggregator.advance(live + timedelta(seconds=50)).closed) == 1


# --- joiners ----------------------------------------------------------------------------------


def test_a_joiner_is_measured_from_user_created_to_its_last_account() -> None:
    aggregator = Aggregator()
    steps = feed(aggregator, joiner("j", 1, {"ldap": 2.5, "scim": 4.0}))
    [measurement] = [m for s in steps for m in s.measured]
    assert (measurement.total_ms, dict(measurement.targets)) == (3000, {"ldap": 1500, "scim": 3000})
    assert aggregator.pending == 0
    [window] = close_all(aggregator)
    assert (window.latency.joiners, window.latency.p50_ms, window.latency.max_ms) == (1, 3000, 3000)
    assert targets(window)["ldap"].latency.p50_ms == 1500
    assert targets(window)["scim"].latency.joiners == 1


def test_latency_uses_event_times_not_record_times() -> None:
    aggregator = Aggregator()
    records = [
        obs("user.created", 10, "j", occurred=1),
        obs("saga.started", 10, "j", targets=("ldap",)),
        obs("account.provisioned", 11, "j", target="ldap", occurred=3),
        obs("saga.completed", 11, "j"),
    ]
    [measurement] = [m for s in feed(aggregator, records) for m in s.measured]
    assert measurement.total_ms == 2000


def test_records_in_any_order_give_the_same_measurement() -> None:
    records = joiner("j", 1, {"ldap": 2.5, "scim": 4.0})
    for seed in range(20):
        shuffled = list(records)
        random.Random(seed).shuffle(shuffled)
        aggregator = Aggregator()
        feed(aggregator, shuffled)
        [window] = close_all(aggregator)
        assert (window.latency.joiners, window.latency.max_ms) == (1, 3000), seed
        assert targets(window)["scim"].latency.max_ms == 3000


def test_a_failed_saga_measures_its_provisioned_targets_only() -> None:
    aggregator = Aggregator()
    steps = feed(aggregator, joiner("j", 1, {"ldap": 3}, end="saga.failed", failed=("scim",)))
    [measurement] = [m for s in steps for m in s.measured]
    assert (measurement.total_ms, dict(measurement.targets)) == (None, {"ldap": 2000})
    [window] = close_all(aggregator)
    assert window.latency.joiners == 0
    assert window.latency.p50_ms is None
    assert targets(window)["ldap"].latency.joiners == 1
    assert targets(window)["scim"].failures == 1


def test_an_ended_saga_waits_for_a_missing_account_until_its_window_closes() -> None:
    aggregator = Aggregator(Policy(grace_s=5))
    records = [r for r in joiner("j", 1, {"ldap": 2, "scim": 3}) if r.target != "scim"]
    steps = feed(aggregator, [r for r in records if r.event_type != "provision.requested"])
    assert not [m for s in steps for m in s.measured]  # scim was announced: wait for it
    assert aggregator.pending == 1
    step = aggregator.observe(obs("user.updated", 66, "other"), NOW)
    [measurement] = step.measured
    assert (measurement.total_ms, dict(measurement.targets)) == (1000, {"ldap": 1000})
    [window] = step.closed
    assert window.latency.joiners == 1  # measured in the window of its end


def test_a_straggler_of_a_measured_joiner_is_counted_but_ignored() -> None:
    aggregator = Aggregator()
    feed(aggregator, joiner("j", 1, {"ldap": 2}))
    step = aggregator.observe(obs("account.provisioned", 8, "j", target="ldap"), NOW)
    assert step.measured == ()
    assert aggregator.pending == 0


def test_a_joiner_without_its_user_created_is_not_measured() -> None:
    aggregator = Aggregator(Policy(grace_s=5))
    records = [r for r in joiner("j", 1, {"ldap": 2}) if r.event_type != "user.created"]
    steps = feed(aggregator, [*records, obs("user.updated", 70, "x")])
    assert not [m for s in steps for m in s.measured]
    assert aggregator.pending == 0
    [window] = closed(steps)
    assert window.latency.joiners == 0
    assert targets(window)["ldap"].attempts == 1


def test_other_sagas_are_not_joiners() -> None:
    aggregator = Aggregator()
    mover = [
        obs("provision.requested", 1, "m", target="ldap"),
        obs("saga.started", 1.1, "m", saga_type="mover", targets=("ldap",)),
        obs("account.provisioned", 2, "m", target="ldap"),
        obs("saga.completed", 3, "m", saga_type="mover"),
    ]
    steps = feed(aggregator, mover)
    assert aggregator.pending == 0
    assert not [m for s in steps for m in s.measured]
    [window] = close_all(aggregator)
    assert targets(window)["ldap"].attempts == 1
    assert targets(window)["ldap"].latency.joiners == 0


def test_joiners_without_news_past_the_horizon_are_evicted() -> None:
    aggregator = Aggregator(Policy(grace_s=5, horizon_s=120))
    feed(aggregator, [obs("user.created", 1, "stuck"), obs("saga.started", 1, "stuck")])
    steps = feed(aggregator, [obs("user.updated", 60 * m, f"u{m}") for m in range(1, 5)])
    assert sum(s.evicted for s in steps) == 1
    assert aggregator.pending == 0
    # Its late news is ignored rather than tracked again.
    aggregator.observe(obs("account.provisioned", 250, "stuck", target="ldap"), NOW)
    assert aggregator.pending == 0


def test_the_number_of_joiners_tracked_is_capped_oldest_first() -> None:
    aggregator = Aggregator(Policy(max_joiners=3))
    steps = feed(aggregator, [obs("user.created", n, f"j{n}") for n in range(5)])
    assert sum(s.evicted for s in steps) == 2
    assert list(aggregator.joiners) == ["j2", "j3", "j4"]


def test_targets_beyond_the_cap_are_counted_as_other() -> None:
    aggregator = Aggregator(Policy(max_targets=2))
    feed(aggregator, [obs("account.provisioned", 1, f"c{n}", target=f"t{n}") for n in range(4)])
    [window] = close_all(aggregator)
    assert {t: s.attempts for t, s in targets(window).items()} == {"t0": 1, "t1": 1, OTHER: 2}


def test_latency_samples_per_window_are_capped() -> None:
    aggregator = Aggregator(Policy(max_samples=10))
    for n in range(50):
        feed(aggregator, joiner(f"j{n}", 1, {"ldap": 1 + (n + 1) / 100}))
    [window] = close_all(aggregator)
    assert (window.latency.joiners, window.latency.samples, window.latency.max_ms) == (50, 10, 500)


@pytest.mark.parametrize(
    "options",
    [
        {"window_s": 30},
        {"window_s": 90},
        {"grace_s": -1},
        {"horizon_s": 5, "grace_s": 10},
        {"max_joiners": 0},
        {"max_samples": 0},
    ],
)
def test_a_policy_refuses_nonsense(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        Policy(**options)


def test_windows_of_several_minutes_are_whole_minutes() -> None:
    aggregator = Aggregator(Policy(window_s=300, grace_s=1))
    steps = feed(aggregator, [obs("user.updated", 10), obs("user.updated", 290), obs("x.y", 302)])
    [window] = closed(steps)
    assert (window.window_start, window.window_seconds, window.records) == (
        minute_text(T(0)),
        300,
        2,
    )


# --- changes and restore ----------------------------------------------------------------------


def test_changes_name_what_changed_once() -> None:
    aggregator = Aggregator(Policy(grace_s=5))
    feed(aggregator, [obs("user.created", 1, "a"), obs("saga.started", 2, "a")])
    changes = aggregator.changes()
    assert changes.clock is aggregator.clock
    assert set(changes.windows) == {T(0)}
    assert set(changes.joiners) == {"a"}
    again = aggregator.changes()
    assert (again.clock, again.windows, again.joiners) == (None, {}, {})
    aggregator.observe(obs("user.updated", 70, "z"), NOW)  # closes minute 0
    after = aggregator.changes()
    assert after.windows == {T(0): None, T(60): aggregator.windows[T(60)]}


def test_a_finished_joiner_is_deleted_from_the_changes() -> None:
    aggregator = Aggregator()
    feed(aggregator, joiner("j", 1, {"ldap": 2}))
    assert aggregator.changes().joiners == {"j": None}


def test_restore_continues_where_the_state_was() -> None:
    records = [
        *joiner("a", 1, {"ldap": 2, "scim": 3}),
        *joiner("b", 20, {"ldap": 25}, end="saga.failed", failed=("scim",)),
    ]
    whole = Aggregator()
    feed(whole, records)
    expected = close_all(whole)

    first = Aggregator()
    feed(first, records[:7])
    second = Aggregator()
    second.restore(first.clock, list(first.windows.values()), dict(first.joiners), NOW)
    feed(second, records[7:])
    assert close_all(second) == expected


def test_after_a_restore_the_clock_closes_due_windows_without_new_records() -> None:
    first = Aggregator(Policy(grace_s=5))
    first.observe(obs("user.updated", 10), NOW)
    second = Aggregator(Policy(grace_s=5))
    second.restore(first.clock, list(first.windows.values()), {}, NOW)
    assert second.advance(NOW + timedelta(seconds=4)).closed == ()
    assert len(second.advance(NOW + timedelta(seconds=5)).closed) == 1
