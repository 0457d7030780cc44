"""When sources run by themselves: cron schedules in UTC, and watched exports once they have
stopped changing."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from accord.sources.config import Source
from accord.sources.scheduler import Due, next_time, signature

START = datetime(2026, 12, 5, 1, 30, tzinfo=UTC)


def csv_source(name: str, path: Path | str = "hr.csv", **extra: Any) -> Source:
    return Source.model_validate(
        {
            "name": name,
            "kind": "csv",
            "csv": {"path": str(path)},
            "key": "id",
            "mappings": {"user_name": "login"},
            **extra,
        }
    )


def test_a_cron_line_fires_at_its_next_time_in_utc() -> None:
    assert next_time("0 2 * * *", START) == datetime(2026, 12, 5, 2, 0, tzinfo=UTC)
    assert next_time("0 2 * * *", START.replace(hour=2)) == datetime(2026, 12, 6, 2, 0, tzinfo=UTC)


def test_a_scheduled_source_is_due_once_per_firing() -> None:
    due = Due([csv_source("nightly", schedule="0 2 * * *"), csv_source("manual")], START)
    assert due.take(START + timedelta(minutes=29), {}) == []
    taken = due.take(START + timedelta(minutes=30), {})
    assert [(source.name, trigger) for source, trigger in taken] == [("nightly", "schedule")]
    assert due.take(START + timedelta(minutes=31), {}) == []  # not twice for one firing
    assert due.next_runs["nightly"] == datetime(2026, 12, 6, 2, 0, tzinfo=UTC)


def test_a_watched_export_runs_once_it_stopped_changing_and_again_when_it_changes() -> None:
    due = Due([csv_source("hr", watch=True)], START)
    first = ("hr.csv", 1, 100)
    assert due.take(START, {"hr": first}) == []  # seen once: it may still be written
    assert [trigger for _, trigger in due.take(START, {"hr": first})] == ["watch"]
    assert due.take(START, {"hr": first}) == []  # read already
    growing = ("hr.csv", 2, 150)
    assert due.take(START, {"hr": growing}) == []
    written = ("hr.csv", 3, 200)
    assert due.take(START, {"hr": written}) == []  # still changing
    assert [trigger for _, trigger in due.take(START, {"hr": written})] == ["watch"]


def test_no_export_is_nothing_to_run() -> None:
    due = Due([csv_source("hr", watch=True)], START)
    assert due.take(START, {"hr": None}) == []
    assert due.take(START, {"hr": None}) == []


def test_the_wait_is_the_next_schedule_or_one_poll_and_at_most_a_minute() -> None:
    poll = timedelta(seconds=5)
    nightly = Due([csv_source("nightly", schedule="0 2 * * *")], START)
    assert nightly.wait(START, poll) == 60  # the clock is looked at again within a minute
    assert nightly.wait(START + timedelta(minutes=29, seconds=50), poll) == 10
    both = Due([csv_source("nightly", schedule="0 2 * * *"), csv_source("hr", watch=True)], START)
    assert both.wait(START, poll) == 5
    assert nightly.wait(START + timedelta(hours=1), poll) == 0  # overdue: look at once


def test_the_signature_is_the_newest_export_of_a_folder(tmp_path: Path) -> None:
    source = csv_source("hr", tmp_path, watch=True)
    assert signature(source) is None
    older, newer = tmp_path / "a.csv", tmp_path / "b.csv"
    older.write_text("login\nada\n")
    newer.write_text("login\nada\nbob\n")
    os.utime(older, ns=(1, 1_000_000_000))
    os.utime(newer, ns=(1, 2_000_000_000))
    assert signature(source) == (str(newer), 2_000_000_000, newer.stat().st_size)
