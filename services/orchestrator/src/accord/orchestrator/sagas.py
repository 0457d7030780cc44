"""Operator actions on sagas (retry, cancel), shared by the HTTP API and the CLI."""

from __future__ import annotations

from typing import Any

import asyncpg

from accord.orchestrator.adapters import store
from accord.orchestrator.adapters.postgres import postgres_ports
from accord.orchestrator.domain import account_saga as saga
from accord.orchestrator.domain.workflow import WorkflowSettings
from accord.orchestrator.handlers import on_operator
from accord.runtime import outbox


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
    workflows: WorkflowSettings,
    saga_id: str,
    action: saga.RetryRequested | saga.CancelRequested,
) -> dict[str, Any]:
    """Retry or cancel a saga; its events leave through the outbox. Returns the saga."""
    async with pool.acquire() as conn, conn.transaction():
        ports = postgres_ports(conn, source, workflows)
        user_id = await ports.sagas.subject(saga_id)
        if user_id is None:
            raise SagaNotFound(f"saga {saga_id} not found")
        await ports.registry.lock(user_id)  # first, as every identity handler does
        state = await ports.sagas.load(saga_id)
        assert state is not None, "sagas are never deleted"
        retry = isinstance(action, saga.RetryRequested)
        if (
            (state.status != "failed")
            if retry
            else ("cancelled" not in saga.TRANSITIONS[state.status])
        ):
            verb = "retried (only a failed saga can)" if retry else "cancelled"
            raise SagaConflict(saga_id, f"is {state.status} and cannot be {verb}")
        holder = await ports.sagas.holder(user_id)
        if retry and holder not in (None, saga_id):
            # One saga per identity at a time: this one may run again once that one is done.
            raise SagaConflict(
                saga_id,
                f"cannot be retried while saga {holder} of the same identity is in flight",
            )
        events = await on_operator(saga_id, action, ports)
        await outbox.enqueue(conn, schema, events)
    entry = await store.get_saga(pool, saga_id)
    assert entry is not None
    return entry
