"""`accord workflows runs list | show | cancel | retry` and `accord workflows run`.

Reading follows `accord sagas`: ``runs list`` and ``runs show`` read the orchestrator's
tables in DATABASE_URL (a read-only transaction), so they work while the orchestrator is
down, and whoever holds the database credentials sees every output value.

Acting does not: cancelling, retrying or starting a run is the engine's work (the run
state machine, the loaded workflow set, the effects, the outbox), and the engine lives in
the orchestrator. ``runs cancel``, ``runs retry`` and ``run`` call its API at
``$ACCORD_ORCHESTRATOR_URL`` with the API token of ``$ACCORD_API_TOKEN`` or
``--token-file`` (the ``sagas:operate`` permission), as ``accord workflows simulate``
calls the auditor's.

Exit codes: 0 done, 1 refused or failed (no such run, a finished run, the API
unreachable), 2 a usage error (no URL or token).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accord.events.cli import EXIT_FAILURE, EXIT_USAGE, CliError
from accord.orchestrator.workflows.run_model import Run, RunStatus, TaskStatus
from accord.runtime.cli_scaffold import add_action, add_actions, add_json, add_limit, int_between

if TYPE_CHECKING:
    import asyncpg
    import httpx


SCHEMA = "orchestrator"
NO_TABLES = "no orchestrator tables in this database: has the orchestrator run?"
URL_VARIABLE = "ACCORD_ORCHESTRATOR_URL"
TOKEN_VARIABLE = "ACCORD_API_TOKEN"  # noqa: S105 - a variable name, not a secret
STATUSES = [status.value for status in RunStatus]
#: The HTTP transport of the API calls (None: the network); tests put the app here.
transport: httpx.AsyncBaseTransport | None = None


def _with_pool(work: Callable[[asyncpg.Pool], Awaitable[int]]) -> int:
    """Work on the orchestrator's tables in DATABASE_URL."""
    from accord.runtime.cli_support import run_on_database

    return run_on_database(work, schema=SCHEMA, no_tables=NO_TABLES)


def add_runs(actions: Any) -> None:
    """Add ``runs`` (list, show, cancel, retry) and ``run`` to ``accord workflows``."""
    runs = add_actions(
        actions,
        "runs",
        help="list, show, cancel and retry workflow runs",
        description="Workflow runs: list and show read DATABASE_URL; cancel and retry ask "
        f"the orchestrator at ${URL_VARIABLE} (an API token with sagas:operate in "
        f"${TOKEN_VARIABLE} or --token-file).",
    )
    listing = add_action(runs, "list", _list, help="runs, newest first")
    listing.add_argument("--identity", metavar="ID", help="only this identity's runs")
    listing.add_argument("--workflow", metavar="ID", help="only runs of this workflow")
    listing.add_argument("--status", choices=STATUSES, help="only runs in this state")
    add_limit(listing, 50, type=int_between(1, 10_000, "_positive"))
    add_json(listing)
    show = add_action(runs, "show", _show, help="one run: tasks, waits, outputs, errors")
    show.add_argument("run_id", metavar="RUN_ID")
    add_json(show, "print the run as one JSON object")
    cancel = add_action(runs, "cancel", _cancel, help="cancel a queued, running or waiting run")
    cancel.add_argument("run_id", metavar="RUN_ID")
    cancel.add_argument("--reason", required=True, help="why, for the audit log")
    _add_token(cancel)
    retry = add_action(runs, "retry", _retry, help="run a failed run's failed task again")
    retry.add_argument("run_id", metavar="RUN_ID")
    _add_token(retry)
    start = add_action(
        actions,
        "run",
        _start,
        help="start a workflow now for some identities (those in its scope)",
        description="Asks the orchestrator at $ACCORD_ORCHESTRATOR_URL to start the "
        "workflow, whatever its trigger, for each identity in its scope; prints the run ids.",
    )
    start.add_argument("workflow_id", metavar="WORKFLOW_ID")
    start.add_argument(
        "--identity",
        dest="identities",
        action="append",
        required=True,
        metavar="ID",
        help="an identity (user_id); repeat for several",
    )
    _add_token(start)


def _add_token(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--token-file", type=Path, metavar="FILE", help=f"API token file (else ${TOKEN_VARIABLE})"
    )


# --- reading (the database, as accord sagas) ----------------------------------------------------


async def _read(pool: asyncpg.Pool, **query: Any) -> Any:
    from accord.orchestrator.adapters.workflow_runs import PostgresRuns

    async with pool.acquire() as conn, conn.transaction(readonly=True):
        runs = PostgresRuns(conn)
        if "run_id" in query:
            return await runs.get(query["run_id"])
        return await runs.runs(**query)


def _list(args: argparse.Namespace) -> int:

    async def work(pool: asyncpg.Pool) -> int:
        page = await _read(
            pool,
            identity_id=args.identity,
            workflow_id=args.workflow,
            status=RunStatus(args.status) if args.status else None,
            limit=args.limit,
        )
        for run in page.runs:
            print(json.dumps(_plain(run), default=str) if args.json else run_line(run))
        return 0

    return _with_pool(work)


def _show(args: argparse.Namespace) -> int:
    async def work(pool: asyncpg.Pool) -> int:
        run = await _read(pool, run_id=args.run_id)
        if run is None:
            raise CliError(f"workflow run {args.run_id} not found")
        if args.json:
            print(json.dumps(_plain(run), default=str, indent=2))
        else:
            print("\n".join(run_lines(run)))
        return 0

    return _with_pool(work)


def _plain(run: Run) -> dict[str, Any]:
    from accord.orchestrator.workflows.runs_api import run_view

    view = run_view(run, values=True)
    view["status"] = run.status.value
    return view


def run_line(run: Run) -> str:
    """One run in a listing."""
    done = sum(1 for task in run.tasks if task.status.terminal)
    return (
        f"{run.run_id}  {run.workflow_id:<22} {run.status.value:<10} {run.identity_id:<24} "
        f"{done}/{len(run.tasks)} tasks  {run.created_at:%Y-%m-%d %H:%M:%S}"
    )


def run_lines(run: Run) -> list[str]:
    """One run for people: the run, then a line per task with its wait or error."""

    lines = [
        f"run {run.run_id}: {run.workflow_id} (version {run.version}) for {run.identity_id}",
        f"  status {run.status.value}"
        + (f" ({run.cancel_reason})" if run.cancel_reason else "")
        + f", started {run.created_at:%Y-%m-%d %H:%M:%S}"
        + f", updated {run.updated_at:%Y-%m-%d %H:%M:%S}",
        f"  trigger {json.dumps(dict(run.trigger), default=str)}",
    ]
    for task in run.tasks:
        line = f"  {task.position + 1}. {task.task_id} ({task.kind}): {task.status.value}"
        if task.attempts > 1:
            line += f", {task.attempts} attempts"
        if task.status is TaskStatus.WAITING and task.waiting_for:
            until = task.waiting_for.get("until")
            line += f", waits for {task.waiting_for.get('kind')}" + (
                f" until {until}" if until else ""
            )
        if task.outputs:
            line += f", outputs {', '.join(sorted(task.outputs))}"
        if task.error:
            line += f"; error: {task.error}"
        lines.append(line)
    return lines


# --- acting (the orchestrator's API) ----------------------------------------------------------


def _token(args: argparse.Namespace) -> str:
    if args.token_file is not None:
        try:
            return str(args.token_file.read_text().strip())
        except OSError as error:
            raise CliError(f"cannot read {args.token_file}: {error.strerror}", EXIT_USAGE) from None
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    if not token:
        raise CliError(f"no API token: set {TOKEN_VARIABLE} or pass --token-file", EXIT_USAGE)
    return token


def _call(args: argparse.Namespace, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST to the orchestrator's API; the answer's JSON, or a CliError with its detail."""
    import httpx

    base = os.environ.get(URL_VARIABLE, "").strip().rstrip("/")
    if not base:
        raise CliError(f"no orchestrator: set {URL_VARIABLE}", EXIT_USAGE)
    headers = {"Authorization": f"Bearer {_token(args)}"}

    async def post() -> httpx.Response:
        async with httpx.AsyncClient(
            base_url=base, headers=headers, timeout=30.0, transport=transport
        ) as client:
            return await client.post(path, json=body)

    try:
        response = asyncio.run(post())
    except httpx.HTTPError as error:
        raise CliError(f"orchestrator at {base}: {error}", EXIT_FAILURE) from None
    if response.status_code >= 300:
        raise CliError(f"{_detail(response)} ({response.status_code})", EXIT_FAILURE)
    answer: dict[str, Any] = response.json()
    return answer


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    return str(detail) if detail else response.text[:200] or response.reason_phrase


def _cancel(args: argparse.Namespace) -> int:
    run = _call(args, f"/v1/workflow-runs/{args.run_id}/cancel", {"reason": args.reason})
    print(f"workflow run {args.run_id} is now {run['status']}")
    return 0


def _retry(args: argparse.Namespace) -> int:
    run = _call(args, f"/v1/workflow-runs/{args.run_id}/retry", {})
    print(f"workflow run {args.run_id} is now {run['status']}")
    return 0


def _start(args: argparse.Namespace) -> int:
    started = _call(
        args, f"/v1/workflows/{args.workflow_id}/runs", {"identity_ids": args.identities}
    )
    run_ids = started["run_ids"]
    for run_id in run_ids:
        print(run_id)
    if not run_ids:
        print(f"no run started: no identity is in {args.workflow_id}'s scope")
    return 0
