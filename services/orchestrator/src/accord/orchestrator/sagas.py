"""Operator actions on sagas (retry, cancel), shared by the HTTP API and the CLI."""

from __future__ import annotations

from typing import Any

import asyncpg

from accord.orchestrator.adapters import store
from accord.orchestrator.adapters.postgres import postgres_ports
from accord.orchestrator.domain import account_saga as saga
from accord.orchestrator.domain.workflow import SagaConflict, SagaNotFound, WorkflowSettings
from accord.orchestrator.handlers import on_operator
from accord.runtime import outbox

__all__ = ["SagaConflict", "SagaNotFound", "operate"]


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
        events = await on_operator(saga_id, action, postgres_ports(conn, source, workflows))
        await outbox.enqueue(conn, schema, events)
    entry = await store.get_saga(pool, saga_id)
    assert entry is not None
    return entry
