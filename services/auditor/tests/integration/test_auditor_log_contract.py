"""The AuditLog port's contract: the same cases on the in-memory fake and on PostgreSQL, so
the fake the unit tests use cannot drift from the real log."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import pytest

from accord.auditor.adapters.log_store import PostgresAuditLog
from accord.auditor.domain.chain import GENESIS, Verification
from accord.auditor.domain.chaining import chain, key_of
from accord.auditor.domain.normalise import AuditEntry
from accord.auditor.fakes import FakeAuditLog, FakeRecord, audit_entry
from accord.auditor.handlers import record_batch
from accord.auditor.ports import AuditLog, RecordingPorts
from accord.auditor.verify import verify_log
from accord.events import AuditRecorded, UserCreated, new_event, to_kafka

pytestmark = pytest.mark.integration
RECORDED_AT = datetime(2026, 12, 5, 12, 0, 0, 654321, tzinfo=UTC)


@dataclass
class Subject:
    """One implementation of the port: a transaction on it, and the chain check."""

    transaction: Callable[[], contextlib.AbstractAsyncContextManager[AuditLog]]
    verify: Callable[[], contextlib.AbstractAsyncContextManager[int]]


def entry(n: int) -> AuditEntry:
    """An entry whose payload holds a NUL (stored and hashed as U+FFFD)."""
    return audit_entry(n, payload={"n": n, "name": "Zo\u00eb \u4e16", "nul": "a\x00b"})


def fake_subject() -> Subject:
    log = FakeAuditLog()

    @contextlib.asynccontextmanager
    async def transaction() -> AsyncIterator[AuditLog]:
        yield log

    @contextlib.asynccontextmanager
    async def verify() -> AsyncIterator[int]:
        walk = Verification()
        walk.feed(log.rows())
        walk.against_head(log.head_id, log.head_hash)
        assert walk.first_break is None, walk.first_break
        yield walk.checked

    return Subject(transaction, verify)


def postgres_subject(pool: asyncpg.Pool) -> Subject:
    @contextlib.asynccontextmanager
    async def transaction() -> AsyncIterator[AuditLog]:
        async with pool.acquire() as conn, conn.transaction():
            yield PostgresAuditLog(conn, as_writer=True)

    @contextlib.asynccontextmanager
    async def verify() -> AsyncIterator[int]:
        report = await verify_log(pool)
        assert report.ok, report.first_break
        yield report.checked

    return Subject(transaction, verify)


@pytest.fixture(params=["fake", "postgres"])
def subject(request: pytest.FixtureRequest) -> Subject:
    if request.param == "fake":
        return fake_subject()
    pool: asyncpg.Pool = request.getfixturevalue("pool")
    return postgres_subject(pool)


async def checked(subject: Subject) -> int:
    async with subject.verify() as count:
        return count


async def test_an_empty_log_starts_at_the_genesis_and_holds_nothing(subject: Subject) -> None:
    async with subject.transaction() as log:
        state = await log.chain_state([key_of(entry(1))])
    assert (state.record_id, state.hash, state.recorded) == (0, GENESIS, frozenset())
    assert await checked(subject) == 0


async def test_appended_records_move_the_head_and_are_known_by_their_keys(
    subject: Subject,
) -> None:
    async with subject.transaction() as log:
        state = await log.chain_state([key_of(entry(n)) for n in (1, 2)])
        records = chain(state, [entry(1), entry(2)], lambda: RECORDED_AT)
        await log.append(records)

    asked = [key_of(entry(n)) for n in (2, 3)] + [("user.created.dlq", "evt-1")]
    async with subject.transaction() as log:
        state = await log.chain_state(asked)
    assert (state.record_id, state.hash) == (2, records[-1].hash)
    assert state.recorded == frozenset({("user.created", "evt-2")})
    assert await checked(subject) == 2


async def test_the_chain_continues_across_appends_and_verifies(subject: Subject) -> None:
    for batch in ([entry(1), entry(2)], [entry(2), entry(3), entry(3)], [entry(4)]):
        async with subject.transaction() as log:
            state = await log.chain_state([key_of(e) for e in batch])
            await log.append(chain(state, batch, lambda: RECORDED_AT))
    async with subject.transaction() as log:
        state = await log.chain_state([])
    assert state.record_id == 4
    assert await checked(subject) == 4


async def test_appending_nothing_leaves_the_head(subject: Subject) -> None:
    async with subject.transaction() as log:
        await log.append([])
        state = await log.chain_state([])
    assert (state.record_id, state.hash) == (0, GENESIS)


async def test_a_recorded_batch_announces_the_same_on_both(subject: Subject) -> None:
    created = new_event(UserCreated(user_id="e-1", user_name="ada"), source="t", sequence=1)
    encoded = to_kafka(created)
    record = FakeRecord(encoded.topic, encoded.value, encoded.headers, encoded.key)
    broken = FakeRecord("user.created.dlq", b"\x00", [("ce_id", b"evt-x")], None, 1, 3)
    batch = [(record, created), (broken, None)]

    async with subject.transaction() as log:
        first = await record_batch(batch, RecordingPorts(log, "accord/auditor"))
    async with subject.transaction() as log:
        again = await record_batch(batch, RecordingPorts(log, "accord/auditor"))

    recorded = [a.data for a in first]
    assert all(isinstance(r, AuditRecorded) for r in recorded)
    assert [(r.record_id, r.source_event_id, r.outcome) for r in recorded] == [  # type: ignore[attr-defined]
        (1, created.id, "info"),
        (2, "evt-x", "failure"),
    ]
    assert again == []
    assert await checked(subject) == 2
