"""`accord workflows runs list | show` read the runs on PostgreSQL (as `accord sagas` does),
and the runs API's default reading is a read-only transaction."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio

from accord.orchestrator.adapters.workflow_runs import PostgresRuns
from accord.orchestrator.workflows.run_model import Run, RunStatus, TaskRun, TaskStatus
from accord.orchestrator.workflows.runs_api import read_only
from accord.stack.testing import migrated_pool
from accord.stack.testing import run_accord as accord

pytestmark = pytest.mark.integration
SCHEMA = "orchestrator"
T0 = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)


def _run(n: int, identity: str, workflow: str, *tasks: TaskRun) -> Run:
    return Run(
        run_id=f"run-{n}",
        workflow_id=workflow,
        version="abc123def456",
        identity_id=identity,
        category="joiner",
        trigger={"kind": "event", "event": "user.created", "event_id": f"evt-{n}"},
        status=RunStatus.RUNNING,
        created_at=T0 + timedelta(minutes=n),
        updated_at=T0 + timedelta(minutes=n),
        tasks=tasks,
    )


@pytest_asyncio.fixture(loop_scope="session")
async def pool(fresh_database: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[asyncpg.Pool]:
    """Three runs: ada's completed with an output, bob's waiting on an approval and his
    queued leaver; the CLI's DATABASE_URL is this database."""
    monkeypatch.setenv("DATABASE_URL", fresh_database)
    async with migrated_pool(fresh_database, SCHEMA, ["accord.orchestrator.migrations"]) as made:
        async with made.acquire() as conn:
            runs = PostgresRuns(conn)
            done = await runs.start(
                _run(
                    1,
                    "u-ada",
                    "pre-hire",
                    TaskRun(
                        "badge",
                        0,
                        "call_extension",
                        TaskStatus.COMPLETED,
                        attempts=1,
                        outputs={"badge_number": "B-4711"},
                    ),
                )
            )
            await runs.save(replace(done, status=RunStatus.COMPLETED), 0)
            waiting = await runs.start(
                _run(
                    2,
                    "u-bob",
                    "pre-hire",
                    TaskRun(
                        "approve",
                        0,
                        "approval",
                        TaskStatus.WAITING,
                        attempts=1,
                        waiting_for={"kind": "approval", "until": "2027-03-08T08:00:00+00:00"},
                    ),
                )
            )
            await runs.save(replace(waiting, status=RunStatus.WAITING), 0)
            await runs.start(
                _run(3, "u-bob", "leaver", TaskRun("disable", 0, "provision", TaskStatus.PENDING))
            )
        yield made


async def test_list_prints_runs_newest_first_and_filters(
    pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await accord(capsys, "workflows", "runs", "list")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == ["run-3", "run-2", "run-1"]
    assert lines[2].split()[1:5] == ["pre-hire", "completed", "u-ada", "1/1"]

    code, out, _ = await accord(
        capsys, "workflows", "runs", "list", "--identity", "u-bob", "--status", "queued", "--json"
    )
    (entry,) = [json.loads(line) for line in out.splitlines()]
    assert (entry["run_id"], entry["status"], entry["workflow_id"]) == ("run-3", "queued", "leaver")

    code, out, _ = await accord(capsys, "workflows", "runs", "list", "--workflow", "pre-hire")
    assert [line.split()[0] for line in out.splitlines()] == ["run-2", "run-1"]
    code, out, _ = await accord(capsys, "workflows", "runs", "list", "--limit", "1")
    assert [line.split()[0] for line in out.splitlines()] == ["run-3"]


async def test_show_prints_the_tasks_waits_and_outputs(
    pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await accord(capsys, "workflows", "runs", "show", "run-2")
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == "run run-2: pre-hire (version abc123def456) for u-bob"
    assert "  1. approve (approval): waiting, waits for approval until 2027-03-08" in out

    code, out, _ = await accord(capsys, "workflows", "runs", "show", "run-1", "--json")
    shown = json.loads(out)
    assert shown["status"] == "completed"
    assert shown["tasks"][0]["outputs"] == {"badge_number": "B-4711"}
    assert shown["errors"] == []
    assert shown["waits"] == []


async def test_show_of_an_unknown_run_fails_in_one_line(
    pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await accord(capsys, "workflows", "runs", "show", "run-404")
    assert (code, out) == (1, "")
    assert err == "accord: error: workflow run run-404 not found\n"


async def test_the_apis_reading_is_read_only(pool: asyncpg.Pool) -> None:
    async with read_only(pool)() as runs:
        page = await runs.runs(identity_id="u-bob")
        assert [run.run_id for run in page.runs] == ["run-3", "run-2"]
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await runs.start(_run(9, "u-zed", "leaver"))
