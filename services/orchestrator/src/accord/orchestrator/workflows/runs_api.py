"""HTTP API of workflow runs: list, show, cancel, retry, start on demand; the loaded set.

Mounted by `configure(app, runtime, operations, holder)` when the engine is on
(ACCORD_WORKFLOWS_DIR set). Reads go through `ports.RunStore` in a read-only transaction
of their own; every change goes through `operations.EngineOperations`, so the API never
moves a run itself: a cancel or a retry takes the engine's path (state machine, outbox,
wake-ups, one transaction).

Who may do what (the sagas' permissions: a workflow run is what a saga is today):

- reading runs and the loaded set needs ``sagas:read`` or ``audit:read``. No self-service:
  a person must not learn from the API that a leaver workflow waits for their leave date
  before they are told;
- a task's outputs may hold personal data (an extension's answer, an approver's comment):
  everyone who reads runs sees their names, only a caller holding ``audit:read`` (admins
  and auditors) their values, as the workflow.task_completed event carries names only;
- cancelling, retrying and starting runs needs ``sagas:operate``.

Errors are problem details: 404 no such run or workflow, 409 a run whose state says no
(a finished run cancelled, a run that is not failed retried), 422 an on-demand start for an
identity the registry does not hold.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Protocol

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from accord.orchestrator.adapters.workflow_runs import PostgresRuns
from accord.orchestrator.workflows import matching
from accord.orchestrator.workflows.loader import WorkflowSet
from accord.orchestrator.workflows.operations import (
    EngineOperations,
    NotRetryable,
    RunFinished,
    RunNotFound,
    UnknownIdentity,
    UnknownWorkflow,
)
from accord.orchestrator.workflows.ports import RunStore
from accord.orchestrator.workflows.run_model import Run, RunStatus, TaskRun
from accord.runtime.app_deps import Mounted
from accord.runtime.params import Id, Text
from accord.runtime.problems import documented
from accord.runtime.security.api import authenticated
from accord.runtime.security.roles import Caller, Permission
from accord.runtime.service import Runtime

#: Opens a read of the runs: a RunStore on a read-only transaction, closed on exit.
RunReading = Callable[[], AbstractAsyncContextManager[RunStore]]
#: Either of these lets a caller read runs.
READ_PERMISSIONS = (Permission.SAGAS_READ, Permission.AUDIT_READ)
#: Seeing the values of tasks' outputs (names are shown to every reader).
VALUES_PERMISSION = Permission.AUDIT_READ
OPERATE_PERMISSION = Permission.SAGAS_OPERATE
NOT_RETRYABLE = "only a failed run can be retried, once no other run of its identity is active"
_IDENTITY_ID = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@+-]*$")
]
_CURSOR = Annotated[str, Query(pattern=r"^[0-9]{1,19}$", description="next_cursor of a page")]


class SetHolder(Protocol):
    """What the API reads of the workflow holder (`holder.WorkflowHolder`)."""

    def current(self) -> WorkflowSet: ...

    def status(self) -> dict[str, Any]: ...


# --- bodies and answers --------------------------------------------------------------------


class CancelBody(BaseModel):
    """Why a run is cancelled, for the audit log (workflow.run_cancelled's reason)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")


class OnDemandBody(BaseModel):
    """The identities to run a workflow for (each one in the workflow's scope starts)."""

    model_config = ConfigDict(extra="forbid")

    identity_ids: list[_IDENTITY_ID] = Field(min_length=1, max_length=500)


class TaskEntry(BaseModel):
    """One task of a run. `outputs` holds the values only for a caller with audit:read
    (null otherwise); `output_names` is there for every reader."""

    task_id: str
    position: int
    kind: str
    status: str
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    waiting_for: dict[str, Any] | None
    output_names: list[str]
    outputs: dict[str, Any] | None
    error: str | None


class WaitEntry(BaseModel):
    """What a waiting task waits on (approval, callback, timer, retry, provisioning)."""

    task_id: str
    kind: str | None
    until: str | None
    detail: dict[str, Any]


class ErrorEntry(BaseModel):
    """A task's error, as the run keeps it."""

    task_id: str
    status: str
    error: str


class RunEntry(BaseModel):
    """One workflow run: its tasks, what it waits on, its errors."""

    run_id: str
    workflow_id: str
    version: str
    identity_id: str
    category: str
    trigger: dict[str, Any]
    status: RunStatus
    created_at: datetime
    updated_at: datetime
    revision: int
    cancel_reason: str | None
    tasks: list[TaskEntry]
    waits: list[WaitEntry]
    errors: list[ErrorEntry]


class RunPage(BaseModel):
    """A page of runs, newest first; next_cursor asks for the next page (null: the last)."""

    items: list[RunEntry]
    next_cursor: str | None


class StartedRuns(BaseModel):
    """The runs an on-demand request started (identities out of the workflow's scope start
    none)."""

    workflow_id: str
    run_ids: list[str]


class WorkflowEntry(BaseModel):
    """A loaded workflow."""

    id: str
    version: str
    category: str
    trigger: str
    enabled: bool
    tasks: int
    file: str


class WorkflowsStatus(BaseModel):
    """The set in force and the holder's state: the last refused reload's errors (empty
    when the folder's files are in force)."""

    digest: str
    loaded_at: str
    last_errors: list[str]
    workflows: list[WorkflowEntry]


# --- views, shared with the CLI ---------------------------------------------------------------


def task_view(task: TaskRun, *, values: bool) -> dict[str, Any]:
    """A task as the API shows it; `values`: the outputs' values, else their names only."""
    return {
        "task_id": task.task_id,
        "position": task.position,
        "kind": task.kind,
        "status": task.status.value,
        "attempts": task.attempts,
        "started_at": task.started_at,
        "finished_at": task.finished_at,
        "waiting_for": dict(task.waiting_for) if task.waiting_for is not None else None,
        "output_names": sorted(task.outputs),
        "outputs": dict(task.outputs) if values else None,
        "error": task.error,
    }


def run_view(run: Run, *, values: bool) -> dict[str, Any]:
    """A run as the API shows it: its tasks, its waits and its errors gathered."""
    waits = [
        {
            "task_id": task.task_id,
            "kind": _text(task.waiting_for.get("kind")),
            "until": _text(task.waiting_for.get("until")),
            "detail": dict(task.waiting_for),
        }
        for task in run.tasks
        if task.waiting_for is not None and not task.status.terminal
    ]
    errors = [
        {"task_id": task.task_id, "status": task.status.value, "error": task.error}
        for task in run.tasks
        if task.error is not None
    ]
    return {
        "run_id": run.run_id,
        "workflow_id": run.workflow_id,
        "version": run.version,
        "identity_id": run.identity_id,
        "category": run.category,
        "trigger": dict(run.trigger),
        "status": run.status,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "revision": run.revision,
        "cancel_reason": run.cancel_reason,
        "tasks": [task_view(task, values=values) for task in run.tasks],
        "waits": waits,
        "errors": errors,
    }


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def workflows_view(holder: SetHolder) -> dict[str, Any]:
    """The loaded set and the holder's state (GET /v1/workflows, `accord workflows`)."""
    status = holder.status()
    return {
        "digest": status["digest"],
        "loaded_at": status["loaded_at"],
        "last_errors": list(status["last_errors"]),
        "workflows": [
            {
                "id": loaded.id,
                "version": loaded.version,
                "category": loaded.definition.category,
                "trigger": matching.describe_trigger(loaded.definition),
                "enabled": loaded.definition.enabled,
                "tasks": len(loaded.definition.tasks),
                "file": loaded.source,
            }
            for loaded in holder.current()
        ],
    }


# --- wiring -----------------------------------------------------------------------------------


def read_only(pool: asyncpg.Pool) -> RunReading:
    """Reads on a pooled connection in a read-only transaction (a mistake cannot write)."""

    @asynccontextmanager
    async def reading() -> AsyncIterator[RunStore]:
        async with pool.acquire() as conn, conn.transaction(readonly=True):
            yield PostgresRuns(conn)

    return reading


@dataclass(frozen=True)
class RunsApiDeps:
    """What the routes work with, set by `configure` on the app."""

    reading: RunReading
    operations: EngineOperations
    holder: SetHolder


_deps = Mounted[RunsApiDeps]("workflow_runs_api")
router = APIRouter(prefix="/v1", tags=["workflows"])


def _any_of(*permissions: Permission) -> Callable[..., Awaitable[Caller]]:
    authenticate = authenticated()
    names = " or ".join(permission.value for permission in permissions)

    async def dependency(caller: Caller = Depends(authenticate)) -> Caller:
        if not any(caller.may(permission) for permission in permissions):
            raise HTTPException(403, f"this needs the {names} permission")
        return caller

    return dependency


_reader = _any_of(*READ_PERMISSIONS)
_operator = _any_of(OPERATE_PERMISSION)


def configure(
    app: FastAPI,
    runtime: Runtime | None,
    operations: EngineOperations,
    holder: SetHolder,
    *,
    reading: RunReading | None = None,
) -> None:
    """Mount the routes; reads use `runtime.pool` read-only unless `reading` is given."""
    if reading is None:
        if runtime is None:
            raise ValueError("runs_api.configure needs a runtime or a reading")
        reading = read_only(runtime.pool)
    _deps.mount(app, RunsApiDeps(reading, operations, holder), router)


def _entry(run: Run, caller: Caller) -> RunEntry:
    return RunEntry.model_validate(run_view(run, values=caller.may(VALUES_PERMISSION)))


# --- routes -------------------------------------------------------------------------------------


@router.get("/workflow-runs", summary="Workflow runs, newest first")
async def list_runs(
    caller: Caller = Depends(_reader),
    deps: RunsApiDeps = Depends(_deps),
    identity_id: Text | None = None,
    workflow_id: Text | None = None,
    status: RunStatus | None = None,
    cursor: _CURSOR | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> RunPage:
    async with deps.reading() as runs:
        page = await runs.runs(
            identity_id=identity_id,
            workflow_id=workflow_id,
            status=status,
            after=cursor,
            limit=limit,
        )
    return RunPage(items=[_entry(run, caller) for run in page.runs], next_cursor=page.next)


@router.get(
    "/workflow-runs/{run_id}", summary="One workflow run: its tasks, waits, outputs and errors"
)
async def get_run(
    run_id: Id, caller: Caller = Depends(_reader), deps: RunsApiDeps = Depends(_deps)
) -> RunEntry:
    async with deps.reading() as runs:
        run = await runs.get(run_id)
    if run is None:
        raise HTTPException(404, "no such workflow run")
    return _entry(run, caller)


@router.post(
    "/workflow-runs/{run_id}/cancel",
    summary="Cancel a queued, running or waiting run",
    responses={409: documented("The run has ended already (completed, failed or cancelled)")},
)
async def cancel_run(
    run_id: Id,
    body: CancelBody,
    caller: Caller = Depends(_operator),
    deps: RunsApiDeps = Depends(_deps),
) -> RunEntry:
    try:
        run = await deps.operations.cancel(run_id, body.reason)
    except RunNotFound:
        raise HTTPException(404, "no such workflow run") from None
    except RunFinished:
        raise HTTPException(409, "the run has ended and cannot be cancelled") from None
    return _entry(run, caller)


@router.post(
    "/workflow-runs/{run_id}/retry",
    summary="Run a failed run's failed task again",
    responses={409: documented("The run is not failed")},
)
async def retry_run(
    run_id: Id, caller: Caller = Depends(_operator), deps: RunsApiDeps = Depends(_deps)
) -> RunEntry:
    try:
        run = await deps.operations.retry(run_id)
    except RunNotFound:
        raise HTTPException(404, "no such workflow run") from None
    except NotRetryable:
        raise HTTPException(409, NOT_RETRYABLE) from None
    return _entry(run, caller)


@router.post(
    "/workflows/{workflow_id}/runs",
    status_code=202,
    summary="Start a workflow now for some identities (those in its scope)",
    responses={
        404: documented("No such workflow, or a disabled one"),
        422: documented("An identity is not in the registry; nothing started"),
    },
)
async def start_runs(
    workflow_id: Id,
    body: OnDemandBody,
    caller: Caller = Depends(_operator),
    deps: RunsApiDeps = Depends(_deps),
) -> StartedRuns:
    try:
        started = await deps.operations.start_on_demand(
            workflow_id, body.identity_ids, caller.subject
        )
    except UnknownWorkflow:
        raise HTTPException(404, "no such workflow, or it is disabled") from None
    except UnknownIdentity:
        raise HTTPException(422, "an identity is not in the registry; nothing started") from None
    return StartedRuns(workflow_id=workflow_id, run_ids=list(started))


@router.get(
    "/workflows",
    summary="The workflows in force: ids, versions, triggers; the last refused reload's errors",
    dependencies=[Depends(_reader)],
)
async def list_workflows(deps: RunsApiDeps = Depends(_deps)) -> WorkflowsStatus:
    return WorkflowsStatus.model_validate(workflows_view(deps.holder))


__all__ = [
    "RunReading",
    "configure",
    "read_only",
    "router",
    "run_view",
    "workflows_view",
]
