"""Operators' actions on sagas: retry a failed saga, give one up."""

from __future__ import annotations

from accord.events import Envelope
from accord.orchestrator.domain import account_saga as saga
from accord.orchestrator.domain.workflow import SagaConflict, SagaNotFound, operator_refusal
from accord.orchestrator.handlers.engine import advance_loaded
from accord.orchestrator.ports import OrchestratorPorts


async def on_operator(
    saga_id: str,
    action: saga.RetryRequested | saga.CancelRequested,
    ports: OrchestratorPorts,
) -> list[Envelope]:
    """Retry or cancel a saga, if its state allows it; returns the events it causes.

    SagaNotFound when no saga has the id, SagaConflict when the action is refused.
    """
    user_id = await ports.sagas.subject(saga_id)
    if user_id is None:
        raise SagaNotFound(f"saga {saga_id} not found")
    await ports.registry.lock(user_id)  # first, as every identity handler does
    state = await ports.sagas.load(saga_id)
    assert state is not None, "sagas are never deleted"
    holder = None
    if isinstance(action, saga.RetryRequested):
        holder = await ports.sagas.holder(user_id)
    refusal = operator_refusal(state, action, holder)
    if refusal is not None:
        raise SagaConflict(saga_id, refusal)
    return await advance_loaded(ports, state, action)
