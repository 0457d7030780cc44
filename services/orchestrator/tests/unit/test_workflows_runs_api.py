"""The workflow runs API on fakes: an in-memory RunStore holding runs in every state, a fake
EngineOperations, the loaded examples, and API tokens of each role."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI

from accord.orchestrator.workflows import runs_api
from accord.orchestrator.workflows.cli import EXAMPLES
from accord.orchestrator.workflows.expressions import compile_condition
from accord.orchestrator.workflows.fakes import FakeRuns
from accord.orchestrator.workflows.holder import WorkflowHolder
from accord.orchestrator.workflows.loader import Checks
from accord.orchestrator.workflows.operations import (
    NotRetryable,
    RunFinished,
    RunNotFound,
    UnknownIdentity,
    UnknownWorkflow,
)
from accord.orchestrator.workflows.ports import RunStore
from accord.orchestrator.workflows.run_model import Run, RunStatus, TaskRun, TaskStatus
from accord.orchestrator.workflows.shipped import shipped
from accord.runtime.http import create_app, secure
from accord.runtime.problems import PROBLEM_JSON
from accord.runtime.security.api import ApiSecurity
from accord.runtime.security.api_tokens import InvalidToken, TokenStore
from accord.runtime.security.rate_limit import RateLimiter
from accord.runtime.security.roles import Caller, Permission, Role

T0 = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)


def _token(n: int) -> str:
    return f"acc_{n:016x}_" + chr(ord("A") + n) * 43


ADMIN, OPERATOR, AUDITOR, REQUESTER, SCIM, SCOPED_READER = (_token(n) for n in range(1, 7))
_CALLERS = {
    ADMIN: ("ada", {Role.ADMIN}, None),
    OPERATOR: ("otto", {Role.OPERATOR}, None),
    AUDITOR: ("aude", {Role.AUDITOR}, None),
    REQUESTER: ("u-rita", {Role.REQUESTER}, None),
    SCIM: ("okta", {Role.SCIM_CLIENT}, None),
    # An admin's token narrowed to sagas:read: reads runs, sees no output values.
    SCOPED_READER: ("sam", {Role.ADMIN}, {Permission.SAGAS_READ}),
}


class FakeTokens:
    async def verify(self, token: str) -> Caller:
        if token not in _CALLERS:
            raise InvalidToken("unknown API token")
        subject, roles, scopes = _CALLERS[token]
        return Caller(
            subject,
            frozenset(roles),
            "api-token",
            token[4:20],
            frozenset(scopes) if scopes is not None else None,
        )


def _task(task_id: str, position: int, status: TaskStatus, **fields: Any) -> TaskRun:
    return TaskRun(task_id, position, fields.pop("kind", "send_mail"), status, **fields)


def _run(n: int, identity: str, workflow: str, status: RunStatus, *tasks: TaskRun) -> Run:
    return Run(
        run_id=f"run-{n}",
        workflow_id=workflow,
        version="abc123def456",
        identity_id=identity,
        category="joiner",
        trigger={"kind": "event", "event": "user.created", "event_id": f"evt-{n}"},
        status=status,
        created_at=T0 + timedelta(minutes=n),
        updated_at=T0 + timedelta(minutes=n),
        tasks=tasks,
    )


#: One run in each state; run-4 holds an output with personal data, run-5 an error.
RUNS = [
    _run(1, "u-ada", "pre-hire", RunStatus.COMPLETED, _task("welcome", 0, TaskStatus.COMPLETED)),
    _run(
        2,
        "u-bob",
        "pre-hire",
        RunStatus.WAITING,
        _task(
            "approve",
            0,
            TaskStatus.WAITING,
            kind="approval",
            waiting_for={"kind": "approval", "until": "2027-03-08T08:00:00+00:00"},
        ),
    ),
    _run(3, "u-bob", "leaver", RunStatus.QUEUED, _task("disable", 0, TaskStatus.PENDING)),
    _run(
        4,
        "u-cy",
        "department-move",
        RunStatus.RUNNING,
        _task(
            "badge",
            0,
            TaskStatus.COMPLETED,
            kind="call_extension",
            outputs={"badge_number": "B-4711", "home_phone": "+33 6 12 34 56 78"},
        ),
        _task("mail", 1, TaskStatus.RUNNING),
    ),
    _run(
        5,
        "u-dee",
        "leaver",
        RunStatus.FAILED,
        _task(
            "disable", 0, TaskStatus.FAILED, kind="provision", error="ldap: unreachable", attempts=5
        ),
    ),
    _run(6, "u-eve", "pre-hire", RunStatus.CANCELLED, _task("welcome", 0, TaskStatus.CANCELLED)),
]


@dataclass
class FakeOperations:
    """EngineOperations on the fake store: records the calls, answers as the engine would."""

    runs: FakeRuns
    identities: set[str] = field(default_factory=lambda: {"u-ada", "u-bob", "u-new"})
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    async def _get(self, run_id: str) -> Run:
        run = await self.runs.get(run_id)
        if run is None:
            raise RunNotFound(run_id)
        return run

    async def cancel(self, run_id: str, reason: str) -> Run:
        self.calls.append(("cancel", run_id, reason))
        run = await self._get(run_id)
        if run.status.terminal:
            raise RunFinished(run_id)
        cancelled = replace(run, status=RunStatus.CANCELLED, cancel_reason=reason)
        return await self.runs.save(cancelled, run.revision)

    async def retry(self, run_id: str) -> Run:
        self.calls.append(("retry", run_id))
        run = await self._get(run_id)
        if run.status is not RunStatus.FAILED:
            raise NotRetryable(run_id)
        return await self.runs.save(replace(run, status=RunStatus.RUNNING), run.revision)

    async def start_on_demand(
        self, workflow_id: str, identity_ids: Sequence[str], requested_by: str
    ) -> list[str]:
        self.calls.append(("start", workflow_id, tuple(identity_ids), requested_by))
        if workflow_id != "leaver":
            raise UnknownWorkflow(f"no workflow {workflow_id!r}")
        if not set(identity_ids) <= self.identities:
            raise UnknownIdentity("unknown")
        return [f"od-{identity}" for identity in identity_ids]


@dataclass
class Api:
    client: httpx.AsyncClient
    runs: FakeRuns
    operations: FakeOperations
    holder: WorkflowHolder
    reads: list[str]

    async def get(self, path: str, token: str = ADMIN, **params: Any) -> httpx.Response:
        return await self.client.get(path, params=params, headers=_auth(token))

    async def post(self, path: str, body: Any = None, token: str = OPERATOR) -> httpx.Response:
        return await self.client.post(path, json=body, headers=_auth(token))


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def build_app(
    runs: FakeRuns, operations: FakeOperations, holder: WorkflowHolder, reads: list[str]
) -> FastAPI:
    """The runs API mounted as the orchestrator mounts it, on the fakes."""

    @asynccontextmanager
    async def reading() -> AsyncIterator[RunStore]:
        reads.append("read")
        yield runs

    async def ready() -> dict[str, Any]:
        return {"ready": True}

    app = create_app("orchestrator", ready)
    secure(app, max_body_bytes=64 * 1024)
    app.state.security = ApiSecurity(
        cast(TokenStore, FakeTokens()),
        None,
        per_caller=RateLimiter(1000, 1000),
        failures=RateLimiter(1000, 1000),
    )
    runs_api.configure(app, None, operations, holder, reading=reading)
    return app


def examples_holder(folder: Path = EXAMPLES) -> WorkflowHolder:
    def check(text: str) -> str | None:
        compile_condition(text)
        return None

    return WorkflowHolder(folder, Checks(expression=check))


async def filled_runs() -> FakeRuns:
    runs = FakeRuns()
    for run in RUNS:
        stored = await runs.start(run)
        if stored.status is not run.status:
            await runs.save(replace(stored, status=run.status), stored.revision)
    return runs


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    runs = await filled_runs()
    operations = FakeOperations(runs)
    holder = examples_holder()
    reads: list[str] = []
    app = build_app(runs, operations, holder, reads)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://orchestrator") as client:
        yield Api(client, runs, operations, holder, reads)


def _ids(response: httpx.Response) -> list[str]:
    return [item["run_id"] for item in response.json()["items"]]


# --- listing ----------------------------------------------------------------------------------


async def test_the_fake_store_holds_a_run_in_every_state(api: Api) -> None:
    statuses = {row.run.status for row in api.runs.rows.values()}
    assert statuses == set(RunStatus)


async def test_list_gives_runs_newest_first_with_their_tasks(api: Api) -> None:
    response = await api.get("/v1/workflow-runs")
    assert response.status_code == 200
    assert _ids(response) == ["run-6", "run-5", "run-4", "run-3", "run-2", "run-1"]
    assert response.json()["next_cursor"] is None
    waiting = response.json()["items"][4]
    assert waiting["status"] == "waiting"
    assert waiting["waits"] == [
        {
            "task_id": "approve",
            "kind": "approval",
            "until": "2027-03-08T08:00:00+00:00",
            "detail": {"kind": "approval", "until": "2027-03-08T08:00:00+00:00"},
        }
    ]
    assert api.reads == ["read"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"identity_id": "u-bob"}, ["run-3", "run-2"]),
        ({"workflow_id": "pre-hire"}, ["run-6", "run-2", "run-1"]),
        ({"status": "failed"}, ["run-5"]),
        ({"status": "queued", "identity_id": "u-bob"}, ["run-3"]),
        ({"workflow_id": "leaver", "status": "completed"}, []),
    ],
)
async def test_list_filters_by_identity_workflow_and_status(
    api: Api, params: dict[str, str], expected: list[str]
) -> None:
    response = await api.get("/v1/workflow-runs", **params)
    assert response.status_code == 200
    assert _ids(response) == expected


async def test_list_pages_with_the_cursor_and_a_new_run_shifts_no_page(api: Api) -> None:
    first = await api.get("/v1/workflow-runs", limit=4)
    assert _ids(first) == ["run-6", "run-5", "run-4", "run-3"]
    cursor = first.json()["next_cursor"]
    assert isinstance(cursor, str)
    await api.runs.start(_run(7, "u-fay", "pre-hire", RunStatus.RUNNING))
    second = await api.get("/v1/workflow-runs", limit=4, cursor=cursor)
    assert _ids(second) == ["run-2", "run-1"]
    assert second.json()["next_cursor"] is None


@pytest.mark.parametrize(
    "params",
    [{"status": "paused"}, {"cursor": "abc"}, {"limit": "0"}, {"limit": "501"}],
)
async def test_a_bad_filter_or_cursor_is_a_400_problem(api: Api, params: dict[str, str]) -> None:
    response = await api.get("/v1/workflow-runs", **params)
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM_JSON


# --- show ------------------------------------------------------------------------------------


async def test_show_gives_tasks_errors_and_output_values_to_an_admin(api: Api) -> None:
    response = await api.get("/v1/workflow-runs/run-4")
    assert response.status_code == 200
    run = response.json()
    assert (run["run_id"], run["workflow_id"], run["status"]) == (
        "run-4",
        "department-move",
        "running",
    )
    badge, mail = run["tasks"]
    assert badge["output_names"] == ["badge_number", "home_phone"]
    assert badge["outputs"] == {"badge_number": "B-4711", "home_phone": "+33 6 12 34 56 78"}
    assert (mail["task_id"], mail["status"], mail["outputs"]) == ("mail", "running", {})

    failed = (await api.get("/v1/workflow-runs/run-5")).json()
    assert failed["errors"] == [
        {"task_id": "disable", "status": "failed", "error": "ldap: unreachable"}
    ]
    assert failed["tasks"][0]["attempts"] == 5


@pytest.mark.parametrize(
    ("token", "values"), [(ADMIN, True), (AUDITOR, True), (OPERATOR, False), (SCOPED_READER, False)]
)
async def test_output_values_only_for_audit_read_names_for_every_reader(
    api: Api, token: str, values: bool
) -> None:
    response = await api.get("/v1/workflow-runs/run-4", token)
    assert response.status_code == 200
    badge = response.json()["tasks"][0]
    assert badge["output_names"] == ["badge_number", "home_phone"]
    assert (badge["outputs"] is not None) is values
    listed = await api.get("/v1/workflow-runs", token, identity_id="u-cy")
    assert (listed.json()["items"][0]["tasks"][0]["outputs"] is not None) is values
    assert ("+33 6" in response.text) is values


async def test_show_of_an_unknown_run_is_a_404_problem(api: Api) -> None:
    response = await api.get("/v1/workflow-runs/run-404")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["detail"] == "no such workflow run"


# --- cancel ------------------------------------------------------------------------------------


@pytest.mark.parametrize("run_id", ["run-2", "run-3", "run-4"])
async def test_cancel_an_active_or_queued_run(api: Api, run_id: str) -> None:
    response = await api.post(f"/v1/workflow-runs/{run_id}/cancel", {"reason": "duplicate"})
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["cancel_reason"] == "duplicate"
    assert api.operations.calls == [("cancel", run_id, "duplicate")]
    stored = await api.runs.get(run_id)
    assert stored is not None
    assert stored.status is RunStatus.CANCELLED


@pytest.mark.parametrize("run_id", ["run-1", "run-5", "run-6"])
async def test_cancel_a_finished_run_is_a_409_problem(api: Api, run_id: str) -> None:
    response = await api.post(f"/v1/workflow-runs/{run_id}/cancel", {"reason": "late"})
    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["detail"] == "the run has ended and cannot be cancelled"


async def test_cancel_an_unknown_run_is_a_404(api: Api) -> None:
    response = await api.post("/v1/workflow-runs/run-404/cancel", {"reason": "x"})
    assert response.status_code == 404


@pytest.mark.parametrize("body", [None, {}, {"reason": ""}, {"reason": "x", "force": True}])
async def test_cancel_needs_a_reason_and_nothing_else(api: Api, body: Any) -> None:
    response = await api.post("/v1/workflow-runs/run-2/cancel", body)
    assert response.status_code == 400
    assert api.operations.calls == []


# --- retry -------------------------------------------------------------------------------------


async def test_retry_a_failed_run(api: Api) -> None:
    response = await api.post("/v1/workflow-runs/run-5/retry")
    assert response.status_code == 200
    assert response.json()["status"] == "running"
    assert api.operations.calls == [("retry", "run-5")]


@pytest.mark.parametrize("run_id", ["run-1", "run-2", "run-3", "run-4", "run-6"])
async def test_retry_a_run_that_is_not_failed_is_a_409_problem(api: Api, run_id: str) -> None:
    response = await api.post(f"/v1/workflow-runs/{run_id}/retry")
    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["detail"] == runs_api.NOT_RETRYABLE


async def test_retry_an_unknown_run_is_a_404(api: Api) -> None:
    assert (await api.post("/v1/workflow-runs/run-404/retry")).status_code == 404


# --- on demand ---------------------------------------------------------------------------------


async def test_on_demand_starts_runs_for_the_caller(api: Api) -> None:
    response = await api.post("/v1/workflows/leaver/runs", {"identity_ids": ["u-ada", "u-new"]})
    assert response.status_code == 202
    assert response.json() == {"workflow_id": "leaver", "run_ids": ["od-u-ada", "od-u-new"]}
    assert api.operations.calls == [("start", "leaver", ("u-ada", "u-new"), "otto")]


async def test_on_demand_of_an_unknown_workflow_is_a_404_problem(api: Api) -> None:
    response = await api.post("/v1/workflows/nope/runs", {"identity_ids": ["u-ada"]})
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON
    assert "nope" not in response.json()["detail"]  # never echoing input


async def test_on_demand_for_an_unknown_identity_is_a_422_problem(api: Api) -> None:
    response = await api.post("/v1/workflows/leaver/runs", {"identity_ids": ["u-ada", "ghost"]})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["title"] == "Unprocessable Content"


@pytest.mark.parametrize(
    "body", [{}, {"identity_ids": []}, {"identity_ids": ["a b"]}, {"identity_ids": "u-ada"}]
)
async def test_on_demand_refuses_a_malformed_body(api: Api, body: Any) -> None:
    response = await api.post("/v1/workflows/leaver/runs", body)
    assert response.status_code == 400
    assert api.operations.calls == []


# --- the loaded set ----------------------------------------------------------------------------


async def test_workflows_lists_the_loaded_set_and_the_holders_status(api: Api) -> None:
    response = await api.get("/v1/workflows", AUDITOR)
    assert response.status_code == 200
    body = response.json()
    assert body["last_errors"] == []
    assert body["digest"] == api.holder.current().digest
    by_id = {entry["id"]: entry for entry in body["workflows"]}
    assert sorted(by_id) == [
        *sorted(shipped().workflows),
        "contractor-end-date",
        "department-move",
        "leaver",
        "pre-hire",
    ]
    assert by_id["department-move"]["trigger"] == "user.updated (changed: department)"
    assert by_id["pre-hire"]["version"] == api.holder.current()["pre-hire"].version
    assert by_id["pre-hire"]["enabled"] is True


async def test_workflows_shows_the_errors_of_a_refused_reload(tmp_path: Path) -> None:
    folder = tmp_path / "workflows"
    folder.mkdir()
    (folder / "leaver.yaml").write_text((EXAMPLES / "leaver.yaml").read_text())
    holder = examples_holder(folder)
    (folder / "broken.yaml").write_text("id: broken\n")
    assert holder.reload()
    app = build_app(FakeRuns(), FakeOperations(FakeRuns()), holder, [])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://orchestrator"
    ) as client:
        response = await client.get("/v1/workflows", headers=_auth(OPERATOR))
    body = response.json()
    assert [entry["id"] for entry in body["workflows"]] == [*sorted(shipped().workflows), "leaver"]
    assert body["last_errors"]
    assert all("broken.yaml" in e for e in body["last_errors"])


# --- permissions -------------------------------------------------------------------------------

READS = [("get", "/v1/workflow-runs"), ("get", "/v1/workflow-runs/run-2"), ("get", "/v1/workflows")]
ACTS = [
    ("post", "/v1/workflow-runs/run-2/cancel", {"reason": "x"}),
    ("post", "/v1/workflow-runs/run-5/retry", None),
    ("post", "/v1/workflows/leaver/runs", {"identity_ids": ["u-ada"]}),
]


async def _call(api: Api, method: str, path: str, body: Any, token: str | None) -> httpx.Response:
    if method == "get":
        return await api.client.get(path, headers=_auth(token))
    return await api.client.post(path, json=body, headers=_auth(token))


@pytest.mark.parametrize("endpoint", [(*r, None) for r in READS] + ACTS, ids=lambda e: e[1])
@pytest.mark.parametrize("token", [None, "acc_0000000000000000_" + "Z" * 43])
async def test_no_or_a_bad_token_is_a_401_problem(
    api: Api, endpoint: tuple[str, str, Any], token: str | None
) -> None:
    response = await _call(api, *endpoint, token)
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM_JSON
    assert api.operations.calls == []


@pytest.mark.parametrize(
    ("token", "reads"),
    [
        (ADMIN, True),
        (OPERATOR, True),
        (AUDITOR, True),
        (SCOPED_READER, True),
        (REQUESTER, False),  # no self-service: a person does not read their own runs
        (SCIM, False),
    ],
)
@pytest.mark.parametrize("endpoint", READS, ids=lambda e: e[1])
async def test_reading_needs_sagas_read_or_audit_read(
    api: Api, endpoint: tuple[str, str], token: str, reads: bool
) -> None:
    response = await _call(api, *endpoint, None, token)
    assert response.status_code == (200 if reads else 403)
    if not reads:
        assert response.json()["detail"] == "this needs the sagas:read or audit:read permission"


@pytest.mark.parametrize(
    ("token", "acts"),
    [
        (ADMIN, True),
        (OPERATOR, True),
        (AUDITOR, False),
        (SCOPED_READER, False),
        (REQUESTER, False),
        (SCIM, False),
    ],
)
@pytest.mark.parametrize("endpoint", ACTS, ids=lambda e: e[1])
async def test_acting_needs_sagas_operate(
    api: Api, endpoint: tuple[str, str, Any], token: str, acts: bool
) -> None:
    response = await _call(api, *endpoint, token)
    assert response.status_code == (202 if "/workflows/" in endpoint[1] else 200) if acts else 403
    assert bool(api.operations.calls) is acts
