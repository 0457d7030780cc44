"""Provisioning results: fed to the saga that asked for them."""

from __future__ import annotations

from accord.events import AccountProvisioned, AccountProvisionFailed, Envelope
from accord.orchestrator.domain import account_saga as saga
from accord.orchestrator.handlers.engine import advance
from accord.orchestrator.ports import OrchestratorPorts


async def on_account_result(
    event: Envelope, data: AccountProvisioned | AccountProvisionFailed, ports: OrchestratorPorts
) -> list[Envelope]:
    """Feed a provisioning result to the saga that asked for it.

    An account result also keeps the registry's accounts; a membership result (it names
    a group) concerns the group, not the account.
    """
    result: saga.SagaEvent
    if isinstance(data, AccountProvisioned):
        if data.group is None:
            await ports.registry.record_account(
                data.user_id, data.target, data.account_id, data.operation
            )
        result = saga.Provisioned(data.target, data.operation, data.group)
    else:
        result = saga.ProvisionFailed(
            data.target, data.reason, data.operation, retryable=data.retryable, group=data.group
        )
    return await advance(ports, data.saga_id, result, cause=event)
