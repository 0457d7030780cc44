"""`accord sagas`: list, show, retry and cancel sagas (needs DATABASE_URL).

Retry and cancel write their events to the orchestrator's outbox in the same transaction as
the saga's new state; the running orchestrator's relay publishes them.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from accord.events.cli import CliError
from accord.runtime.cli_scaffold import add_action, add_actions, add_json, add_limit, int_between

if TYPE_CHECKING:
    import asyncpg

    from accord.orchestrator.domain import account_saga as saga


SCHEMA = "orchestrator"
NO_TABLES = "no orchestrator tables in this database: has the orchestrator run?"
SOURCE = "accord/orchestrator/cli"
#: account_saga's Status and SagaType, spelled out so that registering the command imports
#: neither the saga nor the event catalogue (a test keeps them equal).
STATUSES = ["queued", "running", "compensating", "completed", "failed", "cancelled"]
TYPES = [
    "joiner",
    "mover",
    "reactivation",
    "leaver",
    "access_grant",
    "access_revoke",
    "lockout",
    "unlock",
    "workflow_task",
]


def register_sagas(commands: Any) -> None:
    """Add `accord sagas` to the accord command."""
    actions = add_actions(
        commands,
        "sagas",
        help="list, show, retry and cancel the orchestrator's sagas",
        description="Sagas are the orchestrator's durable workflows (joiner, mover, "
        "reactivation, leaver, access_grant, access_revoke). The database is DATABASE_URL.",
    )
    listing = add_action(actions, "list", _list, help="sagas, newest first")
    listing.add_argument("--status", choices=STATUSES, help="only sagas in this state")
    listing.add_argument("--type", dest="saga_type", choices=TYPES, help="only this workflow")
    listing.add_argument("--subject", help="only sagas of this identity (user_id)")
    add_limit(listing, 50, type=int_between(1, 10_000, "_positive"))
    add_json(listing)
    show = add_action(actions, "show", _show, help="one saga: steps, attempts, errors, timings")
    show.add_argument("saga_id")
    retry = add_action(actions, "retry", _retry, help="run a failed saga's unfinished steps again")
    retry.add_argument("saga_id")
    cancel = add_action(actions, "cancel", _cancel, help="give a running or failed saga up")
    cancel.add_argument("saga_id")
    cancel.add_argument("--reason", required=True, help="why, for the audit log")


def _with_pool(work: Callable[[asyncpg.Pool], Awaitable[int]]) -> int:
    """Work on the orchestrator's tables in DATABASE_URL."""
    from accord.runtime.cli_support import run_on_database

    return run_on_database(work, schema=SCHEMA, no_tables=NO_TABLES)


def _list(args: argparse.Namespace) -> int:
    from accord.orchestrator.adapters import store

    async def work(pool: asyncpg.Pool) -> int:
        where = store.SagaFilter(args.status, args.saga_type, args.subject)
        for entry in await store.list_sagas(pool, where, limit=args.limit):
            if args.json:
                print(json.dumps(entry, default=str))
                continue
            done = sum(1 for s in entry["steps"] if s["status"] in ("done", "compensated"))
            print(
                f"{entry['saga_id']}  {entry['saga_type']:<12} {entry['status']:<12} "
                f"{entry['subject_id']:<24} {done}/{len(entry['steps'])} steps  "
                f"{entry['started_at']:%Y-%m-%d %H:%M:%S}"
            )
        return 0

    return _with_pool(work)


def _show(args: argparse.Namespace) -> int:
    from accord.orchestrator.adapters import store

    async def work(pool: asyncpg.Pool) -> int:
        entry = await store.get_saga(pool, args.saga_id)
        if entry is None:
            raise CliError(f"saga {args.saga_id} not found")
        print(json.dumps(entry, default=str, indent=2))
        return 0

    return _with_pool(work)


def _retry(args: argparse.Namespace) -> int:
    from accord.orchestrator.domain import account_saga as saga

    return _operate(args.saga_id, saga.RetryRequested())


def _cancel(args: argparse.Namespace) -> int:
    from accord.orchestrator.domain import account_saga as saga

    return _operate(args.saga_id, saga.CancelRequested(args.reason))


def _operate(saga_id: str, action: saga.RetryRequested | saga.CancelRequested) -> int:
    from accord.orchestrator import sagas
    from accord.orchestrator.bootstrap import workflows
    from accord.orchestrator.settings import OrchestratorSettings

    flows = workflows(OrchestratorSettings())

    async def work(pool: asyncpg.Pool) -> int:
        try:
            entry = await sagas.operate(
                pool, schema=SCHEMA, source=SOURCE, workflows=flows, saga_id=saga_id, action=action
            )
        except (sagas.SagaNotFound, sagas.SagaConflict) as error:
            raise CliError(str(error)) from None
        print(f"saga {saga_id} is now {entry['status']}")
        return 0

    return _with_pool(work)
