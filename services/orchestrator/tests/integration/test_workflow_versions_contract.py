"""The kept workflow versions (workflows/ports.py `VersionStore`): the same cases on the
in-memory fake and on PostgreSQL (migration 0018); and the engine on PostgreSQL, where a run
goes on with its own version after a restart that loaded an edited workflow."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio

from accord.events import Profile
from accord.orchestrator.adapters.postgres import PostgresRegistry
from accord.orchestrator.adapters.workflow_runs import PostgresRuns
from accord.orchestrator.adapters.workflow_versions import PostgresVersions
from accord.orchestrator.fakes import Clock
from accord.orchestrator.ports import ProfileChange
from accord.orchestrator.workflows import loops
from accord.orchestrator.workflows.engine import Engine
from accord.orchestrator.workflows.fakes import FakeVersions
from accord.orchestrator.workflows.loader import Checks, LoadedWorkflow, WorkflowSet, load_files
from accord.orchestrator.workflows.ports import VersionStore
from accord.orchestrator.workflows.run_model import RunStatus, TaskStatus
from accord.stack.testing import migrated_pool

from .contract_kit import IdleRunner, ports_on, rolled_back

pytestmark = pytest.mark.integration

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

ONBOARD = """
id: onboard
category: custom
description: A pause, then MFA.
trigger: {on_demand: true}
tasks:
  - id: pause
    task: wait
    duration: PT1H
  - id: mfa
    task: require_mfa_enrolment
"""

#: The same workflow edited: another task list, so another version.
ONBOARD_EDITED = """
id: onboard
category: custom
description: MFA at once.
trigger: {on_demand: true}
tasks:
  - id: mfa_now
    task: require_mfa_enrolment
"""


def workflow_set(text: str) -> WorkflowSet:
    return load_files({"onboard.yaml": textwrap.dedent(text)}, Checks(expression=lambda _: None))


def loaded(text: str) -> LoadedWorkflow:
    (only,) = workflow_set(text)
    return only


@pytest_asyncio.fixture(loop_scope="session", params=["fake", "postgres"])
async def versions(
    request: pytest.FixtureRequest, pool: asyncpg.Pool
) -> AsyncIterator[VersionStore]:
    if request.param == "fake":
        yield FakeVersions()
        return
    async with rolled_back(pool) as conn:
        yield PostgresVersions(conn)


async def test_a_kept_version_reads_back_as_its_definition(versions: VersionStore) -> None:
    first, edited = loaded(ONBOARD), loaded(ONBOARD_EDITED)
    assert await versions.definition("onboard", first.version) is None

    await versions.record(first.definition, first.version, NOW)
    await versions.record(edited.definition, edited.version, NOW)

    assert await versions.definition("onboard", first.version) == first.definition
    assert await versions.definition("onboard", edited.version) == edited.definition
    assert await versions.definition("other", first.version) is None


async def test_a_version_kept_already_stays_as_first_kept(versions: VersionStore) -> None:
    first, edited = loaded(ONBOARD), loaded(ONBOARD_EDITED)
    await versions.record(first.definition, first.version, NOW)
    # The same key again (never another definition in practice: the version is its hash).
    await versions.record(edited.definition, first.version, NOW + timedelta(days=1))
    await versions.record(first.definition, first.version, NOW + timedelta(days=2))

    assert await versions.definition("onboard", first.version) == first.definition


async def test_the_table_keeps_the_definition_as_json_and_when_first_seen(
    pool: asyncpg.Pool,
) -> None:
    first = loaded(ONBOARD)
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            store = PostgresVersions(conn)
            await store.record(first.definition, first.version, NOW)
            await store.record(first.definition, first.version, NOW + timedelta(days=1))
            row = await conn.fetchrow(
                "SELECT first_seen_at, definition->'tasks'->0->>'id' AS task"
                " FROM workflow_versions WHERE workflow_id = 'onboard' AND version = $1",
                first.version,
            )
        finally:
            await transaction.rollback()
    assert (row["first_seen_at"], row["task"]) == (NOW, "pause")


# --- the engine on PostgreSQL, across a restart ----------------------------------------------


async def test_a_run_goes_on_with_its_version_after_a_restart_on_postgresql(
    fresh_database: str,
) -> None:
    clock = Clock(NOW)
    async with migrated_pool(
        fresh_database, "orchestrator", ["accord.orchestrator.migrations"]
    ) as pool:
        transactions = loops.postgres_transactions(pool, "orchestrator", ports_on)
        async with pool.acquire() as conn:
            profile = Profile(user_name="ada")
            await PostgresRegistry(conn).save_profile(
                ProfileChange("ada", "ada", profile.model_dump(mode="json"), "active", 1, "t")
            )
        before = workflow_set(ONBOARD)
        first = Engine(lambda: before, IdleRunner(), source="urn:test", clock=clock)
        (run_id,) = await loops.Operations(first, transactions).start_on_demand(
            "onboard", ["ada"], "operator"
        )

        # A restart with the workflow edited: a new engine, nothing in memory.
        after = workflow_set(ONBOARD_EDITED)
        second = Engine(lambda: after, IdleRunner(), source="urn:test", clock=clock)
        clock.now = NOW + timedelta(hours=1)
        assert await loops.wake_due(second, transactions) == 1

        async with pool.acquire() as conn:
            run = await PostgresRuns(conn).get(run_id)
            kept = await conn.fetch("SELECT workflow_id, version FROM workflow_versions")
    assert run is not None
    assert run.version == before["onboard"].version != after["onboard"].version
    assert run.status is RunStatus.COMPLETED
    assert [(task.task_id, task.status) for task in run.tasks] == [
        ("pause", TaskStatus.COMPLETED),
        ("mfa", TaskStatus.COMPLETED),
    ]
    # The version the run started with; the edited one started nothing.
    assert [tuple(row) for row in kept] == [("onboard", run.version)]
