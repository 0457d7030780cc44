"""The periodic verification's rounds (domain.watching) on the in-memory log, its metrics,
and the batch handler's count of chained records."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any, cast

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from accord.auditor.chain_metrics import ChainMetrics
from accord.auditor.chain_watch import ChainWatch
from accord.auditor.domain.chaining import chain, key_of
from accord.auditor.domain.watching import Outcome, Position, RoundCheck, before_chain
from accord.auditor.fakes import FakeAuditLog, FakeRecord
from accord.auditor.fakes import audit_entry as entry
from accord.auditor.handlers import record_batch
from accord.auditor.ports import RecordingPorts
from accord.events import UserCreated, new_event, to_kafka


async def append(log: FakeAuditLog, numbers: range) -> None:
    entries = [entry(n) for n in numbers]
    await log.append(chain(await log.chain_state([key_of(e) for e in entries]), entries))


def verify_round(log: FakeAuditLog, start: Position, *, limit: int = 100) -> Outcome:
    """What the I/O edge does, on the fake: one snapshot of head, anchor and rows."""
    stored = {r.record_id: r.hash for r in log.records}
    check = RoundCheck(
        start,
        chained_from=1,
        head_id=log.head_id,
        head_hash=log.head_hash,
        stored_hash=stored.get(start.record_id),
        limit=limit,
    )
    check.feed(r for r in log.rows() if start.record_id < r["record_id"] <= check.until)
    return check.end()


def tamper(log: FakeAuditLog, record_id: int) -> None:
    index = record_id - 1
    log.records[index] = replace(log.records[index], payload='{"changed":true}')


async def test_rounds_verify_only_what_was_appended_since_the_last() -> None:
    log = FakeAuditLog()
    await append(log, range(1, 6))

    first = verify_round(log, before_chain(1))
    await append(log, range(6, 9))
    second = verify_round(log, first.position)
    third = verify_round(log, second.position)

    assert (first.ok, first.checked, first.position) == (True, 5, Position(5, log.records[4].hash))
    assert (second.ok, second.checked, second.position.record_id) == (True, 3, 8)
    assert (third.ok, third.checked, third.behind) == (True, 0, False)


async def test_a_round_is_bounded_and_the_next_goes_on_from_where_it_stopped() -> None:
    log = FakeAuditLog()
    await append(log, range(1, 11))

    first = verify_round(log, before_chain(1), limit=4)
    second = verify_round(log, first.position, limit=4)
    third = verify_round(log, second.position, limit=4)

    assert [(o.checked, o.behind, o.ok) for o in (first, second, third)] == [
        (4, True, True),
        (4, True, True),
        (2, False, True),
    ]
    assert third.position == Position(10, log.head_hash)


async def test_a_changed_new_record_breaks_the_round_and_the_next_fails_again() -> None:
    log = FakeAuditLog()
    await append(log, range(1, 4))
    good = verify_round(log, before_chain(1))
    await append(log, range(4, 8))
    tamper(log, 5)

    broken = verify_round(log, good.position)
    again = verify_round(log, broken.position)

    assert broken.first_break is not None
    assert again.first_break is not None
    assert (broken.first_break.record_id, broken.first_break.reason) == (
        5,
        "its content does not match its hash",
    )
    assert (broken.checked, broken.position.record_id, broken.behind) == (1, 4, False)
    assert again.first_break == broken.first_break


async def test_the_last_verified_record_changed_or_the_tail_removed_is_a_break() -> None:
    log = FakeAuditLog()
    await append(log, range(1, 6))
    done = verify_round(log, before_chain(1))

    log.records[4] = replace(log.records[4], hash="f" * 64)
    changed = verify_round(log, done.position)
    del log.records[3:]
    log.head_id, log.head_hash = 3, log.records[2].hash
    removed = verify_round(log, done.position)

    assert changed.first_break is not None
    assert removed.first_break is not None
    assert changed.first_break.reason == "the last verified record no longer has the hash verified"
    assert removed.first_break.reason == "the last verified record is gone"
    assert removed.position == done.position


async def test_a_head_moved_without_its_records_is_a_break() -> None:
    log = FakeAuditLog()
    await append(log, range(1, 4))
    log.head_id, log.head_hash = 5, "a" * 64  # the head says 5, the log ends at 3

    outcome = verify_round(log, before_chain(1))

    assert outcome.first_break is not None
    assert outcome.first_break.reason == "the chain ends at record 3, the head says 5"


async def test_a_round_starting_at_a_checkpoint_walks_only_the_records_after_it() -> None:
    log = FakeAuditLog()
    await append(log, range(1, 9))
    checkpoint = Position(6, log.records[5].hash)

    outcome = verify_round(log, checkpoint)

    assert (outcome.ok, outcome.checked) == (True, 2)
    with pytest.raises(ValueError, match="at least one record"):
        RoundCheck(checkpoint, chained_from=1, head_id=8, head_hash="", stored_hash="", limit=0)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_the_metrics_count_rounds_by_outcome_and_start_at_zero() -> None:
    registry = CollectorRegistry()
    metrics = ChainMetrics(registry)
    assert sample(registry, "accord_audit_verify_failures_total") == 0
    assert sample(registry, "accord_audit_verify_runs_total", outcome="failed") == 0

    ok = Outcome(Position(3, "h"), checked=3, first_break=None, behind=False)
    metrics.verified(ok, at=1000.0)
    metrics.verified(replace(ok, checked=0, first_break=cast(Any, object())), at=1300.0)
    metrics.errored()

    assert sample(registry, "accord_audit_verify_runs_total", outcome="ok") == 1
    assert sample(registry, "accord_audit_verify_runs_total", outcome="failed") == 1
    assert sample(registry, "accord_audit_verify_runs_total", outcome="error") == 1
    assert sample(registry, "accord_audit_verify_failures_total") == 1
    assert sample(registry, "accord_audit_verified_records_total") == 3
    assert sample(registry, "accord_audit_last_verify_timestamp_seconds") == 1300.0


async def test_the_batch_handler_counts_the_records_it_chained() -> None:
    registry = CollectorRegistry()
    metrics = ChainMetrics(registry)
    log = FakeAuditLog()
    ports = RecordingPorts(log, "accord/auditor", chained=metrics.records_chained)
    events = [
        new_event(UserCreated(user_id=f"e-{n}", user_name=f"u{n}"), source="t", sequence=1)
        for n in range(3)
    ]
    items = []
    for offset, event in enumerate(events):
        encoded = to_kafka(event)
        record = FakeRecord(encoded.topic, encoded.value, encoded.headers, encoded.key, 0, offset)
        items.append((record, event))

    await record_batch(items, ports)
    await record_batch(items, ports)  # redelivered: nothing new chained

    assert len(log.records) == 3
    assert sample(registry, "accord_audit_records_chained_total") == 3


class DownPool:
    """A pool whose database is unreachable."""

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        raise ConnectionRefusedError("database down")
        yield  # pragma: no cover


async def test_an_unreachable_database_is_counted_as_error_and_the_watch_goes_on() -> None:
    registry = CollectorRegistry()
    watch = ChainWatch(cast(asyncpg.Pool, DownPool()), ChainMetrics(registry))
    stop = asyncio.Event()

    task = asyncio.create_task(watch.every(0.01, stop))
    while (sample(registry, "accord_audit_verify_runs_total", outcome="error") or 0) < 3:
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 1)

    assert not task.exception()
    assert watch.position is None
    assert sample(registry, "accord_audit_last_verify_timestamp_seconds") == 0
