"""Operator actions on sagas (retry, cancel), shared by the HTTP API and the CLI."""

from __future__ import annotations

from typing import Any

import asyncpg

from accord.orchestrator.adapters import store
from accord.orchestrator.domain import account_saga as saga
from accord.orchestrator.handlers import Workflows
from accord.runtime import outbox
from accord.runtime.consumer import HandlerContext


class SagaNotFound(LookupError):
    """No saga has this id."""


class SagaConflict(ValueError):
    """The saga's state does not allow the action (e.g. retrying a completed saga)."""

    def __init__(self, saga_id: str, reason: str) -> None:
        super().__init__(f"saga {saga_id} {reason}")
        self.reason = reason
        """Why, without the saga's id (the HTTP API repeats no input)."""


async def operate(
    pool: asyncpg.Pool,
    *,
    schema: str,
    source: str,
    workflows: Workflows,
    saga_id: str,
    action: saga.RetryRequested | saga.CancelRequested,
) -> dict[str, Any]:
    """Retry or cancel a saga; its events leave through the outbox. Returns the saga."""
    async with pool.acquire() as conn, conn.transaction():
        user_id = await store.saga_subject(conn, saga_id)
        if user_id is None:
            raise SagaNotFound(f"saga {saga_id} not found")
        await store.lock_identity(conn, user_id)  # first, as every identity handler does
        state = await store.load_saga(conn, saga_id)
        assert state is not None, "sagas are never deleted"
        retry = isinstance(action, saga.RetryRequested)
        if (
            (state.status != "failed")
            if retry
            else ("cancelled" not in saga.TRANSITIONS[state.status])
        ):
            verb = "retried (only a failed saga can)" if retry else "cancelled"
            raise SagaConflict(saga_id, f"is {state.status} and cannot be {verb}")
        holder = await store.holder(conn, user_id)
        if retry and holder not in (None, saga_id):
            # One saga per identity at a time: this one may run again once that one is done.
            raise SagaConflict(
                saga_id,
                f"cannot be retried while saga {holder} of the same identity is in flight",
            )
        ctx = HandlerContext(conn=conn, source=source, topic="operator")
        events = await workflows.advance(ctx, saga_id, action)
        await outbox.enqueue(conn, schema, events)
    entry = await store.get_saga(pool, saga_id)
    assert entry is not None
    return entry
