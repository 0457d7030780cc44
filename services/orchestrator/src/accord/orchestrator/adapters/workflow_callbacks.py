"""The callbacks waiting extension calls expect, in the orchestrator's table (migration
0016): what `workflows.effects` registers before a call and `workflows.callback_api` checks
a callback against. One statement per operation, on the caller's connection or the pool."""

from __future__ import annotations

import os
from collections.abc import Mapping

import asyncpg

from accord.orchestrator.workflows.callback_api import AwaitedCallback, CallbackState
from accord.orchestrator.workflows.extensions import ExtensionRejected, read_secret


class PostgresCallbacks:
    """A CallbackRegistry (effects) and a CallbackSecrets (callback_api)."""

    def __init__(
        self, db: asyncpg.Connection | asyncpg.Pool, environ: Mapping[str, str] | None = None
    ) -> None:
        self.db = db
        self.environ = os.environ if environ is None else environ

    async def register(self, run_id: str, task_id: str, *, token: str, secret_env: str) -> None:
        """Await a callback for the task with this token; a later attempt replaces it."""
        await self.db.execute(
            "INSERT INTO workflow_callbacks (run_id, task_id, token, secret_env)"
            " VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (run_id, task_id) DO UPDATE SET token = EXCLUDED.token,"
            " secret_env = EXCLUDED.secret_env, state = 'awaiting', updated_at = now()",
            run_id,
            task_id,
            token,
            secret_env,
        )

    async def lookup(self, run_id: str, task_id: str) -> AwaitedCallback | None:
        """What a callback of the task is checked against; None when the task never waited,
        or when its secret's variable is gone (nothing to check a signature against)."""
        row = await self.db.fetchrow(
            "SELECT token, secret_env, state FROM workflow_callbacks"
            " WHERE run_id = $1 AND task_id = $2",
            run_id,
            task_id,
        )
        if row is None:
            return None
        try:
            secret = read_secret(row["secret_env"], self.environ)
        except ExtensionRejected:
            return None
        return AwaitedCallback(state=CallbackState(row["state"]), secret=secret, token=row["token"])

    async def mark(self, run_id: str, task_id: str, state: CallbackState) -> bool:
        """The callback came (DELIVERED) or the wait ended without one (CLOSED); only an
        awaiting callback changes: False means it was delivered or closed before."""
        status = await self.db.execute(
            "UPDATE workflow_callbacks SET state = $3, updated_at = now()"
            " WHERE run_id = $1 AND task_id = $2 AND state = 'awaiting'",
            run_id,
            task_id,
            state.value,
        )
        return str(status).endswith(" 1")
