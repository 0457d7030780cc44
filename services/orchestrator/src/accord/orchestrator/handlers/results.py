"""Provisioning results: fed to the saga, or to the workflow run, that asked for them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from accord.events import AccountProvisioned, AccountProvisionFailed, Envelope
from accord.orchestrator.domain import account_saga as saga
from accord.orchestrator.handlers.engine import advance
from accord.orchestrator.ports import OrchestratorPorts
from accord.orchestrator.workflows.engine import is_run_id

#: Hands a result to the workflow engine (`Engine.on_provision_result` on the transaction).
RunResult = Callable[
    [Envelope, AccountProvisioned | AccountProvisionFailed], Awaitable[list[Envelope]]
]


async def on_account_result(
    event: Envelope,
    data: AccountProvisioned | AccountProvisionFailed,
    ports: OrchestratorPorts,
    workflow_run: RunResult | None = None,
) -> list[Envelope]:
    """Feed a provisioning result to the saga that asked for it, or to the workflow run
    (a saga_id that is a run id, when the workflow engine is on).

    An account result also keeps the registry's accounts, whoever asked; a membership
    result (it names a group) concerns the group, not the account.
    """
    if isinstance(data, AccountProvisioned) and data.group is None:
        await ports.registry.record_account(
            data.user_id, data.target, data.account_id, data.operation
        )
    if workflow_run is not None and is_run_id(data.saga_id):
        return await workflow_run(event, data)
    result: saga.SagaEvent
    if isinstance(data, AccountProvisioned):
        result = saga.Provisioned(data.target, data.operation, data.group)
    else:
        result = saga.ProvisionFailed(
            data.target, data.reason, data.operation, retryable=data.retryable, group=data.group
        )
    return await advance(ports, data.saga_id, result, cause=event)
