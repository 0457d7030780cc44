"""SCIM writes reach the workflow engine (issue 22): over HTTP against the SCIM server's
protocol on a real PostgreSQL, with the registry hook wired to an engine as the orchestrator
mounts it when ACCORD_WORKFLOWS_DIR is set. A user created with a hire date gets its timer
in the write's transaction; a department changed by PATCH starts the mover workflow; a user
deactivated over SCIM starts the leaver one. Without an engine, nothing of the kind.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from scim2_server.applications.asgi import ASGIApplication

from accord.events import Envelope
from accord.orchestrator.adapters import store
from accord.orchestrator.adapters.scim_storage import PostgresScimStorage
from accord.orchestrator.domain.birthright import everyone
from accord.orchestrator.domain.workflow import WorkflowSettings
from accord.orchestrator.scim.app import AccordScimService, provider
from accord.orchestrator.scim.sync import RegistrySync
from accord.orchestrator.workflows import runs
from accord.orchestrator.workflows.engine import Engine
from accord.orchestrator.workflows.loader import Checks, WorkflowSet, load_files
from accord.orchestrator.workflows.run_model import Run
from accord.runtime import db

pytestmark = pytest.mark.integration

SCHEMA = "orchestrator"
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LIFECYCLE = "urn:accord:params:scim:schemas:extension:lifecycle:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

WORKFLOWS = {
    "pre-hire.yaml": """
        id: pre-hire
        category: joiner
        description: A week before the hire date.
        trigger: {at: hire_date, offset: -P7D}
        tasks:
          - id: mfa
            task: require_mfa_enrolment
    """,
    "mover.yaml": """
        id: mover
        category: mover
        description: A department move asks for MFA again.
        trigger: {event: user.updated, changed: [department]}
        tasks:
          - id: mfa
            task: require_mfa_enrolment
    """,
    "leaver.yaml": """
        id: leaver
        category: leaver
        description: Disable everything.
        trigger: {event: user.deactivated}
        tasks:
          - id: disable_accounts
            task: disable_accounts
    """,
}


def workflow_set() -> WorkflowSet:
    files = {name: textwrap.dedent(text) for name, text in WORKFLOWS.items()}
    return load_files(files, Checks(expression=lambda text: None))


class Runner:
    """Every task's commands go out at once (the task completes): the test is about what
    starts, not what the tasks do."""

    def envelopes(
        self,
        command: runs.Effect,
        run: Run,
        identity: Mapping[str, Any],
        cause: Envelope | None,
    ) -> list[Envelope] | None:
        return []

    async def perform(
        self, command: runs.Effect, run: Run, identity: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        return {}


@pytest_asyncio.fixture(loop_scope="session")
async def dsn(fresh_database: str) -> str:
    await db.migrate(fresh_database, SCHEMA, ["accord.orchestrator.migrations"])
    return fresh_database


@asynccontextmanager
async def scim_client(dsn: str, engine: Engine | None) -> AsyncIterator[httpx.AsyncClient]:
    @asynccontextmanager
    async def connect() -> AsyncIterator[asyncpg.Connection]:
        conn = await asyncpg.connect(dsn, server_settings={"search_path": SCHEMA})
        try:
            yield conn
        finally:
            await conn.close()

    described = provider()
    flows = WorkflowSettings(birthright=everyone(["crm"]))
    sync = RegistrySync(flows, SCHEMA, "urn:test:scim", engine)
    storage = PostgresScimStorage(described, connect, on_change=sync)
    app = ASGIApplication(storage, described, AccordScimService(described))
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://scim.test/v2",
        headers={"Content-Type": "application/scim+json"},
    ) as client:
        yield client


def engine() -> Engine:
    workflows = workflow_set()
    return Engine(lambda: workflows, Runner(), source="urn:test:orch", clock=store.now_utc)


async def fetch(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn, server_settings={"search_path": SCHEMA})
    try:
        rows: list[asyncpg.Record] = await conn.fetch(query, *args)
        return rows
    finally:
        await conn.close()


async def timers_of(dsn: str, user_id: str) -> list[tuple[str, str, str]]:
    rows = await fetch(
        dsn,
        "SELECT workflow_id, date_value, state FROM workflow_timers WHERE identity_id = $1"
        " ORDER BY date_value",
        user_id,
    )
    return [(r["workflow_id"], r["date_value"], r["state"]) for r in rows]


async def runs_of(dsn: str, user_id: str) -> list[tuple[str, str]]:
    rows = await fetch(
        dsn,
        "SELECT workflow_id, trigger FROM workflow_runs WHERE identity_id = $1"
        " ORDER BY created_at, workflow_id",
        user_id,
    )
    return [(r["workflow_id"], json.loads(r["trigger"])["event"]) for r in rows]


async def outbox_count(dsn: str, topic: str) -> int:
    rows = await fetch(dsn, "SELECT count(*) AS n FROM outbox WHERE topic = $1", topic)
    return int(rows[0]["n"])


def new_user(user_name: str, department: str, **lifecycle: Any) -> dict[str, Any]:
    return {
        "schemas": [CORE, ENTERPRISE, LIFECYCLE],
        "userName": user_name,
        ENTERPRISE: {"department": department},
        LIFECYCLE: lifecycle,
    }


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


async def test_scim_writes_plan_timers_and_start_runs(dsn: str) -> None:
    async with scim_client(dsn, engine()) as scim:
        created = await scim.post("/Users", json=new_user("ada", "Sales", hireDate="2030-03-11"))
        assert created.status_code == 201, created.text
        user_id = created.json()["id"]
        # The hire date's timer, planned in the write's transaction.
        assert await timers_of(dsn, user_id) == [("pre-hire", "2030-03-11", "scheduled")]
        assert await runs_of(dsn, user_id) == []

        moved = await scim.patch(
            f"/Users/{user_id}",
            json=patch(
                {"op": "replace", "path": f"{ENTERPRISE}:department", "value": "Support"},
                {"op": "replace", "path": f"{LIFECYCLE}:hireDate", "value": "2030-04-01"},
            ),
        )
        assert moved.status_code == 200, moved.text
        assert await runs_of(dsn, user_id) == [("mover", "user.updated")]
        assert await outbox_count(dsn, "workflow.run_started") == 1
        # The hire date moved: the timer moved with it.
        assert await timers_of(dsn, user_id) == [
            ("pre-hire", "2030-03-11", "cancelled"),
            ("pre-hire", "2030-04-01", "scheduled"),
        ]

        # A PATCH that changes nothing the workflows watch starts nothing.
        renamed = await scim.patch(
            f"/Users/{user_id}",
            json=patch({"op": "replace", "path": "displayName", "value": "Ada L."}),
        )
        assert renamed.status_code == 200, renamed.text
        assert len(await runs_of(dsn, user_id)) == 1

        deactivated = await scim.patch(
            f"/Users/{user_id}", json=patch({"op": "replace", "path": "active", "value": False})
        )
        assert deactivated.status_code == 200, deactivated.text
        assert await runs_of(dsn, user_id) == [
            ("mover", "user.updated"),
            ("leaver", "user.deactivated"),
        ]


async def test_without_an_engine_scim_writes_start_nothing(dsn: str) -> None:
    async with scim_client(dsn, None) as scim:
        created = await scim.post("/Users", json=new_user("bob", "Sales", hireDate="2030-03-11"))
        assert created.status_code == 201, created.text
        user_id = created.json()["id"]
        moved = await scim.patch(
            f"/Users/{user_id}",
            json=patch({"op": "replace", "path": f"{ENTERPRISE}:department", "value": "Support"}),
        )
        assert moved.status_code == 200, moved.text
        assert await timers_of(dsn, user_id) == []
        assert await runs_of(dsn, user_id) == []
