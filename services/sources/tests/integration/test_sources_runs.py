"""Runs of a CSV source on a real PostgreSQL: what reaches the outbox, what the state keeps,
and the awkward orders: a crash before the commit, a held run and the runs after it, a run
while another holds the source, an identity that existed before the source."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from accord.events import UserCreated, UserDeleted, from_kafka, new_event
from accord.sources import store
from accord.sources.config import Source
from accord.sources.projection import facts_of
from accord.sources.runner import RunFailed, RunRefused, approve, lock_key, reject, run_source
from accord.stack.testing import migrated_pool

from .hr_export import person, source, write

pytestmark = pytest.mark.integration

SCHEMA = "sources"


@pytest_asyncio.fixture(loop_scope="session")
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool(fresh_database, SCHEMA, ["accord.sources.migrations"]) as opened:
        yield opened


async def drain(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """The outbox's events in publishing order as CloudEvents in JSON, removed (as the relay
    would)."""
    rows = await pool.fetch("DELETE FROM outbox RETURNING id, topic, key, value, headers")
    events = []
    for row in sorted(rows, key=lambda row: row["id"]):
        headers = [(name, value.encode()) for name, value in json.loads(row["headers"])]
        envelope = from_kafka(row["topic"], row["key"], row["value"], headers)
        events.append(envelope.model_dump(mode="json"))
    return events


def kinds(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(event["type"], event["subject"]) for event in events]


async def run(pool: asyncpg.Pool, src: Source, **options: Any) -> Any:
    async with pool.acquire() as conn:
        return await run_source(conn, SCHEMA, src, trigger="command", **options)


@pytest.mark.asyncio(loop_scope="session")
async def test_a_second_export_publishes_exactly_its_changes(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    export = tmp_path / "hr.csv"
    write(export, [person(n) for n in range(1, 41)])
    first = await run(pool, source(export))
    events = await drain(pool)
    assert first.record.counts["created"] == 40
    assert [e["type"] for e in events] == ["user.created"] * 40 + ["source.run_completed"]
    assert {e["sequence"] for e in events[:40]} == {1}
    assert all(e["correlationid"] == first.record.run_id for e in events)

    second_rows = [person(n) for n in range(1, 41) if n not in (5, 6)]  # two leave
    second_rows[0] = person(1, dept="legal")  # a mover
    second_rows[1] = person(2, hired="2024-02-01")  # a changed hire date
    second_rows[2] = person(3, last="Married")  # a rename
    second_rows[3] = person(4, status="I")  # deactivated
    second_rows.append(person(41))  # a joiner
    write(export, second_rows)
    # 3 of 40 taking access away is 7.5 %: past the default limit of 5 %
    relaxed = {"max_deactivations_percent": 10, "max_deletions_percent": 10}
    second = await run(pool, source(export, safety=relaxed))
    events = await drain(pool)
    assert kinds(events) == [
        ("user.updated", "hr-E0001"),
        ("user.updated", "hr-E0002"),
        ("user.updated", "hr-E0003"),
        ("user.deactivated", "hr-E0004"),
        ("user.created", "hr-E0041"),
        ("user.deleted", "hr-E0005"),
        ("user.deleted", "hr-E0006"),
        ("source.run_completed", "hr"),
    ]
    assert [e["sequence"] for e in events[:4]] == [2, 2, 2, 2]
    assert events[2]["data"]["user_name"] == "first3.married"
    summary = events[-1]["data"]
    assert (summary["created"], summary["updated"], summary["deactivated"]) == (1, 3, 1)
    assert (summary["deleted"], summary["rows_read"], summary["outcome"]) == (2, 39, "published")
    assert second.published == 7

    third = await run(pool, source(export, safety=relaxed))  # the same export: no change
    assert kinds(await drain(pool)) == [("source.run_completed", "hr")]
    assert third.record.counts == dict.fromkeys(third.record.counts, 0)


@pytest.mark.asyncio(loop_scope="session")
async def test_a_crash_before_the_commit_publishes_nothing_and_the_next_run_repeats_it(
    pool: asyncpg.Pool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    export = tmp_path / "hr.csv"
    write(export, [person(n) for n in range(1, 11)])

    async def dies(*args: Any, **kwargs: Any) -> None:
        raise ConnectionResetError("the database went away between the outbox and the state")

    with monkeypatch.context() as patched:
        patched.setattr(store, "save_state", dies)
        with pytest.raises(ConnectionResetError):
            await run(pool, source(export))
    assert await drain(pool) == []
    assert await pool.fetchval("SELECT count(*) FROM source_keys") == 0
    assert await pool.fetchval("SELECT count(*) FROM runs") == 0
    await run(pool, source(export))
    events = await drain(pool)
    assert [e["type"] for e in events].count("user.created") == 10
    assert {e["sequence"] for e in events if e["type"] == "user.created"} == {1}


@pytest.mark.asyncio(loop_scope="session")
async def test_a_truncated_export_is_held_until_approved(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    export = tmp_path / "hr.csv"
    write(export, [person(n) for n in range(1, 101)])
    await run(pool, source(export))
    await drain(pool)
    write(export, [person(n) for n in range(1, 51)])  # the HR job died half-way
    held = await run(pool, source(export))
    assert held.record.status == "held"
    assert "50 deletions are 50.0 % of 100 active" in (held.record.reason or "")
    events = await drain(pool)
    assert kinds(events) == [("source.run_completed", "hr")]
    assert events[0]["data"]["outcome"] == "held"
    with pytest.raises(RunRefused, match="waits for a decision on held run"):
        await run(pool, source(export))
    assert await drain(pool) == []

    async with pool.acquire() as conn:
        approved = await approve(conn, SCHEMA, held.record.run_id, "ops-lead")
        with pytest.raises(RunRefused, match="is approved, not held"):
            await approve(conn, SCHEMA, held.record.run_id, "ops-lead")
    events = await drain(pool)
    assert [e["type"] for e in events] == ["user.deleted"] * 50 + ["source.run_completed"]
    assert {e["subject"] for e in events[:50]} == {f"hr-E{n:04d}" for n in range(51, 101)}
    assert events[-1]["data"]["outcome"] == "approved"
    assert approved.status == "approved"
    await run(pool, source(export))  # the state is the approved run's: nothing more to do
    assert kinds(await drain(pool)) == [("source.run_completed", "hr")]


@pytest.mark.asyncio(loop_scope="session")
async def test_a_rejected_run_leaves_the_state_as_it_was(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    export = tmp_path / "hr.csv"
    write(export, [person(n) for n in range(1, 21)])
    await run(pool, source(export))
    await drain(pool)
    write(export, [person(n) for n in range(1, 11)])
    held = await run(pool, source(export))
    await drain(pool)
    async with pool.acquire() as conn:
        await reject(conn, SCHEMA, held.record.run_id, "ops-lead", "truncated export")
    events = await drain(pool)
    assert kinds(events) == [("source.run_completed", "hr")]
    assert (events[0]["data"]["outcome"], events[0]["data"]["reason"]) == (
        "rejected",
        "truncated export",
    )
    write(export, [person(n) for n in range(1, 21)])  # tomorrow's export is whole again
    await run(pool, source(export))
    assert kinds(await drain(pool)) == [("source.run_completed", "hr")]


@pytest.mark.asyncio(loop_scope="session")
async def test_a_source_runs_once_at_a_time(pool: asyncpg.Pool, tmp_path: Path) -> None:
    export = tmp_path / "hr.csv"
    write(export, [person(1)])
    async with pool.acquire() as holder:
        await holder.execute("SELECT pg_advisory_lock($1)", lock_key("hr"))
        try:
            with pytest.raises(RunRefused, match="running already"):
                await run(pool, source(export))
        finally:
            await holder.execute("SELECT pg_advisory_unlock($1)", lock_key("hr"))
    await run(pool, source(export))
    assert [e["type"] for e in await drain(pool)] == ["user.created", "source.run_completed"]


@pytest.mark.asyncio(loop_scope="session")
async def test_an_unreadable_source_is_a_failed_run_that_publishes_nothing(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    export = tmp_path / "hr.csv"
    export.write_text("id,first\nE0001,Ada\n", encoding="utf-8")
    with pytest.raises(RunFailed, match="no column"):
        await run(pool, source(export))
    events = await drain(pool)
    assert kinds(events) == [("source.run_completed", "hr")]
    assert events[0]["data"]["outcome"] == "failed"
    assert await pool.fetchval("SELECT count(*) FROM source_keys") == 0


@pytest.mark.asyncio(loop_scope="session")
async def test_an_identity_from_scim_is_linked_and_its_sequence_continued(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    scim = new_event(
        UserCreated(user_id="scim-77", user_name="ada", employee_number="E0001", title="CTO"),
        source="accord/orchestrator",
        sequence=4,
    )
    facts = facts_of(scim)
    assert facts is not None
    async with pool.acquire() as conn:
        await store.project(conn, [facts])
        await store.project(conn, [facts])  # a redelivery changes nothing
    export = tmp_path / "hr.csv"
    write(export, [person(1), person(2, first="Ada", last="")])
    report = await run(pool, source(export))
    events = await drain(pool)
    linked = events[0]
    assert (linked["type"], linked["subject"], linked["sequence"]) == ("user.updated", "scim-77", 5)
    assert report.record.counts["linked"] == 1
    # the second row wants "ada.", not "ada": only a wanted name that is taken gets a suffix
    assert [e["type"] for e in events[1:]] == ["user.created", "source.run_completed"]


@pytest.mark.asyncio(loop_scope="session")
async def test_a_dry_run_writes_nothing(pool: asyncpg.Pool, tmp_path: Path) -> None:
    export = tmp_path / "hr.csv"
    write(export, [person(n) for n in range(1, 4)])
    seen: list[int] = []
    report = await run(pool, source(export), dry_run=True, progress=seen.append)
    assert [event.type for event in report.events] == ["user.created"] * 3
    assert seen == [3]
    assert await drain(pool) == []
    assert await pool.fetchval("SELECT count(*) FROM runs") == 0
    await asyncio.sleep(0)


@pytest.mark.asyncio(loop_scope="session")
async def test_a_rehire_linked_to_a_leaver_reactivates_it_then_updates_it(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    created = new_event(
        UserCreated(user_id="scim-5", user_name="grace", employee_number="E0007"),
        source="accord/orchestrator",
        sequence=1,
    )
    left = new_event(UserDeleted(user_id="scim-5"), source="accord/orchestrator", sequence=2)
    async with pool.acquire() as conn:
        # the leaver arrives before its creation in another batch: the later creation is
        # older and changes nothing
        await store.project(conn, [f for f in (facts_of(left), facts_of(created)) if f])
        assert await conn.fetchval("SELECT status FROM identities") == "deleted"
    export = tmp_path / "hr.csv"
    write(export, [person(7)])
    await run(pool, source(export))
    events = await drain(pool)
    assert [(e["type"], e["subject"], e["sequence"]) for e in events[:2]] == [
        ("user.reactivated", "scim-5", 3),
        ("user.updated", "scim-5", 4),
    ]
