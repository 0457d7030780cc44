"""A time trigger survives a SIGKILL of the orchestrator between scheduling and firing: every
identity's timer, scheduled before the crash and due while the orchestrator was down, fires
once after the restart (one run per identity, one workflow.run_started each in the audit log).

The platform is the package's workflow platform (conftest.py), shared with
test_lifecycle_workflows.py: its folder holds this test's time-triggered workflow (folder.py's
hire-day: at the hire instant, a one-second wait, no target, no mail: nothing but the
engine's own work), scoped to interns, whom no other workflow there takes.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from accord.events import Publisher, UserCreated
from accord.events.brokers import BROKER_ENV
from accord.stack.platform import Platform

from ..conftest import api_client, audit_events, eventually
from .conftest import Parts
from .folder import HIRE_DAY_EMPLOYEE_TYPE, HIRE_DAY_ID

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

IDENTITIES = 20
LEAD_S = 12.0
"""How far ahead the first hire instant is when published: time to schedule and to kill."""
SPREAD_S = 2.0
"""The hire instants are spread over this much after the first."""


async def timers_of(platform: Platform, ids: set[str]) -> list[asyncpg.Record]:
    """The workflow's timers of these identities, as the orchestrator stored them."""
    conn = await asyncpg.connect(platform.database_url)
    try:
        rows: list[asyncpg.Record] = await conn.fetch(
            "SELECT identity_id, fire_at, state FROM orchestrator.workflow_timers"
            " WHERE workflow_id = $1 AND identity_id = ANY($2::text[])",
            HIRE_DAY_ID,
            sorted(ids),
        )
        return rows
    finally:
        await conn.close()


async def runs_of(platform: Platform, ids: set[str]) -> list[dict[str, Any]]:
    """Every run of the workflow for these identities, from the runs API, page by page."""
    found: list[dict[str, Any]] = []
    async with api_client(platform, "orchestrator") as client:
        cursor: str | None = None
        while True:
            params = {"workflow_id": HIRE_DAY_ID, "limit": "500"}
            if cursor is not None:
                params["cursor"] = cursor
            response = await client.get("/v1/workflow-runs", params=params)
            response.raise_for_status()
            page = response.json()
            found += [run for run in page["items"] if run["identity_id"] in ids]
            cursor = page["next_cursor"]
            if cursor is None:
                return found


async def test_sigkill_between_scheduling_and_firing_loses_and_repeats_nothing(
    parts: Parts, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = parts.platform
    first = datetime.now(UTC) + timedelta(seconds=LEAD_S)
    users = [
        UserCreated(
            user_id=f"tm-{unique}-{i}",
            user_name=f"timer.{unique}.{i}",
            employee_type=HIRE_DAY_EMPLOYEE_TYPE,
            hire_date=(first + timedelta(seconds=SPREAD_S * i / IDENTITIES)).isoformat(),
        )
        for i in range(IDENTITIES)
    ]
    ids = {user.user_id for user in users}
    monkeypatch.setenv(BROKER_ENV, platform.config.broker)
    async with Publisher(
        source="urn:test:hr", bootstrap_servers=platform.bootstrap_servers
    ) as publisher:
        for user in users:
            await publisher.publish(user, sequence=1)

    async def all_scheduled() -> list[asyncpg.Record] | None:
        rows = await timers_of(platform, ids)
        return rows if len(rows) == IDENTITIES else None

    scheduled = await eventually(all_scheduled, timeout=LEAD_S - 2, what="every timer scheduled")
    status = await platform.kill_service("orchestrator")
    killed_at = datetime.now(UTC)
    assert status == -signal.SIGKILL
    # The crash came between scheduling and firing: nothing had fired, no run had begun.
    assert {row["state"] for row in scheduled} == {"scheduled"}
    assert killed_at < min(row["fire_at"] for row in scheduled), "a timer was due before the kill"
    assert {row["state"] for row in await timers_of(platform, ids)} == {"scheduled"}

    # Down until every timer is due: they all fire after the restart, none on time.
    last = max(row["fire_at"] for row in scheduled)
    await asyncio.sleep(max(0.0, (last - datetime.now(UTC)).total_seconds()) + 0.5)
    await platform.start_service("orchestrator")

    async def all_completed() -> list[dict[str, Any]] | None:
        found = await runs_of(platform, ids)
        done = len(found) >= IDENTITIES and all(r["status"] == "completed" for r in found)
        return found if done else None

    await eventually(all_completed, timeout=60, what=f"{IDENTITIES} completed runs")
    await asyncio.sleep(1.0)  # five more polls of the timer loop: nothing fires again
    runs = await runs_of(platform, ids)
    per_identity = Counter(run["identity_id"] for run in runs)
    assert set(per_identity) == ids, f"no run for {sorted(ids - set(per_identity))}"
    assert set(per_identity.values()) == {1}, f"two runs for one identity: {per_identity}"
    assert {run["status"] for run in runs} == {"completed"}
    assert {run["trigger"]["kind"] for run in runs} == {"timer"}
    assert {row["state"] for row in await timers_of(platform, ids)} == {"fired"}

    async def started_once_each() -> Counter[str] | None:
        records = await audit_events(platform, type="workflow.run_started")
        started = Counter(str(r["subject"]) for r in records if r["subject"] in ids)
        return started if set(started) == ids else None

    started = await eventually(started_once_each, what="workflow.run_started in the audit log")
    assert set(started.values()) == {1}, f"workflow.run_started twice: {started}"
